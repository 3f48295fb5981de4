//! `community.general.ufw` (short `ufw`): the collection module's command lines and `changed`
//! rules over the target's `ufw`. Before: `ufw status verbose` and the `### tuple` lines of the
//! user rules files; then one `ufw` command per given key (state, default, rule, logging, in
//! that order) — with `--dry-run` in check mode, where `changed` comes from comparing what the
//! status and the dry run report, as the collection does; after: the same reads, `changed`
//! when anything differs. Returns `commands` and `msg` (the final `ufw status verbose`).

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, alias, arg_bool,
    arg_str, choice, outcome, p,
};

static UFW_DEF: ModuleDef = ModuleDef {
    name: "ufw",
    namespaces: &["community.general"],
    params: &[
        choice("state", &["enabled", "disabled", "reloaded", "reset"]),
        alias(choice("default", &["allow", "deny", "reject"]), &["policy"]),
        choice("logging", &["full", "high", "low", "medium", "off", "on"]),
        choice(
            "direction",
            &["in", "incoming", "out", "outgoing", "routed"],
        ),
        p("delete", Bool),
        p("route", Bool),
        p("insert", Int),
        choice(
            "insert_relative_to",
            &["zero", "first-ipv4", "last-ipv4", "first-ipv6", "last-ipv6"],
        ),
        choice("rule", &["allow", "deny", "limit", "reject"]),
        alias(p("interface", Str), &["if"]),
        alias(p("interface_in", Str), &["if_in"]),
        alias(p("interface_out", Str), &["if_out"]),
        p("log", Bool),
        alias(p("from_ip", Str), &["from", "src"]),
        p("from_port", Str),
        alias(p("to_ip", Str), &["dest", "to"]),
        alias(p("to_port", Str), &["port"]),
        alias(
            choice(
                "proto",
                &["ah", "any", "esp", "ipv6", "tcp", "udp", "gre", "igmp"],
            ),
            &["protocol"],
        ),
        alias(p("name", Str), &["app"]),
        p("comment", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[
        &["name", "proto", "logging"],
        &["direction", "interface_in"],
        &["direction", "interface_out"],
    ],
    required_one_of: &[&["state", "default", "rule", "logging"]],
};

pub struct Ufw;

const RULE_FILES: &str = "/lib/ufw/user.rules /lib/ufw/user6.rules /etc/ufw/user.rules /etc/ufw/user6.rules /var/lib/ufw/user.rules /var/lib/ufw/user6.rules";

fn ipv4_re() -> regex::Regex {
    regex::Regex::new(
        r"((25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}[0-9])\.){3,3}(25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}[0-9])",
    )
    .unwrap()
}

fn ipv6_re() -> regex::Regex {
    regex::Regex::new(concat!(
        r"(([0-9a-fA-F]{1,4}:){7,7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:",
        r"|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}",
        r"(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4})",
        r"{1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]",
        r"{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:((:[0-9a-fA-F]",
        r"{1,4}){1,6})|:((:[0-9a-fA-F]{1,4}){1,7}|:)|fe80:(:[0-9a-fA-F]{0,4})",
        r"{0,4}%[0-9a-zA-Z]{1,}|::(ffff(:0{1,4}){0,1}:){0,1}((25[0-5]|(2[0-4]",
        r"|1{0,1}[0-9]){0,1}[0-9])\.){3,3}(25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}",
        r"[0-9])|([0-9a-fA-F]{1,4}:){1,4}:((25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}",
        r"[0-9])\.){3,3}(25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}[0-9]))"
    ))
    .unwrap()
}

/// Python's `re.match`: a match at the start.
fn starts_with_match(re: &regex::Regex, s: &str) -> bool {
    re.find(s).is_some_and(|m| m.start() == 0)
}

fn lines_matching(re: &regex::Regex, text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| re.is_match(l))
        .collect()
}

/// The rule command as the collection builds it (without `ufw` and `--dry-run`).
pub fn rule_words(a: &Args, comment_ok: bool) -> Result<Vec<String>, String> {
    let s = |k: &str| arg_str(a, k).filter(|v| !v.is_empty());
    let mut w: Vec<String> = Vec::new();
    if arg_bool(a, "route", false) {
        w.push("route".into());
    }
    let delete = arg_bool(a, "delete", false);
    if delete {
        w.push("delete".into());
    }
    if let Some(n) = a.get("insert").and_then(Value::as_i64)
        && !delete
    {
        match s("insert_relative_to").unwrap_or("zero") {
            "zero" => w.push(format!("insert {n}")),
            other => {
                return Err(format!(
                    "ufw: insert_relative_to {other} is not implemented by mixop (only zero)"
                ));
            }
        }
    }
    w.push(s("rule").unwrap_or_default().to_string());
    if let Some(d) = s("direction") {
        w.push(d.into());
    }
    if let Some(i) = s("interface") {
        w.push(format!("on {}", quote(i)));
    }
    if let Some(i) = s("interface_in") {
        w.push(format!("in on {}", quote(i)));
    }
    if let Some(i) = s("interface_out") {
        w.push(format!("out on {}", quote(i)));
    }
    if arg_bool(a, "log", false) {
        w.push("log".into());
    }
    let from = s("from_ip").unwrap_or("any");
    w.push(format!("from {}", quote(from)));
    if let Some(p) = s("from_port") {
        w.push(format!("port {}", quote(p)));
    }
    let to = s("to_ip").unwrap_or("any");
    w.push(format!("to {}", quote(to)));
    if let Some(p) = s("to_port") {
        w.push(format!("port {}", quote(p)));
    }
    if let Some(p) = s("proto") {
        w.push(format!("proto {p}"));
    }
    if let Some(n) = s("name") {
        w.push(format!("app {}", quote(n)));
    }
    if comment_ok && let Some(c) = s("comment") {
        w.push(format!("comment {}", quote(c)));
    }
    Ok(w)
}

/// Runs one `ufw` command line as the collection's `execute`: fails on a non-zero exit with
/// stderr (else stdout) unless `ignore`.
async fn execute(
    ctx: &ModuleCtx<'_>,
    cmds: &mut Vec<String>,
    cmd: String,
    ignore: bool,
) -> Result<String, ModError> {
    cmds.push(cmd.clone());
    let out = ctx.exec(format!("LANG=C LC_ALL=C {cmd}"), None).await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.rc != 0 && !ignore {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut result = Outcome::new();
        result.insert("commands".into(), json!(cmds));
        return Err(ModError::Failed {
            msg: if err.is_empty() { stdout } else { err },
            result,
        });
    }
    Ok(stdout)
}

#[async_trait]
impl Module for Ufw {
    fn def(&self) -> &'static ModuleDef {
        &UFW_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, a: Args) -> ModResult {
        if arg_str(&a, "interface").is_some() && arg_str(&a, "direction").is_none() {
            return Err(ModError::msg(
                "missing parameter(s) required by 'interface': direction",
            ));
        }
        let found = ctx.exec("command -v ufw; command -v grep", None).await?;
        let found = String::from_utf8_lossy(&found.stdout).into_owned();
        let mut bins = found.lines();
        let (Some(ufw), Some(grep)) = (bins.next(), bins.next()) else {
            return Err(ModError::msg(
                "Failed to find required executable \"ufw\" in PATH",
            ));
        };
        let (ufw, grep) = (ufw.trim().to_string(), grep.trim().to_string());
        let check = ctx.check_mode;
        let mut cmds: Vec<String> = Vec::new();
        let rules_cmd = format!("{grep} -h '^### tuple' {RULE_FILES}");
        let pre_state = execute(ctx, &mut cmds, format!("{ufw} status verbose"), false).await?;
        let pre_rules = execute(ctx, &mut cmds, rules_cmd.clone(), true).await?;
        let base = if check {
            format!("{ufw} --dry-run")
        } else {
            ufw.clone()
        };
        let mut changed = false;
        if let Some(value) = arg_str(&a, "state") {
            if matches!(value, "reloaded" | "reset") {
                changed = true;
            }
            if check {
                let enabled = pre_state.contains(" active");
                if (value == "disabled" && enabled) || (value == "enabled" && !enabled) {
                    changed = true;
                }
            } else {
                let verb = match value {
                    "enabled" => "enable",
                    "disabled" => "disable",
                    "reloaded" => "reload",
                    _ => "reset",
                };
                execute(ctx, &mut cmds, format!("{base} -f {verb}"), false).await?;
            }
        }
        if let Some(value) = arg_str(&a, "default") {
            let direction = arg_str(&a, "direction");
            if !matches!(direction, None | Some("outgoing" | "incoming" | "routed")) {
                return Err(ModError::msg(
                    "For default, direction must be one of \"outgoing\", \"incoming\" and \"routed\", or direction must not be specified.",
                ));
            }
            if check {
                let re = regex::Regex::new(r"Default: (deny|allow|reject) \(incoming\), (deny|allow|reject) \(outgoing\), (deny|allow|reject|disabled) \(routed\)").unwrap();
                match re.captures(&pre_state) {
                    Some(c) => {
                        let cur = match direction.unwrap_or("incoming") {
                            "outgoing" => &c[2],
                            "routed" => &c[3],
                            _ => &c[1],
                        };
                        if cur != value && cur != "disabled" {
                            changed = true;
                        }
                    }
                    None => changed = true,
                }
            } else {
                let mut cmd = format!("{base} default {value}");
                if let Some(d) = direction {
                    cmd.push(' ');
                    cmd.push_str(d);
                }
                execute(ctx, &mut cmds, cmd, false).await?;
            }
        }
        if arg_str(&a, "rule").is_some() {
            let direction = arg_str(&a, "direction");
            if !matches!(direction, None | Some("in" | "out")) {
                return Err(ModError::msg(
                    "For rules, direction must be one of \"in\" and \"out\", or direction must not be specified.",
                ));
            }
            if !arg_bool(&a, "route", false)
                && arg_str(&a, "interface_in").is_some()
                && arg_str(&a, "interface_out").is_some()
            {
                return Err(ModError::msg(
                    "Only route rules can combine interface_in and interface_out",
                ));
            }
            let version = execute(ctx, &mut cmds, format!("{ufw} --version"), false).await?;
            let comment_ok = comment_supported(&version)
                .ok_or_else(|| ModError::msg("Failed to get ufw version."))?;
            let words = rule_words(&a, comment_ok).map_err(ModError::msg)?;
            let rules_dry =
                execute(ctx, &mut cmds, format!("{base} {}", words.join(" ")), false).await?;
            if check {
                let all = rules_dry.split_inclusive('\n').count();
                let skipping = rules_dry
                    .split_inclusive('\n')
                    .filter(|l| l.contains("Skipping"))
                    .count();
                if !(skipping > 0 && skipping == all) {
                    let dry: String = rules_dry
                        .split_inclusive('\n')
                        .filter(|l| l.starts_with("### tuple"))
                        .collect();
                    let from = arg_str(&a, "from_ip").unwrap_or("any");
                    let to = arg_str(&a, "to_ip").unwrap_or("any");
                    let (v4, v6) = (ipv4_re(), ipv6_re());
                    if starts_with_match(&v4, from) || starts_with_match(&v4, to) {
                        if lines_matching(&v4, &pre_rules) != lines_matching(&v4, &dry) {
                            changed = true;
                        }
                    } else if starts_with_match(&v6, from) || starts_with_match(&v6, to) {
                        if lines_matching(&v6, &pre_rules) != lines_matching(&v6, &dry) {
                            changed = true;
                        }
                    } else if pre_rules != dry {
                        changed = true;
                    }
                }
            }
        }
        if let Some(value) = arg_str(&a, "logging") {
            let re = regex::Regex::new(r"Logging: (on|off)(?: \(([a-z]+)\))?").unwrap();
            match re.captures(&pre_state) {
                Some(c) => {
                    let onoff = c.get(1).map(|m| m.as_str());
                    let level = c.get(2).map(|m| m.as_str());
                    if value != "off" {
                        if onoff == Some("off") || (value != "on" && Some(value) != level) {
                            changed = true;
                        }
                    } else if onoff != Some("off") {
                        changed = true;
                    }
                }
                None => changed = true,
            }
            if !check {
                execute(ctx, &mut cmds, format!("{base} logging {value}"), false).await?;
            }
        }
        let mut r = outcome(changed);
        if !check {
            let post_state =
                execute(ctx, &mut cmds, format!("{ufw} status verbose"), false).await?;
            if !changed {
                let post_rules = execute(ctx, &mut cmds, rules_cmd, true).await?;
                r.insert(
                    "changed".into(),
                    Value::Bool(pre_state != post_state || pre_rules != post_rules),
                );
            }
            r.insert("msg".into(), post_state.trim_end().into());
        }
        r.insert("commands".into(), json!(cmds));
        Ok(r)
    }
}

/// `comment` needs ufw >= 0.35; None when `ufw --version` is unreadable.
fn comment_supported(version: &str) -> Option<bool> {
    let first = version.lines().find(|l| !l.trim().is_empty())?;
    let re = regex::Regex::new(r"^ufw.+(\d+)\.(\d+)(?:\.(\d+))?.*$").unwrap();
    let c = re.captures(first)?;
    let major: u64 = c[1].parse().ok()?;
    let minor: u64 = c[2].parse().ok()?;
    Some((major == 0 && minor >= 35) || major > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rule_command_as_the_collection_builds_it() {
        let a =
            args(json!({"rule": "allow", "to_port": "22", "proto": "tcp", "comment": "ssh in"}));
        assert_eq!(
            rule_words(&a, true).unwrap().join(" "),
            "allow from any to any port 22 proto tcp comment 'ssh in'"
        );
        let a = args(
            json!({"rule": "deny", "direction": "in", "interface": "eth0", "from_ip": "10.0.0.0/8", "delete": true, "insert": 1}),
        );
        assert_eq!(
            rule_words(&a, false).unwrap().join(" "),
            "delete deny in on eth0 from 10.0.0.0/8 to any"
        );
        let a = args(json!({"rule": "limit", "insert": 2, "route": true}));
        assert_eq!(
            rule_words(&a, true).unwrap().join(" "),
            "route insert 2 limit from any to any"
        );
    }

    #[test]
    fn version_gate_for_comments() {
        assert_eq!(comment_supported("ufw 0.36.2\nCopyright"), Some(true));
        assert_eq!(comment_supported("ufw 0.34\n"), Some(false));
        assert_eq!(comment_supported(""), None);
    }
}
