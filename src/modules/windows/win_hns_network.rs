//! `win_hns_network` (mixop's own): removes a Host Networking Service network by name
//! (`Get-HnsNetwork | Remove-HnsNetwork`, the HostNetworkingService module that comes with the
//! Containers feature) — what a CNI left behind (flannel's `flannel.4096` / `vxlan0`, Calico's
//! `Calico` and `External`). Only `state: absent`. `changed` only when a network was removed; a
//! host without the HNS module (no Containers feature) has no networks and reports no change.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, choice, req,
};

pub static SCRIPT: super::Script = script!("win_hns_network");

static DEF: ModuleDef = ModuleDef {
    name: "win_hns_network",
    namespaces: &["mixop.windows"],
    params: &[req("name", Str), choice("state", &["absent"])],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HnsArgs {
    pub name: String,
    #[serde(default = "absent")]
    pub state: String,
}

fn absent() -> String {
    "absent".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Probe {
    #[serde(default)]
    pub available: bool,
    #[serde(default, deserialize_with = "list")]
    pub networks: Vec<Network>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    /// HNS network ids to remove.
    pub remove: Vec<String>,
}

/// Which networks go: every one the probe found with the name (HNS allows several networks of
/// one name; PowerShell's `-eq` compares names case-insensitively, so does this).
pub fn plan(probe: &Probe, args: &HnsArgs) -> Result<Plan, String> {
    if args.state != "absent" {
        return Err(format!(
            "state {:?} is not supported: win_hns_network only removes networks (state: absent)",
            args.state
        ));
    }
    if args.name.trim().is_empty() {
        return Err("name must not be empty".into());
    }
    let mut remove: Vec<String> = Vec::new();
    for n in &probe.networks {
        if n.name.eq_ignore_ascii_case(&args.name)
            && !remove.iter().any(|r| r.eq_ignore_ascii_case(&n.id))
        {
            remove.push(n.id.clone());
        }
    }
    Ok(Plan { remove })
}

#[derive(Debug, Deserialize)]
struct Applied {
    #[serde(default, deserialize_with = "list")]
    removed: Vec<String>,
}

pub(super) struct WinHnsNetwork;

#[async_trait]
impl Module for WinHnsNetwork {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: HnsArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &args).await?;
        let plan = plan(&probe, &args).map_err(ModError::msg)?;
        if plan.remove.is_empty() || ctx.check_mode {
            return Ok(finish(
                !plan.remove.is_empty(),
                warnings,
                json!({ "name": args.name, "removed": plan.remove, "hns_available": probe.available }),
            ));
        }
        let (applied, w) = SCRIPT.apply::<Applied>(ctx, &args, &plan).await?;
        warnings.extend(w);
        Ok(finish(
            !applied.removed.is_empty(),
            warnings,
            json!({ "name": args.name, "removed": applied.removed, "hns_available": probe.available }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str, name: &str) -> Network {
        Network {
            id: id.into(),
            name: name.into(),
            kind: "Overlay".into(),
        }
    }

    fn args(name: &str) -> HnsArgs {
        HnsArgs {
            name: name.into(),
            state: "absent".into(),
        }
    }

    #[test]
    fn removes_every_network_of_the_name() {
        let probe = Probe {
            available: true,
            networks: vec![
                net("A", "flannel.4096"),
                net("B", "Flannel.4096"),
                net("C", "vxlan0"),
            ],
        };
        let p = plan(&probe, &args("flannel.4096")).unwrap();
        assert_eq!(p.remove, vec!["A".to_string(), "B".to_string()]);
    }

    #[test]
    fn nothing_to_do() {
        let none = Probe::default();
        assert!(plan(&none, &args("Calico")).unwrap().remove.is_empty());
        let other = Probe {
            available: true,
            networks: vec![net("C", "vxlan0")],
        };
        assert!(plan(&other, &args("Calico")).unwrap().remove.is_empty());
    }

    #[test]
    fn only_absent() {
        let mut a = args("x");
        a.state = "present".into();
        assert!(
            plan(&Probe::default(), &a)
                .unwrap_err()
                .contains("only removes")
        );
        assert!(plan(&Probe::default(), &args(" ")).is_err());
    }

    #[test]
    fn powershell_51_shapes() {
        let p: Probe = serde_json::from_str(
            r#"{"available": true, "networks": {"id": "A", "name": "vxlan0", "type": "Overlay"}}"#,
        )
        .unwrap();
        assert_eq!(
            p.networks,
            vec![Network {
                id: "A".into(),
                name: "vxlan0".into(),
                kind: "Overlay".into()
            }]
        );
    }
}
