//! Per-host state for the whole run: facts and registered results, connections, counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::events::Stats;
use crate::connection::{ConnPool, ConnSlot};

pub struct HostState {
    pub name: String,
    /// Layered inventory variables (raw: templates inside are rendered on use); replaced when
    /// `add_host` or `group_by` change the inventory.
    inv_vars: Mutex<Arc<Map<String, Value>>>,
    /// `set_fact`, `register` and gathered facts: above play/task vars, below extra vars.
    facts: Mutex<Map<String, Value>>,
    /// Its connections: one per distinct set of connection settings.
    connections: ConnPool,
    stats: Mutex<Stats>,
    failed: AtomicBool,
    unreachable: AtomicBool,
    ended: AtomicBool,
    /// Took part in at least one play (only those appear in the recap).
    played: AtomicBool,
    notified: Mutex<Vec<String>>,
    /// The task the host is working on (name, location), to say what an interrupt stopped.
    running: Mutex<Option<(String, String)>>,
    /// The last failure counted against the host: the task (as `ansible_failed_task` shows it)
    /// and its result.
    last_failure: Mutex<Option<(Value, Map<String, Value>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HostState {
    pub fn new(name: &str, inv_vars: Map<String, Value>) -> HostState {
        HostState {
            name: name.to_string(),
            inv_vars: Mutex::new(Arc::new(inv_vars)),
            facts: Mutex::default(),
            connections: ConnPool::default(),
            stats: Mutex::default(),
            failed: AtomicBool::new(false),
            unreachable: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            played: AtomicBool::new(false),
            notified: Mutex::default(),
            running: Mutex::default(),
            last_failure: Mutex::default(),
        }
    }

    /// Still taking tasks: not failed, not unreachable, not ended by `meta: end_host`.
    pub fn active(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
            && !self.unreachable.load(Ordering::SeqCst)
            && !self.ended.load(Ordering::SeqCst)
    }
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
    pub fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::SeqCst)
    }
    pub fn set_failed(&self, v: bool) {
        self.failed.store(v, Ordering::SeqCst);
    }
    pub fn set_unreachable(&self) {
        self.unreachable.store(true, Ordering::SeqCst);
    }
    pub fn mark_played(&self) {
        self.played.store(true, Ordering::SeqCst);
    }
    pub fn played(&self) -> bool {
        self.played.load(Ordering::SeqCst)
    }
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }
    /// Resets `meta: end_host` at the end of a play (the host takes part in the next play).
    pub fn reset_end(&self) {
        self.ended.store(false, Ordering::SeqCst);
    }
    pub fn clear_errors(&self) {
        self.failed.store(false, Ordering::SeqCst);
    }
    /// A failure handled by a `rescue` section: counted as rescued instead of failed.
    pub fn rescue(&self) {
        self.set_failed(false);
        let mut s = lock(&self.stats);
        s.failed = s.failed.saturating_sub(1);
        s.rescued += 1;
    }

    /// The host started working on a task. Cleared by `end_task` only: when the run is
    /// interrupted, its future is dropped and what was running stays recorded.
    pub fn begin_task(&self, name: String, location: String) {
        *lock(&self.running) = Some((name, location));
    }
    pub fn end_task(&self) {
        *lock(&self.running) = None;
    }
    pub fn running_task(&self) -> Option<(String, String)> {
        lock(&self.running).clone()
    }
    pub fn record_failure(&self, task: Value, result: Map<String, Value>) {
        *lock(&self.last_failure) = Some((task, result));
    }
    /// Makes the last failure the facts `ansible_failed_task` and `ansible_failed_result`, as
    /// ansible-core does for a failure inside a block that has `rescue` (at any depth): they stay
    /// set for the rest of the run, in `hostvars` too.
    pub fn publish_failure(&self) {
        if let Some((task, result)) = lock(&self.last_failure).clone() {
            self.set_fact("ansible_failed_task", task);
            self.set_fact("ansible_failed_result", Value::Object(result));
        }
    }

    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }
    pub fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
    }

    pub fn inv_vars(&self) -> Arc<Map<String, Value>> {
        lock(&self.inv_vars).clone()
    }
    pub fn set_inv_vars(&self, vars: Map<String, Value>) {
        *lock(&self.inv_vars) = Arc::new(vars);
    }

    pub fn facts(&self) -> Map<String, Value> {
        lock(&self.facts).clone()
    }
    pub fn set_fact(&self, name: &str, value: Value) {
        lock(&self.facts).insert(name.to_string(), value);
    }
    pub fn clear_facts(&self) {
        lock(&self.facts).clear();
    }

    pub fn notify(&self, name: &str) {
        let mut n = lock(&self.notified);
        if !n.iter().any(|x| x == name) {
            n.push(name.to_string());
        }
    }
    pub fn is_notified(&self, name: &str, listen: &[String]) -> bool {
        let n = lock(&self.notified);
        n.iter().any(|x| x == name || listen.contains(x))
    }
    pub fn clear_notified(&self) {
        lock(&self.notified).clear();
    }

    /// The connection for these settings (see [`ConnPool`]).
    pub async fn slot(&self, spec: crate::connection::ConnSpec) -> Arc<ConnSlot> {
        self.connections.slot(spec).await
    }

    /// Drops connections so the next task reconnects (`meta: reset_connection`).
    pub async fn close(&self) {
        self.connections.close().await;
    }
}
