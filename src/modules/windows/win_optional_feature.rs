//! `win_optional_feature`: DISM optional features (ansible.windows.win_optional_feature:
//! `name`, `state`, `include_parent`, `source`; returns `reboot_required`).
//!
//! `reboot_required` is true when this task's change needs a restart (DISM's `RestartNeeded`),
//! or when a requested feature is still waiting for one (`EnablePending`/`DisablePending`: its
//! change is not done until the host restarts) — never for a feature that is complete, so a
//! second run after the reboot reports false. ansible.windows reports false for a pending
//! feature, so a play that re-runs before rebooting would never reboot.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{WINDOWS, finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, choice, p, req,
};

pub static SCRIPT: super::Script = script!("win_optional_feature");

static DEF: ModuleDef = ModuleDef {
    name: "win_optional_feature",
    namespaces: WINDOWS,
    params: &[
        req("name", List),
        choice("state", &["present", "absent"]),
        p("include_parent", Bool),
        p("source", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptionalArgs {
    #[serde(deserialize_with = "list")]
    pub name: Vec<String>,
    #[serde(default = "present")]
    pub state: String,
    #[serde(default)]
    pub include_parent: bool,
    #[serde(default)]
    pub source: Option<String>,
}

fn present() -> String {
    "present".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    #[serde(deserialize_with = "list")]
    pub features: Vec<Feature>,
    /// `Test-Path -LiteralPath $source` (null without a source).
    #[serde(default)]
    pub source_exists: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(default)]
    pub found: bool,
    /// DISM's FeatureState: Enabled, Disabled, EnablePending, DisablePending,
    /// DisabledWithPayloadRemoved, ...
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Plan {
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    pub all: bool,
    pub source: Option<String>,
    /// A requested feature's change still waits for a restart.
    #[serde(skip)]
    pub pending: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        !self.enable.is_empty() || !self.disable.is_empty()
    }
}

pub fn plan(probe: &Probe, args: &OptionalArgs) -> Result<Plan, String> {
    let missing: Vec<&str> = probe
        .features
        .iter()
        .filter(|f| !f.found)
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "Failed to find feature '{}' (Get-WindowsOptionalFeature -Online lists the names this host knows)",
            missing.join("', '")
        ));
    }
    let mut plan = Plan {
        all: args.include_parent,
        ..Plan::default()
    };
    for f in &probe.features {
        let s = f.state.as_str();
        if args.state == "absent" {
            match s {
                "DisablePending" => plan.pending.push(f.name.clone()),
                _ if s.starts_with("Disabled") => {}
                _ => plan.disable.push(f.name.clone()),
            }
        } else {
            match s {
                "Enabled" => {}
                "EnablePending" => plan.pending.push(f.name.clone()),
                _ => plan.enable.push(f.name.clone()),
            }
        }
    }
    if !plan.enable.is_empty()
        && let Some(src) = &args.source
    {
        if probe.source_exists == Some(false) {
            return Err(format!("Path could not be found '{src}'"));
        }
        plan.source = Some(src.clone());
    }
    Ok(plan)
}

#[derive(Debug, Deserialize)]
struct Applied {
    #[serde(default)]
    reboot_required: bool,
}

pub(super) struct WinOptionalFeature;

#[async_trait]
impl Module for WinOptionalFeature {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: OptionalArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &args).await?;
        let plan = plan(&probe, &args).map_err(ModError::msg)?;
        let fields = |reboot: bool| {
            json!({
                "reboot_required": reboot,
                "enabled": plan.enable,
                "disabled": plan.disable,
            })
        };
        if !plan.changes() || ctx.check_mode {
            return Ok(finish(
                plan.changes(),
                warnings,
                fields(!plan.pending.is_empty()),
            ));
        }
        let (applied, w) = SCRIPT.apply::<Applied>(ctx, &args, &plan).await?;
        warnings.extend(w);
        Ok(finish(
            true,
            warnings,
            fields(applied.reboot_required || !plan.pending.is_empty()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(states: &[(&str, &str)]) -> Probe {
        Probe {
            features: states
                .iter()
                .map(|(n, s)| Feature {
                    name: n.to_string(),
                    found: !s.is_empty(),
                    state: s.to_string(),
                })
                .collect(),
            source_exists: None,
        }
    }

    fn args(names: &[&str], state: &str) -> OptionalArgs {
        OptionalArgs {
            name: names.iter().map(|s| s.to_string()).collect(),
            state: state.into(),
            include_parent: false,
            source: None,
        }
    }

    #[test]
    fn enables_what_is_not_enabled() {
        let p = plan(
            &probe(&[
                ("Containers", "Disabled"),
                ("NetFx4", "Enabled"),
                ("NetFx3", "DisabledWithPayloadRemoved"),
            ]),
            &args(&["Containers", "NetFx4", "NetFx3"], "present"),
        )
        .unwrap();
        assert_eq!(p.enable, vec!["Containers", "NetFx3"]);
        assert!(p.disable.is_empty() && p.pending.is_empty());
    }

    #[test]
    fn pending_is_no_change_but_needs_the_restart() {
        let p = plan(
            &probe(&[("Containers", "EnablePending")]),
            &args(&["Containers"], "present"),
        )
        .unwrap();
        assert!(!p.changes());
        assert_eq!(p.pending, vec!["Containers"]);
        let p = plan(
            &probe(&[("Containers", "Enabled")]),
            &args(&["Containers"], "present"),
        )
        .unwrap();
        assert!(!p.changes() && p.pending.is_empty());
    }

    #[test]
    fn absent_unknown_and_source() {
        let p = plan(
            &probe(&[
                ("Containers", "Enabled"),
                ("TelnetClient", "Disabled"),
                ("SMB1Protocol", "DisablePending"),
            ]),
            &args(&["Containers", "TelnetClient", "SMB1Protocol"], "absent"),
        )
        .unwrap();
        assert_eq!(p.disable, vec!["Containers"]);
        assert_eq!(p.pending, vec!["SMB1Protocol"]);
        let e = plan(
            &probe(&[("Contianers", "")]),
            &args(&["Contianers"], "present"),
        )
        .unwrap_err();
        assert!(e.starts_with("Failed to find feature 'Contianers'"), "{e}");
        let mut pr = probe(&[("NetFx3", "DisabledWithPayloadRemoved")]);
        pr.source_exists = Some(false);
        let mut a = args(&["NetFx3"], "present");
        a.source = Some("D:\\sources\\sxs 'x'".into());
        assert_eq!(
            plan(&pr, &a).unwrap_err(),
            "Path could not be found 'D:\\sources\\sxs 'x''"
        );
        pr.source_exists = Some(true);
        assert_eq!(
            plan(&pr, &a).unwrap().source.as_deref(),
            Some("D:\\sources\\sxs 'x'")
        );
    }
}
