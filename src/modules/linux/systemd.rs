//! `systemd_service` (alias `systemd`) and `service` (which delegates to it on systemd hosts).
//!
//! Round trip 1: optional `daemon-reload`, then `systemctl show` of the unit's properties and
//! `systemctl is-enabled -l`. The controller decides; round trip 2 (only when something must
//! change, never in check mode) runs the `mask`/`enable`/`start`... verbs in order.

use crate::modules::Target;
use async_trait::async_trait;
use serde_json::{Map, Value};

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::files::remote::{self, Reply};
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, alias, arg_str, choice,
    outcome, p,
};

const STATES: &[&str] = &["reloaded", "restarted", "started", "stopped"];

/// The `systemctl show` properties reported as `status`.
const SHOW_PROPS: &str = "Id,Names,Description,LoadState,LoadError,ActiveState,SubState,UnitFileState,MainPID,FragmentPath";

static SYSTEMD_PARAMS: &[crate::modules::Param] = &[
    alias(p("name", Str), &["service", "unit"]),
    choice("state", STATES),
    p("enabled", Bool),
    p("masked", Bool),
    p("force", Bool),
    alias(p("daemon_reload", Bool), &["daemon-reload"]),
    alias(p("daemon_reexec", Bool), &["daemon-reexec"]),
    choice("scope", &["system", "user", "global"]),
    p("no_block", Bool),
];

static SYSTEMD_SERVICE_DEF: ModuleDef = ModuleDef {
    name: "systemd_service",
    namespaces: BUILTIN,
    params: SYSTEMD_PARAMS,
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[&[
        "state",
        "enabled",
        "masked",
        "daemon_reload",
        "daemon_reexec",
    ]],
};
static SYSTEMD_DEF: ModuleDef = ModuleDef {
    name: "systemd",
    ..SYSTEMD_SERVICE_DEF
};

static SERVICE_DEF: ModuleDef = ModuleDef {
    name: "service",
    namespaces: BUILTIN,
    params: &[
        crate::modules::req("name", Str),
        choice("state", STATES),
        p("enabled", Bool),
        p("sleep", Int),
        p("pattern", Str),
        alias(p("arguments", Str), &["args"]),
        p("runlevel", Str),
        p("use", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[&["state", "enabled"]],
};

/// `systemd_service` and `systemd`: one implementation under two names.
pub struct Systemd(&'static ModuleDef);
pub static SYSTEMD_SERVICE: Systemd = Systemd(&SYSTEMD_SERVICE_DEF);
pub static SYSTEMD: Systemd = Systemd(&SYSTEMD_DEF);
pub struct Service;

/// What a task asks of a unit.
#[derive(Debug, Clone, Default)]
struct Request {
    name: Option<String>,
    state: Option<String>,
    enabled: Option<bool>,
    masked: Option<bool>,
    daemon_reload: bool,
    daemon_reexec: bool,
    /// `systemctl` plus `--user`/`--no-block`/`--force`.
    systemctl: String,
}

impl Request {
    fn from_args(args: &Args) -> Result<Request, ModError> {
        let b = |k: &str| args.get(k).and_then(crate::value::as_bool);
        let mut systemctl = String::from("systemctl");
        match arg_str(args, "scope") {
            Some("user") => systemctl.push_str(" --user"),
            Some("global") => systemctl.push_str(" --global"),
            _ => {}
        }
        if b("no_block") == Some(true) {
            systemctl.push_str(" --no-block");
        }
        if b("force") == Some(true) {
            systemctl.push_str(" --force");
        }
        let r = Request {
            name: arg_str(args, "name").map(str::to_string),
            state: arg_str(args, "state").map(str::to_string),
            enabled: b("enabled"),
            masked: b("masked"),
            daemon_reload: b("daemon_reload") == Some(true),
            daemon_reexec: b("daemon_reexec") == Some(true),
            systemctl,
        };
        if let Some(n) = &r.name {
            if let Some(g) = ["*", "?", "["].iter().find(|g| n.contains(**g)) {
                return Err(ModError::msg(format!(
                    "This module does not currently support using glob patterns, found '{g}' in service name: {n}"
                )));
            }
            if n.is_empty() || n.starts_with('-') {
                return Err(ModError::msg(format!("invalid unit name `{n}`")));
            }
        } else {
            for (k, given) in [
                ("state", r.state.is_some()),
                ("enabled", r.enabled.is_some()),
                ("masked", r.masked.is_some()),
            ] {
                if given {
                    return Err(ModError::msg(format!(
                        "name is also required when specifying {k}"
                    )));
                }
            }
        }
        Ok(r)
    }
}

/// The read side: daemon-reload/-reexec (not in check mode), `show`, `is-enabled -l`.
fn read_script(r: &Request, check_mode: bool) -> String {
    let mut body = String::from(
        r#"command -v systemctl >/dev/null 2>&1 || { _err 'Failed to find required executable "systemctl" in PATH'; exit 0; }
"#,
    );
    for (want, verb) in [
        (r.daemon_reload, "daemon-reload"),
        (r.daemon_reexec, "daemon-reexec"),
    ] {
        if want && !check_mode {
            body.push_str(&format!(
                "o=$($sc {verb} 2>&1) || {{ _err \"failure $? during {verb}: $o\"; exit 0; }}\n"
            ));
        }
    }
    if r.name.is_some() {
        body.push_str(&format!(
            r#"o=$($sc show -p {SHOW_PROPS} "$u" 2>&1); rc=$?
printf 'show_rc=%s\n' "$rc"
if [ "$rc" = 0 ]; then printf '%s\n' "$o" | sed 's/^/S:/'; else _err "systemctl show $u failed (rc=$rc): $o"; exit 0; fi
e=$($sc is-enabled -l "$u" 2>/dev/null); printf 'enabled_rc=%s\n' "$?"
printf 'enabled=%s\n' "$(printf '%s\n' "$e" | head -n 1)"
"#
        ));
    }
    remote::script(
        &[
            ("sc", r.systemctl.clone()),
            ("u", quote(r.name.as_deref().unwrap_or(""))),
        ],
        &body,
    )
}

/// `systemctl show` output (`Key=value` lines) as Ansible's `status` mapping. Multi-line
/// values (`ExecStart={ ... }` spanning lines) are joined like Ansible's parser does.
pub fn parse_show(lines: &[&str]) -> Map<String, Value> {
    let mut status = Map::new();
    let mut multi: Option<(String, Vec<String>)> = None;
    for line in lines {
        if let Some((k, parts)) = &mut multi {
            parts.push(line.to_string());
            if line.trim_end().ends_with('}') {
                status.insert(k.clone(), parts.join("\n").into());
                multi = None;
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if v.trim_start().starts_with('{') && !v.trim_end().ends_with('}') {
            multi = Some((k.to_string(), vec![v.to_string()]));
            continue;
        }
        status.insert(k.to_string(), v.to_string().into());
    }
    if let Some((k, parts)) = multi {
        status.insert(k, parts.join("\n").into());
    }
    status
}

/// Ansible's reading of `systemctl is-enabled -l`: rc 0 means enabled, except for states that
/// are not a permanent enablement of this very unit.
pub fn is_enabled(rc: i32, out: &str) -> bool {
    rc == 0 && !matches!(out.trim(), "enabled-runtime" | "indirect" | "alias")
}

fn active_state(status: &Map<String, Value>) -> Option<&str> {
    status.get("ActiveState").and_then(Value::as_str)
}

/// The verbs to run, in order, and the result fields, given the unit's current state.
#[derive(Debug, PartialEq)]
struct Plan {
    verbs: Vec<&'static str>,
    enabled: Option<bool>,
    state: Option<String>,
}

fn plan(
    r: &Request,
    status: &Map<String, Value>,
    enabled_rc: i32,
    enabled_out: &str,
) -> Result<Plan, ModError> {
    let unit = r.name.as_deref().unwrap_or_default();
    let load = status.get("LoadState").and_then(Value::as_str);
    let found = load.is_some_and(|s| s != "not-found");
    let masked_now = load == Some("masked");
    if found
        && !masked_now
        && let Some(err) = status
            .get("LoadError")
            .and_then(Value::as_str)
            .filter(|e| !e.trim().is_empty())
    {
        return Err(ModError::msg(format!(
            "Error loading unit file '{unit}': {err}"
        )));
    }
    let missing = || ModError::msg(format!("Could not find the requested service {unit}: host"));
    let mut p = Plan {
        verbs: vec![],
        enabled: None,
        state: None,
    };
    if let Some(want) = r.masked
        && (enabled_out.trim() == "masked") != want
    {
        if !found && want {
            return Err(missing());
        }
        p.verbs.push(if want { "mask" } else { "unmask" });
    }
    if let Some(want) = r.enabled {
        if !found {
            return Err(missing());
        }
        let now = is_enabled(enabled_rc, enabled_out);
        if now != want {
            p.verbs.push(if want { "enable" } else { "disable" });
        }
        p.enabled = Some(want);
    }
    if let Some(state) = &r.state {
        if !found {
            return Err(missing());
        }
        let Some(active) = active_state(status) else {
            return Err(ModError::msg("Service is in unknown state"));
        };
        let running = matches!(active, "active" | "activating");
        let verb = match state.as_str() {
            "started" => (!running).then_some("start"),
            "stopped" => (running || active == "deactivating").then_some("stop"),
            "restarted" => Some(if running { "restart" } else { "start" }),
            _ => Some(if running { "reload" } else { "start" }),
        };
        p.verbs.extend(verb);
        p.state = Some(match state.as_str() {
            "restarted" | "reloaded" => "started".into(),
            s => s.to_string(),
        });
    }
    Ok(p)
}

async fn run_systemd(ctx: &ModuleCtx<'_>, r: Request) -> ModResult {
    let reply = remote::run(ctx, read_script(&r, ctx.check_mode)).await?;
    let mut result = outcome(false);
    result.insert(
        "name".into(),
        r.name.clone().map(Value::String).unwrap_or(Value::Null),
    );
    let Some(unit) = r.name.clone() else {
        result.insert("status".into(), Value::Object(Map::new()));
        return Ok(result);
    };
    let (status, enabled_rc, enabled_out) = parse_read_reply(&reply);
    let plan = plan(&r, &status, enabled_rc, &enabled_out)?;
    result.insert("changed".into(), (!plan.verbs.is_empty()).into());
    if let Some(e) = plan.enabled {
        result.insert("enabled".into(), e.into());
    }
    if let Some(s) = &plan.state {
        result.insert("state".into(), s.clone().into());
    }
    result.insert("status".into(), Value::Object(status));
    if plan.verbs.is_empty() || ctx.check_mode {
        return Ok(result);
    }
    let mut body = String::new();
    for verb in &plan.verbs {
        body.push_str(&format!(
            "o=$($sc {verb} \"$u\" 2>&1) || {{ _err \"Unable to {verb} service $u: $o\"; exit 0; }}\n"
        ));
    }
    remote::run(
        ctx,
        remote::script(&[("sc", r.systemctl.clone()), ("u", quote(&unit))], &body),
    )
    .await?;
    Ok(result)
}

/// Splits the read reply: `S:` lines are `show` output; `enabled`/`enabled_rc` are
/// `is-enabled -l`'s first line and exit code.
fn parse_read_reply(reply: &Reply) -> (Map<String, Value>, i32, String) {
    let show: Vec<String> = reply
        .pairs
        .iter()
        .filter_map(|(k, v)| Some(format!("{}={v}", k.strip_prefix("S:")?)))
        .collect();
    let show_refs: Vec<&str> = show.iter().map(String::as_str).collect();
    let rc = reply
        .get("enabled_rc")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let out = reply.get("enabled").unwrap_or_default().to_string();
    (parse_show(&show_refs), rc, out)
}

#[async_trait]
impl Module for Systemd {
    fn def(&self) -> &'static ModuleDef {
        self.0
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        run_systemd(ctx, Request::from_args(&args)?).await
    }
}

#[async_trait]
impl Module for Service {
    fn def(&self) -> &'static ModuleDef {
        &SERVICE_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        match arg_str(&args, "use").unwrap_or("auto") {
            "auto" | "systemd" => {}
            other => {
                return Err(ModError::msg(format!(
                    "service: `use: {other}` is not supported; mixop manages services through systemd only"
                )));
            }
        }
        for k in ["pattern", "arguments", "runlevel", "sleep"] {
            if args.get(k).is_some_and(|v| !v.is_null()) {
                return Err(ModError::msg(format!(
                    "service: `{k}` applies to SysV init scripts only; mixop manages services through systemd"
                )));
            }
        }
        let mut sargs = Args::new();
        for k in ["name", "state", "enabled"] {
            if let Some(v) = args.get(k) {
                sargs.insert(k.into(), v.clone());
            }
        }
        run_systemd(ctx, Request::from_args(&sargs)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(state: Option<&str>, enabled: Option<bool>, masked: Option<bool>) -> Request {
        Request {
            name: Some("demo".into()),
            state: state.map(str::to_string),
            enabled,
            masked,
            ..Default::default()
        }
    }

    #[test]
    fn show_output_parses_like_ansible() {
        let s = parse_show(&[
            "Id=demo.service",
            "ExecStart={ path=/bin/true ; argv[]=/bin/true",
            "  ; status=0/0 }",
            "ActiveState=active",
            "Description=a=b",
            "not a property",
        ]);
        assert_eq!(s["Id"], "demo.service");
        assert_eq!(s["ActiveState"], "active");
        assert_eq!(s["Description"], "a=b");
        assert_eq!(
            s["ExecStart"],
            "{ path=/bin/true ; argv[]=/bin/true\n  ; status=0/0 }"
        );
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn enabled_reading() {
        assert!(is_enabled(0, "enabled\n"));
        assert!(is_enabled(0, "static"));
        assert!(!is_enabled(0, "enabled-runtime"));
        assert!(!is_enabled(0, "indirect"));
        assert!(!is_enabled(1, "disabled"));
        assert!(!is_enabled(1, "masked"));
    }

    #[test]
    fn plans() {
        let status = |load: &str, active: &str| {
            parse_show(&[
                &format!("LoadState={load}"),
                &format!("ActiveState={active}"),
            ])
        };
        let inactive = status("loaded", "inactive");
        let active = status("loaded", "active");
        let p = plan(
            &req(Some("started"), Some(true), None),
            &inactive,
            1,
            "disabled",
        )
        .unwrap();
        assert_eq!(p.verbs, ["enable", "start"]);
        let p = plan(
            &req(Some("started"), Some(true), None),
            &active,
            0,
            "enabled",
        )
        .unwrap();
        assert!(p.verbs.is_empty());
        let p = plan(&req(Some("reloaded"), None, None), &active, 0, "enabled").unwrap();
        assert_eq!(
            (p.verbs, p.state.as_deref()),
            (vec!["reload"], Some("started"))
        );
        let p = plan(&req(Some("restarted"), None, None), &inactive, 0, "enabled").unwrap();
        assert_eq!(p.verbs, ["start"]);
        let p = plan(
            &req(Some("stopped"), None, None),
            &status("loaded", "deactivating"),
            0,
            "",
        )
        .unwrap();
        assert_eq!(p.verbs, ["stop"]);
        let p = plan(&req(None, None, Some(true)), &inactive, 1, "disabled").unwrap();
        assert_eq!(p.verbs, ["mask"]);
        let p = plan(
            &req(None, None, Some(false)),
            &status("masked", "inactive"),
            1,
            "masked",
        )
        .unwrap();
        assert_eq!(p.verbs, ["unmask"]);
        let err = plan(
            &req(Some("started"), None, None),
            &status("not-found", "inactive"),
            1,
            "",
        )
        .unwrap_err();
        assert!(
            matches!(err, ModError::Failed { ref msg, .. } if msg == "Could not find the requested service demo: host")
        );
    }
}
