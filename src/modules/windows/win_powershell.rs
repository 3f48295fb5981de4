//! `win_powershell` (ansible.windows): run a PowerShell script in a runspace of its own inside
//! the host's PowerShell process and return its streams as data — `output`, `error`, `warning`,
//! `verbose`, `debug`, `information`, `host_out`, `host_err`, `result` (`$Ansible.Result`) —
//! with `changed` from `$Ansible.Changed` (true unless the script sets it) and a failure when
//! the script sets `$Ansible.Failed` or stops with a terminating error. In check mode the script
//! runs only when it declares `[CmdletBinding(SupportsShouldProcess)]` (with `-WhatIf`);
//! otherwise the task reports `changed` and skips, as in Ansible.
//!
//! `sensitive_parameters` (`{name, value}` as a SecureString, `{name, username, password}` as a
//! PSCredential) travel in the request's secrets, never with the arguments.
//!
//! Differences from Ansible: no custom PSHost, so `host_out` is what the script wrote with
//! `Write-Host` (from its information records) followed by what it wrote to `[Console]::Out`
//! (their interleaving is lost), and host prompts fail as under `-NonInteractive`.
//!
//! What the tests exercise: PowerShell cannot run here, so the simulator's handler
//! (tests/support/winrm_peer/sim/modules/win_powershell.py) models a small set of statements
//! (Write-Output/-Warning/-Verbose/-Debug/-Information/-Host/-Error, throw, `$Ansible.*`
//! assignments, `param()` binding, literals); the argument document mixop sends, the secrets,
//! check mode and the result handling here are exercised through it. The script's runspace
//! code (win_powershell.ps1) is only parsed (tests/powershell_grammar.rs), and `executable`
//! (another PowerShell process, as Ansible starts it) is not exercised at all.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{WINDOWS, finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, choice, p, req,
};

pub static SCRIPT: super::Script = script!("win_powershell");

static DEF: ModuleDef = ModuleDef {
    name: "win_powershell",
    namespaces: WINDOWS,
    params: &[
        req("script", Str),
        p("parameters", Dict),
        p("arguments", List),
        p("executable", Str),
        choice("error_action", &["silently_continue", "continue", "stop"]),
        p("chdir", Str),
        p("depth", Int),
        p("sensitive_parameters", List),
        p("creates", Str),
        p("removes", Str),
    ],
    free_form: FreeForm::No,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Deserialize, Default)]
pub struct PsArgs {
    pub script: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "list")]
    pub arguments: Vec<String>,
    #[serde(default)]
    pub executable: Option<String>,
    #[serde(default)]
    pub error_action: Option<String>,
    #[serde(default)]
    pub chdir: Option<String>,
    #[serde(default)]
    pub depth: Option<u32>,
    #[serde(default, deserialize_with = "list")]
    pub sensitive_parameters: Vec<Map<String, Value>>,
    #[serde(default)]
    pub creates: Option<String>,
    #[serde(default)]
    pub removes: Option<String>,
}

/// What the script receives as `$Mixop.args` (the sensitive values are in the secrets).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScriptArgs {
    pub script: String,
    pub parameters: Map<String, Value>,
    pub arguments: Vec<String>,
    pub executable: Option<String>,
    /// `Stop` | `Continue` | `SilentlyContinue` (`$ErrorActionPreference`).
    pub error_action: String,
    pub chdir: Option<String>,
    pub depth: u32,
    pub creates: Option<String>,
    pub removes: Option<String>,
    pub diff: bool,
}

/// The arguments for the script and the secrets (`sensitive`: a list of `{name, value}` or
/// `{name, username, password}`), checked as Ansible checks `sensitive_parameters`.
pub fn prepare(a: &PsArgs, diff: bool) -> Result<(ScriptArgs, Map<String, Value>), String> {
    let mut sensitive = Vec::new();
    for s in &a.sensitive_parameters {
        let name = s
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("sensitive_parameters: every entry needs a name")?;
        let text = |k: &str| {
            s.get(k)
                .filter(|v| !v.is_null())
                .map(crate::value::arg_text)
        };
        let entry = match (text("value"), text("username"), text("password")) {
            (Some(v), None, None) => json!({ "name": name, "value": v }),
            (None, Some(u), Some(p)) => json!({ "name": name, "username": u, "password": p }),
            (None, Some(u), None) => json!({ "name": name, "username": u, "password": "" }),
            _ => {
                return Err(format!(
                    "sensitive_parameters: {name} needs either value, or username and password"
                ));
            }
        };
        sensitive.push(entry);
    }
    let mut secrets = Map::new();
    if !sensitive.is_empty() {
        secrets.insert("sensitive".into(), sensitive.into());
    }
    let error_action = match a.error_action.as_deref() {
        Some("stop") => "Stop",
        Some("silently_continue") => "SilentlyContinue",
        _ => "Continue",
    };
    Ok((
        ScriptArgs {
            script: a.script.clone(),
            parameters: a.parameters.clone().unwrap_or_default(),
            arguments: a.arguments.clone(),
            executable: a.executable.clone().filter(|e| !e.is_empty()),
            error_action: error_action.into(),
            chdir: a.chdir.clone(),
            depth: a.depth.unwrap_or(2),
            creates: a.creates.clone(),
            removes: a.removes.clone(),
            diff,
        },
        secrets,
    ))
}

/// What the script answered.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Answer {
    /// Set when the script did not run (`creates`/`removes`, check mode): the message.
    #[serde(default)]
    pub skipped: Option<String>,
    #[serde(default)]
    pub check_mode_skip: bool,
    #[serde(default, deserialize_with = "list")]
    pub output: Vec<Value>,
    #[serde(default, deserialize_with = "list")]
    pub error: Vec<Value>,
    #[serde(default, deserialize_with = "list")]
    pub warning: Vec<Value>,
    #[serde(default, deserialize_with = "list")]
    pub verbose: Vec<Value>,
    #[serde(default, deserialize_with = "list")]
    pub debug: Vec<Value>,
    #[serde(default, deserialize_with = "list")]
    pub information: Vec<Value>,
    #[serde(default)]
    pub host_out: String,
    #[serde(default)]
    pub host_err: String,
    #[serde(default)]
    pub result: Value,
    #[serde(default = "yes")]
    pub changed: bool,
    #[serde(default)]
    pub failed: bool,
    /// A terminating error stopped the script.
    #[serde(default)]
    pub terminated: bool,
    #[serde(default)]
    pub diff: Value,
}

fn yes() -> bool {
    true
}

/// The task's result from the answer: (changed, failure message, fields).
pub fn outcome(ans: &Answer) -> (bool, Option<String>, Map<String, Value>) {
    let mut m = Map::new();
    if let Some(msg) = &ans.skipped {
        m.insert("msg".into(), msg.clone().into());
        for k in [
            "output",
            "error",
            "warning",
            "verbose",
            "debug",
            "information",
        ] {
            m.insert(k.into(), json!([]));
        }
        m.insert("host_out".into(), "".into());
        m.insert("host_err".into(), "".into());
        m.insert("result".into(), json!({}));
        return (ans.check_mode_skip, None, m);
    }
    m.insert("output".into(), ans.output.clone().into());
    m.insert("error".into(), ans.error.clone().into());
    m.insert("warning".into(), ans.warning.clone().into());
    m.insert("verbose".into(), ans.verbose.clone().into());
    m.insert("debug".into(), ans.debug.clone().into());
    m.insert("information".into(), ans.information.clone().into());
    m.insert("host_out".into(), ans.host_out.clone().into());
    m.insert("host_err".into(), ans.host_err.clone().into());
    m.insert(
        "result".into(),
        if ans.result.is_null() {
            json!({})
        } else {
            ans.result.clone()
        },
    );
    let failure = if ans.terminated {
        let first = ans
            .error
            .last()
            .and_then(|e| e.pointer("/exception/message").or_else(|| e.get("output")))
            .map(crate::value::arg_text)
            .unwrap_or_else(|| "a terminating error".into());
        Some(format!("the script failed: {first}"))
    } else if ans.failed {
        Some("the script set $Ansible.Failed".into())
    } else {
        None
    };
    (ans.changed, failure, m)
}

pub(super) struct WinPowershell;

#[async_trait]
impl Module for WinPowershell {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: PsArgs = typed_args(DEF.name, &args)?;
        let (script_args, secrets) = prepare(&a, ctx.diff).map_err(ModError::msg)?;
        let (value, warnings) = super::call_with_secrets(
            ctx,
            DEF.name,
            SCRIPT.text,
            "run",
            &script_args,
            None::<&()>,
            secrets,
        )
        .await?;
        let ans: Answer = serde_json::from_value(value).map_err(|e| {
            ModError::msg(format!(
                "win_powershell: the script answered something unexpected ({e})"
            ))
        })?;
        let (changed, failure, mut fields) = outcome(&ans);
        if ctx.diff && !ans.diff.is_null() && ans.diff != json!({}) {
            fields.insert("diff".into(), ans.diff.clone());
        }
        match failure {
            Some(msg) => {
                fields.insert("changed".into(), changed.into());
                if !warnings.is_empty() {
                    fields.insert("warnings".into(), warnings.into());
                }
                Err(ModError::Failed {
                    msg,
                    result: fields,
                })
            }
            None => Ok(finish(changed, warnings, Value::Object(fields))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> PsArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn sensitive_parameters_go_to_the_secrets() {
        let a = args(json!({"script": "param($P, $C) $P", "parameters": {"X": 1},
            "sensitive_parameters": [{"name": "P", "value": "s3cret"},
                                     {"name": "C", "username": "u", "password": "pw"}]}));
        let (sa, secrets) = prepare(&a, false).unwrap();
        let text = serde_json::to_string(&sa).unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("\"pw\""),
            "{text}"
        );
        assert_eq!(
            secrets["sensitive"],
            json!([{"name": "P", "value": "s3cret"}, {"name": "C", "username": "u", "password": "pw"}])
        );
        assert_eq!(sa.error_action, "Continue");
        assert_eq!(sa.depth, 2);
        let bad = args(json!({"script": "x", "sensitive_parameters": [{"name": "P"}]}));
        assert!(prepare(&bad, false).is_err());
        let bad = args(json!({"script": "x", "sensitive_parameters": [{"value": "v"}]}));
        assert!(prepare(&bad, false).is_err());
    }

    #[test]
    fn outcomes() {
        let ans: Answer = serde_json::from_value(json!({"output": "one", "result": null})).unwrap();
        let (changed, failure, m) = outcome(&ans);
        assert!(changed && failure.is_none());
        // PowerShell 5.1 writes a one-element list as the element.
        assert_eq!(m["output"], json!(["one"]));
        assert_eq!(m["result"], json!({}));
        let ans: Answer =
            serde_json::from_value(json!({"changed": false, "failed": true})).unwrap();
        let (changed, failure, _) = outcome(&ans);
        assert!(!changed);
        assert_eq!(failure.unwrap(), "the script set $Ansible.Failed");
        let ans: Answer = serde_json::from_value(json!({"terminated": true,
            "error": [{"output": "x", "exception": {"message": "boom"}}]}))
        .unwrap();
        assert_eq!(outcome(&ans).1.unwrap(), "the script failed: boom");
        let ans: Answer = serde_json::from_value(
            json!({"skipped": "skipped, running in check mode", "check_mode_skip": true}),
        )
        .unwrap();
        let (changed, failure, m) = outcome(&ans);
        assert!(changed && failure.is_none());
        assert_eq!(m["msg"], "skipped, running in check mode");
        let ans: Answer =
            serde_json::from_value(json!({"skipped": "skipped, since C:\\x exists"})).unwrap();
        assert!(!outcome(&ans).0);
    }
}
