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
