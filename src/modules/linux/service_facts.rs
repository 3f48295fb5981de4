//! `service_facts`: `ansible_facts.services` as ansible-core's module gathers it on Linux —
//! SysV services from `service --status-all` (when there is no `chkconfig` or `rc-status`),
//! then systemd's units and unit files when systemd manages the host (a later source wins for
//! the same name). One round trip prints each tool's output; parsing happens here.
//! Not read: upstart (`initctl`), Red Hat's `chkconfig`, OpenRC, AIX, BSD.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::BUILTIN;
use crate::modules::files::remote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, Target,
};

static SERVICE_FACTS_DEF: ModuleDef = ModuleDef {
    name: "service_facts",
    namespaces: BUILTIN,
    params: &[],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct ServiceFacts;

/// Each section starts with a `::name::` line. `systemctl` is looked up in PATH and in
/// /usr/bin and /usr/local/bin (Ansible's opt_dirs); systemd manages the host when one of its
/// runtime directories exists or PID 1 is `systemd` (Ansible's is_systemd_managed).
const SCRIPT: &str = r#"
_has() { command -v "$1" >/dev/null 2>&1; }
if _has service && ! _has chkconfig && ! _has rc-status; then
  echo '::sysv::'; service --status-all 2>/dev/null
fi
sd=
for c in /run/systemd/system/ /dev/.run/systemd/ /dev/.systemd/; do [ -e "$c" ] && sd=1; done
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && sd=1
if [ -n "$sd" ]; then
  sc=$(command -v systemctl 2>/dev/null)
  for d in /usr/bin /usr/local/bin; do [ -n "$sc" ] || { [ -x "$d/systemctl" ] && sc=$d/systemctl; }; done
  if [ -n "$sc" ]; then
    echo '::units::'; "$sc" list-units --no-pager --type service --all --plain 2>/dev/null
    echo '::files::'; "$sc" list-unit-files --no-pager --type service --all 2>/dev/null | while read -r n s _; do
      case $n in *.service) printf '%s %s %s\n' "$n" "$s" "$("$sc" show "$n" --property=ActiveState 2>/dev/null)" ;; esac
    done
  fi
fi
"#;

const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

/// Builds the services map from the script's sections.
fn parse(out: &str) -> Map<String, Value> {
    let mut services = Map::new();
    let mut section = "";
    for line in out.lines() {
        if let Some(s) = line.strip_prefix("::").and_then(|l| l.strip_suffix("::")) {
            section = match s {
                "sysv" => "sysv",
                "units" => "units",
                "files" => "files",
                _ => section,
            };
            continue;
        }
        match section {
            "sysv" => {
                // `^\s*\[ (\+|\-) \]\s+(.+)$`
                let t = line.trim_start();
                let state = if t.starts_with("[ + ]") {
                    "running"
                } else if t.starts_with("[ - ]") {
                    "stopped"
                } else {
                    continue;
                };
                let name = t[5..].trim_start();
                if name.is_empty() || t[5..].len() == name.len() {
                    continue;
                }
                services.insert(
                    name.into(),
                    json!({"name": name, "state": state, "source": "sysv"}),
                );
            }
            "units" if line.contains(".service") => {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 4 {
                    continue;
                }
                let status = BAD_STATES
                    .iter()
                    .find(|b| f[..f.len() - 1].contains(b))
                    .copied()
                    .unwrap_or(f[2]);
                let state = if f[3] == "running" {
                    "running"
                } else {
                    "stopped"
                };
                services.insert(
                    f[0].into(),
                    json!({"name": f[0], "state": state, "status": status, "source": "systemd"}),
                );
            }
            "files" => {
                let mut f = line.splitn(3, ' ');
                let (Some(name), Some(status)) = (f.next(), f.next()) else {
                    continue;
                };
                match services.get_mut(name) {
                    None => {
                        let active = f.next().unwrap_or("");
                        let state = active
                            .strip_prefix("ActiveState=")
                            .filter(|s| !s.is_empty())
                            .unwrap_or("unknown");
                        services.insert(
                            name.into(),
                            json!({"name": name, "state": state, "status": status, "source": "systemd"}),
                        );
                    }
                    Some(Value::Object(svc)) => {
                        let bad = svc
                            .get("status")
                            .and_then(Value::as_str)
                            .is_some_and(|s| BAD_STATES.contains(&s));
                        if !bad {
                            svc.insert("status".into(), status.into());
                        }
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    services
}

#[async_trait]
impl Module for ServiceFacts {
    fn def(&self) -> &'static ModuleDef {
        &SERVICE_FACTS_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, _args: Args) -> ModResult {
        // The listings are plain text (not `key=value`), so the raw output is parsed here.
        let out = ctx
            .exec("/bin/sh -s", Some(remote::script(&[], SCRIPT).into_bytes()))
            .await?;
        if out.rc != 0 {
            return Err(ModError::msg(format!(
                "service_facts: the listing script failed (rc={}): {}",
                out.rc,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let services = parse(&String::from_utf8_lossy(&out.stdout));
        let mut r = Outcome::new();
        r.insert("changed".into(), false.into());
        if services.is_empty() {
            r.insert("skipped".into(), true.into());
            r.insert(
                "msg".into(),
                "Failed to find any services. This can be due to privileges or some other configuration issue.".into(),
            );
        } else {
            r.insert("ansible_facts".into(), json!({ "services": services }));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_as_ansible_reads_them() {
        let out = "::sysv::\n [ + ]  ssh\n [ - ]  procps\n [ ? ]  odd\n::units::\ncron.service loaded active running Regular jobs\nbad.service not-found inactive dead bad.service\n::files::\ncron.service enabled enabled\nbad.service masked ActiveState=inactive\nidle.service disabled ActiveState=inactive\n";
        let s = parse(out);
        assert_eq!(
            s["ssh"],
            json!({"name": "ssh", "state": "running", "source": "sysv"})
        );
        assert_eq!(s["procps"]["state"], "stopped");
        assert!(!s.contains_key("odd"));
        assert_eq!(
            s["cron.service"],
            json!({"name": "cron.service", "state": "running", "status": "enabled", "source": "systemd"})
        );
        // A bad state from list-units is kept over the unit file's.
        assert_eq!(s["bad.service"]["status"], "not-found");
        assert_eq!(s["idle.service"]["state"], "inactive");
        assert_eq!(s["idle.service"]["status"], "disabled");
    }
}
