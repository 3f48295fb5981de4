//! `reboot`: reboot a Linux host and wait until it is back.
//!
//! Reads the boot id, runs `shutdown -r`, drops the host's connection (the slot reconnects on
//! next use, as after `meta: reset_connection`), then waits with the wait `win_reboot` shares
//! (`modules/reboot_wait.rs`): until a fresh connection works AND the boot id differs — never
//! "until the host went down", so a host that reboots before the first poll is fine — and
//! finally until `test_command` succeeds, since sshd can accept logins before the system is
//! ready. Each attempt is bounded by `connect_timeout`, the whole wait by `reboot_timeout`.

use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use serde_json::Value;

use super::BUILTIN;
use crate::connection::ConnError;
use crate::modules::ParamType::*;
use crate::modules::posix::quote;
use crate::modules::reboot_wait::{Check, RebootProbe, TimedOut, WaitSpec, wait_for_reboot};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, arg_str,
    outcome, p,
};

static REBOOT_DEF: ModuleDef = ModuleDef {
    name: "reboot",
    namespaces: BUILTIN,
    params: &[
        alias(p("reboot_timeout", Int), &["reboot_timeout_sec"]),
        alias(p("connect_timeout", Int), &["connect_timeout_sec"]),
        alias(p("pre_reboot_delay", Int), &["pre_reboot_delay_sec"]),
        alias(p("post_reboot_delay", Int), &["post_reboot_delay_sec"]),
        p("test_command", Str),
        p("msg", Str),
        p("boot_time_command", Str),
        p("reboot_command", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Reboot;

const DEFAULT_BOOT_TIME_COMMAND: &str = "cat /proc/sys/kernel/random/boot_id";
/// Bounds one connection attempt when the task gives no `connect_timeout`.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

fn secs(args: &Args, name: &str, default: u64) -> Result<u64, ModError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .map(|n| n as u64)
            .ok_or_else(|| ModError::msg(format!("`{name}` must be a number of seconds ≥ 0")))
            .and_then(|n| {
                crate::value::whole_seconds(n, name)
                    .map(|_| n)
                    .map_err(ModError::msg)
            }),
    }
}

/// Ansible's Linux reboot command: `shutdown -r MINUTES "MESSAGE"`.
pub fn reboot_command(pre_delay: u64, msg: &str) -> String {
    format!("shutdown -r {} {}", pre_delay / 60, quote(msg))
}

/// The Linux half of the shared reboot wait: the boot id and the test command over the host's
/// (re)opened connection.
struct LinuxProbe<'a> {
    ctx: &'a ModuleCtx<'a>,
    boot_cmd: &'a str,
    test_command: &'a str,
}

#[async_trait]
impl RebootProbe for LinuxProbe<'_> {
    async fn boot_id(&self) -> Result<Result<String, String>, ConnError> {
        let out = self.ctx.exec(self.boot_cmd, None).await?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(if out.rc != 0 {
            Err(format!("boot id command failed (rc={})", out.rc))
        } else if id.is_empty() {
            Err("boot id command printed nothing".into())
        } else {
            Ok(id)
        })
    }

    async fn ready(&self) -> Result<Check, ConnError> {
        let out = self.ctx.exec(self.test_command, None).await?;
        Ok(if out.rc == 0 {
            Check::Done
        } else {
            Check::NotYet(format!(
                "test command failed (rc={}): {}",
                out.rc,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
    }

    async fn reset(&self) {
        self.ctx.conn.close().await;
    }
}

#[async_trait]
impl Module for Reboot {
    fn def(&self) -> &'static ModuleDef {
        &REBOOT_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let reboot_timeout = Duration::from_secs(secs(&args, "reboot_timeout", 600)?);
        let attempt_timeout = match secs(&args, "connect_timeout", 0)? {
            0 => DEFAULT_ATTEMPT_TIMEOUT,
            n => Duration::from_secs(n),
        };
        let pre = secs(&args, "pre_reboot_delay", 0)?;
        let post = secs(&args, "post_reboot_delay", 0)?;
        let test_command = arg_str(&args, "test_command")
            .unwrap_or("whoami")
            .to_string();
        let boot_cmd = arg_str(&args, "boot_time_command")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(DEFAULT_BOOT_TIME_COMMAND)
            .to_string();
        let msg = arg_str(&args, "msg").unwrap_or("Reboot initiated by Ansible");
        let command = match arg_str(&args, "reboot_command").filter(|s| !s.trim().is_empty()) {
            Some(c) => c.to_string(),
            None => reboot_command(pre, msg),
        };
        if ctx.check_mode {
            let mut r = outcome(true);
            r.insert("rebooted".into(), true.into());
            r.insert("elapsed".into(), 0.into());
            return Ok(r);
        }

        let before = ctx.exec(boot_cmd.as_str(), None).await?;
        let before_id = String::from_utf8_lossy(&before.stdout).trim().to_string();
        if before.rc != 0 || before_id.is_empty() {
            return Err(ModError::msg(format!(
                "cannot read the boot id before rebooting with `{boot_cmd}` (rc={}): {}",
                before.rc,
                String::from_utf8_lossy(&before.stderr).trim()
            )));
        }
        let start = Instant::now();
        match ctx.exec(command.as_str(), None).await {
            // The connection may drop while the command runs: that is the reboot happening.
            Err(_) => {}
            Ok(out) if out.rc == 0 => {}
            Ok(out) => {
                return Err(ModError::Failed {
                    msg: format!(
                        "Reboot command failed. Error was: '{}', '{}'",
                        String::from_utf8_lossy(&out.stdout).trim(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                    result: {
                        let mut r = outcome(false);
                        r.insert("rebooted".into(), false.into());
                        r
                    },
                });
            }
        }
        // Forget the old session: every later exec opens a new one.
        ctx.conn.close().await;
        let probe = LinuxProbe {
            ctx,
            boot_cmd: &boot_cmd,
            test_command: &test_command,
        };
        let spec = WaitSpec {
            reboot_timeout,
            post_reboot_delay: Duration::from_secs(post),
            boot_attempt: Some(attempt_timeout),
            ready_attempt: Some(attempt_timeout),
        };
        wait_for_reboot(&probe, &before_id, &spec, start)
            .await
            .map_err(TimedOut::into_error)?;

        let mut r = outcome(true);
        r.insert("rebooted".into(), true.into());
        r.insert("elapsed".into(), start.elapsed().as_secs().into());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            reboot_command(0, "Reboot initiated by Ansible"),
            "shutdown -r 0 'Reboot initiated by Ansible'"
        );
        assert_eq!(reboot_command(150, "x"), "shutdown -r 2 x");
    }
}
