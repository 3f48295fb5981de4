//! Differential tests: mixop's inventory against ansible-core 2.19 (the oracle), on the
//! inventories under tests/fixtures/inventory/.
//!
//! Compared: `ansible-inventory --list` (hostvars and group structure, as JSON),
//! `ansible-inventory --graph [GROUP] [--vars]` (text), `ansible PATTERN --list-hosts` (hosts
//! and their order) and the `group_names`/`groups` magic variables (through `ansible -m debug`).
//!
//! The fixtures keep at most one group with child groups per level below each pattern's
//! groups: deeper than that, Ansible's host order depends on Python's set iteration order.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use mixop::inventory::Inventory;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test virtualenv made by scripts/setup.sh (or `MIXOP_VENV`). Missing means failure, not a
/// skip: a differential test that silently does not run proves nothing.
fn venv() -> PathBuf {
    let v = std::env::var_os("MIXOP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    assert!(
        v.join("bin/ansible-inventory").exists(),
        "the test virtualenv {} (with ansible-core) is missing: run scripts/setup.sh, or set MIXOP_VENV",
        v.display()
    );
    v
}

fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures/inventory").join(rel)
}

/// Runs Ansible's tools in a scratch directory of their own: no ansible.cfg, ~/.ansible or
/// playbook-side group_vars from the caller's environment can leak in.
struct Oracle {
    scratch: tempfile::TempDir,
    venv: PathBuf,
}

impl Oracle {
    fn new() -> Oracle {
        let venv = venv();
        let scratch = tempfile::tempdir().expect("tempdir");
        std::fs::write(scratch.path().join("ansible.cfg"), "").expect("write ansible.cfg");
        Oracle { scratch, venv }
    }

    fn run(&self, tool: &str, args: &[OsString]) -> String {
        let dir = self.scratch.path();
        let out = Command::new(self.venv.join("bin").join(tool))
            .args(args)
            .current_dir(dir)
            .env("ANSIBLE_HOME", dir.join("ansible-home"))
            .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
            .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
            .env("ANSIBLE_DEPRECATION_WARNINGS", "False")
            .env("ANSIBLE_LOCALHOST_WARNING", "False")
            .env("ANSIBLE_HOST_PATTERN_MISMATCH", "ignore")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `mixop inventory -i ... REST`.
fn mixop_inventory(args: &[OsString]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mixop"))
        .arg("inventory")
        .args(args)
        .output()
        .expect("run mixop");
    assert!(
        out.status.success(),
        "mixop inventory {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn args(sources: &[PathBuf], rest: &[&str]) -> Vec<OsString> {
    let mut v = Vec::new();
    for s in sources {
        v.push(OsString::from("-i"));
        v.push(s.clone().into_os_string());
    }
    v.extend(rest.iter().map(OsString::from));
    v
}

/// Hosts printed by `ansible PATTERN --list-hosts`.
fn listed_hosts(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.trim_start().starts_with("hosts ("))
        .skip(1)
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

struct Case<'a> {
    sources: Vec<PathBuf>,
    patterns: &'a [&'a str],
    graph_groups: &'a [&'a str],
}

fn check(case: Case) {
    let oracle = Oracle::new();
    let sources = &case.sources;

    // --list: the whole JSON (hostvars, every group's hosts and children).
    let want: Value =
        serde_json::from_str(&oracle.run("ansible-inventory", &args(sources, &["--list"])))
            .expect("ansible-inventory --list JSON");
    let got: Value = serde_json::from_str(&mixop_inventory(&args(sources, &["--list"])))
        .expect("mixop inventory --list JSON");
    for host in want["_meta"]["hostvars"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
    {
        assert_eq!(
            got["_meta"]["hostvars"][host], want["_meta"]["hostvars"][host],
            "hostvars of {host} differ"
        );
    }
    assert_eq!(got, want, "--list differs");

    // --graph, whole and from groups, with and without variables: same text.
    for group in std::iter::once(None).chain(case.graph_groups.iter().map(Some)) {
        for vars in [false, true] {
            let mut rest = vec!["--graph"];
            rest.extend(group.copied());
            if vars {
                rest.push("--vars");
            }
            let want = oracle.run("ansible-inventory", &args(sources, &rest));
            let got = mixop_inventory(&args(sources, &rest));
            assert_eq!(got, want, "--graph {group:?} (vars: {vars}) differs");
        }
    }

    // Host patterns: same hosts, same order.
    let inv = Inventory::load(sources).unwrap_or_else(|e| panic!("{e}"));
    for pattern in case.patterns {
        let want = listed_hosts(&oracle.run("ansible", &args(sources, &[pattern, "--list-hosts"])));
        let got = inv
            .select(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(got, want, "pattern `{pattern}`");
    }

    // Magic variables, for every host and the implicit localhost.
    let out = oracle.run(
        "ansible",
        &args(
            sources,
            &[
                "all:localhost",
                "-o",
                "-m",
                "debug",
                "-a",
                "msg={{ {'group_names': group_names, 'groups': groups} | to_json }}",
            ],
        ),
    );
    let mut inv = inv;
    inv.ensure_implicit_localhost();
    let mut seen = 0;
    for line in out.lines() {
        let Some((host, json)) = line.split_once(" | SUCCESS => ") else {
            continue;
        };
        let result: Value = serde_json::from_str(json).expect("debug result JSON");
        let msg: Value =
            serde_json::from_str(result["msg"].as_str().expect("msg")).expect("msg JSON");
        assert_eq!(
            serde_json::to_value(inv.group_names(host)).unwrap(),
            msg["group_names"],
            "group_names of {host}"
        );
        let groups = inv.groups_var();
        let ours: Vec<&String> = groups.keys().collect();
        let theirs: Vec<&String> = msg["groups"].as_object().expect("groups").keys().collect();
        assert_eq!(ours, theirs, "order of `groups`");
        assert_eq!(
            Value::Object(groups.clone()),
            msg["groups"],
            "groups (seen from {host})"
        );
        seen += 1;
    }
    assert_eq!(seen, inv.hosts.len(), "one debug result per host:\n{out}");
}

#[test]
fn lab_inventory_matches_ansible() {
    check(Case {
        sources: vec![fixture("lab/lab.yml")],
        patterns: &[
            "all",
            "*",
            "linux",
            "windows",
            "linux:windows",
            "windows:linux",
            "windows,k3s_server",
            "linux:&windows",
            "linux:!windows",
            "!windows",
            "!windows:&linux:edge",
            "&linux",
            "k3s_*",
            "agent*",
            "*.lab",
            "win0?",
            "agent[!1]",
            "~agent[12]",
            "~(srv|win)",
            "~gent",
            "k3s_agents[0]",
            "k3s_agents[1:]",
            "k3s_agents[-1]",
            "k3s_agents[1:2]",
            "agent[1:2]",
            "win[01:02]",
            "monitoring:edge",
            "bastion",
            "agent9.lab",
            "ungrouped",
            "localhost",
            "all:localhost",
            "all:!edge:&linux",
            "nothing",
            "nothing:bastion",
        ],
        graph_groups: &["linux", "k3s_agents", "edge"],
    });
}

#[test]
fn group_priority_matches_ansible() {
    check(Case {
        sources: vec![fixture("priority/inv.yml")],
        patterns: &["all", "mid:deep", "deep", "h*:!zeta"],
        graph_groups: &["deep"],
    });
}

#[test]
fn directory_source_matches_ansible() {
    check(Case {
        sources: vec![fixture("dirsrc")],
        patterns: &["all", "web", "web:db:cache", "web1"],
        graph_groups: &[],
    });
}

#[test]
fn several_sources_match_ansible() {
    check(Case {
        sources: vec![fixture("multi/one/inv.yml"), fixture("multi/two/inv.yml")],
        patterns: &["all", "web", "db:web"],
        graph_groups: &["web"],
    });
}

/// The fixture files are where the test expects them (a moved fixture must not make every
/// comparison vacuous).
#[test]
fn fixtures_are_not_empty() {
    for f in [
        "lab/lab.yml",
        "priority/inv.yml",
        "dirsrc/01-base.yml",
        "multi/two/inv.yml",
        "ini/basic/hosts",
        "ini/withvars/inv.ini",
        "ini/dir/02-more.ini",
    ] {
        let p: &Path = &fixture(f);
        assert!(p.is_file(), "{} is missing", p.display());
    }
    let inv = Inventory::load(&[fixture("lab/lab.yml")]).expect("lab loads");
    assert_eq!(inv.hosts.len(), 10);
}

#[test]
fn ini_inventory_matches_ansible() {
    check(Case {
        sources: vec![fixture("ini/basic/hosts")],
        patterns: &[
            "all",
            "web",
            "linux",
            "app",
            "edge:monitoring",
            "linux:&monitoring",
            "linux:!db",
            "ungrouped",
            "web0*",
            "~db-[ab]",
            "web[1:2]",
            "shared",
        ],
        graph_groups: &["linux", "app"],
    });
}

#[test]
fn ini_inventory_with_group_and_host_vars_matches_ansible() {
    check(Case {
        sources: vec![fixture("ini/withvars/inv.ini")],
        patterns: &[
            "all",
            "k3s_cluster",
            "k3s_agents[0]",
            "k3s_server:k3s_agents",
        ],
        graph_groups: &["k3s_cluster"],
    });
}

#[test]
fn directory_of_yaml_and_ini_files_matches_ansible() {
    check(Case {
        sources: vec![fixture("ini/dir")],
        patterns: &["all", "web", "db"],
        graph_groups: &[],
    });
}

#[test]
fn ini_and_yaml_sources_merge_like_ansible() {
    check(Case {
        sources: vec![fixture("ini/basic/hosts"), fixture("lab/lab.yml")],
        patterns: &["all", "linux", "web:windows"],
        graph_groups: &["linux"],
    });
}

/// INI inventories Ansible refuses are refused by mixop too, with file:line and exit code 3
/// (Ansible only warns and goes on with an empty inventory unless told otherwise, so the
/// oracle runs with `ANSIBLE_INVENTORY_UNPARSED_FAILED`).
#[test]
fn bad_ini_inventories_are_refused_with_their_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[a:children]\nb\n[b:children]\na\n",
            ":4:1:",
            "group cycle: a -> b -> a",
        ),
        (
            "[a]\nh1 x\n",
            ":2:1:",
            "expected `key=value` after the host name, found `x`",
        ),
        (
            "[a:children]\nnope\n[a]\n",
            ":2:1:",
            "names group `nope`, which is not defined",
        ),
        (
            "# c\n[a:vars]\nx=1\n",
            ":2:1:",
            "section [a:vars] is for group `a`",
        ),
        ("[a]\nh1 x='open\n", ":2:1:", "no closing quotation"),
        ("[a]\n[a:bogus]\n", ":2:1:", "unknown type `bogus`"),
        ("[a]\n[a b]\n", ":2:1:", "invalid section `[a b]`"),
        (
            "[a:vars]\nnovalue\n[a]\n",
            ":2:1:",
            "expected `key = value`, found `novalue`",
        ),
        ("[a]\nweb:\n", ":2:1:", "host `web:` ends with `:`"),
    ];
    let oracle = Oracle::new();
    for (text, at, message) in cases {
        let path = oracle.scratch.path().join("bad-inventory");
        std::fs::write(&path, text).unwrap();
        let ansible = Command::new(oracle.venv.join("bin/ansible-inventory"))
            .arg("-i")
            .arg(&path)
            .arg("--list")
            .current_dir(oracle.scratch.path())
            .env("ANSIBLE_CONFIG", oracle.scratch.path().join("ansible.cfg"))
            .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
            .output()
            .expect("run ansible-inventory");
        assert!(!ansible.status.success(), "ansible accepts {text:?}");
        let out = Command::new(env!("CARGO_BIN_EXE_mixop"))
            .args(["inventory", "--list", "-i"])
            .arg(&path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run mixop");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{text:?}: {stderr}");
        let want = format!("{}{at} ", path.display());
        assert!(
            stderr.contains(&want) && stderr.contains(message),
            "{text:?}: want `{want}` and `{message}` in:\n{stderr}"
        );
    }
}
