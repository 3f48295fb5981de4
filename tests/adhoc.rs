//! `mixop ping` and `mixop exec` on local hosts (the SSH and WinRM suites cover the others).

mod common;

use common::Work;

#[test]
fn exec_groups_output_per_host_and_reflects_failures() {
    let w = Work::new();
    w.local_inventory(3);
    let r = w.mixop(&[
        "exec",
        "-i",
        "inventory.yml",
        "all:!h3",
        "--",
        "echo out-$((6*7)); test $PPID -gt 0",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.matches("out-42").count(), 2, "{}", r.all());
    assert!(!r.stdout.contains("h3"), "{}", r.all());
    let r = w.mixop(&[
        "exec",
        "-i",
        "inventory.yml",
        "h2",
        "--",
        "echo bad >&2; exit 9",
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stdout.contains("rc=9") && r.stdout.contains("stderr: bad"),
        "{}",
        r.all()
    );
}

#[test]
fn ping_reports_each_host() {
    let w = Work::new();
    w.write(
        "inventory.yml",
        "all:\n  hosts:\n    a: {ansible_connection: local}\n    b: {ansible_connection: bogus}\n",
    );
    let r = w.mixop(&["ping", "-i", "inventory.yml"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(
        r.stdout.lines().any(|l| l.starts_with("a | ok | local")),
        "{}",
        r.all()
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("b | UNREACHABLE") && l.contains("unknown connection `bogus`")),
        "{}",
        r.all()
    );
}

#[test]
fn no_matching_hosts_is_a_usage_error() {
    let w = Work::new();
    w.local_inventory(1);
    let r = w.mixop(&["ping", "-i", "inventory.yml", "nothere"]);
    assert_eq!(r.code, 5, "{}", r.all());
}

/// An ad hoc command builds a host's connection settings as a play's task does: the same
/// layering (group_vars < inventory host vars < host_vars < -e), the same magic variables
/// (`inventory_hostname_short`) and the same `hostvars` (which carry -e). Each host's
/// `ansible_user` is seen in the connection error (port 1 on loopback refuses).
#[test]
fn adhoc_and_play_see_the_same_connection_variables() {
    let w = Work::new();
    w.write(
        "inventory.yml",
        r#"all:
  vars:
    ansible_connection: ssh
    ansible_host: 127.0.0.1
    ansible_port: 1
    ansible_user: "{{ pick }}-{{ inventory_hostname_short }}"
  hosts:
    a.lab: {}
    b.lab: {pick: from-inventory-host}
    c.lab:
      ansible_user: "{{ hostvars['a.lab'].pick }}"
"#,
    );
    w.write("group_vars/all.yml", "pick: from-group-vars\n");
    w.write("host_vars/a.lab.yml", "pick: from-host-vars\n");
    w.write(
        "pb.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - ping:
"#,
    );
    let cases: [(&[&str], [&str; 3]); 2] = [
        (
            &[],
            [
                "from-host-vars-a",
                "from-inventory-host-b",
                "from-host-vars",
            ],
        ),
        (
            &["-e", "pick=from-extra"],
            ["from-extra-a", "from-extra-b", "from-extra"],
        ),
    ];
    for (extra, users) in cases {
        let mut adhoc = vec!["ping", "-i", "inventory.yml"];
        adhoc.extend_from_slice(extra);
        let mut play = vec!["run", "pb.yml", "-i", "inventory.yml"];
        play.extend_from_slice(extra);
        for (what, r) in [("ad hoc", w.mixop(&adhoc)), ("play", w.mixop(&play))] {
            assert_ne!(r.code, 0, "{what}: {}", r.all());
            for user in users {
                let seen = format!("({user}@127.0.0.1:1)");
                assert!(
                    r.stdout.contains(&seen),
                    "{what} {extra:?}: no {seen}\n{}",
                    r.all()
                );
            }
        }
    }
}
