//! Simulated Windows workers joining the stand-in cluster, driven by `mixop run`: the WinRM
//! peer's Windows host simulator (`--mode sim`) with the lab's stand-in programs
//! (tests/support/winrm_peer/sim/standins.py) on loopback, and the Kubernetes API double
//! (tests/support/kube_double) as the cluster. The modules under test are mixop's
//! `win_scheduled_task_stat`, `win_eventlog_info`, `win_hns_network`, `win_command` and
//! `win_feature`; `k8s_node` reads the nodes back from the double.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{KubeDouble, WinrmPeer, Work};
use serde_json::{Value, json};

/// The API double with one Linux server node carrying flannel's VXLAN annotations (VNI 4096,
/// UDP 4789: what cluster.yml configures), as the lab's server stand-in runs it.
fn double(dist: &str) -> KubeDouble {
    KubeDouble::start(Some(&format!(
        "distribution: {dist}\nsystemPods: false\nnodes:\n  - name: lab1\n    os: linux\n    roles: [control-plane, master]\n    ip: 10.231.0.10\n    annotations:\n      flannel.alpha.coreos.com/backend-type: vxlan\n      flannel.alpha.coreos.com/backend-data: '{{\"VNI\":4096,\"VtepMAC\":\"02:42:0a:e7:00:0a\",\"Port\":4789}}'\n"
    )))
}

fn standin(name: &str) -> String {
    std::fs::read_to_string(
        common::root()
            .join("tests/support/standins/windows")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("stand-in {name}: {e}"))
}

/// A simulated Windows Server 2022 host starting from `init` (host.json sections + seed_files);
/// its state directory lives as long as the returned TempDir.
fn sim_host(init: Value) -> (WinrmPeer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let init_file = dir.path().join("init.json");
    std::fs::write(&init_file, init.to_string()).unwrap();
    let state = dir.path().join("state");
    let peer = WinrmPeer::start(&[
        "--mode",
        "sim",
        "--state-dir",
        state.to_str().unwrap(),
        "--sim-init",
        init_file.to_str().unwrap(),
        "--reboot-down",
        "1",
    ]);
    (peer, dir)
}

/// One request on the peer's control channel.
fn control(peer: &WinrmPeer, method: &str, path: &str, body: &str) -> Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", peer.control)).unwrap();
    write!(
        s,
        "{method} /{path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("null");
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// A simulated restart; returns once WinRM answers again with the new boot time.
fn reboot(peer: &WinrmPeer) {
    let before = peer.stats()["boot_time_filetime"].clone();
    control(peer, "POST", "reboot", r#"{"down_seconds": 1}"#);
    let t0 = Instant::now();
    loop {
        let st = peer.stats();
        if st["up"] == true && st["boot_time_filetime"] != before {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no reboot: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sim_state(peer: &WinrmPeer) -> Value {
    control(peer, "GET", "sim/state", "")
}

/// Polls the host's state until `done` holds.
fn wait_state(peer: &WinrmPeer, done: impl Fn(&Value) -> bool) {
    let t0 = Instant::now();
    loop {
        let st = sim_state(peer);
        if done(&st) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the simulated host did not settle: {}",
            st["standin_processes"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(w: &Work, inventory: &Path, pb: &Path) -> common::Run {
    w.mixop(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        inventory.to_str().unwrap(),
    ])
}

fn json_out(w: &Work, name: &str) -> Value {
    let text = w.read(name);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {text}"))
}

const AGENT_CONFIG: &str = r"C:\etc\rancher\k3s\config.yaml";

/// A worker as cluster.yml leaves it for the k3s route (Containers installed, k3s.exe and its
/// configuration, the agent's startup task) — the agent starts with the next boot.
fn k3s_worker(name: &str, server: &str, token: &str) -> Value {
    json!({
        "computer": {"name": name.to_uppercase(), "ipv4_addresses": ["10.231.0.21"]},
        "features": {"Containers": "Installed"},
        "seed_files": {
            r"C:\k3s\k3s.exe": standin("k3s.exe") + "version: v1.32.5+k3s1\n",
            AGENT_CONFIG: format!("server: \"{server}\"\ntoken: \"{token}\"\nnode-name: \"{name}\"\nnode-ip: \"10.231.0.21\"\n"),
        },
        "scheduled_tasks": {r"\k3s-agent": {
            "task_name": "k3s-agent", "task_path": r"\", "description": "k3s agent (mixop)",
            "actions": [{"execute": r"C:\k3s\k3s.exe", "arguments": format!("agent --config {AGENT_CONFIG}")}],
            "triggers": [{"type": "AtStartup", "enabled": true}],
            "principal": {"user_id": "SYSTEM", "logon_type": "ServiceAccount", "run_level": "Highest"},
            "settings": {"restart_count": 999, "restart_interval": "PT1M", "execution_time_limit": "PT0S", "enabled": true}
        }}
    })
}

#[test]
fn k3s_agents_join_at_boot_and_a_wrong_token_is_in_the_event_log() {
    let double = double("k3s");
    let (good, good_state) = sim_host(k3s_worker("win1", &double.url(), &double.read("token")));
    let (bad, _bad_dir) = sim_host(k3s_worker(
        "win2",
        &double.url(),
        "K10deadbeef::server:not-the-token",
    ));
    reboot(&good);
    reboot(&bad);
    // The agents start with the boot and join (or fail) on their own threads: wait for both
    // outcomes, so the playbook below sees a settled host.
    wait_state(&good, |st| {
        st["standin_processes"][r"task:\k3s-agent"]["node"] == "win1"
            && st["hns_networks"].as_array().is_some_and(|n| !n.is_empty())
    });
    wait_state(&bad, |st| {
        st["scheduled_tasks"][r"\k3s-agent"]["state"] == "Ready"
    });
    let w = Work::new();
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  children:\n    windows:\n      hosts:\n{}{}",
            good.inventory_host("win1"),
            bad.inventory_host("win2")
        ),
    );
    let kc = double.kubeconfig();
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: the agent's startup task
      win_scheduled_task_stat: {{name: k3s-agent}}
      register: task
    - name: a task that is not there
      community.windows.win_scheduled_task_stat: {{name: nope}}
      register: nope
    - name: what the agent logged
      win_eventlog_info: {{source: [k3s], newest: 10}}
      register: events
    - name: errors only
      mixop.windows.win_eventlog_info: {{log: Application, source: k3s, entry_type: error}}
      register: errors
    - name: the node's flannel network, removed
      win_hns_network: {{name: flannel.4096, state: absent}}
      register: hns
    - name: removed already
      win_hns_network: {{name: flannel.4096}}
      register: hns_again
    - copy:
        dest: "@OUT@/{{{{ inventory_hostname }}}}.json"
        content: "{{{{ {{'task': task, 'nope': nope, 'events': events, 'errors': errors, 'hns': hns, 'hns_again': hns_again}} | to_json }}}}"
      delegate_to: localhost

- hosts: win1
  gather_facts: false
  tasks:
    - name: win1 is a Ready Windows node
      k8s_node:
        kubeconfig: "{kc}"
        label_selectors: [kubernetes.io/os=windows]
        count: 1
        wait_timeout: 30
      register: nodes
      delegate_to: localhost
    - copy:
        dest: "@OUT@/nodes.json"
        content: "{{{{ nodes | to_json }}}}"
      delegate_to: localhost
"#
        ),
    );
    let r = run(&w, &inv, &pb);
    r.ok();
    let win1 = json_out(&w, "win1.json");
    let task = &win1["task"];
    assert_eq!(task["task_exists"], true, "{task}");
    assert_eq!(task["state"]["status"], "TASK_STATE_RUNNING", "{task}");
    assert_eq!(task["state"]["last_task_result"], 0x41301);
    assert_eq!(task["actions"][0]["path"], r"C:\k3s\k3s.exe");
    assert_eq!(task["triggers"][0]["type"], "TASK_TRIGGER_BOOT");
    assert_eq!(task["principal"]["user_id"], r"NT AUTHORITY\SYSTEM");
    assert_eq!(task["settings"]["restart_count"], 999);
    assert_eq!(task["folder_task_names"], json!(["k3s-agent"]));
    assert_eq!(task["changed"], false);
    assert_eq!(win1["nope"]["task_exists"], false);
    let messages: Vec<&str> = win1["events"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("registered")),
        "{messages:?}"
    );
    assert_eq!(win1["errors"]["entries"], json!([]));
    assert_eq!(win1["hns"]["changed"], true, "{}", win1["hns"]);
    assert_eq!(win1["hns"]["removed"].as_array().map(Vec::len), Some(1));
    assert_eq!(win1["hns_again"]["changed"], false);
    let st: Value = serde_json::from_str(
        &std::fs::read_to_string(good_state.path().join("state/host.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(st["hns_networks"], json!([]));

    let nodes = json_out(&w, "nodes.json");
    assert_eq!(nodes["ready"], json!(["win1"]), "{nodes}");
    let node = &nodes["nodes"][0];
    assert_eq!(node["labels"]["kubernetes.io/os"], "windows", "{node}");
    assert_eq!(
        node["labels"]["node.kubernetes.io/windows-build"],
        "10.0.20348"
    );
    assert_eq!(node["os_image"], "Windows Server 2022 Datacenter");

    // The wrong token: no node, the task ended with an error, the event log says why.
    let win2 = json_out(&w, "win2.json");
    let errors = win2["errors"]["entries"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", win2["errors"]);
    assert_eq!(errors[0]["source"], "k3s");
    assert_eq!(errors[0]["entry_type"], "Error");
    let msg = errors[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("401 Unauthorized") && msg.contains("win2"),
        "{msg}"
    );
    assert_eq!(win2["task"]["state"]["status"], "TASK_STATE_READY");
    assert_eq!(win2["task"]["state"]["last_task_result"], 1);
    assert_eq!(win2["hns"]["changed"], false);
    assert!(
        !sim_state(&bad)["event_log"]["Application"]
            .to_string()
            .contains(&double.read("token")),
        "the token must not be logged"
    );
}

#[test]
fn rke2_install_needs_containers_then_its_service_joins_at_boot() {
    let double = double("rke2");
    let art = r"C:\rke2-artifacts";
    let (host, state) = sim_host(json!({
        "computer": {"name": "WIN3", "ipv4_addresses": ["10.231.0.23"]},
        "seed_files": {
            format!(r"{art}\install.ps1"): standin("rke2-install.ps1"),
            format!(r"{art}\rke2.exe"): standin("rke2.exe"),
            format!(r"{art}\rke2-uninstall.ps1"): standin("rke2-uninstall.ps1"),
            r"C:\etc\rancher\rke2\config.yaml": format!("server: {}\ntoken: {}\nnode-name: win3\n", double.url(), double.read("token")),
        }
    }));
    let w = Work::new();
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  children:\n    windows:\n      hosts:\n{}",
            host.inventory_host("win3")
        ),
    );
    let install = format!(
        r"powershell.exe -NoProfile -ExecutionPolicy Bypass -File {art}\install.ps1 -Version v1.32.5+rke2r1 -ArtifactPath {art}"
    );
    let pb1 = w.write(
        "pb1.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: install.ps1 refuses a host without the Containers feature
      win_command: {install}
      args: {{creates: 'C:\usr\local\bin\rke2.exe'}}
      register: refused
      failed_when: false
    - win_feature: {{name: Containers}}
      register: feature
    - copy:
        dest: "@OUT@/one.json"
        content: "{{{{ {{'refused': refused, 'feature': feature}} | to_json }}}}"
      delegate_to: localhost
"#
        ),
    );
    run(&w, &inv, &pb1).ok();
    let one = json_out(&w, "one.json");
    assert_eq!(one["refused"]["rc"], 1, "{}", one["refused"]);
    assert!(
        one["refused"]["stdout"]
            .as_str()
            .unwrap()
            .contains("[ERROR] Windows feature: 'Containers' is not installed"),
        "{}",
        one["refused"]
    );
    assert_eq!(one["feature"]["reboot_required"], true);
    reboot(&host);

    let pb2 = w.write(
        "pb2.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: install (only when rke2.exe is absent)
      win_command: {install}
      args: {{creates: 'C:\usr\local\bin\rke2.exe'}}
      register: installed
    - name: again
      win_command: {install}
      args: {{creates: 'C:\usr\local\bin\rke2.exe'}}
      register: again
    - name: register the rke2 service
      win_command: C:\usr\local\bin\rke2.exe agent service --add
    - copy:
        dest: "@OUT@/two.json"
        content: "{{{{ {{'installed': installed, 'again': again}} | to_json }}}}"
      delegate_to: localhost
"#
        ),
    );
    run(&w, &inv, &pb2).ok();
    let two = json_out(&w, "two.json");
    assert_eq!(two["installed"]["rc"], 0, "{}", two["installed"]);
    assert!(
        two["installed"]["stdout"]
            .as_str()
            .unwrap()
            .contains("install complete")
    );
    assert_eq!(two["again"]["changed"], false, "{}", two["again"]);
    let svc = &sim_state(&host)["services"]["rke2"];
    assert_eq!(
        svc["binary_path_name"],
        r"C:\usr\local\bin\rke2.exe agent service"
    );
    assert_eq!(svc["start_mode"], "auto");
    // The automatic service starts with the next boot and joins the node.
    reboot(&host);

    let kc = double.kubeconfig();
    let pb3 = w.write(
        "pb3.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  tasks:
    - k8s_node: {{kubeconfig: "{kc}", names: [win3], wait: true, wait_timeout: 30}}
      register: node
      delegate_to: localhost
    - name: RKE2's own uninstall script
      win_command: powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\usr\local\bin\rke2-uninstall.ps1
      args: {{removes: 'C:\usr\local\bin\rke2-uninstall.ps1'}}
      register: uninstalled
    - win_command: powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\usr\local\bin\rke2-uninstall.ps1
      args: {{removes: 'C:\usr\local\bin\rke2-uninstall.ps1'}}
      register: uninstalled_again
    - copy:
        dest: "@OUT@/three.json"
        content: "{{{{ {{'node': node, 'uninstalled': uninstalled, 'again': uninstalled_again}} | to_json }}}}"
      delegate_to: localhost
"#
        ),
    );
    run(&w, &inv, &pb3).ok();
    let three = json_out(&w, "three.json");
    let node = &three["node"]["nodes"][0];
    assert_eq!(three["node"]["ready"], json!(["win3"]), "{}", three["node"]);
    assert_eq!(
        node["labels"]["node.kubernetes.io/instance-type"], "rke2",
        "{node}"
    );
    assert_eq!(three["uninstalled"]["changed"], true);
    assert_eq!(three["again"]["changed"], false);
    let st = sim_state(&host);
    assert!(st["services"].get("rke2").is_none(), "{}", st["services"]);
    assert!(
        !state
            .path()
            .join("state/fs/c/usr/local/bin/rke2.exe")
            .exists()
    );
}
