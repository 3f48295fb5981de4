//! `win_wait_for` (ansible.windows): wait for a port to open, close or drain, or for a file to
//! appear, disappear or hold a pattern. The loop is `modules::wait`, shared with `wait_for`; the
//! probe is one PowerShell request per look.

use async_trait::async_trait;
use serde::Serialize;

use super::{WINDOWS, script};
use crate::modules::ParamType::*;
use crate::modules::wait::{self, Family, Observation, Wait};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, p,
};

pub static SCRIPT: super::Script = script!("win_wait_for");

static DEF: ModuleDef = ModuleDef {
    name: "win_wait_for",
    namespaces: WINDOWS,
    params: &[
        p("host", Str),
        p("port", Int),
        p("path", Str),
        choice(
            "state",
            &["started", "stopped", "present", "absent", "drained"],
        ),
        p("timeout", Int),
        p("delay", Int),
        p("sleep", Int),
        p("connect_timeout", Int),
        alias(p("search_regex", Str), &["regex", "regexp"]),
        p("exclude_hosts", List),
        p("msg", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[&["port", "path"]],
    required_one_of: &[],
};

/// What the probe needs for one look.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeArgs {
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_regex: Option<String>,
    pub state: &'static str,
    pub connect_timeout: u64,
}

impl ProbeArgs {
    pub fn of(w: &Wait) -> ProbeArgs {
        ProbeArgs {
            host: w.host.clone(),
            port: w.port,
            path: w.path.clone(),
            search_regex: w.search_regex.clone(),
            state: w.state.as_str(),
            connect_timeout: w.connect_timeout,
        }
    }
}

pub(super) struct WinWaitFor;

#[async_trait]
impl Module for WinWaitFor {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let w = Wait::from_args(&args).map_err(ModError::msg)?;
        let query = ProbeArgs::of(&w);
        wait::run(&w, Family::Windows, || async {
            let (o, _) = SCRIPT.probe::<Observation>(ctx, &query).await?;
            Ok(o)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probe_arguments_carry_odd_values_exactly() {
        let odd = "C:\\it's \"q\" $x `b` \u{e9}\u{540d}\n.txt";
        let w = Wait::from_args(
            json!({"path": odd, "search_regex": "^ready \\$\\d+"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let v = serde_json::to_value(ProbeArgs::of(&w)).unwrap();
        assert_eq!(v["path"], odd);
        assert_eq!(v["search_regex"], "^ready \\$\\d+");
        assert_eq!(v["state"], "started");
        assert!(v.get("port").is_none());
    }

    #[test]
    fn observations_from_powershell_51() {
        let o: Observation =
            serde_json::from_str(r#"{"exists": true, "connections": "10.0.0.5"}"#).unwrap();
        assert_eq!(o.connections, vec!["10.0.0.5".to_string()]);
        let o: Observation = serde_json::from_str(r#"{"exists": false}"#).unwrap();
        assert!(!o.exists && o.matched.is_none());
    }
}
