//! Package and system modules on the lab: apt/package/package_facts against a local apt
//! repository of tiny .deb packages built by the test (their files go under /opt, which is
//! private to each lab host; /var/lib/dpkg and /etc/apt are per-host overlays), and
//! differential runs against ansible-playbook on a second lab.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Lab, Work, parse_recap, sh};

/// Builds `name_version_all.deb` in `out`: one file `/opt/NAME/version`, and a conffile
/// `/opt/NAME/NAME.conf` (so a plain remove leaves the package in `rc` state).
fn build_deb(out: &Path, name: &str, version: &str) -> PathBuf {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(r.join("opt").join(name)).unwrap();
    std::fs::write(
        r.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: mixop tests <t@example.invalid>\nSection: misc\nPriority: optional\nDescription: mixop test package\n"
        ),
    )
    .unwrap();
    std::fs::write(
        r.join("DEBIAN/conffiles"),
        format!("/opt/{name}/{name}.conf\n"),
    )
    .unwrap();
    std::fs::write(
        r.join("opt").join(name).join("version"),
        format!("{version}\n"),
    )
    .unwrap();
    std::fs::write(
        r.join("opt").join(name).join(format!("{name}.conf")),
        "x=1\n",
    )
    .unwrap();
    let deb = out.join(format!("{name}_{version}_all.deb"));
    let o = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(r)
        .arg(&deb)
        .output()
        .expect("dpkg-deb (scripts/setup.sh installs dpkg-dev)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    deb
}

/// A lab whose hosts each have a local apt repository at /opt/repo (mixop-hello 1.0 and 2.0,
/// mixop-extra 1.0) as their only apt source, plus /opt/debs/mixop-local_3.0_all.deb.
fn apt_lab(n: usize) -> Lab {
    Lab::up(n, &[]).local_repos(
        |opt| {
            let (repo, debs) = (opt.join("repo"), opt.join("debs"));
            std::fs::create_dir_all(&repo).unwrap();
            std::fs::create_dir_all(&debs).unwrap();
            build_deb(&repo, "mixop-hello", "1.0");
            build_deb(&repo, "mixop-hello", "2.0");
            build_deb(&repo, "mixop-extra", "1.0");
            build_deb(&debs, "mixop-local", "3.0");
            sh("dpkg-scanpackages -m . /dev/null > Packages", &repo);
        },
        "rm -rf /etc/apt/sources.list /etc/apt/sources.list.d && mkdir -p /etc/apt/sources.list.d && echo 'deb [trusted=yes] file:/opt/repo ./' > /etc/apt/sources.list.d/mixop.list",
    )
}

/// `name status version` of the mixop test packages dpkg knows on a host.
fn dpkg_state(lab: &Lab, host: &str) -> String {
    lab.exec(
        host,
        "dpkg-query -W -f='${Package} ${db:Status-Abbrev} ${Version}\\n' 'mixop-*' 2>/dev/null | sort; find /opt -mindepth 2 -path '/opt/mixop-*' -type f | sort",
    )
}

#[test]
fn apt_installs_upgrades_removes_idempotently_and_check_mode_touches_nothing() {
    let lab = apt_lab(1);
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - apt: {name: mixop-hello=1.0, update_cache: true}
      register: r
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
"#,
    );
    let first = lab.run(&w, &pb, &[]);
    first.ok();
    let r: serde_json::Value = serde_json::from_str(&w.read("r.json")).unwrap();
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["cache_updated"], true, "{r}");
    assert!(r["cache_update_time"].as_i64().unwrap() > 0, "{r}");
    assert!(
        r["stdout"]
            .as_str()
            .unwrap()
            .contains("Setting up mixop-hello (1.0)"),
        "{r}"
    );
    assert_eq!(
        dpkg_state(&lab, "lab1"),
        "mixop-hello ii  1.0\n/opt/mixop-hello/mixop-hello.conf\n/opt/mixop-hello/version\n"
    );

    // Same again: the version is installed, nothing changes (the cache refresh is no change).
    let again = lab.run(&w, &pb, &[]);
    again.ok();
    let r: serde_json::Value = serde_json::from_str(&w.read("r.json")).unwrap();
    assert_eq!(r["changed"], false, "{r}");

    // Check mode: reports the install and upgrade, touches nothing.
    let pb2 = w.write(
        "pb2.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - apt: {name: [mixop-extra], state: present}
    - apt: {name: mixop-hello, state: latest}
    - apt: {name: mixop-nosuch}
      ignore_errors: true
      register: missing
    - assert: {that: ["missing.msg == \"No package matching 'mixop-nosuch' is available\""]}
"#,
    );
    let check = lab.run(&w, &pb2, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 2, "{}", check.all());
    assert_eq!(
        dpkg_state(&lab, "lab1"),
        "mixop-hello ii  1.0\n/opt/mixop-hello/mixop-hello.conf\n/opt/mixop-hello/version\n"
    );
    let real = lab.run(&w, &pb2, &[]);
    real.ok();
    assert_eq!(real.recap("lab1").changed, 2, "{}", real.all());
    assert_eq!(
        dpkg_state(&lab, "lab1"),
        "mixop-extra ii  1.0\nmixop-hello ii  2.0\n/opt/mixop-extra/mixop-extra.conf\n/opt/mixop-extra/version\n/opt/mixop-hello/mixop-hello.conf\n/opt/mixop-hello/version\n"
    );
    let real = lab.run(&w, &pb2, &[]);
    real.ok();
    assert_eq!(real.recap("lab1").changed, 0, "{}", real.all());

    // Remove keeps the conffile (rc), purge takes it; both idempotent; version-qualified
    // absent only removes a matching version.
    let pb3 = w.write(
        "pb3.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - apt: {name: mixop-hello=1.0, state: absent}
    - apt: {name: mixop-hello, state: absent}
    - apt: {name: mixop-extra, state: absent, purge: true}
"#,
    );
    let rm = lab.run(&w, &pb3, &[]);
    rm.ok();
    assert_eq!(rm.recap("lab1").changed, 2, "{}", rm.all());
    assert_eq!(
        dpkg_state(&lab, "lab1"),
        "mixop-hello rc  2.0\n/opt/mixop-hello/mixop-hello.conf\n"
    );
    let rm = lab.run(&w, &pb3, &[]);
    rm.ok();
    assert_eq!(rm.recap("lab1").changed, 0, "{}", rm.all());
    let purge = w.write(
        "pb4.yml",
        "- hosts: lab1\n  gather_facts: false\n  tasks:\n    - apt: {name: mixop-hello, state: absent, purge: true}\n",
    );
    let p = lab.run(&w, &purge, &[]);
    p.ok();
    assert_eq!(p.recap("lab1").changed, 1, "{}", p.all());
    assert_eq!(dpkg_state(&lab, "lab1"), "");
}

#[test]
fn deb_package_and_package_facts() {
    let lab = apt_lab(1);
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - apt: {deb: /opt/debs/mixop-local_3.0_all.deb}
    - apt: {update_cache: true, cache_valid_time: 3600}
      register: cache
    - package: {name: mixop-extra, state: present}
    - package_facts:
    - assert:
        that:
          - packages['mixop-local'][0].version == '3.0'
          - ansible_facts.packages['mixop-local'][0].version == '3.0'
          - packages['mixop-extra'][0].source == 'apt'
          - packages['mixop-extra'][0].arch == 'all'
          - "'mixop-hello' not in packages"
    - copy: {dest: "@OUT@/cache.json", content: "{{ cache | to_json }}"}
      delegate_to: localhost
"#,
    );
    let first = lab.run(&w, &pb, &[]);
    first.ok();
    // deb, the first cache refresh (the lists change: the machine's are replaced by the
    // repository's), package, and the controller-side copy.
    assert_eq!(first.recap("lab1").changed, 4, "{}", first.all());
    let second = lab.run(&w, &pb, &[]);
    second.ok();
    // Nothing on the host (the cache is fresh: cache_valid_time); only the controller-side
    // copy of the registered result, which now says cache_updated: false, changes.
    assert_eq!(second.recap("lab1").changed, 1, "{}", second.all());
    assert!(
        !second.stdout.contains("changed: [lab1]\n"),
        "{}",
        second.all()
    );
    let cache: serde_json::Value = serde_json::from_str(&w.read("cache.json")).unwrap();
    assert_eq!(cache["cache_updated"], false, "{cache}");
    assert_eq!(
        dpkg_state(&lab, "lab1"),
        "mixop-extra ii  1.0\nmixop-local ii  3.0\n/opt/mixop-extra/mixop-extra.conf\n/opt/mixop-extra/version\n/opt/mixop-local/mixop-local.conf\n/opt/mixop-local/version\n"
    );
}

/// Runs `pb` on two fresh labs prepared by `prepare` — ansible-playbook on one, mixop on the
/// other — `rounds` times with `extra` arguments each; recaps, exit codes and `state(lab)`
/// must match after every round.
fn differential(
    prepare: fn(usize) -> Lab,
    pb: &str,
    rounds: &[&[&str]],
    state: impl Fn(&Lab) -> String,
) {
    let (lab_a, lab_m) = (prepare(1), prepare(1));
    let w = Work::new();
    w.write("pb.yml", pb);
    for (i, extra) in rounds.iter().enumerate() {
        let (a_code, a_out) = lab_a.ansible(&w, "pb.yml", extra);
        let mut args = vec!["run", "pb.yml", "-i", lab_m.inventory.to_str().unwrap()];
        args.extend_from_slice(extra);
        let m = w.mixop(&args);
        let ctx = format!(
            "round {i} {extra:?}\n--- ansible (exit {a_code})\n{a_out}\n--- mixop\n{}",
            m.all()
        );
        assert!(a_out.contains("PLAY RECAP"), "ansible did not run:\n{ctx}");
        assert_eq!(m.code, a_code, "exit codes differ\n{ctx}");
        assert_eq!(
            parse_recap(&m.stdout, "lab1"),
            parse_recap(&a_out, "lab1"),
            "recaps differ\n{ctx}"
        );
        assert_eq!(state(&lab_m), state(&lab_a), "host state differs\n{ctx}");
    }
}

#[test]
fn apt_matches_ansible() {
    let pb = r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - apt: {name: [mixop-hello=1.0, mixop-extra], update_cache: true}
    - apt: {name: mixop-hello, state: latest}
    - apt: {name: mixop-extra, state: absent}
    - apt: {deb: /opt/debs/mixop-local_3.0_all.deb}
    - apt: {name: "mixop-h*", state: absent, purge: true}
    - apt: {name: mixop-gone}
      ignore_errors: true
"#;
    differential(
        apt_lab,
        pb,
        &[&["--check"], &[], &[], &["--check"]],
        |lab| dpkg_state(lab, "lab1"),
    );
}

// ---------------------------------------------------------------- user / group

const USERS_PB: &str = r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - group: {name: mixdevs, gid: 3100}
    - group: {name: mixops, system: true}
    - user:
        name: mixalice
        uid: 3101
        group: mixdevs
        groups: [mixops]
        shell: /bin/bash
        comment: Alice
        password: "$6$mixop$0hzbvw0zZzq1yqSGX6ahLwfqYwkgTmM3NmWf4VbGJCUMrOAtpHVNWT/H2UsWsE3g3cDJyPVlwnnT5VqJ6kXc0/"
    - user: {name: mixbob, system: true, create_home: false, shell: /usr/sbin/nologin}
    - user: {name: mixcarol, groups: mixdevs, append: true}
    - user: {name: mixcarol, groups: [mixops], append: true}
    - user: {name: labuser, state: absent, remove: true}
    - group: {name: mixgone, state: absent}
"#;

/// The accounts the playbooks touch, as the host sees them.
fn accounts(lab: &Lab) -> String {
    lab.exec(
        "lab1",
        "for u in mixalice mixbob mixcarol labuser; do getent passwd $u || echo \"no $u\"; done; for g in mixdevs mixops mixalice mixcarol; do getent group $g || echo \"no $g\"; done; getent shadow mixalice | cut -d: -f1,2; ls -A /home | sort; ls -A /home/mixalice 2>/dev/null | sort",
    )
}

#[test]
fn user_and_group_create_modify_remove_idempotently() {
    let lab = Lab::up(1, &[]);
    let w = Work::new();
    let pb = w.write("pb.yml", USERS_PB);
    let check = lab.run(&w, &pb, &["--check"]);
    check.ok();
    assert!(accounts(&lab).contains("no mixalice"), "{}", accounts(&lab));
    let first = lab.run(&w, &pb, &[]);
    first.ok();
    assert_eq!(first.recap("lab1").changed, 7, "{}", first.all());
    let a = accounts(&lab);
    assert!(
        a.contains("mixalice:x:3101:3100:Alice:/home/mixalice:/bin/bash\n"),
        "{a}"
    );
    assert!(a.contains("mixops:x:"), "{a}");
    assert!(a.contains(":mixalice,mixcarol\n"), "{a}");
    assert!(a.contains("no labuser\n"), "{a}");
    assert!(a.contains("mixalice:$6$mixop$0hzbvw"), "{a}");
    // /home/mixalice from /etc/skel; mixbob has none; labuser's went with remove: true.
    assert!(a.contains("\nmixalice\nmixcarol\nnopass\n"), "{a}");
    assert!(a.contains(".bashrc"), "{a}");
    let second = lab.run(&w, &pb, &[]);
    second.ok();
    assert_eq!(second.recap("lab1").changed, 0, "{}", second.all());
    assert_eq!(accounts(&lab), a);
}

#[test]
fn user_and_group_match_ansible() {
    differential(
        |n| Lab::up(n, &[]),
        USERS_PB,
        &[&["--check"], &[], &[]],
        accounts,
    );
}

// ---------------------------------------------------------------- sysctl

#[test]
fn sysctl_writes_the_file_reloads_and_sets_in_the_hosts_namespace() {
    let lab = Lab::up(1, &[]);
    let w = Work::new();
    let live = |lab: &Lab| {
        lab.exec(
            "lab1",
            "cat /proc/sys/net/ipv4/ip_forward; cat /etc/sysctl.d/90-mixop.conf 2>/dev/null",
        )
    };
    assert_eq!(live(&lab), "0\n");
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - ansible.posix.sysctl:
        name: net.ipv4.ip_forward
        value: "1"
        sysctl_file: /etc/sysctl.d/90-mixop.conf
    - sysctl: {name: net.ipv4.conf.all.forwarding, value: true, sysctl_file: /etc/sysctl.d/90-mixop.conf, reload: false}
"#,
    );
    let check = lab.run(&w, &pb, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 2, "{}", check.all());
    assert_eq!(live(&lab), "0\n");
    let first = lab.run(&w, &pb, &[]);
    first.ok();
    assert_eq!(first.recap("lab1").changed, 2, "{}", first.all());
    assert_eq!(
        live(&lab),
        "1\nnet.ipv4.ip_forward=1\nnet.ipv4.conf.all.forwarding=1\n"
    );
    let second = lab.run(&w, &pb, &[]);
    second.ok();
    assert_eq!(second.recap("lab1").changed, 0, "{}", second.all());
    // Live only (sysctl_set without reload), then out of the file.
    let pb2 = w.write(
        "pb2.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - sysctl: {name: net.ipv4.ip_forward, value: "0", sysctl_set: true, reload: false, sysctl_file: /etc/sysctl.d/90-mixop.conf}
    - sysctl: {name: net.ipv4.conf.all.forwarding, state: absent, reload: false, sysctl_file: /etc/sysctl.d/90-mixop.conf}
"#,
    );
    let r = lab.run(&w, &pb2, &[]);
    r.ok();
    assert_eq!(r.recap("lab1").changed, 2, "{}", r.all());
    assert_eq!(live(&lab), "0\nnet.ipv4.ip_forward=0\n");
    let r = lab.run(&w, &pb2, &[]);
    r.ok();
    assert_eq!(r.recap("lab1").changed, 0, "{}", r.all());
}

// ---------------------------------------------------------------- pip

/// Writes `mixop_demo-VERSION-py3-none-any.whl` (one module, `mixop_demo.VERSION`) to `dir`.
fn build_wheel(dir: &Path, version: &str) {
    let script = format!(
        r#"
import zipfile
v = "{version}"
d = "mixop_demo-" + v + ".dist-info"
files = {{
    "mixop_demo/__init__.py": "VERSION = '" + v + "'\n",
    d + "/METADATA": "Metadata-Version: 2.1\nName: mixop-demo\nVersion: " + v + "\n",
    d + "/WHEEL": "Wheel-Version: 1.0\nGenerator: mixop-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}}
with zipfile.ZipFile("mixop_demo-" + v + "-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
    z.writestr(d + "/RECORD", "".join(n + ",,\n" for n in files) + d + "/RECORD,,\n")
"#
    );
    let o = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn pip_installs_from_a_local_wheel_into_a_new_virtualenv() {
    let lab = Lab::up(1, &[]);
    let wheels = lab.host_dir("lab1", "opt").join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    build_wheel(&wheels, "1.0");
    build_wheel(&wheels, "2.0");
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  vars:
    local: "--no-index --find-links /opt/wheels"
  tasks:
    - pip: {name: mixop-demo, version: "1.0", virtualenv: /opt/venv, virtualenv_command: python3 -m venv, extra_args: "{{ local }}"}
      register: r
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
"#,
    );
    let version = |lab: &Lab| {
        lab.exec(
            "lab1",
            "/opt/venv/bin/python -c 'import mixop_demo; print(mixop_demo.VERSION)' 2>&1",
        )
    };
    let first = lab.run(&w, &pb, &[]);
    first.ok();
    assert_eq!(version(&lab), "1.0\n");
    let r: serde_json::Value = serde_json::from_str(&w.read("r.json")).unwrap();
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["virtualenv"], "/opt/venv", "{r}");
    assert_eq!(r["cmd"][0], "/opt/venv/bin/pip3", "{r}");
    let again = lab.run(&w, &pb, &[]);
    again.ok();
    let r: serde_json::Value = serde_json::from_str(&w.read("r.json")).unwrap();
    assert_eq!(r["changed"], false, "{r}");

    // Check mode compares `pip list` with the request; then latest, then absent.
    let pb2 = w.write(
        "pb2.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - pip: {name: "mixop-demo>=1.0", virtualenv: /opt/venv, extra_args: "--no-index --find-links /opt/wheels"}
    - pip: {name: "mixop-demo==2.0", virtualenv: /opt/venv}
      check_mode: true
    - pip: {name: mixop-demo, state: latest, virtualenv: /opt/venv, extra_args: "--no-index --find-links /opt/wheels"}
    - pip: {name: mixop-demo, state: absent, virtualenv: /opt/venv}
    - pip: {name: mixop-demo, state: absent, virtualenv: /opt/venv}
"#,
    );
    let r = lab.run(&w, &pb2, &[]);
    r.ok();
    assert_eq!(r.recap("lab1").changed, 3, "{}", r.all());
    assert!(
        version(&lab).contains("No module named"),
        "{}",
        version(&lab)
    );
}
