//! `win_group` (ansible.windows): a local group, present with a description or absent. The
//! script uses the LocalAccounts cmdlets (`Get-LocalGroup`, `New-LocalGroup`, `Set-LocalGroup`,
//! `Remove-LocalGroup`) where Ansible uses ADSI; the result is the same. Built-in groups
//! (Administrators, Users …) cannot be removed: Windows refuses, and the task fails with its
//! message.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{WINDOWS, finish, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModResult, Module, ModuleCtx, ModuleDef, Target, choice, p, req,
};

pub static SCRIPT: super::Script = script!("win_group");

static DEF: ModuleDef = ModuleDef {
    name: "win_group",
    namespaces: WINDOWS,
    params: &[
        req("name", Str),
        p("description", Str),
        choice("state", &["present", "absent"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Deserialize)]
pub struct GroupArgs {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Probe {
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Plan {
    /// `create` | `set_description` | `remove` (empty: nothing to do).
    pub action: String,
    pub description: Option<String>,
}

pub fn plan(probe: &Probe, args: &GroupArgs) -> Plan {
    let absent = args.state.as_deref() == Some("absent");
    let action = match (absent, probe.exists) {
        (true, true) => "remove",
        (false, false) => "create",
        (false, true)
            if args
                .description
                .as_ref()
                .is_some_and(|d| *d != probe.description) =>
        {
            "set_description"
        }
        _ => "",
    };
    Plan {
        action: action.into(),
        description: args.description.clone(),
    }
}

#[derive(Serialize)]
struct ProbeArgs<'a> {
    name: &'a str,
}

pub(super) struct WinGroup;

#[async_trait]
impl Module for WinGroup {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: GroupArgs = typed_args(DEF.name, &args)?;
        let query = ProbeArgs { name: &args.name };
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &query).await?;
        let plan = plan(&probe, &args);
        let changed = !plan.action.is_empty();
        if changed && !ctx.check_mode {
            let (_, w) = SCRIPT.apply::<Value>(ctx, &query, &plan).await?;
            warnings.extend(w);
        }
        let mut fields = json!({});
        if ctx.diff {
            let side = |exists: bool, d: &str| {
                if exists {
                    json!({ "name": args.name, "description": d })
                } else {
                    json!({})
                }
            };
            let after_desc = args.description.as_deref().unwrap_or(&probe.description);
            fields["diff"] = json!({
                "before": side(probe.exists, &probe.description),
                "after": side(args.state.as_deref() != Some("absent"), after_desc),
            });
        }
        Ok(finish(changed, warnings, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(state: Option<&str>, description: Option<&str>) -> GroupArgs {
        GroupArgs {
            name: "lab".into(),
            description: description.map(str::to_string),
            state: state.map(str::to_string),
        }
    }

    fn probe(exists: bool, d: &str) -> Probe {
        Probe {
            exists,
            description: d.into(),
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(
            plan(&probe(false, ""), &args(None, Some("d"))).action,
            "create"
        );
        assert_eq!(plan(&probe(true, "d"), &args(None, Some("d"))).action, "");
        // Without a description the existing one stays.
        assert_eq!(plan(&probe(true, "d"), &args(None, None)).action, "");
        assert_eq!(
            plan(&probe(true, "d"), &args(None, Some("D"))).action,
            "set_description"
        );
        assert_eq!(
            plan(&probe(true, ""), &args(Some("absent"), None)).action,
            "remove"
        );
        assert_eq!(
            plan(&probe(false, ""), &args(Some("absent"), None)).action,
            ""
        );
    }
}
