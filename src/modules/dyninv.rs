//! `add_host` and `group_by`: controller modules whose results ask the engine to change the
//! in-memory inventory (the `add_host` / `add_group` keys of ansible-core's action plugins,
//! applied by `Engine::change_inventory`).

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::ParamType::*;
use super::{
    Args, FreeForm, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, outcome, p, req,
};
use crate::value::to_text;

const BUILTIN: &[&str] = &["ansible.builtin"];

/// The arguments that are not host variables.
const ADD_HOST_PARAMS: &[super::Param] = &[
    alias(req("name", Str), &["host", "hostname"]),
    alias(p("groups", List), &["group", "groupname"]),
];

static ADD_HOST_DEF: ModuleDef = ModuleDef {
    name: "add_host",
    namespaces: BUILTIN,
    params: ADD_HOST_PARAMS,
    free_form: FreeForm::KeyValue,
    // Every other argument is a variable of the new host.
    open_args: true,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct AddHost;

#[async_trait]
impl Module for AddHost {
    fn def(&self) -> &'static ModuleDef {
        &ADD_HOST_DEF
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let (name, groups, vars) = add_host_args(args).map_err(super::ModError::msg)?;
        // `changed` is decided when the engine applies it (new host, group or variable).
        let mut r = outcome(false);
        r.insert(
            "add_host".into(),
            serde_json::json!({ "host_name": name, "groups": groups, "host_vars": vars }),
        );
        Ok(r)
    }
}

/// Splits add_host's open arguments into the host name (a `host:port` name sets
/// `ansible_ssh_port`), its groups and its variables, as ansible-core's action does.
/// add_host's host name, groups and host variables.
type NewHost = (String, Vec<String>, Map<String, Value>);

fn add_host_args(mut args: Args) -> Result<NewHost, String> {
    let name = ["name", "hostname", "host"]
        .iter()
        .find_map(|k| args.get(*k).filter(|v| !v.is_null()).map(to_text))
        .ok_or("add_host needs `name` (or `host`, `hostname`)")?;
    let groups = match ["groupname", "groups", "group"]
        .iter()
        .find_map(|k| args.get(*k).filter(|v| !v.is_null()))
    {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().map(to_text).collect(),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(other) => return Err(format!("add_host: groups must be a list, got {other}")),
    };
    let mut seen: Vec<String> = Vec::new();
    for g in groups {
        let g = g.trim().to_string();
        if !g.is_empty() && !seen.contains(&g) {
            seen.push(g);
        }
    }
    let (name, port) = split_port(&name);
    if let Some(port) = port {
        args.insert("ansible_ssh_port".into(), port.into());
    }
    for k in ["name", "hostname", "host", "groupname", "groups", "group"] {
        args.remove(k);
    }
    Ok((name, seen, args))
}

/// `web1:2222` → (`web1`, 2222); an IPv6 address or a bare name has no port.
fn split_port(name: &str) -> (String, Option<u64>) {
    if let Some(rest) = name.strip_prefix('[')
        && let Some((addr, port)) = rest.split_once("]:")
        && let Ok(p) = port.parse()
    {
        return (addr.to_string(), Some(p));
    }
    match name.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(p) => (host.to_string(), Some(p)),
            Err(_) => (name.to_string(), None),
        },
        _ => (name.to_string(), None),
    }
}

static GROUP_BY_DEF: ModuleDef = ModuleDef {
    name: "group_by",
    namespaces: BUILTIN,
    params: &[req("key", Str), p("parents", List)],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct GroupBy;

#[async_trait]
impl Module for GroupBy {
    fn def(&self) -> &'static ModuleDef {
        &GROUP_BY_DEF
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        // Spaces are not allowed in group names; Ansible turns them into dashes.
        let clean = |s: String| s.replace(' ', "-");
        let key = clean(args.get("key").map(to_text).unwrap_or_default());
        let parents: Vec<String> = match args.get("parents") {
            Some(Value::Array(a)) => a.iter().map(|v| clean(to_text(v))).collect(),
            _ => vec!["all".into()],
        };
        let mut r = outcome(false);
        r.insert("add_group".into(), key.into());
        r.insert("parent_groups".into(), parents.into());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_arguments() {
        let args: Args = serde_json::from_value(serde_json::json!({
            "hostname": "web1:2222", "groups": "a, b,a", "ansible_connection": "local", "x": 1
        }))
        .unwrap();
        let (name, groups, vars) = add_host_args(args).unwrap();
        assert_eq!(name, "web1");
        assert_eq!(groups, vec!["a", "b"]);
        assert_eq!(vars["ansible_ssh_port"], 2222);
        assert_eq!(vars["x"], 1);
        assert!(!vars.contains_key("groups"));
        assert_eq!(split_port("fe80::1"), ("fe80::1".into(), None));
        assert_eq!(split_port("[fe80::1]:22"), ("fe80::1".into(), Some(22)));
    }
}
