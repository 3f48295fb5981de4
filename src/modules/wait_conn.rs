//! `wait_for_connection`: waits until the host answers through its connection again (after a
//! reboot or a network change), as ansible-core's action does: after `delay`, open a fresh
//! connection and run a trivial command (`ping`'s test), every `sleep` seconds, until
//! `timeout`; each attempt is bounded by `connect_timeout`.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::ParamType::*;
use super::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, outcome, p,
};
use crate::connection::Transport;

const BUILTIN: &[&str] = &["ansible.builtin"];

static DEF: ModuleDef = ModuleDef {
    name: "wait_for_connection",
    namespaces: BUILTIN,
    params: &[
        p("connect_timeout", Float),
        p("delay", Float),
        p("sleep", Float),
        p("timeout", Float),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Any,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct WaitForConnection;

fn secs(args: &Args, name: &str, default: f64) -> Result<Duration, ModError> {
    let v = args.get(name).and_then(|v| v.as_f64()).unwrap_or(default);
    crate::value::seconds(v.max(0.0), name).map_err(ModError::msg)
}

/// One test: a fresh connection that runs the family's no-op and gets its answer.
async fn attempt(ctx: &ModuleCtx<'_>) -> Result<(), String> {
    ctx.conn.close().await;
    let cmd = if ctx.conn.transport == Transport::Winrm {
        "Write-Output pong"
    } else {
        "echo pong"
    };
    let out = ctx.exec(cmd, None).await.map_err(|e| e.message)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.rc == 0 && text.trim() == "pong" {
        Ok(())
    } else {
        Err(format!(
            "the test command answered rc {}: {}",
            out.rc,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[async_trait]
impl Module for WaitForConnection {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let delay = secs(&args, "delay", 0.0)?;
        let sleep = secs(&args, "sleep", 1.0)?;
        let timeout = secs(&args, "timeout", 600.0)?;
        let connect_timeout = secs(&args, "connect_timeout", 5.0)?;
        let start = Instant::now();
        if ctx.check_mode {
            // Ansible skips the wait in check mode.
            let mut r = outcome(false);
            r.insert("skipped".into(), true.into());
            r.insert("elapsed".into(), 0.into());
            return Ok(r);
        }
        tokio::time::sleep(delay).await;
        let deadline = start + delay + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let err = match tokio::time::timeout(connect_timeout.min(left), attempt(ctx)).await {
                Ok(Ok(())) => {
                    let mut r = outcome(false);
                    r.insert("elapsed".into(), start.elapsed().as_secs().into());
                    return Ok(r);
                }
                Ok(Err(e)) => e,
                Err(_) => format!(
                    "no answer within connect_timeout ({}s)",
                    connect_timeout.as_secs_f64()
                ),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let mut r = outcome(false);
                r.insert("elapsed".into(), start.elapsed().as_secs().into());
                return Err(ModError::Failed {
                    msg: format!(
                        "timed out waiting for ping module test after {}s: {err}",
                        timeout.as_secs_f64()
                    ),
                    result: r,
                });
            }
            tokio::time::sleep(sleep.min(left)).await;
        }
    }
}
