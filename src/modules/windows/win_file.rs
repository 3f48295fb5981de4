//! `win_file` (ansible.windows): a path's state — `file` (must exist), `directory` (created with
//! its parents), `touch` (created empty, or its timestamps updated: always a change, as in
//! Ansible), `absent` (removed with everything under it).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::winpath::has_trailing_sep;
use super::{WINDOWS, finish, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, req,
};

pub static SCRIPT: super::Script = script!("win_file");

static DEF: ModuleDef = ModuleDef {
    name: "win_file",
    namespaces: WINDOWS,
    params: &[
        alias(req("path", Str), &["dest", "name"]),
        choice("state", &["absent", "directory", "file", "touch"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileArgs {
    pub path: String,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct Probe {
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub is_dir: bool,
}

/// What apply does.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Mkdir,
    /// A new empty file (touch of a missing path).
    Create,
    /// New timestamps on an existing path.
    Touch,
    Remove,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub op: Option<Op>,
}

fn kind(p: &Probe) -> &'static str {
    match (p.exists, p.is_dir) {
        (false, _) => "absent",
        (true, true) => "directory",
        (true, false) => "file",
    }
}

/// ansible.windows.win_file's decisions.
pub fn plan(probe: &Probe, args: &FileArgs) -> Result<Plan, String> {
    let path = &args.path;
    let state = match args.state.as_deref() {
        Some(s) => s,
        // No state: an existing path is left as it is; a missing one is a file (which is not
        // created) unless the path ends with a separator.
        None if probe.exists => return Ok(Plan { op: None }),
        None if has_trailing_sep(path) => "directory",
        None => "file",
    };
    let op = match (state, probe.exists, probe.is_dir) {
        ("absent", true, _) => Some(Op::Remove),
        ("absent", false, _) => None,
        ("touch", true, _) => Some(Op::Touch),
        ("touch", false, _) => Some(Op::Create),
        ("directory", false, _) => Some(Op::Mkdir),
        ("directory", true, true) => None,
        ("directory", true, false) => return Err(format!("path {path} is not a directory")),
        ("file", false, _) => return Err(format!("path {path} will not be created")),
        ("file", true, true) => return Err(format!("path {path} is not a file")),
        ("file", true, false) => None,
        (other, _, _) => return Err(format!("unknown state {other:?}")),
    };
    Ok(Plan { op })
}

pub(super) struct WinFile;

#[async_trait]
impl Module for WinFile {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: FileArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &args).await?;
        let plan = plan(&probe, &args).map_err(ModError::msg)?;
        let changed = plan.op.is_some();
        let after = match plan.op {
            None | Some(Op::Touch) => kind(&probe),
            Some(Op::Mkdir) => "directory",
            Some(Op::Create) => "file",
            Some(Op::Remove) => "absent",
        };
        if changed && !ctx.check_mode {
            let (_, w) = SCRIPT.apply::<serde_json::Value>(ctx, &args, &plan).await?;
            warnings.extend(w);
        }
        let mut fields = json!({ "path": args.path, "state": after });
        if ctx.diff && changed {
            fields["diff"] = json!({
                "before": { "path": args.path, "state": kind(&probe) },
                "after": { "path": args.path, "state": after },
            });
        }
        Ok(finish(changed, warnings, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(path: &str, state: Option<&str>) -> FileArgs {
        FileArgs {
            path: path.into(),
            state: state.map(str::to_string),
        }
    }
    const MISSING: Probe = Probe {
        exists: false,
        is_dir: false,
    };
    const FILE: Probe = Probe {
        exists: true,
        is_dir: false,
    };
    const DIR: Probe = Probe {
        exists: true,
        is_dir: true,
    };

    fn op(p: &Probe, path: &str, state: Option<&str>) -> Option<Op> {
        plan(p, &args(path, state)).unwrap().op
    }

    #[test]
    fn states() {
        assert_eq!(op(&MISSING, "C:\\d", Some("directory")), Some(Op::Mkdir));
        assert_eq!(op(&DIR, "C:\\d", Some("directory")), None);
        assert_eq!(op(&FILE, "C:\\f", Some("file")), None);
        assert_eq!(op(&FILE, "C:\\f", Some("absent")), Some(Op::Remove));
        assert_eq!(op(&DIR, "C:\\d", Some("absent")), Some(Op::Remove));
        assert_eq!(op(&MISSING, "C:\\f", Some("absent")), None);
        assert_eq!(op(&MISSING, "C:\\f", Some("touch")), Some(Op::Create));
        assert_eq!(op(&FILE, "C:\\f", Some("touch")), Some(Op::Touch));
        assert_eq!(op(&FILE, "C:\\f", None), None);
        assert_eq!(op(&MISSING, "C:\\d\\", None), Some(Op::Mkdir));
    }

    #[test]
    fn refusals_like_ansible() {
        let e = plan(&MISSING, &args("C:\\f.txt", Some("file"))).unwrap_err();
        assert_eq!(e, "path C:\\f.txt will not be created");
        let e = plan(&FILE, &args("C:\\f", Some("directory"))).unwrap_err();
        assert_eq!(e, "path C:\\f is not a directory");
        let e = plan(&DIR, &args("C:\\d", Some("file"))).unwrap_err();
        assert_eq!(e, "path C:\\d is not a file");
        assert!(plan(&MISSING, &args("C:\\f", None)).is_err());
    }

    #[test]
    fn odd_paths_travel_as_data() {
        let odd = "C:\\it's \"q\" $env:X `t` \u{e9}\u{540d}\nx";
        let a = args(odd, Some("directory"));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["path"], odd);
        assert_eq!(plan(&MISSING, &a).unwrap().op, Some(Op::Mkdir));
        let e = plan(&FILE, &a).unwrap_err();
        assert!(e.contains(odd));
        let p = serde_json::to_value(Plan {
            op: Some(Op::Mkdir),
        })
        .unwrap();
        assert_eq!(p, json!({"op": "mkdir"}));
    }
}
