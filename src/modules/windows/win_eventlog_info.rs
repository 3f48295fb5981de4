//! `win_eventlog_info` (mixop's own): the newest entries of a classic Windows event log
//! (`Get-EventLog`), optionally only some sources and entry types. Never changes anything; used by
//! the cluster diagnostics to show what the node agent and containerd logged.
//!
//! Returns `entries: [{time_generated, source, entry_type, event_id, message, index}]`, newest
//! first (`time_generated` is UTC, ISO 8601), plus `log`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, p,
};

pub static SCRIPT: super::Script = script!("win_eventlog_info");

static DEF: ModuleDef = ModuleDef {
    name: "win_eventlog_info",
    namespaces: &["mixop.windows"],
    params: &[
        alias(p("log", Str), &["log_name"]),
        alias(p("source", List), &["sources"]),
        p("newest", Int),
        alias(p("entry_type", List), &["entry_types"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// `Get-EventLog -EntryType` accepts these (its ValidateSet).
pub const ENTRY_TYPES: &[&str] = &[
    "Error",
    "Warning",
    "Information",
    "SuccessAudit",
    "FailureAudit",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLogArgs {
    #[serde(default = "application")]
    pub log: String,
    #[serde(default, deserialize_with = "list")]
    pub source: Vec<String>,
    #[serde(default = "fifty")]
    pub newest: i64,
    #[serde(default, deserialize_with = "list")]
    pub entry_type: Vec<String>,
}

fn application() -> String {
    "Application".into()
}
fn fifty() -> i64 {
    50
}

#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    #[serde(default, deserialize_with = "list")]
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub time_generated: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub entry_type: String,
    #[serde(default)]
    pub event_id: i64,
    #[serde(default)]
    pub message: String,
}

/// The arguments as the script gets them: entry types in their canonical spelling, `newest`
/// at least 1, the log name present.
pub fn normalize(mut args: EventLogArgs) -> Result<EventLogArgs, String> {
    if args.log.trim().is_empty() {
        return Err("log must name an event log (Application, System, ...)".into());
    }
    if args.newest < 1 {
        return Err(format!("newest must be 1 or more, got {}", args.newest));
    }
    let mut types = Vec::new();
    for t in &args.entry_type {
        let canon = ENTRY_TYPES
            .iter()
            .find(|c| c.eq_ignore_ascii_case(t.trim()))
            .ok_or_else(|| format!("entry_type {t:?} is not one of {}", ENTRY_TYPES.join(", ")))?;
        if !types.iter().any(|x: &String| x == canon) {
            types.push(canon.to_string());
        }
    }
    args.entry_type = types;
    args.source.retain(|s| !s.trim().is_empty());
    Ok(args)
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    // PowerShell wildcards as Get-EventLog -Source takes them: `*` and `?`, case-insensitive.
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The entries to report: what the probe found, filtered again by source and type (a host's
/// answer is not trusted to have done it), newest first, at most `newest`.
pub fn entries(probe: Probe, args: &EventLogArgs) -> Vec<Entry> {
    let mut out: Vec<Entry> = probe
        .entries
        .into_iter()
        .filter(|e| {
            args.source.is_empty() || args.source.iter().any(|s| wildcard_match(s, &e.source))
        })
        .filter(|e| {
            args.entry_type.is_empty()
                || args
                    .entry_type
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&e.entry_type))
        })
        .collect();
    // ISO 8601 UTC strings sort as times; the index breaks ties (same second).
    out.sort_by(|a, b| {
        b.time_generated
            .cmp(&a.time_generated)
            .then(b.index.cmp(&a.index))
    });
    out.truncate(usize::try_from(args.newest).unwrap_or(usize::MAX));
    out
}

pub(super) struct WinEventlogInfo;

#[async_trait]
impl Module for WinEventlogInfo {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args =
            normalize(typed_args::<EventLogArgs>(DEF.name, &args)?).map_err(ModError::msg)?;
        let (probe, warnings) = SCRIPT.probe::<Probe>(ctx, &args).await?;
        let entries = entries(probe, &args);
        Ok(finish(
            false,
            warnings,
            json!({ "log": args.log, "entries": entries }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(source: &[&str], types: &[&str], newest: i64) -> EventLogArgs {
        EventLogArgs {
            log: "Application".into(),
            source: source.iter().map(|s| s.to_string()).collect(),
            newest,
            entry_type: types.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn entry(index: i64, time: &str, source: &str, kind: &str) -> Entry {
        Entry {
            index,
            time_generated: time.into(),
            source: source.into(),
            entry_type: kind.into(),
            event_id: 1,
            message: format!("{source} {index}"),
        }
    }

    #[test]
    fn entry_types_are_canonical_and_checked() {
        let a = normalize(args(&[], &["error", "WARNING", "Error"], 5)).unwrap();
        assert_eq!(a.entry_type, vec!["Error", "Warning"]);
        let e = normalize(args(&[], &["Critical"], 5)).unwrap_err();
        assert!(e.contains("entry_type \"Critical\" is not one of"), "{e}");
        assert!(normalize(args(&[], &[], 0)).unwrap_err().contains("newest"));
        let mut a = args(&["", "k3s"], &[], 1);
        a.log = " ".into();
        assert!(normalize(a.clone()).is_err());
        a.log = "System".into();
        assert_eq!(normalize(a).unwrap().source, vec!["k3s"]);
    }

    #[test]
    fn newest_first_filtered_and_capped() {
        let probe = Probe {
            entries: vec![
                entry(1, "2026-12-01T10:00:00.0000000Z", "k3s", "Information"),
                entry(3, "2026-12-01T10:00:02.0000000Z", "containerd", "Error"),
                entry(2, "2026-12-01T10:00:02.0000000Z", "k3s", "Error"),
                entry(4, "2026-12-01T10:00:03.0000000Z", "MsiInstaller", "Error"),
            ],
        };
        let got = entries(probe.clone(), &args(&["k3s", "container*"], &[], 2));
        assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 2]);
        let got = entries(probe.clone(), &args(&[], &["Information"], 50));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].source, "k3s");
        assert_eq!(entries(probe, &args(&[], &[], 50)).len(), 4);
    }

    #[test]
    fn wildcards_like_powershell() {
        assert!(wildcard_match("k3s", "K3S"));
        assert!(wildcard_match("contain*", "containerd"));
        assert!(wildcard_match("*d", "containerd"));
        assert!(wildcard_match("k?s", "k3s"));
        assert!(!wildcard_match("k3s", "k3s-agent"));
        assert!(wildcard_match("*", ""));
    }

    #[test]
    fn powershell_51_shapes() {
        let p: Probe = serde_json::from_str(
            r#"{"entries": {"index": 7, "time_generated": "2026-12-01T10:00:00Z", "source": "k3s", "entry_type": "Error", "event_id": 1, "message": "m"}}"#,
        )
        .unwrap();
        assert_eq!(p.entries.len(), 1);
        let p: Probe = serde_json::from_str(r#"{"entries": null}"#).unwrap();
        assert!(p.entries.is_empty());
    }
}
