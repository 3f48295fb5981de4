//! Reading inventory sources: Ansible's YAML format, directories of them, host lists, and the
//! structural rules Ansible applies afterwards (`all`, `ungrouped`, group depth).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::ini;
use super::pattern::parse_address;
use super::{Group, Host, Inventory};
use crate::diag::{Diag, Loc, Result, Source};
use crate::yaml::{self, Kind, Node};

/// `children:` nesting deeper than this is refused (it is surely a mistake, and keeps the
/// recursive parser far from the stack limit).
const MAX_NESTING: usize = 200;
/// One host key may not expand (`web[1:100000]`) to more hosts than this.
const MAX_RANGE_HOSTS: usize = 100_000;

/// Extensions Ansible skips when reading a directory source (REJECT_EXTS and
/// INVENTORY_IGNORE_EXTS defaults).
const IGNORED_EXTS: [&str; 12] = [
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry",
];

/// The directory whose `group_vars/` and `host_vars/` belong to an inventory source (the source
/// itself for a directory, its parent for a file), or None for a host list.
pub(super) fn vars_base(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        Some(path.to_path_buf())
    } else if path.exists() {
        Some(parent_dir(path))
    } else {
        None
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Where a group or host was met, for `inventory_file` and diagnostics.
struct Ctx<'a> {
    file: &'a Path,
}

impl Inventory {
    /// Adds a group if it is new; returns whether it was.
    pub(super) fn add_group(&mut self, name: &str, loc: Option<&Loc>) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        self.groups.insert(
            name.to_string(),
            Group {
                name: name.to_string(),
                loc: loc.cloned(),
                ..Group::default()
            },
        );
        true
    }

    pub(super) fn parse_source(&mut self, path: &Path) -> Result<()> {
        if path.is_dir() {
            if self.dir.is_none() {
                self.dir = Some(path.to_path_buf());
            }
            return self.parse_dir(path);
        }
        if path.exists() {
            if self.dir.is_none() {
                self.dir = Some(parent_dir(path));
            }
            return self.parse_file(path);
        }
        let text = path.to_string_lossy();
        if text.contains(',') {
            return self.parse_host_list(&text);
        }
        Err(Diag::no_such_file("inventory", path).hint(
            "give an inventory file or directory, or a comma-separated host list like `web1,web2,`",
        ))
    }

    /// `-i host1,host2:2222,`: hosts in `ungrouped`, like Ansible's host_list plugin.
    fn parse_host_list(&mut self, text: &str) -> Result<()> {
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, port) = match parse_address(item) {
                Some((host, port)) => (host, port),
                None => (item.to_string(), None),
            };
            let port = parse_port(port.as_deref()).map_err(Diag::usage)?;
            self.add_host(&name, Some("ungrouped"), port, None, None);
        }
        Ok(())
    }

    fn parse_dir(&mut self, dir: &Path) -> Result<()> {
        let mut names = Vec::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Diag::input(format!("cannot read directory {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                Diag::input(format!("cannot read directory {}: {e}", dir.display()))
            })?;
            names.push(entry.file_name());
        }
        names.sort();
        for name in names {
            let text = name.to_string_lossy();
            if text.starts_with('.')
                || matches!(&*text, "group_vars" | "host_vars" | "vars_plugins")
                || IGNORED_EXTS.iter().any(|ext| text.ends_with(ext))
            {
                continue;
            }
            let path = dir.join(&name);
            if path.is_dir() {
                self.parse_dir(&path)?;
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                self.warnings.push(format!(
                    "skipping {}: TOML inventories are not supported",
                    path.display()
                ));
                continue;
            }
            self.parse_file(&path)?;
        }
        Ok(())
    }

    fn parse_file(&mut self, path: &Path) -> Result<()> {
        let (bytes, secret) = crate::vault::read(path)?;
        if bytes.starts_with(b"#!") {
            return Err(Diag::input(format!(
                "{}: inventory scripts are not supported",
                path.display()
            ))
            .hint("run the script and save its output: `ansible-inventory -i SCRIPT --list -y > inventory.yml`"));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| Diag::input(format!("{}: not UTF-8 text", path.display())))?;
        // Ansible's yaml plugin only takes these extensions; every other file goes to the ini
        // plugin.
        let yaml_ext = matches!(
            path.extension().and_then(|e| e.to_str()),
            None | Some("yml" | "yaml" | "json")
        );
        let src = if secret {
            Source::decrypted(path, text)
        } else {
            Source::new(path, text)
        };
        if yaml_ext {
            self.parse_text(src)
        } else {
            ini::parse(self, &src)
        }
    }

    /// One inventory file's text, detected as Ansible does: YAML when it parses as a YAML
    /// mapping (or is empty), else INI. When both fail, the error of the format the text
    /// looks like is reported.
    pub(super) fn parse_text(&mut self, src: Arc<Source>) -> Result<()> {
        let looks_ini = looks_like_ini(&src.text);
        let docs = match yaml::load_str(src.clone()) {
            Ok(docs) => docs,
            Err(yaml_err) => {
                return self.parse_ini_instead(&src, looks_ini, yaml_err);
            }
        };
        let Some(doc) = docs.first() else {
            self.warnings
                .push(format!("{}: empty inventory file", src.path.display()));
            return Ok(());
        };
        if !matches!(doc.kind, Kind::Map(_) | Kind::Null) {
            let not_mapping = Diag::input(format!(
                "an inventory must be a mapping of group names, found {}",
                doc.type_name()
            ))
            .at(&doc.loc)
            .hint("start with `all:` and put `hosts:`, `vars:` and `children:` below it");
            // YAML reads a lone `host key=value` line as a string: that is INI, not YAML.
            let ini_like = looks_ini || doc.as_str().is_some();
            return self.parse_ini_instead(&src, ini_like, not_mapping);
        }
        if let Some(extra) = docs.get(1) {
            return Err(Diag::input("an inventory file must hold a single YAML document")
                .at(&extra.loc)
                .hint("remove the `---` separator, or split the documents into files of a directory source"));
        }
        let pairs = match &doc.kind {
            Kind::Map(pairs) => pairs,
            Kind::Null => {
                self.warnings
                    .push(format!("{}: empty inventory file", src.path.display()));
                return Ok(());
            }
            _ => return Ok(()), // refused above
        };
        if let Some((key, _)) = pairs.iter().find(|(k, _)| k.as_str() == Some("plugin")) {
            return Err(Diag::input(
                "inventory plugins (`plugin:`) are not supported, only static YAML inventories",
            )
            .at(&key.loc)
            .hint(
                "dump the plugin's result: `ansible-inventory -i FILE --list -y > inventory.yml`",
            ));
        }
        let ctx = Ctx { file: &src.path };
        for (key, body) in pairs {
            if matches!(key.as_str(), Some("hosts" | "vars" | "children")) {
                return Err(Diag::input(format!(
                    "`{}` at the top of an inventory would be a group named `{0}`",
                    key.key_text()
                ))
                .at(&key.loc)
                .hint("top-level keys are group names: put `hosts:`, `vars:` and `children:` under `all:`"));
            }
            self.parse_group(key, body, &ctx, 0, None)?;
        }
        Ok(())
    }

    /// The text is not a YAML inventory: read it as INI, or report `yaml_err` when it does not
    /// look like INI either.
    fn parse_ini_instead(
        &mut self,
        src: &Arc<Source>,
        looks_ini: bool,
        yaml_err: Diag,
    ) -> Result<()> {
        // Parsed into a copy: a failed attempt must not leave half an inventory behind.
        let mut attempt = self.clone();
        match ini::parse(&mut attempt, src) {
            Ok(()) => {
                *self = attempt;
                Ok(())
            }
            Err(ini_err) if looks_ini => Err(ini_err),
            Err(_) => Err(yaml_err),
        }
    }

    /// One group definition (`name: {hosts, vars, children}`), below `parent` if given.
    fn parse_group(
        &mut self,
        key: &Node,
        body: &Node,
        ctx: &Ctx,
        depth: usize,
        parent: Option<&str>,
    ) -> Result<()> {
        let name = group_name(key)?;
        if depth > MAX_NESTING {
            return Err(Diag::input(format!(
                "groups are nested more than {MAX_NESTING} levels deep"
            ))
            .at(&key.loc));
        }
        self.add_group(&name, Some(&key.loc));
        // The edge goes in before the body is read, so a cycle is reported from its start.
        if let Some(parent) = parent {
            self.add_child(parent, &name, &key.loc)?;
        }
        let pairs = match &body.kind {
            Kind::Null => return Ok(()),
            Kind::Map(pairs) => pairs,
            _ => {
                return Err(Diag::input(format!(
                    "group `{name}` must be a mapping with `hosts`, `vars` or `children`, found {}",
                    body.type_name()
                ))
                .at(&body.loc));
            }
        };
        for (k, v) in pairs {
            match k.as_str() {
                Some("vars") => self.parse_group_vars(&name, v)?,
                Some("children") => match &v.kind {
                    Kind::Null => {}
                    // Ansible's shorthand `children: web` means one child group.
                    Kind::Str(_) => {
                        let null = Node {
                            loc: v.loc.clone(),
                            kind: Kind::Null,
                        };
                        self.parse_group(v, &null, ctx, depth + 1, Some(&name))?;
                    }
                    Kind::Map(children) => {
                        for (ck, cv) in children {
                            self.parse_group(ck, cv, ctx, depth + 1, Some(&name))?;
                        }
                    }
                    _ => {
                        return Err(Diag::input(format!(
                            "`children` of group `{name}` must be a mapping of group names, found {}",
                            v.type_name()
                        ))
                        .at(&v.loc)
                        .hint("write each child group as a key ending with `:`, e.g. `web:`"));
                    }
                },
                Some("hosts") => match &v.kind {
                    Kind::Null => {}
                    Kind::Str(_) => self.parse_host_entry(&name, v, None, ctx)?,
                    Kind::Map(hosts) => {
                        for (hk, hv) in hosts {
                            self.parse_host_entry(&name, hk, Some(hv), ctx)?;
                        }
                    }
                    _ => {
                        return Err(Diag::input(format!(
                            "`hosts` of group `{name}` must be a mapping of host names, found {}",
                            v.type_name()
                        ))
                        .at(&v.loc)
                        .hint("write each host as a key ending with `:`, e.g. `web1:`, with its variables indented below it"));
                    }
                },
                _ => {
                    let text = k.key_text();
                    return Err(
                        Diag::input(format!("unknown key `{text}` in group `{name}`"))
                            .at(&k.loc)
                            .hint(group_key_hint(&text)),
                    );
                }
            }
        }
        Ok(())
    }

    fn parse_group_vars(&mut self, group: &str, v: &Node) -> Result<()> {
        let pairs = match &v.kind {
            Kind::Null => return Ok(()),
            Kind::Map(pairs) => pairs,
            _ => {
                return Err(Diag::input(format!(
                    "`vars` of group `{group}` must be a mapping of variable names to values, found {}",
                    v.type_name()
                ))
                .at(&v.loc));
            }
        };
        for (vk, vv) in pairs {
            let var = vk.key_text();
            if var == "ansible_group_priority" {
                let priority = priority_value(vv)?;
                if let Some(g) = self.groups.get_mut(group) {
                    g.priority = priority;
                }
            } else if let Some(g) = self.groups.get_mut(group) {
                g.vars.insert(var, vv.to_value());
            }
        }
        Ok(())
    }

    /// One `hosts:` entry: a host name (maybe `name:port`, maybe with `[a:b]` ranges) and its
    /// variables.
    fn parse_host_entry(
        &mut self,
        group: &str,
        key: &Node,
        body: Option<&Node>,
        ctx: &Ctx,
    ) -> Result<()> {
        let Kind::Str(text) = &key.kind else {
            return Err(Diag::input(format!(
                "host name must be a string, found {}",
                key.type_name()
            ))
            .at(&key.loc)
            .hint("quote names that YAML reads as numbers or booleans, e.g. `\"10\":`"));
        };
        let (pattern, port) = match parse_address(text) {
            Some((host, port)) => (host, port),
            None => (text.clone(), None),
        };
        let port = parse_port(port.as_deref()).map_err(|e| Diag::input(e).at(&key.loc))?;
        let names = if pattern.contains('[') {
            expand_host_range(&pattern).map_err(|e| {
                Diag::input(format!("host `{text}`: {e}"))
                    .at(&key.loc)
                    .hint("ranges look like `web[01:10]`, `db[a:f]` or `node[1:9:2]`")
            })?
        } else {
            vec![pattern]
        };
        if names.iter().any(String::is_empty) {
            return Err(Diag::input("empty host name").at(&key.loc));
        }
        let vars = match body.map(|b| (b, &b.kind)) {
            None | Some((_, Kind::Null)) => Map::new(),
            Some((b, Kind::Map(_))) => match b.to_value() {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            Some((b, _)) => {
                return Err(Diag::input(format!(
                    "variables of host `{text}` must be a mapping of names to values, found {}",
                    b.type_name()
                ))
                .at(&b.loc)
                .hint("write `name: value` lines indented below the host, or nothing"));
            }
        };
        for name in names {
            self.add_host(
                &name,
                Some(group),
                port,
                Some(&key.loc),
                Some(ctx.file.to_path_buf()),
            );
            if let Some(h) = self.hosts.get_mut(&name) {
                for (k, v) in &vars {
                    h.vars.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(())
    }

    /// Adds a host (if new) and puts it in `group`. A port only counts when the host is new,
    /// like Ansible's.
    pub(super) fn add_host(
        &mut self,
        name: &str,
        group: Option<&str>,
        port: Option<u64>,
        loc: Option<&Loc>,
        source: Option<PathBuf>,
    ) {
        if !self.hosts.contains_key(name) {
            let mut host = Host {
                name: name.to_string(),
                loc: loc.cloned(),
                source,
                ..Host::default()
            };
            if let Some(port) = port {
                host.vars.insert("ansible_port".into(), Value::from(port));
            }
            self.hosts.insert(name.to_string(), host);
        }
        let Some(group) = group else { return };
        // Membership is checked on the host's (short) group list, not the group's host list,
        // so a group of many thousand hosts loads in linear time.
        let Some(h) = self.hosts.get_mut(name) else {
            return;
        };
        if h.groups.iter().any(|g| g == group) {
            return;
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.hosts.push(name.to_string());
            h.groups.push(group.to_string());
        }
    }

    /// Makes `child` a child group of `parent`, refusing cycles.
    pub(super) fn add_child(&mut self, parent: &str, child: &str, loc: &Loc) -> Result<()> {
        if child == "all" {
            return Err(Diag::input("`all` cannot be a child group")
                .at(loc)
                .hint("every group is already below `all`"));
        }
        if self
            .groups
            .get(parent)
            .is_some_and(|g| g.children.iter().any(|c| c == child))
        {
            return Ok(());
        }
        if let Some(path) = self.child_path(child, parent) {
            let mut names = path;
            names.push(child.to_string());
            return Err(Diag::input(format!("group cycle: {}", names.join(" -> "))).at(loc));
        }
        if let Some(g) = self.groups.get_mut(parent) {
            g.children.push(child.to_string());
        }
        if let Some(g) = self.groups.get_mut(child)
            && !g.parents.iter().any(|p| p == parent)
        {
            g.parents.push(parent.to_string());
        }
        Ok(())
    }

    /// The path `from -> ... -> to` along `children` edges, if `to` is `from` or below it.
    pub(super) fn child_path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut prev: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = HashSet::from([from]);
        while let Some(g) = queue.pop_front() {
            if g == to {
                let mut path = vec![g.to_string()];
                let mut cur = g;
                while let Some(p) = prev.get(cur) {
                    path.push(p.to_string());
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for c in self.groups.get(g).map(|g| &g.children[..]).unwrap_or(&[]) {
                if seen.insert(c) {
                    prev.insert(c, g);
                    queue.push_back(c);
                }
            }
        }
        None
    }

    /// Ansible's `reconcile_inventory`: groups without a parent go below `all`, hosts in no
    /// group go to `ungrouped` (and leave it when they have another group), depths are set.
    pub(super) fn reconcile(&mut self) {
        let roots: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.name != "all" && g.parents.is_empty())
            .map(|g| g.name.clone())
            .collect();
        for root in roots {
            if let Some(all) = self.groups.get_mut("all") {
                all.children.push(root.clone());
            }
            if let Some(g) = self.groups.get_mut(&root) {
                g.parents.push("all".into());
            }
        }

        let names: Vec<String> = self.hosts.keys().cloned().collect();
        for name in names {
            let Some(host) = self.hosts.get(&name) else {
                continue;
            };
            if host.implicit {
                continue;
            }
            let in_ungrouped = host.groups.iter().any(|g| g == "ungrouped");
            let has_other = host.groups.iter().any(|g| g != "all" && g != "ungrouped");
            if in_ungrouped && has_other {
                if let Some(g) = self.groups.get_mut("ungrouped") {
                    g.hosts.retain(|h| h != &name);
                }
                if let Some(h) = self.hosts.get_mut(&name) {
                    h.groups.retain(|g| g != "ungrouped");
                }
            } else if !in_ungrouped && !has_other {
                self.add_host(&name, Some("ungrouped"), None, None, None);
            }
        }

        self.compute_depths();

        let clashes: Vec<String> = self
            .hosts
            .keys()
            .filter(|h| self.groups.contains_key(*h))
            .cloned()
            .collect();
        for name in clashes {
            let msg = format!("found both a group and a host named `{name}`");
            if !self.warnings.contains(&msg) {
                self.warnings.push(msg);
            }
        }
    }

    /// Depth = longest `children` path from `all` (Kahn's order over the acyclic graph).
    fn compute_depths(&mut self) {
        let mut indegree: HashMap<String, usize> = self
            .groups
            .values()
            .map(|g| (g.name.clone(), g.parents.len()))
            .collect();
        let mut depth: HashMap<String, usize> = HashMap::new();
        let mut queue: VecDeque<String> = self
            .groups
            .values()
            .filter(|g| g.parents.is_empty())
            .map(|g| g.name.clone())
            .collect();
        while let Some(g) = queue.pop_front() {
            let d = depth.get(&g).copied().unwrap_or(0);
            let children = self
                .groups
                .get(&g)
                .map(|g| g.children.clone())
                .unwrap_or_default();
            for c in children {
                let e = depth.entry(c.clone()).or_insert(0);
                *e = (*e).max(d + 1);
                if let Some(n) = indegree.get_mut(&c) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        queue.push_back(c);
                    }
                }
            }
        }
        for g in self.groups.values_mut() {
            g.depth = depth.get(&g.name).copied().unwrap_or(0);
        }
    }

    pub(super) fn ensure_implicit(&mut self, name: &str) {
        if self.hosts.contains_key(name) {
            return;
        }
        let mut vars = Map::new();
        vars.insert("ansible_connection".into(), Value::from("local"));
        if let Some(file_vars) = self.implicit_vars.shift_remove(name) {
            vars.extend(file_vars);
        }
        self.hosts.insert(
            name.to_string(),
            Host {
                name: name.to_string(),
                vars,
                implicit: true,
                ..Host::default()
            },
        );
    }
}

/// INI inventories start with `[group]` or with bare `host key=value` lines, which YAML either
/// rejects or reads as a plain string. Decides whose error is shown when neither parser
/// accepts a file.
fn looks_like_ini(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
    else {
        return false;
    };
    if first.starts_with("---") {
        return false;
    }
    let section = first.starts_with('[')
        && first.ends_with(']')
        && !first.contains(',')
        && !first.contains(": ");
    section || !first.contains(':') && !first.starts_with(['-', '{', '[', '"', '\''])
}

fn group_name(key: &Node) -> Result<String> {
    match &key.kind {
        Kind::Str(s) if !s.is_empty() => Ok(s.clone()),
        Kind::Str(_) => Err(Diag::input("empty group name").at(&key.loc)),
        _ => Err(Diag::input(format!(
            "group name must be a string, found {}",
            key.type_name()
        ))
        .at(&key.loc)
        .hint("quote names that YAML reads as numbers, booleans or null")),
    }
}

fn priority_value(v: &Node) -> Result<i64> {
    let bad = || {
        Diag::input(format!(
            "`ansible_group_priority` must be an integer, found {}",
            v.type_name()
        ))
        .at(&v.loc)
    };
    match &v.kind {
        Kind::Int(i) => Ok(*i),
        Kind::Bool(b) => Ok(i64::from(*b)),
        // Python's int() truncates.
        Kind::Float(f) if f.is_finite() && f.abs() < 9.0e18 => Ok(f.trunc() as i64),
        Kind::Str(s) => s.trim().parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

pub(super) fn parse_port(port: Option<&str>) -> std::result::Result<Option<u64>, String> {
    match port {
        None => Ok(None),
        Some(p) => p
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid port `{p}`")),
    }
}

fn group_key_hint(key: &str) -> String {
    const KEYS: [&str; 3] = ["hosts", "vars", "children"];
    let lower = key.to_ascii_lowercase();
    let close = KEYS.iter().find(|k| {
        lower == **k
            || edit_distance(&lower, k) <= 2
            || (lower.len() >= 3 && k.starts_with(&lower))
            || lower.starts_with(*k)
            || common_prefix(&lower, k) >= 4
    });
    match close {
        Some(k) => format!("did you mean `{k}`?"),
        None => format!(
            "a group may only contain `hosts:`, `vars:` and `children:`; if `{key}` is a host, put it under `hosts:`, if it is a group, under `children:`"
        ),
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Expands Ansible host ranges: `web[01:03]` → web01, web02, web03; `db-[a:c]`;
/// `n[1:9:2]`; several ranges multiply.
pub(super) fn expand_host_range(pattern: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut todo = vec![pattern.to_string()];
    while let Some(line) = todo.pop() {
        if !line.contains('[') {
            out.push(line);
            if out.len() > MAX_RANGE_HOSTS {
                return Err(format!(
                    "the range expands to more than {MAX_RANGE_HOSTS} hosts"
                ));
            }
            continue;
        }
        let (head, rest) = line
            .split_once('[')
            .ok_or_else(|| "host range must be begin:end or begin:end:step".to_string())?;
        let (range, tail) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed `[` in host range".to_string())?;
        let bounds: Vec<&str> = range.split(':').collect();
        if bounds.len() != 2 && bounds.len() != 3 {
            return Err("host range must be begin:end or begin:end:step".into());
        }
        let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
        let end = bounds[1];
        if end.is_empty() {
            return Err("host range must specify end value".into());
        }
        let step: usize = match bounds.get(2) {
            Some(s) => s
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("invalid step `{s}` in host range"))?,
            None => 1,
        };
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err("host range must specify equal-length begin and end formats".into());
            }
            beg.len()
        } else {
            0
        };
        const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let items: Vec<String> = match (LETTERS.find(beg), LETTERS.find(end)) {
            (Some(b), Some(e)) if beg.len() == 1 && end.len() == 1 => {
                if b > e {
                    return Err("host range must have begin <= end".into());
                }
                LETTERS[b..=e]
                    .chars()
                    .step_by(step)
                    .map(|c| format!("{c:0>width$}"))
                    .collect()
            }
            _ => {
                let b: u64 = beg
                    .parse()
                    .map_err(|_| format!("invalid host range `[{range}]`"))?;
                let e: u64 = end
                    .parse()
                    .map_err(|_| format!("invalid host range `[{range}]`"))?;
                if b > e {
                    return Err("host range must have begin <= end".into());
                }
                if (e - b) / step as u64 > MAX_RANGE_HOSTS as u64 {
                    return Err(format!(
                        "the range expands to more than {MAX_RANGE_HOSTS} hosts"
                    ));
                }
                (b..=e)
                    .step_by(step)
                    .map(|n| format!("{n:0>width$}"))
                    .collect()
            }
        };
        // Pushed in reverse so the stack pops them in order.
        for item in items.iter().rev() {
            todo.push(format!("{head}{item}{tail}"));
        }
        if todo.len() > MAX_RANGE_HOSTS {
            return Err(format!(
                "the range expands to more than {MAX_RANGE_HOSTS} hosts"
            ));
        }
    }
    Ok(out)
}
