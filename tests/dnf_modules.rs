//! `dnf` / `yum` on the lab. The lab hosts are Debian with Debian's `dnf` 4 and `rpm`
//! (scripts/setup.sh): the test builds tiny noarch rpms with `rpmbuild`, a repository with
//! `createrepo_c` under the host's private /opt/repo, a `.repo` file in the host's /etc overlay,
//! and every task works in `installroot: /opt/root` — an rpm database and files under the host's
//! private /opt, so the Debian system itself is never changed. The differential test runs
//! ansible-playbook's ansible.builtin.dnf (python3-dnf on the target) on a second lab.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Lab, Work, parse_recap, sh};

/// Builds `name-version-1.noarch.rpm` into `out`: one file `/opt/NAME/version`.
fn build_rpm(out: &Path, name: &str, version: &str, requires: Option<&str>) {
    let top = tempfile::tempdir().unwrap();
    let spec = top.path().join("p.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: mixop test package\nLicense: MIT\nBuildArch: noarch\n{}\n%description\nmixop test package\n%install\nmkdir -p %{{buildroot}}/opt/{name}\necho {version} > %{{buildroot}}/opt/{name}/version\n%files\n/opt/{name}/version\n",
            requires.map(|r| format!("Requires: {r}")).unwrap_or_default()
        ),
    )
    .unwrap();
    let o = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", out.display()))
        .arg("--define")
        .arg("_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm")
        .arg(&spec)
        .output()
        .expect("rpmbuild (Debian package `rpm`, installed by scripts/setup.sh)");
    assert!(
        o.status.success(),
        "rpmbuild failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A lab whose hosts have an rpm repository `mixop` at /opt/repo (mixop-hello 1.0 and 2.0,
/// mixop-extra 1.0 which requires mixop-dep 1.0) as their only dnf repository.
fn dnf_lab(n: usize) -> Lab {
    // The installroot has no repositories of its own, so dnf (and python3-dnf under Ansible)
    // read the host's.
    Lab::up(n, &[]).local_repos(
        |opt| {
            let (repo, rpms) = (opt.join("repo"), opt.join("rpms"));
            std::fs::create_dir_all(&repo).unwrap();
            std::fs::create_dir_all(&rpms).unwrap();
            build_rpm(&repo, "mixop-hello", "1.0", None);
            build_rpm(&repo, "mixop-hello", "2.0", None);
            build_rpm(&repo, "mixop-extra", "1.0", Some("mixop-dep"));
            build_rpm(&repo, "mixop-dep", "1.0", None);
            // A package file outside the repository (installed by path).
            build_rpm(&rpms, "mixop-local", "3.0", None);
            // createrepo_c: Debian package `createrepo-c`, installed by scripts/setup.sh.
            sh("createrepo_c -q .", &repo);
        },
        "rm -rf /etc/yum.repos.d && mkdir -p /etc/yum.repos.d /opt/root && printf '[mixop]\\nname=mixop tests\\nbaseurl=file:///opt/repo\\ngpgcheck=0\\n' > /etc/yum.repos.d/mixop.repo",
    )
}

/// What the installroot holds: its rpm database's packages, then its files under /opt.
fn rpm_state(lab: &Lab, host: &str) -> String {
    lab.exec(
        host,
        "rpm --root /opt/root -qa --qf '%{NAME}-%{VERSION}\\n' 2>&1 | sort; find /opt/root/opt -type f 2>/dev/null | sort",
    )
}

/// The arguments every task gets: the installroot, a release version (there is no
/// system-release package in it), and the dnf 4 backend (Ansible's dnf action would otherwise
/// ask for `ansible_pkg_mgr`, which is `apt` on the lab's Debian hosts).
const O: &str = "installroot: /opt/root, releasever: '1', use_backend: dnf4";

fn pb(tasks: &str) -> String {
    format!(
        "- hosts: lab1\n  gather_facts: false\n  tasks:\n{}",
        tasks.replace("@O@", O)
    )
}

fn registered(w: &Work, name: &str) -> serde_json::Value {
    serde_json::from_str(&w.read(name)).unwrap()
}

#[test]
fn dnf_installs_upgrades_removes_idempotently_and_check_mode_touches_nothing() {
    let lab = dnf_lab(1);
    let w = Work::new();
    let install = w.write(
        "install.yml",
        &pb(r#"
    - dnf: {name: [mixop-hello-1.0, mixop-extra], @O@}
      register: r
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
      check_mode: false
      changed_when: false
"#),
    );
    // Check mode: reports the install (with the dependency), changes nothing.
    let check = lab.run(&w, &install, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 1, "{}", check.all());
    let r = registered(&w, "r.json");
    assert_eq!(
        r["msg"], "Check mode: No changes made, but would have if not in check mode",
        "{r}"
    );
    assert_eq!(
        r["results"],
        serde_json::json!([
            "Installed: mixop-dep-1.0-1.noarch",
            "Installed: mixop-extra-1.0-1.noarch",
            "Installed: mixop-hello-1.0-1.noarch"
        ]),
        "{r}"
    );
    assert_eq!(
        rpm_state(&lab, "lab1"),
        "",
        "check mode changed the installroot"
    );

    let first = lab.run(&w, &install, &[]);
    first.ok();
    assert_eq!(first.recap("lab1").changed, 1, "{}", first.all());
    let r = registered(&w, "r.json");
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["rc"], 0, "{r}");
    assert_eq!(r["results"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(
        rpm_state(&lab, "lab1"),
        "mixop-dep-1.0\nmixop-extra-1.0\nmixop-hello-1.0\n/opt/root/opt/mixop-dep/version\n/opt/root/opt/mixop-extra/version\n/opt/root/opt/mixop-hello/version\n"
    );
    // Second run: everything is there.
    let again = lab.run(&w, &install, &[]);
    again.ok();
    assert_eq!(again.recap("lab1").changed, 0, "{}", again.all());
    let r = registered(&w, "r.json");
    assert_eq!(r["msg"], "Nothing to do", "{r}");

    // latest (through `yum`, the same module): upgrades 1.0 -> 2.0; idempotent. An older
    // versioned spec then changes nothing without allow_downgrade.
    let latest = w.write(
        "latest.yml",
        &pb(r#"
    - yum: {name: mixop-hello, state: latest, @O@}
      register: r
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
      check_mode: false
      changed_when: false
    - dnf: {name: mixop-hello-1.0, @O@}
"#),
    );
    let check = lab.run(&w, &latest, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 1, "{}", check.all());
    assert!(rpm_state(&lab, "lab1").contains("mixop-hello-1.0\n"));
    let up = lab.run(&w, &latest, &[]);
    up.ok();
    assert_eq!(up.recap("lab1").changed, 1, "{}", up.all());
    assert_eq!(
        registered(&w, "r.json")["results"],
        serde_json::json!([
            "Installed: mixop-hello-2.0-1.noarch",
            "Removed: mixop-hello-1.0-1.noarch"
        ])
    );
    assert_eq!(
        lab.exec("lab1", "cat /opt/root/opt/mixop-hello/version"),
        "2.0\n"
    );
    let up = lab.run(&w, &latest, &[]);
    up.ok();
    assert_eq!(up.recap("lab1").changed, 0, "{}", up.all());

    // absent: removes only what is named (autoremove is off: mixop-dep stays); idempotent.
    let absent = w.write(
        "absent.yml",
        &pb(r#"
    - dnf: {name: [mixop-hello, mixop-extra], state: absent, @O@}
      register: r
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
      check_mode: false
      changed_when: false
"#),
    );
    let check = lab.run(&w, &absent, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 1, "{}", check.all());
    assert!(rpm_state(&lab, "lab1").contains("mixop-extra-1.0\n"));
    let rm = lab.run(&w, &absent, &[]);
    rm.ok();
    assert_eq!(rm.recap("lab1").changed, 1, "{}", rm.all());
    assert_eq!(
        rpm_state(&lab, "lab1"),
        "mixop-dep-1.0\n/opt/root/opt/mixop-dep/version\n"
    );
    let rm = lab.run(&w, &absent, &[]);
    rm.ok();
    assert_eq!(rm.recap("lab1").changed, 0, "{}", rm.all());
    assert_eq!(
        registered(&w, "r.json")["results"],
        serde_json::json!([
            "No match for argument: mixop-hello",
            "No match for argument: mixop-extra"
        ])
    );

    // autoremove alone takes the now unneeded dependency.
    let auto = w.write("auto.yml", &pb("    - dnf: {autoremove: true, @O@}\n"));
    let a = lab.run(&w, &auto, &[]);
    a.ok();
    assert_eq!(a.recap("lab1").changed, 1, "{}", a.all());
    assert_eq!(rpm_state(&lab, "lab1"), "");

    // An unknown package fails as Ansible's dnf does, and installs nothing else.
    let unknown = w.write(
        "unknown.yml",
        &pb(r#"
    - dnf: {name: [mixop-hello, mixop-nosuch], @O@}
      register: r
      ignore_errors: true
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
      check_mode: false
      changed_when: false
"#),
    );
    let u = lab.run(&w, &unknown, &[]);
    u.ok();
    let r = registered(&w, "r.json");
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(
        r["msg"], "Failed to install some of the specified packages",
        "{r}"
    );
    assert_eq!(
        r["failures"],
        serde_json::json!(["No package mixop-nosuch available."]),
        "{r}"
    );
    assert_eq!(rpm_state(&lab, "lab1"), "");

    // `package` with `use: dnf` runs this module.
    let package = w.write(
        "package.yml",
        &pb("    - package: {name: mixop-hello, use: dnf, installroot: /opt/root, releasever: '1'}\n"),
    );
    let p = lab.run(&w, &package, &[]);
    p.ok();
    assert_eq!(p.recap("lab1").changed, 1, "{}", p.all());
    assert_eq!(
        rpm_state(&lab, "lab1"),
        "mixop-hello-2.0\n/opt/root/opt/mixop-hello/version\n"
    );
}

#[test]
fn dnf_arguments_are_checked_before_any_host_is_contacted() {
    let w = Work::new();
    let inv = w.local_inventory(1);
    let cases = [
        (
            "    - dnf: {name: x, list: installed}\n",
            "`dnf`: argument `list` exists in Ansible's module but mixop does not implement it",
        ),
        (
            "    - ansible.builtin.yum: {name: x, enablerepos: a}\n",
            "`yum` has no argument `enablerepos` (did you mean `enablerepo`?)",
        ),
        (
            "    - dnf: {name: x, state: upgraded}\n",
            "`dnf`: argument `state` must be one of absent, installed, latest, present, removed, got `upgraded`",
        ),
        (
            "    - dnf: {name: x, best: true, nobest: true}\n",
            "`dnf`: the arguments `best` and `nobest` are mutually exclusive",
        ),
    ];
    for (task, want) in cases {
        let pb = w.write(
            "pb.yml",
            &format!("- hosts: all\n  gather_facts: false\n  tasks:\n{task}"),
        );
        let c = w.mixop(&["check", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
        assert_eq!(c.code, 3, "{task}\n{}", c.all());
        assert!(
            c.all().contains(want) && c.all().contains("pb.yml:4:"),
            "{task}: want pb.yml:4: and {want}\n{}",
            c.all()
        );
    }
}

/// The same playbook through ansible-playbook (ansible.builtin.dnf with python3-dnf) on one
/// lab and mixop on another, round after round (check mode, real, real again, then a
/// play that upgrades, downgrades and removes): exit codes, recaps, the registered results
/// and the installroots' contents must match.
#[test]
fn dnf_matches_ansible() {
    let (lab_a, lab_m) = (dnf_lab(1), dnf_lab(1));
    let w = Work::new();
    let reg = |n: &str| {
        format!(
            "      register: {n}\n      ignore_errors: true\n    - copy: {{dest: \"@OUT@/{{{{ tag }}}}-{n}.json\", content: \"{{{{ {n} | dict2items | rejectattr('key', 'in', ['warnings', 'invocation', 'failed', 'deprecations', '_ansible_no_log', 'exception']) | items2dict | to_json }}}}\"}}\n      delegate_to: localhost\n      check_mode: false\n      changed_when: false\n"
        )
    };
    let p1 = pb(&format!(
        "    - dnf: {{name: [mixop-hello-1.0, mixop-extra], @O@}}\n{}    - dnf: {{name: mixop-nosuch, @O@}}\n{}    - yum: {{name: [mixop-hello, mixop-gone], state: absent, @O@}}\n{}    - dnf: {{name: /opt/rpms/mixop-local-3.0-1.noarch.rpm, disable_gpg_check: true, disablerepo: '*', @O@}}\n{}",
        reg("a"),
        reg("b"),
        reg("c"),
        reg("l")
    ));
    let p2 = pb(&format!(
        "    - dnf: {{name: mixop-hello, state: latest, @O@}}\n{}    - dnf: {{name: mixop-hello-1.0, @O@}}\n{}    - dnf: {{name: mixop-hello-1.0, allow_downgrade: true, @O@}}\n{}    - dnf: {{name: [mixop-extra], state: removed, autoremove: true, @O@}}\n{}    - dnf: {{name: [mixop-extra], state: absent, autoremove: true, @O@}}\n{}",
        reg("d"),
        reg("e"),
        reg("f"),
        reg("g"),
        reg("h")
    ));
    w.write("p1.yml", &p1);
    w.write("p2.yml", &p2);
    let rounds: &[(&str, &[&str])] = &[
        ("p1.yml", &["--check"]),
        ("p1.yml", &[]),
        ("p1.yml", &[]),
        ("p2.yml", &["--check"]),
        ("p2.yml", &[]),
        ("p2.yml", &[]),
    ];
    for (i, (pbf, extra)) in rounds.iter().enumerate() {
        let mut a_extra: Vec<&str> = extra.to_vec();
        a_extra.extend(["-e", "tag=a"]);
        let (a_code, a_out) = lab_a.ansible(&w, pbf, &a_extra);
        let mut args = vec!["run", pbf, "-i", lab_m.inventory.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend(["-e", "tag=m"]);
        let m = w.mixop(&args);
        let ctx = format!(
            "round {i} {pbf} {extra:?}\n--- ansible (exit {a_code})\n{a_out}\n--- mixop\n{}",
            m.all()
        );
        assert!(a_out.contains("PLAY RECAP"), "ansible did not run:\n{ctx}");
        assert_eq!(m.code, a_code, "exit codes differ\n{ctx}");
        assert_eq!(
            parse_recap(&m.stdout, "lab1"),
            parse_recap(&a_out, "lab1"),
            "recaps differ\n{ctx}"
        );
        assert_eq!(
            rpm_state(&lab_m, "lab1"),
            rpm_state(&lab_a, "lab1"),
            "installroots differ\n{ctx}"
        );
        let names: &[&str] = if *pbf == "p1.yml" {
            &["a", "b", "c", "l"]
        } else {
            &["d", "e", "f", "g", "h"]
        };
        for n in names {
            let read = |tag: &str| -> serde_json::Value {
                let mut v: serde_json::Value =
                    serde_json::from_str(&w.read(&format!("{tag}-{n}.json"))).unwrap();
                // Ansible lists install and remove sets in set order: compare sorted.
                if let Some(r) = v.get_mut("results").and_then(|r| r.as_array_mut()) {
                    r.sort_by_key(|x| x.to_string());
                }
                v
            };
            assert_eq!(read("m"), read("a"), "registered `{n}` differs\n{ctx}");
        }
    }
}
