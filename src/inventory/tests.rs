use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

fn inv(text: &str) -> Inventory {
    match Inventory::from_yaml_str("inv.yml", text) {
        Ok(inv) => inv,
        Err(e) => panic!("{e}"),
    }
}

fn err(text: &str) -> String {
    match Inventory::from_yaml_str("inv.yml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => format!("{e} [hint: {}]", e.hint.clone().unwrap_or_default()),
    }
}

fn sel(inv: &Inventory, pattern: &str) -> Vec<String> {
    match inv.select(pattern) {
        Ok(hosts) => hosts,
        Err(e) => panic!("{pattern}: {e}"),
    }
}

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

const LAB: &str = "\
all:
  vars:
    level: all
  hosts:
    bastion:
  children:
    linux:
      vars:
        level: linux
      children:
        k3s_server:
          hosts:
            srv1:
              ansible_host: 10.0.0.1
        k3s_agents:
          hosts:
            agent1:
            agent2:
    windows:
      vars:
        level: windows
      hosts:
        win1:
        win2:
        agent2:
";

// ---------------------------------------------------------------- structure

#[test]
fn structure_follows_ansible() {
    let inv = inv(LAB);
    let hosts: Vec<&str> = inv.hosts.keys().map(String::as_str).collect();
    assert_eq!(
        hosts,
        ["bastion", "srv1", "agent1", "agent2", "win1", "win2"]
    );
    assert_eq!(
        inv.groups["all"].children,
        ["ungrouped", "linux", "windows"]
    );
    assert_eq!(inv.groups["ungrouped"].hosts, ["bastion"]);
    assert_eq!(inv.groups["linux"].children, ["k3s_server", "k3s_agents"]);
    assert_eq!(inv.groups["k3s_agents"].depth, 2);
    assert_eq!(inv.groups["windows"].depth, 1);
    assert_eq!(
        inv.group_names("agent2"),
        ["k3s_agents", "linux", "windows"]
    );
    assert_eq!(inv.group_names("bastion"), ["ungrouped"]);
    assert_eq!(inv.host_vars("srv1")["ansible_host"], json!("10.0.0.1"));
    let groups = inv.groups_var();
    assert_eq!(
        groups["all"],
        json!(["bastion", "win1", "win2", "agent2", "srv1", "agent1"])
    );
    assert_eq!(groups["linux"], json!(["srv1", "agent1", "agent2"]));
    assert_eq!(groups["ungrouped"], json!(["bastion"]));
}

#[test]
fn top_level_groups_join_all_and_definitions_merge() {
    let inv = inv("\
web:
  hosts:
    w1: {a: 1}
all:
  children:
    db:
      hosts:
        d1:
web2:
  children:
    web:
      hosts:
        w1: {b: 2}
        w2:
");
    assert_eq!(inv.groups["all"].children, ["ungrouped", "db", "web2"]);
    assert_eq!(inv.groups["web"].parents, ["web2"]);
    assert_eq!(inv.groups["web"].hosts, ["w1", "w2"]);
    assert_eq!(inv.groups["web"].depth, 2);
    assert_eq!(
        inv.hosts["w1"].vars,
        *json!({"a": 1, "b": 2}).as_object().unwrap()
    );
}

#[test]
fn host_shorthands_ranges_and_ports() {
    let inv = inv("\
all:
  children:
    web:
      hosts: single
    lab:
      hosts:
        lab[01:03]:
          role: lab
        db-[a:c].example.com:2222:
        n[1:7:3]:
    other:
      children: web
");
    let hosts: Vec<&str> = inv.hosts.keys().map(String::as_str).collect();
    assert_eq!(
        hosts,
        [
            "single",
            "lab01",
            "lab02",
            "lab03",
            "db-a.example.com",
            "db-b.example.com",
            "db-c.example.com",
            "n1",
            "n4",
            "n7"
        ]
    );
    assert_eq!(inv.hosts["lab02"].vars["role"], json!("lab"));
    assert_eq!(
        inv.hosts["db-b.example.com"].vars["ansible_port"],
        json!(2222)
    );
    assert_eq!(inv.groups["web"].parents, ["all", "other"]);
}

// ---------------------------------------------------------------- patterns

#[test]
fn patterns_every_operator() {
    let inv = inv(LAB);
    assert_eq!(sel(&inv, "all"), inv.group_hosts("all"));
    assert_eq!(sel(&inv, "*"), inv.group_hosts("all"));
    assert_eq!(sel(&inv, "win1"), ["win1"]);
    assert_eq!(sel(&inv, "windows"), ["win1", "win2", "agent2"]);
    // Union keeps term order and drops duplicates.
    assert_eq!(
        sel(&inv, "windows:k3s_agents"),
        ["win1", "win2", "agent2", "agent1"]
    );
    assert_eq!(
        sel(&inv, "k3s_agents,windows"),
        ["agent1", "agent2", "win1", "win2"]
    );
    assert_eq!(sel(&inv, "linux:&windows"), ["agent2"]);
    assert_eq!(sel(&inv, "linux:!windows"), ["srv1", "agent1"]);
    // Exclusions and intersections apply after every union term.
    assert_eq!(sel(&inv, "!agent1:linux"), ["srv1", "agent2"]);
    assert_eq!(sel(&inv, "&windows:linux"), ["agent2"]);
    assert_eq!(
        sel(&inv, "linux:windows:!k3s_agents:&all"),
        ["srv1", "win1", "win2"]
    );
    // Only exclusions: start from all.
    assert_eq!(sel(&inv, "!linux"), ["bastion", "win1", "win2"]);
    assert_eq!(sel(&inv, "nothing"), Vec::<String>::new());
    assert_eq!(sel(&inv, "windows:!windows"), Vec::<String>::new());
    assert_eq!(sel(&inv, "ungrouped"), ["bastion"]);
}

#[test]
fn patterns_globs_regex_and_subscripts() {
    let inv = inv(LAB);
    // A glob matches group names (all their hosts) and host names.
    assert_eq!(sel(&inv, "k3s_*"), ["srv1", "agent1", "agent2"]);
    assert_eq!(sel(&inv, "win?"), ["win1", "win2"]);
    assert_eq!(sel(&inv, "agent[!1]"), ["agent2"]);
    assert_eq!(sel(&inv, "agent[a12]"), ["agent1", "agent2"]);
    // `[12]` after a name is a subscript, as in Ansible: the 13th host of "agent" (none).
    assert_eq!(sel(&inv, "agent[12]"), Vec::<String>::new());
    assert_eq!(sel(&inv, "*2"), ["agent2", "win2"]);
    // `~` is a regex anchored at the start only (Python's re.match).
    assert_eq!(sel(&inv, "~agent\\d"), ["agent1", "agent2"]);
    assert_eq!(sel(&inv, "~(srv|win)1"), ["srv1", "win1"]);
    assert_eq!(sel(&inv, "~gent"), Vec::<String>::new());
    // Subscripts over a group's hosts.
    assert_eq!(sel(&inv, "windows[0]"), ["win1"]);
    assert_eq!(sel(&inv, "windows[-1]"), ["agent2"]);
    assert_eq!(sel(&inv, "windows[1:2]"), ["win2", "agent2"]);
    assert_eq!(sel(&inv, "windows[1:]"), ["win2", "agent2"]);
    assert_eq!(sel(&inv, "windows[0]:linux[0]"), ["win1", "srv1"]);
    let e = inv.select("windows[7]").unwrap_err().to_string();
    assert!(
        e.contains("no hosts matched the subscripted pattern `windows[7]`"),
        "{e}"
    );
    let e = inv.select("~agent(").unwrap_err().to_string();
    assert!(e.starts_with("invalid host pattern `~agent(`"), "{e}");
}

#[test]
fn implicit_localhost() {
    let mut inv = inv("all:\n  vars: {shared: 1}\n  hosts:\n    h1:\n");
    assert_eq!(sel(&inv, "localhost"), ["localhost"]);
    assert_eq!(sel(&inv, "h1:localhost"), ["h1", "localhost"]);
    assert_eq!(
        inv.host_vars("localhost")["ansible_connection"],
        json!("local")
    );
    inv.ensure_implicit_localhost();
    assert!(inv.hosts["localhost"].implicit);
    assert_eq!(sel(&inv, "all"), ["h1"]);
    assert_eq!(sel(&inv, "*"), ["h1"]);
    assert_eq!(sel(&inv, "local*"), Vec::<String>::new());
    assert_eq!(sel(&inv, "localhost"), ["localhost"]);
    assert_eq!(sel(&inv, "all:localhost:!h1"), ["localhost"]);
    assert_eq!(inv.groups_var()["all"], json!(["h1"]));
    assert_eq!(inv.group_names("localhost"), Vec::<String>::new());
    assert_eq!(
        Value::Object(inv.host_vars("localhost")),
        json!({"shared": 1, "ansible_connection": "local"})
    );
    // An inventory that defines localhost uses its own.
    let inv2 = self::inv("all:\n  hosts:\n    localhost:\n      ansible_connection: ssh\n");
    assert_eq!(sel(&inv2, "all"), ["localhost"]);
    assert_eq!(
        inv2.host_vars("localhost")["ansible_connection"],
        json!("ssh")
    );
}

// ---------------------------------------------------------------- layering

#[test]
fn layering_three_levels_and_priority() {
    let inv = inv("\
all:
  vars: {a: all, b: all, c: all, d: all, p: all}
  children:
    top:
      vars: {a: top, b: top, c: top}
      children:
        mid:
          vars: {a: mid, b: mid}
          children:
            leaf:
              vars: {a: leaf}
              hosts:
                h1: {host_only: 1}
                h2: {a: host}
    zeta:
      vars: {d: zeta, p: zeta}
      hosts: {h1: }
    alpha:
      vars: {d: alpha, p: alpha, ansible_group_priority: 10}
      hosts: {h1: }
");
    let v = inv.host_vars("h1");
    assert_eq!(v["a"], json!("leaf"));
    assert_eq!(v["b"], json!("mid"));
    assert_eq!(v["c"], json!("top"));
    // Same depth: by priority, then name (zeta > alpha by name, but alpha has priority 10).
    assert_eq!(v["p"], json!("alpha"));
    assert_eq!(v["d"], json!("alpha"));
    assert_eq!(v["host_only"], json!(1));
    assert!(!v.contains_key("ansible_group_priority"));
    assert_eq!(inv.host_vars("h2")["a"], json!("host"));
    assert_eq!(inv.groups["alpha"].priority, 10);
}

#[test]
fn layering_same_depth_by_name() {
    let inv = inv("b:\n  vars: {x: b}\n  hosts: {h: }\na:\n  vars: {x: a}\n  hosts: {h: }\n");
    assert_eq!(inv.host_vars("h")["x"], json!("b"));
}

#[test]
fn group_vars_files_rank_above_inventory_vars() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let file = write(
        d,
        "lab.yml",
        "\
all:
  vars: {from: inv_all, x: inv_all}
  children:
    web:
      vars: {from: inv_web, y: inv_web, z: inv_web}
      hosts:
        w1: {h: inv_host, hv: inv_host}
",
    );
    write(d, "group_vars/all.yml", "from: gv_all\nx: gv_all\n");
    write(
        d,
        "group_vars/web/10-base.yml",
        "y: gv_web_10\nz: gv_web_10\n",
    );
    write(d, "group_vars/web/20-over.yaml", "z: gv_web_20\n");
    write(d, "group_vars/web/notes.txt", "z: ignored\n");
    write(d, "group_vars/web/.hidden.yml", "z: ignored\n");
    write(d, "host_vars/w1", "hv: file\n");
    let inv = Inventory::load(&[file]).unwrap();
    let v = inv.host_vars("w1");
    // Ansible: group_vars/all beats even a child group's inventory `vars:`.
    assert_eq!(v["from"], json!("gv_all"));
    assert_eq!(v["x"], json!("gv_all"));
    assert_eq!(v["y"], json!("gv_web_10"));
    assert_eq!(v["z"], json!("gv_web_20"));
    assert_eq!(v["h"], json!("inv_host"));
    assert_eq!(v["hv"], json!("file"));
    assert_eq!(inv.dir.as_deref(), Some(d));
}

#[test]
fn vars_file_name_precedence_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let file = write(d, "inv.yml", "web:\n  hosts: {w1: }\n");
    write(d, "group_vars/web.yml", "v: yml\n");
    write(d, "group_vars/web.json", "{\"v\": \"json\"}\n");
    let inv = Inventory::load(&[file]).unwrap();
    assert_eq!(inv.host_vars("w1")["v"], json!("yml"));
    assert!(
        inv.warnings
            .iter()
            .any(|w| w.contains("web.json is ignored")),
        "{:?}",
        inv.warnings
    );
}

#[test]
fn several_sources_and_playbook_vars() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = write(
        d,
        "a/inv.yml",
        "all:\n  vars: {src: a}\n  children:\n    web:\n      hosts:\n        w1: {k: a}\n",
    );
    write(d, "a/host_vars/w1.yml", "hv: a\norder: a\n");
    write(d, "a/group_vars/web.yml", "gw: a\ngorder: a\n");
    let b = write(
        d,
        "b/inv.yml",
        "all:\n  vars: {src: b}\n  children:\n    web:\n      hosts:\n        w1: {k: b}\n        w2:\n",
    );
    write(d, "b/group_vars/web.yml", "gorder: b\n");
    write(d, "b/host_vars/w1.yml", "order: b\n");
    write(d, "play/group_vars/web.yml", "gorder: play\n");
    write(d, "play/host_vars/w1.yml", "order: play\n");
    write(d, "play/host_vars/localhost.yml", "lh: play\n");
    let mut inv = Inventory::load(&[a.clone(), b]).unwrap();
    assert_eq!(inv.dir.as_deref(), Some(d.join("a").as_path()));
    assert_eq!(inv.hosts["w1"].source.as_deref(), Some(a.as_path()));
    let v = inv.host_vars("w1");
    assert_eq!(v["src"], json!("b"));
    assert_eq!(v["k"], json!("b"));
    assert_eq!(v["hv"], json!("a"));
    assert_eq!(v["order"], json!("b"));
    assert_eq!(v["gorder"], json!("b"));
    assert_eq!(v["gw"], json!("a"));
    assert_eq!(inv.groups["web"].hosts, ["w1", "w2"]);

    inv.load_vars_dirs(&d.join("play")).unwrap();
    let v = inv.host_vars("w1");
    assert_eq!(v["order"], json!("play"));
    assert_eq!(v["gorder"], json!("play"));
    // Reading the same directory again changes nothing.
    inv.load_vars_dirs(&d.join("play")).unwrap();
    assert_eq!(inv.vars_dirs.len(), 3);
    assert_eq!(inv.host_vars("localhost")["lh"], json!("play"));
    inv.ensure_implicit_localhost();
    assert_eq!(inv.hosts["localhost"].vars["lh"], json!("play"));
}

#[test]
fn directory_source() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "inv/20-web.yml", "web:\n  hosts: {w1: {v: 20}}\n");
    write(
        d,
        "inv/10-db.yaml",
        "db:\n  hosts: {d1: }\nweb:\n  hosts: {w1: {v: 10}}\n",
    );
    write(d, "inv/30-extra", "all:\n  hosts: {x1: }\n");
    write(
        d,
        "inv/sub/40.json",
        "{\"json_group\": {\"hosts\": {\"j1\": null}}}",
    );
    write(d, "inv/README.md", "# not an inventory\n");
    write(d, "inv/old.yml~", "broken: [\n");
    write(d, "inv/.hidden.yml", "broken: [\n");
    write(d, "inv/group_vars/web.yml", "gv: web\n");
    write(d, "inv/hosts.toml", "x = 1\n");
    let inv = Inventory::load(&[d.join("inv")]).unwrap();
    let hosts: Vec<&str> = inv.hosts.keys().map(String::as_str).collect();
    assert_eq!(hosts, ["d1", "w1", "x1", "j1"]);
    assert_eq!(inv.host_vars("w1")["v"], json!(20));
    assert_eq!(inv.host_vars("w1")["gv"], json!("web"));
    assert_eq!(inv.dir.as_deref(), Some(d.join("inv").as_path()));
    assert!(
        inv.warnings.iter().any(|w| w.contains("hosts.toml")),
        "{:?}",
        inv.warnings
    );
}

#[test]
fn host_list_source() {
    let inv = Inventory::load(&[PathBuf::from("web1,web2:2222,")]).unwrap();
    assert_eq!(sel(&inv, "ungrouped"), ["web1", "web2"]);
    assert_eq!(inv.host_vars("web2")["ansible_port"], json!(2222));
}

// ---------------------------------------------------------------- output

#[test]
fn list_json_shape() {
    let inv = inv(LAB);
    let v = inv.to_list_json();
    assert_eq!(
        v["all"],
        json!({"children": ["ungrouped", "linux", "windows"]})
    );
    assert_eq!(v["ungrouped"], json!({"hosts": ["bastion"]}));
    assert_eq!(
        v["linux"],
        json!({"children": ["k3s_server", "k3s_agents"]})
    );
    assert_eq!(v["windows"], json!({"hosts": ["win1", "win2", "agent2"]}));
    assert_eq!(
        v["_meta"]["hostvars"]["srv1"],
        json!({"ansible_host": "10.0.0.1", "level": "linux"})
    );
    assert_eq!(
        v["_meta"]["hostvars"]["agent2"]["level"],
        json!("windows"),
        "windows and linux have the same depth: by name, windows wins"
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "_meta",
            "all",
            "k3s_agents",
            "k3s_server",
            "linux",
            "ungrouped",
            "windows"
        ]
    );
    // Empty groups are left out of the listing but stay in `children`.
    let v = self::inv("all:\n  children:\n    empty:\n").to_list_json();
    assert_eq!(v["all"], json!({"children": ["ungrouped", "empty"]}));
    assert!(v.get("empty").is_none());
}

#[test]
fn graph_output() {
    let inv = inv(LAB);
    assert_eq!(
        inv.graph(None, false).unwrap(),
        "\
@all:
  |--@ungrouped:
  |  |--bastion
  |--@linux:
  |  |--@k3s_server:
  |  |  |--srv1
  |  |--@k3s_agents:
  |  |  |--agent1
  |  |  |--agent2
  |--@windows:
  |  |--win1
  |  |--win2
  |  |--agent2
"
    );
    assert_eq!(
        inv.graph(Some("k3s_server"), true).unwrap(),
        "\
@k3s_server:
  |--srv1
  |  |--{ansible_host = 10.0.0.1}
  |  |--{level = linux}
"
    );
    let e = inv.graph(Some("nope"), false).unwrap_err().to_string();
    assert_eq!(e, "`nope` is not a group in the inventory");
}

// ---------------------------------------------------------------- errors

#[test]
fn errors_point_at_the_input() {
    assert_eq!(
        err("all:\n  children:\n    web:\n      host:\n        w1:\n"),
        "inv.yml:4:7: unknown key `host` in group `web` [hint: did you mean `hosts`?]"
    );
    let e = err("all:\n  children:\n    web:\n      w1:\n");
    assert!(
        e.starts_with(
            "inv.yml:4:7: unknown key `w1` in group `web` [hint: a group may only contain"
        ),
        "{e}"
    );
    assert!(e.contains("put it under `hosts:`"), "{e}");
    assert_eq!(
        err("all:\n  children:\n    web: [a, b]\n"),
        "inv.yml:3:10: group `web` must be a mapping with `hosts`, `vars` or `children`, found a list [hint: ]"
    );
    assert!(err("all:\n  hosts:\n    - w1\n    - w2\n").starts_with(
        "inv.yml:3:5: `hosts` of group `all` must be a mapping of host names, found a list"
    ));
    assert!(err("all:\n  hosts:\n    w1:\n      - a\n").starts_with(
        "inv.yml:4:7: variables of host `w1` must be a mapping of names to values, found a list"
    ));
    assert!(
        err("all:\n  vars: [a]\n")
            .starts_with("inv.yml:2:9: `vars` of group `all` must be a mapping")
    );
    assert!(
        err("- a\n- b\n").starts_with(
            "inv.yml:1:1: an inventory must be a mapping of group names, found a list"
        )
    );
    assert!(
        err("all:\n  hosts:\n    10:\n")
            .starts_with("inv.yml:3:5: host name must be a string, found a number")
    );
    assert!(err("all:\n  hosts:\n    web[3:1]:\n").starts_with("inv.yml:3:5: host `web[3:1]`:"));
    assert!(
        err("plugin: aws_ec2\n")
            .starts_with("inv.yml:1:1: inventory plugins (`plugin:`) are not supported")
    );
    assert!(
        err("all:\n  children:\n    web:\n      vars:\n        ansible_group_priority: high\n")
            .starts_with("inv.yml:5:33: `ansible_group_priority` must be an integer")
    );
}

#[test]
fn cycles_are_named() {
    assert_eq!(
        err("a:\n  children:\n    b:\n      children:\n        a:\n"),
        "inv.yml:5:9: group cycle: a -> b -> a [hint: ]"
    );
    assert_eq!(
        err("a:\n  children:\n    b:\n      children:\n        c:\nc:\n  children:\n    a:\n"),
        "inv.yml:8:5: group cycle: a -> b -> c -> a [hint: ]"
    );
    assert_eq!(
        err("a:\n  children:\n    a:\n"),
        "inv.yml:3:5: group cycle: a -> a [hint: ]"
    );
    assert!(
        err("web:\n  children:\n    all:\n")
            .starts_with("inv.yml:3:5: `all` cannot be a child group")
    );
}

#[test]
fn file_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // INI files are read whatever their name (YAML first when the extension allows it).
    let ini = write(d, "hosts", "[web]\nweb1 ansible_host=1.2.3.4\n");
    let inv = Inventory::load(std::slice::from_ref(&ini)).unwrap();
    assert_eq!(inv.host_vars("web1")["ansible_host"], "1.2.3.4");
    let ini2 = write(d, "hosts.ini", "web1\n");
    assert!(Inventory::load(&[ini2]).unwrap().hosts.contains_key("web1"));
    let plain = write(d, "plain", "web1\nweb2\n");
    assert_eq!(Inventory::load(&[plain]).unwrap().hosts.len(), 2);
    // Neither YAML nor INI: the error of the format it looks like.
    let bad_ini = write(d, "bad.ini", "[web]\nweb1 novalue\n");
    let e = Inventory::load(std::slice::from_ref(&bad_ini))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}:2:1: expected `key=value` after the host name, found `novalue`",
            bad_ini.display()
        )
    );
    let list = write(d, "list.yml", "- web1\n- web2 x\n");
    let e = Inventory::load(&[list]).unwrap_err().to_string();
    assert!(
        e.contains("an inventory must be a mapping of group names, found a list"),
        "{e}"
    );

    let e = Inventory::load(&[d.join("missing.yml")]).unwrap_err();
    assert_eq!(e.kind, crate::diag::DiagKind::Input);
    assert!(e.to_string().contains("missing.yml`: no such file"), "{e}");

    let inv_file = write(d, "ok/inv.yml", "web:\n  hosts: {w1: }\n");
    write(
        d,
        "ok/group_vars/web.yml",
        "# comment\n- not\n- a mapping\n",
    );
    let e = Inventory::load(&[inv_file]).unwrap_err().to_string();
    let gv = d.join("ok/group_vars/web.yml");
    assert_eq!(
        e,
        format!(
            "{}:2:1: a variables file must be a mapping of variable names to values, found a list",
            gv.display()
        )
    );

    let bad_yaml = write(d, "bad/inv.yml", "all:\n  hosts: {w1: \n");
    let e = Inventory::load(std::slice::from_ref(&bad_yaml))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("{}:", bad_yaml.display())), "{e}");

    let empty = write(d, "empty/inv.yml", "");
    let inv = Inventory::load(&[empty]).unwrap();
    assert_eq!(inv.hosts.len(), 0);
    assert!(
        inv.warnings
            .iter()
            .any(|w| w.contains("empty inventory file"))
    );
}

#[test]
fn ini_lines_that_yaml_reads_as_text_are_ini() {
    let inv = inv("web1 ansible_host=10.0.0.1:22 n=5\n");
    assert_eq!(inv.host_vars("web1")["ansible_host"], "10.0.0.1:22");
    assert_eq!(inv.host_vars("web1")["n"], 5);
    assert_eq!(inv.groups["ungrouped"].hosts, ["web1"]);
    let e = err("web[3:1] x=1\n");
    assert!(
        e.starts_with("inv.yml:1:1: host `web[3:1]`: host range must have begin <= end"),
        "{e}"
    );
}

#[test]
fn large_ranges_load() {
    let inv = inv("big:\n  hosts:\n    n[00001:20000]:\n      v: 1\n");
    assert_eq!(inv.hosts.len(), 20000);
    assert_eq!(inv.groups["big"].hosts.len(), 20000);
    assert_eq!(inv.groups["big"].hosts[19999], "n20000");
    assert_eq!(sel(&inv, "big[-1]"), ["n20000"]);
    let e = err("big:\n  hosts:\n    n[1:200000]:\n");
    assert!(e.contains("more than 100000 hosts"), "{e}");
}

#[test]
fn group_key_hints() {
    for (typo, want) in [
        ("host", "hosts"),
        ("Hosts", "hosts"),
        ("var", "vars"),
        ("childs", "children"),
        ("child", "children"),
        ("chidlren", "children"),
    ] {
        let e = err(&format!("all:\n  {typo}:\n    x:\n"));
        assert!(
            e.ends_with(&format!("[hint: did you mean `{want}`?]")),
            "{typo}: {e}"
        );
    }
}

// ---------------------------------------------------------------- never panic

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn yamlish() -> impl Strategy<Value = String> {
        let atoms = prop::sample::select(vec![
            "all:",
            "children:",
            "hosts:",
            "vars:",
            "web:",
            "db:",
            "w1:",
            "w[1:3]:",
            "a:",
            "b:",
            "- x",
            "[a, b]",
            "{a: 1}",
            "null",
            "~",
            "ansible_group_priority: x",
            "ansible_group_priority: 3",
            "10:",
            "'q':",
            "&x",
            "*x",
            "<<: *x",
            "\"s\"",
            "1.5",
            ":",
            "---",
            "#c",
            "[",
            "]",
            "{",
            "h[a:c]:",
            "h[0:]:",
            "x:22:",
        ]);
        prop::collection::vec((0usize..8, atoms), 0..25).prop_map(|lines| {
            lines
                .into_iter()
                .map(|(indent, atom)| format!("{}{atom}\n", "  ".repeat(indent)))
                .collect()
        })
    }

    fn patternish() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "all",
                "*",
                "web",
                "db",
                "w1",
                "w*",
                "~w.",
                "~(",
                "!",
                "&",
                ":",
                ",",
                "[0]",
                "[1:]",
                "[-1]",
                "[",
                "]",
                "?",
                "localhost",
                "::1",
                "[!a]",
                "~^.*$",
                "a-",
                " ",
                "ungrouped",
                "[z-a]",
                "\\",
                "|",
                "&&",
                "~~",
            ]),
            0..10,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_inventories_never_panic(text in yamlish(), pattern in patternish()) {
            if let Ok(mut inv) = Inventory::from_yaml_str("fuzz.yml", &text) {
                inv.ensure_implicit_localhost();
                let _ = inv.select(&pattern);
                let _ = inv.to_list_json();
                let _ = inv.graph(None, true);
                for h in inv.hosts.keys() {
                    let _ = inv.host_vars(h);
                    let _ = inv.group_names(h);
                }
                // Reconciled inventories keep Ansible's invariants.
                prop_assert!(inv.groups["all"].children.iter().any(|c| c == "ungrouped"));
                for g in inv.groups.values() {
                    prop_assert!(g.name == "all" || !g.parents.is_empty(), "{} has no parent", g.name);
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}", pattern in "\\PC{0,40}") {
            let _ = Inventory::from_yaml_str("fuzz.yml", &text);
            let inv = inv(LAB);
            let _ = inv.select(&pattern);
        }
    }
}
