//! Ad hoc commands (`mixop ping`, `mixop exec`): one command on many hosts, no playbook.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, watch};

use crate::connection::{CommandOutput, CommandSpec, ConnError, ConnSpec, Transport};
use crate::inventory::Inventory;
use crate::template::{Templar, Vars};

/// A host's connection settings from its inventory variables (templated) and extra vars.
pub fn conn_spec(
    inv: &Inventory,
    templar: &Templar,
    host: &str,
    extra: &Map<String, Value>,
) -> Result<ConnSpec, String> {
    let conn_vars = conn_vars(inv, templar, host, extra)?;
    crate::connection::spec_from_vars(host, conn_vars, None, None, inv.hosts.contains_key(host))
}

/// A host's connection variables (`ansible_*`, `mixop_*`), layered as a play's task sees them
/// with no play, role or facts (`engine::vars`), templated: an error when one needs what only
/// a run knows (facts, results).
pub fn conn_vars(
    inv: &Inventory,
    templar: &Templar,
    host: &str,
    extra: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let level = |h: &str| super::vars::host_level(inv, h, &[&inv.host_vars(h), extra]);
    let hostvars: BTreeMap<String, Arc<Map<String, Value>>> = inv
        .hosts
        .keys()
        .map(|h| (h.clone(), Arc::new(level(h))))
        .collect();
    let mut vars = level(host);
    super::vars::inventory_magic(inv, host, &mut vars);
    if let Some(dir) = super::vars::inventory_dir(inv) {
        vars.insert("inventory_dir".into(), dir.into());
    }
    let ctx = Vars {
        vars: Arc::new(vars),
        hostvars: Arc::new(hostvars),
        data_vars: Arc::default(),
    };
    super::task::render_conn_vars(templar, &ctx.vars, &ctx)
}

/// What happened on one host.
pub struct AdhocResult {
    pub host: String,
    pub transport: Option<Transport>,
    pub connect_ms: u128,
    pub run_ms: u128,
    pub outcome: Result<CommandOutput, ConnError>,
    /// Set when Ctrl-C stopped the host's work: what was interrupted.
    pub interrupted: Option<String>,
}

impl AdhocResult {
    fn new(
        host: String,
        transport: Option<Transport>,
        outcome: Result<CommandOutput, ConnError>,
    ) -> Self {
        AdhocResult {
            host,
            transport,
            connect_ms: 0,
            run_ms: 0,
            outcome,
            interrupted: None,
        }
    }
}

/// Resolves once `stop` says so (never, if its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Connects to every host at once (bounded by `forks`) and runs `command` (or, for `ping`, a
/// no-op round trip) on each. Connections are closed at the end. When `stop` turns true
/// (Ctrl-C), running commands are stopped (see `connection::Cleanup`), within a bounded time,
/// and nothing new starts.
pub async fn run(
    specs: Vec<Result<ConnSpec, (String, String)>>,
    command: Option<String>,
    timeout: Duration,
    command_timeout: Option<Duration>,
    forks: usize,
    stop: watch::Receiver<bool>,
) -> Vec<AdhocResult> {
    let sem = Arc::new(Semaphore::new(forks.max(1)));
    let futs = specs.into_iter().map(|spec| {
        let sem = sem.clone();
        let command = command.clone();
        let stop = stop.clone();
        async move {
            let spec = match spec {
                Ok(s) => s,
                Err((host, msg)) => {
                    return AdhocResult::new(host, None, Err(ConnError::unreachable(msg)));
                }
            };
            let interrupted = |what: &str| {
                let mut r = AdhocResult::new(
                    spec.host.clone(),
                    Some(spec.transport),
                    Err(ConnError::failed(format!("interrupted {what}"))),
                );
                r.interrupted = Some(what.to_string());
                r
            };
            let _permit = tokio::select! {
                p = sem.acquire() => p,
                _ = stopped(stop.clone()) => return interrupted("before it started"),
            };
            let t0 = Instant::now();
            let connect = tokio::time::timeout(timeout, crate::connection::connect(&spec));
            let connected = tokio::select! {
                c = connect => c,
                _ = stopped(stop.clone()) => return interrupted("while connecting"),
            };
            let conn = match connected {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    let mut r = AdhocResult::new(spec.host, Some(spec.transport), Err(e));
                    r.connect_ms = t0.elapsed().as_millis();
                    return r;
                }
                Err(_) => {
                    let e = ConnError::unreachable(format!(
                        "no connection within {}s",
                        timeout.as_secs()
                    ));
                    let mut r = AdhocResult::new(spec.host, Some(spec.transport), Err(e));
                    r.connect_ms = t0.elapsed().as_millis();
                    return r;
                }
            };
            let connect_ms = t0.elapsed().as_millis();
            let cmd = command.unwrap_or_else(|| match spec.transport {
                Transport::Winrm => "exit 0".into(),
                _ => "true".into(),
            });
            let t1 = Instant::now();
            let mut cs = CommandSpec::new(cmd);
            cs.timeout = command_timeout;
            // Dropping the command's future when Ctrl-C comes starts stopping it; `close`
            // waits for that.
            let ran = tokio::select! {
                o = conn.exec(cs) => Some(o),
                _ = stopped(stop.clone()) => None,
            };
            let run_ms = t1.elapsed().as_millis();
            let mut r = match ran {
                Some(outcome) => {
                    conn.close().await;
                    AdhocResult::new(spec.host, Some(spec.transport), outcome)
                }
                None => {
                    let what =
                        match tokio::time::timeout(super::INTERRUPT_CLEANUP, conn.close()).await {
                            Ok(()) => "while the command ran; it was stopped".to_string(),
                            Err(_) => format!(
                                "while the command ran; no answer within {}s while stopping it, \
                             it may still be running",
                                super::INTERRUPT_CLEANUP.as_secs()
                            ),
                        };
                    interrupted(&what)
                }
            };
            r.connect_ms = connect_ms;
            r.run_ms = run_ms;
            r
        }
    });
    join_all(futs).await
}
