//! Bad input: one clear error with file:line:col, a non-zero exit code, and no host touched.

mod common;

use common::Session;

/// Runs a playbook that must be rejected before anything runs; returns stderr.
#[track_caller]
fn rejected(s: &Session, playbook: &str) -> String {
    s.write("pb.yml", playbook);
    let r = s.run();
    assert_eq!(r.code, 3, "bad input must exit 3:\n{}", r.all());
    assert!(
        !s.out_exists("touched"),
        "a task ran before validation failed"
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.all());
    // `check` reports the same error without running anything.
    let c = s.check();
    assert_eq!(c.code, 3, "{}", c.all());
    // So does `run --syntax-check`, and the listings.
    for flag in ["--syntax-check", "--list-tasks"] {
        let l = s.run_with(&[flag]);
        assert_eq!((l.code, l.stdout.as_str()), (3, ""), "{flag}: {}", l.all());
        assert_eq!(l.stderr, r.stderr, "{flag}");
    }
    r.stderr
}

/// A first task that would leave a trace if anything ran.
const FIRST: &str = r#"- hosts: all
  tasks:
    - shell: touch @OUT@/touched
"#;

/// FIRST followed by `tasks` (a raw string; its leading newline is dropped), so that line 4 is
/// the first line of `tasks`.
fn then(tasks: &str) -> String {
    format!("{FIRST}{}", tasks.strip_prefix('\n').unwrap_or(tasks))
}

#[test]
fn malformed_yaml() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - debug: {msg: [1, 2}
"#,
        ),
    );
    assert!(err.contains("pb.yml:4:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn playbook_is_a_mapping() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        r#"hosts: all
tasks: []
"#,
    );
    assert!(
        err.contains("pb.yml:1:1: a playbook must be a list of plays"),
        "{err}"
    );
}

#[test]
fn task_with_two_modules() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - command: ls
      shell: ls
"#,
        ),
    );
    assert!(
        err.contains("pb.yml:5:7: a task can run only one module"),
        "{err}"
    );
}

#[test]
fn unknown_module_suggests_the_right_one() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - comand: ls
"#,
        ),
    );
    assert!(
        err.contains("pb.yml:4:7: unknown module or keyword `comand`"),
        "{err}"
    );
    assert!(err.contains("did you mean `command`?"), "{err}");
}

#[test]
fn unknown_module_never_suggests_a_task_keyword_far_from_it() {
    let s = Session::local(1);
    // `dif` is one edit from the keyword `diff`, but a dotted name is a module's.
    let err = rejected(&s, &then("    - ansible.builtin.dif: {}\n"));
    assert!(err.contains("unknown module or keyword"), "{err}");
    assert!(!err.contains("did you mean `diff`"), "{err}");
    // Two edits from `diff`: not a typo of it.
    let err = rejected(&s, &then("    - dnx: {}\n"));
    assert!(!err.contains("did you mean `diff`"), "{err}");
    // One edit from a keyword, short: still suggested.
    let err = rejected(&s, &then("    - whn: true\n"));
    assert!(err.contains("did you mean `when`?"), "{err}");
}

#[test]
fn fqcn_unsupported_actions_get_the_message_of_the_short_names() {
    for action in [
        "include",
        "ansible.builtin.include",
        "ansible.legacy.include",
    ] {
        let s = Session::local(1);
        let err = rejected(&s, &then(&format!("    - {action}: web.yml\n")));
        let short = action.rsplit('.').next().unwrap();
        assert!(
            err.contains(&format!("pb.yml:4:7: `{short}` is not supported by mixop")),
            "{action}: {err}"
        );
    }
}

#[test]
fn unsupported_keyword_is_named() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - command: sleep 100
      async: 10
"#,
        ),
    );
    assert!(
        err.contains("pb.yml:5:7: `async` is not supported by mixop"),
        "{err}"
    );
}

#[test]
fn unknown_module_argument() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - copy:
        content: x
        dset: /tmp/x
"#,
        ),
    );
    assert!(
        err.contains("pb.yml:6:9: `copy` has no argument `dset` (did you mean `dest`?)"),
        "{err}"
    );
}

#[test]
fn loop_over_a_plain_string() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - debug: {msg: x}
      loop: users
"#,
        ),
    );
    assert!(err.contains("pb.yml:5:13: `loop` needs a list"), "{err}");
}

#[test]
fn template_syntax_error_points_at_the_string() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - debug:
        msg: "{{ x | }}"
"#,
        ),
    );
    assert!(err.contains("pb.yml:5:14: template error"), "{err}");
}

#[test]
fn when_that_does_not_compile() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - debug: {msg: x}
      when: x ==
"#,
        ),
    );
    assert!(
        err.contains("pb.yml:5:13: `when` does not compile"),
        "{err}"
    );
}

#[test]
fn missing_template_file() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - template: {src: nope.j2, dest: /tmp/x}
"#,
        ),
    );
    assert!(
        err.contains("pb.yml:4:23: template source `nope.j2` not found"),
        "{err}"
    );
}

#[test]
fn missing_imported_task_file() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - import_tasks: nothere.yml
"#,
        ),
    );
    assert!(err.contains("pb.yml:4:21: file not found"), "{err}");
}

#[test]
fn notify_without_handler() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - command: ls
      notify: restrat
  handlers:
    - name: restart
      command: ls
"#,
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
    let s = Session::local(1);
    let err = rejected(&s, "- command: ls\n");
    assert!(err.contains("pb.yml:1:3: a play needs `hosts`"), "{err}");
    assert!(err.contains("tasks go under `tasks:`"), "{err}");
}

#[test]
fn duplicate_keys() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - name: a
      name: b
      command: ls
"#,
        ),
    );
    assert!(err.contains("pb.yml:5:7: duplicate key `name`"), "{err}");
}

#[test]
fn usage_errors_exit_5() {
    let s = Session::empty();
    s.mixop(&["run"]).exits(5);
    s.mixop(&["run", "pb.yml", "--syntax-check", "--list-tasks"])
        .exits(5);
}

#[test]
fn bad_extra_vars_file() {
    let s = Session::local(1).playbook(FIRST).file("bad.yml", "a: [\n");
    let r = s.run_with(&["-e", "@bad.yml"]);
    r.exits(3);
    assert!(r.stderr.contains("bad.yml:"), "{}", r.all());
    assert!(!s.out_exists("touched"));
}

#[test]
fn inventory_cycle() {
    let s = Session::empty()
        .inventory(
            r#"all:
  children:
    a:
      children:
        b:
          children:
            a: {}
"#,
        )
        .playbook(FIRST);
    let r = s.run();
    r.exits(3);
    assert!(
        r.stderr.contains("inventory.yml:") && r.stderr.contains("cycle"),
        "{}",
        r.all()
    );
}

#[test]
fn missing_files_are_input_errors_naming_the_path() {
    let s = Session::local(1).playbook(FIRST);
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
        let r = s.mixop(args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.all());
        assert!(
            r.stderr.contains(&format!("{what}: no such file")),
            "{args:?}: {}",
            r.all()
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.all());
    }
    assert!(!s.out_exists("touched"));
    s.mixop(&["run", ".", "-i", "inventory.yml"])
        .exits(3)
        .stderr_has("playbook `.` is not a file");
}

#[test]
fn syntax_check_validates_and_connects_nowhere() {
    // An unreachable host: a syntax check or listing must not try it.
    let s = Session::empty()
        .inventory(
            r#"all:
  hosts:
    far:
      ansible_host: 192.0.2.1
      ansible_connection: ssh
"#,
        )
        .playbook(FIRST);
    let r = s.run_with(&["--syntax-check"]);
    r.ok();
    assert_eq!(r.stdout, "\nplaybook: pb.yml\n");
    s.run_with(&["--list-hosts", "--list-tasks"])
        .ok()
        .stdout_has("    hosts (1):\n      far\n")
        .stdout_has("      shell\tTAGS: []\n");
    assert!(!s.out_exists("touched"));
}

#[test]
fn unknown_filters_tests_and_lookups_are_refused_before_anything_runs() {
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - debug:
        msg: "{{ 'a' | uppper }}"
"#,
        ),
    );
    assert!(
        err.contains("pb.yml:5:") && err.contains("no filter named 'uppper'"),
        "{err}"
    );
    let err = rejected(
        &s,
        &then(
            r#"
    - debug: {msg: hi}
      when: x is definned
"#,
        ),
    );
    assert!(err.contains("no test named 'definned'"), "{err}");
    let err = rejected(
        &s,
        &then(
            r#"
    - debug:
        msg: "{{ lookup('nosuch', 'x') }}"
"#,
        ),
    );
    assert!(err.contains("no lookup plugin named 'nosuch'"), "{err}");
}

#[test]
fn python_plugins_are_named_at_load_time() {
    let s = Session::local(1).file("library/my_module.py", "# an Ansible module\n");
    let err = rejected(
        &s,
        &then(
            r#"
    - my_module: {a: 1}
"#,
        ),
    );
    assert!(
        err.contains("library/my_module.py") && err.contains("cannot run Ansible's Python"),
        "{err}"
    );
    s.write(
        "filter_plugins/custom.py",
        r#"class FilterModule:
    def filters(self):
        return {'shout': lambda s: s.upper()}
"#,
    );
    let err = rejected(
        &s,
        &then(
            r#"
    - debug:
        msg: "{{ 'a' | shout }}"
"#,
        ),
    );
    assert!(
        err.contains("no filter named 'shout'") && err.contains("filter_plugins/custom.py"),
        "{err}"
    );
}

#[test]
fn import_playbook_paths_are_rendered_and_when_and_tags_apply_to_every_task() {
    let s = Session::local(2)
        .file(
            "stage-a.yml",
            r#"- hosts: all
  gather_facts: false
  tasks:
    - debug: {msg: "in-a"}
    - debug: {msg: "tagged-a"}
      tags: [t]
"#,
        )
        .file(
            "main.yml",
            r#"- import_playbook: "stage-{{ stage }}.yml"
  when: inventory_hostname == 'h1'
  tags: [imported]
"#,
        );
    let r = s.run_file("main.yml", &["-e", "stage=a"]);
    r.ok();
    assert_eq!(r.stdout.matches("] in-a").count(), 1, "{}", r.all());
    assert_eq!(r.recap("h1").ok, 2, "{}", r.all());
    assert_eq!(r.recap("h2").skipped, 2, "{}", r.all());
    // The import's tags reach every task it imports.
    let r = s.run_file("main.yml", &["-e", "stage=a", "--tags", "imported"]);
    r.ok();
    assert_eq!(r.recap("h1").ok, 2, "{}", r.all());
    s.run_file("main.yml", &["-e", "stage=a", "--list-tags"])
        .ok()
        .stdout_has("TASK TAGS: [imported, t]");
    // Without the variable: an input error that names it and says what is known at load time.
    let r = s.check_file("main.yml", &[]);
    r.exits(3);
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
    let s = Session::empty().playbook(
        r#"- hosts: all
  gather_facts: false
  tasks:
    - shell: touch @OUT@/touched
      delegate_to: localhost
"#,
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
        s.write(
            "inventory.yml",
            &format!(
                r#"all:
  hosts:
    good: {{ansible_connection: local}}
    bad1: {vars}
"#
            ),
        );
        for cmd in ["check", "run"] {
            let r = if cmd == "check" { s.check() } else { s.run() };
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
            assert!(!s.out_exists("touched"), "{vars}: a task ran");
        }
    }
    // Allowed but unsafe: a warning naming the host, and the run goes on.
    s.write(
        "inventory.yml",
        r#"all:
  hosts:
    plain1: {ansible_connection: winrm, ansible_user: u, ansible_winrm_message_encryption: never}
"#,
    );
    let r = s.check();
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
    let s = Session::local(1);
    let err = rejected(
        &s,
        &then(
            r#"
    - debug:
        msg: "{{ 'a' | ansible.utils.nosuch }}"
"#,
        ),
    );
    assert!(err.contains("no filter named 'nosuch'"), "{err}");
    s.write(
        "ok.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - copy:
        dest: "@OUT@/fqcn"
        content: "{{ '::1' | ansible.utils.ipwrap }} {{ '10.1.2.3/8' | ansible.utils.ipaddr('network') }} {{ [1] | ansible.builtin.to_json }} {{ 'ab' is ansible.builtin.match('a') }}"
      when: "'x' is not ansible.builtin.match('y')"
"#,
    );
    s.check_file("ok.yml", &[]).exits(0);
    s.run_file("ok.yml", &[]).exits(0);
    assert_eq!(s.out("fqcn"), "[::1] 10.0.0.0 [1] True");
}

/// A template file a task renders is checked before anything runs, and reported at its own
/// line; an undefined variable found only while rendering names the task and the template's
/// file:line, each once.
#[test]
fn template_files_are_checked_up_front_and_failures_name_task_and_line() {
    let s = Session::local(1);
    s.write(
        "templates/bad.j2",
        "line one\n{% if x %}\n{{ x | nosuchfilter }}\n{% endif %}\n",
    );
    let err = rejected(
        &s,
        &then(
            r#"
    - template: {src: bad.j2, dest: "@OUT@/bad"}
"#,
        ),
    );
    assert!(
        err.contains("bad.j2:3:1: template error: no filter named 'nosuchfilter'"),
        "{err}"
    );
    assert!(err.contains("rendered by the task at pb.yml:4:"), "{err}");
    s.write("templates/undef.j2", "line one\n{{ missing_var }}\n");
    s.write(
        "undef.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - name: render it
      template: {src: undef.j2, dest: "@OUT@/undef"}
"#,
    );
    s.check_file("undef.yml", &[]).exits(0);
    let r = s.run_file("undef.yml", &[]);
    r.exits(2);
    r.says("task 'render it' at undef.yml:4:7: templates/undef.j2:2: 'missing_var' is undefined");
    assert_eq!(r.all().matches("undef.j2").count(), 1, "{}", r.all());
}

/// Without `-i` (and no inventory in ansible.cfg) the run says so; `check` counts the
/// implicit localhost only when a play targets it.
#[test]
fn no_inventory_is_said_and_the_implicit_localhost_is_counted_only_when_targeted() {
    let s = Session::local(2);
    s.write(
        "all.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - ping:\n",
    );
    s.write(
        "local.yml",
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ping:\n",
    );
    let r = s.mixop(&["run", "all.yml"]);
    r.exits(0);
    r.stderr_has("no inventory was given");
    s.check_file("all.yml", &[])
        .exits(0)
        .stdout_has("2 inventory hosts");
    s.check_file("local.yml", &[])
        .exits(0)
        .stdout_has("3 inventory hosts");
}
