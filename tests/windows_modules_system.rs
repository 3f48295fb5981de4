//! The Windows system modules a Kubernetes worker needs (win_service, win_reboot,
//! win_firewall_rule, win_defender_exclusion, win_optional_feature, win_scheduled_task), run by
//! the `mixop` binary against the WinRM peer's simulated Windows Server 2022 host
//! (`--mode sim`). The host's state is checked as data (`host.json`), and what mixop sent as
//! `scripts.jsonl`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{WinrmPeer, Work};
use serde_json::Value;

/// A simulated Windows host: the peer in sim mode with a state directory of its own.
struct Sim {
    peer: Option<WinrmPeer>,
    state: tempfile::TempDir,
    port: u16,
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        Sim::start_with(extra, None)
    }

    /// `init`: JSON merged into the new host.json (`seed_files` puts files on its disk).
    fn start_with(extra: &[&str], init: Option<Value>) -> Sim {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("host");
        let mut args: Vec<String> = vec![
            "--mode".into(),
            "sim".into(),
            "--state-dir".into(),
            dir.display().to_string(),
            "--reboot-down".into(),
            "1".into(),
            "--reboot-delay-cap".into(),
            "0.3".into(),
        ];
        if let Some(init) = init {
            let p = state.path().join("init.json");
            std::fs::write(&p, init.to_string()).unwrap();
            args.push("--sim-init".into());
            args.push(p.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let peer = WinrmPeer::start(&refs);
        let port = peer.port;
        Sim {
            peer: Some(peer),
            state,
            port,
        }
    }

    fn dir(&self) -> PathBuf {
        self.state.path().join("host")
    }

    fn host(&self) -> Value {
        let text = std::fs::read_to_string(self.dir().join("host.json")).expect("host.json");
        serde_json::from_str(&text).unwrap()
    }

    /// The module requests the host answered, in order.
    fn scripts(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir().join("scripts.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn requests(&self, module: &str, phase: &str) -> Vec<Value> {
        self.scripts()
            .into_iter()
            .filter(|s| s["module"] == module && s["phase"] == phase)
            .collect()
    }

    /// Raw commands the peer answered (record-mode style records).
    fn records(&self) -> Vec<Value> {
        self.peer.as_ref().map(|p| p.records()).unwrap_or_default()
    }

    fn reboots(&self) -> usize {
        self.records()
            .iter()
            .filter(|r| r["builtin"] == "reboot" && r["rc"] == 0)
            .count()
    }

    fn control(&self, op: &str, body: &str) -> Value {
        use std::io::{Read, Write};
        let port = self.peer.as_ref().unwrap().control;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /{op} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap()
    }

    fn inventory(&self) -> String {
        format!(
            "all:\n  children:\n    windows:\n      hosts:\n        win1: {{ansible_host: 127.0.0.1, ansible_port: {}, ansible_connection: winrm, ansible_user: vagrant, ansible_password: vagrant, ansible_winrm_transport: ntlm, ansible_winrm_scheme: http}}\n",
            self.port
        )
    }
}

/// One `mixop run` with JSON output: exit code, every host result, the recap.
struct Played {
    code: i32,
    results: Vec<Value>,
    stats: Value,
    all: String,
}

impl Played {
    fn task(&self, name: &str) -> &Value {
        self.results
            .iter()
            .find(|r| r["task"] == name)
            .unwrap_or_else(|| panic!("no result for task {name:?}:\n{}", self.all))
    }
    fn result(&self, name: &str) -> &Value {
        &self.task(name)["result"]
    }
    fn changed(&self) -> u64 {
        self.stats["changed"].as_u64().unwrap()
    }
    fn failed(&self) -> u64 {
        self.stats["failed"].as_u64().unwrap()
    }
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "mixop failed:\n{}", self.all);
        self
    }
}

fn play(w: &Work, sim: &Sim, tasks: &str, extra: &[&str]) -> Played {
    let inv = w.write("inventory.yml", &sim.inventory());
    let pb = w.write(
        "play.yml",
        &format!("- hosts: windows\n  gather_facts: false\n  tasks:\n{tasks}"),
    );
    let mut args = vec![
        "run",
        pb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = w.mixop(&args);
    let mut results = Vec::new();
    let mut stats = Value::Null;
    for line in run.stdout.lines() {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match ev["event"].as_str() {
            Some("host_result") => results.push(ev),
            Some("recap") => stats = ev["hosts"]["win1"].clone(),
            _ => {}
        }
    }
    assert!(!stats.is_null(), "no recap:\n{}", run.all());
    Played {
        code: run.code,
        results,
        stats,
        all: run.all(),
    }
}

// ---------------------------------------------------------------- win_reboot

#[test]
fn win_reboot_waits_for_a_new_boot_time() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let boot0 = sim.host()["boot"]["count"].as_u64().unwrap();
    let p = play(
        &w,
        &sim,
        "    - name: reboot\n      win_reboot: {reboot_timeout: 60, msg: \"it's $env:X `n \\\"q\\\" é\"}\n    - name: after\n      win_ping: {}\n",
        &[],
    );
    p.ok();
    let r = p.result("reboot");
    assert_eq!(r["changed"], true);
    assert_eq!(r["rebooted"], true);
    assert!(r["elapsed"].as_u64().unwrap() <= 30, "{r}");
    let host = sim.host();
    assert_eq!(host["boot"]["count"].as_u64().unwrap(), boot0 + 1);
    assert_eq!(sim.reboots(), 1);
    // The message reached shutdown.exe as one single-quoted literal.
    let shutdown = sim
        .records()
        .into_iter()
        .find(|r| r["builtin"] == "reboot")
        .unwrap();
    let script = shutdown["script"].as_str().unwrap();
    assert!(
        script.contains("shutdown.exe /r /t 2 /c 'it''s $env:X `n \"q\" é'"),
        "{script}"
    );
    // Readiness was checked through a new PowerShell host after the boot, then the next task ran.
    assert!(!sim.requests("win_reboot", "run").is_empty());
    assert_eq!(p.result("after")["ping"], "pong");
}

#[test]
fn win_reboot_tolerates_a_host_back_before_the_first_poll() {
    // Down for 50 ms, 0.3 s after the command: back long before the first poll's backoff ends.
    let sim = Sim::start(&["--reboot-down", "0.05"]);
    let w = Work::new();
    let p = play(
        &w,
        &sim,
        "    - name: reboot\n      win_reboot: {reboot_timeout: 30}\n",
        &[],
    );
    p.ok();
    assert_eq!(p.result("reboot")["rebooted"], true);
    assert_eq!(sim.host()["boot"]["count"], 2);
}

#[test]
fn win_reboot_pre_empts_a_scheduled_shutdown() {
    let sim = Sim::start(&[]);
    // Someone scheduled a reboot an hour from now: shutdown /r answers 1190.
    sim.control("reboot", r#"{"delay_seconds": 3600}"#);
    let w = Work::new();
    let p = play(
        &w,
        &sim,
        "    - name: reboot\n      win_reboot: {reboot_timeout: 60}\n",
        &[],
    );
    p.ok();
    let r = p.result("reboot");
    assert!(
        r["warnings"].to_string().contains("pre-empted"),
        "{r}\n{}",
        p.all
    );
    let builtins: Vec<String> = sim
        .records()
        .iter()
        .filter_map(|r| r["builtin"].as_str().map(str::to_string))
        .filter(|b| b.starts_with("reboot") || b.starts_with("shutdown"))
        .collect();
    assert_eq!(builtins, vec!["reboot", "shutdown_abort", "reboot"]);
    assert_eq!(sim.host()["boot"]["count"], 2);
}

#[test]
fn win_reboot_times_out_clearly_when_the_host_never_returns() {
    let mut sim = Sim::start(&[]);
    let w = Work::new();
    let inv = w.write("inventory.yml", &sim.inventory());
    let pb = w.write(
        "play.yml",
        "- hosts: windows\n  gather_facts: false\n  tasks:\n    - name: reboot\n      win_reboot: {reboot_timeout: 6, connect_timeout: 2}\n",
    );
    let child = std::process::Command::new(common::mixop_bin())
        .args(["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the host as soon as it was told to reboot: it never comes back.
    let t0 = Instant::now();
    while sim.reboots() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no reboot command");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(sim.peer.take());
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    let waited = stopped.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("Timed out waiting for the host to reboot (timeout=6)"),
        "{stdout}"
    );
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "gave up after {waited:?}"
    );
}

#[test]
fn win_reboot_in_check_mode_reboots_nothing() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let p = play(
        &w,
        &sim,
        "    - name: reboot\n      win_reboot: {}\n",
        &["--check"],
    );
    p.ok();
    assert_eq!(p.result("reboot")["rebooted"], true);
    assert_eq!(sim.reboots(), 0);
    assert_eq!(sim.host()["boot"]["count"], 1);
}

// ---------------------------------------------------------------- features

#[test]
fn containers_feature_then_reboot_when_required() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let tasks = "    - name: containers\n      win_feature: {name: Containers}\n      register: f\n    - name: reboot\n      win_reboot: {reboot_timeout: 60}\n      when: f.reboot_required\n";

    // --check on a fresh host changes nothing.
    let p = play(&w, &sim, tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("containers")["changed"], true);
    assert_eq!(sim.host()["features"]["Containers"], "Available");
    assert_eq!(sim.reboots(), 0);

    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.result("containers")["reboot_required"], true);
    assert_eq!(p.result("reboot")["rebooted"], true);
    assert_eq!(p.changed(), 2);
    let host = sim.host();
    assert_eq!(host["features"]["Containers"], "Installed");
    assert_eq!(host["reboot_pending"], false);
    assert_eq!(sim.reboots(), 1);

    // Second run: nothing to do, no reboot.
    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(p.result("containers")["reboot_required"], false);
    assert_eq!(p.task("reboot")["status"], "skipped");
    assert_eq!(sim.reboots(), 1);
}

// ---------------------------------------------------------------- services

fn seeded(files: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for f in files {
        m.insert(f.to_string(), Value::String(format!("MZ simulated {f}")));
    }
    serde_json::json!({ "seed_files": m })
}

#[test]
fn service_create_start_auto_then_delete() {
    let sim = Sim::start_with(&[], Some(seeded(&[r"C:\Program Files\k3s\k3s.exe"])));
    let w = Work::new();
    let tasks = r#"    - name: svc
      win_service:
        name: k3s-agent
        path: 'C:\Program Files\k3s\k3s.exe'
        arguments: [agent, --token-file, 'C:\etc\k3s token', --node-label, "a=\"b\" $c `d é"]
        display_name: k3s agent
        description: "k3s agent, kept running\nby mixop"
        start_mode: delayed
        dependencies: [vmcompute]
        failure_actions:
          - {type: restart, delay_ms: 5000}
          - {type: restart, delay_ms: 10000}
          - {type: none}
        failure_reset_period_sec: 86400
        failure_actions_on_non_crash_failure: true
        state: started
"#;
    // --check: nothing is created.
    let p = play(&w, &sim, tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("svc")["changed"], true);
    assert!(sim.host()["services"].get("k3s-agent").is_none());

    // vmcompute (a dependency) comes with the Containers feature, not there yet: the start fails,
    // saying why.
    let p = play(&w, &sim, tasks, &[]);
    assert_eq!(p.failed(), 1, "{}", p.all);
    let r = p.result("svc");
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("Service 'k3s-agent' could not be started: ")
            && msg.ends_with(
                "Cannot start service k3s-agent on computer '.': The dependency service does not exist or has been marked for deletion"
            ),
        "{msg}"
    );
    assert_eq!(r["state"], "stopped", "{r}");
    let svc = &sim.host()["services"]["k3s-agent"];
    assert_eq!(
        svc["binary_path_name"],
        r#""C:\Program Files\k3s\k3s.exe" agent --token-file "C:\etc\k3s token" --node-label "a=\"b\" $c `d é""#
    );
    assert_eq!(svc["start_mode"], "delayed");
    assert_eq!(svc["description"], "k3s agent, kept running\nby mixop");
    assert_eq!(svc["display_name"], "k3s agent");
    assert_eq!(svc["depends_on"], serde_json::json!(["vmcompute"]));
    assert_eq!(
        svc["failure_actions"]["actions"],
        serde_json::json!([{"type": "restart", "delay_ms": 5000}, {"type": "restart", "delay_ms": 10000}, {"type": "none", "delay_ms": 0}])
    );
    assert_eq!(svc["failure_actions"]["reset_period"], 86400);
    assert_eq!(svc["failure_actions_on_non_crash"], true);

    // With the dependency's binary in place the same task starts it; a second run changes nothing.
    sim.control(
        "sim/patch",
        r#"{"services": {"vmcompute": {"name": "vmcompute", "binary_path_name": "C:\\Windows\\system32\\svchost.exe -k x", "start_mode": "manual"}}}"#,
    );
    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.result("svc")["state"], "running");
    assert_eq!(p.result("svc")["start_mode"], "delayed");
    assert_eq!(sim.host()["services"]["k3s-agent"]["status"], "Running");
    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);
    let applies = sim.requests("win_service", "apply").len();

    // --diff shows what changes; absent stops and deletes.
    let p = play(
        &w,
        &sim,
        "    - name: svc\n      win_service: {name: k3s-agent, start_mode: manual}\n",
        &["--diff"],
    );
    p.ok();
    let d = &p.result("svc")["diff"];
    assert_eq!(d["before"]["start_mode"], "delayed");
    assert_eq!(d["after"]["start_mode"], "manual");
    let p = play(
        &w,
        &sim,
        "    - name: svc\n      win_service: {name: k3s-agent, state: absent}\n",
        &[],
    );
    p.ok();
    assert_eq!(p.result("svc")["exists"], false);
    assert!(sim.host()["services"].get("k3s-agent").is_none());
    assert_eq!(sim.requests("win_service", "apply").len(), applies + 2);
    let p = play(
        &w,
        &sim,
        "    - name: svc\n      win_service: {name: k3s-agent, state: absent}\n",
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 0);
}

#[test]
fn service_start_fails_clearly_when_the_binary_is_missing() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let p = play(
        &w,
        &sim,
        "    - name: svc\n      win_service: {name: rke2, path: 'C:\\usr\\local\\bin\\rke2.exe agent', state: started}\n",
        &[],
    );
    assert_eq!(p.code, 2, "{}", p.all);
    let msg = p.result("svc")["msg"].as_str().unwrap().to_string();
    assert_eq!(
        msg,
        "Service 'rke2' could not be started: Service 'rke2 (rke2)' cannot be started due to the following error: Cannot start service rke2 on computer '.': The system cannot find the file specified"
    );
    let svc = &sim.host()["services"]["rke2"];
    assert_eq!(svc["status"], "Stopped");
    assert_eq!(svc["start_mode"], "auto");
}

#[test]
fn service_password_is_applied_for_the_same_user_and_never_printed() {
    let sim = Sim::start_with(&[], Some(seeded(&[r"C:\svc\agent.exe"])));
    let w = Work::new();
    let task = |pw: &str, extra: &str| {
        format!(
            "    - name: svc\n      win_service: {{name: agent, path: 'C:\\svc\\agent.exe', username: svcuser, password: '{pw}'{extra}}}\n"
        )
    };
    let p = play(&w, &sim, &task("Fir$t'' \"pw\"", ""), &["-v", "--diff"]);
    p.ok();
    let svc = &sim.host()["services"]["agent"];
    assert_eq!(svc["start_name"], ".\\svcuser");
    assert_eq!(svc["password_changes"], 1);
    let first = svc["password_sha256"].clone();
    assert!(
        !p.all.contains("Fir$t"),
        "the password was printed:\n{}",
        p.all
    );
    // Nor is it in what the host records of the module requests (it travels as a secret).
    let scripts = serde_json::to_string(&sim.scripts()).unwrap();
    assert!(scripts.contains("win_service"), "{scripts}");
    assert!(
        !scripts.contains("Fir$t"),
        "the password is in scripts.jsonl"
    );
    assert_eq!(
        p.result("svc")["diff"]["after"]["password"],
        "CHANGED REDACTED"
    );

    // Same user, new password: applied (ansible/ansible#69911).
    let p = play(&w, &sim, &task("Second", ""), &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    let svc = &sim.host()["services"]["agent"];
    assert_eq!(svc["password_changes"], 2);
    assert_ne!(svc["password_sha256"], first);
    assert!(!p.all.contains("Second"));

    // update_password: on_create leaves it alone.
    let p = play(
        &w,
        &sim,
        &task("Third", ", update_password: on_create"),
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(sim.host()["services"]["agent"]["password_changes"], 2);
}

#[test]
fn optional_feature_reboot_only_while_a_change_needs_it() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let tasks = "    - name: opt\n      win_optional_feature: {name: [Containers, TelnetClient]}\n      register: f\n";
    let p = play(&w, &sim, tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("opt")["changed"], true);
    assert_eq!(sim.host()["features"]["Containers"], "Available");

    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.result("opt")["reboot_required"], true);
    assert_eq!(sim.host()["features"]["Containers"], "InstallPending");
    assert_eq!(sim.host()["features"]["Telnet-Client"], "Installed");
    // Not rebooted yet: nothing to change, but the restart is still owed.
    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(p.result("opt")["reboot_required"], true);

    let p = play(
        &w,
        &sim,
        &format!(
            "{tasks}    - name: reboot\n      win_reboot: {{}}\n      when: f.reboot_required\n"
        ),
        &[],
    );
    p.ok();
    assert_eq!(sim.host()["features"]["Containers"], "Installed");
    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(p.result("opt")["reboot_required"], false);

    let p = play(
        &w,
        &sim,
        "    - name: opt\n      win_optional_feature: {name: NoSuchThing}\n",
        &[],
    );
    assert_eq!(p.failed(), 1);
    assert!(
        p.result("opt")["msg"]
            .as_str()
            .unwrap()
            .starts_with("Failed to find feature 'NoSuchThing'")
    );
}

// ---------------------------------------------------------------- Defender

#[test]
fn defender_exclusions_added_and_removed_once() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let tasks = r#"    - name: excl
      win_defender_exclusion:
        path: ['C:\var\lib\rancher', 'C:\run\flannel', 'C:\opt\cni', "C:\\it's $x `y é"]
        process: [containerd.exe]
        extension: [vhdx]
"#;
    let p = play(&w, &sim, tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("excl")["changed"], true);
    assert_eq!(
        sim.host()["defender"]["exclusion_path"],
        serde_json::json!([])
    );

    let p = play(&w, &sim, tasks, &["--diff"]);
    p.ok();
    let r = p.result("excl");
    assert_eq!(r["added"]["path"].as_array().unwrap().len(), 4);
    assert_eq!(r["added"]["process"], serde_json::json!(["containerd.exe"]));
    let d = &sim.host()["defender"];
    assert_eq!(
        d["exclusion_path"],
        serde_json::json!([
            r"C:\var\lib\rancher",
            r"C:\run\flannel",
            r"C:\opt\cni",
            r"C:\it's $x `y é"
        ])
    );
    assert_eq!(d["exclusion_extension"], serde_json::json!(["vhdx"]));
    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);

    let p = play(
        &w,
        &sim,
        "    - name: excl\n      win_defender_exclusion: {path: ['c:\\OPT\\cni\\', 'C:\\never'], extension: [.VHDX], state: absent}\n",
        &[],
    );
    p.ok();
    let r = p.result("excl");
    assert_eq!(r["removed"]["path"], serde_json::json!([r"C:\opt\cni"]));
    assert_eq!(r["removed"]["extension"], serde_json::json!(["vhdx"]));
    let d = &sim.host()["defender"];
    assert_eq!(d["exclusion_path"].as_array().unwrap().len(), 3);
    assert_eq!(d["exclusion_extension"], serde_json::json!([]));
}

// ---------------------------------------------------------------- firewall

#[test]
fn firewall_rules_compare_and_set_only_what_differs() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let tasks = r#"    - name: api
      win_firewall_rule:
        name: "k3s 'api' $x `y é"
        localport: 6443,10250
        protocol: tcp
        direction: in
        action: allow
        remoteip: 10.0.0.0/24,192.168.56.10
        profiles: [domain, private, public]
        description: kubelet and API
    - name: vxlan
      win_firewall_rule: {name: flannel vxlan, localport: 4789, protocol: udp, group: k3s}
"#;
    let p = play(&w, &sim, tasks, &["--check"]);
    p.ok();
    assert_eq!(p.changed(), 2);
    let rules = |sim: &Sim| -> Vec<Value> {
        sim.host()["firewall_rules"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| {
                r["display_name"] == "flannel vxlan" || r["display_name"] == "k3s 'api' $x `y é"
            })
            .cloned()
            .collect()
    };
    assert!(rules(&sim).is_empty());

    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 2);
    assert_eq!(
        p.result("api")["msg"],
        "Firewall rule 'k3s 'api' $x `y é' created."
    );
    let api = rules(&sim)
        .into_iter()
        .find(|r| r["protocol"] == "TCP")
        .unwrap();
    assert_eq!(api["local_port"], serde_json::json!(["6443", "10250"]));
    // Windows reports the prefix in mask form; the second run must still see no change.
    assert_eq!(
        api["remote_address"],
        serde_json::json!(["10.0.0.0/255.255.255.0", "192.168.56.10"])
    );
    assert_eq!(api["profile"], "Any");
    let p = play(&w, &sim, tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);

    // One differing value: only that parameter is set.
    let p = play(
        &w,
        &sim,
        "    - name: vxlan\n      win_firewall_rule: {name: flannel vxlan, localport: 4789, protocol: udp, enabled: false, group: k3s-net}\n",
        &["--diff"],
    );
    p.ok();
    let set = sim.requests("win_firewall_rule", "apply").last().unwrap()["plan"]["set"].clone();
    assert_eq!(
        set[0]["params"],
        serde_json::json!({"Enabled": "False", "Group": "k3s-net"})
    );
    let vx = rules(&sim)
        .into_iter()
        .find(|r| r["protocol"] == "UDP")
        .unwrap();
    assert_eq!(vx["enabled"], false);
    assert_eq!(vx["group"], "k3s-net");

    // A whole group at once, then removal.
    let p = play(
        &w,
        &sim,
        "    - name: group\n      win_firewall_rule: {group: k3s-net, enabled: true}\n",
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 1);
    let p = play(
        &w,
        &sim,
        "    - name: gone\n      win_firewall_rule: {name: flannel vxlan, state: absent}\n",
        &[],
    );
    p.ok();
    assert_eq!(
        p.result("gone")["msg"],
        "Firewall rule(s) 'flannel vxlan' removed."
    );
    assert_eq!(rules(&sim).len(), 1);
}

// ---------------------------------------------------------------- scheduled tasks

#[test]
fn scheduled_task_defined_once_run_with_schtasks_and_removed() {
    let sim = Sim::start(&[]);
    let w = Work::new();
    let define = r#"    - name: task
      win_scheduled_task:
        name: mixop-agent
        description: "agent 'x' $y"
        actions:
          - path: C:\Windows\System32\cmd.exe
            arguments: /c "echo it's %COMPUTERNAME%"
        triggers: [{type: boot}]
        username: NT AUTHORITY\SYSTEM
        run_level: highest
        restart_count: 999
        restart_interval: PT60S
        execution_time_limit: PT0S
        enabled: true
"#;
    let tasks = |sim: &Sim| sim.host()["scheduled_tasks"].clone();
    let p = play(&w, &sim, define, &["--check"]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert_eq!(p.result("task")["msg"], "task 'mixop-agent' created");
    assert!(tasks(&sim).get("\\mixop-agent").is_none());

    let p = play(&w, &sim, define, &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    let t = tasks(&sim)["\\mixop-agent"].clone();
    assert_eq!(t["actions"][0]["execute"], r"C:\Windows\System32\cmd.exe");
    assert_eq!(
        t["actions"][0]["arguments"],
        "/c \"echo it's %COMPUTERNAME%\""
    );
    assert_eq!(t["triggers"][0]["type"], "AtStartup");
    assert_eq!(t["principal"]["user_id"], "SYSTEM");
    assert_eq!(t["principal"]["logon_type"], "ServiceAccount");
    assert_eq!(t["principal"]["run_level"], "Highest");
    assert_eq!(t["settings"]["restart_count"], 999);
    assert_eq!(t["description"], "agent 'x' $y");
    assert_eq!(t["state"], "Ready");
    // Same definition, other spellings (PT60S read back as given, SYSTEM without its domain): no change.
    let p = play(&w, &sim, define, &[]);
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);

    // Run it the way the cluster playbook does, guarded by the stat module.
    let run = r#"    - name: stat
      win_scheduled_task_stat: {name: mixop-agent}
      register: st
    - name: start
      win_command: schtasks.exe /Run /TN mixop-agent
      when: st.state.status != 'TASK_STATE_RUNNING'
"#;
    let p = play(&w, &sim, run, &[]);
    p.ok();
    assert_eq!(
        p.result("start")["stdout"],
        "SUCCESS: Attempted to run the scheduled task \"mixop-agent\"."
    );
    assert_eq!(tasks(&sim)["\\mixop-agent"]["state"], "Running");
    let p = play(&w, &sim, run, &[]);
    p.ok();
    assert_eq!(p.task("start")["status"], "skipped", "{}", p.all);

    // A changed argument re-registers the task; the running instance carries on.
    let changed = define.replace("restart_count: 999", "restart_count: 3");
    let p = play(&w, &sim, &changed, &["--diff"]);
    p.ok();
    assert_eq!(
        p.result("task")["msg"],
        "task 'mixop-agent' changed: restart_count"
    );
    assert_eq!(p.result("task")["diff"]["after"]["restart_count"], 3);
    let t = tasks(&sim)["\\mixop-agent"].clone();
    assert_eq!(t["settings"]["restart_count"], 3);
    assert_eq!(t["state"], "Running");

    // Errors name the argument; a missing task for schtasks is Windows' own message.
    let p = play(
        &w,
        &sim,
        "    - name: bad\n      win_scheduled_task: {name: other, actions: [{path: a.exe}], restart_count: 2}\n",
        &[],
    );
    assert_eq!(p.failed(), 1);
    assert!(
        p.result("bad")["msg"]
            .as_str()
            .unwrap()
            .contains("restart_count needs restart_interval"),
        "{}",
        p.all
    );
    let p = play(
        &w,
        &sim,
        "    - name: missing\n      win_command: schtasks.exe /Run /TN nosuch\n",
        &[],
    );
    assert_eq!(p.failed(), 1);
    assert_eq!(
        p.result("missing")["stderr"],
        "ERROR: The system cannot find the file specified."
    );

    let gone = "    - name: gone\n      win_scheduled_task: {name: mixop-agent, state: absent}\n";
    let p = play(&w, &sim, gone, &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert!(tasks(&sim).get("\\mixop-agent").is_none());
    let p = play(&w, &sim, gone, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
}
