//! The Windows system modules a Kubernetes worker needs (win_service, win_reboot,
//! win_firewall_rule, win_defender_exclusion, win_optional_feature, win_scheduled_task), run by
//! the `mixop` binary against the WinRM peer's simulated Windows Server 2022 host
//! (`--mode sim`). The host's state is checked as data (`host.json`), and what mixop sent as
//! `scripts.jsonl`.

mod common;

use std::time::Duration;

use common::{Session, Sim};
use serde_json::Value;

// ---------------------------------------------------------------- win_reboot

#[test]
fn win_reboot_waits_for_a_new_boot_time() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let boot0 = sim.host()["boot"]["count"].as_u64().unwrap();
    let p = s.play(
        r#"    - name: reboot
      win_reboot: {reboot_timeout: 60, msg: "it's $env:X `n \"q\" é"}
    - name: after
      win_ping: {}
"#,
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
    let s = Session::win_sim(&["--reboot-down", "0.05"], None);
    let sim = s.sim();
    let p = s.play(
        r#"    - name: reboot
      win_reboot: {reboot_timeout: 30}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.result("reboot")["rebooted"], true);
    assert_eq!(sim.host()["boot"]["count"], 2);
}

#[test]
fn win_reboot_pre_empts_a_scheduled_shutdown() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    // Someone scheduled a reboot an hour from now: shutdown /r answers 1190.
    sim.control("reboot", r#"{"delay_seconds": 3600}"#);
    let p = s.play(
        r#"    - name: reboot
      win_reboot: {reboot_timeout: 60}
"#,
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
    let mut s = Session::win_sim(&[], None).playbook(
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: reboot
      win_reboot: {reboot_timeout: 6, connect_timeout: 2}
"#,
    );
    let bg = s.spawn(&[]);
    // Stop the host as soon as it was told to reboot: it never comes back.
    common::wait_until(Duration::from_secs(30), "a reboot command", || {
        (s.sim().reboots() > 0)
            .then_some(())
            .ok_or_else(|| "none yet".into())
    });
    drop(s.sim.as_mut().unwrap().peer.take());
    let (r, waited) = bg.wait(Duration::from_secs(60));
    r.exits(2)
        .stdout_has("Timed out waiting for the host to reboot (timeout=6)");
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "gave up after {waited:?}"
    );
}

#[test]
fn win_reboot_in_check_mode_reboots_nothing() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let p = s.play(
        r#"    - name: reboot
      win_reboot: {}
"#,
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
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let tasks = r#"    - name: containers
      win_feature: {name: Containers}
      register: f
    - name: reboot
      win_reboot: {reboot_timeout: 60}
      when: f.reboot_required
"#;

    // --check on a fresh host changes nothing.
    let p = s.play(tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("containers")["changed"], true);
    assert_eq!(sim.host()["features"]["Containers"], "Available");
    assert_eq!(sim.reboots(), 0);

    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.result("containers")["reboot_required"], true);
    assert_eq!(p.result("reboot")["rebooted"], true);
    assert_eq!(p.changed(), 2);
    let host = sim.host();
    assert_eq!(host["features"]["Containers"], "Installed");
    assert_eq!(host["reboot_pending"], false);
    assert_eq!(sim.reboots(), 1);

    // Second run: nothing to do, no reboot.
    let p = s.play(tasks, &[]);
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
    let s = Session::win_sim(&[], Some(seeded(&[r"C:\Program Files\k3s\k3s.exe"])));
    let sim = s.sim();
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
    let p = s.play(tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("svc")["changed"], true);
    assert!(sim.host()["services"].get("k3s-agent").is_none());

    // vmcompute (a dependency) comes with the Containers feature, not there yet: the start fails,
    // saying why.
    let p = s.play(tasks, &[]);
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
    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.result("svc")["state"], "running");
    assert_eq!(p.result("svc")["start_mode"], "delayed");
    assert_eq!(sim.host()["services"]["k3s-agent"]["status"], "Running");
    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);
    let applies = sim.requests("win_service", "apply").len();

    // --diff shows what changes; absent stops and deletes.
    let p = s.play(
        r#"    - name: svc
      win_service: {name: k3s-agent, start_mode: manual}
"#,
        &["--diff"],
    );
    p.ok();
    let d = &p.result("svc")["diff"];
    assert_eq!(d["before"]["start_mode"], "delayed");
    assert_eq!(d["after"]["start_mode"], "manual");
    let p = s.play(
        r#"    - name: svc
      win_service: {name: k3s-agent, state: absent}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.result("svc")["exists"], false);
    assert!(sim.host()["services"].get("k3s-agent").is_none());
    assert_eq!(sim.requests("win_service", "apply").len(), applies + 2);
    let p = s.play(
        r#"    - name: svc
      win_service: {name: k3s-agent, state: absent}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 0);
}

#[test]
fn service_start_fails_clearly_when_the_binary_is_missing() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let p = s.play(
        r#"    - name: svc
      win_service: {name: rke2, path: 'C:\usr\local\bin\rke2.exe agent', state: started}
"#,
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
    let s = Session::win_sim(&[], Some(seeded(&[r"C:\svc\agent.exe"])));
    let sim = s.sim();
    let task = |pw: &str, extra: &str| {
        format!(
            r#"    - name: svc
      win_service: {{name: agent, path: 'C:\svc\agent.exe', username: svcuser, password: '{pw}'{extra}}}
"#
        )
    };
    let p = s.play(&task("Fir$t'' \"pw\"", ""), &["-v", "--diff"]);
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
    let p = s.play(&task("Second", ""), &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    let svc = &sim.host()["services"]["agent"];
    assert_eq!(svc["password_changes"], 2);
    assert_ne!(svc["password_sha256"], first);
    assert!(!p.all.contains("Second"));

    // update_password: on_create leaves it alone.
    let p = s.play(&task("Third", ", update_password: on_create"), &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(sim.host()["services"]["agent"]["password_changes"], 2);
}

#[test]
fn optional_feature_reboot_only_while_a_change_needs_it() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let tasks = r#"    - name: opt
      win_optional_feature: {name: [Containers, TelnetClient]}
      register: f
"#;
    let p = s.play(tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("opt")["changed"], true);
    assert_eq!(sim.host()["features"]["Containers"], "Available");

    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.result("opt")["reboot_required"], true);
    assert_eq!(sim.host()["features"]["Containers"], "InstallPending");
    assert_eq!(sim.host()["features"]["Telnet-Client"], "Installed");
    // Not rebooted yet: nothing to change, but the restart is still owed.
    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(p.result("opt")["reboot_required"], true);

    let p = s.play(
        &format!(
            "{tasks}    - name: reboot\n      win_reboot: {{}}\n      when: f.reboot_required\n"
        ),
        &[],
    );
    p.ok();
    assert_eq!(sim.host()["features"]["Containers"], "Installed");
    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(p.result("opt")["reboot_required"], false);

    let p = s.play(
        r#"    - name: opt
      win_optional_feature: {name: NoSuchThing}
"#,
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
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let tasks = r#"    - name: excl
      win_defender_exclusion:
        path: ['C:\var\lib\rancher', 'C:\run\flannel', 'C:\opt\cni', "C:\\it's $x `y é"]
        process: [containerd.exe]
        extension: [vhdx]
"#;
    let p = s.play(tasks, &["--check"]);
    p.ok();
    assert_eq!(p.result("excl")["changed"], true);
    assert_eq!(
        sim.host()["defender"]["exclusion_path"],
        serde_json::json!([])
    );

    let p = s.play(tasks, &["--diff"]);
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
    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);

    let p = s.play(
        r#"    - name: excl
      win_defender_exclusion: {path: ['c:\OPT\cni\', 'C:\never'], extension: [.VHDX], state: absent}
"#,
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
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
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
    let p = s.play(tasks, &["--check"]);
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
    assert!(rules(sim).is_empty());

    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 2);
    assert_eq!(
        p.result("api")["msg"],
        "Firewall rule 'k3s 'api' $x `y é' created."
    );
    let api = rules(sim)
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
    let p = s.play(tasks, &[]);
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);

    // One differing value: only that parameter is set.
    let p = s.play(
        r#"    - name: vxlan
      win_firewall_rule: {name: flannel vxlan, localport: 4789, protocol: udp, enabled: false, group: k3s-net}
"#,
        &["--diff"],
    );
    p.ok();
    let set = sim.requests("win_firewall_rule", "apply").last().unwrap()["plan"]["set"].clone();
    assert_eq!(
        set[0]["params"],
        serde_json::json!({"Enabled": "False", "Group": "k3s-net"})
    );
    let vx = rules(sim)
        .into_iter()
        .find(|r| r["protocol"] == "UDP")
        .unwrap();
    assert_eq!(vx["enabled"], false);
    assert_eq!(vx["group"], "k3s-net");

    // A whole group at once, then removal.
    let p = s.play(
        r#"    - name: group
      win_firewall_rule: {group: k3s-net, enabled: true}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 1);
    let p = s.play(
        r#"    - name: gone
      win_firewall_rule: {name: flannel vxlan, state: absent}
"#,
        &[],
    );
    p.ok();
    assert_eq!(
        p.result("gone")["msg"],
        "Firewall rule(s) 'flannel vxlan' removed."
    );
    assert_eq!(rules(sim).len(), 1);
}

// ---------------------------------------------------------------- scheduled tasks

#[test]
fn scheduled_task_defined_once_run_with_schtasks_and_removed() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
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
    let p = s.play(define, &["--check"]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert_eq!(p.result("task")["msg"], "task 'mixop-agent' created");
    assert!(tasks(sim).get("\\mixop-agent").is_none());

    let p = s.play(define, &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    let t = tasks(sim)["\\mixop-agent"].clone();
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
    let p = s.play(define, &[]);
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
    let p = s.play(run, &[]);
    p.ok();
    assert_eq!(
        p.result("start")["stdout"],
        "SUCCESS: Attempted to run the scheduled task \"mixop-agent\"."
    );
    assert_eq!(tasks(sim)["\\mixop-agent"]["state"], "Running");
    let p = s.play(run, &[]);
    p.ok();
    assert_eq!(p.task("start")["status"], "skipped", "{}", p.all);

    // A changed argument re-registers the task; the running instance carries on.
    let changed = define.replace("restart_count: 999", "restart_count: 3");
    let p = s.play(&changed, &["--diff"]);
    p.ok();
    assert_eq!(
        p.result("task")["msg"],
        "task 'mixop-agent' changed: restart_count"
    );
    assert_eq!(p.result("task")["diff"]["after"]["restart_count"], 3);
    let t = tasks(sim)["\\mixop-agent"].clone();
    assert_eq!(t["settings"]["restart_count"], 3);
    assert_eq!(t["state"], "Running");

    // Errors name the argument; a missing task for schtasks is Windows' own message.
    let p = s.play(
        r#"    - name: bad
      win_scheduled_task: {name: other, actions: [{path: a.exe}], restart_count: 2}
"#,
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
    let p = s.play(
        r#"    - name: missing
      win_command: schtasks.exe /Run /TN nosuch
"#,
        &[],
    );
    assert_eq!(p.failed(), 1);
    assert_eq!(
        p.result("missing")["stderr"],
        "ERROR: The system cannot find the file specified."
    );

    let gone = r#"    - name: gone
      win_scheduled_task: {name: mixop-agent, state: absent}
"#;
    let p = s.play(gone, &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert!(tasks(sim).get("\\mixop-agent").is_none());
    let p = s.play(gone, &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
}
