//! Bad input: one clear error with file:line:col, a non-zero exit code, and no host touched.

mod common;

use common::Work;

/// Runs a playbook that must be rejected before anything runs; returns stderr.
fn rejected(w: &Work, playbook: &str) -> String {
    w.local_inventory(1);
    let pb = w.write("pb.yml", playbook);
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(r.code, 3, "bad input must exit 3:\n{}", r.all());
    assert!(
        !w.out().join("touched").exists(),
        "a task ran before validation failed"
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.all());
    // `check` reports the same error without running anything.
    let c = w.mixop(&["check", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(c.code, 3, "{}", c.all());
    // So does `run --syntax-check`, and the listings.
    for flag in ["--syntax-check", "--list-tasks"] {
        let s = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml", flag]);
        assert_eq!((s.code, s.stdout.as_str()), (3, ""), "{flag}: {}", s.all());
        assert_eq!(s.stderr, r.stderr, "{flag}");
    }
    r.stderr
}

const FIRST: &str = "- hosts: all\n  tasks:\n    - shell: touch @OUT@/touched\n";

#[test]
fn malformed_yaml() {
    let w = Work::new();
    let err = rejected(&w, &format!("{FIRST}    - debug: {{msg: [1, 2}}\n"));
    assert!(err.contains("pb.yml:4:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn playbook_is_a_mapping() {
    let w = Work::new();
    let err = rejected(&w, "hosts: all\ntasks: []\n");
    assert!(
        err.contains("pb.yml:1:1: a playbook must be a list of plays"),
        "{err}"
    );
}

#[test]
fn task_with_two_modules() {
    let w = Work::new();
    let err = rejected(&w, &format!("{FIRST}    - command: ls\n      shell: ls\n"));
    assert!(
        err.contains("pb.yml:5:7: a task can run only one module"),
        "{err}"
    );
}

#[test]
fn unknown_module_suggests_the_right_one() {
    let w = Work::new();
    let err = rejected(&w, &format!("{FIRST}    - comand: ls\n"));
    assert!(
        err.contains("pb.yml:4:7: unknown module or keyword `comand`"),
        "{err}"
    );
    assert!(err.contains("did you mean `command`?"), "{err}");
}

#[test]
fn fqcn_unsupported_actions_get_the_message_of_the_short_names() {
    for action in [
        "include",
        "ansible.builtin.include",
        "ansible.legacy.include",
    ] {
        let w = Work::new();
        let err = rejected(&w, &format!("{FIRST}    - {action}: web.yml\n"));
        let short = action.rsplit('.').next().unwrap();
        assert!(
            err.contains(&format!("pb.yml:4:7: `{short}` is not supported by mixop")),
            "{action}: {err}"
        );
    }
}

#[test]
fn unsupported_keyword_is_named() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - command: sleep 100\n      async: 10\n"),
    );
    assert!(
        err.contains("pb.yml:5:7: `async` is not supported by mixop"),
        "{err}"
    );
}

#[test]
fn unknown_module_argument() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - copy:\n        content: x\n        dset: /tmp/x\n"),
    );
    assert!(
        err.contains("pb.yml:6:9: `copy` has no argument `dset` (did you mean `dest`?)"),
        "{err}"
    );
}

#[test]
fn loop_over_a_plain_string() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug: {{msg: x}}\n      loop: users\n"),
    );
    assert!(err.contains("pb.yml:5:13: `loop` needs a list"), "{err}");
}

#[test]
fn template_syntax_error_points_at_the_string() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug:\n        msg: \"{{{{ x | }}}}\"\n"),
    );
    assert!(err.contains("pb.yml:5:14: template error"), "{err}");
}

#[test]
fn when_that_does_not_compile() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug: {{msg: x}}\n      when: x ==\n"),
    );
    assert!(
        err.contains("pb.yml:5:13: `when` does not compile"),
        "{err}"
    );
}

#[test]
fn missing_template_file() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - template: {{src: nope.j2, dest: /tmp/x}}\n"),
    );
    assert!(
        err.contains("pb.yml:4:23: template source `nope.j2` not found"),
        "{err}"
    );
}

#[test]
fn missing_imported_task_file() {
    let w = Work::new();
    let err = rejected(&w, &format!("{FIRST}    - import_tasks: nothere.yml\n"));
    assert!(err.contains("pb.yml:4:21: file not found"), "{err}");
}

#[test]
fn notify_without_handler() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!(
            "{FIRST}    - command: ls\n      notify: restrat\n  handlers:\n    - name: restart\n      command: ls\n"
        ),
    );
    assert!(
        err.contains("pb.yml:4:7: `notify` names the handler `restrat`"),
        "{err}"
    );
    assert!(err.contains("did you mean `restart`?"), "{err}");
}

#[test]
fn play_without_hosts_looks_like_a_task() {
    let w = Work::new();
    let err = rejected(&w, "- command: ls\n");
    assert!(err.contains("pb.yml:1:3: a play needs `hosts`"), "{err}");
    assert!(err.contains("tasks go under `tasks:`"), "{err}");
}

#[test]
fn duplicate_keys() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - name: a\n      name: b\n      command: ls\n"),
    );
    assert!(err.contains("pb.yml:5:7: duplicate key `name`"), "{err}");
}

#[test]
fn usage_errors_exit_5() {
    let w = Work::new();
    let r = w.mixop(&["run"]);
    assert_eq!(r.code, 5, "{}", r.all());
    let r = w.mixop(&["run", "pb.yml", "--syntax-check", "--list-tasks"]);
    assert_eq!(r.code, 5, "{}", r.all());
}

#[test]
fn bad_extra_vars_file() {
    let w = Work::new();
    w.local_inventory(1);
    let pb = w.write("pb.yml", FIRST);
    w.write("bad.yml", "a: [\n");
    let r = w.mixop(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        "inventory.yml",
        "-e",
        "@bad.yml",
    ]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("bad.yml:"), "{}", r.all());
    assert!(!w.out().join("touched").exists());
}

#[test]
fn inventory_cycle() {
    let w = Work::new();
    w.write("inventory.yml", "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a: {}\n");
    let pb = w.write("pb.yml", FIRST);
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("inventory.yml:") && r.stderr.contains("cycle"),
        "{}",
        r.all()
    );
}

#[test]
fn missing_files_are_input_errors_naming_the_path() {
    let w = Work::new();
    w.local_inventory(1);
    w.write("pb.yml", FIRST);
    let cases: [(&[&str], &str); 8] = [
        (
            &["run", "nope.yml", "-i", "inventory.yml"],
            "playbook `nope.yml`",
        ),
        (
            &["check", "nope.yml", "-i", "inventory.yml"],
            "playbook `nope.yml`",
        ),
        (
            &["run", "nope.yml", "--syntax-check"],
            "playbook `nope.yml`",
        ),
        (
            &["run", "pb.yml", "-i", "noinv.yml"],
            "inventory `noinv.yml`",
        ),
        (
            &["run", "pb.yml", "-i", "noinv.yml", "--list-hosts"],
            "inventory `noinv.yml`",
        ),
        (
            &["inventory", "-i", "noinv.yml", "--list"],
            "inventory `noinv.yml`",
        ),
        (&["ping", "-i", "noinv.yml"], "inventory `noinv.yml`"),
        (
            &["run", "pb.yml", "-i", "inventory.yml", "-e", "@novars.yml"],
            "file `novars.yml`",
        ),
    ];
    for (args, what) in cases {
        let r = w.mixop(args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.all());
        assert!(
            r.stderr.contains(&format!("{what}: no such file")),
            "{args:?}: {}",
            r.all()
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.all());
    }
    assert!(!w.out().join("touched").exists());
    let r = w.mixop(&["run", ".", "-i", "inventory.yml"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("playbook `.` is not a file"),
        "{}",
        r.all()
    );
}

#[test]
fn syntax_check_validates_and_connects_nowhere() {
    let w = Work::new();
    // An unreachable host: a syntax check or listing must not try it.
    w.write(
        "inventory.yml",
        "all:\n  hosts:\n    far:\n      ansible_host: 192.0.2.1\n      ansible_connection: ssh\n",
    );
    w.write("pb.yml", FIRST);
    let r = w.mixop(&["run", "pb.yml", "-i", "inventory.yml", "--syntax-check"]);
    r.ok();
    assert_eq!(r.stdout, "\nplaybook: pb.yml\n");
    let r = w.mixop(&[
        "run",
        "pb.yml",
        "-i",
        "inventory.yml",
        "--list-hosts",
        "--list-tasks",
    ]);
    r.ok();
    assert!(
        r.stdout.contains("    hosts (1):\n      far\n"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("      shell\tTAGS: []\n"), "{}", r.all());
    assert!(!w.out().join("touched").exists());
}
