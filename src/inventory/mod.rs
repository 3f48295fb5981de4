//! Ansible inventories: YAML files (`all`/`children`/`hosts`/`vars`), `group_vars/` and
//! `host_vars/` beside them, host patterns, and variable layering.
//!
//! INTERFACE CONTRACT (used by the engine and the CLI; keep these signatures).
//!
//! # Sources
//!
//! `-i` takes files, directories, or a comma-separated host list (`web1,web2,`), like Ansible.
//! A file is Ansible's YAML inventory or its INI inventory (see `ini.rs` for its value typing),
//! told apart as Ansible does: a file with a YAML extension (`.yml`, `.yaml`, `.json`) or none
//! is YAML when it parses as a YAML mapping, else INI; any other file is INI. A directory
//! is read like Ansible reads it: every entry in sorted order, recursing into subdirectories,
//! skipping hidden files, `group_vars/`, `host_vars/` and backup/doc extensions (`~`, `.orig`,
//! `.cfg`, `.retry`, `.bak`, `.swp`, `.md`, `.txt`, `.rst`, ...) and `.toml`. Inventory scripts
//! are refused with a message that says how to convert them. Several sources merge:
//! a group or host seen twice keeps its first position, gains the new members, and later
//! variables win key by key.
//!
//! # Variable layering
//!
//! [`Inventory::host_vars`] follows ansible-core 2.19 with its default
//! `VARIABLE_PRECEDENCE`; from lowest to highest:
//!
//! 1. the `all` group's variables from inventory files;
//! 2. every other group the host belongs to (directly or through `children`), from inventory
//!    files, in the order (depth, `ansible_group_priority`, name): parents before children
//!    (depth is the longest `children` path from `all`), then lower priority before higher
//!    (default 1), then by name. Later wins;
//! 3. `group_vars/all` files, from each inventory source's directory in `-i` order, then from
//!    the playbook's directory;
//! 4. `group_vars/GROUP` files for the other groups, same group order as 2., inventory
//!    directories first (all groups of one directory, then the next), then the playbook's;
//! 5. the host's own variables from inventory files;
//! 6. `host_vars/HOST` files beside the inventory sources, then beside the playbook.
//!
//! So a `group_vars/all.yml` file overrides a child group's `vars:` written in the inventory
//! file: that surprises people, but it is what Ansible does. Merging is "replace": a key set in
//! a higher layer replaces the lower value whole, dictionaries included (Ansible's default
//! `hash_behaviour`). `ansible_group_priority` is honoured only in inventory files (as in
//! Ansible; in `group_vars/` it is an ordinary variable).
//!
//! In `group_vars/` and `host_vars/` the first that exists of `NAME` (a file, or a directory of
//! files read recursively in sorted order, later files winning), `NAME.yml`, `NAME.yaml`,
//! `NAME.json` is read, exactly like Ansible; the others are ignored with a warning.
//!
//! # Host patterns
//!
//! See [`Inventory::select`].

mod dynamic;
mod ini;
mod load;
mod output;
mod pattern;
pub use pattern::fnmatch;
mod vars;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diag::{Loc, Result};

/// Host names that Ansible resolves to the implicit localhost when they are not in the
/// inventory.
pub const LOCALHOST_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

#[derive(Debug, Clone, Default)]
pub struct Host {
    pub name: String,
    /// The host's own variables (inventory entry, then host_vars/), not layered.
    pub vars: Map<String, Value>,
    /// Groups the host was put in directly, in the order it was added to them.
    pub groups: Vec<String>,
    /// Ansible's implicit localhost: usable by name, never part of `all` or `ungrouped`.
    pub implicit: bool,
    /// The inventory file the host was first found in (`inventory_file`).
    pub source: Option<PathBuf>,
    /// Where the host was first defined.
    pub loc: Option<Loc>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Variables from inventory files (`vars:`), without `ansible_group_priority`.
    pub vars: Map<String, Value>,
    /// Direct child groups and hosts, in file order.
    pub children: Vec<String>,
    pub hosts: Vec<String>,
    /// Direct parent groups.
    pub parents: Vec<String>,
    /// Longest `children` path from `all` (0 for `all`).
    pub depth: usize,
    /// `ansible_group_priority` (default 1).
    pub priority: i64,
    /// Variables from `group_vars/` files: (index into [`Inventory::vars_dirs`], variables).
    pub file_vars: Vec<(usize, Map<String, Value>)>,
    /// Where the group was first defined.
    pub loc: Option<Loc>,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            name: String::new(),
            vars: Map::new(),
            children: Vec::new(),
            hosts: Vec::new(),
            parents: Vec::new(),
            depth: 0,
            priority: 1,
            file_vars: Vec::new(),
            loc: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Hosts in inventory order.
    pub hosts: IndexMap<String, Host>,
    /// Groups, always containing `all` and `ungrouped`.
    pub groups: IndexMap<String, Group>,
    /// Directory of the first inventory source (`inventory_dir`).
    pub dir: Option<PathBuf>,
    /// Directories whose `group_vars/` and `host_vars/` were read: the inventory sources'
    /// first, then those added by [`Inventory::load_vars_dirs`].
    pub vars_dirs: Vec<PathBuf>,
    /// `host_vars/` of implicit-localhost names, kept until that host is created.
    pub implicit_vars: IndexMap<String, Map<String, Value>>,
    /// Things Ansible would warn about (ignored files, a host and a group with one name...).
    pub warnings: Vec<String>,
}

impl Inventory {
    /// An inventory with only `all` and `ungrouped`.
    pub fn empty() -> Inventory {
        let mut inv = Inventory::default();
        inv.add_group("all", None);
        inv.add_group("ungrouped", None);
        inv.groups["all"].children.push("ungrouped".into());
        inv.groups["ungrouped"].parents.push("all".into());
        inv.groups["ungrouped"].depth = 1;
        inv
    }

    /// Loads and merges inventory sources (files or directories).
    pub fn load(paths: &[PathBuf]) -> Result<Inventory> {
        let mut inv = Inventory::empty();
        for path in paths {
            inv.parse_source(path)?;
        }
        inv.reconcile();
        // Variable files after every source is parsed: inventory-file variables of every
        // source rank below every `host_vars/` file.
        for path in paths {
            if let Some(dir) = load::vars_base(path) {
                inv.load_vars_dirs(&dir)?;
            }
        }
        Ok(inv)
    }

    /// Parses one inventory text, YAML or INI told apart as for a file without extension (for
    /// tests and embedded inventories). `path` is only used in messages; `group_vars/` is not
    /// read.
    pub fn from_yaml_str(path: impl Into<PathBuf>, text: &str) -> Result<Inventory> {
        let mut inv = Inventory::empty();
        inv.parse_text(crate::diag::Source::new(path, text))?;
        inv.reconcile();
        Ok(inv)
    }

    /// Reads `group_vars/` and `host_vars/` in `dir` (the playbook's directory, for the engine),
    /// ranking above those of the inventory sources. A directory already read is skipped.
    pub fn load_vars_dirs(&mut self, dir: &Path) -> Result<()> {
        self.read_vars_dir(dir)
    }

    /// Hosts matching an Ansible host pattern, evaluated like ansible-core 2.19:
    ///
    /// - terms are separated by `,` (or, when there is no comma, by `:` outside `[...]`);
    /// - a term is a host name, a group name (all hosts below it), a shell glob (`web*`,
    ///   `db?`, `[ab]*`) matched against group names and host names, or a regex `~web\d+`
    ///   (matched at the start of the name, like Python's `re.match`);
    /// - a non-regex term may end with a subscript: `web[0]`, `web[-1]`, `web[1:3]`, `web[2:]`;
    /// - `all` (and `*`) is every host of the inventory; `localhost`, `127.0.0.1` and `::1` name
    ///   the implicit localhost when no such host or group exists;
    /// - union terms are applied first, left to right, then every `&term` (intersection), then
    ///   every `!term` (exclusion), wherever they appear; only `&`/`!` terms start from `all`.
    ///
    /// The result has no duplicates and is in Ansible's order: union terms left to right, each
    /// group's hosts listed group by group from the top of its tree down (a group's own hosts,
    /// then its children's, level by level), which is also the order plays run hosts in.
    /// A pattern that matches nothing gives an empty list; an invalid regex or glob, or a
    /// subscript past the end, is an error.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>> {
        pattern::select(self, pattern)
    }

    /// Adds Ansible's implicit `localhost` (connection local, not in `all`) if it is absent.
    pub fn ensure_implicit_localhost(&mut self) {
        self.ensure_implicit("localhost");
    }

    /// The host's variables layered as described in the module documentation (not templated).
    /// An implicit-localhost name not in the inventory gets the implicit host's variables; any
    /// other unknown name gets an empty map.
    pub fn host_vars(&self, host: &str) -> Map<String, Value> {
        vars::host_vars(self, host)
    }

    /// `group_names`: the host's groups (transitively), without `all`, sorted. Like Ansible, a
    /// host in no group has `["ungrouped"]`; the implicit localhost has none.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        vars::group_names(self, host)
    }

    /// The `groups` magic variable: every group to its hosts (transitively), incl. `all`.
    pub fn groups_var(&self) -> Map<String, Value> {
        vars::groups_var(self)
    }

    /// `mixop inventory --list` (ansible-inventory's JSON shape).
    pub fn to_list_json(&self) -> Value {
        output::list_json(self)
    }

    /// `mixop inventory --graph [GROUP] [--vars]`.
    pub fn graph(&self, group: Option<&str>, with_vars: bool) -> Result<String> {
        output::graph(self, group, with_vars)
    }

    /// Hosts of a group and of all its descendants, in Ansible's order (the group's own hosts,
    /// then its descendants' level by level), without the implicit localhost.
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        vars::group_hosts(self, group)
    }
}

#[cfg(test)]
mod tests;
