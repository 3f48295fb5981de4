//! Windows modules: each is `<name>.rs` (typed arguments, and the decisions as a pure
//! `plan(probe, args)` function) plus a static `<name>.ps1` that probes and applies, run in the
//! host's one PowerShell process (docs/windows-protocol.md). Arguments travel as JSON beside the
//! script, never spliced into its text.

mod command;
mod setup;
mod win_copy;
mod win_defender_exclusion;
mod win_environment;
mod win_eventlog_info;
mod win_feature;
mod win_file;
mod win_firewall_rule;
mod win_get_url;
mod win_group;
mod win_hns_network;
mod win_optional_feature;
mod win_path;
mod win_ping;
mod win_powershell;
mod win_reboot;
mod win_regedit;
mod win_scheduled_task;
mod win_scheduled_task_stat;
mod win_service;
mod win_stat;
mod win_unarchive;
mod win_user;
mod win_wait_for;
pub mod winpath;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Args, ModError, Module, ModuleCtx, Outcome};
use crate::powershell::{self, Request};

pub static MODULES: &[&dyn Module] = &[
    &command::WinCommand,
    &command::WinShell,
    &win_copy::WinCopy,
    &win_copy::WinTemplate,
    &win_environment::WinEnvironment,
    &win_feature::WinFeature,
    &win_file::WinFile,
    &win_get_url::WinGetUrl,
    &win_group::WinGroup,
    &win_path::WinPath,
    &win_defender_exclusion::WinDefenderExclusion,
    &win_firewall_rule::WinFirewallRule,
    &win_optional_feature::WinOptionalFeature,
    &win_ping::WinPing,
    &win_powershell::WinPowershell,
    &win_reboot::WinReboot,
    &win_regedit::WinRegedit,
    &win_service::WinService,
    &win_stat::WinStat,
    &win_eventlog_info::WinEventlogInfo,
    &win_hns_network::WinHnsNetwork,
    &win_scheduled_task::WinScheduledTask,
    &win_scheduled_task_stat::WinScheduledTaskStat,
    &win_unarchive::WinUnarchive,
    &win_user::WinUser,
    &win_wait_for::WinWaitFor,
];

/// A module's static script, built in.
pub struct Script {
    /// The module name (requests carry it; the simulator dispatches on it).
    pub module: &'static str,
    pub text: &'static str,
}

macro_rules! script {
    ($module:literal) => {
        $crate::modules::windows::Script {
            module: $module,
            text: include_str!(concat!($module, ".ps1")),
        }
    };
}
pub(crate) use script;

/// Every module script, for the grammar test and the docs.
const SCRIPTS: &[&Script] = &[
    &setup::SCRIPT,
    &win_copy::SCRIPT,
    &win_environment::SCRIPT,
    &win_feature::SCRIPT,
    &win_file::SCRIPT,
    &win_get_url::SCRIPT,
    &win_group::SCRIPT,
    &win_path::SCRIPT,
    &win_defender_exclusion::SCRIPT,
    &win_firewall_rule::SCRIPT,
    &win_optional_feature::SCRIPT,
    &win_ping::SCRIPT,
    &win_powershell::SCRIPT,
    &win_reboot::SCRIPT,
    &win_regedit::SCRIPT,
    &win_service::SCRIPT,
    &win_stat::SCRIPT,
    &win_eventlog_info::SCRIPT,
    &win_hns_network::SCRIPT,
    &win_scheduled_task::SCRIPT,
    &win_scheduled_task_stat::SCRIPT,
    &win_unarchive::SCRIPT,
    &win_user::SCRIPT,
    &win_wait_for::SCRIPT,
];

impl Script {
    /// Phase `probe`: the current state, as `P`. Changes nothing.
    pub async fn probe<P: DeserializeOwned>(
        &self,
        ctx: &ModuleCtx<'_>,
        args: &impl Serialize,
    ) -> Result<(P, Vec<String>), ModError> {
        self.request(ctx, "probe", args, None::<&()>, Map::new())
            .await
    }

    /// `probe` with secrets beside the arguments (`Request::secrets`).
    pub async fn probe_secret<P: DeserializeOwned>(
        &self,
        ctx: &ModuleCtx<'_>,
        args: &impl Serialize,
        secrets: Map<String, Value>,
    ) -> Result<(P, Vec<String>), ModError> {
        self.request(ctx, "probe", args, None::<&()>, secrets).await
    }

    /// `apply` with secrets beside the arguments (`Request::secrets`).
    pub async fn apply_secret<R: DeserializeOwned>(
        &self,
        ctx: &ModuleCtx<'_>,
        args: &impl Serialize,
        plan: &impl Serialize,
        secrets: Map<String, Value>,
    ) -> Result<(R, Vec<String>), ModError> {
        self.request(ctx, "apply", args, Some(plan), secrets).await
    }

    /// Phase `apply`: carry out `plan`; returns what happened, as `R`.
    pub async fn apply<R: DeserializeOwned>(
        &self,
        ctx: &ModuleCtx<'_>,
        args: &impl Serialize,
        plan: &impl Serialize,
    ) -> Result<(R, Vec<String>), ModError> {
        self.request(ctx, "apply", args, Some(plan), Map::new())
            .await
    }

    /// Phase `run`: single-step scripts (facts, ping).
    pub async fn run<R: DeserializeOwned>(
        &self,
        ctx: &ModuleCtx<'_>,
        args: &impl Serialize,
    ) -> Result<(R, Vec<String>), ModError> {
        self.request(ctx, "run", args, None::<&()>, Map::new())
            .await
    }

    async fn request<R: DeserializeOwned>(
        &self,
        ctx: &ModuleCtx<'_>,
        phase: &str,
        args: &impl Serialize,
        plan: Option<&impl Serialize>,
        secrets: Map<String, Value>,
    ) -> Result<(R, Vec<String>), ModError> {
        let (value, warnings) =
            call_with_secrets(ctx, self.module, self.text, phase, args, plan, secrets).await?;
        let parsed = serde_json::from_value(value.clone()).map_err(|e| {
            ModError::msg(format!(
                "{}: the {phase} step answered something unexpected ({e}): {}",
                self.module,
                crate::value::to_text(&value)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))
        })?;
        Ok((parsed, warnings))
    }
}

/// `setup` on a Windows host.
pub async fn gather_facts(ctx: &ModuleCtx<'_>, args: &Args) -> super::ModResult {
    setup::gather(ctx, args).await
}

/// Typed arguments from the (already validated and normalized) argument map.
pub fn typed_args<A: DeserializeOwned>(module: &str, args: &Args) -> Result<A, ModError> {
    serde_json::from_value(Value::Object(args.clone()))
        .map_err(|e| ModError::msg(format!("{module}: {e}")))
}

/// A result with `changed` and the warnings gathered on the way.
pub fn finish(changed: bool, warnings: Vec<String>, fields: Value) -> Outcome {
    let mut r = super::outcome(changed);
    if let Value::Object(m) = fields {
        r.extend(m);
    }
    if !warnings.is_empty() {
        r.insert("warnings".into(), warnings.into());
    }
    r
}

/// PowerShell 5.1's ConvertTo-Json writes a one-element collection as the element itself in
/// some places and an empty one as `null`: accept both shapes for list fields.
pub fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::Deserialize;
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
            .collect(),
        other => Ok(vec![
            serde_json::from_value(other).map_err(serde::de::Error::custom)?,
        ]),
    }
}

/// An optional list argument: `null` (or absent) is "keep what there is", anything else a list
/// as `list` reads it.
pub fn opt_list<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::Deserialize;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => list(v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// The FQCN namespaces Windows modules answer to.
pub const WINDOWS: &[&str] = &["ansible.windows", "ansible.builtin"];

/// Every module script shipped, as (name, text).
pub fn scripts() -> Vec<(&'static str, &'static str)> {
    SCRIPTS.iter().map(|s| (s.module, s.text)).collect()
}

/// PowerShell that modules build at run time (with sample arguments), for the grammar test.
pub fn generated_scripts() -> Vec<(&'static str, String)> {
    win_reboot::generated_scripts()
}

/// One request to the host's PowerShell process: `phase` of `module`'s `script` with `args`
/// (and `plan` for apply). A terminating error in the script fails the task with what
/// PowerShell said and where; warnings from the host process are returned beside the result.
pub async fn call(
    ctx: &ModuleCtx<'_>,
    module: &str,
    script: &str,
    phase: &str,
    args: &impl Serialize,
    plan: Option<&impl Serialize>,
) -> Result<(Value, Vec<String>), ModError> {
    call_with_secrets(ctx, module, script, phase, args, plan, Map::new()).await
}

/// `call` with `secrets` beside the arguments (`Request::secrets`).
pub async fn call_with_secrets(
    ctx: &ModuleCtx<'_>,
    module: &str,
    script: &str,
    phase: &str,
    args: &impl Serialize,
    plan: Option<&impl Serialize>,
    secrets: Map<String, Value>,
) -> Result<(Value, Vec<String>), ModError> {
    let to_json = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
    let req = Request {
        id: 0,
        module: module.to_string(),
        phase: phase.to_string(),
        script: script.to_string(),
        script_sha256: powershell::sha256_hex(script),
        args: to_json(serde_json::to_value(args)),
        plan: plan.map(|p| to_json(serde_json::to_value(p))),
        check_mode: ctx.check_mode,
        env: ctx
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
        secrets,
    };
    let conn = ctx.connection().await?;
    let answer = conn.powershell(req, ctx.timeout).await?;
    if !answer.reply.ok {
        let mut result = Map::new();
        if let Some(e) = &answer.reply.exception {
            result.insert("exception".into(), e.clone().into());
        }
        if let Some(l) = answer.reply.line.filter(|l| *l > 0) {
            result.insert("script_line_number".into(), l.into());
        }
        if let Some(l) = &answer.reply.script_line {
            result.insert("script_line".into(), l.clone().into());
        }
        if let Some(id) = &answer.reply.error_id {
            result.insert("error_id".into(), id.clone().into());
        }
        let mut warnings = answer.warnings;
        warnings.extend(answer.reply.warnings.iter().cloned());
        if !warnings.is_empty() {
            result.insert("warnings".into(), warnings.into());
        }
        return Err(ModError::Failed {
            msg: answer.reply.error_text(module),
            result,
        });
    }
    let mut warnings = answer.warnings;
    warnings.extend(answer.reply.warnings);
    Ok((answer.reply.result, warnings))
}
