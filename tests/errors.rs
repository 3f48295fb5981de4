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
fn unknown_module_never_suggests_a_task_keyword_far_from_it() {
    let w = Work::new();
    // `dif` is one edit from the keyword `diff`, but a dotted name is a module's.
    let err = rejected(&w, &format!("{FIRST}    - ansible.builtin.dif: {{}}\n"));
    assert!(err.contains("unknown module or keyword"), "{err}");
    assert!(!err.contains("did you mean `diff`"), "{err}");
    // Two edits from `diff`: not a typo of it.
    let err = rejected(&w, &format!("{FIRST}    - dnx: {{}}\n"));
    assert!(!err.contains("did you mean `diff`"), "{err}");
    // One edit from a keyword, short: still suggested.
    let err = rejected(&w, &format!("{FIRST}    - whn: true\n"));
    assert!(err.contains("did you mean `when`?"), "{err}");
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

#[test]
fn unknown_filters_tests_and_lookups_are_refused_before_anything_runs() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug:\n        msg: \"{{{{ 'a' | uppper }}}}\"\n"),
    );
    assert!(
        err.contains("pb.yml:5:") && err.contains("no filter named 'uppper'"),
        "{err}"
    );
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug: {{msg: hi}}\n      when: x is definned\n"),
    );
    assert!(err.contains("no test named 'definned'"), "{err}");
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug:\n        msg: \"{{{{ lookup('nosuch', 'x') }}}}\"\n"),
    );
    assert!(err.contains("no lookup plugin named 'nosuch'"), "{err}");
}

#[test]
fn python_plugins_are_named_at_load_time() {
    let w = Work::new();
    w.write("library/my_module.py", "# an Ansible module\n");
    let err = rejected(&w, &format!("{FIRST}    - my_module: {{a: 1}}\n"));
    assert!(
        err.contains("library/my_module.py") && err.contains("cannot run Ansible's Python"),
        "{err}"
    );
    w.write(
        "filter_plugins/custom.py",
        "class FilterModule:\n    def filters(self):\n        return {'shout': lambda s: s.upper()}\n",
    );
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug:\n        msg: \"{{{{ 'a' | shout }}}}\"\n"),
    );
    assert!(
        err.contains("no filter named 'shout'") && err.contains("filter_plugins/custom.py"),
        "{err}"
    );
}

#[test]
fn import_playbook_paths_are_rendered_and_when_and_tags_apply_to_every_task() {
    let w = Work::new();
    w.local_inventory(2);
    w.write(
        "stage-a.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: \"in-a\"}\n    \
         - debug: {msg: \"tagged-a\"}\n      tags: [t]\n",
    );
    w.write(
        "main.yml",
        "- import_playbook: \"stage-{{ stage }}.yml\"\n  when: inventory_hostname == 'h1'\n  tags: [imported]\n",
    );
    let r = w.mixop(&["run", "main.yml", "-i", "inventory.yml", "-e", "stage=a"]);
    r.ok();
    assert_eq!(r.stdout.matches("] in-a").count(), 1, "{}", r.all());
    assert_eq!(r.recap("h1").ok, 2, "{}", r.all());
    assert_eq!(r.recap("h2").skipped, 2, "{}", r.all());
    // The import's tags reach every task it imports.
    let r = w.mixop(&[
        "run",
        "main.yml",
        "-i",
        "inventory.yml",
        "-e",
        "stage=a",
        "--tags",
        "imported",
    ]);
    r.ok();
    assert_eq!(r.recap("h1").ok, 2, "{}", r.all());
    let r = w.mixop(&[
        "run",
        "main.yml",
        "-i",
        "inventory.yml",
        "-e",
        "stage=a",
        "--list-tags",
    ]);
    r.ok();
    assert!(r.stdout.contains("TASK TAGS: [imported, t]"), "{}", r.all());
    // Without the variable: an input error that names it and says what is known at load time.
    let r = w.mixop(&["check", "main.yml", "-i", "inventory.yml"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("main.yml:1:")
            && r.stderr.contains("stage")
            && r.stderr.contains("extra vars"),
        "{}",
        r.all()
    );
}

/// Connection variables are resolved for every host by `check` and at the start of `run`, with
/// the transports' own parsing: a wrong value is an input error naming the host, the variable,
/// the value and what is allowed (with the closest allowed value), before any host is
/// contacted — not "unreachable" at the host's first task.
#[test]
fn wrong_connection_settings_fail_check_and_run_before_any_host() {
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: touch @OUT@/touched\n      delegate_to: localhost\n",
    );
    let cases = [
        (
            "{ansible_connection: winrn}",
            "unknown connection `winrn`",
            "did you mean `winrm`?",
        ),
        (
            "{ansible_connection: winrm, ansible_user: u, ansible_winrm_transport: kerbros}",
            "ansible_winrm_transport: `kerbros` is not one of ntlm, negotiate, basic",
            "did you mean `kerberos`?",
        ),
        (
            "{ansible_connection: winrm, ansible_user: u, ansible_winrm_scheme: htps}",
            "ansible_winrm_scheme: `htps` is not one of http, https",
            "did you mean `http",
        ),
        (
            "{ansible_connection: winrm, ansible_user: u, ansible_winrm_message_encryption: nevr}",
            "ansible_winrm_message_encryption: `nevr` is not one of auto, always, never",
            "did you mean `never`?",
        ),
        (
            "{ansible_connection: winrm, ansible_user: u, ansible_winrm_server_cert_validation: ignor}",
            "ansible_winrm_server_cert_validation: `ignor` is not one of validate, ignore",
            "did you mean `ignore`?",
        ),
        (
            "{ansible_connection: winrm, ansible_user: u, ansible_winrm_read_timeout_sec: soon}",
            "ansible_winrm_read_timeout_sec: `soon` is not a whole number of seconds",
            "",
        ),
        (
            "{ansible_port: 99999}",
            "ansible_port `99999` is not a port number",
            "",
        ),
        (
            "{ansible_host_key_checking: acept-new}",
            "ansible_host_key_checking: `acept-new` is not one of strict, accept-new, off",
            "did you mean `accept-new`?",
        ),
        (
            "{ansible_timeout: never}",
            "ansible_timeout 'never' is not a positive number",
            "",
        ),
        (
            "{ansible_become_method: su}",
            "ansible_become_method: `su` is not one of sudo",
            "",
        ),
    ];
    for (vars, message, hint) in cases {
        w.write(
            "inventory.yml",
            &format!("all:\n  hosts:\n    good: {{ansible_connection: local}}\n    bad1: {vars}\n"),
        );
        for cmd in ["check", "run"] {
            let r = w.mixop(&[cmd, pb.to_str().unwrap(), "-i", "inventory.yml"]);
            assert_eq!(r.code, 3, "{vars}: {cmd}: {}", r.all());
            // The message as one line, whatever the terminal width wrapped.
            let err = r
                .stderr
                .replace('│', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(err.contains("bad1:"), "{vars}: {cmd}: {err}");
            assert!(err.contains(message), "{vars}: {cmd}: {err}");
            assert!(err.contains(hint), "{vars}: {cmd}: {err}");
            assert!(!err.contains("good"), "{vars}: {cmd}: {err}");
            assert!(!w.out().join("touched").exists(), "{vars}: a task ran");
        }
    }
    // Allowed but unsafe: a warning naming the host, and the run goes on.
    w.write(
        "inventory.yml",
        "all:\n  hosts:\n    plain1: {ansible_connection: winrm, ansible_user: u, ansible_winrm_message_encryption: never}\n",
    );
    let r = w.mixop(&["check", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains(
            "[WARNING]: plain1: WinRM over plain http with ansible_winrm_message_encryption: never"
        ),
        "{}",
        r.all()
    );
}

#[test]
fn collection_qualified_filters_and_tests_resolve_by_their_short_names() {
    let w = Work::new();
    let err = rejected(
        &w,
        &format!("{FIRST}    - debug:\n        msg: \"{{{{ 'a' | ansible.utils.nosuch }}}}\"\n"),
    );
    assert!(err.contains("no filter named 'nosuch'"), "{err}");
    let pb = w.write(
        "ok.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy:\n        dest: \"@OUT@/fqcn\"\n        content: \"{{ '::1' | ansible.utils.ipwrap }} {{ '10.1.2.3/8' | ansible.utils.ipaddr('network') }} {{ [1] | ansible.builtin.to_json }} {{ 'ab' is ansible.builtin.match('a') }}\"\n      when: \"'x' is not ansible.builtin.match('y')\"\n",
    );
    let c = w.mixop(&["check", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(c.code, 0, "{}", c.all());
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(w.read("fqcn"), "[::1] 10.0.0.0 [1] True");
}
