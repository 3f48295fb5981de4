//! Modules added for Ansible content, on the lab over SSH: `replace` (check mode, --diff,
//! idempotence, backup, validate).

mod common;

use common::{Lab, Work};

#[test]
fn replace_on_a_lab_host_check_mode_diff_idempotence_backup() {
    let lab = Lab::up(1, &[]);
    lab.exec(
        "lab1",
        "mkdir -p /opt/r && printf 'listen 80\\nlisten 8080\\n# keep listen 1\\n' > /opt/r/site.conf",
    );
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - replace:
        path: /opt/r/site.conf
        regexp: '^listen (\d+)$'
        replace: 'listen 10.0.0.1:\1'
        backup: true
        validate: grep -q 10.0.0.1 %s
      register: r
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
"#,
    );
    let original = "listen 80\nlisten 8080\n# keep listen 1\n";
    // Check mode with --diff: reported, shown, not written.
    let check = lab.run(&w, &pb, &["--check", "--diff"]);
    check.ok();
    // The replace, and the copy of its result (not written in check mode either).
    assert_eq!(check.recap("lab1").changed, 2, "{}", check.all());
    assert!(
        check.stdout.contains("+listen 10.0.0.1:8080"),
        "{}",
        check.all()
    );
    assert_eq!(lab.exec("lab1", "cat /opt/r/site.conf"), original);
    // The real run writes, keeps a backup and says how many replacements it made.
    let first = lab.run(&w, &pb, &[]);
    first.ok();
    assert_eq!(
        lab.exec("lab1", "cat /opt/r/site.conf"),
        "listen 10.0.0.1:80\nlisten 10.0.0.1:8080\n# keep listen 1\n"
    );
    let r: serde_json::Value = serde_json::from_str(&w.read("r.json")).unwrap();
    assert_eq!(r["msg"], "2 replacements made", "{r}");
    let backup = r["backup_file"].as_str().unwrap().to_string();
    assert!(backup.starts_with("/opt/r/site.conf."), "{r}");
    assert_eq!(lab.exec("lab1", &format!("cat {backup}")), original);
    // Idempotent.
    let again = lab.run(&w, &pb, &[]);
    again.ok();
    let r: serde_json::Value = serde_json::from_str(&w.read("r.json")).unwrap();
    assert_eq!(
        (&r["changed"], &r["msg"]),
        (&false.into(), &"".into()),
        "{r}"
    );
    // A failing validate leaves the file alone.
    let bad = w.write(
        "bad.yml",
        "- hosts: lab1\n  gather_facts: false\n  tasks:\n    - replace: {path: /opt/r/site.conf, regexp: '10.0.0.1', replace: '10.0.0.2', validate: 'grep -q 10.0.0.1 %s'}\n",
    );
    let r = lab.run(&w, &bad, &[]);
    assert_eq!(r.recap("lab1").failed, 1, "{}", r.all());
    assert!(
        lab.exec("lab1", "cat /opt/r/site.conf")
            .contains("10.0.0.1:80")
    );
}

#[test]
fn wait_for_connection_waits_for_sshd_and_times_out_with_a_clear_message() {
    let lab = Lab::up(1, &[]);
    lab.ctl(&["stop", "lab1"]);
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - copy: {dest: "@OUT@/waiting", content: "x"}
      delegate_to: localhost
    - wait_for_connection: {timeout: 60, sleep: 0.5, connect_timeout: 5}
      register: r
    - command: echo back
"#,
    );
    let bg = w.spawn_mixop(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        lab.inventory.to_str().unwrap(),
    ]);
    // sshd comes back once mixop is about to wait.
    common::wait_until(
        std::time::Duration::from_secs(30),
        "mixop reaches wait_for_connection",
        || {
            w.out()
                .join("waiting")
                .exists()
                .then_some(())
                .ok_or_else(|| "no marker yet".into())
        },
    );
    lab.ctl(&["start", "lab1"]);
    let (r, _) = bg.wait(std::time::Duration::from_secs(90));
    r.ok();
    assert_eq!(r.recap("lab1").failed, 0, "{}", r.all());
    assert_eq!(r.recap("lab1").ok, 3, "{}", r.all());

    // A host that never comes back: failed at the configured limit, saying what it waited for.
    lab.ctl(&["stop", "lab1"]);
    let pb = w.write(
        "never.yml",
        "- hosts: lab1\n  gather_facts: false\n  tasks:\n    - wait_for_connection: {timeout: 3, sleep: 1}\n",
    );
    let t0 = std::time::Instant::now();
    let r = lab.run(&w, &pb, &[]);
    let took = t0.elapsed();
    assert_eq!(r.recap("lab1").failed, 1, "{}", r.all());
    assert!(
        r.all()
            .contains("timed out waiting for ping module test after 3s"),
        "{}",
        r.all()
    );
    assert!(
        took >= std::time::Duration::from_secs(3) && took < std::time::Duration::from_secs(20),
        "took {took:?}"
    );
}
