//! `k8s_node` (mixop's own module): wait for nodes to be Ready, and label, taint, cordon, drain
//! or delete them.
//!
//! ```yaml
//! - name: every Windows worker joined and is Ready
//!   k8s_node:
//!     kubeconfig: "{{ playbook_dir }}/kubeconfig"
//!     label_selectors: [kubernetes.io/os=windows]
//!     count: 2                 # at least 2 matching nodes Ready (with `names`: all of them)
//!     wait_timeout: 600
//!   register: win_nodes        # win_nodes.nodes: name, ready, os, labels, taints, unschedulable...
//!
//! - name: take win2 out of service before teardown
//!   k8s_node:
//!     names: [win2]
//!     drain: true              # cordon, then evict its pods (DaemonSet and static pods stay)
//!     state: absent            # and delete the Node object
//! ```
//!
//! Arguments:
//! - `names` (alias `name`): node names; `label_selectors`: list of `key=value` selectors. Both
//!   narrow the set of nodes; with neither, every node is selected (only for waiting: changing
//!   nodes needs a selection).
//! - `wait` (default: true when `count` is given): wait until the selected nodes are Ready: all of
//!   `names`, or at least `count` of the matching nodes, or (neither) all matching nodes and at
//!   least one. `wait_timeout` (seconds, default 120), `wait_sleep` (default 1). On a timeout the
//!   message lists each node's conditions, taints and latest events.
//! - `labels`: mapping; a `null` value removes the label.
//! - `taints`: list of `{key, value, effect, state}`; `state: absent` removes the taints with
//!   that key (and effect, when given).
//! - `cordon`: true marks the nodes unschedulable, false makes them schedulable again.
//! - `drain`: cordon, then evict every pod on the nodes except DaemonSet-owned and static (mirror)
//!   pods, and wait (up to `wait_timeout`) until they are gone.
//! - `state: absent`: delete the Node objects (after draining when `drain` is true).
//!
//! Returns `nodes` (a summary of each selected node), `ready` (names of Ready ones) and
//! `evicted` (`namespace/name` of evicted pods). `changed` is true only when a node was modified.
//! In check mode, modifications are server-side dry runs and nothing is evicted.

use crate::modules::Target;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::client::{K8sError, Kube};
use super::describe::{describe, taint_text};
use super::{CONN_PARAMS, MIXOP, WaitSpec, condition, name_of};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Param, alias, arg_bool,
    arg_str, choice, outcome, p,
};

pub struct K8sNode;

static PARAMS: [Param; 15] = [
    alias(p("names", List), &["name"]),
    p("label_selectors", List),
    p("count", Int),
    choice("state", &["present", "absent"]),
    p("wait", Bool),
    p("wait_timeout", Int),
    p("wait_sleep", Int),
    p("labels", Dict),
    p("taints", List),
    p("cordon", Bool),
    p("drain", Bool),
    CONN_PARAMS[0],
    CONN_PARAMS[1],
    CONN_PARAMS[2],
    CONN_PARAMS[3],
];

static DEF: ModuleDef = ModuleDef {
    name: "k8s_node",
    namespaces: MIXOP,
    params: &PARAMS,
    free_form: FreeForm::No,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[async_trait]
impl Module for K8sNode {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let kube = Kube::for_args(&args).await?;
        let sel = Selection::from_args(&args)?;
        let modifies = ["labels", "taints", "cordon", "drain"]
            .iter()
            .any(|k| args.get(*k).is_some_and(|v| !v.is_null()))
            || arg_str(&args, "state") == Some("absent");
        if modifies && sel.names.is_empty() && sel.labels.is_none() {
            return Err(ModError::msg(
                "`k8s_node` changes nodes only with `names` or `label_selectors` (refusing to \
                 change every node of the cluster)",
            ));
        }
        let spec = WaitSpec::from_args(&args)?;
        let count = args.get("count").and_then(Value::as_u64);
        let mut nodes = if arg_bool(&args, "wait", count.is_some()) {
            wait_ready(&kube, &sel, count, &spec).await?
        } else {
            sel.fetch(&kube).await?
        };
        let mut changed = false;
        let mut evicted = Vec::new();
        let check = ctx.check_mode;
        let drain = arg_bool(&args, "drain", false);
        for node in nodes.iter_mut() {
            let patch = node_patch(node, &args, drain)?;
            if let Some(patch) = patch {
                let api: Api<Node> = Api::all(kube.client.clone());
                let pp = PatchParams {
                    dry_run: check,
                    ..PatchParams::default()
                };
                let name = name_of(node).to_string();
                let after = kube
                    .call(
                        &format!("updating node {name}"),
                        api.patch(&name, &pp, &Patch::Merge(&patch)),
                    )
                    .await?;
                changed = true;
                *node = serde_json::to_value(after).unwrap_or(Value::Null);
            }
            if drain {
                let pods = drain_node(&kube, name_of(node), check, &spec).await?;
                changed |= !pods.is_empty();
                evicted.extend(pods);
            }
        }
        if arg_str(&args, "state") == Some("absent") {
            let api: Api<Node> = Api::all(kube.client.clone());
            let dp = DeleteParams {
                dry_run: check,
                ..DeleteParams::default()
            };
            for node in &nodes {
                let name = name_of(node);
                match kube
                    .call(&format!("deleting node {name}"), api.delete(name, &dp))
                    .await
                {
                    Ok(_) => changed = true,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut out = outcome(changed);
        let ready: Vec<Value> = nodes
            .iter()
            .filter(|n| is_ready(n))
            .map(|n| Value::from(name_of(n)))
            .collect();
        out.insert(
            "nodes".into(),
            Value::Array(nodes.iter().map(summary).collect()),
        );
        out.insert("ready".into(), Value::Array(ready));
        out.insert(
            "evicted".into(),
            Value::Array(evicted.into_iter().map(Value::from).collect()),
        );
        Ok(out)
    }
}

struct Selection {
    names: Vec<String>,
    labels: Option<String>,
}

impl Selection {
    fn from_args(args: &Args) -> Result<Selection, ModError> {
        let list = |k: &str| -> Vec<String> {
            match args.get(k) {
                Some(Value::Array(a)) => a.iter().map(crate::value::to_text).collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => vec![],
            }
        };
        let labels = list("label_selectors");
        Ok(Selection {
            names: list("names"),
            labels: (!labels.is_empty()).then(|| labels.join(",")),
        })
    }

    /// The selected nodes, in the order of `names` when given.
    async fn fetch(&self, kube: &Kube) -> Result<Vec<Value>, K8sError> {
        let api: Api<Node> = Api::all(kube.client.clone());
        let mut lp = ListParams::default();
        if let Some(l) = &self.labels {
            lp = lp.labels(l);
        }
        let list = kube.call("listing nodes", api.list(&lp)).await?;
        let mut all: Vec<Value> = list
            .items
            .into_iter()
            .map(|n| {
                let mut v = serde_json::to_value(n).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("kind".into(), "Node".into());
                    m.insert("apiVersion".into(), "v1".into());
                }
                v
            })
            .collect();
        if !self.names.is_empty() {
            all.retain(|n| self.names.iter().any(|w| w == name_of(n)));
        }
        Ok(all)
    }
}

fn is_ready(node: &Value) -> bool {
    condition(node, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

async fn wait_ready(
    kube: &Arc<Kube>,
    sel: &Selection,
    count: Option<u64>,
    spec: &WaitSpec,
) -> Result<Vec<Value>, ModError> {
    let start = tokio::time::Instant::now();
    loop {
        let nodes = sel.fetch(kube).await?;
        let ready = nodes.iter().filter(|n| is_ready(n)).count() as u64;
        let missing: Vec<&String> = sel
            .names
            .iter()
            .filter(|w| !nodes.iter().any(|n| name_of(n) == w.as_str()))
            .collect();
        let done = match count {
            Some(c) => ready >= c && missing.is_empty(),
            None => !nodes.is_empty() && missing.is_empty() && ready == nodes.len() as u64,
        };
        if done {
            return Ok(nodes);
        }
        if start.elapsed() >= spec.timeout {
            let mut what = Vec::new();
            if !sel.names.is_empty() {
                what.push(format!("nodes {}", sel.names.join(", ")));
            }
            if let Some(l) = &sel.labels {
                what.push(format!("nodes matching {l}"));
            }
            if what.is_empty() {
                what.push("all nodes".into());
            }
            let want = match count {
                Some(c) => format!("at least {c} Ready"),
                None => "Ready".into(),
            };
            let mut msg = format!(
                "timed out after {} s waiting for {} to be {want}: {ready} of {} Ready",
                spec.timeout.as_secs(),
                what.join(" and "),
                nodes.len()
            );
            if !missing.is_empty() {
                let m: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                msg.push_str(&format!(
                    "\nnot registered with the cluster: {} (has its agent joined?)",
                    m.join(", ")
                ));
            }
            for n in nodes.iter().filter(|n| !is_ready(n)).take(5) {
                msg.push_str(&format!("\nNode {} is not Ready:", name_of(n)));
                msg.push_str(&describe(kube, n).await);
            }
            return Err(ModError::msg(msg));
        }
        tokio::time::sleep(spec.sleep).await;
    }
}

/// The merge patch that brings a node to the wanted labels, taints and cordon state, or None
/// when it is already there.
fn node_patch(node: &Value, args: &Args, drain: bool) -> Result<Option<Value>, ModError> {
    let mut meta = Map::new();
    let mut spec = Map::new();
    if let Some(Value::Object(want)) = args.get("labels") {
        let have = node.pointer("/metadata/labels").and_then(Value::as_object);
        let mut labels = Map::new();
        for (k, v) in want {
            let current = have.and_then(|h| h.get(k));
            match v {
                Value::Null if current.is_some() => {
                    labels.insert(k.clone(), Value::Null);
                }
                Value::Null => {}
                v => {
                    let text = crate::value::to_text(v);
                    if current.and_then(Value::as_str) != Some(text.as_str()) {
                        labels.insert(k.clone(), text.into());
                    }
                }
            }
        }
        if !labels.is_empty() {
            meta.insert("labels".into(), Value::Object(labels));
        }
    }
    if let Some(Value::Array(want)) = args.get("taints") {
        let have: Vec<Value> = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut taints = have.clone();
        for t in want {
            let s = |k: &str| t.get(k).filter(|v| !v.is_null()).map(crate::value::to_text);
            let key = s("key").ok_or_else(|| ModError::msg(format!("taint {t} needs a `key`")))?;
            let effect = s("effect");
            let same = |x: &Value| {
                x.get("key").and_then(Value::as_str) == Some(key.as_str())
                    && effect
                        .as_deref()
                        .is_none_or(|e| x.get("effect").and_then(Value::as_str) == Some(e))
            };
            if s("state").as_deref() == Some("absent") {
                taints.retain(|x| !same(x));
                continue;
            }
            let effect = effect.clone().ok_or_else(|| {
                ModError::msg(format!(
                    "taint `{key}` needs an `effect` (NoSchedule, PreferNoSchedule or NoExecute)"
                ))
            })?;
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect.as_str()) {
                return Err(ModError::msg(format!(
                    "taint `{key}`: effect must be NoSchedule, PreferNoSchedule or NoExecute, got `{effect}`"
                )));
            }
            let mut new = Map::new();
            new.insert("key".into(), key.clone().into());
            if let Some(v) = s("value") {
                new.insert("value".into(), v.into());
            }
            new.insert("effect".into(), effect.into());
            let new = Value::Object(new);
            match taints.iter_mut().find(|x| same(x)) {
                Some(x) => {
                    // Keep timeAdded and friends: compare only what the user controls.
                    if x.get("value") != new.get("value")
                        && let Some(m) = x.as_object_mut()
                    {
                        match new.get("value") {
                            Some(v) => m.insert("value".into(), v.clone()),
                            None => m.remove("value"),
                        };
                    }
                }
                None => taints.push(new),
            }
        }
        if taints != have {
            spec.insert("taints".into(), Value::Array(taints));
        }
    }
    let cordon = if drain {
        Some(true)
    } else {
        args.get("cordon").and_then(Value::as_bool)
    };
    if let Some(c) = cordon {
        let is = node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
        if c != is {
            spec.insert(
                "unschedulable".into(),
                if c { Value::Bool(true) } else { Value::Null },
            );
        }
    }
    if meta.is_empty() && spec.is_empty() {
        return Ok(None);
    }
    let mut patch = Map::new();
    if !meta.is_empty() {
        patch.insert("metadata".into(), Value::Object(meta));
    }
    if !spec.is_empty() {
        patch.insert("spec".into(), Value::Object(spec));
    }
    Ok(Some(Value::Object(patch)))
}

/// Evicts the node's pods (not DaemonSet or static ones) and waits until they are gone.
async fn drain_node(
    kube: &Kube,
    node: &str,
    check: bool,
    spec: &WaitSpec,
) -> Result<Vec<String>, ModError> {
    let api: Api<Pod> = Api::all(kube.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let doing = format!("listing the pods on node {node}");
    let pods: Vec<Pod> = kube
        .call(&doing, api.list(&lp))
        .await?
        .items
        .into_iter()
        .filter(|p| {
            let static_pod = p
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
            let daemon = p
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet"));
            let done = matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            !static_pod && !daemon && !done
        })
        .collect();
    let names: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let evicted: Vec<String> = names.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
    if check {
        return Ok(evicted);
    }
    let start = tokio::time::Instant::now();
    for (ns, name) in &names {
        let papi: Api<Pod> = Api::namespaced(kube.client.clone(), ns);
        loop {
            let doing = format!("evicting pod {ns}/{name} from node {node}");
            match kube
                .call(&doing, papi.evict(name, &EvictParams::default()))
                .await
            {
                Ok(_) => break,
                Err(e) if e.is_not_found() => break,
                // 429: a PodDisruptionBudget forbids it for now; try again until the timeout.
                Err(K8sError::Api {
                    code: 429, message, ..
                }) => {
                    if start.elapsed() >= spec.timeout {
                        return Err(ModError::msg(format!(
                            "timed out after {} s draining node {node}: cannot evict pod {ns}/{name}: {message}",
                            spec.timeout.as_secs()
                        )));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    loop {
        let left = kube.call(&doing, api.list(&lp)).await?;
        let still: Vec<String> = left
            .items
            .iter()
            .filter_map(|p| {
                let key = (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                );
                names.contains(&key).then(|| format!("{}/{}", key.0, key.1))
            })
            .collect();
        if still.is_empty() {
            return Ok(evicted);
        }
        if start.elapsed() >= spec.timeout {
            return Err(ModError::msg(format!(
                "timed out after {} s draining node {node}: pods still there: {}",
                spec.timeout.as_secs(),
                still.join(", ")
            )));
        }
        tokio::time::sleep(spec.sleep).await;
    }
}

/// What a playbook usually wants to know about a node.
fn summary(node: &Value) -> Value {
    let s = |p: &str| node.pointer(p).cloned().unwrap_or(Value::Null);
    let labels = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let roles: Vec<Value> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .map(Value::from)
        .collect();
    let taints: Vec<Value> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|t| t.iter().map(|x| Value::from(taint_text(x))).collect())
        .unwrap_or_default();
    json!({
        "name": name_of(node),
        "ready": is_ready(node),
        "os": labels.get("kubernetes.io/os").cloned().unwrap_or(Value::Null),
        "roles": roles,
        "unschedulable": node.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false),
        "taints": taints,
        "labels": labels,
        "addresses": s("/status/addresses"),
        "kubelet_version": s("/status/nodeInfo/kubeletVersion"),
        "os_image": s("/status/nodeInfo/osImage"),
        "kernel_version": s("/status/nodeInfo/kernelVersion"),
        "container_runtime": s("/status/nodeInfo/containerRuntimeVersion"),
    })
}

#[cfg(test)]
pub(super) fn node_patch_for_test(
    node: &Value,
    args: &Args,
    drain: bool,
) -> Result<Option<Value>, String> {
    node_patch(node, args, drain).map_err(|e| match e {
        ModError::Failed { msg, .. } => msg,
        ModError::Conn(c) => format!("{c:?}"),
    })
}
