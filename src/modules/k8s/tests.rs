//! Edge cases against a mocked API server (kube-rs `Client::new` over a tower service): error
//! statuses the test double does not produce on demand, a server that never answers, and the
//! pure readiness and patch logic.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::client::Body;
use kube::core::ApiResource;
use serde_json::{Value, json};

use super::client::{K8sError, Kube};
use super::{Cond, WaitSpec, satisfied, wait_until};

/// A client whose every request is answered by `reply(method, path_and_query)`; requests are
/// recorded.
fn mock(
    reply: impl Fn(&str, &str) -> (u16, Value) + Send + Sync + 'static,
) -> (Kube, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let reply = Arc::new(reply);
    let svc = tower::service_fn(move |req: Request<Body>| {
        let reply = reply.clone();
        let log = log.clone();
        async move {
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            if let Ok(mut l) = log.lock() {
                l.push(format!("{} {pq}", req.method()));
            }
            let (code, body) = reply(req.method().as_str(), &pq);
            let mut resp = Response::new(Body::from(body.to_string().into_bytes()));
            *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(resp)
        }
    });
    let client = kube::Client::new(svc, "default");
    (
        Kube::from_client(client, "https://10.0.0.1:6443", Duration::from_secs(5)),
        seen,
    )
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "code": code, "reason": reason, "message": message})
}

fn configmaps(kube: &Kube) -> Api<DynamicObject> {
    let ar = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    Api::namespaced_with(kube.client.clone(), "default", &ar)
}

async fn apply_cm(kube: &Kube) -> Result<DynamicObject, K8sError> {
    let api = configmaps(kube);
    let doc = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    kube.call(
        "applying ConfigMap default/x",
        api.patch("x", &PatchParams::apply("mixop"), &Patch::Apply(&doc)),
    )
    .await
}

#[tokio::test]
async fn conflict_suggests_force() {
    let (kube, seen) = mock(|_, _| {
        (
            409,
            status(
                409,
                "Conflict",
                "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.a",
            ),
        )
    });
    let err = apply_cm(&kube)
        .await
        .expect_err("409 must fail")
        .to_string();
    assert!(
        err.contains("conflict (409) while applying ConfigMap default/x"),
        "{err}"
    );
    assert!(err.contains("kubectl-edit"), "{err}");
    assert!(err.contains("force: true"), "{err}");
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen[0].starts_with("PATCH /api/v1/namespaces/default/configmaps/x?"),
        "{seen:?}"
    );
    assert!(seen[0].contains("fieldManager=mixop"), "{seen:?}");
}

#[tokio::test]
async fn unauthorized_and_forbidden_name_the_credentials() {
    let (kube, _) = mock(|_, _| (401, status(401, "Unauthorized", "Unauthorized")));
    let err = apply_cm(&kube).await.expect_err("401").to_string();
    assert!(
        err.contains("https://10.0.0.1:6443 rejected the credentials (401 Unauthorized)"),
        "{err}"
    );
    assert!(err.contains("test credentials"), "{err}");

    let (kube, _) = mock(|_, _| {
        (
            403,
            status(
                403,
                "Forbidden",
                "configmaps \"x\" is forbidden: User \"viewer\" cannot patch resource \"configmaps\"",
            ),
        )
    });
    let err = apply_cm(&kube).await.expect_err("403").to_string();
    assert!(
        err.starts_with("forbidden (403) while applying ConfigMap default/x"),
        "{err}"
    );
    assert!(err.contains("cannot patch resource"), "{err}");
}

#[tokio::test]
async fn other_statuses_keep_the_server_message() {
    let (kube, _) = mock(|_, _| {
        (
            422,
            status(
                422,
                "Invalid",
                "ConfigMap \"x\" is invalid: metadata.name: Invalid value",
            ),
        )
    });
    let err = apply_cm(&kube).await.expect_err("422").to_string();
    assert!(err.contains("(422 Invalid)"), "{err}");
    assert!(err.contains("metadata.name: Invalid value"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let svc = tower::service_fn(|_req: Request<Body>| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let kube = Kube::from_client(
        kube::Client::new(svc, "default"),
        "https://10.0.0.1:6443",
        Duration::from_millis(300),
    );
    let t0 = std::time::Instant::now();
    let err = apply_cm(&kube).await.expect_err("timeout");
    assert!(matches!(err, K8sError::Timeout { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(err.to_string().contains("did not answer within"), "{err}");
}

fn node(ready: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "win1", "uid": "u1"},
        "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletNotReady",
            "message": "container runtime network not ready: cni plugin not initialized"}]}})
}

#[tokio::test]
async fn wait_timeout_describes_conditions_and_events() {
    let (kube, seen) = mock(|_, pq| {
        if pq.starts_with("/api/v1/events") {
            (
                200,
                json!({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": "e1", "namespace": "default"},
                 "involvedObject": {"kind": "Node", "name": "win1", "uid": "u1"},
                 "reason": "NodeNotReady", "type": "Normal", "message": "Node win1 status is now: NodeNotReady",
                 "lastTimestamp": "2026-01-01T00:00:02Z"},
                {"metadata": {"name": "e0", "namespace": "default"},
                 "involvedObject": {"kind": "Node", "name": "win1", "uid": "u1"},
                 "reason": "Starting", "type": "Normal", "message": "Starting kubelet.",
                 "lastTimestamp": "2026-01-01T00:00:01Z"}]}),
            )
        } else {
            (404, status(404, "NotFound", "not found"))
        }
    });
    let spec = WaitSpec {
        cond: None,
        timeout: Duration::from_millis(300),
        sleep: Duration::from_millis(100),
    };
    let polls = Arc::new(Mutex::new(0));
    let p2 = polls.clone();
    let err = wait_until(&kube, &spec, "Node win1 to be Ready", true, || {
        let p = p2.clone();
        async move {
            if let Ok(mut n) = p.lock() {
                *n += 1;
            }
            Ok(vec![node("False")])
        }
    })
    .await
    .expect_err("never Ready")
    .to_string();
    assert!(polls.lock().map(|n| *n).unwrap_or(0) >= 3);
    assert!(
        err.starts_with("timed out after 0 s waiting for Node win1 to be Ready"),
        "{err}"
    );
    assert!(
        err.contains(
            "condition Ready=False (KubeletNotReady): container runtime network not ready"
        ),
        "{err}"
    );
    assert!(
        err.contains("taint node.kubernetes.io/not-ready:NoSchedule"),
        "{err}"
    );
    // Events oldest first, latest last.
    let start = err.find("Starting kubelet").unwrap_or(usize::MAX);
    let notready = err.find("NodeNotReady (node/win1)").unwrap_or(0);
    assert!(start < notready, "{err}");
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.iter()
            .any(|s| s
                .contains("fieldSelector=involvedObject.kind%3DNode%2CinvolvedObject.name%3Dwin1")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_failing_poll_is_reported_not_retried_forever() {
    let (kube, _) = mock(|_, _| (404, status(404, "NotFound", "nodes \"x\" not found")));
    let spec = WaitSpec {
        cond: None,
        timeout: Duration::from_secs(30),
        sleep: Duration::from_millis(100),
    };
    let api: Api<DynamicObject> = Api::all_with(
        kube.client.clone(),
        &ApiResource::erase::<k8s_openapi::api::core::v1::Node>(&()),
    );
    let err = wait_until(&kube, &spec, "x", true, || {
        let api = api.clone();
        let kube = &kube;
        async move {
            kube.call("reading node x", api.get("x"))
                .await
                .map(|o| vec![serde_json::to_value(o).unwrap_or(Value::Null)])
        }
    })
    .await
    .expect_err("404");
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn readiness_rules() {
    let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}});
    let avail = Cond {
        type_: "Available".into(),
        status: "True".into(),
        reason: None,
    };
    // The status is about generation 1: not yet trustworthy.
    assert!(!satisfied(&d, Some(&avail)));
    assert!(!satisfied(&d, None));
    d["status"]["observedGeneration"] = json!(2);
    assert!(satisfied(&d, Some(&avail)));
    assert!(satisfied(&d, None));
    let wrong_reason = Cond {
        reason: Some("NewReplicaSetAvailable".into()),
        ..avail.clone()
    };
    assert!(!satisfied(&d, Some(&wrong_reason)));
    d["status"]["availableReplicas"] = json!(1);
    assert!(!satisfied(&d, None));
    assert!(satisfied(&node("True"), None));
    assert!(!satisfied(&node("Unknown"), None));
    // Kinds without a readiness notion are ready once they exist.
    assert!(satisfied(&json!({"kind": "ConfigMap"}), None));

    let c = Cond::from_arg(Some(&json!({"type": "Ready", "status": true})))
        .ok()
        .flatten()
        .map(|c| c.to_string());
    assert_eq!(c.as_deref(), Some("Ready=True"));
    assert!(Cond::from_arg(Some(&json!({"status": "True"}))).is_err());
}

#[test]
fn node_patches_only_what_differs() {
    use super::node::node_patch_for_test as patch;
    let n = json!({"metadata": {"name": "w", "labels": {"a": "1", "gone": "x"}},
        "spec": {"taints": [{"key": "t", "value": "v", "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}]}});
    let args = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert_eq!(
        patch(
            &n,
            &args(
                json!({"labels": {"a": 1}, "taints": [{"key": "t", "value": "v", "effect": "NoSchedule"}], "cordon": false})
            ),
            false
        ),
        Ok(None)
    );
    assert_eq!(
        patch(
            &n,
            &args(json!({"labels": {"a": "2", "gone": null, "never": null}})),
            false
        ),
        Ok(Some(
            json!({"metadata": {"labels": {"a": "2", "gone": null}}})
        ))
    );
    assert_eq!(
        patch(
            &n,
            &args(
                json!({"taints": [{"key": "t", "state": "absent"}, {"key": "os", "value": "windows", "effect": "NoExecute"}]})
            ),
            true
        ),
        Ok(Some(
            json!({"spec": {"taints": [{"key": "os", "value": "windows", "effect": "NoExecute"}], "unschedulable": true}})
        ))
    );
    let bad = patch(
        &n,
        &args(json!({"taints": [{"key": "t", "effect": "Sometimes"}]})),
        false,
    );
    assert!(bad.is_err_and(|e| e.contains("NoSchedule, PreferNoSchedule or NoExecute")));
}
