//! `win_defender_exclusion` (mixop's own: no Ansible collection has one): Microsoft Defender
//! Antivirus exclusions for paths, processes and file extensions, through
//! `Get-MpPreference` / `Add-MpPreference` / `Remove-MpPreference`.
//!
//! ```yaml
//! - win_defender_exclusion:
//!     path: ['C:\var\lib\rancher', 'C:\run\flannel', 'C:\opt\cni']
//!     process: [containerd.exe]
//!     extension: [vhdx]
//!     state: present          # or absent
//! ```
//! Only what differs is added or removed (`added` / `removed` say what, per kind). Defender
//! compares exclusions without regard to case; here a path's trailing `\` and an extension's
//! leading `.` do not make a difference either. Other exclusions on the host are left alone.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{WINDOWS, finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, choice, p,
};

pub static SCRIPT: super::Script = script!("win_defender_exclusion");

static DEF: ModuleDef = ModuleDef {
    name: "win_defender_exclusion",
    namespaces: WINDOWS,
    params: &[
        p("path", List),
        p("process", List),
        p("extension", List),
        choice("state", &["present", "absent"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[&["path", "process", "extension"]],
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExclusionArgs {
    #[serde(default, deserialize_with = "list")]
    pub path: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub process: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub extension: Vec<String>,
    #[serde(default = "present")]
    pub state: String,
}

fn present() -> String {
    "present".into()
}

/// One list per kind, as Get-MpPreference reports them (null = none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lists {
    #[serde(default, deserialize_with = "list")]
    pub path: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub process: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub extension: Vec<String>,
}

impl Lists {
    fn is_empty(&self) -> bool {
        self.path.is_empty() && self.process.is_empty() && self.extension.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Plan {
    pub add: Lists,
    pub remove: Lists,
}

/// How Defender tells two exclusions of a kind apart.
fn key(kind: &str, v: &str) -> String {
    let v = v.trim().to_lowercase();
    match kind {
        "path" if v.len() > 3 => v.trim_end_matches('\\').to_string(),
        "extension" => v.trim_start_matches('.').to_string(),
        _ => v,
    }
}

/// The message Get-MpPreference puts in place of the lists for a user who is not an
/// administrator.
const NOT_ADMIN: &str = "N/A: Must be an administrator to view exclusions";

pub fn plan(current: &Lists, a: &ExclusionArgs) -> Result<Plan, String> {
    let all = [&current.path, &current.process, &current.extension];
    if all.iter().any(|l| l.iter().any(|v| v.starts_with("N/A"))) {
        return Err(format!(
            "Get-MpPreference answered \"{NOT_ADMIN}\": the connection user must be an administrator"
        ));
    }
    let mut plan = Plan::default();
    for (kind, want, have, add, remove) in [
        (
            "path",
            &a.path,
            &current.path,
            &mut plan.add.path,
            &mut plan.remove.path,
        ),
        (
            "process",
            &a.process,
            &current.process,
            &mut plan.add.process,
            &mut plan.remove.process,
        ),
        (
            "extension",
            &a.extension,
            &current.extension,
            &mut plan.add.extension,
            &mut plan.remove.extension,
        ),
    ] {
        for w in want {
            if w.trim().is_empty() {
                return Err(format!("`{kind}` holds an empty exclusion"));
            }
            let k = key(kind, w);
            let found = have.iter().find(|h| key(kind, h) == k);
            let listed = |l: &Vec<String>| l.iter().any(|x| key(kind, x) == k);
            match (a.state.as_str(), found) {
                ("absent", Some(h)) if !listed(remove) => remove.push(h.clone()),
                ("absent", _) => {}
                (_, None) if !listed(add) => add.push(w.clone()),
                _ => {}
            }
        }
    }
    Ok(plan)
}

/// The lists after the plan (what the result reports in check mode).
fn after(current: &Lists, plan: &Plan) -> Lists {
    let apply = |kind: &str, have: &[String], add: &[String], remove: &[String]| {
        let mut v: Vec<String> = have
            .iter()
            .filter(|h| !remove.iter().any(|r| key(kind, r) == key(kind, h)))
            .cloned()
            .collect();
        v.extend(add.iter().cloned());
        v
    };
    Lists {
        path: apply("path", &current.path, &plan.add.path, &plan.remove.path),
        process: apply(
            "process",
            &current.process,
            &plan.add.process,
            &plan.remove.process,
        ),
        extension: apply(
            "extension",
            &current.extension,
            &plan.add.extension,
            &plan.remove.extension,
        ),
    }
}

#[derive(Debug, Deserialize)]
struct Probe {
    exclusions: Lists,
}

pub(super) struct WinDefenderExclusion;

#[async_trait]
impl Module for WinDefenderExclusion {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: ExclusionArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &a).await?;
        let plan = plan(&probe.exclusions, &a).map_err(ModError::msg)?;
        let changed = !plan.add.is_empty() || !plan.remove.is_empty();
        let mut exclusions = after(&probe.exclusions, &plan);
        if changed && !ctx.check_mode {
            let (applied, w) = SCRIPT.apply::<Probe>(ctx, &a, &plan).await?;
            warnings.extend(w);
            exclusions = applied.exclusions;
        }
        let mut r = finish(
            changed,
            warnings,
            json!({"added": plan.add, "removed": plan.remove, "exclusions": exclusions}),
        );
        if ctx.diff && changed {
            r.insert(
                "diff".into(),
                json!({"before": probe.exclusions, "after": exclusions}),
            );
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(path: &[&str], process: &[&str], ext: &[&str]) -> Lists {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Lists {
            path: v(path),
            process: v(process),
            extension: v(ext),
        }
    }

    fn args(path: &[&str], process: &[&str], ext: &[&str], state: &str) -> ExclusionArgs {
        let l = lists(path, process, ext);
        ExclusionArgs {
            path: l.path,
            process: l.process,
            extension: l.extension,
            state: state.into(),
        }
    }

    #[test]
    fn adds_only_what_is_missing() {
        let cur = lists(&[r"C:\var\lib\rancher\"], &["CONTAINERD.EXE"], &[".log"]);
        let p = plan(
            &cur,
            &args(
                &[
                    r"c:\VAR\lib\rancher",
                    r"C:\run\flannel",
                    r"C:\opt\cni 'x' $y `z é",
                ],
                &["containerd.exe", "k3s.exe", "k3s.exe"],
                &["log", "vhdx"],
                "present",
            ),
        )
        .unwrap();
        assert_eq!(
            p.add,
            lists(
                &[r"C:\run\flannel", r"C:\opt\cni 'x' $y `z é"],
                &["k3s.exe"],
                &["vhdx"]
            )
        );
        assert!(p.remove.is_empty());
        let a = after(&cur, &p);
        assert_eq!(a.path.len(), 3);
        let again = plan(
            &a,
            &args(&[r"C:\run\flannel"], &["k3s.exe"], &["vhdx"], "present"),
        )
        .unwrap();
        assert_eq!(again, Plan::default());
    }

    #[test]
    fn removes_with_the_hosts_spelling() {
        let cur = lists(&[r"C:\Opt\CNI"], &[], &["vhdx"]);
        let p = plan(
            &cur,
            &args(
                &[r"c:\opt\cni\", r"C:\nope"],
                &["x.exe"],
                &[".VHDX"],
                "absent",
            ),
        )
        .unwrap();
        assert_eq!(p.remove, lists(&[r"C:\Opt\CNI"], &[], &["vhdx"]));
        assert!(p.add.is_empty());
        assert_eq!(after(&cur, &p), Lists::default());
    }

    #[test]
    fn refuses_what_it_cannot_read_or_write() {
        let cur = lists(&[NOT_ADMIN], &[], &[]);
        assert!(
            plan(&cur, &args(&["C:\\x"], &[], &[], "present"))
                .unwrap_err()
                .contains("administrator")
        );
        assert!(plan(&Lists::default(), &args(&[" "], &[], &[], "present")).is_err());
        let l: Lists = serde_json::from_str(r#"{"path": "C:\\x", "process": null}"#).unwrap();
        assert_eq!(l, lists(&["C:\\x"], &[], &[]));
    }
}
