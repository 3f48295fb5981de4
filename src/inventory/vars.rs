//! `group_vars/` and `host_vars/` files, variable layering, and the `groups`/`group_names`
//! magic variables.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Group, Inventory, LOCALHOST_NAMES};
use crate::diag::{Diag, Result};
use crate::value::merge;
use crate::yaml::{self, Kind};

/// Ansible's YAML_FILENAME_EXTENSIONS, after the bare name.
const VARS_SUFFIXES: [&str; 4] = ["", ".yml", ".yaml", ".json"];

impl Inventory {
    pub(super) fn read_vars_dir(&mut self, dir: &Path) -> Result<()> {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let key = canonical(dir);
        if self.vars_dirs.iter().any(|d| canonical(d) == key) {
            return Ok(());
        }
        let index = self.vars_dirs.len();
        self.vars_dirs.push(dir.to_path_buf());

        if let Some(gdir) = self.vars_subdir(dir, "group_vars") {
            let names: Vec<String> = self.groups.keys().cloned().collect();
            for name in names {
                if let Some(vars) = self.read_entity_vars(&gdir, &name)?
                    && let Some(g) = self.groups.get_mut(&name)
                {
                    g.file_vars.push((index, vars));
                }
            }
        }
        if let Some(hdir) = self.vars_subdir(dir, "host_vars") {
            let mut names: Vec<String> = self.hosts.keys().cloned().collect();
            for local in LOCALHOST_NAMES {
                if !self.hosts.contains_key(local) {
                    names.push(local.to_string());
                }
            }
            for name in names {
                let Some(vars) = self.read_entity_vars(&hdir, &name)? else {
                    continue;
                };
                match self.hosts.get_mut(&name) {
                    Some(h) => merge(&mut h.vars, &vars, false),
                    None => merge(self.implicit_vars.entry(name).or_default(), &vars, false),
                }
            }
        }
        Ok(())
    }

    fn vars_subdir(&mut self, dir: &Path, name: &str) -> Option<PathBuf> {
        let sub = dir.join(name);
        if sub.is_dir() {
            Some(sub)
        } else {
            if sub.exists() {
                self.warnings.push(format!(
                    "found {} that is not a directory, skipping it",
                    sub.display()
                ));
            }
            None
        }
    }

    /// The variables for one group or host name in a `group_vars/` or `host_vars/` directory,
    /// or None when it has no file there.
    pub(super) fn read_entity_vars(
        &mut self,
        dir: &Path,
        name: &str,
    ) -> Result<Option<Map<String, Value>>> {
        // Names that are not plain file names never have a vars file (and must not escape `dir`).
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Ok(None);
        }
        let candidates: Vec<PathBuf> = VARS_SUFFIXES
            .iter()
            .map(|suffix| dir.join(format!("{name}{suffix}")))
            .filter(|p| p.exists())
            .collect();
        let Some(first) = candidates.first() else {
            return Ok(None);
        };
        for ignored in &candidates[1..] {
            self.warnings.push(format!(
                "{} is ignored because {} exists (only the first of NAME, NAME.yml, NAME.yaml, NAME.json is read)",
                ignored.display(),
                first.display()
            ));
        }
        let files = if first.is_dir() {
            let mut files = Vec::new();
            dir_vars_files(first, &mut files)?;
            files
        } else {
            vec![first.clone()]
        };
        let mut vars = Map::new();
        for file in files {
            merge(&mut vars, &load_vars_file(&file)?, false);
        }
        Ok(Some(vars))
    }
}

/// Files of a `group_vars/NAME/` directory: sorted, recursive, skipping hidden files and
/// backups, with no extension or a YAML/JSON one.
fn dir_vars_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let read_err =
        |e: std::io::Error| Diag::input(format!("cannot read directory {}: {e}", dir.display()));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        names.push(entry.map_err(read_err)?.file_name());
    }
    names.sort();
    for name in names {
        let text = name.to_string_lossy();
        if text.starts_with('.') || text.ends_with('~') {
            continue;
        }
        let path = dir.join(&name);
        let ext = path.extension().and_then(|e| e.to_str());
        if path.is_dir() {
            if ext.is_none() {
                dir_vars_files(&path, out)?;
            }
        } else if matches!(ext, None | Some("yml" | "yaml" | "json")) {
            out.push(path);
        }
    }
    Ok(())
}

/// One vars file: a mapping, or empty.
fn load_vars_file(path: &Path) -> Result<Map<String, Value>> {
    let docs = yaml::load_file(path)?;
    if let Some(extra) = docs.get(1) {
        return Err(
            Diag::input("a variables file must hold a single YAML document").at(&extra.loc),
        );
    }
    let Some(doc) = docs.first() else {
        return Ok(Map::new());
    };
    match (&doc.kind, doc.to_value()) {
        (Kind::Null, _) => Ok(Map::new()),
        (_, Value::Object(m)) => Ok(m),
        _ => Err(Diag::input(format!(
            "a variables file must be a mapping of variable names to values, found {}",
            doc.type_name()
        ))
        .at(&doc.loc)),
    }
}

/// The groups a host belongs to, directly or through `children`, including `all`.
fn host_ancestors<'a>(inv: &'a Inventory, host: &str) -> Vec<&'a Group> {
    let Some(h) = inv.hosts.get(host) else {
        return Vec::new();
    };
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    let mut todo: Vec<&str> = h.groups.iter().map(String::as_str).collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(g) = inv.groups.get(name) {
            out.push(g);
            todo.extend(g.parents.iter().map(String::as_str));
        }
    }
    out
}

pub(super) fn host_vars(inv: &Inventory, host: &str) -> Map<String, Value> {
    let implicit_own;
    let own = match inv.hosts.get(host) {
        Some(h) => &h.vars,
        None if LOCALHOST_NAMES.contains(&host) => {
            let mut vars = Map::new();
            vars.insert("ansible_connection".into(), Value::from("local"));
            if let Some(file_vars) = inv.implicit_vars.get(host) {
                merge(&mut vars, file_vars, false);
            }
            implicit_own = vars;
            &implicit_own
        }
        None => return Map::new(),
    };
    let mut groups: Vec<&Group> = host_ancestors(inv, host)
        .into_iter()
        .filter(|g| g.name != "all")
        .collect();
    groups.sort_by(|a, b| (a.depth, a.priority, &a.name).cmp(&(b.depth, b.priority, &b.name)));

    let mut out = Map::new();
    let all = inv.groups.get("all");
    if let Some(all) = all {
        merge(&mut out, &all.vars, false);
    }
    for g in &groups {
        merge(&mut out, &g.vars, false);
    }
    if let Some(all) = all {
        for (_, vars) in &all.file_vars {
            merge(&mut out, vars, false);
        }
    }
    for dir in 0..inv.vars_dirs.len() {
        for g in &groups {
            for (_, vars) in g.file_vars.iter().filter(|(d, _)| *d == dir) {
                merge(&mut out, vars, false);
            }
        }
    }
    merge(&mut out, own, false);
    out
}

pub(super) fn group_names(inv: &Inventory, host: &str) -> Vec<String> {
    let mut names: Vec<String> = host_ancestors(inv, host)
        .into_iter()
        .filter(|g| g.name != "all")
        .map(|g| g.name.clone())
        .collect();
    names.sort();
    names
}

/// A group's hosts and its descendants', in Ansible's `Group.get_hosts` order: the group,
/// then its children, then the next level (each level in discovery order).
pub(super) fn group_hosts(inv: &Inventory, group: &str) -> Vec<String> {
    let Some(start) = inv.groups.get(group) else {
        return Vec::new();
    };
    let mut ordered: Vec<&Group> = vec![start];
    let mut seen: HashSet<&str> = HashSet::from([group]);
    let mut level: Vec<&Group> = Vec::new();
    for c in &start.children {
        if let Some(g) = inv.groups.get(c)
            && seen.insert(c)
        {
            ordered.push(g);
            level.push(g);
        }
    }
    while !level.is_empty() {
        let mut next = Vec::new();
        for g in &level {
            for c in &g.children {
                if let Some(child) = inv.groups.get(c)
                    && seen.insert(c)
                {
                    ordered.push(child);
                    next.push(child);
                }
            }
        }
        level = next;
    }
    let mut out = Vec::new();
    let mut seen_hosts: HashSet<&str> = HashSet::new();
    for g in ordered {
        for h in &g.hosts {
            let implicit = inv.hosts.get(h).is_some_and(|h| h.implicit);
            if !implicit && seen_hosts.insert(h) {
                out.push(h.clone());
            }
        }
    }
    out
}

pub(super) fn groups_var(inv: &Inventory) -> Map<String, Value> {
    inv.groups
        .keys()
        .map(|name| {
            let hosts = group_hosts(inv, name)
                .into_iter()
                .map(Value::from)
                .collect();
            (name.clone(), Value::Array(hosts))
        })
        .collect()
}
