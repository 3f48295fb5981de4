//! `win_service`: create, configure, start/stop/restart and delete Windows services
//! (ansible.windows.win_service's arguments and return values, a subset: see DEF).
//!
//! Probe: `Get-Service` (by service or display name), `Win32_Service` (path, start mode, account,
//! description) and the service's registry key (the failure configuration the SCM keeps there).
//! Rust decides; apply runs only what differs, in Ansible's order (create, account, dependencies,
//! description, display name, failure actions, path, start mode, then the state) with
//! `New-Service`, `Win32_Service.Change` (account and password: never on a command line),
//! `Set-Service` and `sc.exe` (`config`, `failure`, `failureflag`, `delete`; its command lines are
//! built here with Windows' argument quoting), `Start/Stop/Restart-Service`.
//!
//! Differences from ansible.windows.win_service, on purpose:
//! * A `password` is applied whenever it is given (`update_password` defaults to `always`), also
//!   when the account does not change — ansible/ansible#69911, where a new password for the same
//!   user was silently ignored. A password cannot be read back, so such a task always reports a
//!   change; `update_password: on_create` sets it only with a new service or a new account.
//! * `arguments` (mixop's; community.windows.win_nssm has the same name): appended to `path` to
//!   make the service's command line — a string as written, a list quoted argument by argument;
//!   `path` is quoted when it holds a space.
//! * A start that fails reports what Windows said (the Win32 error behind PowerShell's "cannot
//!   be started" message), with the service's state after the attempt.
//! * Not supported: `desktop_interact`, `error_control`, `load_order_group`,
//!   `pre_shutdown_timeout_ms`, `required_privileges`, `service_type`, `sid_info`,
//!   `state: paused` (the argument check refuses them by name). `path` is not expanded
//!   (`%SystemRoot%` stays as written, which the service manager expands itself).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{WINDOWS, finish, list, opt_list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, p,
    req,
};
use crate::powershell::script::quote_arg;

pub static SCRIPT: super::Script = script!("win_service");

static DEF: ModuleDef = ModuleDef {
    name: "win_service",
    namespaces: WINDOWS,
    params: &[
        req("name", Str),
        p("display_name", Str),
        p("description", Str),
        p("path", Str),
        p("arguments", Any),
        p("dependencies", List),
        choice("dependency_action", &["add", "remove", "set"]),
        choice("state", &["started", "stopped", "restarted", "absent"]),
        choice("start_mode", &["auto", "delayed", "manual", "disabled"]),
        p("username", Str),
        p("password", Str),
        choice("update_password", &["always", "on_create"]),
        p("failure_actions", List),
        alias(
            p("failure_reset_period_sec", Any),
            &["failure_reset_period"],
        ),
        p("failure_command", Str),
        p("failure_reboot_msg", Str),
        p("failure_actions_on_non_crash_failure", Bool),
        p("force_dependent_services", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceArgs {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
    #[serde(default, deserialize_with = "opt_list")]
    pub dependencies: Option<Vec<String>>,
    #[serde(default)]
    pub dependency_action: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub start_mode: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Travels in the request's secrets, never in the args the host logs.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default)]
    pub update_password: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    pub failure_actions: Option<Vec<FailureActionArg>>,
    #[serde(default)]
    pub failure_reset_period_sec: Option<Value>,
    #[serde(default)]
    pub failure_command: Option<String>,
    #[serde(default)]
    pub failure_reboot_msg: Option<String>,
    #[serde(default)]
    pub failure_actions_on_non_crash_failure: Option<bool>,
    #[serde(default)]
    pub force_dependent_services: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureActionArg {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, alias = "delay")]
    pub delay_ms: Option<Value>,
}

/// One SC_ACTION.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: String,
    pub delay_ms: u32,
}

/// What the probe saw. Field names are the script's.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Probe {
    #[serde(default)]
    pub exists: bool,
    /// `$env:COMPUTERNAME` (`.\user` and `COMPUTER\user` are the same account).
    #[serde(default)]
    pub computer: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub path: String,
    /// Win32_Service.StartMode: Auto, Manual, Disabled, Boot, System.
    #[serde(default)]
    pub start_mode: String,
    #[serde(default)]
    pub delayed: bool,
    /// ServiceControllerStatus: Running, Stopped, Paused, StartPending ...
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub dependencies: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub depended_by: Vec<String>,
    #[serde(default)]
    pub can_pause_and_continue: bool,
    /// The registry's FailureActions (SERVICE_FAILURE_ACTIONS), base64.
    #[serde(default)]
    pub failure_actions: Option<String>,
    #[serde(default)]
    pub failure_command: Option<String>,
    #[serde(default)]
    pub failure_reboot_msg: Option<String>,
    #[serde(default)]
    pub failure_non_crash: Option<bool>,
}

/// The failure configuration decoded from the registry value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    pub reset_period: Option<u32>,
    pub actions: Vec<Action>,
}

/// SERVICE_FAILURE_ACTIONS as the SCM stores it: dwResetPeriod, two zero pointer slots,
/// cActions, a pointer slot, then cActions (Type, Delay) pairs; little-endian DWORDs.
pub fn decode_failure_actions(b64: &str) -> Result<Failure, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("FailureActions is not base64: {e}"))?;
    let dword = |i: usize| -> Option<u32> {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(reset), Some(count)) = (dword(0), dword(12)) else {
        return Err(format!(
            "FailureActions is {} bytes, too short",
            bytes.len()
        ));
    };
    let mut actions = Vec::new();
    for i in 0..count as usize {
        let at = 20 + i * 8;
        let (Some(t), Some(d)) = (dword(at), dword(at + 4)) else {
            return Err(format!(
                "FailureActions announces {count} actions but holds {} bytes",
                bytes.len()
            ));
        };
        let kind = match t {
            0 => "none",
            1 => "restart",
            2 => "reboot",
            3 => "run_command",
            other => return Err(format!("unknown failure action type {other}")),
        };
        actions.push(Action {
            kind: kind.into(),
            delay_ms: d,
        });
    }
    Ok(Failure {
        reset_period: Some(reset),
        actions,
    })
}

/// The `sc.exe failure` spelling of an action type.
fn sc_action(kind: &str) -> &'static str {
    match kind {
        "restart" => "restart",
        "reboot" => "reboot",
        "run_command" => "run",
        _ => "none",
    }
}

/// A number of seconds/milliseconds given as an integer, a decimal string or a `0x` hex string
/// (`'0xFFFFFFFF'` is INFINITE).
pub fn parse_u32(name: &str, v: &Value) -> Result<u32, String> {
    let bad = || format!("`{name}` must be a number from 0 to 0xFFFFFFFF, got {v}");
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad),
        Value::String(s) => {
            let t = s.trim();
            let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => u32::from_str_radix(h, 16),
                None => t.parse::<u32>(),
            };
            r.map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// The service's command line: `path` alone as written, or `path` (quoted when it holds a
/// space) followed by `arguments` (a string as written, a list quoted one by one).
pub fn binary_path(path: &str, arguments: Option<&Value>) -> Result<String, String> {
    let args = match arguments {
        None | Some(Value::Null) => return Ok(path.to_string()),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(quote_arg(s)),
                Value::Number(_) | Value::Bool(_) => Ok(quote_arg(&v.to_string())),
                other => Err(format!("`arguments` items must be strings, got {other}")),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(" "),
        Some(other) => {
            return Err(format!(
                "`arguments` must be a string or a list, got {other}"
            ));
        }
    };
    let exe = if path.contains(' ') && !path.starts_with('"') {
        format!("\"{path}\"")
    } else {
        path.to_string()
    };
    Ok(if args.is_empty() {
        exe
    } else {
        format!("{exe} {args}")
    })
}

/// An account as the service manager wants it (`LocalSystem`, `NT AUTHORITY\LocalService`,
/// `NT AUTHORITY\NetworkService`, `DOMAIN\user`, `.\user`).
pub fn account_to_set(name: &str) -> String {
    match builtin_account(name) {
        Some(b) => b.to_string(),
        None if name.contains('\\') || name.contains('@') => name.to_string(),
        None => format!(".\\{name}"),
    }
}

fn builtin_account(name: &str) -> Option<&'static str> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix(".\\").unwrap_or(&n);
    Some(match n {
        "system" | "localsystem" | "nt authority\\system" | "s-1-5-18" => "LocalSystem",
        "localservice"
        | "local service"
        | "nt authority\\localservice"
        | "nt authority\\local service"
        | "s-1-5-19" => "NT AUTHORITY\\LocalService",
        "networkservice"
        | "network service"
        | "nt authority\\networkservice"
        | "nt authority\\network service"
        | "s-1-5-20" => "NT AUTHORITY\\NetworkService",
        _ => return None,
    })
}

/// The same account however it is spelled: case-insensitive, `.\user` = `COMPUTER\user`.
pub fn same_account(a: &str, b: &str, computer: &str) -> bool {
    let norm = |s: &str| {
        let s = account_to_set(s).to_lowercase();
        match s.split_once('\\') {
            Some((d, u)) if !computer.is_empty() && d.eq_ignore_ascii_case(computer) => {
                format!(".\\{u}")
            }
            _ => s,
        }
    };
    norm(a) == norm(b)
}

fn mode_of(p: &Probe) -> String {
    match p.start_mode.to_ascii_lowercase().as_str() {
        "auto" | "automatic" if p.delayed => "delayed".into(),
        "auto" | "automatic" => "auto".into(),
        "manual" | "demand" => "manual".into(),
        other => other.to_string(),
    }
}

fn state_of(p: &Probe) -> String {
    match p.state.as_str() {
        "Running" => "running".into(),
        "" => String::new(),
        other => other.to_lowercase(),
    }
}

/// What Rust decided. Serialised into the apply request.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Plan {
    /// The service name to act on.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<Create>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `Some("")` clears the description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `sc.exe` argument strings, run in order.
    pub sc: Vec<String>,
    /// `start`, `stop` or `restart`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub force: bool,
    pub delete: bool,
    /// What differs, for the result and the diff.
    #[serde(skip)]
    pub changes: Vec<&'static str>,
    /// What the service will look like (the result in check mode).
    #[serde(skip)]
    pub after: Option<Probe>,
}

impl Plan {
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Create {
    pub path: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// New-Service -StartupType: Automatic, Manual or Disabled (delayed is set with sc.exe).
    pub startup_type: String,
    pub dependencies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountChange {
    /// `None`: keep the account, change only the password.
    pub start_name: Option<String>,
    /// `set`: the task's password; `empty`: "" (what built-in accounts take); `keep`.
    pub password: String,
}

/// Builds `sc.exe` arguments with Windows' quoting (CommandLineToArgvW rules).
fn sc(args: &[&str]) -> String {
    args.iter()
        .map(|a| quote_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn desired_failure(
    a: &ServiceArgs,
    current: &Failure,
) -> Result<(Option<Vec<Action>>, Option<u32>), String> {
    let actions = match &a.failure_actions {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|f| {
                    let kind = f.kind.as_str();
                    if !matches!(kind, "none" | "reboot" | "restart" | "run_command") {
                        return Err(format!(
                            "failure_actions: type must be one of none, reboot, restart, run_command, got `{kind}`"
                        ));
                    }
                    let delay_ms = match &f.delay_ms {
                        None | Some(Value::Null) => 0,
                        Some(v) => parse_u32("failure_actions.delay_ms", v)?,
                    };
                    Ok(Action {
                        kind: kind.into(),
                        delay_ms,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let reset = match &a.failure_reset_period_sec {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_u32("failure_reset_period_sec", v)?),
    };
    if reset.is_some()
        && actions
            .as_ref()
            .map_or(current.actions.is_empty(), |x| x.is_empty())
    {
        return Err(
            "failure_reset_period_sec needs at least one failure action (failure_actions)".into(),
        );
    }
    Ok((actions, reset))
}

/// What to do to bring the service to the task's settings.
pub fn plan(p: &Probe, a: &ServiceArgs) -> Result<Plan, String> {
    let mut plan = Plan {
        name: if p.exists {
            p.name.clone()
        } else {
            a.name.clone()
        },
        force: a.force_dependent_services.unwrap_or(false),
        ..Plan::default()
    };
    let state = a.state.as_deref();
    if state == Some("absent") {
        if p.exists {
            plan.delete = true;
            if p.state != "Stopped" {
                plan.state = Some("stop".into());
            }
            plan.sc.push(sc(&["delete", &plan.name]));
            plan.changes.push("state");
        }
        return Ok(plan);
    }
    let configures = a.display_name.is_some()
        || a.description.is_some()
        || a.path.is_some()
        || a.arguments.is_some()
        || a.dependencies.is_some()
        || a.state.is_some()
        || a.start_mode.is_some()
        || a.username.is_some()
        || a.password.is_some()
        || a.failure_actions.is_some()
        || a.failure_reset_period_sec.is_some()
        || a.failure_command.is_some()
        || a.failure_reboot_msg.is_some()
        || a.failure_actions_on_non_crash_failure.is_some();
    let desired_path = match &a.path {
        Some(path) => Some(binary_path(path, a.arguments.as_ref())?),
        None if a.arguments.is_some() => {
            return Err("`arguments` needs `path` (the program the arguments are for)".into());
        }
        None => None,
    };
    let dep_action = a.dependency_action.as_deref().unwrap_or("set");
    let update_always = a.update_password.as_deref() != Some("on_create");

    let mut cur = p.clone();
    if !p.exists {
        if !configures {
            // Only a name: report that the service does not exist (as ansible.windows does).
            return Ok(plan);
        }
        let Some(path) = desired_path.clone() else {
            return Err(format!(
                "Service '{}' is not installed, need to set 'path' to create a new service",
                a.name
            ));
        };
        let mode = a.start_mode.as_deref().unwrap_or("auto");
        let deps = match dep_action {
            "remove" => Vec::new(),
            _ => a.dependencies.clone().unwrap_or_default(),
        };
        plan.create = Some(Create {
            path: path.clone(),
            display_name: a.display_name.clone(),
            description: a.description.clone(),
            startup_type: match mode {
                "manual" => "Manual",
                "disabled" => "Disabled",
                _ => "Automatic",
            }
            .into(),
            dependencies: deps.clone(),
        });
        plan.changes.push("exists");
        // What New-Service leaves; the rest below is compared against it.
        cur = Probe {
            exists: true,
            computer: p.computer.clone(),
            name: a.name.clone(),
            display_name: a.display_name.clone().unwrap_or_else(|| a.name.clone()),
            description: a.description.clone(),
            path,
            start_mode: if mode == "manual" {
                "Manual".into()
            } else if mode == "disabled" {
                "Disabled".into()
            } else {
                "Auto".into()
            },
            delayed: false,
            state: "Stopped".into(),
            username: Some("LocalSystem".into()),
            dependencies: deps,
            ..Probe::default()
        };
    }
    let mut after = cur.clone();

    // Account and password.
    let current_user = cur.username.clone().unwrap_or_else(|| "LocalSystem".into());
    let new_account = a
        .username
        .as_deref()
        .filter(|u| !same_account(u, &current_user, &p.computer));
    let builtin = builtin_account(a.username.as_deref().unwrap_or(&current_user)).is_some();
    match (new_account, &a.password) {
        (Some(u), pw) => {
            plan.account = Some(AccountChange {
                start_name: Some(account_to_set(u)),
                password: if pw.is_some() && !builtin {
                    "set"
                } else if builtin {
                    "empty"
                } else {
                    "keep"
                }
                .into(),
            });
            after.username = Some(account_to_set(u));
            plan.changes.push("username");
        }
        (None, Some(_)) if !builtin && (update_always || !p.exists) => {
            plan.account = Some(AccountChange {
                start_name: None,
                password: "set".into(),
            });
            plan.changes.push("password");
        }
        _ => {}
    }

    // Dependencies.
    if let Some(deps) = &a.dependencies {
        let has = |list: &[String], d: &str| list.iter().any(|x| x.eq_ignore_ascii_case(d));
        let mut new: Vec<String> = match dep_action {
            "add" => cur.dependencies.clone(),
            "remove" => cur
                .dependencies
                .iter()
                .filter(|d| !has(deps, d))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if dep_action != "remove" {
            for d in deps {
                if !has(&new, d) {
                    new.push(d.clone());
                }
            }
        }
        let same =
            new.len() == cur.dependencies.len() && new.iter().all(|d| has(&cur.dependencies, d));
        if !same {
            let joined = if new.is_empty() {
                "/".to_string()
            } else {
                new.join("/")
            };
            plan.sc
                .push(sc(&["config", &plan.name, "depend=", &joined]));
            after.dependencies = new;
            plan.changes.push("dependencies");
        }
    }

    if let Some(d) = &a.description
        && cur.description.as_deref().unwrap_or("") != d
    {
        plan.description = Some(d.clone());
        after.description = Some(d.clone()).filter(|d| !d.is_empty());
        plan.changes.push("description");
    }
    if let Some(d) = &a.display_name
        && !d.is_empty()
        && cur.display_name != *d
    {
        plan.display_name = Some(d.clone());
        after.display_name = d.clone();
        plan.changes.push("display_name");
    }

    // Failure actions: one `sc failure` for what differs, `sc failureflag` for the flag.
    let current_failure = match &cur.failure_actions {
        Some(b64) if !b64.is_empty() => decode_failure_actions(b64)?,
        _ => Failure::default(),
    };
    let (want_actions, want_reset) = desired_failure(a, &current_failure)?;
    let mut failure_args: Vec<String> = Vec::new();
    let actions_differ = want_actions
        .as_ref()
        .is_some_and(|w| *w != current_failure.actions);
    let reset_differs = want_reset.is_some_and(|r| current_failure.reset_period != Some(r));
    if actions_differ || reset_differs {
        let actions = want_actions
            .clone()
            .unwrap_or_else(|| current_failure.actions.clone());
        let reset = want_reset.or(current_failure.reset_period).unwrap_or(86400);
        let spelled = actions
            .iter()
            .map(|x| format!("{}/{}", sc_action(&x.kind), x.delay_ms))
            .collect::<Vec<_>>()
            .join("/");
        failure_args.extend([
            "reset=".into(),
            reset.to_string(),
            "actions=".into(),
            spelled,
        ]);
        if actions_differ {
            plan.changes.push("failure_actions");
        }
        if reset_differs {
            plan.changes.push("failure_reset_period_sec");
        }
    }
    for (given, current, key, change) in [
        (
            &a.failure_command,
            &cur.failure_command,
            "command=",
            "failure_command",
        ),
        (
            &a.failure_reboot_msg,
            &cur.failure_reboot_msg,
            "reboot=",
            "failure_reboot_msg",
        ),
    ] {
        if let Some(g) = given
            && current.as_deref().unwrap_or("") != g
        {
            failure_args.extend([key.to_string(), g.clone()]);
            plan.changes.push(change);
        }
    }
    if !failure_args.is_empty() {
        let mut argv = vec!["failure", plan.name.as_str()];
        argv.extend(failure_args.iter().map(String::as_str));
        plan.sc.push(sc(&argv));
    }
    if let Some(flag) = a.failure_actions_on_non_crash_failure
        && cur.failure_non_crash.unwrap_or(false) != flag
    {
        plan.sc.push(sc(&[
            "failureflag",
            &plan.name,
            if flag { "1" } else { "0" },
        ]));
        after.failure_non_crash = Some(flag);
        plan.changes.push("failure_actions_on_non_crash_failure");
    }

    if let Some(path) = &desired_path
        && !cur.path.trim().eq_ignore_ascii_case(path.trim())
    {
        plan.sc.push(sc(&["config", &plan.name, "binPath=", path]));
        after.path = path.clone();
        plan.changes.push("path");
    }

    if let Some(mode) = a.start_mode.as_deref()
        && mode_of(&cur) != mode
    {
        let sc_mode = match mode {
            "auto" => "auto",
            "delayed" => "delayed-auto",
            "manual" => "demand",
            _ => "disabled",
        };
        plan.sc.push(sc(&["config", &plan.name, "start=", sc_mode]));
        (after.start_mode, after.delayed) = match mode {
            "delayed" => ("Auto".into(), true),
            "auto" => ("Auto".into(), false),
            "manual" => ("Manual".into(), false),
            _ => ("Disabled".into(), false),
        };
        if plan.create.is_none() || mode == "delayed" {
            plan.changes.push("start_mode");
        }
    }

    match state {
        Some("started") if cur.state != "Running" => {
            plan.state = Some("start".into());
            after.state = "Running".into();
            plan.changes.push("state");
        }
        Some("stopped") if cur.state != "Stopped" => {
            plan.state = Some("stop".into());
            after.state = "Stopped".into();
            plan.changes.push("state");
        }
        Some("restarted") => {
            plan.state = Some("restart".into());
            after.state = "Running".into();
            plan.changes.push("state");
        }
        _ => {}
    }
    plan.changes.dedup();
    plan.after = Some(after);
    Ok(plan)
}

/// ansible.windows.win_service's return values for a service as probed.
pub fn report(p: &Probe) -> Value {
    if !p.exists {
        return json!({"exists": false});
    }
    let failure = p
        .failure_actions
        .as_deref()
        .filter(|b| !b.is_empty())
        .and_then(|b| decode_failure_actions(b).ok())
        .unwrap_or_default();
    json!({
        "exists": true,
        "name": p.name,
        "display_name": p.display_name,
        "description": p.description.clone().unwrap_or_default(),
        "path": p.path,
        "start_mode": mode_of(p),
        "state": state_of(p),
        "username": p.username.as_deref().map(|u| builtin_account(u).map(str::to_string).unwrap_or_else(|| u.to_string())),
        "desktop_interact": false,
        "dependencies": p.dependencies,
        "depended_by": p.depended_by,
        "can_pause_and_continue": p.can_pause_and_continue,
        "failure_actions": failure.actions,
        "failure_reset_period_sec": failure.reset_period,
        "failure_command": p.failure_command,
        "failure_reboot_msg": p.failure_reboot_msg,
        "failure_actions_on_non_crash_failure": p.failure_non_crash.unwrap_or(false),
    })
}

/// `--diff`: the compared settings before and after (the password never appears).
fn diff(before: &Probe, after: &Probe, password_changed: bool) -> Value {
    let side = |p: &Probe, pw: &str| {
        if !p.exists {
            return Value::Object(Map::new());
        }
        let mut v = report(p);
        if let Value::Object(m) = &mut v {
            for k in [
                "exists",
                "depended_by",
                "can_pause_and_continue",
                "desktop_interact",
            ] {
                m.remove(k);
            }
            m.insert("password".into(), pw.into());
        }
        v
    };
    json!({
        "before": side(before, "REDACTED"),
        "after": side(after, if password_changed { "CHANGED REDACTED" } else { "REDACTED" }),
    })
}

#[derive(Debug, Deserialize)]
struct Applied {
    #[serde(default)]
    after: Option<Probe>,
    #[serde(default, deserialize_with = "list")]
    start_error: Vec<String>,
    #[serde(default)]
    sc_error: Option<ScError>,
    #[serde(default)]
    change_rc: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct ScError {
    #[serde(default)]
    arguments: String,
    #[serde(default)]
    rc: i64,
    #[serde(default)]
    output: String,
}

/// Win32_Service.Change's return values
/// (https://learn.microsoft.com/windows/win32/cimwin32prov/change-method-in-class-win32-service).
pub fn change_error(rc: i64) -> &'static str {
    match rc {
        1 => "The request is not supported",
        2 => "The user did not have the necessary access",
        8 => "Interactive process",
        9 => "The directory path to the service executable file was not found",
        11 => "The database to add a new service is locked",
        14 => "The service has been disabled from the system",
        15 => "The service does not have the correct authentication to run on the system",
        16 => "This service is being removed from the system",
        17 => "The service has no execution thread",
        21 => "The parameters passed to the service are not valid",
        22 => {
            "The account under which this service runs is either invalid or lacks the permissions to run the service"
        }
        _ => "Unknown failure",
    }
}

/// Joins an exception and its inner exceptions, dropping messages an outer one already says.
pub fn error_chain(parts: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for p in parts {
        let t = p.trim().trim_end_matches('.');
        if t.is_empty() || out.iter().any(|o| o.contains(t)) {
            continue;
        }
        out.push(t);
    }
    out.join(": ")
}

pub(super) struct WinService;

#[async_trait]
impl Module for WinService {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: ServiceArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &a).await?;
        let plan = plan(&probe, &a).map_err(ModError::msg)?;
        let password_changed = plan.account.as_ref().is_some_and(|x| x.password == "set");
        let with_diff = |mut r: crate::modules::Outcome, after: &Probe| {
            if ctx.diff && plan.changed() {
                r.insert("diff".into(), diff(&probe, after, password_changed));
            }
            r
        };
        if !plan.changed() || ctx.check_mode {
            let after = if plan.delete {
                Probe::default()
            } else {
                plan.after.clone().unwrap_or_else(|| probe.clone())
            };
            let r = finish(plan.changed(), warnings, report(&after));
            return Ok(with_diff(r, &after));
        }
        let mut secrets = Map::new();
        if let Some(pw) = &a.password {
            secrets.insert("password".into(), pw.clone().into());
        }
        let (applied, w) = SCRIPT
            .apply_secret::<Applied>(ctx, &a, &plan, secrets)
            .await?;
        warnings.extend(w);
        let after = applied.after.unwrap_or_default();
        let r = with_diff(finish(true, warnings, report(&after)), &after);
        let fail = |msg: String| ModError::Failed {
            msg,
            result: r.clone(),
        };
        if let Some(e) = applied.sc_error {
            return Err(fail(format!(
                "sc.exe {} failed (exit code {}): {}",
                e.arguments,
                e.rc,
                e.output.trim()
            )));
        }
        if let Some(rc) = applied.change_rc.filter(|rc| *rc != 0) {
            return Err(fail(format!(
                "changing the account of service '{}' failed: Win32_Service.Change returned {rc} ({})",
                plan.name,
                change_error(rc)
            )));
        }
        if !applied.start_error.is_empty() {
            return Err(fail(format!(
                "Service '{}' could not be {}: {}",
                plan.name,
                if plan.state.as_deref() == Some("restart") {
                    "restarted"
                } else {
                    "started"
                },
                error_chain(&applied.start_error)
            )));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn args(v: Value) -> ServiceArgs {
        serde_json::from_value(v).unwrap()
    }

    fn svc() -> Probe {
        Probe {
            exists: true,
            computer: "WIN1".into(),
            name: "k3s".into(),
            display_name: "k3s".into(),
            description: None,
            path: r"C:\k3s\k3s.exe agent".into(),
            start_mode: "Auto".into(),
            delayed: false,
            state: "Stopped".into(),
            username: Some("LocalSystem".into()),
            ..Probe::default()
        }
    }

    fn fa(reset: u32, actions: &[(u32, u32)]) -> String {
        let mut b = Vec::new();
        for d in [reset, 0, 0, actions.len() as u32, 0x14] {
            b.extend(d.to_le_bytes());
        }
        for (t, d) in actions {
            b.extend(t.to_le_bytes());
            b.extend(d.to_le_bytes());
        }
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn creates_with_ansibles_defaults() {
        let p = plan(
            &Probe {
                computer: "WIN1".into(),
                ..Probe::default()
            },
            &args(json!({"name": "k3s", "path": r"C:\Program Files\k3s\k3s.exe", "arguments": ["agent", "--token", "a b\"c"]})),
        )
        .unwrap();
        let c = p.create.as_ref().unwrap();
        assert_eq!(
            c.path,
            r#""C:\Program Files\k3s\k3s.exe" agent --token "a b\"c""#
        );
        assert_eq!(c.startup_type, "Automatic");
        assert!(p.state.is_none(), "a new service stays stopped");
        assert!(p.account.is_none() && p.sc.is_empty());
        assert_eq!(p.changes, vec!["exists"]);
        let after = report(p.after.as_ref().unwrap());
        assert_eq!(after["start_mode"], "auto");
        assert_eq!(after["username"], "LocalSystem");
    }

    #[test]
    fn missing_service_without_path() {
        let none = Probe::default();
        assert!(!plan(&none, &args(json!({"name": "x"}))).unwrap().changed());
        let e = plan(&none, &args(json!({"name": "x", "state": "started"}))).unwrap_err();
        assert_eq!(
            e,
            "Service 'x' is not installed, need to set 'path' to create a new service"
        );
        assert!(
            !plan(&none, &args(json!({"name": "x", "state": "absent"})))
                .unwrap()
                .changed()
        );
    }

    #[test]
    fn unchanged_service_is_idempotent() {
        let p = plan(
            &svc(),
            &args(json!({"name": "k3s", "path": r"c:\K3S\k3s.exe agent", "start_mode": "auto", "state": "stopped", "username": "NT AUTHORITY\\SYSTEM", "dependencies": []})),
        )
        .unwrap();
        assert!(!p.changed(), "{:?}", p.changes);
    }

    #[test]
    fn start_mode_path_and_state_changes_use_sc_and_cmdlets() {
        let p = plan(
            &svc(),
            &args(json!({"name": "k3s", "path": "C:\\k3s\\k3s.exe agent --x \"$y\" `z", "start_mode": "delayed", "state": "started", "dependencies": ["containerd"]})),
        )
        .unwrap();
        assert_eq!(
            p.sc,
            vec![
                "config k3s depend= containerd".to_string(),
                r#"config k3s binPath= "C:\k3s\k3s.exe agent --x \"$y\" `z""#.to_string(),
                "config k3s start= delayed-auto".to_string(),
            ]
        );
        assert_eq!(p.state.as_deref(), Some("start"));
        assert_eq!(
            p.changes,
            vec!["dependencies", "path", "start_mode", "state"]
        );
        assert_eq!(report(p.after.as_ref().unwrap())["start_mode"], "delayed");
    }

    #[test]
    fn password_applies_even_for_the_same_user() {
        let mut s = svc();
        s.username = Some(".\\svc-k3s".into());
        // ansible/ansible#69911: same user, new password -> applied.
        let p = plan(
            &s,
            &args(
                json!({"name": "k3s", "username": "WIN1\\svc-k3s", "password": "n'ew \"pw\" $x"}),
            ),
        )
        .unwrap();
        assert_eq!(
            p.account,
            Some(AccountChange {
                start_name: None,
                password: "set".into()
            })
        );
        assert_eq!(p.changes, vec!["password"]);
        // The password never travels in the plan.
        assert!(!serde_json::to_string(&p).unwrap().contains("pw"));
        // on_create: left alone when nothing else changes.
        let p = plan(
            &s,
            &args(json!({"name": "k3s", "username": "svc-k3s", "password": "x", "update_password": "on_create"})),
        )
        .unwrap();
        assert!(!p.changed());
        // A new account takes the password with it.
        let p = plan(
            &svc(),
            &args(json!({"name": "k3s", "username": "LAB\\svc", "password": "x"})),
        )
        .unwrap();
        assert_eq!(
            p.account,
            Some(AccountChange {
                start_name: Some("LAB\\svc".into()),
                password: "set".into()
            })
        );
        // Built-in accounts take an empty password.
        let p = plan(
            &s,
            &args(json!({"name": "k3s", "username": "NT AUTHORITY\\Network Service"})),
        )
        .unwrap();
        assert_eq!(
            p.account,
            Some(AccountChange {
                start_name: Some("NT AUTHORITY\\NetworkService".into()),
                password: "empty".into()
            })
        );
    }

    #[test]
    fn failure_actions_round_trip_and_compare() {
        let f = decode_failure_actions(&fa(86400, &[(1, 5000), (3, 1000), (0, 0)])).unwrap();
        assert_eq!(f.reset_period, Some(86400));
        assert_eq!(
            f.actions,
            vec![
                Action {
                    kind: "restart".into(),
                    delay_ms: 5000
                },
                Action {
                    kind: "run_command".into(),
                    delay_ms: 1000
                },
                Action {
                    kind: "none".into(),
                    delay_ms: 0
                },
            ]
        );
        assert!(decode_failure_actions(&fa(0, &[(9, 0)])).is_err());
        let mut s = svc();
        s.failure_actions = Some(fa(86400, &[(1, 5000)]));
        let same = plan(
            &s,
            &args(json!({"name": "k3s", "failure_actions": [{"type": "restart", "delay_ms": 5000}], "failure_reset_period_sec": 86400})),
        )
        .unwrap();
        assert!(!same.changed(), "{:?}", same.changes);
        let p = plan(
            &s,
            &args(json!({"name": "k3s", "failure_actions": [{"type": "restart", "delay": "10000"}, {"type": "run_command"}], "failure_reset_period_sec": "0xFFFFFFFF", "failure_command": "C:\\x.exe \"it's\"", "failure_actions_on_non_crash_failure": true})),
        )
        .unwrap();
        assert_eq!(
            p.sc,
            vec![
                r#"failure k3s reset= 4294967295 actions= restart/10000/run/0 command= "C:\x.exe \"it's\"""#.to_string(),
                "failureflag k3s 1".to_string()
            ]
        );
        assert!(
            plan(
                &svc(),
                &args(json!({"name": "k3s", "failure_reset_period_sec": 60}))
            )
            .unwrap_err()
            .contains("needs at least one failure action")
        );
        // An empty list removes them all.
        let p = plan(&s, &args(json!({"name": "k3s", "failure_actions": []}))).unwrap();
        assert_eq!(
            p.sc,
            vec![r#"failure k3s reset= 86400 actions= """#.to_string()]
        );
    }

    #[test]
    fn absent_restarted_and_names_with_odd_characters() {
        let mut s = svc();
        s.name = "my svc 'é'".into();
        s.state = "Running".into();
        let p = plan(&s, &args(json!({"name": "my svc 'é'", "state": "absent"}))).unwrap();
        assert!(p.delete);
        assert_eq!(p.state.as_deref(), Some("stop"));
        assert_eq!(p.sc, vec!["delete \"my svc 'é'\"".to_string()]);
        let p = plan(
            &s,
            &args(json!({"name": "my svc 'é'", "state": "restarted", "start_mode": "manual"})),
        )
        .unwrap();
        assert_eq!(p.state.as_deref(), Some("restart"));
        assert_eq!(
            p.sc,
            vec!["config \"my svc 'é'\" start= demand".to_string()]
        );
        let p = plan(&s, &args(json!({"name": "my svc 'é'", "state": "started", "description": "line1\nline2 $x `y"}))).unwrap();
        assert_eq!(p.description.as_deref(), Some("line1\nline2 $x `y"));
        assert!(p.state.is_none());
    }

    #[test]
    fn accounts_and_errors() {
        assert!(same_account(".\\bob", "WIN1\\Bob", "win1"));
        assert!(same_account("SYSTEM", "LocalSystem", ""));
        assert!(!same_account("LAB\\bob", ".\\bob", "WIN1"));
        assert_eq!(account_to_set("bob"), ".\\bob");
        assert_eq!(parse_u32("x", &json!("0xFFFFFFFF")).unwrap(), u32::MAX);
        assert!(parse_u32("x", &json!(-1)).is_err());
        assert_eq!(
            error_chain(&[
                "Service 'k3s (k3s)' cannot be started due to the following error: Cannot start service k3s on computer '.'.".into(),
                "Cannot start service k3s on computer '.'.".into(),
                "The system cannot find the file specified".into(),
            ]),
            "Service 'k3s (k3s)' cannot be started due to the following error: Cannot start service k3s on computer '.': The system cannot find the file specified"
        );
    }
}
