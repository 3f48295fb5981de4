//! The Windows module protocol end to end: the `mixop` binary against simulated Windows hosts
//! (the WinRM peer in sim mode: NTLM + message encryption, the PowerShell host framing, a model
//! of a Windows Server 2022 host). One PowerShell process per host, arguments that arrive
//! exactly, errors that say what PowerShell said, facts, win_feature with its reboot flag,
//! idempotence and check mode.

mod common;

use common::{WinrmPeer, Work};
use serde_json::Value;

struct SimHost {
    peer: WinrmPeer,
    state: tempfile::TempDir,
}

impl SimHost {
    fn start(extra: &[&str]) -> SimHost {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().to_str().unwrap().to_string();
        let mut args = vec!["--mode", "sim", "--state-dir", dir.as_str()];
        args.extend_from_slice(extra);
        SimHost {
            peer: WinrmPeer::start(&args),
            state,
        }
    }
    fn host_json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.state.path().join("host.json")).unwrap())
            .unwrap()
    }
    /// Every module request the host received.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state.path().join("scripts.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    fn commands(&self) -> u64 {
        self.peer.stats()["requests_by_action"]["Command"]
            .as_u64()
            .unwrap_or(0)
    }
}

fn inventory(work: &Work, hosts: &[&SimHost]) -> String {
    let mut inv = String::from("all:\n  children:\n    windows:\n      hosts:\n");
    for (i, h) in hosts.iter().enumerate() {
        inv.push_str(&h.peer.inventory_host(&format!("win{}", i + 1)));
    }
    work.write("inv.yml", &inv).to_str().unwrap().to_string()
}

#[test]
fn twenty_tasks_one_powershell_process_per_host() {
    let (a, b) = (SimHost::start(&[]), SimHost::start(&[]));
    let work = Work::new();
    let inv = inventory(&work, &[&a, &b]);
    let mut play = String::from("- hosts: windows\n  gather_facts: true\n  tasks:\n");
    for i in 0..19 {
        play.push_str(&format!("    - win_ping:\n        data: \"ping {i}\"\n"));
    }
    let pb = work.write("pb.yml", &play);
    let run = work.mixop(&["run", pb.to_str().unwrap(), "-i", &inv]);
    run.ok();
    for h in [&a, &b] {
        assert_eq!(h.requests().len(), 20, "{}", run.all());
        // One Command for the host process; a second one at most for anything else.
        assert!(
            h.commands() <= 3,
            "{} Commands: {}",
            h.commands(),
            run.all()
        );
        let sessions: Vec<String> = h
            .requests()
            .iter()
            .map(|r| r["session"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(sessions.iter().all(|s| *s == "pshost"), "{sessions:?}");
    }
}

#[test]
fn arguments_arrive_exactly_and_errors_say_what_powershell_said() {
    let h = SimHost::start(&[]);
    let work = Work::new();
    let inv = inventory(&work, &[&h]);
    let odd = "it's \"quoted\" $env:PATH `backtick` %PATH% & | < > ^ spaces\nnew line Zoë 日本";
    work.write(
        "vars.yml",
        &format!("odd: {}\n", serde_json::to_string(odd).unwrap()),
    );
    let pb = work.write(
        "pb.yml",
        r#"- hosts: windows
  gather_facts: false
  vars_files: [vars.yml]
  tasks:
    - name: odd data
      win_ping:
        data: "{{ odd }}"
      register: p
    - assert:
        that: p.ping == odd
    - name: a script that throws
      win_ping:
        data: crash
"#,
    );
    let run = work.mixop(&["run", pb.to_str().unwrap(), "-i", &inv]);
    assert_eq!(run.code, 2, "{}", run.all());
    let reqs = h.requests();
    assert_eq!(reqs[0]["args"]["data"], Value::String(odd.into()));
    // The value is in the argument document, never in the script text.
    assert!(!reqs[0]["script_sha256"].as_str().unwrap().is_empty());
    let scripts = std::fs::read_dir(h.state.path().join("scripts")).unwrap();
    for s in scripts {
        let text = std::fs::read_to_string(s.unwrap().path()).unwrap();
        assert!(
            !text.contains("backtick"),
            "a value was spliced into a script"
        );
    }
    let out = run.all();
    assert!(out.contains("boom"), "{out}");
    assert!(out.contains("win_ping.ps1 line"), "{out}");
}

#[test]
fn facts_and_win_feature_idempotent_with_check_mode_and_reboot_flag() {
    let h = SimHost::start(&[]);
    let work = Work::new();
    let inv = inventory(&work, &[&h]);
    let pb = work.write(
        "pb.yml",
        r#"- hosts: windows
  gather_facts: true
  tasks:
    - assert:
        that:
          - ansible_os_family == 'Windows'
          - ansible_windows_build == 20348
          - ansible_memtotal_mb > 0
    - win_feature:
        name: [Containers]
        include_management_tools: true
      register: f
    - debug:
        msg: "reboot_required={{ f.reboot_required }}"
"#,
    );
    let pb = pb.to_str().unwrap();
    let check = work.mixop(&["run", pb, "-i", &inv, "--check"]);
    check.ok();
    assert!(
        check.all().contains("reboot_required=False"),
        "{}",
        check.all()
    );
    assert_eq!(
        h.host_json()["features"]["Containers"],
        Value::String("Available".into()),
        "check mode changed the host"
    );
    let first = work.mixop(&["run", pb, "-i", &inv]);
    first.ok();
    assert!(
        first.all().contains("reboot_required=True"),
        "{}",
        first.all()
    );
    assert_eq!(first.recap("win1").changed, 1, "{}", first.all());
    assert_eq!(
        h.host_json()["features"]["Containers"],
        Value::String("InstallPending".into())
    );
    // Pending: nothing to change, but the restart is still needed to finish it.
    let second = work.mixop(&["run", pb, "-i", &inv]);
    second.ok();
    assert_eq!(second.recap("win1").changed, 0, "{}", second.all());
    assert!(
        second.all().contains("reboot_required=True"),
        "{}",
        second.all()
    );
}

#[test]
fn posix_modules_are_refused_on_windows_hosts_before_running() {
    let h = SimHost::start(&[]);
    let work = Work::new();
    let inv = inventory(&work, &[&h]);
    let pb = work.write(
        "pb.yml",
        "- hosts: windows\n  gather_facts: false\n  tasks:\n    - copy:\n        content: x\n        dest: C:\\x.txt\n",
    );
    let run = work.mixop(&["run", pb.to_str().unwrap(), "-i", &inv]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.all()
            .contains("`copy` works on POSIX hosts only; this host uses winrm: use `win_copy`"),
        "{}",
        run.all()
    );
    assert_eq!(h.commands(), 0, "nothing ran on the host");
}
