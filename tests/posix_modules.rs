//! blockinfile, mount and modprobe.
//!
//! - `blockinfile_agrees_with_ansible`: differential test. The same blockinfile tasks run by
//!   ansible-playbook (connection local) in one temp tree and by mixop's module (through the
//!   library, local connection) in another: file trees byte-equal, `changed`/`failed`/`msg`
//!   equal on a first and a second run, and a check-mode run with diff (on fresh trees) must
//!   report the same flags and the same diff text and leave the trees alone.
//! - modprobe on a lab host, against `modprobe`/`lsmod` test doubles (no kernel module can be
//!   loaded here): load, persistence files, check mode, unload, errors.
//! - mount on a lab host: real tmpfs mounts inside the host's own mount namespace, with the
//!   fstab given by `fstab:` (the venv has no ansible.posix collection to compare with, so the
//!   fstab lines are checked against the documented format).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use common::{Lab, Session};

use mixop::modules::ModError;

const BEGIN: &str = "# BEGIN ANSIBLE MANAGED BLOCK\n";
const END: &str = "# END ANSIBLE MANAGED BLOCK\n";

fn seed(root: &Path) {
    let w = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let blk = |body: &str| format!("{BEGIN}{body}{END}");
    w("bi/eof", "a\nb\n");
    w("bi/noeol", "a");
    w("bi/replace", &format!("a\n{}b\n", blk("old\n")));
    w("bi/same", &format!("a\n{}b\n", blk("new\nlines\n")));
    w("bi/absent", &format!("a\n{}b\n", blk("old\n")));
    w("bi/absent_none", "a");
    w("bi/after", "#1\na\n#2\nb\n");
    w("bi/before", "#1\na\n#2\nb\n");
    w("bi/bof", "a\nb\n");
    w("bi/nomatch", "a\nb\n");
    w("bi/multiline", "#1\na\n#2\nb\n");
    w("bi/custom", "x\n");
    w("bi/crlf", "a\r\nb\r\n");
    w("bi/padding", "a\nb\n");
    w("bi/mode", &blk("m\n"));
    w("bi/backup", "old\n");
    w("bi/invalid", "v\n");
    w("bi/valid", "v\n");
    w("bi/content", "c\n");
    w("bi/empty_block", &format!("a\n{}b\n", blk("old\n")));
    w("bi/reversed", &format!("a\n{END}mid\n{BEGIN}b\n"));
    w("bi/target", "t\n");
    w("bi/k3s/registries.yaml", "mirrors:\n  docker.io:\n");
    std::os::unix::fs::symlink("target", root.join("bi/link")).unwrap();
    std::fs::set_permissions(root.join("bi/mode"), std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn cases() -> Vec<Value> {
    vec![
        json!({"path": "@/bi/eof", "block": "x=1\ny=2"}),
        json!({"path": "@/bi/noeol", "block": "x"}),
        json!({"path": "@/bi/replace", "block": "new\nlines\n"}),
        json!({"path": "@/bi/same", "block": "new\nlines\n"}),
        json!({"path": "@/bi/absent", "state": "absent"}),
        json!({"path": "@/bi/absent_none", "state": "absent"}),
        json!({"path": "@/bi/after", "block": "X", "insertafter": "^#"}),
        json!({"path": "@/bi/before", "block": "X", "insertbefore": "^#"}),
        json!({"path": "@/bi/bof", "block": "X", "insertbefore": "BOF"}),
        json!({"path": "@/bi/nomatch", "block": "X", "insertafter": "^zzz"}),
        json!({"path": "@/bi/multiline", "block": "X", "insertafter": "(?m)^#"}),
        json!({"path": "@/bi/custom", "block": "k: v", "marker": "// {mark} k3s {mark}", "marker_begin": "start", "marker_end": "stop"}),
        json!({"path": "@/bi/crlf", "block": "X"}),
        json!({"path": "@/bi/padding", "block": "X", "insertafter": "^a", "append_newline": true, "prepend_newline": true}),
        json!({"path": "@/bi/new/created.conf", "block": "c=1", "create": true, "mode": "0600"}),
        json!({"path": "@/bi/nofile", "block": "c=1"}),
        json!({"path": "@/bi/absent_missing", "state": "absent", "create": true}),
        json!({"path": "@/bi/absent_missing2", "state": "absent"}),
        json!({"path": "@/bi/mode", "block": "m", "mode": "0600"}),
        json!({"path": "@/bi/backup", "block": "b", "backup": true}),
        json!({"path": "@/bi/invalid", "block": "w", "validate": "grep -q nomatch %s"}),
        json!({"path": "@/bi/valid", "block": "w", "validate": "grep -q w %s"}),
        json!({"path": "@/bi/content", "content": "alias"}),
        json!({"path": "@/bi/empty_block", "block": ""}),
        json!({"path": "@/bi/reversed", "block": "z"}),
        json!({"path": "@/bi", "block": "z"}),
        json!({"path": "@/bi/link", "block": "through the link"}),
        json!({"path": "@/bi/k3s/registries.yaml", "marker": "# {mark} mirrors", "insertafter": "^mirrors:", "block": "  registry.lab:\n    endpoint:\n      - \"http://10.231.0.1:5000\""}),
    ]
}

fn subst(v: &Value, root: &Path) -> Value {
    let text = v.to_string().replace("@/", &format!("{}/", root.display()));
    serde_json::from_str(&text).unwrap()
}

fn venv_bin(name: &str) -> PathBuf {
    let bin = common::venv().join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `scripts/setup.sh` (or point MIXOP_VENV at a venv with ansible-core)",
        bin.display()
    );
    bin
}

/// What is compared of one task's result: changed, failed, msg (when it did not fail), and the
/// content diff's before/after (when asked for).
fn summary(r: &Value, with_diff: bool) -> Value {
    let failed = r["failed"].as_bool().unwrap_or(false);
    let mut s = json!({
        "changed": r["changed"].as_bool().unwrap_or(false),
        "failed": failed,
    });
    if !failed {
        s["msg"] = r["msg"].clone();
    }
    if with_diff && !failed {
        let d = match &r["diff"] {
            Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        s["before"] = d["before"].clone();
        s["after"] = d["after"].clone();
    }
    s
}

fn run_ansible(root: &Path, work: &Path, cases: &[Value], check: bool) -> Vec<Value> {
    let mut tasks = Vec::new();
    for (i, args) in cases.iter().enumerate() {
        tasks.push(json!({
            "name": format!("case {i}"),
            "ansible.builtin.blockinfile": subst(args, root),
            "register": format!("r{i}"),
            "ignore_errors": true,
        }));
    }
    let out = work.join("ansible-run.json");
    let list = (0..cases.len())
        .map(|i| format!("r{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    tasks.push(json!({
        "name": "results",
        "ansible.builtin.copy": {
            "content": format!("{{{{ [{list}] | to_json }}}}"),
            "dest": out.display().to_string(),
        },
        "check_mode": false,
        "diff": false,
    }));
    let play = json!([{"hosts": "localhost", "gather_facts": false, "tasks": tasks}]);
    let playbook = work.join("playbook.yml");
    std::fs::write(&playbook, serde_json::to_string_pretty(&play).unwrap()).unwrap();
    let home = work.join("ansible-home");
    let mut cmd = Command::new(venv_bin("ansible-playbook"));
    cmd.args(["-i", "localhost,", "-c", "local"])
        .arg("-e")
        .arg(format!(
            "ansible_python_interpreter={}",
            venv_bin("python").display()
        ))
        .arg(&playbook)
        .env("ANSIBLE_HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("rtmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .current_dir(work);
    if check {
        cmd.args(["--check", "--diff"]);
    }
    let status = cmd.output().unwrap();
    assert!(
        status.status.success(),
        "ansible-playbook failed:\n{}\n{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    let res: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).unwrap();
    res.as_array()
        .unwrap()
        .iter()
        .map(|r| summary(r, check))
        .collect()
}

async fn run_mixop(root: &Path, cases: &[Value], check: bool) -> Vec<Value> {
    let direct = common::Direct::new(root);
    let mut out = Vec::new();
    for args in cases {
        out.push(
            match direct
                .run("blockinfile", subst(args, root), check, check)
                .await
            {
                Ok(r) => summary(&Value::Object(r), check),
                Err(ModError::Failed { .. }) => json!({"changed": false, "failed": true}),
                Err(ModError::Conn(e)) => panic!("connection error {e}"),
            },
        );
    }
    // Results carry the run's root in messages and diffs: compare without it.
    let text = serde_json::to_string(&out)
        .unwrap()
        .replace(&root.display().to_string(), "@");
    serde_json::from_str(&text).unwrap()
}

/// path → (kind, mode, content/link target), backup names reduced to a marker.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let backup = regex::Regex::new(r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$").unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let rel = backup.replace(&rel, ".<backup>").into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let desc = if md.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(root, &p, out);
                format!("dir {mode:04o}")
            } else {
                let content = std::fs::read(&p).unwrap();
                format!("file {mode:04o} {:?}", String::from_utf8_lossy(&content))
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn compare(what: &str, a: &[Value], b: &[Value], cases: &[Value], problems: &mut Vec<String>) {
    for (i, args) in cases.iter().enumerate() {
        if a[i] != b[i] {
            problems.push(format!(
                "{what}: case {i} {args}:\n  ansible {}\n  mixop   {}",
                a[i], b[i]
            ));
        }
    }
}

fn compare_trees(what: &str, a: &Path, b: &Path, problems: &mut Vec<String>) {
    let (ta, tb) = (snapshot(a), snapshot(b));
    for k in ta.keys().chain(tb.keys().filter(|k| !ta.contains_key(*k))) {
        if ta.get(k) != tb.get(k) {
            problems.push(format!(
                "{what}: {k}: ansible={:?} mixop={:?}",
                ta.get(k),
                tb.get(k)
            ));
        }
    }
}

#[tokio::test]
async fn blockinfile_agrees_with_ansible() {
    let work = tempfile::tempdir().unwrap();
    let cases = cases();
    let mut problems = Vec::new();

    // Check mode with diff first, on fresh trees: same flags and diffs, nothing written.
    let (ca, cb) = (work.path().join("check-a"), work.path().join("check-b"));
    seed(&ca);
    seed(&cb);
    let seeded = snapshot(&ca);
    let ans = run_ansible(&ca, work.path(), &cases, true);
    let ans: Vec<Value> = serde_json::from_str(
        &serde_json::to_string(&ans)
            .unwrap()
            .replace(&ca.display().to_string(), "@"),
    )
    .unwrap();
    let ours = run_mixop(&cb, &cases, true).await;
    compare("check", &ans, &ours, &cases, &mut problems);
    assert_eq!(snapshot(&ca), seeded, "ansible's check mode wrote");
    assert_eq!(snapshot(&cb), seeded, "mixop's check mode wrote");
    assert!(
        ans.iter().filter(|r| r["changed"] == true).count() > 15,
        "{ans:?}"
    );

    let (a, b) = (work.path().join("ansible"), work.path().join("mixop"));
    seed(&a);
    seed(&b);
    let mut runs = Vec::new();
    for run in 1..=2 {
        let t0 = std::time::Instant::now();
        let ans = run_ansible(&a, work.path(), &cases, false);
        let ans: Vec<Value> = serde_json::from_str(
            &serde_json::to_string(&ans)
                .unwrap()
                .replace(&a.display().to_string(), "@"),
        )
        .unwrap();
        let t1 = std::time::Instant::now();
        let ours = run_mixop(&b, &cases, false).await;
        eprintln!(
            "run {run}: {} tasks: ansible-playbook {:.1}s, mixop {:.3}s",
            cases.len(),
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
        compare(&format!("run {run}"), &ans, &ours, &cases, &mut problems);
        compare_trees(&format!("after run {run}"), &a, &b, &mut problems);
        runs.push(ans);
    }
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
    // The comparison saw real work, failures, and an idempotent second run.
    assert!(runs[0].iter().filter(|r| r["changed"] == true).count() > 15);
    assert!(runs[0].iter().filter(|r| r["failed"] == true).count() >= 3);
    assert_eq!(
        runs[1].iter().filter(|r| r["changed"] == true).count(),
        0,
        "{:?}",
        runs[1]
    );
}

// ---------------------------------------------------------------- modprobe (lab, test double)

fn install(lab: &Lab, host: &str, fixture: &str, name: &str) {
    let dst = lab.host_dir(host, "usr-local-bin").join(name);
    std::fs::copy(common::root().join("tests/fixtures").join(fixture), &dst).unwrap();
}

/// One lab host with `modprobe` and `lsmod` test doubles (tests/fixtures/fake-modprobe,
/// fake-lsmod) first on PATH: the lab hosts share the controller's kernel, so no real module
/// can be loaded; the doubles keep their state in the host's private /run.
fn modprobe_lab() -> Session {
    let s = Session::lab(1);
    let lab = s.the_lab();
    install(lab, "lab1", "fake-modprobe", "modprobe");
    install(lab, "lab1", "fake-lsmod", "lsmod");
    assert_eq!(
        lab.exec("lab1", "command -v modprobe; command -v lsmod"),
        "/usr/local/bin/modprobe\n/usr/local/bin/lsmod\n"
    );
    s
}

fn fake_state(lab: &Lab, file: &str) -> String {
    lab.exec("lab1", &format!("cat /run/fake-modules/{file} 2>/dev/null"))
}

#[test]
fn modprobe_loads_persists_unloads_and_is_idempotent() {
    let s = modprobe_lab();
    let lab = s.the_lab();
    let pb = s.write(
        "load.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - community.general.modprobe: {name: br_netfilter, state: present, persistent: present}
    - modprobe: {name: dummy, params: "numdummies=2", persistent: present}
      register: d
    - modprobe: {name: blocked_mod}
      register: b
    - copy: {dest: "@OUT@/r.json", content: "{{ {'d': d, 'b': b} | to_json }}"}
      delegate_to: localhost
"#,
    );
    // Check mode: modprobe -n only, nothing loaded, no file written.
    let check = s.run_file(&pb, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 4, "{}", check.all());
    assert_eq!(
        fake_state(lab, "log"),
        "-n br_netfilter\n-n dummy numdummies=2\n-n blocked_mod\n"
    );
    assert_eq!(fake_state(lab, "loaded"), "");
    assert_eq!(
        lab.exec(
            "lab1",
            "ls /etc/modules-load.d/br_netfilter.conf /etc/modprobe.d/dummy.conf 2>&1 | grep -c 'No such'"
        ),
        "2\n"
    );

    let first = s.run_file(&pb, &[]);
    first.ok();
    // br_netfilter and dummy change; blocked_mod "loads" without appearing: a warning, no change.
    assert_eq!(first.recap("lab1").changed, 3, "{}", first.all());
    assert_eq!(fake_state(lab, "loaded"), "br_netfilter\ndummy\n");
    assert_eq!(
        lab.exec(
            "lab1",
            "cat /etc/modules-load.d/br_netfilter.conf /etc/modules-load.d/dummy.conf \
             /etc/modprobe.d/dummy.conf; ls /etc/modprobe.d"
        ),
        // No params: no options file (the empty set of params counts as set).
        "br_netfilter\ndummy\noptions dummy numdummies=2\ndummy.conf\n"
    );
    let r = s.out_json("r.json");
    assert_eq!(r["d"]["changed"], true);
    assert_eq!(r["d"]["params"], "numdummies=2");
    assert_eq!(r["d"]["state"], "present");
    assert_eq!(r["b"]["changed"], false);
    assert!(
        r["b"]["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("could not insert 'blocked_mod'"),
        "{r}"
    );

    let second = s.run_file(&pb, &[]);
    second.ok();
    // Only the controller-side copy of the (different) registered results changes.
    assert_eq!(second.recap("lab1").changed, 1, "{}", second.all());

    // Unload, and stop loading at boot: the lines are commented out, as the collection does.
    let pb = s.write(
        "unload.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - modprobe: {name: dummy, state: absent, persistent: absent}
"#,
    );
    let un = s.run_file(&pb, &[]);
    un.ok();
    assert_eq!(un.recap("lab1").changed, 1, "{}", un.all());
    assert_eq!(fake_state(lab, "loaded"), "br_netfilter\n");
    assert_eq!(
        lab.exec(
            "lab1",
            "cat /etc/modules-load.d/dummy.conf /etc/modprobe.d/dummy.conf"
        ),
        "#dummy\n#options dummy numdummies=2\n"
    );
    assert!(fake_state(lab, "log").ends_with("-r dummy\n"));
    let again = s.run_file(&pb, &[]);
    again.ok();
    assert_eq!(again.recap("lab1").changed, 0, "{}", again.all());
}

#[test]
fn modprobe_failure_reports_modprobes_message() {
    let s = modprobe_lab();
    let pb = s.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - modprobe: {name: nosuch_mod}
"#,
    );
    let r = s.run_file(&pb, &[]);
    r.exits(2)
        .says("modprobe: FATAL: Module nosuch_mod not found in directory");
    assert_eq!(r.recap("lab1").failed, 1);
}

// ---------------------------------------------------------------- mount (lab, real mounts)

/// A mount point's fstype and options as the lab host sees them ("" when not mounted).
fn findmnt(lab: &Lab, path: &str) -> String {
    lab.exec(
        "lab1",
        &format!("findmnt -n -o FSTYPE,OPTIONS --mountpoint {path} || true"),
    )
}

#[test]
fn mount_tmpfs_states_in_a_lab_host() {
    let s = Session::lab(1);
    let lab = s.the_lab();
    let write = |name: &str, task: &str| {
        s.write(
            name,
            &format!("- hosts: lab1\n  gather_facts: false\n  tasks:\n    - {task}\n"),
        )
    };
    let mounted = write(
        "mounted.yml",
        "ansible.posix.mount: {path: /opt/mnt/data, src: tmpfs, fstype: tmpfs, opts: 'size=1m,mode=0750', state: mounted, fstab: /opt/fstab}",
    );
    // Check mode: nothing created, nothing mounted.
    let check = s.run_file(&mounted, &["--check", "--diff"]);
    check
        .ok()
        .says("+tmpfs /opt/mnt/data tmpfs size=1m,mode=0750 0 0");
    assert_eq!(check.recap("lab1").changed, 1, "{}", check.all());
    assert_eq!(
        lab.exec("lab1", "ls /opt/fstab /opt/mnt 2>&1 | grep -c 'No such'"),
        "2\n"
    );

    s.run_file(&mounted, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 1, 0, 0));
    let line = "tmpfs /opt/mnt/data tmpfs size=1m,mode=0750 0 0\n";
    assert_eq!(lab.exec("lab1", "cat /opt/fstab"), line);
    let m = findmnt(lab, "/opt/mnt/data");
    assert!(m.starts_with("tmpfs ") && m.contains("size=1024k"), "{m}");
    // The mount is the lab host's own: the controller does not see it.
    let here = Command::new("findmnt")
        .args(["-n", "--mountpoint", "/opt/mnt/data"])
        .output()
        .unwrap();
    assert!(here.stdout.is_empty());
    s.run_file(&mounted, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 0, 0, 0));

    // New options: the entry is rewritten and the file system remounted.
    let bigger = write(
        "bigger.yml",
        "mount: {name: /opt/mnt/data, src: tmpfs, fstype: tmpfs, opts: 'size=2m,mode=0750', state: mounted, fstab: /opt/fstab, backup: true}",
    );
    s.run_file(&bigger, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 1, 0, 0));
    assert!(findmnt(lab, "/opt/mnt/data").contains("size=2048k"));
    assert_eq!(
        lab.exec("lab1", "cat /opt/fstab; cat /opt/fstab.*~"),
        format!("tmpfs /opt/mnt/data tmpfs size=2m,mode=0750 0 0\n{line}")
    );

    // unmounted: the fstab stays.
    let unmounted = write(
        "unmounted.yml",
        "mount: {path: /opt/mnt/data, state: unmounted, fstab: /opt/fstab}",
    );
    s.run_file(&unmounted, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 1, 0, 0));
    assert_eq!(findmnt(lab, "/opt/mnt/data"), "");
    assert!(lab.exec("lab1", "cat /opt/fstab").contains("size=2m"));
    s.run_file(&unmounted, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 0, 0, 0));

    // present: only the fstab (a bind entry, boot: false adds noauto).
    let present = write(
        "present.yml",
        "mount: {path: /opt/mnt/bind, src: /opt/src, fstype: none, opts: bind, boot: false, state: present, fstab: /opt/fstab}",
    );
    s.run_file(&present, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 1, 0, 0));
    s.run_file(&present, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 0, 0, 0));
    assert_eq!(
        lab.exec("lab1", "cat /opt/fstab"),
        "tmpfs /opt/mnt/data tmpfs size=2m,mode=0750 0 0\n/opt/src /opt/mnt/bind none bind,noauto 0 0\n"
    );
    assert_eq!(findmnt(lab, "/opt/mnt/bind"), "");

    // remounted: always changed; then absent: unmounted, entry and directory removed.
    s.run_file(&bigger, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 1, 0, 0));
    let remounted = write(
        "remounted.yml",
        "mount: {path: /opt/mnt/data, state: remounted, fstab: /opt/fstab}",
    );
    s.run_file(&remounted, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 1, 0, 0));
    assert!(findmnt(lab, "/opt/mnt/data").contains("size=2048k"));
    let absent = write(
        "absent.yml",
        "mount: {path: /opt/mnt/data, state: absent, fstab: /opt/fstab}",
    );
    s.run_file(&absent, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 1, 0, 0));
    assert_eq!(findmnt(lab, "/opt/mnt/data"), "");
    assert_eq!(
        lab.exec("lab1", "cat /opt/fstab; ls /opt/mnt"),
        "/opt/src /opt/mnt/bind none bind,noauto 0 0\n"
    );
    s.run_file(&absent, &[])
        .ok()
        .recap_is("lab1", common::recap(1, 0, 0, 0));

    // A mount that fails: the fstab and the created directories are put back.
    let bad = write(
        "bad.yml",
        "mount: {path: /opt/mnt/bad/deep, src: nothing, fstype: nosuchfs, state: mounted, fstab: /opt/fstab}",
    );
    let before = lab.exec("lab1", "cat /opt/fstab");
    s.run_file(&bad, &[])
        .exits(2)
        .says("Error mounting /opt/mnt/bad/deep");
    assert_eq!(lab.exec("lab1", "cat /opt/fstab"), before);
    assert_eq!(lab.exec("lab1", "ls /opt/mnt"), "");
}

// ---------------------------------------------------------------- arguments checked before running

#[test]
fn unknown_arguments_are_refused_at_check() {
    for (task, bad) in [
        ("blockinfile: {path: /tmp/x, block: y, markr: z}", "markr"),
        (
            "ansible.posix.mount: {path: /mnt, state: unmounted, fsype: ext4}",
            "fsype",
        ),
        (
            "community.general.modprobe: {name: overlay, persist: present}",
            "persist",
        ),
    ] {
        let s = Session::local(1).playbook(&format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - {task}\n"
        ));
        let r = s.check();
        r.exits(3)
            .says("pb.yml:4:")
            .says(&format!("has no argument `{bad}`"));
    }
}
