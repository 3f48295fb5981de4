//! `win_scheduled_task`: a Task Scheduler task, with the names of community.windows'
//! `win_scheduled_task` for the parts a cluster needs: `name`, `path`, `state`
//! (`present`/`absent`), `description`, `actions` (`path`, `arguments`, `working_directory`),
//! `triggers` (`type` `boot`, `logon`, `once` or `daily`; `start_boundary` for the last two;
//! `delay`, `enabled`), `username`, `password`, `logon_type`, `run_level`, `enabled`,
//! `restart_count`, `restart_interval`, `execution_time_limit`, `start_when_available`.
//!
//! Probe: the task's definition as the ScheduledTasks cmdlets report it. Rust compares only what
//! the task gives (user names without `NT AUTHORITY\`, durations by length: `PT60S` is `PT1M`)
//! and, when something differs, registers the whole definition again (`Register-ScheduledTask
//! -Force`: what the task does not give is kept from the current definition). The module does not
//! start or stop the task, as community.windows' does not: run it with
//! `win_command: schtasks.exe /Run /TN <name>` (and `/End`), guarded by `win_scheduled_task_stat`.
//! A password goes to the host in the request and is never in the plan or the output; it cannot
//! be compared, so as with community.windows' `update_password: on_create` it is only sent when
//! the task is (re)registered for another reason.
//! Not supported (refused as unknown arguments): other trigger types, repetition, `group`,
//! `multiple_instances`, `allow_demand_start` and the rest of the settings.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{finish, list, opt_list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, p,
    req,
};

pub static SCRIPT: super::Script = script!("win_scheduled_task");

static DEF: ModuleDef = ModuleDef {
    name: "win_scheduled_task",
    namespaces: &["community.windows", "ansible.windows"],
    params: &[
        req("name", Str),
        p("path", Str),
        choice("state", &["present", "absent"]),
        p("description", Str),
        p("actions", List),
        p("triggers", List),
        alias(p("username", Str), &["user"]),
        p("password", Str),
        choice(
            "logon_type",
            &[
                "none",
                "password",
                "s4u",
                "interactive_token",
                "group",
                "service_account",
                "interactive_token_or_password",
            ],
        ),
        alias(choice("run_level", &["limited", "highest"]), &["runlevel"]),
        p("enabled", Bool),
        p("restart_count", Int),
        p("restart_interval", Str),
        p("execution_time_limit", Str),
        p("start_when_available", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionArg {
    pub path: String,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub working_directory: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerArg {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub start_boundary: Option<String>,
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskArgs {
    pub name: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    pub actions: Option<Vec<ActionArg>>,
    #[serde(default, deserialize_with = "opt_list")]
    pub triggers: Option<Vec<TriggerArg>>,
    #[serde(default)]
    pub username: Option<String>,
    /// Sent to the host with the request (Register-ScheduledTask -Password); never in a plan.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub logon_type: Option<String>,
    #[serde(default)]
    pub run_level: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub restart_count: Option<u32>,
    #[serde(default)]
    pub restart_interval: Option<String>,
    #[serde(default)]
    pub execution_time_limit: Option<String>,
    #[serde(default)]
    pub start_when_available: Option<bool>,
}

/// A task definition, in the form the plan sends and the probe reports (ScheduledTasks' values:
/// `ServiceAccount`, `Highest`, ISO 8601 durations).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Definition {
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "list")]
    pub actions: Vec<Action>,
    #[serde(default, deserialize_with = "list")]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub user: String,
    /// ServiceAccount, Password, S4U, Interactive, Group, InteractiveOrPassword, None.
    #[serde(default)]
    pub logon_type: String,
    /// Limited or Highest.
    #[serde(default)]
    pub run_level: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub restart_interval: Option<String>,
    #[serde(default)]
    pub execution_time_limit: Option<String>,
    #[serde(default)]
    pub start_when_available: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub path: String,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub working_directory: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Trigger {
    /// boot, logon, once, daily (from the trigger's CIM class).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub start_boundary: Option<String>,
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    #[serde(default)]
    pub task: Option<Definition>,
    /// Ready, Running, Disabled, Queued.
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Plan {
    None,
    Register {
        /// Boxed: a definition is large beside the other variants.
        task: Box<Definition>,
        /// What differs (for the message and `--diff`).
        #[serde(skip)]
        changed: Vec<&'static str>,
    },
    Unregister,
}

/// An ISO 8601 duration (`PT1M`, `P1DT2H`, `PT0S`) in seconds.
pub fn duration_seconds(v: &str) -> Result<u64, String> {
    let bad = || format!("'{v}' is not an ISO 8601 duration such as PT1M, PT30S or P1D");
    let s = v.trim().to_ascii_uppercase();
    let rest = s.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut take = |part: &str, units: &[(char, u64)]| -> Result<(), String> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?.1;
            let n: u64 = num.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(bad)?;
            num.clear();
        }
        if num.is_empty() { Ok(()) } else { Err(bad()) }
    };
    take(days, &[('W', 7 * 86400), ('D', 86400)])?;
    match time {
        Some("") => return Err(bad()),
        Some(t) => take(t, &[('H', 3600), ('M', 60), ('S', 1)])?,
        None if days.is_empty() => return Err(bad()),
        None => {}
    }
    Ok(total)
}

fn same_duration(a: &Option<String>, b: &Option<String>) -> bool {
    let secs = |v: &Option<String>| v.as_deref().map(duration_seconds);
    match (secs(a), secs(b)) {
        (Some(Ok(x)), Some(Ok(y))) => x == y,
        (None, None) => true,
        _ => a == b,
    }
}

/// A user as Task Scheduler shows it: `SYSTEM` for `NT AUTHORITY\SYSTEM`, `LocalSystem`, `S-1-5-18`.
fn user_key(u: &str) -> String {
    let t = u.trim();
    let t = t
        .strip_prefix("NT AUTHORITY\\")
        .or_else(|| t.strip_prefix("nt authority\\"))
        .unwrap_or(t);
    match t.to_ascii_lowercase().as_str() {
        "localsystem" | "s-1-5-18" | "system" => "SYSTEM".into(),
        "s-1-5-19" | "localservice" | "local service" => "LOCAL SERVICE".into(),
        "s-1-5-20" | "networkservice" | "network service" => "NETWORK SERVICE".into(),
        _ => t.to_string(),
    }
}

fn is_service_account(u: &str) -> bool {
    matches!(
        user_key(u).as_str(),
        "SYSTEM" | "LOCAL SERVICE" | "NETWORK SERVICE"
    )
}

fn logon_type(v: &str) -> &'static str {
    match v {
        "password" => "Password",
        "s4u" => "S4U",
        "interactive_token" => "Interactive",
        "group" => "Group",
        "service_account" => "ServiceAccount",
        "interactive_token_or_password" => "InteractiveOrPassword",
        _ => "None",
    }
}

fn trigger(t: &TriggerArg) -> Result<Trigger, String> {
    let kind = t.kind.trim().to_ascii_lowercase();
    let kind = match kind.as_str() {
        "boot" | "logon" => kind,
        "once" | "time" | "daily" => {
            if t.start_boundary.as_deref().unwrap_or("").trim().is_empty() {
                return Err(format!("a '{}' trigger needs start_boundary", t.kind));
            }
            if kind == "time" { "once".into() } else { kind }
        }
        _ => {
            return Err(format!(
                "trigger type '{}' is not supported (boot, logon, once, daily)",
                t.kind
            ));
        }
    };
    if let Some(d) = &t.delay {
        duration_seconds(d)?;
    }
    Ok(Trigger {
        kind,
        start_boundary: t.start_boundary.clone(),
        delay: t.delay.clone().filter(|d| !d.trim().is_empty()),
        enabled: t.enabled.unwrap_or(true),
    })
}

fn same_triggers(have: &[Trigger], want: &[Trigger]) -> bool {
    have.len() == want.len()
        && have.iter().zip(want).all(|(h, w)| {
            h.kind == w.kind
                && h.enabled == w.enabled
                && same_duration(&h.delay, &w.delay)
                && (w.start_boundary.is_none() || h.start_boundary == w.start_boundary)
        })
}

fn same_actions(have: &[Action], want: &[Action]) -> bool {
    let norm = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
    have.len() == want.len()
        && have.iter().zip(want).all(|(h, w)| {
            h.path.eq_ignore_ascii_case(&w.path)
                && norm(&h.arguments) == norm(&w.arguments)
                && norm(&h.working_directory).map(|s| s.to_ascii_lowercase())
                    == norm(&w.working_directory).map(|s| s.to_ascii_lowercase())
        })
}

pub fn plan(p: &Probe, a: &TaskArgs) -> Result<Plan, String> {
    if a.state.as_deref() == Some("absent") {
        return Ok(if p.task.is_some() {
            Plan::Unregister
        } else {
            Plan::None
        });
    }
    let actions: Option<Vec<Action>> = a.actions.as_ref().map(|v| {
        v.iter()
            .map(|x| Action {
                path: x.path.clone(),
                arguments: x.arguments.clone(),
                working_directory: x.working_directory.clone(),
            })
            .collect()
    });
    if actions
        .as_ref()
        .is_some_and(|v| v.iter().any(|x| x.path.trim().is_empty()))
    {
        return Err("every action needs a path".into());
    }
    let triggers = a
        .triggers
        .as_ref()
        .map(|v| v.iter().map(trigger).collect::<Result<Vec<_>, _>>())
        .transpose()?;
    for (name, v) in [
        ("restart_interval", &a.restart_interval),
        ("execution_time_limit", &a.execution_time_limit),
    ] {
        if let Some(d) = v {
            duration_seconds(d).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    let mut want = match &p.task {
        Some(t) => t.clone(),
        None => {
            if actions.as_ref().is_none_or(Vec::is_empty) {
                return Err(format!(
                    "task '{}' does not exist: creating it needs at least one action",
                    a.name
                ));
            }
            Definition {
                enabled: true,
                run_level: "Limited".into(),
                execution_time_limit: Some("PT72H".into()),
                ..Default::default()
            }
        }
    };
    let have = p.task.clone().unwrap_or_default();
    let mut changed = Vec::new();
    if let Some(d) = &a.description
        && d != &have.description
    {
        want.description = d.clone();
        changed.push("description");
    }
    if let Some(v) = actions
        && !same_actions(&have.actions, &v)
    {
        want.actions = v;
        changed.push("actions");
    }
    if let Some(v) = triggers
        && !same_triggers(&have.triggers, &v)
    {
        want.triggers = v;
        changed.push("triggers");
    }
    if let Some(u) = &a.username
        && user_key(u) != user_key(&have.user)
    {
        want.user = user_key(u);
        changed.push("username");
    }
    let logon = match &a.logon_type {
        Some(l) => Some(logon_type(l)),
        None if a.username.is_some() && is_service_account(&want.user) => Some("ServiceAccount"),
        None if a.password.is_some() => Some("Password"),
        None => None,
    };
    if let Some(l) = logon
        && !l.eq_ignore_ascii_case(&have.logon_type)
    {
        want.logon_type = l.into();
        changed.push("logon_type");
    }
    if want.logon_type == "Password" && a.password.is_none() && changed.contains(&"logon_type") {
        return Err("logon_type password needs `password`".into());
    }
    if let Some(r) = &a.run_level {
        let r = if r == "highest" { "Highest" } else { "Limited" };
        if !r.eq_ignore_ascii_case(&have.run_level) {
            want.run_level = r.into();
            changed.push("run_level");
        }
    }
    if let Some(e) = a.enabled
        && (p.task.is_none() || e != have.enabled)
    {
        want.enabled = e;
        changed.push("enabled");
    }
    if let Some(n) = a.restart_count
        && n != have.restart_count
    {
        want.restart_count = n;
        changed.push("restart_count");
    }
    if a.restart_interval.is_some() && !same_duration(&a.restart_interval, &have.restart_interval) {
        want.restart_interval = a.restart_interval.clone();
        changed.push("restart_interval");
    }
    if a.execution_time_limit.is_some()
        && !same_duration(&a.execution_time_limit, &have.execution_time_limit)
    {
        want.execution_time_limit = a.execution_time_limit.clone();
        changed.push("execution_time_limit");
    }
    if let Some(s) = a.start_when_available
        && s != have.start_when_available
    {
        want.start_when_available = s;
        changed.push("start_when_available");
    }
    if want.restart_count > 0 {
        let secs = want
            .restart_interval
            .as_deref()
            .map(duration_seconds)
            .transpose()?;
        match secs {
            None => {
                return Err(
                    "restart_count needs restart_interval (Task Scheduler refuses a restart count without one)"
                        .into(),
                );
            }
            Some(s) if !(60..=31 * 86400).contains(&s) => {
                return Err(format!(
                    "restart_interval must be between PT1M and P31D (Task Scheduler's limits), not {}",
                    want.restart_interval.as_deref().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
    if p.task.is_none() {
        changed.insert(0, "created");
    }
    Ok(if changed.is_empty() {
        Plan::None
    } else {
        Plan::Register {
            task: Box::new(want),
            changed,
        }
    })
}

#[derive(Debug, Deserialize)]
struct Applied {
    #[serde(default)]
    task: Option<Definition>,
    #[serde(default)]
    state: Option<String>,
}

pub(super) struct WinScheduledTask;

#[async_trait]
impl Module for WinScheduledTask {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: TaskArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &a).await?;
        let plan = plan(&probe, &a).map_err(|e| ModError::msg(format!("{}: {e}", DEF.name)))?;
        let path = a.path.clone().unwrap_or_else(|| "\\".into());
        let (msg, mut task, mut state) = match &plan {
            Plan::None => (
                format!("task '{}' is as requested", a.name),
                probe.task.clone(),
                probe.state.clone(),
            ),
            Plan::Register { task, changed } if changed.first() == Some(&"created") => (
                format!("task '{}' created", a.name),
                Some((**task).clone()),
                None,
            ),
            Plan::Register { task, changed } => (
                format!("task '{}' changed: {}", a.name, changed.join(", ")),
                Some((**task).clone()),
                probe.state.clone(),
            ),
            Plan::Unregister => (format!("task '{}' removed", a.name), None, None),
        };
        let changed = plan != Plan::None;
        if changed && !ctx.check_mode {
            let (applied, w) = SCRIPT.apply::<Applied>(ctx, &a, &plan).await?;
            warnings.extend(w);
            task = applied.task;
            state = applied.state;
        }
        let mut r = finish(
            changed,
            warnings,
            json!({"msg": msg, "name": a.name, "path": path, "exists": task.is_some(),
                   "state": state, "task": task}),
        );
        if ctx.diff && changed {
            let after = match &plan {
                Plan::Register { task, .. } => json!(task),
                _ => Value::Null,
            };
            r.insert("diff".into(), json!({"before": probe.task, "after": after}));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Definition {
        Definition {
            description: "k3s agent".into(),
            actions: vec![Action {
                path: r"C:\k3s\k3s.exe".into(),
                arguments: Some(r"agent --config C:\etc\rancher\k3s\config.yaml".into()),
                working_directory: None,
            }],
            triggers: vec![Trigger {
                kind: "boot".into(),
                start_boundary: None,
                delay: None,
                enabled: true,
            }],
            user: "SYSTEM".into(),
            logon_type: "ServiceAccount".into(),
            run_level: "Highest".into(),
            enabled: true,
            restart_count: 999,
            restart_interval: Some("PT1M".into()),
            execution_time_limit: Some("PT0S".into()),
            start_when_available: false,
        }
    }

    fn args(v: Value) -> TaskArgs {
        serde_json::from_value(v).unwrap()
    }

    fn agent_args() -> TaskArgs {
        args(json!({
            "name": "k3s-agent", "description": "k3s agent",
            "actions": [{"path": r"C:\k3s\k3s.exe", "arguments": r"agent --config C:\etc\rancher\k3s\config.yaml"}],
            "triggers": [{"type": "boot"}], "username": r"NT AUTHORITY\SYSTEM", "run_level": "highest",
            "restart_count": 999, "restart_interval": "PT60S", "execution_time_limit": "PT0S", "enabled": true
        }))
    }

    #[test]
    fn creates_then_sees_no_change() {
        let none = Probe {
            task: None,
            state: None,
        };
        let Plan::Register { task, changed } = plan(&none, &agent_args()).unwrap() else {
            panic!("expected a registration")
        };
        assert_eq!(changed[0], "created");
        assert_eq!(task.user, "SYSTEM");
        assert_eq!(task.logon_type, "ServiceAccount");
        assert_eq!(task.run_level, "Highest");
        let there = Probe {
            task: Some(agent()),
            state: Some("Running".into()),
        };
        assert_eq!(plan(&there, &agent_args()).unwrap(), Plan::None);
    }

    #[test]
    fn one_difference_reregisters_keeping_the_rest() {
        let there = Probe {
            task: Some(agent()),
            state: Some("Ready".into()),
        };
        let a = args(
            json!({"name": "k3s-agent", "actions": [{"path": r"C:\k3s\k3s.exe", "arguments": "agent --debug"}]}),
        );
        let Plan::Register { task, changed } = plan(&there, &a).unwrap() else {
            panic!()
        };
        assert_eq!(changed, vec!["actions"]);
        assert_eq!(task.actions[0].arguments.as_deref(), Some("agent --debug"));
        assert_eq!(task.restart_count, 999);
        assert_eq!(task.triggers, agent().triggers);
    }

    #[test]
    fn absent_and_errors() {
        let none = Probe {
            task: None,
            state: None,
        };
        let there = Probe {
            task: Some(agent()),
            state: None,
        };
        let gone = args(json!({"name": "k3s-agent", "state": "absent"}));
        assert_eq!(plan(&there, &gone).unwrap(), Plan::Unregister);
        assert_eq!(plan(&none, &gone).unwrap(), Plan::None);
        let e = plan(&none, &args(json!({"name": "x"}))).unwrap_err();
        assert!(e.contains("needs at least one action"), "{e}");
        let e = plan(
            &none,
            &args(json!({"name": "x", "actions": [{"path": "a.exe"}], "triggers": [{"type": "idle"}]})),
        )
        .unwrap_err();
        assert!(e.contains("'idle' is not supported"), "{e}");
        let e = plan(
            &none,
            &args(json!({"name": "x", "actions": [{"path": "a.exe"}], "restart_count": 3})),
        )
        .unwrap_err();
        assert!(e.contains("needs restart_interval"), "{e}");
        let e = plan(
            &none,
            &args(json!({"name": "x", "actions": [{"path": "a.exe"}], "restart_count": 3, "restart_interval": "PT10S"})),
        )
        .unwrap_err();
        assert!(e.contains("between PT1M and P31D"), "{e}");
        let e = plan(
            &none,
            &args(json!({"name": "x", "actions": [{"path": "a.exe"}], "triggers": [{"type": "daily"}]})),
        )
        .unwrap_err();
        assert!(e.contains("needs start_boundary"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_seconds("PT1M").unwrap(), 60);
        assert_eq!(duration_seconds("pt0s").unwrap(), 0);
        assert_eq!(duration_seconds("P1DT2H3M4S").unwrap(), 93784);
        assert_eq!(duration_seconds("P2W").unwrap(), 14 * 86400);
        for bad in [
            "",
            "P",
            "PT",
            "1M",
            "PT1X",
            "PTM",
            "P1H",
            "PT99999999999999999999S",
        ] {
            assert!(duration_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(user_key("nt authority\\system"), "SYSTEM");
        assert_eq!(user_key("S-1-5-20"), "NETWORK SERVICE");
        assert_eq!(user_key(r"LAB\svc-k3s"), r"LAB\svc-k3s");
    }
}
