//! Why an object is not ready, in the spirit of `kubectl describe`: conditions, the pods of a
//! workload with their phase and container states, and the latest events of all of them.
//! Used only to build failure messages, so every lookup error becomes a line, never a failure.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use serde_json::Value;

use super::client::Kube;
use super::{kind_of, name_of, namespace_of};

/// Events shown per failure: enough for the story, few enough to read.
const MAX_EVENTS: usize = 8;
const MAX_PODS: usize = 5;

pub async fn describe(kube: &Kube, obj: &Value) -> String {
    let mut out = String::new();
    let mut uids: HashSet<String> = HashSet::new();
    let mut names: Vec<(String, String)> = vec![(kind_of(obj).into(), name_of(obj).into())];
    if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
        uids.insert(uid.to_string());
    }
    match kind_of(obj) {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            workload_summary(obj, &mut out);
            conditions(obj, "  ", &mut out);
            pods_of(kube, obj, &mut out, &mut uids, &mut names).await;
        }
        "Pod" => pod_lines(obj, "  ", &mut out),
        "Node" => {
            conditions(obj, "  ", &mut out);
            if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                out.push_str("\n  cordoned (spec.unschedulable=true)");
            }
            if let Some(taints) = obj.pointer("/spec/taints").and_then(Value::as_array) {
                for t in taints {
                    out.push_str(&format!("\n  taint {}", taint_text(t)));
                }
            }
        }
        _ => conditions(obj, "  ", &mut out),
    }
    events(kube, obj, &uids, &names, &mut out).await;
    out
}

pub fn taint_text(t: &Value) -> String {
    let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("");
    if s("value").is_empty() {
        format!("{}:{}", s("key"), s("effect"))
    } else {
        format!("{}={}:{}", s("key"), s("value"), s("effect"))
    }
}

fn workload_summary(obj: &Value, out: &mut String) {
    let st = |f: &str| {
        obj.pointer(&format!("/status/{f}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let desired = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if kind_of(obj) == "DaemonSet" {
        out.push_str(&format!(
            "\n  {} desired, {} ready, {} up to date",
            st("desiredNumberScheduled"),
            st("numberReady"),
            st("updatedNumberScheduled")
        ));
    } else {
        out.push_str(&format!(
            "\n  replicas: {desired} desired, {} updated, {} total, {} ready, {} available",
            st("updatedReplicas"),
            st("replicas"),
            st("readyReplicas"),
            st("availableReplicas")
        ));
    }
    if let Some(sel) = obj
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        && !sel.is_empty()
    {
        let text: Vec<String> = sel
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        out.push_str(&format!("\n  nodeSelector: {}", text.join(",")));
    }
}

fn conditions(obj: &Value, indent: &str, out: &mut String) {
    let Some(conds) = obj.pointer("/status/conditions").and_then(Value::as_array) else {
        out.push_str(&format!("\n{indent}no status conditions reported yet"));
        return;
    };
    for c in conds {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!(
            "\n{indent}condition {}={}",
            s("type"),
            s("status")
        ));
        if !s("reason").is_empty() {
            out.push_str(&format!(" ({})", s("reason")));
        }
        if !s("message").is_empty() {
            out.push_str(&format!(": {}", s("message")));
        }
    }
}

fn pod_lines(pod: &Value, indent: &str, out: &mut String) {
    let s = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or("");
    let node = match s("/spec/nodeName") {
        "" => "not scheduled to a node".to_string(),
        n => format!("on node {n}"),
    };
    out.push_str(&format!(
        "\n{indent}pod {}: {} {node}",
        name_of(pod),
        match s("/status/phase") {
            "" => "Unknown",
            p => p,
        }
    ));
    let inner = format!("{indent}  ");
    if let Some(conds) = pod.pointer("/status/conditions").and_then(Value::as_array) {
        // Only the conditions that are not True say something.
        for c in conds {
            let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
            if g("status") != "True" {
                out.push_str(&format!("\n{inner}condition {}={}", g("type"), g("status")));
                if !g("reason").is_empty() {
                    out.push_str(&format!(" ({})", g("reason")));
                }
                if !g("message").is_empty() {
                    out.push_str(&format!(": {}", g("message")));
                }
            }
        }
    }
    for key in ["initContainerStatuses", "containerStatuses"] {
        let Some(list) = pod
            .pointer(&format!("/status/{key}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for c in list {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let ready = c.get("ready").and_then(Value::as_bool) == Some(true);
            let state = c.get("state").and_then(Value::as_object);
            let text = match state.and_then(|m| m.iter().next()) {
                Some((which, detail)) => {
                    let r = detail.get("reason").and_then(Value::as_str).unwrap_or("");
                    let m = detail.get("message").and_then(Value::as_str).unwrap_or("");
                    let mut t = which.clone();
                    if !r.is_empty() {
                        t.push_str(&format!(" ({r})"));
                    }
                    if !m.is_empty() {
                        t.push_str(&format!(": {m}"));
                    }
                    t
                }
                None => "no state".into(),
            };
            out.push_str(&format!(
                "\n{inner}container {name}: {text}{}",
                if ready { ", ready" } else { ", not ready" }
            ));
        }
    }
}

/// Label selector text from `spec.selector.matchLabels`.
fn selector_text(obj: &Value) -> Option<String> {
    let m = obj.pointer("/spec/selector/matchLabels")?.as_object()?;
    Some(
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
    )
}

async fn pods_of(
    kube: &Kube,
    obj: &Value,
    out: &mut String,
    uids: &mut HashSet<String>,
    names: &mut Vec<(String, String)>,
) {
    let Some(sel) = selector_text(obj) else {
        return;
    };
    let ns = namespace_of(obj).unwrap_or(&kube.default_namespace);
    let api: Api<DynamicObject> =
        Api::namespaced_with(kube.client.clone(), ns, &ApiResource::erase::<Pod>(&()));
    let lp = ListParams::default().labels(&sel);
    let pods = match kube.call("listing the pods", api.list(&lp)).await {
        Ok(list) => list.items,
        Err(e) => {
            out.push_str(&format!("\n  (could not list its pods: {e})"));
            return;
        }
    };
    if pods.is_empty() {
        out.push_str(&format!("\n  no pods match {sel}"));
    }
    for pod in pods.iter().take(MAX_PODS) {
        let v = serde_json::to_value(pod).unwrap_or(Value::Null);
        if let Some(uid) = v.pointer("/metadata/uid").and_then(Value::as_str) {
            uids.insert(uid.to_string());
        }
        // Events of the ReplicaSets in between (FailedCreate) matter too.
        if let Some(owners) = v
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        {
            for o in owners {
                if let Some(uid) = o.get("uid").and_then(Value::as_str) {
                    uids.insert(uid.to_string());
                }
            }
        }
        names.push(("Pod".into(), name_of(&v).to_string()));
        pod_lines(&v, "  ", out);
    }
    if pods.len() > MAX_PODS {
        out.push_str(&format!("\n  (and {} more pods)", pods.len() - MAX_PODS));
    }
}

async fn events(
    kube: &Kube,
    obj: &Value,
    uids: &HashSet<String>,
    names: &[(String, String)],
    out: &mut String,
) {
    let (api, lp): (Api<Event>, ListParams) = match namespace_of(obj) {
        Some(ns) => (
            Api::namespaced(kube.client.clone(), ns),
            ListParams::default(),
        ),
        // Cluster-scoped objects (nodes) have their events in some namespace: ask by name.
        None => (
            Api::all(kube.client.clone()),
            ListParams::default().fields(&format!(
                "involvedObject.kind={},involvedObject.name={}",
                kind_of(obj),
                name_of(obj)
            )),
        ),
    };
    let list = match kube.call("listing events", api.list(&lp)).await {
        Ok(l) => l.items,
        Err(e) => {
            out.push_str(&format!("\n  (could not list events: {e})"));
            return;
        }
    };
    let mut mine: Vec<&Event> = list
        .iter()
        .filter(|e| {
            let io = &e.involved_object;
            io.uid.as_ref().is_some_and(|u| uids.contains(u))
                || names.iter().any(|(k, n)| {
                    io.kind.as_deref() == Some(k.as_str()) && io.name.as_deref() == Some(n.as_str())
                })
        })
        .collect();
    mine.sort_by_key(|e| event_time(e));
    if mine.is_empty() {
        out.push_str("\n  no events");
        return;
    }
    out.push_str("\n  events (latest last):");
    let skip = mine.len().saturating_sub(MAX_EVENTS);
    for e in mine.into_iter().skip(skip) {
        let io = &e.involved_object;
        let count = e.count.filter(|c| *c > 1).map(|c| format!(", x{c}"));
        out.push_str(&format!(
            "\n    {} {} ({}/{}{}): {}",
            e.type_.as_deref().unwrap_or("Normal"),
            e.reason.as_deref().unwrap_or(""),
            io.kind.as_deref().unwrap_or("").to_ascii_lowercase(),
            io.name.as_deref().unwrap_or(""),
            count.unwrap_or_default(),
            e.message.as_deref().unwrap_or("").trim_end()
        ));
    }
}

fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}
