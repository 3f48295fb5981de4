//! `ansible-inventory --list` and `--graph` output.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{Group, Inventory};
use crate::diag::{Diag, Result};
use crate::value::merge;

pub(super) fn list_json(inv: &Inventory) -> Value {
    let available = inv.group_hosts("all");
    let available_set: HashSet<&str> = available.iter().map(String::as_str).collect();
    let mut out = Map::new();

    let mut hostvars = Map::new();
    for host in &available {
        let vars = inv.host_vars(host);
        if !vars.is_empty() {
            hostvars.insert(host.clone(), sorted(Value::Object(vars)));
        }
    }
    let mut meta = Map::new();
    meta.insert("hostvars".into(), sorted(Value::Object(hostvars)));
    meta.insert("profile".into(), Value::from("inventory_legacy"));
    out.insert("_meta".into(), Value::Object(meta));

    // Every group hangs below `all`, so listing each one flat is what Ansible's recursive walk
    // produces; groups without hosts or children are left out, like Ansible's.
    for group in inv.groups.values() {
        let mut entry = Map::new();
        if group.name != "all" {
            let hosts: Vec<Value> = group
                .hosts
                .iter()
                .filter(|h| available_set.contains(h.as_str()))
                .map(|h| Value::from(h.as_str()))
                .collect();
            if !hosts.is_empty() {
                entry.insert("hosts".into(), Value::Array(hosts));
            }
        }
        if !group.children.is_empty() {
            let children = group.children.iter().map(|c| Value::from(c.as_str()));
            entry.insert("children".into(), Value::Array(children.collect()));
        }
        if !entry.is_empty() {
            out.insert(group.name.clone(), sorted(Value::Object(entry)));
        }
    }
    sorted(Value::Object(out))
}

/// Keys sorted recursively, as Python's `json.dumps(sort_keys=True)` prints them.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

enum Work<'a> {
    Group(&'a Group, usize),
    Line(String),
}

/// `ansible-inventory --graph`: child groups first, then the group's own hosts (not for `all`),
/// then with `--vars` the group's variables; `{name = value}` lines use Python's `str()`.
pub(super) fn graph(inv: &Inventory, group: Option<&str>, with_vars: bool) -> Result<String> {
    let start = group.unwrap_or("all");
    let Some(root) = inv.groups.get(start) else {
        return Err(
            Diag::usage(format!("`{start}` is not a group in the inventory"))
                .hint("`--graph` takes a group name, not a pattern"),
        );
    };
    let mut out = String::new();
    // An explicit stack: group trees can be deeper than the call stack should go.
    let mut stack = vec![Work::Group(root, 0)];
    while let Some(work) = stack.pop() {
        let (group, depth) = match work {
            Work::Line(line) => {
                out.push_str(&line);
                out.push('\n');
                continue;
            }
            Work::Group(g, d) => (g, d),
        };
        out.push_str(&graph_name(&format!("@{}:", group.name), depth));
        out.push('\n');
        let mut next = Vec::new();
        for kid in &group.children {
            if let Some(g) = inv.groups.get(kid) {
                next.push(Work::Group(g, depth + 1));
            }
        }
        if group.name != "all" {
            for host in &group.hosts {
                next.push(Work::Line(graph_name(host, depth + 1)));
                if with_vars {
                    for line in var_lines(&inv.host_vars(host), depth + 2) {
                        next.push(Work::Line(line));
                    }
                }
            }
        }
        if with_vars {
            for line in var_lines(&group_vars(group), depth + 1) {
                next.push(Work::Line(line));
            }
        }
        stack.extend(next.into_iter().rev());
    }
    Ok(out)
}

/// What `ansible-inventory` shows as a group's variables: inventory-file vars, then its
/// `group_vars/` files, plus a non-default priority.
fn group_vars(group: &Group) -> Map<String, Value> {
    let mut vars = group.vars.clone();
    for (_, file_vars) in &group.file_vars {
        merge(&mut vars, file_vars, false);
    }
    if group.priority != 1 {
        vars.insert("ansible_group_priority".into(), Value::from(group.priority));
    }
    vars
}

fn var_lines(vars: &Map<String, Value>, depth: usize) -> Vec<String> {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|k| graph_name(&format!("{{{k} = {}}}", py_str(&vars[k])), depth))
        .collect()
}

fn graph_name(name: &str, depth: usize) -> String {
    if depth == 0 {
        name.to_string()
    } else {
        format!("{}--{name}", "  |".repeat(depth))
    }
}

/// Python's `str()` of a JSON-like value.
pub(super) fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a JSON-like value (the one formatter, shared with templates).
pub(super) fn py_repr(v: &Value) -> String {
    crate::template::pyfmt::py_repr_json(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_repr() {
        let v = json!({"a": 1, "b'q": [true, null, 1.5, "x\"y", "it's"]});
        assert_eq!(
            py_str(&v),
            r#"{'a': 1, "b'q": [True, None, 1.5, 'x"y', "it's"]}"#
        );
        assert_eq!(py_str(&json!(1e20)), "1e+20");
        assert_eq!(py_str(&json!(0.00001)), "1e-05");
        assert_eq!(py_str(&json!(3.0)), "3.0");
        assert_eq!(py_str(&json!("multi\nline")), "multi\nline");
        assert_eq!(py_repr(&json!("a\\b\n")), r"'a\\b\n'");
        assert_eq!(py_repr(&json!({})), "{}");
        assert_eq!(py_repr(&json!([])), "[]");
        assert_eq!(py_repr(&json!("\u{a0}\u{85}\u{7f}")), r"'\xa0\x85\x7f'");
    }
}
