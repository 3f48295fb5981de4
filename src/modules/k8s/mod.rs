//! Kubernetes modules, run on the controller with kube-rs: `k8s` (apply/delete manifests),
//! `k8s_info` (get/list/wait), and mixop's own `k8s_node` (node readiness and maintenance).
//!
//! Arguments and results follow Ansible's kubernetes.core collection so playbooks carry over.
//! Waits poll the API server (every `wait_sleep` seconds, default 1) rather than watch: a poll
//! survives an API server restart or a compacted watch history without special cases, and the
//! cost is one small request per second per waiting task. When a wait times out, the message
//! explains why like `kubectl describe` would (see `describe.rs`).

mod apply;
pub mod client;
mod describe;
mod info;
mod node;

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use serde_json::{Map, Value};

use self::client::{K8sError, Kube, Resolved};
use super::ParamType::*;
use super::{Args, Module, Param, alias, p};

pub static MODULES: &[&dyn Module] = &[&apply::K8s, &info::K8sInfo, &node::K8sNode];

const KUBERNETES_CORE: &[&str] = &["kubernetes.core"];
const MIXOP: &[&str] = &["mixop.k8s"];

/// Connection arguments every module takes. `validate_certs: false` (kubernetes.core's name)
/// and `allow_exec_plugins: true` are the deliberate ways to trust what a kubeconfig asks for
/// beyond certificates and tokens (see `client::trust`).
const CONN_PARAMS: [Param; 4] = [
    p("kubeconfig", Any),
    p("context", Str),
    p("validate_certs", Bool),
    p("allow_exec_plugins", Bool),
];

/// `wait_condition` and friends.
const WAIT_PARAMS: [Param; 4] = [
    p("wait", Bool),
    p("wait_condition", Dict),
    p("wait_sleep", Int),
    p("wait_timeout", Int),
];

const fn kind_param() -> Param {
    p("kind", Str)
}
const fn api_version_param() -> Param {
    alias(p("api_version", Str), &["version", "apiVersion"])
}

/// A condition to wait for (`wait_condition`), as in kubernetes.core.
#[derive(Clone, Debug)]
pub struct Cond {
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
}

impl Cond {
    pub fn from_arg(v: Option<&Value>) -> Result<Option<Cond>, K8sError> {
        let Some(Value::Object(m)) = v else {
            return Ok(None);
        };
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            // YAML `status: true` means the condition status "True".
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            other => other.to_string(),
        };
        let type_ = m.get("type").map(text).ok_or_else(|| {
            K8sError::Other("`wait_condition` needs a `type` (e.g. Available, Ready)".into())
        })?;
        Ok(Some(Cond {
            type_,
            status: m.get("status").map_or_else(|| "True".into(), text),
            reason: m.get("reason").filter(|v| !v.is_null()).map(text),
        }))
    }
}

impl std::fmt::Display for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.type_, self.status)?;
        if let Some(r) = &self.reason {
            write!(f, " (reason {r})")?;
        }
        Ok(())
    }
}

pub struct WaitSpec {
    pub cond: Option<Cond>,
    pub timeout: Duration,
    pub sleep: Duration,
}

impl WaitSpec {
    pub fn from_args(args: &Args) -> Result<WaitSpec, K8sError> {
        let secs = |name: &str, default: u64| {
            args.get(name)
                .and_then(Value::as_u64)
                .map_or(Duration::from_secs(default), Duration::from_secs)
        };
        Ok(WaitSpec {
            cond: Cond::from_arg(args.get("wait_condition"))?,
            timeout: secs("wait_timeout", 120),
            sleep: secs("wait_sleep", 1).max(Duration::from_millis(200)),
        })
    }
}

/// An object's `kind` / `metadata.name` / `metadata.namespace`.
pub fn kind_of(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}
pub fn namespace_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}
fn int_at(obj: &Value, ptr: &str) -> Option<i64> {
    obj.pointer(ptr).and_then(Value::as_i64)
}

/// `Deployment default/web` or `Node win1`.
pub fn display_name(obj: &Value) -> String {
    match namespace_of(obj) {
        Some(ns) => format!("{} {ns}/{}", kind_of(obj), name_of(obj)),
        None => format!("{} {}", kind_of(obj), name_of(obj)),
    }
}

/// The object's `status.conditions` entry of the given type.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// Whether a status reflects the latest spec: conditions of an older generation are stale (right
/// after an apply, a Deployment still says Available about the previous template).
fn status_current(obj: &Value) -> bool {
    match (
        int_at(obj, "/metadata/generation"),
        int_at(obj, "/status/observedGeneration"),
    ) {
        (Some(g), Some(o)) => o >= g,
        // Kinds whose controllers don't report observedGeneration (many CRDs).
        _ => true,
    }
}

/// Whether `obj` satisfies the wait: the condition when one is given, else the kind's own idea of
/// ready (like kubernetes.core: Deployments fully rolled out and available, Pods and Nodes Ready).
pub fn satisfied(obj: &Value, cond: Option<&Cond>) -> bool {
    if let Some(c) = cond {
        if !status_current(obj) {
            return false;
        }
        return condition(obj, &c.type_).is_some_and(|found| {
            found.get("status").and_then(Value::as_str) == Some(c.status.as_str())
                && c.reason
                    .as_deref()
                    .is_none_or(|r| found.get("reason").and_then(Value::as_str) == Some(r))
        });
    }
    let cond_true = |t: &str| {
        condition(obj, t)
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            == Some("True")
    };
    let desired = int_at(obj, "/spec/replicas").unwrap_or(1);
    let st = |f: &str| int_at(obj, &format!("/status/{f}")).unwrap_or(0);
    match kind_of(obj) {
        "Deployment" => {
            status_current(obj)
                && st("updatedReplicas") == desired
                && st("availableReplicas") == desired
                && st("replicas") == desired
        }
        "ReplicaSet" | "StatefulSet" => {
            status_current(obj) && st("readyReplicas") == desired && st("replicas") == desired
        }
        "DaemonSet" => {
            let want = st("desiredNumberScheduled");
            status_current(obj) && st("numberReady") == want && st("updatedNumberScheduled") == want
        }
        "Pod" => {
            obj.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded")
                || cond_true("Ready")
        }
        "Node" => cond_true("Ready"),
        "Job" => cond_true("Complete"),
        _ => true,
    }
}

/// What a wait waits for, in words.
pub fn wanted(kind: &str, cond: Option<&Cond>) -> String {
    match (cond, kind) {
        (Some(c), _) => c.to_string(),
        (None, "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            "rolled out with all replicas available".into()
        }
        (None, "Job") => "Complete".into(),
        (None, _) => "Ready".into(),
    }
}

/// The API for a resolved kind in a namespace (cluster-scoped kinds ignore it; `None` on a
/// namespaced kind means all namespaces).
pub fn api_for(kube: &Kube, r: &Resolved, ns: Option<&str>) -> Api<DynamicObject> {
    match (r.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(kube.client.clone(), ns, &r.ar),
        _ => Api::all_with(kube.client.clone(), &r.ar),
    }
}

/// A server object as a plain value, with the `apiVersion`/`kind` list items lack.
pub fn to_value(obj: DynamicObject, r: &Resolved) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        let mut out = Map::new();
        out.insert("apiVersion".into(), r.ar.api_version.clone().into());
        out.insert("kind".into(), r.ar.kind.clone().into());
        for (k, val) in std::mem::take(m) {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, val);
            }
        }
        *m = out;
    }
    v
}

/// Polls `fetch` until every object it returns satisfies the wait (and, when `need_some`, at
/// least one exists). On timeout the error explains the state of the objects and their events.
pub async fn wait_until<F, Fut>(
    kube: &Kube,
    spec: &WaitSpec,
    what: &str,
    need_some: bool,
    mut fetch: F,
) -> Result<Vec<Value>, K8sError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<Value>, K8sError>>,
{
    let start = tokio::time::Instant::now();
    loop {
        let objs = fetch().await?;
        let done = (!need_some || !objs.is_empty())
            && objs.iter().all(|o| satisfied(o, spec.cond.as_ref()));
        if done {
            return Ok(objs);
        }
        if start.elapsed() >= spec.timeout {
            let mut msg = format!(
                "timed out after {} s waiting for {what}",
                spec.timeout.as_secs()
            );
            let pending: Vec<&Value> = objs
                .iter()
                .filter(|o| !satisfied(o, spec.cond.as_ref()))
                .collect();
            if objs.is_empty() {
                msg.push_str(": no matching object exists");
            }
            // A few objects are enough to see the pattern; describing fifty would bury it.
            for obj in pending.iter().take(3) {
                msg.push_str(&format!(
                    "\n{} is not {}:",
                    display_name(obj),
                    wanted(kind_of(obj), spec.cond.as_ref())
                ));
                msg.push_str(&describe::describe(kube, obj).await);
            }
            if pending.len() > 3 {
                msg.push_str(&format!("\n(and {} more)", pending.len() - 3));
            }
            return Err(K8sError::Other(msg));
        }
        let left = spec.timeout.saturating_sub(start.elapsed());
        tokio::time::sleep(spec.sleep.min(left.max(Duration::from_millis(50)))).await;
    }
}

#[cfg(test)]
mod tests;
