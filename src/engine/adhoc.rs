//! Ad hoc commands (`mixop ping`, `mixop exec`): one command on many hosts, no playbook.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

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
    let mut hostvars = BTreeMap::new();
    for h in inv.hosts.keys() {
        hostvars.insert(h.clone(), Arc::new(inv.host_vars(h)));
    }
    let mut vars = inv.host_vars(host);
    crate::value::merge(&mut vars, extra, false);
    vars.insert("inventory_hostname".into(), host.into());
    vars.insert("group_names".into(), inv.group_names(host).into());
    vars.insert("groups".into(), Value::Object(inv.groups_var()));
    if let Some(dir) = &inv.dir {
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        vars.insert("inventory_dir".into(), abs.display().to_string().into());
    }
    let ctx = Vars {
        vars: Arc::new(vars.clone()),
        hostvars: Arc::new(hostvars),
        data_vars: Arc::default(),
    };
    let conn_vars = super::task::render_conn_vars(templar, &vars, &ctx)?;
    crate::connection::spec_from_vars(host, conn_vars, None, None, inv.hosts.contains_key(host))
}

/// What happened on one host.
pub struct AdhocResult {
    pub host: String,
    pub transport: Option<Transport>,
    pub connect_ms: u128,
    pub run_ms: u128,
    pub outcome: Result<CommandOutput, ConnError>,
}

/// Connects to every host at once (bounded by `forks`) and runs `command` (or, for `ping`, a
/// no-op round trip) on each. Connections are closed at the end.
pub async fn run(
    specs: Vec<Result<ConnSpec, (String, String)>>,
    command: Option<String>,
    timeout: Duration,
    command_timeout: Option<Duration>,
    forks: usize,
) -> Vec<AdhocResult> {
    let sem = Arc::new(Semaphore::new(forks.max(1)));
    let futs = specs.into_iter().map(|spec| {
        let sem = sem.clone();
        let command = command.clone();
        async move {
            let _permit = sem.acquire().await;
            let spec = match spec {
                Ok(s) => s,
                Err((host, msg)) => {
                    return AdhocResult {
                        host,
                        transport: None,
                        connect_ms: 0,
                        run_ms: 0,
                        outcome: Err(ConnError::unreachable(msg)),
                    };
                }
            };
            let t0 = Instant::now();
            let conn = match tokio::time::timeout(timeout, crate::connection::connect(&spec)).await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    return AdhocResult {
                        host: spec.host,
                        transport: Some(spec.transport),
                        connect_ms: t0.elapsed().as_millis(),
                        run_ms: 0,
                        outcome: Err(e),
                    };
                }
                Err(_) => {
                    let e = ConnError::unreachable(format!(
                        "no connection within {}s",
                        timeout.as_secs()
                    ));
                    return AdhocResult {
                        host: spec.host,
                        transport: Some(spec.transport),
                        connect_ms: t0.elapsed().as_millis(),
                        run_ms: 0,
                        outcome: Err(e),
                    };
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
            let outcome = conn.exec(cs).await;
            let run_ms = t1.elapsed().as_millis();
            conn.close().await;
            AdhocResult {
                host: spec.host,
                transport: Some(spec.transport),
                connect_ms,
                run_ms,
                outcome,
            }
        }
    });
    join_all(futs).await
}
