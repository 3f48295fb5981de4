//! The Kubernetes modules (`k8s`, `k8s_info`, `k8s_node`) end to end: `mixop run` on playbooks
//! against the project's Kubernetes API test double (tests/support/kube_double), which is itself
//! checked with the real kubectl.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Session;
use serde_json::Value;

/// Sets a node's Ready condition through the double's test-control endpoint.
fn set_node_ready(state: &Path, node: &str) {
    let script = r#"
import http.client, ssl, sys
d, node = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
ctx.load_cert_chain(d + "/client-admin.crt", d + "/client-admin.key")
c = http.client.HTTPSConnection("127.0.0.1", int(open(d + "/port").read()), context=ctx, timeout=20)
c.request("POST", "/_double/nodes/%s/ready?status=True" % node)
r = c.getresponse()
sys.exit(0 if r.status == 200 else "HTTP %d: %s" % (r.status, r.read()))
"#;
    let out = common::venv_python()
        .args(["-c", script])
        .arg(state)
        .arg(node)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "set {node} Ready: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector:
        kubernetes.io/os: windows
      containers:
        - name: iis
          image: mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022
"#;

#[test]
fn deployment_on_windows_nodes_waits_is_idempotent_and_is_listed() {
    let s = Session::kube(None).file("files/web.yml", WEB).playbook(
        r#"- hosts: localhost
  gather_facts: false
  vars:
    kc: "@KUBECONFIG@"
  tasks:
    - name: apply and wait for Available
      kubernetes.core.k8s:
        kubeconfig: "{{ kc }}"
        src: web.yml
        wait: true
        wait_condition: {type: Available, status: "True"}
        wait_timeout: 30
      register: first
    - name: apply again
      k8s:
        kubeconfig: "{{ kc }}"
        src: web.yml
      register: second
    - name: the pods
      kubernetes.core.k8s_info:
        kubeconfig: "{{ kc }}"
        kind: Pod
        namespace: default
        label_selectors: [app=web]
        wait: true
        wait_timeout: 30
      register: pods
    - name: Windows nodes
      k8s_info:
        kubeconfig: "{{ kc }}"
        kind: Node
        label_selectors: ["kubernetes.io/os=windows"]
      register: nodes
    - name: an unknown kind is not an error for k8s_info
      k8s_info:
        kubeconfig: "{{ kc }}"
        kind: Gadget
        api_version: example.com/v1
      register: nokind
    - copy:
        dest: "@OUT@/results.json"
        content: "{{ {'first': first, 'second': second, 'pods': pods.resources, 'nodes': nodes.resources | map(attribute='metadata.name') | list, 'nokind': nokind} | to_json }}"
"#,
    );
    let r = s.run();
    r.ok();
    let res = s.out_json("results.json");
    assert_eq!(res["first"]["changed"], true, "{res}");
    assert_eq!(res["first"]["method"], "create");
    assert_eq!(res["first"]["result"]["kind"], "Deployment");
    assert_eq!(res["first"]["result"]["status"]["availableReplicas"], 2);
    assert_eq!(
        res["second"]["changed"], false,
        "second apply: {}",
        res["second"]
    );
    let pods = res["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 2, "{pods:?}");
    let mut on: Vec<&str> = pods
        .iter()
        .map(|p| {
            assert_eq!(p["status"]["phase"], "Running", "{p}");
            assert_eq!(p["kind"], "Pod");
            p["spec"]["nodeName"].as_str().unwrap_or_default()
        })
        .collect();
    on.sort_unstable();
    assert_eq!(on, ["win1", "win2"]);
    assert_eq!(res["nodes"], serde_json::json!(["win1", "win2"]));
    assert_eq!(res["nokind"]["api_found"], false);
    assert_eq!(res["nokind"]["resources"], serde_json::json!([]));
    // Server-side apply with mixop's field manager, as the double recorded it.
    let applies: Vec<Value> = s
        .double()
        .audit()
        .into_iter()
        .filter(|a| a["verb"] == "PATCH")
        .collect();
    assert_eq!(applies.len(), 2, "{applies:?}");
    for a in &applies {
        assert_eq!(a["contentType"], "application/apply-patch+yaml");
        assert_eq!(a["query"]["fieldManager"], "mixop", "{a}");
    }
    assert_eq!(
        common::parse_recap(&r.stdout, "localhost").map(|c| c.changed),
        Some(2)
    );
}

/// A Deployment no node can take (indented as a task's `definition:`).
const NOWHERE: &str = r#"          apiVersion: apps/v1
          kind: Deployment
          metadata: {name: nowhere, namespace: default}
          spec:
            replicas: 1
            selector:
              matchLabels: {app: nowhere}
            template:
              metadata:
                labels: {app: nowhere}
              spec:
                nodeSelector: {kubernetes.io/os: plan9}
                containers: [{name: c, image: busybox}]
"#;

#[test]
fn check_mode_is_a_dry_run_and_absent_deletes() {
    let s = Session::kube(None)
        .playbook(
            r#"- hosts: localhost
  gather_facts: false
  tasks:
    - k8s:
        kubeconfig: "@KUBECONFIG@"
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: settings, namespace: default}
          data: {mode: "{{ mode | default('a') }}"}
      register: applied
    - k8s_info:
        kubeconfig: "@KUBECONFIG@"
        kind: ConfigMap
        name: settings
        namespace: default
      register: found
    - copy:
        dest: "@OUT@/{{ out }}.json"
        content: "{{ {'applied': applied, 'found': found.resources} | to_json }}"
      check_mode: false
"#,
        )
        .file(
            "del.yml",
            r#"- hosts: localhost
  gather_facts: false
  tasks:
    - k8s:
        kubeconfig: "@KUBECONFIG@"
        state: absent
        kind: ConfigMap
        name: settings
        namespace: default
        wait: true
      register: gone
    - k8s_info:
        kubeconfig: "@KUBECONFIG@"
        kind: ConfigMap
        namespace: default
      register: left
    - copy:
        dest: "@OUT@/del-{{ n }}.json"
        content: "{{ {'gone': gone.changed, 'left': left.resources | map(attribute='metadata.name') | list} | to_json }}"
"#,
        );
    // Check mode on a missing object: reported as a change, nothing stored.
    s.run_with(&["--check", "-e", "out=check"]).ok();
    let res = s.out_json("check.json");
    assert_eq!(res["applied"]["changed"], true, "{res}");
    assert_eq!(res["found"], serde_json::json!([]));
    let patches: Vec<Value> = s
        .double()
        .audit()
        .into_iter()
        .filter(|a| a["verb"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["query"]["dryRun"], "All", "{:?}", patches[0]);

    s.run_with(&["-e", "out=real"]).ok();
    let res = s.out_json("real.json");
    assert_eq!(res["found"][0]["data"]["mode"], "a", "{res}");

    // Check mode on an existing object: no change for the same data, a change for new data,
    // and the stored object keeps its value either way.
    s.run_with(&["--check", "-e", "out=same"]).ok();
    assert_eq!(s.out_json("same.json")["applied"]["changed"], false);
    s.run_with(&["--check", "-e", "out=other", "-e", "mode=b"])
        .ok();
    let res = s.out_json("other.json");
    assert_eq!(res["applied"]["changed"], true);
    assert_eq!(res["found"][0]["data"]["mode"], "a");

    s.run_file("del.yml", &["-e", "n=1"]).ok();
    s.run_file("del.yml", &["-e", "n=2"]).ok();
    let first = s.out_json("del-1.json");
    assert_eq!(first["gone"], true, "{first}");
    assert!(
        !first["left"]
            .as_array()
            .is_some_and(|l| l.iter().any(|n| n == "settings")),
        "{first}"
    );
    assert_eq!(s.out_json("del-2.json")["gone"], false);
}

#[test]
fn unschedulable_deployment_times_out_with_the_scheduler_reason() {
    let s = Session::kube(None).playbook(&format!(
        r#"- hosts: localhost
  gather_facts: false
  tasks:
    - k8s:
        kubeconfig: "@KUBECONFIG@"
        wait: true
        wait_condition: {{type: Available}}
        wait_timeout: 3
        definition:
{NOWHERE}"#
    ));
    let t0 = Instant::now();
    let r = s.run();
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(t0.elapsed() >= Duration::from_secs(3));
    let all = r.all();
    for needle in [
        "timed out after 3 s waiting for Deployment default/nowhere to be Available=True",
        "nodeSelector: kubernetes.io/os=plan9",
        "Pending not scheduled to a node",
        "condition PodScheduled=False (Unschedulable)",
        "Warning FailedScheduling",
        "didn't match Pod's node affinity/selector",
    ] {
        assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
    }
}

#[test]
fn k8s_node_waits_for_ready_then_labels_taints_drains_and_deletes() {
    let s = Session::kube(Some(
        "nodes:\n  - {name: lab-server, os: linux, roles: [control-plane, master]}\n  - {name: win1, os: windows, ready: false}\n  - {name: win2, os: windows}\n",
    ));
    // win1 turns Ready only once mixop has listed the Windows nodes for the "both Ready" task
    // (after the first task saw it NotReady), so that task really waits, on any machine.
    let state = s.double().dir.path().to_path_buf();
    let audit = s.double().file("audit.jsonl");
    let flipper = std::thread::spawn(move || {
        let t0 = Instant::now();
        loop {
            let listed = std::fs::read_to_string(&audit)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|r| {
                    r["verb"] == "GET"
                        && r["path"] == "/api/v1/nodes"
                        && r["query"]["labelSelector"]
                            .as_str()
                            .is_some_and(|s| s.contains("kubernetes.io/os=windows"))
                });
            if listed {
                set_node_ready(&state, "win1");
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "mixop never listed the Windows nodes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    s.write("files/web.yml", WEB);
    s.write(
        "pb.yml",
        r#"- hosts: localhost
  gather_facts: false
  tasks:
    - name: win1 is NotReady at first
      k8s_node: {kubeconfig: "@KUBECONFIG@", names: [win1]}
      register: before
    - name: both Windows workers Ready
      k8s_node:
        kubeconfig: "@KUBECONFIG@"
        label_selectors: [kubernetes.io/os=windows]
        count: 2
        wait_timeout: 20
      register: ready
    - k8s: {kubeconfig: "@KUBECONFIG@", src: web.yml, wait: true, wait_timeout: 30}
    - name: label, taint
      k8s_node:
        kubeconfig: "@KUBECONFIG@"
        names: [win2]
        labels: {mixop.dev/pool: iis}
        taints: [{key: dedicated, value: iis, effect: NoSchedule}]
      register: labelled
    - name: same again
      k8s_node:
        kubeconfig: "@KUBECONFIG@"
        names: [win2]
        labels: {mixop.dev/pool: iis}
        taints: [{key: dedicated, value: iis, effect: NoSchedule}]
      register: again
    - name: drain and delete win2
      k8s_node: {kubeconfig: "@KUBECONFIG@", names: [win2], drain: true, state: absent, wait_timeout: 20}
      register: drained
    - k8s_info: {kubeconfig: "@KUBECONFIG@", kind: Node}
      register: nodes
    - copy:
        dest: "@OUT@/nodes.json"
        content: "{{ {'before': before, 'ready': ready, 'labelled': labelled, 'again': again, 'drained': drained, 'nodes': nodes.resources | map(attribute='metadata.name') | list} | to_json }}"
"#,
    );
    let r = s.run();
    flipper.join().expect("win1 set Ready");
    r.ok();
    let res = s.out_json("nodes.json");
    assert_eq!(res["before"]["nodes"][0]["ready"], false, "{res}");
    assert_eq!(res["before"]["changed"], false);
    assert_eq!(res["ready"]["ready"], serde_json::json!(["win1", "win2"]));
    assert_eq!(
        res["ready"]["nodes"][0]["os_image"],
        "Windows Server 2022 Datacenter"
    );
    let win2 = &res["labelled"]["nodes"][0];
    assert_eq!(res["labelled"]["changed"], true);
    assert_eq!(win2["labels"]["mixop.dev/pool"], "iis", "{win2}");
    assert!(
        win2["taints"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "dedicated=iis:NoSchedule")),
        "{win2}"
    );
    assert_eq!(res["again"]["changed"], false, "{}", res["again"]);
    let evicted = res["drained"]["evicted"].as_array().expect("evicted");
    assert_eq!(evicted.len(), 1, "{}", res["drained"]);
    assert!(
        evicted[0]
            .as_str()
            .is_some_and(|s| s.starts_with("default/web-"))
    );
    assert_eq!(res["nodes"], serde_json::json!(["lab-server", "win1"]));
    let evictions = s
        .double()
        .audit()
        .into_iter()
        .filter(|a| {
            a["verb"] == "POST" && a["path"].as_str().is_some_and(|p| p.ends_with("/eviction"))
        })
        .count();
    assert_eq!(evictions, 1);
}

#[test]
fn k8s_node_timeout_explains_node_conditions() {
    let s = Session::kube(Some(
        "nodes:\n  - {name: lab-server, os: linux, roles: [control-plane, master]}\n  - {name: win1, os: windows, ready: false}\n",
    ));
    s.write(
        "pb.yml",
        r#"- hosts: localhost
  gather_facts: false
  tasks:
    - k8s_node: {kubeconfig: "@KUBECONFIG@", names: [win1, win9], wait: true, wait_timeout: 2}
"#,
    );
    let r = s.run();
    assert_eq!(r.code, 2, "{}", r.all());
    let all = r.all();
    for needle in [
        "timed out after 2 s waiting for nodes win1, win9 to be Ready: 0 of 1 Ready",
        "not registered with the cluster: win9",
        "Node win1 is not Ready:",
        "condition Ready=False",
        "taint node.kubernetes.io/not-ready:NoSchedule",
    ] {
        assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
    }
}

#[test]
fn errors_name_the_cause() {
    let s = Session::kube(Some(
        "objects:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: seed, namespace: default}, data: {a: b}}\n",
    ));
    let bad = s.double().file("kubeconfig-bad");
    let text =
        std::fs::read_to_string(s.double().file("kubeconfig-token")).expect("kubeconfig-token");
    let token = std::fs::read_to_string(s.double().file("token")).expect("token");
    std::fs::write(&bad, text.replace(token.trim(), "K10wrong::server:nope")).expect("write");
    // A play of one task (its text after `- `) that must fail; the output.
    let task = |name: &str, body: &str| {
        s.write(
            &format!("{name}.yml"),
            &format!(
                r#"- hosts: localhost
  gather_facts: false
  tasks:
    - {body}
"#
            ),
        );
        let r = s.run_file(format!("{name}.yml"), &[]);
        assert_eq!(r.code, 2, "{name}: {}", r.all());
        r.all()
    };
    let out = task(
        "wrong_token",
        r#"k8s_info: {kubeconfig: "@KUBE_STATE@/kubeconfig-bad", kind: Node}"#,
    );
    assert!(out.contains("401 Unauthorized"), "{out}");
    assert!(out.contains("bearer token"), "{out}");
    assert!(out.contains("kubeconfig-bad"), "{out}");

    let conflict = r#"k8s: {kubeconfig: "@KUBECONFIG@", definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: seed, namespace: default}, data: {a: c}}}"#;
    let out = task("conflict", conflict);
    assert!(out.contains("conflict (409)"), "{out}");
    assert!(out.contains("kubectl-create"), "{out}");
    assert!(out.contains("force: true"), "{out}");
    s.write(
        "forced.yml",
        r#"- hosts: localhost
  gather_facts: false
  tasks:
    - k8s: {kubeconfig: "@KUBECONFIG@", definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: seed, namespace: default}, data: {a: c}}, force: true}
"#,
    );
    s.run_file("forced.yml", &[]).ok();

    let out = task(
        "unknown_kind",
        r#"k8s: {kubeconfig: "@KUBECONFIG@", definition: {apiVersion: v1, kind: Gadget, metadata: {name: g}}}"#,
    );
    assert!(out.contains("unknown kind `Gadget` in `v1`"), "{out}");
    assert!(out.contains("ConfigMap"), "{out}");

    let out = task(
        "readonly",
        r#"k8s: {kubeconfig: "@KUBE_STATE@/kubeconfig-viewer", definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: default}}}"#,
    );
    assert!(out.contains("forbidden (403)"), "{out}");
    assert!(out.contains("User \"viewer\" cannot patch"), "{out}");
    assert!(
        out.contains("(bearer token) from ") && out.contains("kubeconfig-viewer"),
        "{out}"
    );

    // Nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let text = std::fs::read_to_string(s.double().file("kubeconfig")).expect("kubeconfig");
    let port_now = std::fs::read_to_string(s.double().file("port")).expect("port");
    let moved = s.double().file("kubeconfig-moved");
    std::fs::write(
        &moved,
        text.replace(&format!(":{}", port_now.trim()), &format!(":{port}")),
    )
    .expect("write");
    let out = task(
        "refused",
        r#"k8s_info: {kubeconfig: "@KUBE_STATE@/kubeconfig-moved", kind: Node}"#,
    );
    assert!(
        out.contains(&format!(
            "cannot connect to the Kubernetes API server at https://127.0.0.1:{port}"
        )),
        "{out}"
    );
    assert!(out.to_lowercase().contains("connection refused"), "{out}");
}

#[test]
fn template_with_several_documents_and_kinds_found_without_api_version() {
    let s = Session::kube(None);
    s.write(
        "templates/app.yml.j2",
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {{ ns }}
  namespace: ignored
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  replicas: "{{ replicas }}"
"#,
    );
    s.write(
        "pb.yml",
        r#"- hosts: localhost
  gather_facts: false
  vars: {ns: lab, replicas: 3}
  tasks:
    - k8s: {kubeconfig: "@KUBECONFIG@", template: app.yml.j2, namespace: "{{ ns }}"}
      register: applied
    - k8s_info: {kubeconfig: "@KUBECONFIG@", kind: ConfigMap, namespace: lab, name: app}
      register: cm
    - k8s_info: {kubeconfig: "@KUBECONFIG@", kind: Deployment, namespace: kube-system}
      register: deploys
    - k8s: {kubeconfig: "@KUBECONFIG@", state: absent, kind: Deployment, name: coredns, namespace: kube-system}
      register: deleted
    - copy:
        dest: "@OUT@/r.json"
        content: "{{ {'applied': applied, 'cm': cm.resources, 'deploys': deploys.resources | map(attribute='metadata.name') | list, 'deleted': deleted.changed} | to_json }}"
"#,
    );
    s.run().ok();
    let res = s.out_json("r.json");
    let results = res["applied"]["result"]["results"]
        .as_array()
        .expect("several documents give result.results");
    assert_eq!(results.len(), 2, "{res}");
    assert_eq!(results[0]["result"]["kind"], "Namespace");
    assert_eq!(results[0]["result"]["metadata"].get("namespace"), None);
    assert_eq!(results[1]["result"]["metadata"]["namespace"], "lab");
    assert!(results.iter().all(|r| r["changed"] == true), "{res}");
    assert_eq!(res["cm"][0]["data"]["replicas"], "3", "{res}");
    assert_eq!(res["deploys"], serde_json::json!(["coredns"]));
    assert_eq!(res["deleted"], true);
}

/// A kubeconfig's `exec` credential plugin (a program run on the controller) and
/// `insecure-skip-tls-verify: true` are refused with the argument that allows each deliberately;
/// with it, they work.
#[test]
fn exec_plugins_and_skipped_tls_verification_need_a_deliberate_argument() {
    let s = Session::kube(None);
    let port = std::fs::read_to_string(s.double().file("port")).expect("port");
    let token = std::fs::read_to_string(s.double().file("token")).expect("token");
    let marker = s.work.path().join("plugin-ran");
    let kubeconfig = |cluster: &str, user: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    {cluster}\nusers:\n- name: u\n  user:\n    {user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            port.trim()
        )
    };
    let ca = format!(
        "certificate-authority: {}",
        s.double().file("ca.crt").display()
    );
    let exec = s.write(
        "kubeconfig-exec",
        &kubeconfig(
            &ca,
            &format!(
                "exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /bin/sh\n      args: [\"-c\", \"touch {}; echo '{{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1beta1\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{{\\\"token\\\":\\\"{}\\\"}}}}'\"]\n      interactiveMode: Never",
                marker.display(),
                token.trim()
            ),
        ),
    );
    let insecure = s.write(
        "kubeconfig-insecure",
        &kubeconfig(
            "insecure-skip-tls-verify: true",
            &format!("token: {}", token.trim()),
        ),
    );
    let task = |name: &str, kubeconfig: &Path, extra: &str| {
        s.write(
            &format!("{name}.yml"),
            &format!(
                r#"- hosts: localhost
  gather_facts: false
  tasks:
    - k8s_info: {{kubeconfig: "{}", kind: Node{extra}}}
"#,
                kubeconfig.display()
            ),
        );
        s.run_file(format!("{name}.yml"), &[])
    };
    let r = task("exec", &exec, "");
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stdout.contains("exec credential plugin (`/bin/sh`)")
            && r.stdout.contains("allow_exec_plugins: true"),
        "{}",
        r.all()
    );
    assert!(!marker.exists(), "the plugin ran");
    task("exec_allowed", &exec, ", allow_exec_plugins: true").ok();
    assert!(marker.exists(), "the allowed plugin did not run");

    let r = task("insecure", &insecure, "");
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stdout.contains("insecure-skip-tls-verify: true")
            && r.stdout.contains("validate_certs: false"),
        "{}",
        r.all()
    );
    task("insecure_allowed", &insecure, ", validate_certs: false").ok();
}

/// The API server going away during a wait: a clear error naming the server within the wait's
/// timeout, not a hang.
#[test]
fn api_server_gone_during_a_wait_is_a_clear_error_within_the_timeout() {
    let mut s = Session::kube(None).playbook(&format!(
        r#"- hosts: localhost
  gather_facts: false
  tasks:
    - k8s:
        kubeconfig: "@KUBECONFIG@"
        wait: true
        wait_condition: {{type: Available}}
        wait_timeout: 20
        definition:
{NOWHERE}"#
    ));
    let bg = s.spawn(&[]);
    // The apply has been answered (the audit line is written once it is): the wait has begun.
    common::wait_until(Duration::from_secs(30), "the wait begins", || {
        s.double()
            .audit()
            .iter()
            .any(|e| e["verb"] == "PATCH" && e.to_string().contains("nowhere"))
            .then_some(())
            .ok_or_else(|| "no request for it yet".into())
    });
    s.kube.as_mut().expect("the double").kill();
    let t0 = Instant::now();
    let (r, _) = bg.wait(Duration::from_secs(60));
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(t0.elapsed() < Duration::from_secs(25), "{:?}", t0.elapsed());
    let all = r.all();
    assert!(
        all.contains("cannot connect to the Kubernetes API server at https://127.0.0.1:"),
        "{all}"
    );
    assert!(!all.contains("while applying"), "{all}");
    eprintln!("gone after {:?}: {all}", t0.elapsed());
}
