//! `reboot`: reboot a Linux host and wait until it is back.
//!
//! Reads the boot id, runs `shutdown -r`, drops the host's connection (the slot reconnects on
//! next use, as after `meta: reset_connection`), then polls with backoff until a fresh
//! connection works AND the boot id differs — never "until the host went down", so a host that
//! reboots before the first poll is fine — and finally until `test_command` succeeds, since
//! sshd can accept logins before the system is ready. Each attempt is bounded by
//! `connect_timeout`, the whole wait by `reboot_timeout`.

use crate::modules::Target;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use super::BUILTIN;
use crate::connection::ConnError;
use crate::modules::ParamType::*;
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, alias, arg_str, outcome, p,
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

/// Backoff between polls: 0.5 s doubling up to 8 s, never past the deadline.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4)))
}

/// Outcome of one probe of the rebooting host.
enum Poll {
    Done(String),
    NotYet(String),
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
        if post > 0 {
            tokio::time::sleep(Duration::from_secs(post)).await;
        }
        let deadline = start + reboot_timeout + Duration::from_secs(post);

        // Phase 1: a new connection and a new boot id.
        let boot_probe = || async {
            let out = tokio::time::timeout(attempt_timeout, ctx.exec(boot_cmd.as_str(), None))
                .await
                .map_err(|_| ConnError::timeout("no answer within connect_timeout"))??;
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok::<Poll, ConnError>(if out.rc == 0 && !id.is_empty() && id != before_id {
                Poll::Done(id)
            } else if out.rc != 0 {
                Poll::NotYet(format!("boot id command failed (rc={})", out.rc))
            } else {
                Poll::NotYet("boot id unchanged: the host has not rebooted yet".into())
            })
        };
        poll_until(
            ctx,
            deadline,
            reboot_timeout,
            "the host to reboot",
            boot_probe,
        )
        .await?;

        // Phase 2: the system is ready.
        let test = || async {
            let out = tokio::time::timeout(attempt_timeout, ctx.exec(test_command.as_str(), None))
                .await
                .map_err(|_| ConnError::timeout("no answer within connect_timeout"))??;
            Ok::<Poll, ConnError>(if out.rc == 0 {
                Poll::Done(String::new())
            } else {
                Poll::NotYet(format!(
                    "test command failed (rc={}): {}",
                    out.rc,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            })
        };
        poll_until(
            ctx,
            deadline,
            reboot_timeout,
            "the post-reboot test command",
            test,
        )
        .await?;

        let mut r = outcome(true);
        r.insert("rebooted".into(), true.into());
        r.insert("elapsed".into(), start.elapsed().as_secs().into());
        Ok(r)
    }
}

/// Calls `probe` until it reports `Done`, reconnecting after transport errors, sleeping with
/// backoff in between; fails with the last reason once `deadline` passes.
async fn poll_until<F, Fut>(
    ctx: &ModuleCtx<'_>,
    deadline: Instant,
    timeout: Duration,
    what: &str,
    probe: F,
) -> Result<String, ModError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Poll, ConnError>>,
{
    let mut attempt = 0u32;
    loop {
        let last = match probe().await {
            Ok(Poll::Done(v)) => return Ok(v),
            Ok(Poll::NotYet(why)) => why,
            Err(e) => {
                // A half-open or refused session: start over with a new one next time.
                ctx.conn.close().await;
                e.message
            }
        };
        let now = Instant::now();
        if now >= deadline {
            let mut r = outcome(true);
            r.insert("rebooted".into(), true.into());
            return Err(ModError::Failed {
                msg: format!(
                    "Timed out waiting for {what} (timeout={}): {last}",
                    timeout.as_secs()
                ),
                result: r,
            });
        }
        tokio::time::sleep(backoff(attempt).min(deadline - now)).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_backoff() {
        assert_eq!(
            reboot_command(0, "Reboot initiated by Ansible"),
            "shutdown -r 0 'Reboot initiated by Ansible'"
        );
        assert_eq!(reboot_command(150, "x"), "shutdown -r 2 x");
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(40), Duration::from_secs(8));
    }
}
