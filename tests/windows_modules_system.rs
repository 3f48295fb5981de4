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
