//! `win_path` (ansible.windows): add or remove elements of a path-like environment variable
//! (`PATH` by default) at machine or user scope, keeping the order of everything else.
//!
//! As ansible.windows.win_path: elements compare case-insensitively, ignoring surrounding
//! quotes and trailing backslashes; a missing element is appended; elements already present
//! but out of the requested relative order are moved to the end so the order holds; variable
//! references (`%SystemRoot%`) stay unexpanded. Unlike it, `state: absent` removes every copy
//! of an element (Ansible removes the first one), and an element listed twice is added once.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{WINDOWS, finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, choice, p, req,
};

pub static SCRIPT: super::Script = script!("win_path");

static DEF: ModuleDef = ModuleDef {
    name: "win_path",
    namespaces: WINDOWS,
    params: &[
        p("name", Str),
        req("elements", List),
        choice("state", &["absent", "present"]),
        choice("scope", &["machine", "user"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathArgs {
    #[serde(default = "path_name")]
    pub name: String,
    #[serde(deserialize_with = "list")]
    pub elements: Vec<String>,
    #[serde(default = "present")]
    pub state: String,
    #[serde(default = "machine")]
    pub scope: String,
}

fn path_name() -> String {
    "PATH".into()
}
fn present() -> String {
    "present".into()
}
fn machine() -> String {
    "machine".into()
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Probe {
    /// The raw value; empty when the variable does not exist.
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub value: String,
    #[serde(skip)]
    pub changed: bool,
}

/// Splits a path value on `;`, keeping a quoted element (which may hold `;`) whole — the
/// expression ansible.windows.win_path uses: `((?<q>\s*"[^"]+"\s*)|(?<q>[^;]+))(;$|$|;)`.
pub fn split(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = value;
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        // A quoted element, with optional whitespace around it.
        let ws = rest.len() - rest.trim_start().len();
        let after_ws = &rest[ws..];
        if let Some(q) = after_ws.strip_prefix('"')
            && let Some(close) = q.find('"')
            && close > 0
        {
            let mut end = ws + 1 + close + 1;
            end += rest[end..].len() - rest[end..].trim_start().len();
            if end == rest.len() || rest[end..].starts_with(';') {
                out.push(rest[..end].to_string());
                i += end + 1;
                continue;
            }
        }
        match rest.find(';') {
            Some(0) => i += 1,
            Some(n) => {
                out.push(rest[..n].to_string());
                i += n + 1;
            }
            None => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

/// How two elements compare (Ansible's `.Trim('"').Trim('\')` and `-ieq`).
fn norm(el: &str) -> String {
    el.trim()
        .trim_matches('"')
        .trim_matches('\\')
        .to_lowercase()
}

fn index_of(list: &[String], el: &str) -> Option<usize> {
    let n = norm(el);
    list.iter().position(|x| norm(x) == n)
}

/// The new value and whether it differs from `current`.
pub fn plan(current: &str, elements: &[String], state: &str) -> Plan {
    let mut list = split(current);
    let mut changed = false;
    if state == "absent" {
        for el in elements {
            while let Some(i) = index_of(&list, el) {
                list.remove(i);
                changed = true;
            }
        }
    } else {
        let mut last: Option<usize> = None;
        for el in elements.iter().filter(|e| !e.trim().is_empty()) {
            match index_of(&list, el) {
                None => {
                    list.push(el.clone());
                    last = Some(list.len() - 1);
                    changed = true;
                }
                Some(i) if last.is_some_and(|l| i < l) => {
                    list.remove(i);
                    list.push(el.clone());
                    last = Some(list.len() - 1);
                    changed = true;
                }
                Some(i) => last = Some(i),
            }
        }
    }
    Plan {
        value: list.join(";"),
        changed,
    }
}

#[derive(Serialize)]
struct ProbeArgs<'a> {
    name: &'a str,
    scope: &'a str,
}

pub(super) struct WinPath;

#[async_trait]
impl Module for WinPath {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: PathArgs = typed_args(DEF.name, &args)?;
        if args.name.is_empty() {
            return Err(ModError::msg("name must not be empty"));
        }
        let query = ProbeArgs {
            name: &args.name,
            scope: &args.scope,
        };
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &query).await?;
        let plan = plan(&probe.value, &args.elements, &args.state);
        if plan.changed && !ctx.check_mode {
            let (_, w) = SCRIPT.apply::<Value>(ctx, &query, &plan).await?;
            warnings.extend(w);
        }
        let mut fields = json!({ "path_value": plan.value });
        if ctx.diff && plan.changed {
            fields["diff"] = json!({
                "before_header": format!("{} ({})", args.name, args.scope),
                "after_header": format!("{} ({})", args.name, args.scope),
                "before": format!("{}\n", split(&probe.value).join("\n")),
                "after": format!("{}\n", split(&plan.value).join("\n")),
            });
        }
        Ok(finish(plan.changed, warnings, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn els(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splitting_keeps_quoted_elements() {
        assert_eq!(split("a;b;;c;"), els(&["a", "b", "c"]));
        assert_eq!(
            split("C:\\x;\"C:\\with;semi\";d"),
            els(&["C:\\x", "\"C:\\with;semi\"", "d"])
        );
        assert_eq!(split(" \"q\" ;z"), els(&[" \"q\" ", "z"]));
        assert!(split("").is_empty());
    }

    #[test]
    fn appends_missing_elements_once_case_insensitively() {
        let cur = "C:\\Windows\\system32;C:\\Windows;%SystemRoot%\\System32\\Wbem";
        let p = plan(
            cur,
            &els(&["c:\\windows\\System32\\", "C:\\k\\bin", "C:\\K\\BIN"]),
            "present",
        );
        assert!(p.changed);
        assert_eq!(p.value, format!("{cur};C:\\k\\bin"));
        // Second run: nothing.
        let p2 = plan(
            &p.value,
            &els(&["c:\\windows\\System32\\", "C:\\k\\bin"]),
            "present",
        );
        assert!(!p2.changed);
        assert_eq!(p2.value, p.value);
        // Quoted and unexpanded forms stay as they are.
        let p3 = plan(
            "\"C:\\k\\bin\";%X%",
            &els(&["C:\\k\\bin", "%x%"]),
            "present",
        );
        assert!(!p3.changed, "{p3:?}");
    }

    #[test]
    fn keeps_the_requested_relative_order() {
        // b is asked for after c, but sits before it: moved to the end.
        let p = plan("a;b;c", &els(&["c", "b"]), "present");
        assert_eq!(p.value, "a;c;b");
        assert!(p.changed);
        let p = plan("a;b;c", &els(&["a", "c"]), "present");
        assert!(!p.changed);
    }

    #[test]
    fn absent_removes_every_copy() {
        let p = plan("a;B\\;c;b", &els(&["b"]), "absent");
        assert_eq!(p.value, "a;c");
        assert!(p.changed);
        assert!(!plan("a;c", &els(&["b"]), "absent").changed);
    }

    #[test]
    fn odd_elements() {
        let odd = "C:\\it's $x `y` \u{e9}\u{540d}";
        let p = plan("C:\\Windows", &els(&[odd]), "present");
        assert_eq!(p.value, format!("C:\\Windows;{odd}"));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v, json!({ "value": format!("C:\\Windows;{odd}") }));
    }
}
