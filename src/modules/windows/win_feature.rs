//! `win_feature`: Windows Server roles and features (Install/Uninstall-WindowsFeature).
//!
//! Unlike ansible.windows.win_feature (ansible.windows#287), `reboot_required` is never claimed
//! for a feature that is installed and complete: it is true when this task's change needs a
//! restart, or when a requested feature is still waiting for one (InstallPending/UninstallPending
//! — its change is not done until the host restarts).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{WINDOWS, finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, p,
    req,
};

pub static SCRIPT: super::Script = script!("win_feature");

static DEF: ModuleDef = ModuleDef {
    name: "win_feature",
    namespaces: WINDOWS,
    params: &[
        req("name", List),
        choice("state", &["present", "absent"]),
        alias(p("include_sub_features", Bool), &["include_sub_feature"]),
        p("include_management_tools", Bool),
        p("source", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureArgs {
    #[serde(deserialize_with = "list")]
    pub name: Vec<String>,
    #[serde(default = "present")]
    pub state: String,
    #[serde(default)]
    pub include_sub_features: bool,
    #[serde(default)]
    pub include_management_tools: bool,
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
}

#[derive(Debug, Clone, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(default)]
    pub found: bool,
    #[serde(default)]
    pub install_state: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub install: Vec<String>,
    pub uninstall: Vec<String>,
    pub include_sub_features: bool,
    pub include_management_tools: bool,
    pub source: Option<String>,
    /// A requested feature is still waiting for a restart to finish.
    #[serde(skip)]
    pub pending: bool,
}

impl Plan {
    fn changes(&self) -> bool {
        !self.install.is_empty() || !self.uninstall.is_empty()
    }
}

/// What to install or remove, from the probed states.
pub fn plan(probe: &Probe, args: &FeatureArgs) -> Result<Plan, String> {
    // A feature is found when the probe says so or reports a state; a requested name with no
    // entry at all matched nothing (Get-WindowsFeature writes no error for it).
    let known = |f: &Feature| f.found || !f.install_state.is_empty();
    let mut missing: Vec<&str> = probe
        .features
        .iter()
        .filter(|f| !known(f))
        .map(|f| f.name.as_str())
        .collect();
    for n in &args.name {
        if !probe
            .features
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(n))
            && !missing.iter().any(|m| m.eq_ignore_ascii_case(n))
        {
            missing.push(n);
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "no such Windows feature: {} (Get-WindowsFeature lists the names this host knows)",
            missing.join(", ")
        ));
    }
    let mut plan = Plan {
        install: Vec::new(),
        uninstall: Vec::new(),
        include_sub_features: args.include_sub_features,
        include_management_tools: args.include_management_tools,
        source: args.source.clone(),
        pending: false,
    };
    for f in &probe.features {
        let state = f.install_state.as_str();
        match args.state.as_str() {
            "absent" => match state {
                "Installed" | "InstallPending" => plan.uninstall.push(f.name.clone()),
                "UninstallPending" => plan.pending = true,
                _ => {}
            },
            _ => match state {
                "Installed" => {}
                "InstallPending" => plan.pending = true,
                _ => plan.install.push(f.name.clone()),
            },
        }
    }
    Ok(plan)
}

#[derive(Debug, Deserialize)]
struct Applied {
    #[serde(default, deserialize_with = "list")]
    feature_result: Vec<serde_json::Value>,
    #[serde(default)]
    exitcode: String,
    #[serde(default)]
    reboot_required: bool,
    #[serde(default)]
    success: bool,
}

pub(super) struct WinFeature;

#[async_trait]
impl Module for WinFeature {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: FeatureArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &args).await?;
        let plan = plan(&probe, &args).map_err(ModError::msg)?;
        if !plan.changes() || ctx.check_mode {
            let changed = plan.changes();
            return Ok(finish(
                changed,
                warnings,
                json!({
                    "exitcode": if changed { "Success" } else { "NoChangeNeeded" },
                    "feature_result": [],
                    "reboot_required": plan.pending,
                    "success": true,
                }),
            ));
        }
        let (applied, w) = SCRIPT.apply::<Applied>(ctx, &args, &plan).await?;
        warnings.extend(w);
        let result = finish(
            true,
            warnings,
            json!({
                "exitcode": applied.exitcode,
                "feature_result": applied.feature_result,
                "reboot_required": applied.reboot_required || plan.pending,
                "success": applied.success,
            }),
        );
        if !applied.success {
            return Err(ModError::Failed {
                msg: format!(
                    "{} of {} failed (exit code {})",
                    if plan.install.is_empty() {
                        "uninstalling"
                    } else {
                        "installing"
                    },
                    plan.install
                        .iter()
                        .chain(&plan.uninstall)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    applied.exitcode
                ),
                result,
            });
        }
        Ok(result)
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
                    install_state: s.to_string(),
                })
                .collect(),
        }
    }

    fn args(names: &[&str], state: &str) -> FeatureArgs {
        FeatureArgs {
            name: names.iter().map(|s| s.to_string()).collect(),
            state: state.into(),
            include_sub_features: false,
            include_management_tools: true,
            source: None,
        }
    }

    #[test]
    fn installs_only_what_is_missing() {
        let p = plan(
            &probe(&[("Containers", "Available"), ("Hyper-V", "Installed")]),
            &args(&["Containers", "Hyper-V"], "present"),
        )
        .unwrap();
        assert_eq!(p.install, vec!["Containers".to_string()]);
        assert!(p.uninstall.is_empty() && !p.pending);
        assert!(p.include_management_tools);
    }

    #[test]
    fn pending_is_no_change_but_still_needs_the_restart() {
        let p = plan(
            &probe(&[("Containers", "InstallPending")]),
            &args(&["Containers"], "present"),
        )
        .unwrap();
        assert!(!p.changes());
        assert!(p.pending);
        let p = plan(
            &probe(&[("Containers", "Installed")]),
            &args(&["Containers"], "present"),
        )
        .unwrap();
        assert!(
            !p.changes() && !p.pending,
            "installed and complete: no reboot claimed"
        );
    }

    #[test]
    fn absent_and_unknown() {
        let p = plan(
            &probe(&[("Containers", "Installed"), ("Web-Server", "Available")]),
            &args(&["Containers", "Web-Server"], "absent"),
        )
        .unwrap();
        assert_eq!(p.uninstall, vec!["Containers".to_string()]);
        assert!(p.install.is_empty());
        let e = plan(
            &probe(&[("Contianers", "")]),
            &args(&["Contianers"], "present"),
        )
        .unwrap_err();
        assert!(e.contains("no such Windows feature: Contianers"), "{e}");
    }

    #[test]
    fn names_that_match_nothing_may_be_left_out_of_the_probe() {
        let p: Probe = serde_json::from_str(
            r#"{"features": [{"name": "Containers", "install_state": "Available"}]}"#,
        )
        .unwrap();
        let e = plan(&p, &args(&["Containers", "NoSuch"], "present")).unwrap_err();
        assert!(e.contains("no such Windows feature: NoSuch"), "{e}");
        let ok = plan(&p, &args(&["containers"], "present")).unwrap();
        assert_eq!(ok.install, vec!["Containers".to_string()]);
    }

    #[test]
    fn powershell_51_single_element_lists() {
        let p: Probe = serde_json::from_str(
            r#"{"features": {"name": "Containers", "found": true, "install_state": "Available"}}"#,
        )
        .unwrap();
        assert_eq!(p.features.len(), 1);
    }
}
