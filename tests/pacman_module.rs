//! `community.general.pacman` on the lab with the real pacman (Debian's
//! `pacman-package-manager`): a local sync repository of hand-made packages (`.PKGINFO` +
//! files, tarred with `bsdtar` and compressed with `zstd`; the repository database is written
//! by this file, because Debian's `repo-add` needs makepkg's shell libraries). Each lab host
//! gets its own `/etc/pacman.conf` (its `/etc` is a per-host overlay) pointing every pacman
//! path (root, databases, cache, log, GnuPG, hooks) under its private `/opt/pacman`, so the
//! machine's Debian system is never touched. No differential run: the venv's ansible-core has
//! no community.general.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Lab, Work, sh};
use serde_json::Value;

/// A package: name, `pkgver-pkgrel`, dependencies.
type Spec<'a> = (&'a str, &'a str, &'a [&'a str]);

/// Builds `NAME-VER-any.pkg.tar.zst` in `dir` (one file, `/opt/NAME/version`) and returns its
/// sync database `desc` entry.
fn build_pkg(dir: &Path, (name, ver, deps): Spec, groups: &[&str]) -> String {
    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(b.path().join("opt").join(name)).unwrap();
    std::fs::write(
        b.path().join("opt").join(name).join("version"),
        format!("{ver}\n"),
    )
    .unwrap();
    let meta: String = deps
        .iter()
        .map(|d| format!("depend = {d}\n"))
        .chain(groups.iter().map(|g| format!("group = {g}\n")))
        .collect();
    std::fs::write(
        b.path().join(".PKGINFO"),
        format!(
            "pkgname = {name}\npkgbase = {name}\npkgver = {ver}\npkgdesc = mixop test package\nbuilddate = 1700000000\npackager = mixop tests <t@example.invalid>\nsize = 8\narch = any\nlicense = MIT\n{meta}"
        ),
    )
    .unwrap();
    let file = format!("{name}-{ver}-any.pkg.tar.zst");
    let out = dir.join(&file);
    sh(
        &format!(
            "bsdtar --uid 0 --gid 0 --uname root --gname root -cf - .PKGINFO opt | zstd -q -o '{}'",
            out.display()
        ),
        b.path(),
    );
    let size = std::fs::metadata(&out).unwrap().len();
    let o = Command::new("sha256sum").arg(&out).output().unwrap();
    let sha = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let list = |key: &str, items: &[&str]| {
        if items.is_empty() {
            String::new()
        } else {
            format!("%{key}%\n{}\n\n", items.join("\n"))
        }
    };
    format!(
        "%FILENAME%\n{file}\n\n%NAME%\n{name}\n\n%BASE%\n{name}\n\n%VERSION%\n{ver}\n\n%DESC%\nmixop test package\n\n{}%CSIZE%\n{size}\n\n%ISIZE%\n8\n\n%SHA256SUM%\n{sha}\n\n%ARCH%\nany\n\n%BUILDDATE%\n1700000000\n\n{}",
        list("GROUPS", groups),
        list("DEPENDS", deps)
    )
}

/// Writes `repo` (the host's `/opt/pacman/repo`): the packages and the `mixoptest.db` sync
/// database listing them; `groups` names (package, group) memberships.
fn write_repo_with(repo: &Path, pkgs: &[Spec], groups: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(repo);
    std::fs::create_dir_all(repo).unwrap();
    let db = tempfile::tempdir().unwrap();
    for spec in pkgs {
        let g: Vec<&str> = groups
            .iter()
            .filter(|(p, _)| *p == spec.0)
            .map(|(_, g)| *g)
            .collect();
        let desc = build_pkg(repo, *spec, &g);
        let entry = db.path().join(format!("{}-{}", spec.0, spec.1));
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(entry.join("desc"), desc).unwrap();
    }
    sh(
        &format!("bsdtar -czf '{}' *", repo.join("mixoptest.db").display()),
        db.path(),
    );
}

fn write_repo(repo: &Path, pkgs: &[Spec]) {
    write_repo_with(repo, pkgs, &[]);
}

const PACMAN_CONF: &str = "[options]
RootDir = /opt/pacman/root
DBPath = /opt/pacman/root/var/lib/pacman/
CacheDir = /opt/pacman/cache/
LogFile = /opt/pacman/pacman.log
GPGDir = /opt/pacman/gnupg/
HookDir = /opt/pacman/hooks/
Architecture = auto
SigLevel = Never
LocalFileSigLevel = Never

[mixoptest]
Server = file:///opt/pacman/repo
";

/// Logs its arguments to /opt/pacman/calls.log, then runs pacman (for `executable`).
const PACMAN_LOG: &str =
    "#!/bin/sh\nprintf '%s\\n' \"$*\" >> /opt/pacman/calls.log\nexec /usr/bin/pacman \"$@\"\n";

fn pacman_lab() -> Lab {
    let which = Command::new("sh")
        .args(["-c", "for c in pacman bsdtar zstd; do command -v $c; done"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&which.stdout).lines().count() == 3,
        "pacman, bsdtar and zstd are needed (scripts/setup.sh installs pacman-package-manager, libarchive-tools, zstd)"
    );
    let lab = Lab::up(1, &[]);
    let bin = lab.host_dir("lab1", "usr-local-bin").join("pacman-log");
    std::fs::write(&bin, PACMAN_LOG).unwrap();
    sh(&format!("chmod 755 '{}'", bin.display()), Path::new("/"));
    // The host's own /etc (an overlay): the controller's /etc/pacman.conf is not touched.
    let lab = lab.local_repos(
        |opt| {
            let opt = opt.join("pacman");
            for d in ["root/var/lib/pacman", "cache", "gnupg", "hooks"] {
                std::fs::create_dir_all(opt.join(d)).unwrap();
            }
            std::fs::write(opt.join("pacman.conf"), PACMAN_CONF).unwrap();
            write_repo(
                &opt.join("repo"),
                &[
                    ("mixop-hello", "1.0-1", &[]),
                    ("mixop-extra", "1.0-1", &["mixop-dep"]),
                    ("mixop-dep", "1.0-1", &[]),
                ],
            );
        },
        "cp /opt/pacman/pacman.conf /etc/pacman.conf",
    );
    assert_eq!(
        lab.exec("lab1", "pacman-conf RootDir"),
        "/opt/pacman/root\n"
    );
    lab
}

/// What pacman has installed on lab1 (`name version reason`) and the files under its root.
fn state(lab: &Lab) -> String {
    lab.exec(
        "lab1",
        "pacman -Qe 2>/dev/null | sed 's/$/ explicit/'; pacman -Qd 2>/dev/null | sed 's/$/ dependency/'; find /opt/pacman/root/opt -type f 2>/dev/null | sort",
    )
}

/// Runs one task (YAML flow mapping after `- `) on lab1 and returns the run and its
/// registered result.
fn task(lab: &Lab, w: &Work, t: &str, extra: &[&str]) -> (common::Run, Value) {
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - {t}
      register: r
      ignore_errors: true
    - copy: {{dest: "@OUT@/r.json", content: "{{{{ r | to_json }}}}"}}
      delegate_to: localhost
      check_mode: false
"#
        ),
    );
    let _ = std::fs::remove_file(w.out().join("r.json"));
    let run = lab.run(w, &pb, extra);
    run.ok();
    let r: Value = serde_json::from_str(&w.read("r.json")).unwrap();
    (run, r)
}

#[test]
fn pacman_installs_upgrades_removes_idempotently_and_check_mode_touches_nothing() {
    let lab = pacman_lab();
    let w = Work::new();

    // update_cache alone: changed when the sync database's listing changes.
    let (_, r) = task(&lab, &w, "pacman: {update_cache: true}", &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["cache_updated"], true, "{r}");
    assert_eq!(r["msg"], "Updated package db", "{r}");
    let (_, r) = task(&lab, &w, "pacman: {update_cache: true}", &[]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["cache_updated"], false, "{r}");

    // Check mode: reports the packages (with the dependency pacman pulls in), installs nothing.
    let install = "community.general.pacman: {name: [mixop-hello, mixop-extra], state: present}";
    let (_, r) = task(&lab, &w, install, &["--check"]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["msg"], "Would have installed 3 packages", "{r}");
    assert_eq!(
        r["packages"],
        serde_json::json!(["mixop-dep", "mixop-extra", "mixop-hello"]),
        "{r}"
    );
    assert_eq!(r["diff"]["before"], "", "{r}");
    assert_eq!(
        r["diff"]["after"], "mixop-dep-1.0-1\nmixop-extra-1.0-1\nmixop-hello-1.0-1\n",
        "{r}"
    );
    assert_eq!(state(&lab), "");

    let (_, r) = task(&lab, &w, install, &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["msg"], "Installed 3 package(s)", "{r}");
    assert!(
        r["stdout"]
            .as_str()
            .unwrap()
            .contains("installing mixop-hello..."),
        "{r}"
    );
    let installed = "mixop-extra 1.0-1 explicit\nmixop-hello 1.0-1 explicit\nmixop-dep 1.0-1 dependency\n/opt/pacman/root/opt/mixop-dep/version\n/opt/pacman/root/opt/mixop-extra/version\n/opt/pacman/root/opt/mixop-hello/version\n";
    assert_eq!(state(&lab), installed);

    // Second run: nothing to do.
    let (run, r) = task(&lab, &w, install, &[]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["msg"], "package(s) already installed", "{r}");
    assert_eq!(r["packages"], serde_json::json!([]), "{r}");
    // One change in the recap: the copy of the registered result.
    assert_eq!(run.recap("lab1").changed, 1, "{}", run.all());
    assert_eq!(state(&lab), installed);

    // Newer versions in the repository: `latest` only sees them after a cache update.
    write_repo(
        &lab.host_dir("lab1", "opt").join("pacman/repo"),
        &[
            ("mixop-hello", "2.0-1", &[]),
            ("mixop-extra", "1.1-1", &["mixop-dep"]),
            ("mixop-dep", "1.0-1", &[]),
        ],
    );
    let latest = "pacman: {name: mixop-hello, state: latest}";
    let (_, r) = task(&lab, &w, latest, &[]);
    assert_eq!(r["changed"], false, "{r}");
    let latest = "pacman: {name: mixop-hello, state: latest, update_cache: true}";
    let (_, r) = task(&lab, &w, latest, &["--check"]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["cache_updated"], true, "{r}");
    assert_eq!(state(&lab), installed);
    let (_, r) = task(&lab, &w, latest, &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["cache_updated"], true, "{r}");
    assert_eq!(
        r["msg"], "Updated package db\nInstalled 1 package(s)",
        "{r}"
    );
    assert_eq!(r["packages"], serde_json::json!(["mixop-hello"]), "{r}");
    assert_eq!(r["diff"]["before"], "mixop-hello-1.0-1-explicit\n", "{r}");
    assert_eq!(r["diff"]["after"], "mixop-hello-2.0-1-explicit\n", "{r}");
    let (_, r) = task(&lab, &w, latest, &[]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["cache_updated"], false, "{r}");
    assert!(state(&lab).contains("mixop-hello 2.0-1 explicit\n"));

    // `present` leaves an out-of-date package alone; `upgrade` takes everything upgradable.
    let (_, r) = task(&lab, &w, "pacman: {name: mixop-extra}", &[]);
    assert_eq!(r["changed"], false, "{r}");
    let (_, r) = task(&lab, &w, "pacman: {upgrade: true}", &["--check"]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["msg"], "1 packages would have been upgraded", "{r}");
    assert!(state(&lab).contains("mixop-extra 1.0-1 explicit\n"));
    let (_, r) = task(&lab, &w, "pacman: {upgrade: true}", &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["msg"], "System upgraded", "{r}");
    assert_eq!(r["packages"], serde_json::json!(["mixop-extra"]), "{r}");
    assert_eq!(r["diff"]["before"], "mixop-extra-1.0-1\n", "{r}");
    assert_eq!(r["diff"]["after"], "mixop-extra-1.1-1\n", "{r}");
    let (_, r) = task(&lab, &w, "pacman: {upgrade: true}", &[]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["msg"], "Nothing to upgrade", "{r}");

    // Install reason: `reason_for: all` changes an installed package's reason.
    let reason = "pacman: {name: mixop-extra, reason: dependency, reason_for: all}";
    let (_, r) = task(&lab, &w, reason, &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["packages"], serde_json::json!(["mixop-extra"]), "{r}");
    assert!(state(&lab).contains("mixop-extra 1.1-1 dependency\n"));
    let (_, r) = task(&lab, &w, reason, &[]);
    assert_eq!(r["changed"], false, "{r}");

    // Removal: check mode, for real, again.
    let absent = "pacman: {name: mixop-hello, state: absent}";
    let (_, r) = task(&lab, &w, absent, &["--check"]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["msg"], "Would have removed 1 packages", "{r}");
    assert!(state(&lab).contains("mixop-hello 2.0-1"));
    let (_, r) = task(&lab, &w, absent, &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["msg"], "Removed 1 package(s)", "{r}");
    assert_eq!(
        r["packages"],
        serde_json::json!(["mixop-hello-2.0-1"]),
        "{r}"
    );
    assert_eq!(r["diff"]["before"], "mixop-hello-2.0-1\n", "{r}");
    assert_eq!(r["diff"]["after"], "", "{r}");
    assert!(!state(&lab).contains("mixop-hello"));
    let (_, r) = task(&lab, &w, absent, &[]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["msg"], "package(s) already absent", "{r}");

    // A package others depend on: refused by pacman, removed with force (--nodeps --nodeps).
    let (_, r) = task(
        &lab,
        &w,
        "pacman: {name: mixop-dep, state: removed, executable: /usr/local/bin/pacman-log}",
        &[],
    );
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(r["msg"], "failed to list package(s) to remove", "{r}");
    assert!(
        r["stdout"]
            .as_str()
            .unwrap()
            .contains("removing mixop-dep breaks dependency 'mixop-dep' required by mixop-extra"),
        "{r}"
    );
    assert_eq!(
        r["stderr"], "error: failed to prepare transaction (could not satisfy dependencies)\n",
        "{r}"
    );
    let (_, r) = task(
        &lab,
        &w,
        "pacman: {name: mixop-dep, state: absent, force: true, remove_nosave: true, executable: /usr/local/bin/pacman-log}",
        &[],
    );
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["packages"], serde_json::json!(["mixop-dep-1.0-1"]), "{r}");
    assert_eq!(
        state(&lab),
        "mixop-extra 1.1-1 dependency\n/opt/pacman/root/opt/mixop-extra/version\n"
    );
    let calls = lab.exec("lab1", "grep -- --remove /opt/pacman/calls.log");
    assert_eq!(
        calls,
        "--remove --noconfirm --noprogressbar --print-format %n-%v mixop-dep\n\
         --remove --noconfirm --noprogressbar --nodeps --nodeps --print-format %n-%v mixop-dep\n\
         --remove --noconfirm --noprogressbar --nodeps --nodeps --nosave mixop-dep\n"
    );

    // An unknown package fails with pacman's own message; absent of it is no change.
    let (run, r) = task(&lab, &w, "pacman: {name: mixop-nosuch}", &[]);
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(r["msg"], "Failed to list package mixop-nosuch", "{r}");
    assert!(
        r["stderr"]
            .as_str()
            .unwrap()
            .contains("error: 'mixop-nosuch': could not find or read package"),
        "{r}"
    );
    assert!(run.all().contains("Failed to list package mixop-nosuch"));
    let (_, r) = task(&lab, &w, "pacman: {name: mixop-nosuch, state: absent}", &[]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["msg"], "package(s) already absent", "{r}");

    // extra_args reach the install command line.
    let _ = lab.exec("lab1", "rm -f /opt/pacman/calls.log");
    let (_, r) = task(
        &lab,
        &w,
        "pacman: {name: mixop-hello, extra_args: '--asdeps', executable: /usr/local/bin/pacman-log}",
        &[],
    );
    assert_eq!(r["changed"], true, "{r}");
    assert!(state(&lab).contains("mixop-hello 2.0-1 dependency\n"));
    assert!(
        lab.exec("lab1", "cat /opt/pacman/calls.log")
            .contains("--noconfirm --noprogressbar --needed --asdeps --sync mixop-hello\n")
    );
}

#[test]
fn package_dispatches_to_pacman_and_pkg_mgr_is_pacman_only_on_arch_like_hosts() {
    let lab = pacman_lab();
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: true
  tasks:
    - assert: {that: ["ansible_pkg_mgr == 'apt'"]}
    - pacman: {update_cache: true}
    - package: {name: mixop-hello, use: pacman}
      register: r
    - assert: {that: ["r.changed", "r.packages == ['mixop-hello']"]}
"#,
    );
    let run = lab.run(&w, &pb, &[]);
    run.ok();
    assert_eq!(run.recap("lab1").changed, 2, "{}", run.all());
    assert!(state(&lab).contains("mixop-hello 1.0-1 explicit\n"));

    // The same host calling itself Arch-like (its own /etc): pkg_mgr is pacman, so `package`
    // without `use` installs with pacman; a missing executable is named.
    lab.exec(
        "lab1",
        "rm -f /etc/os-release && printf 'NAME=\"Mixop Arch\"\\nID=mixoparch\\nID_LIKE=arch\\n' > /etc/os-release",
    );
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: true
  tasks:
    - assert: {that: ["ansible_pkg_mgr == 'pacman'"]}
    - package: {name: mixop-extra}
      register: r
    - assert: {that: ["r.changed", "r.packages == ['mixop-dep', 'mixop-extra']"]}
    - pacman: {name: mixop-extra, executable: pacman-nosuch}
      register: r
      ignore_errors: true
    - assert: {that: ["r.failed", "r.msg == 'Failed to find required executable \\\"pacman-nosuch\\\" in PATH'"]}
"#,
    );
    let run = lab.run(&w, &pb, &[]);
    run.ok();
    assert!(
        state(&lab).contains("mixop-extra 1.0-1 explicit\n"),
        "{}",
        state(&lab)
    );
}

#[test]
fn pacman_arguments_are_checked_at_load() {
    let w = Work::new();
    let inv = w.local_inventory(1);
    let cases = [
        (
            "    - pacman: {name: x, purge: true}\n",
            "`pacman` has no argument `purge`",
        ),
        (
            "    - community.general.pacman: {name: x, state: upgraded}\n",
            "`pacman`: argument `state` must be one of absent, installed, latest, present, removed, got `upgraded`",
        ),
        (
            "    - pacman: {name: x, upgrade: true}\n",
            "`pacman`: the arguments `name` and `upgrade` are mutually exclusive",
        ),
        (
            "    - pacman: {state: present}\n",
            "`pacman` needs one of: `name`, `update_cache`, `upgrade`",
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

    // The shape of k3s-ansible's roles/prereq tasks for Arch hosts (written here).
    w.write(
        "roles/prereq/tasks/main.yml",
        r#"
- name: Remove the legacy iptables package (Arch)
  community.general.pacman:
    name: iptables
    state: absent
    force: true
  when: ansible_os_family == "Archlinux"

- name: Install the nftables flavour of iptables (Arch)
  community.general.pacman:
    name:
      - iptables-nft
      - nftables
    state: present
  when: ansible_os_family == "Archlinux"
"#,
    );
    let pb = w.write(
        "site.yml",
        "- hosts: all\n  gather_facts: true\n  roles:\n    - role: prereq\n",
    );
    let c = w.mixop(&["check", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
    assert_eq!(c.code, 0, "{}", c.all());
}

#[test]
fn pacman_expands_groups_and_installs_repo_qualified_names_and_package_files() {
    let lab = pacman_lab();
    let w = Work::new();
    let opt = lab.host_dir("lab1", "opt").join("pacman");
    write_repo_with(
        &opt.join("repo"),
        &[
            ("mixop-hello", "1.0-1", &[]),
            ("mixop-extra", "1.0-1", &[]),
            ("mixop-dep", "1.0-1", &[]),
        ],
        &[("mixop-hello", "mixop-grp"), ("mixop-extra", "mixop-grp")],
    );
    std::fs::create_dir_all(opt.join("files")).unwrap();
    build_pkg(&opt.join("files"), ("mixop-local", "3.0-1", &[]), &[]);

    // A group stands for its members.
    let group = "pacman: {name: mixop-grp, update_cache: true}";
    let (_, r) = task(&lab, &w, group, &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(
        r["packages"],
        serde_json::json!(["mixop-extra", "mixop-hello"]),
        "{r}"
    );
    let (_, r) = task(&lab, &w, group, &[]);
    assert_eq!(r["changed"], false, "{r}");
    let (_, r) = task(&lab, &w, "pacman: {name: mixop-grp, state: absent}", &[]);
    assert_eq!(r["changed"], true, "{r}");
    // In pacman's order, as the collection reports them.
    let mut removed: Vec<&str> = r["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(removed, ["mixop-extra-1.0-1", "mixop-hello-1.0-1"], "{r}");
    assert_eq!(state(&lab), "");

    // `repo/name`, resolved with `pacman -S --print-format %n`.
    let qualified = "pacman: {name: mixoptest/mixop-dep}";
    let (_, r) = task(&lab, &w, qualified, &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["packages"], serde_json::json!(["mixop-dep"]), "{r}");
    let (_, r) = task(&lab, &w, qualified, &[]);
    assert_eq!(r["changed"], false, "{r}");

    // A package file on the target goes through `pacman --upgrade`.
    let file = "pacman: {name: /opt/pacman/files/mixop-local-3.0-1-any.pkg.tar.zst}";
    let (_, r) = task(&lab, &w, file, &["--check"]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["packages"], serde_json::json!(["mixop-local"]), "{r}");
    assert_eq!(
        state(&lab),
        "mixop-dep 1.0-1 explicit\n/opt/pacman/root/opt/mixop-dep/version\n"
    );
    let (_, r) = task(&lab, &w, file, &[]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["packages"], serde_json::json!(["mixop-local"]), "{r}");
    assert!(state(&lab).contains("mixop-local 3.0-1 explicit\n"));
    let (_, r) = task(&lab, &w, file, &[]);
    assert_eq!(r["changed"], false, "{r}");
}
