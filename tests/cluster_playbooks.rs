//! The README's main job end to end: `playbooks/cluster.yml`, `teardown.yml` and `rebuild.yml`,
//! run by the `mixop` binary exactly as shipped, against a lab of the test's own — a Linux
//! server in a network namespace with a real sshd (tests/lab) and two simulated Windows Server
//! 2022 workers (the WinRM peer in `--mode sim`), with the artifact stand-ins that
//! `scripts/lab.sh artifacts` assembles (k3s/RKE2 servers serving the Kubernetes API double,
//! k3s.exe, rke2.exe, containerd). What is stood in is listed in README.md ("The cluster").
//!
//! Checked: both routes (k3s, RKE2) come up, with workloads, networking and monitoring, with every Windows worker a Ready node; a second
//! run changes nothing, nor does `--check`; teardown twice (the second changes nothing); rebuild; the node token is
//! never printed, even at -vv; preflight refuses a bad setting before any host is changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Lab, WinrmPeer, Work, root};
use serde_json::Value;

struct ClusterLab {
    lab: Lab,
    win: Vec<WinrmPeer>,
    work: Work,
    inventory: PathBuf,
    artifacts_dir: PathBuf,
}

impl ClusterLab {
    fn up() -> ClusterLab {
        let lab = Lab::up(1, &[]);
        // No systemd in a lab host: the project's systemctl double, which also runs a unit's
        // ExecStart here (the server stand-ins serve the API double), as scripts/lab.sh sets up.
        lab.exec(
            "lab1",
            "mkdir -p /etc/fake-systemd && touch /etc/fake-systemd/run-services",
        );
        let bin = lab.state.path().join("hosts/lab1/usr-local-bin/systemctl");
        std::fs::copy(root().join("tests/fixtures/fake-systemctl"), &bin).unwrap();
        // The server stand-ins run the API double from lab1's own /opt (a lab host does not see
        // this checkout when it lives under /tmp, /root, /opt or /home).
        let out = Command::new("bash")
            .arg(root().join("scripts/lab.sh"))
            .arg("install-double")
            .arg(lab.state.path().join("hosts/lab1"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let work = Work::new();
        let artifacts = work.path().join("artifacts-source");
        let out = Command::new("bash")
            .arg(root().join("scripts/lab.sh"))
            .arg("artifacts")
            .arg(&artifacts)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let win: Vec<WinrmPeer> = ["WIN1", "WIN2"]
            .iter()
            .map(|name| {
                let init = work.write(
                    &format!("{name}-init.json"),
                    &format!(
                        r#"{{"computer": {{"name": "{name}", "memory_mb": 8192, "logical_processors": 4, "ipv4_addresses": ["127.0.0.1"]}}}}"#
                    ),
                );
                let state = work.path().join(format!("{name}-state"));
                WinrmPeer::start(&[
                    "--mode",
                    "sim",
                    "--state-dir",
                    state.to_str().unwrap(),
                    "--sim-init",
                    init.to_str().unwrap(),
                    "--reboot-down",
                    "1",
                    "--reboot-delay-cap",
                    "0.3",
                ])
            })
            .collect();
        let inv_dir = work.path().join("inventory");
        std::fs::create_dir_all(inv_dir.join("group_vars")).unwrap();
        std::fs::copy(
            root().join("inventories/group_vars/all.yml"),
            inv_dir.join("group_vars/all.yml"),
        )
        .unwrap();
        std::fs::write(
            inv_dir.join("group_vars/lab.yml"),
            format!("artifact_source: {}\n", artifacts.display()),
        )
        .unwrap();
        let inventory = inv_dir.join("lab.yml");
        std::fs::write(
            &inventory,
            format!(
                "all:\n  children:\n    server:\n      hosts:\n        lab1: {{ansible_host: {}, ansible_user: root, ansible_ssh_private_key_file: {}, mixop_known_hosts_file: {}}}\n    windows:\n      hosts:\n{}{}    lab:\n      children:\n        server:\n        windows:\n",
                lab.addr("lab1"),
                lab.key().display(),
                lab.known_hosts().display(),
                win[0].inventory_host("win1"),
                win[1].inventory_host("win2"),
            ),
        )
        .unwrap();
        let artifacts_dir = work.path().join("fetched");
        ClusterLab {
            lab,
            win,
            work,
            inventory,
            artifacts_dir,
        }
    }

    /// `mixop run playbooks/<name>.yml` with JSON events: (exit code, recap per host, all text).
    fn run(&self, playbook: &str, extra: &[&str]) -> Played {
        let pb = root().join("playbooks").join(playbook);
        let artifacts = format!("artifacts_dir={}", self.artifacts_dir.display());
        let mut args = vec![
            "run",
            pb.to_str().unwrap(),
            "-i",
            self.inventory.to_str().unwrap(),
            "-e",
            &artifacts,
        ];
        args.extend_from_slice(extra);
        let run = self.work.mixop(&args);
        let mut recap = Value::Null;
        for line in run.stdout.lines() {
            if let Ok(ev) = serde_json::from_str::<Value>(line)
                && ev["event"] == "recap"
            {
                recap = ev["hosts"].clone();
            }
        }
        Played {
            code: run.code,
            recap,
            all: run.all(),
        }
    }
}

/// Changes a simulated worker's machine (`POST /sim/patch` on its control port).
fn patch_worker(peer: &WinrmPeer, patch: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", peer.control)).unwrap();
    write!(
        s,
        "POST /sim/patch HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{patch}",
        patch.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
}

/// What a Windows worker's teardown must restore, from the simulator's host.json: everything the
/// bring-up touches except the Containers feature, which stays installed by design (README), with
/// what it brings (the vmcompute service and program), and the generic parents `C:\etc`,
/// `C:\usr\local\bin` the agent folders are made in, which teardown leaves (they may hold
/// other things on a real host; README says so).
fn windows_state(cl: &ClusterLab, name: &str) -> Value {
    let text = std::fs::read_to_string(cl.work.path().join(format!("{name}-state/host.json")))
        .expect("host.json");
    let h: Value = serde_json::from_str(&text).unwrap();
    let left_by_design = |k: &str| {
        k.contains("vmcompute")
            || k == "c:\\etc"
            || k == "c:\\usr"
            || k == "c:\\usr\\local"
            || k == "c:\\usr\\local\\bin"
    };
    let keys = |v: &Value| -> Value {
        let mut k: Vec<String> = v
            .as_object()
            .map(|m| {
                m.keys()
                    .map(|k| k.to_lowercase())
                    .filter(|k| !left_by_design(k))
                    .collect()
            })
            .unwrap_or_default();
        k.sort();
        Value::from(k)
    };
    serde_json::json!({
        "files": keys(&h["files"]),
        "services": keys(&h["services"]),
        "scheduled_tasks": keys(&h["scheduled_tasks"]),
        "firewall_rules": keys(&h["firewall_rules"]),
        "defender": h["defender"],
        "environment": h["environment"],
        "hns_networks": h["hns_networks"],
    })
}

/// The server's files where the install puts things.
fn server_state(cl: &ClusterLab) -> String {
    cl.lab.exec(
        "lab1",
        "find /etc/rancher /var/lib/rancher /usr/local/bin /etc/systemd/system -xdev 2>/dev/null | sort",
    )
}

struct Played {
    code: i32,
    recap: Value,
    all: String,
}

impl Played {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "mixop failed:\n{}", self.all);
        self
    }
    fn changed(&self, host: &str) -> u64 {
        self.recap[host]["changed"]
            .as_u64()
            .unwrap_or_else(|| panic!("no recap for {host}:\n{}", self.all))
    }
    /// No host of the recap changed (every host the playbook reached).
    fn changed_nowhere(&self) {
        let hosts = self.recap.as_object().expect("a recap");
        assert!(!hosts.is_empty(), "empty recap:\n{}", self.all);
        for h in hosts.keys() {
            assert_eq!(self.changed(h), 0, "{h} changed:\n{}", self.all);
        }
    }
}

fn kubeconfig_nodes(dir: &Path) -> Vec<(String, String, bool)> {
    let kubeconfig = dir.join("kubeconfig");
    assert!(
        kubeconfig.exists(),
        "no kubeconfig fetched to {}",
        dir.display()
    );
    let play = dir.join("nodes.yml");
    std::fs::write(
        &play,
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - k8s_node: {{kubeconfig: {}}}\n      register: n\n    - debug: {{var: n.nodes}}\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let w = Work::new();
    let run = w.mixop(&["run", play.to_str().unwrap(), "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut nodes = Vec::new();
    for line in run.stdout.lines() {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if ev["event"] == "host_result" && ev["task"] == "debug" {
            for n in ev["result"]["n.nodes"].as_array().unwrap() {
                nodes.push((
                    n["name"].as_str().unwrap().to_string(),
                    n["os"].as_str().unwrap().to_string(),
                    n["ready"].as_bool().unwrap(),
                ));
            }
        }
    }
    nodes.sort();
    nodes
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn full_cycle(dist: &str) {
    let cl = ClusterLab::up();
    let dist_var = format!("k8s_distribution={dist}");
    let e = ["-e", dist_var.as_str(), "--output", "json"];
    // Each host as it was before the bring-up (a ping makes the simulators write their state).
    cl.run("preflight.yml", &e).ok();
    let before = (
        windows_state(&cl, "WIN1"),
        windows_state(&cl, "WIN2"),
        server_state(&cl),
    );

    let first_log = cl.work.path().join("first.log");
    let first_log_arg = format!("--log={}", first_log.display());
    let first = cl.run(
        "cluster.yml",
        &[&e[..], &["-vv", first_log_arg.as_str()]].concat(),
    );
    first.ok();
    assert!(first.changed("win1") > 0 && first.changed("lab1") > 0);
    let nodes = kubeconfig_nodes(&cl.artifacts_dir);
    assert_eq!(
        nodes,
        vec![
            ("lab1".to_string(), "linux".to_string(), true),
            ("win1".to_string(), "windows".to_string(), true),
            ("win2".to_string(), "windows".to_string(), true),
        ]
    );
    // The node token went from the server to both workers without ever being printed.
    let token = cl.lab.exec(
        "lab1",
        &format!("cat /var/lib/rancher/{dist}/server/node-token"),
    );
    let token = token.trim();
    assert!(token.len() >= 16, "no node token on the server: {token:?}");
    assert!(
        !first.all.contains(token),
        "the node token was printed:\n{}",
        first.all
    );
    let logged = std::fs::read_to_string(&first_log).expect("--log file");
    assert!(logged.len() > 1000, "the --log file is nearly empty");
    assert!(
        !logged.contains(token),
        "the node token is in the --log file"
    );
    // Diagnostics go to files on the controller: none holds the token either.
    let diag = cl.run("troubleshoot.yml", &e);
    diag.ok();
    assert!(!diag.all.contains(token));
    for f in walk(&cl.artifacts_dir) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(
            !text.contains(token),
            "the node token is in {}",
            f.display()
        );
    }

    cl.run("cluster.yml", &e).ok().changed_nowhere();
    cl.run("cluster.yml", &[&e[..], &["--check"]].concat())
        .ok()
        .changed_nowhere();

    let workloads = cl.run("workloads.yml", &e);
    workloads.ok();
    cl.run("workloads.yml", &e).ok().changed_nowhere();
    cl.run("networking.yml", &e).ok().changed_nowhere();
    cl.run("monitoring.yml", &e).ok();
    cl.run("monitoring.yml", &e).ok().changed_nowhere();

    let log = cl.work.path().join("teardown.log");
    let log_arg = format!("--log={}", log.display());
    cl.run("teardown.yml", &[&e[..], &[log_arg.as_str()]].concat())
        .ok();
    assert!(!cl.artifacts_dir.join("kubeconfig").exists());
    let after = (
        windows_state(&cl, "WIN1"),
        windows_state(&cl, "WIN2"),
        server_state(&cl),
    );
    assert_eq!(
        after.0, before.0,
        "win1 is not back to its state before the cluster"
    );
    assert_eq!(
        after.1, before.1,
        "win2 is not back to its state before the cluster"
    );
    assert_eq!(
        after.2, before.2,
        "lab1 is not back to its state before the cluster"
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!logged.is_empty(), "no --log written");
    cl.run("teardown.yml", &e).ok().changed_nowhere();

    let rebuilt = cl.run("rebuild.yml", &e);
    rebuilt.ok();
    assert!(rebuilt.changed("win1") > 0);
    assert_eq!(kubeconfig_nodes(&cl.artifacts_dir).len(), 3);
    cl.run("cluster.yml", &e).ok().changed_nowhere();
}

#[test]
fn k3s_cluster_up_again_down_twice_and_rebuilt() {
    full_cycle("k3s");
}

#[test]
fn rke2_cluster_up_again_down_twice_and_rebuilt() {
    full_cycle("rke2");
}

#[test]
fn preflight_refuses_before_any_host_changes() {
    let cl = ClusterLab::up();
    for (settings, says) in [
        (
            &["flannel_backend=host-gw"][..],
            "accepts only the vxlan backend",
        ),
        (&["windows_cni=calico"], "Calico for Windows lists k3s as"),
        (
            &["k8s_distribution=rke2", "windows_cni=canal"],
            "windows_cni: canal cannot work with Windows workers on RKE2",
        ),
        (
            &["k8s_distribution=rke2", "windows_cni=cilium"],
            "windows_cni: cilium cannot work with Windows workers on RKE2",
        ),
        (
            &["ansible_winrm_message_encryption=never"],
            "WinRM to this worker would be unencrypted",
        ),
    ] {
        let mut args = vec!["--output", "json"];
        for s in settings {
            args.extend(["-e", s]);
        }
        let p = cl.run("cluster.yml", &args);
        assert_eq!(p.code, 2, "{settings:?} was not refused:\n{}", p.all);
        assert!(
            p.all.contains(says),
            "{settings:?}: no word of {says}:\n{}",
            p.all
        );
        p.changed_nowhere();
    }
    // The workers themselves: too small, then the wrong Windows.
    for (patch, says) in [
        (r#"{"computer": {"memory_mb": 2048}}"#, "at least 4 GB"),
        (
            r#"{"computer": {"memory_mb": 8192, "build_number": 19041}}"#,
            "Windows Server 2022",
        ),
    ] {
        patch_worker(&cl.win[1], patch);
        let p = cl.run("cluster.yml", &["--output", "json"]);
        assert_eq!(p.code, 2, "{patch} was not refused:\n{}", p.all);
        assert!(
            p.all.contains(says),
            "{patch}: no word of {says}:\n{}",
            p.all
        );
        p.changed_nowhere();
    }
    // The server's API port dropped by its firewall: each worker's connection times out.
    patch_worker(
        &cl.win[1],
        r#"{"computer": {"memory_mb": 8192, "build_number": 20348}}"#,
    );
    cl.lab.exec(
        "lab1",
        "nft add table inet preflight && nft add chain inet preflight input '{ type filter hook input priority 0; }' && nft add rule inet preflight input tcp dport 6443 drop",
    );
    let p = cl.run("cluster.yml", &["--output", "json"]);
    assert_eq!(p.code, 2, "a blocked 6443 was not refused:\n{}", p.all);
    for worker in ["win1", "win2"] {
        let says = format!(
            "{worker} cannot connect to the server lab1 at {} on TCP port 6443",
            cl.lab.addr("lab1")
        );
        assert!(p.all.contains(&says), "no word of {says}:\n{}", p.all);
    }
    p.changed_nowhere();
    // Open again: preflight passes (its listener answers, then is gone before the server is
    // installed), proven by the whole preflight reaching the end with nothing changed.
    cl.lab.exec("lab1", "nft delete table inet preflight");
    let p = cl.run("preflight.yml", &["--output", "json"]);
    assert_eq!(p.code, 0, "preflight refused an open server:\n{}", p.all);
    p.changed_nowhere();
    // Lab hosts share the process table: only a listener in lab1's network namespace is this
    // test's (another test's cluster may be in its preflight).
    let listeners = cl.lab.exec(
        "lab1",
        "for p in $(pgrep -f '[m]ixop-preflight-listener'); do \
           [ \"$(readlink /proc/$p/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ] && echo $p; \
         done; true",
    );
    assert_eq!(
        listeners.trim(),
        "",
        "the preflight listener outlived preflight"
    );
    // No python3 on the server: /usr/bin in lab1's own mount namespace replaced by links to
    // every program but python3 (the real directory mounted aside, for the links).
    cl.lab.exec(
        "lab1",
        "mkdir -p /opt/realbin /opt/nopy && mount --bind /usr/bin /opt/realbin && \
         for f in /usr/bin/*; do case ${f##*/} in python3*) ;; *) ln -s /opt/realbin/${f##*/} /opt/nopy/;; esac; done && \
         mount --bind /opt/nopy /usr/bin",
    );
    let p = cl.run("preflight.yml", &["--output", "json"]);
    cl.lab.exec("lab1", "umount /usr/bin; umount /opt/realbin");
    assert_eq!(p.code, 2, "a server without python3 passed:\n{}", p.all);
    assert!(
        p.all
            .contains("lab1 has no python3 (`command -v python3` finds none)")
            && p.all.contains("apt-get install -y python3"),
        "no clear word of the missing python3:\n{}",
        p.all
    );
    assert!(!p.all.contains("python3: not found"), "{}", p.all);
    p.changed_nowhere();
}

#[test]
fn every_playbook_checks_with_both_inventories() {
    let w = Work::new();
    let mut checked = 0;
    for inv in ["inventories/lab.yml", "inventories/example-real-lab.yml"] {
        for entry in std::fs::read_dir(root().join("playbooks")).unwrap() {
            let pb = entry.unwrap().path();
            if pb.extension().and_then(|e| e.to_str()) != Some("yml") {
                continue;
            }
            let inv = root().join(inv);
            let r = w.mixop(&["check", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
            assert_eq!(
                r.code,
                0,
                "{} with {}:\n{}",
                pb.display(),
                inv.display(),
                r.all()
            );
            checked += 1;
        }
    }
    assert!(checked >= 16, "only {checked} playbook checks");
}
