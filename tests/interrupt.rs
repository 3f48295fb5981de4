//! Ctrl-C (SIGINT) during `mixop run` and `mixop exec`, on every transport: exit 130 within
//! 5 s, the recap, the interrupted task named per host, and nothing mixop started still
//! running — every process of every command (the shell and what it started, a become'd command
//! too) is gone. The lab hosts and the WinRM peer share this machine's pid namespace, so one
//! scan of /proc sees their processes.

mod common;

use std::time::Duration;

use common::{Background, Lab, WinrmPeer, Work, procs_with, wait_until};

/// The whole interrupt, SIGINT to exit, must fit in this.
const LIMIT: Duration = Duration::from_secs(5);

/// A `sleep` command line no other test (or other run of this one) uses.
fn unique_sleep(tag: u32) -> String {
    format!("sleep {}.{tag}", 3000 + std::process::id() % 1000)
}

/// Waits until `n` processes run exactly `sleep` (the commands really started on each host).
fn wait_for_sleeps(sleep: &str, n: usize, mixop: &mut Background) {
    wait_until(Duration::from_secs(30), "the commands to start", || {
        assert!(!mixop.exited(), "mixop exited before it was interrupted");
        let running: Vec<_> = procs_with(sleep)
            .into_iter()
            .filter(|(_, line)| line == sleep)
            .collect();
        if running.len() == n {
            Ok(())
        } else {
            Err(format!("{running:?}"))
        }
    });
}

/// Every process whose command line holds `sleep` (shells, sudo, the sleeps) is gone. The stop
/// was delivered before mixop exited; this only waits for the killed processes to finish dying.
fn assert_no_leftovers(sleep: &str, r: &common::Run) {
    wait_until(Duration::from_secs(1), "every process to be gone", || {
        let left = procs_with(sleep);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {left:?}\n{}", r.all()))
        }
    });
}

fn interrupt(mixop: Background) -> common::Run {
    mixop.interrupt();
    let (r, took) = mixop.wait(LIMIT);
    eprintln!("SIGINT to exit: {took:?}");
    assert_eq!(
        r.code,
        130,
        "exit code after SIGINT ({took:?}):\n{}",
        r.all()
    );
    r
}

#[test]
fn local_commands_are_stopped_with_everything_they_started() {
    let w = Work::new();
    w.write(
        "inventory.yml",
        "all:\n  hosts:\n    h1: {ansible_connection: local}\n    h2: {ansible_connection: local}\n    h3: {ansible_connection: local, ansible_become: true}\n    h4: {ansible_connection: local}\n",
    );
    let sleep = unique_sleep(1);
    // `; echo` keeps the shell alive beside its `sleep` child: two processes per host.
    w.write(
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo first\n    - name: wait here\n      shell: {sleep}; echo never\n"
        ),
    );
    let mut mixop = w.spawn_mixop(&["run", "pb.yml", "-i", "inventory.yml"]);
    wait_for_sleeps(&sleep, 4, &mut mixop);
    let r = interrupt(mixop);
    assert!(
        r.stdout.contains("interrupted (SIGINT)")
            && r.stdout
                .contains("TASK [wait here] (pb.yml:5) on h1, h2, h3, h4"),
        "{}",
        r.all()
    );
    for h in ["h1", "h2", "h3", "h4"] {
        assert_eq!(r.recap(h), common::recap(1, 1, 0, 0), "{h}");
    }
    assert!(!r.stdout.contains("never"), "{}", r.all());
    assert_no_leftovers(&sleep, &r);
}

#[test]
fn json_output_has_an_interrupted_event_before_the_recap() {
    let w = Work::new();
    w.local_inventory(1);
    let sleep = unique_sleep(2);
    w.write(
        "pb.yml",
        &format!("- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: {sleep}; true\n"),
    );
    let mut mixop = w.spawn_mixop(&["run", "pb.yml", "-i", "inventory.yml", "--output", "json"]);
    wait_for_sleeps(&sleep, 1, &mut mixop);
    let r = interrupt(mixop);
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let n = events.len();
    assert!(n >= 2, "{}", r.all());
    assert_eq!(
        events[n - 2],
        serde_json::json!({"event": "interrupted", "running": [
            {"host": "h1", "task": "shell", "location": "pb.yml:4"}
        ]}),
        "{}",
        r.all()
    );
    assert_eq!(events[n - 1]["event"], "recap");
    assert_eq!(events[n - 1]["interrupted"], true);
    assert_no_leftovers(&sleep, &r);
}

#[test]
fn exec_on_local_hosts_says_what_was_interrupted() {
    let w = Work::new();
    w.local_inventory(2);
    let sleep = unique_sleep(3);
    let cmd = format!("{sleep}; echo never");
    let mut mixop = w.spawn_mixop(&["exec", "-i", "inventory.yml", "all", "--", &cmd]);
    wait_for_sleeps(&sleep, 2, &mut mixop);
    let r = interrupt(mixop);
    for h in ["h1", "h2"] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&format!(
                "{h} | INTERRUPTED | local | while the command ran; it was stopped"
            ))),
            "{}",
            r.all()
        );
    }
    assert!(r.stdout.contains("interrupted (SIGINT)"), "{}", r.all());
    assert_no_leftovers(&sleep, &r);
}

/// Whether a process has a `sudo` among its ancestors.
fn under_sudo(pid: u32) -> bool {
    let mut pid = pid;
    for _ in 0..8 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The fields after the command name (which may hold spaces) start with state, ppid.
        let Some(ppid) = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            return false;
        };
        let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"sudo\0") {
            return true;
        }
        if ppid <= 1 {
            return false;
        }
        pid = ppid;
    }
    false
}

#[test]
fn ssh_commands_are_stopped_on_every_host_also_as_root_through_sudo() {
    let lab = Lab::up(3, &[]);
    let w = Work::new();
    // root; a user whose sudo asks for a password; one with NOPASSWD sudo. The become'd
    // commands run as root, so only a kill through the same sudo can stop them.
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  vars:\n    ansible_ssh_private_key_file: {key}\n    mixop_known_hosts_file: {kh}\n  hosts:\n    lab1: {{ansible_host: {a1}, ansible_user: root}}\n    lab2: {{ansible_host: {a2}, ansible_user: labuser, ansible_become: true, ansible_become_password: labpass}}\n    lab3: {{ansible_host: {a3}, ansible_user: nopass, ansible_become: true}}\n",
            key = lab.key().display(),
            kh = lab.known_hosts().display(),
            a1 = lab.addr("lab1"),
            a2 = lab.addr("lab2"),
            a3 = lab.addr("lab3"),
        ),
    );
    let inv = inv.to_str().unwrap();
    let sleep = unique_sleep(4);
    w.write(
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: wait here\n      shell: {sleep}; echo never\n"
        ),
    );
    let mut mixop = w.spawn_mixop(&["run", "pb.yml", "-i", inv]);
    wait_for_sleeps(&sleep, 3, &mut mixop);
    // The command is not on sudo's command line (it reads its script from stdin): a sleep
    // runs through sudo when a sudo is among its ancestors.
    let as_root: Vec<_> = procs_with(&sleep)
        .into_iter()
        .filter(|(pid, _)| under_sudo(*pid))
        .collect();
    assert_eq!(
        as_root.len(),
        2,
        "lab2 and lab3 run through sudo: {as_root:?}"
    );
    let r = interrupt(mixop);
    assert!(
        r.stdout
            .contains("TASK [wait here] (pb.yml:4) on lab1, lab2, lab3"),
        "{}",
        r.all()
    );
    for h in ["lab1", "lab2", "lab3"] {
        assert_eq!(r.recap(h), common::recap(0, 0, 0, 0), "{h}");
    }
    assert_no_leftovers(&sleep, &r);

    // `mixop exec`: the same, and it says so per host.
    let sleep = unique_sleep(5);
    let cmd = format!("{sleep}; echo never");
    let mut mixop = w.spawn_mixop(&["exec", "-i", inv, "all", "--", &cmd]);
    wait_for_sleeps(&sleep, 3, &mut mixop);
    let r = interrupt(mixop);
    for h in ["lab1", "lab2", "lab3"] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&format!(
                "{h} | INTERRUPTED | ssh | while the command ran; it was stopped"
            ))),
            "{}",
            r.all()
        );
    }
    assert_no_leftovers(&sleep, &r);
}

#[test]
fn winrm_commands_get_signal_terminate_before_their_shell_is_deleted() {
    // Default peers run commands through /bin/sh here, each in a process group of its own.
    let peers = [WinrmPeer::start(&[]), WinrmPeer::start(&[])];
    let w = Work::new();
    w.write(
        "inventory.yml",
        &format!(
            "all:\n  children:\n    windows:\n      hosts:\n{}{}",
            peers[0].inventory_host("win1"),
            peers[1].inventory_host("win2")
        ),
    );
    let sleep = unique_sleep(6);
    w.write(
        "pb.yml",
        &format!(
            "- hosts: windows\n  gather_facts: false\n  tasks:\n    - name: wait here\n      raw: {sleep}; echo never\n"
        ),
    );
    let mut mixop = w.spawn_mixop(&["run", "pb.yml", "-i", "inventory.yml"]);
    wait_for_sleeps(&sleep, 2, &mut mixop);
    let r = interrupt(mixop);
    assert!(
        r.stdout
            .contains("TASK [wait here] (pb.yml:4) on win1, win2"),
        "{}",
        r.all()
    );
    assert_no_leftovers(&sleep, &r);
    for (i, p) in peers.iter().enumerate() {
        let stats = p.stats();
        // The one command, signalled (not just ended with its shell), then the shell deleted.
        assert_eq!(
            stats["signals"],
            serde_json::json!({"terminate": 1}),
            "win{}: {stats}",
            i + 1
        );
        assert_eq!(stats["shells_deleted"], 1, "win{}: {stats}", i + 1);
        assert_eq!(stats["shells_open"], 0, "win{}: {stats}", i + 1);
    }

    let sleep = unique_sleep(7);
    let cmd = format!("{sleep}; echo never");
    let mut mixop = w.spawn_mixop(&["exec", "-i", "inventory.yml", "windows", "--", &cmd]);
    wait_for_sleeps(&sleep, 2, &mut mixop);
    let r = interrupt(mixop);
    for h in ["win1", "win2"] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&format!(
                "{h} | INTERRUPTED | winrm | while the command ran; it was stopped"
            ))),
            "{}",
            r.all()
        );
    }
    assert_no_leftovers(&sleep, &r);
    for p in &peers {
        assert_eq!(p.stats()["signals"], serde_json::json!({"terminate": 2}));
    }
}
