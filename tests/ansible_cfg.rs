//! ansible.cfg found and read as Ansible does, and fact gathering on by default.
//!
//! The test environment sets `ANSIBLE_GATHERING=explicit` (.cargo/config.toml); these tests
//! remove it where they check what a user gets by default.

mod common;

use std::process::Command;

use common::{Lab, Work};

/// Runs mixop in `dir` with the user's environment for the settings under test.
fn mixop_in(w: &Work, dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> common::Run {
    let mut cmd = Command::new(common::mixop_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("HOME", w.path())
        .env_remove("ANSIBLE_GATHERING")
        .env_remove("ANSIBLE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::Run::from(cmd.output().expect("run mixop"))
}

const FACTS_PLAY: &str = r#"
- hosts: all
  tasks:
    - debug:
        msg: "system={{ ansible_system | default('none') }}"
"#;

#[test]
fn facts_are_gathered_by_default_and_gathering_explicit_turns_it_off() {
    let w = Work::new();
    w.local_inventory(2);
    w.write("pb.yml", FACTS_PLAY);
    let r = mixop_in(&w, w.path(), &["run", "pb.yml", "-i", "inventory.yml"], &[]);
    r.ok();
    // The human output shows fact gathering only in the recap: facts, then debug.
    assert_eq!(r.stdout.matches("system=Linux").count(), 2, "{}", r.all());
    assert_eq!(r.recap("h1").ok, 2, "{}", r.all());

    // The play's keyword wins over the default.
    w.write(
        "off.yml",
        &FACTS_PLAY.replace("- hosts: all\n", "- hosts: all\n  gather_facts: false\n"),
    );
    let r = mixop_in(
        &w,
        w.path(),
        &["run", "off.yml", "-i", "inventory.yml"],
        &[],
    );
    r.ok();
    assert_eq!(r.stdout.matches("system=none").count(), 2, "{}", r.all());
    assert_eq!(r.recap("h1").ok, 1, "{}", r.all());

    // ansible.cfg `gathering = explicit`: only plays that ask gather.
    w.write("ansible.cfg", "[defaults]\ngathering = explicit\n");
    let r = mixop_in(&w, w.path(), &["run", "pb.yml", "-i", "inventory.yml"], &[]);
    r.ok();
    assert_eq!(r.stdout.matches("system=none").count(), 2, "{}", r.all());
    assert_eq!(r.recap("h1").ok, 1, "{}", r.all());
    // The environment ranks above the file, as in Ansible.
    let r = mixop_in(
        &w,
        w.path(),
        &["run", "pb.yml", "-i", "inventory.yml"],
        &[("ANSIBLE_GATHERING", "implicit")],
    );
    r.ok();
    assert_eq!(r.stdout.matches("system=Linux").count(), 2, "{}", r.all());
    assert_eq!(r.recap("h1").ok, 2, "{}", r.all());
}

#[test]
fn smart_gathering_asks_each_host_once_per_run() {
    let w = Work::new();
    w.local_inventory(1);
    w.write("ansible.cfg", "[defaults]\ngathering = smart\n");
    w.write("pb.yml", &format!("{FACTS_PLAY}{FACTS_PLAY}"));
    let r = mixop_in(&w, w.path(), &["run", "pb.yml", "-i", "inventory.yml"], &[]);
    r.ok();
    // Facts once, then two debug tasks (implicit gathering would make it 4).
    assert_eq!(r.recap("h1").ok, 3, "{}", r.all());
    assert_eq!(r.stdout.matches("system=Linux").count(), 2, "{}", r.all());
}

#[test]
fn inventory_forks_and_become_come_from_ansible_cfg_relative_to_it() {
    let w = Work::new();
    std::fs::create_dir_all(w.path().join("project/inv")).unwrap();
    w.write(
        "project/inv/hosts.ini",
        "[web]\nw1 ansible_connection=local\nw2 ansible_connection=local\nw3 ansible_connection=local\n",
    );
    w.write(
        "project/ansible.cfg",
        "# a project's settings\n[defaults]\ninventory = inv/hosts.ini ; relative to this file\n\
         forks = 1\nstdout_callback = yaml\nretry_files_enabled = False\n\
         [privilege_escalation]\nbecome_user = nobody\n[ssh_connection]\npipelining = True\n",
    );
    // Each host sleeps 0.4 s; with forks = 1 they take turns.
    w.write(
        "project/pb.yml",
        "- hosts: web\n  gather_facts: false\n  tasks:\n    - command: sleep 0.4\n",
    );
    let dir = w.path().join("project");
    let t0 = std::time::Instant::now();
    let r = mixop_in(&w, &dir, &["run", "pb.yml"], &[]);
    let took = t0.elapsed();
    r.ok();
    for h in ["w1", "w2", "w3"] {
        assert_eq!(r.recap(h).changed, 1, "{h}: {}", r.all());
    }
    assert!(
        took >= std::time::Duration::from_millis(1200),
        "forks = 1 should run the three hosts one after another: {took:?}"
    );
    assert!(
        r.stderr.contains("mixop ignores these settings: [defaults] stdout_callback, [defaults] retry_files_enabled, [ssh_connection] pipelining"),
        "{}",
        r.all()
    );
    // `-i` wins over the file; `-f` over `forks`.
    w.write(
        "other.yml",
        "all:\n  hosts:\n    o1:\n      ansible_connection: local\n",
    );
    let other = w.path().join("other.yml");
    let r = mixop_in(
        &w,
        &dir,
        &[
            "run",
            "pb.yml",
            "-i",
            other.to_str().unwrap(),
            "--list-hosts",
        ],
        &[],
    );
    r.ok();
    assert!(!r.stdout.contains("w1"), "{}", r.all());

    // ANSIBLE_CONFIG names a file elsewhere; the inventory is still relative to it.
    let r = mixop_in(
        &w,
        w.path(),
        &["inventory", "--list"],
        &[("ANSIBLE_CONFIG", dir.join("ansible.cfg").to_str().unwrap())],
    );
    r.ok();
    assert!(r.stdout.contains("\"w3\""), "{}", r.all());
}

#[test]
fn a_world_writable_directory_is_not_an_ansible_cfg_source() {
    use std::os::unix::fs::PermissionsExt;
    let w = Work::new();
    let dir = w.path().join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    w.write("shared/ansible.cfg", "[defaults]\nforks = nope\n");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let r = mixop_in(&w, &dir, &["inventory", "--list"], &[]);
    r.ok();
    assert!(
        r.stderr.contains("world writable directory") && r.stderr.contains("ignoring it"),
        "{}",
        r.all()
    );
    // The same file where it counts: its bad value is an input error with file:line.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = mixop_in(&w, &dir, &["inventory", "--list"], &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("forks `nope`") && r.stderr.contains("ansible.cfg:2"),
        "{}",
        r.all()
    );
}

#[test]
fn connection_settings_from_ansible_cfg_reach_ssh_hosts() {
    let lab = Lab::up(2, &[]);
    let w = Work::new();
    // An inventory with addresses only: user, key and host-key policy come from ansible.cfg.
    let mut inv = String::from("[lab]\n");
    for h in ["lab1", "lab2"] {
        inv.push_str(&format!("{h} ansible_host={}\n", lab.addr(h)));
    }
    w.write("hosts", &inv);
    w.write(
        "ansible.cfg",
        &format!(
            "[defaults]\ninventory = hosts\nremote_user = root\nprivate_key_file = {}\n\
             host_key_checking = False\ntimeout = 5\n",
            lab.key().display()
        ),
    );
    w.write(
        "pb.yml",
        "- hosts: lab\n  tasks:\n    - command: id -un\n      register: who\n      changed_when: false\n    \
         - assert: {that: [\"who.stdout == 'root'\", \"ansible_distribution == 'Debian'\"]}\n",
    );
    let r = mixop_in(&w, w.path(), &["run", "pb.yml"], &[]);
    r.ok();
    for h in ["lab1", "lab2"] {
        assert_eq!(r.recap(h).failed, 0, "{}", r.all());
        assert_eq!(r.recap(h).ok, 3, "facts, command, assert: {}", r.all());
    }
    // A host variable ranks above ansible.cfg: a wrong user for lab2 fails that host only.
    w.write(
        "hosts",
        &inv.replace(
            "lab2 ansible_host",
            "lab2 ansible_user=nobody-here ansible_host",
        ),
    );
    let r = mixop_in(&w, w.path(), &["run", "pb.yml"], &[]);
    assert_eq!(r.code, 4, "lab2 unreachable: {}", r.all());
    assert_eq!(r.recap("lab1").failed, 0, "{}", r.all());
    assert_eq!(r.recap("lab2").unreachable, 1, "{}", r.all());
}
