//! `win_scheduled_task_stat`: a scheduled-task folder and, with `name`, one task's definition and
//! state, with the names and return values of Ansible's `win_scheduled_task_stat`
//! (community.windows; once ansible.windows): `folder_exists`, `folder_task_count`,
//! `folder_task_names`, `task_exists`, and for an existing task `state` (`status`
//! `TASK_STATE_*`, `last_run_time`, `last_task_result`, `next_run_time`,
//! `number_of_missed_runs`), `actions`, `triggers`, `principal`, `settings` and
//! `registration_info`, with the COM enum names Ansible reports (`TASK_ACTION_EXEC`,
//! `TASK_TRIGGER_BOOT`, `TASK_LOGON_SERVICE_ACCOUNT`, `TASK_RUNLEVEL_HIGHEST` ...).
//!
//! Differences: the host side uses the ScheduledTasks cmdlets, not the Task Scheduler COM API,
//! so an empty folder other than `\` reads as missing (`folder_exists: false`), times are UTC
//! (`2026-12-01T10:00:00Z`; Ansible prints local time) and a task that never ran has
//! `last_run_time: null` (Ansible: `1999-11-30T00:00:00`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{Args, FreeForm, ModResult, Module, ModuleCtx, ModuleDef, Target, p};

pub static SCRIPT: super::Script = script!("win_scheduled_task_stat");

static DEF: ModuleDef = ModuleDef {
    name: "win_scheduled_task_stat",
    namespaces: &["community.windows", "ansible.windows"],
    params: &[p("name", Str), p("path", Str)],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatArgs {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "root")]
    pub path: String,
}

fn root() -> String {
    "\\".into()
}

impl TaskStatArgs {
    /// The folder path as the cmdlets want it: leading and trailing backslash.
    fn normalized(mut self) -> Self {
        let mut p = self.path.trim().replace('/', "\\");
        if !p.starts_with('\\') {
            p.insert(0, '\\');
        }
        if !p.ends_with('\\') {
            p.push('\\');
        }
        self.path = p;
        self
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Probe {
    #[serde(default, deserialize_with = "list")]
    pub folder_task_names: Vec<String>,
    #[serde(default)]
    pub task: Option<Task>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Task {
    #[serde(default)]
    pub task_name: String,
    #[serde(default)]
    pub task_path: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub author: Option<Value>,
    #[serde(default)]
    pub date: Option<Value>,
    #[serde(default)]
    pub description: Option<Value>,
    #[serde(default)]
    pub uri: Option<Value>,
    #[serde(default)]
    pub version: Option<Value>,
    #[serde(default)]
    pub source: Option<Value>,
    #[serde(default)]
    pub documentation: Option<Value>,
    #[serde(default)]
    pub security_descriptor: Option<Value>,
    #[serde(default, deserialize_with = "list")]
    pub actions: Vec<Action>,
    #[serde(default, deserialize_with = "list")]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub principal: Principal,
    #[serde(default)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    pub last_run_time: Option<String>,
    #[serde(default)]
    pub last_task_result: i64,
    #[serde(default)]
    pub next_run_time: Option<String>,
    #[serde(default)]
    pub number_of_missed_runs: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Action {
    #[serde(default)]
    pub execute: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub working_directory: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Trigger {
    /// The CIM class (`MSFT_TaskBootTrigger` ...).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub delay: Option<Value>,
    #[serde(default)]
    pub start_boundary: Option<Value>,
    #[serde(default)]
    pub end_boundary: Option<Value>,
    #[serde(default)]
    pub execution_time_limit: Option<Value>,
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub repetition: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Principal {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub logon_type: Option<String>,
    #[serde(default)]
    pub run_level: Option<String>,
}

/// `TASK_STATE` from the ScheduledTasks module's StateEnum.
pub fn task_state(state: &str) -> &'static str {
    match state.to_ascii_lowercase().as_str() {
        "disabled" => "TASK_STATE_DISABLED",
        "queued" => "TASK_STATE_QUEUED",
        "ready" => "TASK_STATE_READY",
        "running" => "TASK_STATE_RUNNING",
        _ => "TASK_STATE_UNKNOWN",
    }
}

/// `TASK_TRIGGER_TYPE2` from the trigger's CIM class.
pub fn trigger_type(cim_class: &str) -> String {
    let t = match cim_class {
        "MSFT_TaskEventTrigger" => "EVENT",
        "MSFT_TaskTimeTrigger" => "TIME",
        "MSFT_TaskDailyTrigger" => "DAILY",
        "MSFT_TaskWeeklyTrigger" => "WEEKLY",
        "MSFT_TaskMonthlyTrigger" => "MONTHLY",
        "MSFT_TaskMonthlyDOWTrigger" => "MONTHLYDOW",
        "MSFT_TaskIdleTrigger" => "IDLE",
        "MSFT_TaskRegistrationTrigger" => "REGISTRATION",
        "MSFT_TaskBootTrigger" => "BOOT",
        "MSFT_TaskLogonTrigger" => "LOGON",
        "MSFT_TaskSessionStateChangeTrigger" => "SESSION_STATE_CHANGE",
        other => return other.to_string(),
    };
    format!("TASK_TRIGGER_{t}")
}

/// `TASK_LOGON_TYPE` from the module's LogonTypeEnum.
pub fn logon_type(v: &str) -> String {
    let t = match v.to_ascii_lowercase().as_str() {
        "none" => "NONE",
        "password" => "PASSWORD",
        "s4u" => "S4U",
        "interactive" => "INTERACTIVE_TOKEN",
        "group" => "GROUP",
        "serviceaccount" => "SERVICE_ACCOUNT",
        "interactiveorpassword" => "INTERACTIVE_TOKEN_OR_PASSWORD",
        _ => return v.to_string(),
    };
    format!("TASK_LOGON_{t}")
}

/// `TASK_RUN_LEVEL` from the module's RunLevelEnum.
pub fn run_level(v: &str) -> String {
    match v.to_ascii_lowercase().as_str() {
        "limited" => "TASK_RUNLEVEL_LUA".into(),
        "highest" => "TASK_RUNLEVEL_HIGHEST".into(),
        _ => v.to_string(),
    }
}

/// An account as Ansible shows it (SID round trip): the well-known service accounts get their
/// `NT AUTHORITY\` domain.
pub fn account(v: &str) -> String {
    match v.to_ascii_uppercase().as_str() {
        "SYSTEM" | "LOCALSYSTEM" | "NT AUTHORITY\\SYSTEM" => "NT AUTHORITY\\SYSTEM".into(),
        "LOCAL SERVICE" | "LOCALSERVICE" => "NT AUTHORITY\\LOCAL SERVICE".into(),
        "NETWORK SERVICE" | "NETWORKSERVICE" => "NT AUTHORITY\\NETWORK SERVICE".into(),
        _ => v.to_string(),
    }
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if prev_lower || (prev_upper && next_lower) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// MSFT_TaskSettings as Ansible reports them: snake_case names; the enums Ansible reads as
/// numbers from COM (`compatibility`, `multiple_instances`) as those numbers.
pub fn settings(raw: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in raw {
        let key = snake(k);
        let v = match (key.as_str(), v.as_str()) {
            ("compatibility", Some(s)) => match s.to_ascii_lowercase().as_str() {
                "at" => json!(0),
                "v1" => json!(1),
                "vista" => json!(2),
                "win7" => json!(3),
                "win8" => json!(4),
                _ => v.clone(),
            },
            ("multiple_instances", Some(s)) => match s.to_ascii_lowercase().as_str() {
                "parallel" => json!(0),
                "queue" => json!(1),
                "ignorenew" => json!(2),
                "stopexisting" => json!(3),
                _ => v.clone(),
            },
            _ => v.clone(),
        };
        out.insert(key, v);
    }
    out
}

/// The module's result from the probe.
pub fn stat(probe: &Probe, args: &TaskStatArgs) -> Value {
    let folder_exists = args.path == "\\" || !probe.folder_task_names.is_empty();
    let mut r = json!({
        "folder_exists": folder_exists,
        "folder_task_count": probe.folder_task_names.len(),
        "folder_task_names": probe.folder_task_names,
    });
    if args.name.is_none() {
        return r;
    }
    let Some(t) = probe.task.as_ref().filter(|t| {
        args.name
            .as_deref()
            .is_some_and(|n| t.task_name.eq_ignore_ascii_case(n))
    }) else {
        r["task_exists"] = json!(false);
        return r;
    };
    r["task_exists"] = json!(true);
    r["state"] = json!({
        "status": task_state(&t.state),
        "last_run_time": t.last_run_time,
        "last_task_result": t.last_task_result,
        "next_run_time": t.next_run_time,
        "number_of_missed_runs": t.number_of_missed_runs,
    });
    r["actions"] = t
        .actions
        .iter()
        .map(|a| {
            json!({
                "type": "TASK_ACTION_EXEC",
                "path": a.execute,
                "arguments": a.arguments.as_deref().filter(|s| !s.is_empty()),
                "working_directory": a.working_directory.as_deref().filter(|s| !s.is_empty()),
                "id": a.id,
            })
        })
        .collect();
    r["triggers"] = t
        .triggers
        .iter()
        .map(|tr| {
            json!({
                "type": tr.kind.as_deref().map(trigger_type),
                "enabled": tr.enabled.unwrap_or(true),
                "delay": tr.delay,
                "start_boundary": tr.start_boundary,
                "end_boundary": tr.end_boundary,
                "execution_time_limit": tr.execution_time_limit,
                "id": tr.id,
                "repetition": tr.repetition.clone().unwrap_or_else(|| json!({
                    "duration": null, "interval": null, "stop_at_duration_end": false
                })),
            })
        })
        .collect();
    let pr = &t.principal;
    r["principal"] = json!({
        "user_id": pr.user_id.as_deref().map(account),
        "group_id": pr.group_id.as_deref().map(account),
        "display_name": pr.display_name,
        "id": pr.id,
        "logon_type": pr.logon_type.as_deref().map(logon_type),
        "run_level": pr.run_level.as_deref().map(run_level),
    });
    r["settings"] = Value::Object(settings(&t.settings));
    let uri = t
        .uri
        .clone()
        .unwrap_or_else(|| json!(format!("{}{}", t.task_path, t.task_name)));
    r["registration_info"] = json!({
        "author": t.author,
        "date": t.date,
        "description": t.description,
        "documentation": t.documentation,
        "security_descriptor": t.security_descriptor,
        "source": t.source,
        "uri": uri,
        "version": t.version,
    });
    r
}

pub(super) struct WinScheduledTaskStat;

#[async_trait]
impl Module for WinScheduledTaskStat {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args = typed_args::<TaskStatArgs>(DEF.name, &args)?.normalized();
        let (probe, warnings) = SCRIPT.probe::<Probe>(ctx, &args).await?;
        Ok(finish(false, warnings, stat(&probe, &args)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: Option<&str>, path: &str) -> TaskStatArgs {
        TaskStatArgs {
            name: name.map(str::to_string),
            path: path.into(),
        }
        .normalized()
    }

    fn k3s_probe() -> Probe {
        serde_json::from_value(json!({
            "folder_task_names": ["k3s-agent", "other"],
            "task": {
                "task_name": "k3s-agent", "task_path": "\\", "state": "Running",
                "author": "WIN1\\Administrator", "date": "2026-12-01T10:00:00Z",
                "description": "k3s agent", "uri": "\\k3s-agent",
                "actions": {"execute": "C:\\k3s\\k3s.exe", "arguments": "agent --config C:\\etc\\rancher\\k3s\\config.yaml", "working_directory": null, "id": null},
                "triggers": [{"type": "MSFT_TaskBootTrigger", "enabled": true, "delay": null}],
                "principal": {"user_id": "SYSTEM", "logon_type": "ServiceAccount", "run_level": "Highest", "id": "Author"},
                "settings": {"RestartCount": 999, "RestartInterval": "PT1M", "ExecutionTimeLimit": "PT0S",
                             "Enabled": true, "MultipleInstances": "IgnoreNew", "Compatibility": "Vista",
                             "DisallowStartIfOnBatteries": true},
                "last_run_time": "2026-12-01T10:01:00Z", "last_task_result": 267009,
                "next_run_time": null, "number_of_missed_runs": 0
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_running_task_as_ansible_reports_it() {
        let r = stat(&k3s_probe(), &args(Some("k3s-agent"), "\\"));
        assert_eq!(r["task_exists"], true);
        assert_eq!(r["folder_exists"], true);
        assert_eq!(r["folder_task_count"], 2);
        assert_eq!(r["state"]["status"], "TASK_STATE_RUNNING");
        assert_eq!(r["state"]["last_task_result"], 267009);
        assert_eq!(r["actions"][0]["type"], "TASK_ACTION_EXEC");
        assert_eq!(r["actions"][0]["path"], "C:\\k3s\\k3s.exe");
        assert_eq!(r["actions"][0]["working_directory"], Value::Null);
        assert_eq!(r["triggers"][0]["type"], "TASK_TRIGGER_BOOT");
        assert_eq!(
            r["triggers"][0]["repetition"]["stop_at_duration_end"],
            false
        );
        assert_eq!(r["principal"]["user_id"], "NT AUTHORITY\\SYSTEM");
        assert_eq!(r["principal"]["logon_type"], "TASK_LOGON_SERVICE_ACCOUNT");
        assert_eq!(r["principal"]["run_level"], "TASK_RUNLEVEL_HIGHEST");
        assert_eq!(r["settings"]["restart_count"], 999);
        assert_eq!(r["settings"]["restart_interval"], "PT1M");
        assert_eq!(r["settings"]["multiple_instances"], 2);
        assert_eq!(r["settings"]["compatibility"], 2);
        assert_eq!(r["settings"]["disallow_start_if_on_batteries"], true);
        assert_eq!(r["registration_info"]["uri"], "\\k3s-agent");
        assert_eq!(r["registration_info"]["author"], "WIN1\\Administrator");
    }

    #[test]
    fn missing_task_and_folder_only() {
        let mut p = k3s_probe();
        p.task = None;
        let r = stat(&p, &args(Some("k3s-agent"), "\\"));
        assert_eq!(r["task_exists"], false);
        assert!(r.get("state").is_none() && r.get("actions").is_none());
        let r = stat(&k3s_probe(), &args(None, "\\"));
        assert!(r.get("task_exists").is_none(), "no name: no task_exists");
        assert_eq!(r["folder_task_names"], json!(["k3s-agent", "other"]));
        let r = stat(&Probe::default(), &args(Some("x"), "mixop"));
        assert_eq!(r["folder_exists"], false);
        assert_eq!(r["task_exists"], false);
    }

    #[test]
    fn enums_and_names() {
        assert_eq!(task_state("Ready"), "TASK_STATE_READY");
        assert_eq!(task_state("Disabled"), "TASK_STATE_DISABLED");
        assert_eq!(task_state("?"), "TASK_STATE_UNKNOWN");
        assert_eq!(trigger_type("MSFT_TaskLogonTrigger"), "TASK_TRIGGER_LOGON");
        assert_eq!(trigger_type("MSFT_TaskTimeTrigger"), "TASK_TRIGGER_TIME");
        assert_eq!(logon_type("Interactive"), "TASK_LOGON_INTERACTIVE_TOKEN");
        assert_eq!(run_level("Limited"), "TASK_RUNLEVEL_LUA");
        assert_eq!(account("WIN1\\Administrator"), "WIN1\\Administrator");
        assert_eq!(snake("AllowDemandStart"), "allow_demand_start");
        assert_eq!(snake("RunOnlyIfIdle"), "run_only_if_idle");
        assert_eq!(snake("URI"), "uri");
        assert_eq!(args(None, "mixop/tasks").path, "\\mixop\\tasks\\");
    }
}
