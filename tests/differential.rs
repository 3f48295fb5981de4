//! Differential tests: the same playbooks run by ansible-playbook (the oracle) and by mixop on
//! the same inventory of `local` hosts; the recaps and the files each run leaves must match.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{Work, parse_recap, venv};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

fn inventory(w: &Work, python: &Path) -> std::path::PathBuf {
    let mut s = String::from(
        "all:\n  vars:\n    group_value: from-all\n  children:\n    web:\n      vars:\n        group_value: from-web\n      hosts:\n",
    );
    for h in HOSTS {
        s.push_str(&format!(
            "        {h}:\n          ansible_connection: local\n          ansible_python_interpreter: {}\n          host_value: {h}-value\n",
            python.display()
        ));
    }
    w.write("inventory.yml", &s)
}

/// Every file under `dir` with its content and mode.
fn tree(dir: &Path) -> BTreeMap<String, (String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                let content = std::fs::read_to_string(&p).unwrap_or_else(|_| "<binary>".into());
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                out.insert(rel, (content, mode));
            }
        }
    }
    out
}

fn compare(fixture: &str) {
    compare_runs(fixture);
}

/// `PLAY [...]` and `TASK [...]` header names, in order (mixop adds a host count after them).
fn headers(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("PLAY [") || l.starts_with("TASK ["))
        .map(|l| l[..=l.find(']').unwrap_or(l.len() - 1)].to_string())
        .collect()
}

/// ansible-playbook on a playbook in `a` with the differential inventory, plus `args`.
fn ansible(a: &Work, text: &str, args: &[&str]) -> std::process::Output {
    let venv = venv();
    let inv = inventory(a, &venv.join("bin/python"));
    a.write("pb.yml", text);
    let home = a.path().join("ansible-home");
    Command::new(venv.join("bin/ansible-playbook"))
        .args(["-i", inv.to_str().unwrap(), "pb.yml"])
        .args(args)
        .current_dir(a.path())
        .env("ANSIBLE_HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("rtmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env("ANSIBLE_FORKS", "10")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ansible-playbook")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::root().join("tests/fixtures/diff").join(name)).unwrap()
}

/// A fixture that is a directory (a playbook with its roles): its `pb.yml`, and every other
/// file, relative to it, for `Work::write`.
fn fixture_dir(name: &str) -> (String, Vec<(String, String)>) {
    let dir = common::root().join("tests/fixtures/diff").join(name);
    let files: Vec<(String, String)> = tree(&dir)
        .into_iter()
        .filter(|(rel, _)| rel != "pb.yml")
        .map(|(rel, (text, _))| (rel, text))
        .collect();
    (fixture(&format!("{name}/pb.yml")), files)
}

/// Runs both tools on a fixture and compares exit codes, recaps and files; returns both stdouts.
fn compare_runs(fixture_name: &str) -> (String, String) {
    compare_runs_with(fixture_name, &[])
}

/// `compare_runs` with the same extra command-line arguments given to both tools.
fn compare_runs_with(fixture_name: &str, args: &[&str]) -> (String, String) {
    let (text, files) = if fixture_name.ends_with(".yml") {
        (fixture(fixture_name), Vec::new())
    } else {
        fixture_dir(fixture_name)
    };
    let venv = venv();
    let a = Work::new();
    let m = Work::new();
    for (rel, content) in &files {
        a.write(rel, content);
        m.write(rel, content);
    }
    let out = ansible(&a, &text, args);
    let ansible_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let ansible_code = out.status.code().unwrap_or(-1);
    // mixop's run.
    inventory(&m, &venv.join("bin/python"));
    m.write("pb.yml", &text);
    let mut margs = vec!["run", "pb.yml", "-i", "inventory.yml"];
    margs.extend_from_slice(args);
    let r = m.mixop(&margs);
    let ctx = format!(
        "--- ansible (exit {ansible_code})\n{ansible_stdout}\n--- mixop\n{}",
        r.all()
    );
    assert!(
        ansible_stdout.contains("PLAY RECAP"),
        "ansible did not run:\n{ctx}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r.code, ansible_code, "exit codes differ\n{ctx}");
    for h in HOSTS {
        let want = parse_recap(&ansible_stdout, h);
        let got = parse_recap(&r.stdout, h);
        assert_eq!(got, want, "recap for {h} differs\n{ctx}");
    }
    assert_eq!(tree(&m.out()), tree(&a.out()), "files differ\n{ctx}");
    (ansible_stdout, r.stdout)
}

#[test]
fn vars_facts_and_hostvars() {
    compare("vars.yml");
}

#[test]
fn blocks_and_error_handling() {
    compare("errors.yml");
}

#[test]
fn handlers() {
    compare("handlers.yml");
}

#[test]
fn loops_and_conditions() {
    compare("loops.yml");
}

#[test]
fn typed_values() {
    compare("types.yml");
}

#[test]
fn any_errors_fatal_ends_the_playbook() {
    compare("fatal.yml");
}

#[test]
fn max_fail_percentage_ends_the_playbook() {
    compare("maxfail.yml");
}

#[test]
fn task_and_play_names_are_templated() {
    let (ansible, mixop) = compare_runs("names.yml");
    assert_eq!(
        headers(&mixop),
        headers(&ansible),
        "--- ansible\n{ansible}\n--- mixop\n{mixop}"
    );
}

#[test]
fn rescue_sees_the_failed_task_and_result() {
    compare("rescue_vars.yml");
}

#[test]
fn command_argv_expansion_and_creates_globs() {
    compare("command.yml");
}

#[test]
fn roles_precedence_dependencies_run_once_handlers_and_files() {
    let (ansible, mixop) = compare_runs("roles");
    // Role tasks are `role : task`, in the same order (the include tasks themselves, which
    // ansible-playbook also shows as `include_role : name`, and handlers aside).
    let role_tasks = |out: &str| -> Vec<String> {
        headers(out)
            .into_iter()
            .filter(|h| h.contains(" : ") && !h.starts_with("TASK [include_role"))
            .filter(|h| !h.starts_with("TASK [handler:"))
            .collect()
    };
    assert_eq!(
        role_tasks(&mixop),
        role_tasks(&ansible),
        "--- ansible\n{ansible}\n--- mixop\n{mixop}"
    );
}

/// ansible-playbook's listing with the hosts under each `hosts (N):` sorted (Ansible prints a
/// Python set there, in no particular order).
fn sorted_hosts(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut in_hosts = false;
    for line in text.lines() {
        if in_hosts && line.starts_with("      ") {
            hosts.push(line.to_string());
            continue;
        }
        hosts.sort();
        out.append(&mut hosts);
        in_hosts = line.starts_with("    hosts (");
        out.push(line.to_string());
    }
    hosts.sort();
    out.append(&mut hosts);
    out.join("\n")
}

#[test]
fn roles_are_listed_as_ansible_lists_them() {
    let (text, files) = fixture_dir("roles");
    let (a, m) = (Work::new(), Work::new());
    inventory(&m, &venv().join("bin/python"));
    m.write("pb.yml", &text);
    for (rel, content) in &files {
        a.write(rel, content);
        m.write(rel, content);
    }
    for args in [
        &["--list-tasks"][..],
        &["--list-tasks", "--list-tags", "--tags", "x"],
        &["--list-tasks", "--skip-tags", "x"],
    ] {
        let out = ansible(&a, &text, args);
        let want = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ansible-playbook {args:?} failed:\n{want}"
        );
        let mut margs = vec!["run", "pb.yml", "-i", "inventory.yml"];
        margs.extend_from_slice(args);
        let r = m.mixop(&margs);
        r.ok();
        assert_eq!(
            r.stdout,
            want,
            "{args:?}\n--- ansible\n{want}\n--- mixop\n{}",
            r.all()
        );
    }
}

#[test]
fn list_hosts_tasks_and_tags_print_what_ansible_prints() {
    let text = fixture("listing.yml");
    let (a, m) = (Work::new(), Work::new());
    inventory(&m, &venv().join("bin/python"));
    m.write("pb.yml", &text);
    for args in [
        &["--list-hosts"][..],
        &["--list-tasks"],
        &["--list-tags"],
        &["--list-hosts", "--list-tasks", "--list-tags"],
        &["--list-tasks", "--list-tags", "--tags", "a,blk,pre"],
        &["--list-tasks", "--skip-tags", "always,b"],
        &["--list-tasks", "--tags", "never"],
        &["--list-hosts", "--limit", "h1,h3"],
        &["--syntax-check"],
    ] {
        let out = ansible(&a, &text, args);
        let want = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ansible-playbook {args:?} failed:\n{want}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut margs = vec!["run", "pb.yml", "-i", "inventory.yml"];
        margs.extend_from_slice(args);
        let r = m.mixop(&margs);
        r.ok();
        assert_eq!(
            sorted_hosts(&r.stdout),
            sorted_hosts(&want),
            "{args:?}\n--- ansible\n{want}\n--- mixop\n{}",
            r.all()
        );
    }
}

#[test]
fn add_host_and_group_by_change_the_inventory() {
    let (ansible, mixop) = compare_runs("dyninv.yml");
    // The hosts add_host created are in both recaps alike.
    for h in ["n1", "n2"] {
        let want = parse_recap(&ansible, h);
        assert!(want.is_some(), "ansible has no recap for {h}:\n{ansible}");
        assert_eq!(
            parse_recap(&mixop, h),
            want,
            "recap for {h} differs\n--- ansible\n{ansible}\n--- mixop\n{mixop}"
        );
    }
}

#[test]
fn replace_module() {
    compare("replace.yml");
}

#[test]
fn handler_blocks() {
    let (a, m) = compare_runs("handler_blocks");
    // The same handlers ran, in the same order, with templated names.
    let handlers = |s: &str| -> Vec<String> {
        s.lines()
            .filter_map(|l| {
                l.strip_prefix("RUNNING HANDLER [")
                    .or_else(|| l.strip_prefix("TASK [handler: "))
            })
            .map(|l| l[..l.find(']').unwrap()].to_string())
            .collect()
    };
    // mixop's default output prints no header for set_fact; the recaps and the reboot-N
    // files (named from the fact) show that it ran.
    let mut want = handlers(&a);
    want.retain(|h| h != "lxc : Get ids");
    assert_eq!(handlers(&m), want, "{a}\n---\n{m}");
    assert!(handlers(&m).contains(&"restart web".to_string()), "{m}");
}

#[test]
fn with_first_found() {
    compare("first_found");
}

#[test]
fn vars_files_first_found_lists() {
    compare("vars_files_first_found");
}

#[test]
fn registered_results_carry_failed_and_changed() {
    compare("registered.yml");
}

#[test]
fn kv_jinja_words_pause_prompt_and_omitted_hosts() {
    compare("kv_pause_omit.yml");
}

#[test]
fn with_lookups_nested_together_subelements_sequence_lines_dict_indexed() {
    compare("with_lookups.yml");
}

#[test]
fn unknown_with_lookup_is_refused_at_load_naming_it() {
    let w = Work::new();
    w.local_inventory(1);
    w.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - debug: msg={{ item }}\n      with_foo: [1]\n",
    );
    w.mixop(&["check", "pb.yml", "-i", "inventory.yml"])
        .exits(3)
        .says("pb.yml:4:7")
        .says("the lookup plugin `foo` is not supported by mixop");
}

#[test]
fn sequence_errors_match_ansible() {
    // ansible-core 2.19 types sequence's numbers as integers through its config layer:
    // hexadecimal is refused, `010` is ten; a backwards range needs a negative stride.
    let w = Work::new();
    w.local_inventory(1);
    for (term, says) in [
        (
            "start=0x10 count=2",
            "Invalid value provided for 'integer': '0x10'",
        ),
        ("start=5 end=1", "to count backwards make stride negative"),
        (
            "end=3 foo=1",
            "unrecognized arguments to with_sequence: ['foo']",
        ),
        ("start=1", "must specify count or end in with_sequence"),
        ("end=3 format=%d%d", "bad formatting string: %d%d"),
    ] {
        w.write(
            "pb.yml",
            &format!(
                "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg={{{{ item }}}}\n      with_sequence: {term}\n"
            ),
        );
        w.mixop(&["run", "pb.yml", "-i", "inventory.yml"])
            .exits(2)
            .says(says);
    }
}

#[test]
fn pause_runs_once_per_play_on_the_first_host() {
    compare("pause_once.yml");
    // One wait, not one per host: with one fork, three waits would take three seconds.
    let w = Work::new();
    inventory(&w, &venv().join("bin/python"));
    w.write(
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - pause: seconds=1\n",
    );
    let t0 = std::time::Instant::now();
    w.mixop(&["run", "pb.yml", "-i", "inventory.yml", "--forks", "1"])
        .ok();
    let took = t0.elapsed();
    assert!(
        took < std::time::Duration::from_millis(1900),
        "pause took {took:?} for 3 hosts with one fork"
    );
}

#[test]
fn vars_prompt_without_a_terminal_takes_defaults_and_extra_vars() {
    let (ansible, mixop) = compare_runs_with("vars_prompt.yml", &["-e", "given=G"]);
    // Both say why nothing was asked (ansible-playbook on stderr, which compare_runs does
    // not keep; mixop's warnings go to stdout).
    assert!(
        mixop.contains("Not prompting as we are not in interactive mode"),
        "--- ansible\n{ansible}\n--- mixop\n{mixop}"
    );
}
