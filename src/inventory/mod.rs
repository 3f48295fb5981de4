//! Ansible inventories: YAML files (`all`/`children`/`hosts`/`vars`), `group_vars/` and
//! `host_vars/` beside them, host patterns, and variable layering.
//!
//! INTERFACE CONTRACT (used by the engine and the CLI; keep these signatures).

use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diag::{Diag, Result};

#[derive(Debug, Clone, Default)]
pub struct Host {
    pub name: String,
    /// The host's own variables (inventory entry, then host_vars/), not layered.
    pub vars: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Group {
    pub name: String,
    pub vars: Map<String, Value>,
    /// Direct child groups and hosts, in file order.
    pub children: Vec<String>,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Hosts in inventory order.
    pub hosts: IndexMap<String, Host>,
    /// Groups, always containing `all` and `ungrouped`.
    pub groups: IndexMap<String, Group>,
    /// Directory of the first inventory source (`inventory_dir`).
    pub dir: Option<PathBuf>,
}

impl Inventory {
    /// Loads and merges inventory sources (files or directories).
    pub fn load(paths: &[PathBuf]) -> Result<Inventory> {
        let _ = paths;
        Err(Diag::internal("inventory loading is not implemented yet"))
    }

    /// Hosts matching an Ansible host pattern (`all`, `a:b`, `a:&b`, `a:!b`, globs, `~regex`),
    /// in inventory order. `localhost` matches the implicit localhost when it is not in the
    /// inventory (see `ensure_implicit_localhost`).
    pub fn select(&self, pattern: &str) -> Result<Vec<String>> {
        let _ = pattern;
        Ok(Vec::new())
    }

    /// Adds Ansible's implicit `localhost` (connection local, not in `all`) if it is absent.
    pub fn ensure_implicit_localhost(&mut self) {}

    /// The host's variables layered all < parent group < child group < host.
    pub fn host_vars(&self, host: &str) -> Map<String, Value> {
        let _ = host;
        Map::new()
    }

    /// `group_names`: the host's groups (transitively), without `all`/`ungrouped`, sorted.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let _ = host;
        Vec::new()
    }

    /// The `groups` magic variable: every group to its hosts (transitively), incl. `all`.
    pub fn groups_var(&self) -> Map<String, Value> {
        Map::new()
    }

    /// `mixop inventory --list` (ansible-inventory's JSON shape).
    pub fn to_list_json(&self) -> Value {
        Value::Null
    }

    /// `mixop inventory --graph [GROUP] [--vars]`.
    pub fn graph(&self, group: Option<&str>, with_vars: bool) -> Result<String> {
        let _ = (group, with_vars);
        Ok(String::new())
    }
}
