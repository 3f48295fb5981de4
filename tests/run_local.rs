//! The `mixop` binary end to end on `local` hosts: language semantics, output, exit codes.

mod common;

use common::{Session, recap};

#[test]
fn variable_precedence() {
    let s = Session::empty()
        .inventory(
            r#"all:
  vars:
    v_all: all
    v_group: all
    v_host: all
    v_play: all
  children:
    parent:
      vars:
        v_group: parent
      children:
        child:
          vars:
            v_group: child
            v_host: child
          hosts:
            h1:
              ansible_connection: local
              v_host: host
              v_play: host
"#,
        )
        .file(
            "vars.yml",
            r#"v_file: file
v_task: file
"#,
        )
        .playbook(
            r#"- hosts: all
  vars:
    v_play: play
    v_file: play
    v_task: play
    v_fact: play
    v_extra: play
  vars_files: [vars.yml]
  tasks:
    - set_fact:
        v_fact: fact
    - copy:
        dest: "@OUT@/{{ inventory_hostname }}.txt"
        content: "{{ [v_all, v_group, v_host, v_play, v_file, v_task, v_fact, v_extra] | join(',') }}"
      vars:
        v_task: task
        v_fact: task
"#,
        );
    let r = s.run_with(&["-e", "v_extra=extra"]);
    r.ok();
    assert_eq!(s.out("h1.txt"), "all,child,host,play,file,task,fact,extra");
    assert_eq!(r.recap("h1"), recap(2, 1, 0, 0));
}

#[test]
fn registered_values_cross_hosts_through_hostvars() {
    let s = Session::local(4).playbook(
        r#"- hosts: all
  gather_facts: false
  tasks:
    - command: echo token-{{ inventory_hostname }}
      register: out
      when: inventory_hostname == 'h1'
    - copy:
        dest: "@OUT@/{{ inventory_hostname }}"
        content: "{{ hostvars['h1'].out.stdout }} {{ groups['all'] | length }}"
"#,
    );
    let r = s.run();
    r.ok();
    for h in ["h1", "h2", "h3", "h4"] {
        assert_eq!(s.out(h), "token-h1 4");
    }
    assert_eq!(r.recap("h1"), recap(2, 2, 0, 0));
    assert_eq!(r.recap("h2"), recap(1, 1, 0, 1));
}

#[test]
fn handlers_run_once_at_the_end_and_on_flush() {
    let s = Session::local(2).playbook(
        r#"- hosts: all
  tasks:
    - shell: echo a >> @OUT@/{{ inventory_hostname }}.log
      notify: restart
    - shell: echo b >> @OUT@/{{ inventory_hostname }}.log
      notify: [restart, topic]
      when: inventory_hostname == 'h1'
    - meta: flush_handlers
    - shell: echo c >> @OUT@/{{ inventory_hostname }}.log
      changed_when: false
      notify: restart
  handlers:
    - name: restart
      shell: echo restart >> @OUT@/{{ inventory_hostname }}.log
    - name: listener
      listen: topic
      shell: echo listener >> @OUT@/{{ inventory_hostname }}.log
"#,
    );
    let r = s.run();
    r.ok();
    assert_eq!(s.out("h1.log"), "a\nb\nrestart\nlistener\nc\n");
    assert_eq!(s.out("h2.log"), "a\nrestart\nc\n");
}

#[test]
fn blocks_rescue_and_always() {
    let s = Session::local(2).playbook(
        r#"- hosts: all
  tasks:
    - block:
        - command: /bin/false
          when: inventory_hostname == 'h1'
        - shell: echo body >> @OUT@/{{ inventory_hostname }}
      rescue:
        - shell: echo rescue >> @OUT@/{{ inventory_hostname }}
      always:
        - shell: echo always >> @OUT@/{{ inventory_hostname }}
    - shell: echo after >> @OUT@/{{ inventory_hostname }}
"#,
    );
    let r = s.run();
    r.ok();
    assert_eq!(s.out("h1"), "rescue\nalways\nafter\n");
    assert_eq!(s.out("h2"), "body\nalways\nafter\n");
    let h1 = r.recap("h1");
    assert_eq!((h1.failed, h1.rescued), (0, 1), "{}", r.all());
}

#[test]
fn loops_with_loop_control_and_with_items() {
    let s = Session::local(1).playbook(r#"- hosts: all
  vars:
    users: [{name: ann, uid: 1}, {name: bob, uid: 2}]
  tasks:
    - shell: echo "{{ idx }}:{{ u.name }}:{{ u.uid }}" >> @OUT@/loop
      loop: "{{ users }}"
      loop_control: {loop_var: u, index_var: idx, label: "{{ u.name }}"}
      register: r
    - shell: echo "{{ item }}" >> @OUT@/items
      with_items: [[a, b], c]
    - copy:
        dest: "@OUT@/registered"
        content: "{{ r.results | map(attribute='u') | map(attribute='name') | join(',') }} {{ r.changed }}"
"#);
    s.run().ok();
    assert_eq!(s.out("loop"), "0:ann:1\n1:bob:2\n");
    assert_eq!(s.out("items"), "a\nb\nc\n");
    assert_eq!(s.out("registered"), "ann,bob True");
}

#[test]
fn retries_until_and_failed_when() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  tasks:
    - shell: echo x >> @OUT@/count; wc -l < @OUT@/count
      register: c
      until: c.stdout | int >= 3
      retries: 5
      delay: 0
    - command: /bin/false
      register: f
      failed_when: false
    - copy:
        dest: "@OUT@/result"
        content: "{{ c.attempts }} {{ f.rc }}"
"#,
    );
    let r = s.run();
    r.ok();
    assert_eq!(s.out("result"), "3 1");
    // Each retry is said as Ansible says it, with the retries left.
    for left in [5, 4] {
        r.says(&format!(
            "FAILED - RETRYING: [h1]: shell ({left} retries left)."
        ));
    }
    assert_eq!(r.stdout.matches("FAILED - RETRYING").count(), 2);
    // And as typed events in JSON.
    std::fs::write(s.work.out().join("count"), "").unwrap();
    let j = s.run_with(&["--output", "json"]);
    j.ok();
    let retries: Vec<serde_json::Value> = j
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "retry")
        .collect();
    assert_eq!(retries.len(), 2, "{}", j.stdout);
    assert_eq!(retries[0]["host"], "h1");
    assert_eq!(retries[0]["attempt"], 1);
    assert_eq!(retries[1]["retries_left"], 4);
}

#[test]
fn serial_runs_batches_in_order() {
    let s = Session::local(4).playbook(
        r#"- hosts: all
  serial: [1, "50%"]
  tasks:
    - shell: echo "{{ inventory_hostname }} one" >> @OUT@/log
    - shell: echo "{{ inventory_hostname }} two" >> @OUT@/log
"#,
    );
    s.run().ok();
    let log = s.out("log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(&lines[..2], &["h1 one", "h1 two"]);
    let second: Vec<&str> = lines[2..6].to_vec();
    assert!(
        second[..2].iter().all(|l| l.ends_with("one"))
            && second[2..].iter().all(|l| l.ends_with("two")),
        "{log}"
    );
    assert!(
        second
            .iter()
            .all(|l| l.starts_with("h2") || l.starts_with("h3")),
        "{log}"
    );
    assert!(lines[6..].iter().all(|l| l.starts_with("h4")), "{log}");
}

#[test]
fn check_mode_changes_nothing() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  tasks:
    - copy: {dest: "@OUT@/f", content: "x"}
    - command: touch @OUT@/g
"#,
    );
    let r = s.run_with(&["--check"]);
    r.ok();
    assert!(!s.work.out().join("f").exists() && !s.work.out().join("g").exists());
    assert_eq!(r.recap("h1").changed, 1, "{}", r.all());
}

#[test]
fn no_log_hides_secrets_everywhere() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  vars:
    secret: hunter2-s3cr3t
  tasks:
    - command: echo {{ secret }}
      no_log: true
    - command: /bin/sh -c "echo {{ secret }}; exit 3"
      no_log: true
      ignore_errors: true
    - debug: {msg: "{{ secret }}"}
      no_log: true
"#,
    );
    let log = s.work.path().join("run.log");
    for output in ["human", "json"] {
        let r = s.run_with(&["--output", output, "-vvv", "--log", log.to_str().unwrap()]);
        r.exits(0);
        assert!(
            !r.all().contains("hunter2"),
            "secret printed in {output} output:\n{}",
            r.all()
        );
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("censored"), "log has no events:\n{logged}");
    assert!(!logged.contains("hunter2"), "secret in log:\n{logged}");
}

#[test]
fn failures_give_exit_code_2_and_other_hosts_continue() {
    let s = Session::local(3).playbook(
        r#"- hosts: all
  tasks:
    - shell: echo oops >&2; exit 7
      when: inventory_hostname == 'h2'
    - shell: echo done > @OUT@/{{ inventory_hostname }}
"#,
    );
    let r = s.run();
    r.exits(2);
    r.says("oops").says("rc=7");
    assert!(
        s.work.out().join("h1").exists()
            && s.work.out().join("h3").exists()
            && !s.work.out().join("h2").exists()
    );
    assert_eq!(r.recap("h2").failed, 1);
}

#[test]
fn any_errors_fatal_stops_everyone() {
    let s = Session::local(3).playbook(
        r#"- hosts: all
  any_errors_fatal: true
  tasks:
    - command: /bin/false
      when: inventory_hostname == 'h2'
    - shell: echo done > @OUT@/{{ inventory_hostname }}
"#,
    );
    let r = s.run();
    r.exits(2);
    assert!(
        std::fs::read_dir(s.work.out()).unwrap().next().is_none(),
        "no host may go on"
    );
    assert!(
        r.stdout
            .contains("any_errors_fatal: task 'command' failed; ending the playbook for all hosts"),
        "{}",
        r.all()
    );
    let j = s.run_with(&["--output", "json"]);
    let ended: Vec<serde_json::Value> = j
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "play_ended")
        .collect();
    assert_eq!(ended.len(), 1, "{}", j.stdout);
    assert_eq!(ended[0]["reason"]["kind"], "any_errors_fatal");
    assert_eq!(ended[0]["reason"]["task"], "command");
}

#[test]
fn tags_and_start_at_task() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  tasks:
    - name: one
      shell: echo one >> @OUT@/log
      tags: [a]
    - name: two
      shell: echo two >> @OUT@/log
      tags: [b]
    - name: three
      shell: echo three >> @OUT@/log
      tags: [always]
    - name: four
      shell: echo four >> @OUT@/log
      tags: [never, debug]
"#,
    );
    s.run_with(&["--tags", "b"]).ok();
    assert_eq!(s.out("log"), "two\nthree\n");
    std::fs::remove_file(s.work.out().join("log")).unwrap();
    s.run_with(&["--skip-tags", "a,always"]).ok();
    assert_eq!(s.out("log"), "two\n");
    std::fs::remove_file(s.work.out().join("log")).unwrap();
    s.run_with(&["--start-at-task", "two"]).ok();
    assert_eq!(s.out("log"), "two\nthree\n");
}

#[test]
fn includes_imports_and_import_playbook() {
    let s = Session::local(2)
        .file(
            "tasks/static.yml",
            "- shell: echo static >> @OUT@/{{ inventory_hostname }}\n",
        )
        .file(
            "tasks/dyn-h1.yml",
            "- shell: echo dyn {{ item }} >> @OUT@/{{ inventory_hostname }}\n",
        )
        .file(
            "tasks/dyn-h2.yml",
            "- shell: echo other {{ item }} >> @OUT@/{{ inventory_hostname }}\n",
        )
        .file(
            "second.yml",
            r#"- hosts: h1
  tasks:
    - shell: echo second >> @OUT@/{{ inventory_hostname }}
"#,
        )
        .playbook(
            r#"- hosts: all
  tasks:
    - import_tasks: tasks/static.yml
    - include_tasks: "tasks/dyn-{{ inventory_hostname }}.yml"
      loop: [1, 2]
- import_playbook: second.yml
"#,
        );
    s.run().ok();
    assert_eq!(s.out("h1"), "static\ndyn 1\ndyn 2\nsecond\n");
    assert_eq!(s.out("h2"), "static\nother 1\nother 2\n");
}

#[test]
fn delegate_to_localhost_and_run_once() {
    let s = Session::local(3).playbook(
        r#"- hosts: all
  tasks:
    - shell: echo {{ inventory_hostname }} >> @OUT@/once
      run_once: true
      register: once
    - shell: echo {{ inventory_hostname }} >> @OUT@/delegated
      delegate_to: localhost
    - copy:
        dest: "@OUT@/{{ inventory_hostname }}"
        content: "{{ once.changed }}"
"#,
    );
    s.run().ok();
    assert_eq!(s.out("once"), "h1\n");
    assert_eq!(s.out("delegated").lines().count(), 3);
    assert_eq!(s.out("h3"), "True");
}

#[test]
fn ignore_errors_and_max_fail_percentage() {
    let s = Session::local(4).playbook(
        r#"- hosts: all
  max_fail_percentage: 30
  tasks:
    - command: /bin/false
      ignore_errors: true
    - command: /bin/false
      when: inventory_hostname in ['h1', 'h2']
    - shell: echo x > @OUT@/{{ inventory_hostname }}
"#,
    );
    let r = s.run();
    r.exits(2);
    assert_eq!(r.recap("h3").ignored, 1);
    assert!(
        !s.work.out().join("h3").exists(),
        "play must end after 50% failed:\n{}",
        r.all()
    );
    assert!(
        r.stdout
            .contains("max_fail_percentage 30% exceeded (2 of 4 hosts failed)"),
        "{}",
        r.all()
    );
}

#[test]
fn when_must_be_boolean() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  tasks:
    - debug: {msg: hi}
      when: "'some string'"
"#,
    );
    let r = s.run();
    r.exits(2);
    assert!(
        r.stdout.contains("pb.yml:3"),
        "error must point at the task:\n{}",
        r.all()
    );
}

#[test]
fn undefined_variable_names_variable_and_task() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  tasks:
    - name: uses it
      debug: {msg: "{{ k3s_token }}"}
"#,
    );
    let r = s.run();
    r.exits(2);
    r.says("k3s_token").says("uses it").says("pb.yml:3");
}

#[test]
fn json_output_is_one_event_per_line() {
    let s = Session::local(2).playbook(
        r#"- hosts: all
  tasks:
    - command: echo hi
      register: x
"#,
    );
    let r = s.run_with(&["--output", "json"]);
    r.ok();
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"playbook_start"));
    assert_eq!(kinds.last(), Some(&"recap"));
    let results: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "host_result")
        .collect();
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|e| e["status"] == "changed" && e["result"]["stdout"] == "hi")
    );
    assert_eq!(events.last().unwrap()["hosts"]["h1"]["changed"], 1);
}

#[test]
fn free_strategy_lets_hosts_run_ahead() {
    let s = Session::local(2).playbook(
        r#"- hosts: all
  strategy: free
  tasks:
    # h1 waits until h2 has run ahead and written its line (a deadline only for the failure
    # case: under the linear strategy h2 would wait for h1 here).
    - shell: "for i in $(seq 1500); do [ -e @OUT@/log ] && exit 0; sleep 0.02; done"
      when: inventory_hostname == 'h1'
    - shell: echo {{ inventory_hostname }} >> @OUT@/log
"#,
    );
    s.run().ok();
    assert_eq!(s.out("log"), "h2\nh1\n");
}

#[test]
fn limit_restricts_hosts() {
    let s = Session::local(3).playbook(
        r#"- hosts: all
  tasks:
    - shell: echo > @OUT@/{{ inventory_hostname }}
"#,
    );
    s.run_with(&["--limit", "h2"]).ok();
    assert!(s.out_exists("h2") && !s.out_exists("h1"));
}

#[test]
fn environment_and_become_free_commands() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  environment: {OUTER: o, BOTH: play}
  tasks:
    - shell: echo "$OUTER $BOTH $INNER" > @OUT@/env
      environment: {BOTH: task, INNER: "{{ 1 + 1 }}"}
"#,
    );
    s.run().ok();
    assert_eq!(s.out("env"), "o task 2\n");
}

#[test]
fn idempotent_second_run_reports_no_changes() {
    let s = Session::local(2).playbook(
        r#"- hosts: all
  tasks:
    - copy: {dest: "@OUT@/{{ inventory_hostname }}", content: "v1\n", mode: "0640"}
    - command: cat @OUT@/{{ inventory_hostname }}
      register: c
      changed_when: false
"#,
    );
    let first = s.run();
    first.ok();
    assert_eq!(first.recap("h1").changed, 1);
    let second = s.run();
    second.ok();
    assert_eq!(second.recap("h1"), recap(2, 0, 0, 0));
}

#[test]
fn registered_output_is_data_not_a_template() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  tasks:
    - command: printf '%s%s' '{' '{ undefined_thing }}'
      register: out
    - set_fact:
        copied: "{{ out.stdout }}"
    - copy:
        dest: "@OUT@/out"
        content: "{{ out.stdout }} {{ copied }} {{ hostvars['h1'].out.stdout }}"
"#,
    );
    s.run().ok();
    assert_eq!(
        s.out("out"),
        "{{ undefined_thing }} {{ undefined_thing }} {{ undefined_thing }}"
    );
}

#[test]
fn diff_shows_what_changes() {
    let s = Session::local(1).playbook(
        r#"- hosts: all
  tasks:
    - copy: {dest: "@OUT@/f", content: "one\nthree\n"}
"#,
    );
    std::fs::write(s.work.out().join("f"), "one\ntwo\n").unwrap();
    s.run_with(&["--check", "--diff"])
        .ok()
        .says("-two")
        .says("+three");
    assert_eq!(s.out("f"), "one\ntwo\n");
}

/// Many hosts creating sibling folders under one new parent at once (what troubleshoot.yml does
/// on the controller): every folder is made, and a folder that cannot be made is an error, not a
/// silent `changed`.
#[test]
fn parallel_directory_creation_under_one_new_parent() {
    let s = Session::local(12).playbook(
        r#"- hosts: all
  gather_facts: false
  tasks:
    - file: {path: "@OUT@/a/b/c/d/{{ inventory_hostname }}", state: directory, mode: "0700"}
    - copy: {dest: "@OUT@/a/b/c/d/{{ inventory_hostname }}/report", content: x}
"#,
    );
    for round in 0..3 {
        let _ = std::fs::remove_dir_all(s.work.out().join("a"));
        let r = s.run();
        assert_eq!(r.code, 0, "round {round}:\n{}", r.all());
        for i in 1..=12 {
            assert!(s.work.out().join(format!("a/b/c/d/h{i}/report")).is_file());
        }
    }
    std::fs::write(s.work.out().join("plain-file"), "x").unwrap();
    s.write(
        "bad.yml",
        r#"- hosts: h1
  gather_facts: false
  tasks:
    - file: {path: "@OUT@/plain-file/sub", state: directory}
"#,
    );
    let r = s.run_file("bad.yml", &[]);
    r.exits(2);
    assert!(r.all().contains("cannot create directory"), "{}", r.all());
}

#[test]
fn include_vars_from_files_dirs_and_under_a_name_and_ping() {
    let s = Session::local(2)
        .file("vars/common.yml", "region: eu\nsize: 3\n")
        .file("vars/conf.d/10-a.yml", "a: 1\nshared: from-a\n")
        .file(
            "vars/conf.d/20-b.json",
            r#"{"b": 2, "shared": "from-b"}
"#,
        )
        .file("vars/conf.d/skip.txt", "not: read\n")
        .file("vars/conf.d/30-ignored.yml", "ignored: true\n");
    s.write(
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - ping:
      register: p
    - include_vars: common.yml
    - include_vars:
        dir: vars/conf.d
        ignore_files: ["30-*"]
        name: conf
    - debug:
        msg: "{{ p.ping }} {{ region }} {{ size + 1 }} {{ conf.a }} {{ conf.b }} {{ conf.shared }} {{ conf.ignored | default('no') }}"
    - ping: {data: crash}
      ignore_errors: true
      register: crashed
    - assert: {that: [crashed is failed, "crashed.msg == 'boom'"]}
"#,
    );
    let r = s.run();
    r.ok();
    assert_eq!(
        r.stdout.matches("pong eu 4 1 2 from-b no").count(),
        2,
        "{}",
        r.all()
    );
    // A missing file fails the task with where it looked.
    s.write(
        "missing.yml",
        r#"- hosts: h1
  gather_facts: false
  tasks:
    - include_vars: nope.yml
"#,
    );
    let r = s.run_file("missing.yml", &[]);
    r.exits(2);
    r.says("could not find `nope.yml`");
}

/// `debug` output is shown at the default verbosity whatever the task is called, and only
/// for `debug`: a module whose result looks small is not dumped because of its name.
#[test]
fn debug_output_is_known_by_module_not_by_task_name() {
    let s = Session::local(1).playbook(
        r#"
- hosts: all
  vars: {token_path: /var/lib/x}
  tasks:
    - name: Show where the token lives
      debug: {var: token_path}
    - name: Tell them
      debug: {msg: "hello there"}
    - name: debugging aid that is a command
      command: echo quiet-output
      changed_when: false
"#,
    );
    let r = s.run();
    r.ok();
    r.says("token_path = /var/lib/x");
    r.says("hello there");
    assert!(!r.stdout.contains("quiet-output"), "{}", r.all());
}

/// At -v a command's output appears while it runs, under its host, in order and before its
/// result; JSON events carry the same lines; `no_log` commands stream nothing.
#[test]
fn command_output_streams_live_at_v() {
    use std::io::BufRead;
    // The command waits for a file the test writes only once it has seen the first line: if
    // output were not live, the command would give up after 20 s and fail.
    let s = Session::local(2).playbook(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - shell: |
        echo "first from {{ inventory_hostname }}"
        echo "to stderr" >&2
        i=0
        while [ ! -e @OUT@/go ]; do sleep 0.05; i=$((i+1)); [ $i -lt 400 ] || exit 7; done
        printf 'second\nlast-without-newline'
    - shell: echo hidden-secret-line
      no_log: true
"#,
    );
    let w = &s.work;
    // Read line by line as mixop prints them (Session::spawn collects them at the end).
    let mut child = std::process::Command::new(common::mixop_bin())
        .args(["run", "pb.yml", "-i", "inventory.yml", "-v"])
        .current_dir(w.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        for h in ["h1", "h2"] {
            if line.contains(&format!("{h} | first from {h}")) {
                seen.insert(h);
            }
        }
        if seen.len() == 2 && !w.out().join("go").exists() {
            std::fs::write(w.out().join("go"), "").unwrap();
        }
        lines.push(line);
    }
    assert!(child.wait().unwrap().success(), "{}", lines.join("\n"));
    let text = lines.join("\n");
    for h in ["h1", "h2"] {
        let pos = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing in:\n{text}"))
        };
        assert!(pos(&format!("{h} | second")) < pos(&format!("{h} | last-without-newline")));
        assert!(text.contains(&format!("{h} ! to stderr")), "{text}");
    }
    assert!(!text.contains("hidden-secret-line"), "{text}");

    // The same lines as JSON events, each before its host's result.
    std::fs::remove_file(w.out().join("go")).unwrap();
    std::fs::write(w.out().join("go"), "").unwrap();
    let r = s.run_with(&["-v", "--output", "json"]);
    r.ok();
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let idx = |pred: &dyn Fn(&serde_json::Value) -> bool| events.iter().position(pred).unwrap();
    let out_line =
        idx(&|e| e["event"] == "host_output" && e["host"] == "h1" && e["line"] == "second");
    let result = idx(&|e| e["event"] == "host_result" && e["host"] == "h1");
    assert!(out_line < result);
    assert_eq!(events[out_line]["stream"], "stdout");
    assert!(!r.stdout.contains("hidden-secret-line"));
    // Without -v nothing streams.
    let quiet = s.run();
    quiet.ok();
    assert!(!quiet.stdout.contains("| first from"), "{}", quiet.stdout);
}

/// `script` copies the controller's script to the host, runs it with its arguments as written,
/// and removes it; creates/removes, chdir, executable and check mode as Ansible's.
#[test]
fn script_runs_the_controllers_script_with_its_arguments() {
    let s = Session::local(1)
        .file(
            "files/hello.sh",
            "#!/bin/sh\necho \"args: $# [$1] [$2]\"\necho \"cwd: $(pwd)\"\necho \"self: $0\" > @OUT@/self\nexit ${EXIT_WITH:-0}\n",
        )
        .file("files/count.py", "import sys\nprint(len(sys.argv) - 1)\n")
        .playbook(
            r#"
- hosts: all
  gather_facts: false
  tasks:
    - script: hello.sh "two words" second
      args: {chdir: /tmp}
      register: hello
    - script: count.py a b c
      args: {executable: python3}
      register: py
    - script: hello.sh creates=@OUT@/self
      register: skipped
    - copy:
        dest: "@OUT@/results"
        content: "{{ hello.stdout_lines | to_json }} {{ py.stdout }} {{ hello.rc }} {{ skipped.changed }}"
"#,
        );
    s.run().exits(0);
    assert_eq!(
        s.out("results"),
        r#"["args: 2 [two words] [second]", "cwd: /tmp"] 3 0 False"#
    );
    // The copy on the host is gone after the run.
    let copied = s.out("self");
    let copied = copied.trim().strip_prefix("self: ").unwrap();
    assert!(copied.starts_with("/tmp/.mixop-script-"), "{copied}");
    assert!(
        !std::path::Path::new(copied).exists(),
        "{copied} left behind"
    );

    // A failing script fails the task with its rc; check mode runs nothing.
    let s2 = Session::local(1)
        .file("files/fail.sh", "#!/bin/sh\necho oops >&2\nexit 5\n")
        .file("files/touch.sh", "#!/bin/sh\ntouch @OUT@/touched\n")
        .playbook(
            r#"
- hosts: all
  gather_facts: false
  tasks:
    - script: touch.sh
    - script: fail.sh
"#,
        );
    s2.run_with(&["--check"]).exits(0);
    assert!(!s2.work.out().join("touched").exists());
    s2.run().exits(2).says("oops");
    assert!(s2.work.out().join("touched").exists());
    // A script that is not on the controller fails the task, naming it.
    Session::local(1)
        .playbook(
            r#"- hosts: all
  tasks:
    - script: nowhere.sh
"#,
        )
        .run()
        .exits(2)
        .says("nowhere.sh");
}
