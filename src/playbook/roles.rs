//! Ansible roles: search, layout (`tasks/`, `handlers/`, `defaults/`, `vars/`, `meta/`),
//! dependencies and variable scopes. Roles are loaded with the rest of the plan, so a missing
//! role or a bad task inside one stops the run before any host is contacted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::load::{Loader, bool_of, keys_of, string_list, string_of, vars_map};
use super::model::*;
use crate::diag::{Diag, Loc, Result};
use crate::value::merge;
use crate::yaml::{self, Kind, Node};

/// Where roles are looked for after `roles/` beside the playbook and the playbook's directory:
/// ansible.cfg's `roles_path` or `ANSIBLE_ROLES_PATH`, else Ansible's default (see `config`).
pub fn roles_path() -> Vec<PathBuf> {
    crate::config::get().roles_path.clone()
}

/// The keys of a `roles:` entry (or a `meta/main.yml` dependency) that are not role parameters.
const ROLE_ENTRY_KEYS: &[&str] = &["role", "name", "vars", "when", "tags"];

/// `import_role` / `include_role` arguments.
const ROLE_ACTION_ARGS: &[&str] = &[
    "name",
    "role",
    "tasks_from",
    "vars_from",
    "defaults_from",
    "handlers_from",
    "apply",
    "allow_duplicates",
    "public",
    "rolespec_validate",
];

/// The `*_from` files of an invocation, in this order.
const FROM: [&str; 4] = ["tasks", "vars", "defaults", "handlers"];

/// One role invocation as written.
pub(super) struct RoleCall {
    pub name: String,
    /// Where the role is named (errors about the role point here).
    pub loc: Loc,
    pub from: [Option<(String, Loc)>; 4],
    pub params: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub when: Vec<Value>,
    pub tags: Vec<String>,
    pub opts: TaskOpts,
    /// `import_role` / `include_role`: never deduplicated, as in ansible-core.
    pub from_include: bool,
    /// `roles:` and `import_role`: the play sees the role's defaults and vars.
    pub public: bool,
    pub allow_duplicates: Option<bool>,
}

impl RoleCall {
    fn new(name: String, loc: Loc) -> RoleCall {
        RoleCall {
            name,
            loc,
            from: Default::default(),
            params: Map::new(),
            vars: Map::new(),
            when: Vec::new(),
            tags: Vec::new(),
            opts: TaskOpts::default(),
            from_include: false,
            public: true,
            allow_duplicates: None,
        }
    }

    /// ansible-core's role identity (`Role._get_hash_dict`): a role invoked again with the
    /// same identity runs once per play.
    fn identity(&self, path: &Path) -> String {
        let from: Vec<Option<&str>> = self
            .from
            .iter()
            .map(|f| f.as_ref().map(|(s, _)| s.as_str()))
            .collect();
        json!({
            "path": path, "params": self.params, "when": self.when, "tags": self.tags,
            "from": from, "vars": self.vars, "include": self.from_include,
        })
        .to_string()
    }
}

/// A loaded role's own data (ansible-core's `Role`).
#[derive(Clone)]
pub(super) struct RoleData {
    name: String,
    defaults: Map<String, Value>,
    role_vars: Map<String, Value>,
    vars_kw: Map<String, Value>,
    params: Map<String, Value>,
    deps: Vec<Arc<RoleData>>,
}

impl RoleData {
    /// Dependencies, theirs first (`Role.get_all_dependencies`).
    fn all_deps(&self) -> Vec<&RoleData> {
        let mut out = Vec::new();
        for d in &self.deps {
            out.extend(d.all_deps());
            out.push(d.as_ref());
        }
        out
    }

    /// `Role.get_default_vars()` without a dependency chain: what the play sees.
    fn exported_defaults(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for d in self.all_deps() {
            merge(&mut m, &d.defaults, false);
        }
        merge(&mut m, &self.defaults, false);
        m
    }

    /// `Role.get_vars(include_params=False, only_exports=True)`.
    fn exported_vars(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for d in self.all_deps() {
            merge(&mut m, &d.role_vars, false);
        }
        merge(&mut m, &self.role_vars, false);
        m
    }

    /// What the role's own tasks see, given the roles that depend on it (`chain`, outermost
    /// first).
    fn scope(&self, chain: &[Arc<RoleData>], path: &Path) -> RoleScope {
        let mut defaults = self.exported_defaults();
        let mut vars = Map::new();
        let mut params = Map::new();
        for p in chain {
            merge(&mut defaults, &p.defaults, false);
            merge(&mut vars, &p.role_vars, false);
            merge(&mut vars, &p.params, false);
            merge(&mut vars, &p.vars_kw, false);
            merge(&mut params, &p.params, false);
        }
        merge(&mut defaults, &self.defaults, false);
        merge(&mut vars, &self.exported_vars(), false);
        merge(&mut vars, &self.vars_kw, false);
        merge(&mut params, &self.params, false);
        RoleScope {
            name: self.name.clone(),
            path: path.to_path_buf(),
            defaults,
            vars,
            params,
        }
    }
}

/// What the roles of the play being loaded have contributed so far.
#[derive(Default)]
pub(super) struct PlayRoles {
    /// Identities of the `roles:` entries and dependencies loaded (ansible-core's role cache).
    pub seen: Vec<String>,
    /// Role handler files already added to the play, and their handlers.
    handler_files: Vec<PathBuf>,
    pub handlers: Vec<Task>,
    pub defaults: Map<String, Value>,
    pub vars: Map<String, Value>,
}

/// `<dir>/<name>` as a YAML file: `name`, `name.yml`, `name.yaml`, `name.json`.
fn yaml_file(dir: &Path, name: &str) -> Option<PathBuf> {
    ["", ".yml", ".yaml", ".json"]
        .iter()
        .map(|ext| dir.join(format!("{name}{ext}")))
        .find(|p| p.is_file())
}

impl Loader<'_> {
    /// A `roles:` entry or a `meta/main.yml` dependency: a name, or a mapping with `role` (or
    /// `name`), `vars`, `when`, `tags`, and role parameters.
    pub(super) fn role_entry(&self, node: &Node) -> Result<RoleCall> {
        if let Kind::Str(name) = &node.kind {
            self.check_role_name(name, &node.loc)?;
            return Ok(RoleCall::new(name.clone(), node.loc.clone()));
        }
        let pairs = keys_of(node, "a role")?;
        let name_node = node
            .get("role")
            .or_else(|| node.get("name"))
            .ok_or_else(|| {
                Diag::input("a role entry needs `role`")
                    .at(&node.loc)
                    .hint("write `- role: name` or just `- name`")
            })?;
        let name = string_of(name_node, "role")?;
        self.check_role_name(&name, &name_node.loc)?;
        let mut call = RoleCall::new(name, name_node.loc.clone());
        for (k, knode, v) in pairs {
            match k.as_str() {
                "role" => {}
                "name" if node.get("role").is_none() => {}
                "vars" => {
                    self.check_node_templates(&v)?;
                    call.vars = vars_map(&v, "vars")?;
                }
                "when" => call.when = self.conditions(&v, "when")?,
                "tags" => call.tags = string_list(&v, "tags")?,
                _ if self.task_opt(&mut call.opts, &k, &v)? => {}
                _ => {
                    if !crate::modules::builtin::is_identifier(&k) {
                        return Err(Diag::input(format!(
                            "role parameter `{k}` is not a valid variable name"
                        ))
                        .at(&knode.loc)
                        .hint(format!("role keywords are: {}", ROLE_ENTRY_KEYS.join(", "))));
                    }
                    self.check_node_templates(&v)?;
                    call.params.insert(k, v.to_value());
                }
            }
        }
        Ok(call)
    }

    /// The arguments of `import_role` / `include_role` (`task` has its keywords already).
    pub(super) fn role_action(
        &self,
        short: &str,
        args: &Node,
        task: &Task,
    ) -> Result<(RoleCall, RoleRef)> {
        let pairs = keys_of(args, short)
            .map_err(|d| d.hint(format!("write `{short}:` with `name: <role>` below it")))?;
        let name_node = args
            .get("name")
            .or_else(|| args.get("role"))
            .ok_or_else(|| Diag::input(format!("`{short}` needs `name`")).at(&args.loc))?;
        let name = string_of(name_node, "name")?;
        self.check_template(&name, &name_node.loc)?;
        let mut call = RoleCall::new(name.clone(), name_node.loc.clone());
        call.from_include = true;
        call.public = short == "import_role";
        let mut rref = RoleRef {
            name,
            ..Default::default()
        };
        for (k, knode, v) in pairs {
            match k.as_str() {
                "name" | "role" | "rolespec_validate" => {}
                "tasks_from" | "vars_from" | "defaults_from" | "handlers_from" => {
                    let file = string_of(&v, &k)?;
                    self.check_template(&file, &v.loc)?;
                    let i = FROM
                        .iter()
                        .position(|f| k.starts_with(f))
                        .unwrap_or_default();
                    *[
                        &mut rref.tasks_from,
                        &mut rref.vars_from,
                        &mut rref.defaults_from,
                        &mut rref.handlers_from,
                    ][i] = Some(file.clone());
                    call.from[i] = Some((file, v.loc.clone()));
                }
                "allow_duplicates" => {
                    rref.allow_duplicates = bool_of(&v, &k)?;
                    call.allow_duplicates = Some(rref.allow_duplicates);
                }
                "public" => {
                    if short == "include_role" && bool_of(&v, &k)? {
                        return Err(Diag::input(
                            "`public: true` on include_role is not supported by mixop",
                        )
                        .at(&v.loc)
                        .hint("use import_role or `roles:`, whose variables the play sees"));
                    }
                }
                "apply" if short == "include_role" => {
                    for (ak, aknode, av) in keys_of(&v, "apply")? {
                        match ak.as_str() {
                            "tags" => rref.apply_tags = string_list(&av, "tags")?,
                            "when" => rref.apply_when = self.conditions(&av, "when")?,
                            _ => {
                                return Err(Diag::input(format!(
                                    "`apply: {ak}` is not supported by mixop"
                                ))
                                .at(&aknode.loc)
                                .hint("mixop applies `tags` and `when`"));
                            }
                        }
                    }
                }
                _ => {
                    let mut d = Diag::input(format!("`{short}` has no argument `{k}`"))
                        .at(&knode.loc)
                        .label("unknown argument");
                    if let Some(s) = crate::modules::did_you_mean(&k, ROLE_ACTION_ARGS) {
                        d = d.hint(format!("did you mean `{s}`?"));
                    } else {
                        d = d.hint(format!(
                            "its arguments are: {}",
                            ROLE_ACTION_ARGS.join(", ")
                        ));
                    }
                    return Err(d);
                }
            }
        }
        if short == "import_role" {
            if task.loop_.is_some() {
                return Err(Diag::input("`import_role` cannot loop")
                    .at(&task.loc)
                    .hint("use `include_role` with `loop`"));
            }
            let templated = std::iter::once(&call.name)
                .chain(call.from.iter().flatten().map(|(f, _)| f))
                .find(|s| crate::template::is_template(s));
            if let Some(s) = templated {
                return Err(Diag::input(
                    "`import_role` is static: its role and files cannot use variables",
                )
                .at(&call.loc)
                .hint(format!(
                    "use `include_role` for a role chosen at run time (`{s}`)"
                )));
            }
        }
        Ok((call, rref))
    }

    fn check_role_name(&self, name: &str, loc: &Loc) -> Result<()> {
        if crate::template::is_template(name) {
            return Err(
                Diag::input("a role in `roles:` cannot be named with variables")
                    .at(loc)
                    .hint("use `include_role` for a role chosen at run time"),
            );
        }
        Ok(())
    }

    /// `roles/<name>` beside the playbook, the playbook's directory, then `roles_path()`; a
    /// name with a `/` is a path (relative to the playbook's directory).
    fn find_role(&self, name: &str, loc: &Loc) -> Result<PathBuf> {
        let root = self.root.clone().unwrap_or_default();
        let mut candidates = Vec::new();
        if name.contains('/') {
            candidates.push(root.join(name));
        } else {
            if name.split('.').count() == 3 {
                return Err(Diag::input(format!(
                    "`{name}` is a collection role, which mixop does not install or load"
                ))
                .at(loc)
                .hint("copy the role into roles/ beside the playbook"));
            }
            candidates.push(root.join("roles").join(name));
            candidates.push(root.join(name));
            candidates.extend(self.roles_path.iter().map(|d| d.join(name)));
        }
        candidates
            .iter()
            .find(|c| c.is_dir())
            .cloned()
            .ok_or_else(|| {
                Diag::input(format!("role `{name}` not found"))
                    .at(loc)
                    .label("no such role")
                    .hint(format!(
                        "looked in: {} (more directories: ANSIBLE_ROLES_PATH)",
                        candidates
                            .iter()
                            .map(|c| c.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
            })
    }

    /// The role file for `from` (`tasks`, `vars`, ...): `<role>/<sub>/<from or main>`. A
    /// `*_from` file that does not exist is an error; a missing `main` is not.
    fn role_file(&self, path: &Path, i: usize, call: &RoleCall) -> Result<Option<PathBuf>> {
        let dir = path.join(FROM[i]);
        match &call.from[i] {
            None => Ok(yaml_file(&dir, "main")),
            Some((file, loc)) => yaml_file(&dir, file).map(Some).ok_or_else(|| {
                Diag::input(format!(
                    "role `{}` has no {} file `{file}`",
                    call.name, FROM[i]
                ))
                .at(loc)
                .label("no such file")
                .hint(format!("looked in {}", dir.display()))
            }),
        }
    }

    fn vars_file(&self, file: Option<PathBuf>) -> Result<Map<String, Value>> {
        let Some(file) = file else {
            return Ok(Map::new());
        };
        let docs = yaml::load_file(&file)?;
        match docs.first() {
            None => Ok(Map::new()),
            Some(doc) => {
                self.check_node_templates(doc)?;
                vars_map(doc, "a role vars file").map_err(|d| {
                    d.hint("a role's vars and defaults files are mappings of names to values")
                })
            }
        }
    }

    /// `meta/main.yml`: the dependencies and `allow_duplicates`.
    fn role_meta(&self, path: &Path) -> Result<(Vec<Node>, bool)> {
        let Some(file) = yaml_file(&path.join("meta"), "main") else {
            return Ok((Vec::new(), false));
        };
        let docs = yaml::load_file(&file)?;
        let Some(doc) = docs.first().filter(|d| !d.is_null()) else {
            return Ok((Vec::new(), false));
        };
        doc.expect_map("a role's meta/main.yml")?;
        let deps = match doc.get("dependencies") {
            Some(d) if !d.is_null() => d.expect_seq("dependencies")?.to_vec(),
            _ => Vec::new(),
        };
        let dup = match doc.get("allow_duplicates") {
            Some(v) => bool_of(v, "allow_duplicates")?,
            None => false,
        };
        Ok((deps, dup))
    }

    /// Loads a role invocation: its dependencies' tasks, then its own, under one block that
    /// carries the invocation's `when` and keywords. `chain` holds the roles that depend on
    /// this one, outermost first.
    pub(super) fn role_tasks(
        &mut self,
        call: &RoleCall,
        chain: &[Arc<RoleData>],
        outer_tags: &[String],
    ) -> Result<(Vec<Task>, Arc<RoleData>)> {
        let path = self.find_role(&call.name, &call.loc)?;
        let canon = path.canonicalize().unwrap_or_else(|_| path.clone());
        if self.role_stack.contains(&canon) {
            return Err(
                Diag::input(format!("role `{}` depends on itself", call.name))
                    .at(&call.loc)
                    .hint("remove the dependency cycle in meta/main.yml"),
            );
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| call.name.clone());
        let (dep_nodes, meta_dup) = self.role_meta(&path)?;
        let duplicate = !call.from_include && {
            let id = call.identity(&canon);
            let seen = self.play_roles.seen.contains(&id);
            self.play_roles.seen.push(id);
            seen && !call.allow_duplicates.unwrap_or(meta_dup)
        };
        let mut data = RoleData {
            name: name.clone(),
            defaults: self.vars_file(self.role_file(&path, 2, call)?)?,
            role_vars: self.vars_file(self.role_file(&path, 1, call)?)?,
            vars_kw: call.vars.clone(),
            params: call.params.clone(),
            deps: Vec::new(),
        };
        let mut tags = outer_tags.to_vec();
        for t in &call.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        self.role_stack.push(canon);
        let mut tasks = Vec::new();
        let mut dep_chain = chain.to_vec();
        // (Its dependencies are not loaded yet: a parent's are not part of what a dependency
        // sees.)
        dep_chain.push(Arc::new(data.clone()));
        for dep in &dep_nodes {
            let dep_call = self.role_entry(dep)?;
            let (dep_tasks, dep_data) = self.role_tasks(&dep_call, &dep_chain, &tags)?;
            tasks.extend(dep_tasks);
            data.deps.push(dep_data);
        }
        let scope = Arc::new(data.scope(chain, &path));
        let outer_role = self.role.replace(scope);
        let loaded = self.role_own_tasks(&path, call, &tags);
        self.role = outer_role;
        self.role_stack.pop();
        tasks.extend(loaded?);
        let data = Arc::new(data);
        if chain.is_empty() && call.public {
            // Static roles export their defaults and vars to the whole play.
            merge(
                &mut self.play_roles.defaults,
                &data.exported_defaults(),
                false,
            );
            merge(&mut self.play_roles.vars, &data.exported_vars(), false);
        }
        let mut block = Task::synthetic(
            call.loc.clone(),
            path.clone(),
            "role",
            TaskKind::Block {
                block: tasks,
                rescue: Vec::new(),
                always: Vec::new(),
            },
        );
        block.name = Some(name);
        block.when = call.when.clone();
        block.opts = call.opts.clone();
        block.tags = tags;
        block.ran_before = duplicate;
        Ok((vec![block], data))
    }

    /// The role's `tasks/` file, and its handlers added to the play once.
    fn role_own_tasks(
        &mut self,
        path: &Path,
        call: &RoleCall,
        tags: &[String],
    ) -> Result<Vec<Task>> {
        let loc = |i: usize| call.from[i].as_ref().map(|(_, l)| l.clone());
        if let Some(file) = self.role_file(path, 3, call)?
            && !self.play_roles.handler_files.contains(&file)
        {
            self.play_roles.handler_files.push(file.clone());
            let mut handlers = self.task_file_of(&file, tags, loc(3).as_ref(), true)?;
            let role_name = self
                .role
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default();
            // A role's handler can also be notified as `role : handler`.
            for h in &mut handlers {
                if let Some(n) = &h.name {
                    h.listen.push(format!("{role_name} : {n}"));
                }
            }
            self.play_roles.handlers.extend(handlers);
        }
        match self.role_file(path, 0, call)? {
            Some(file) => self.task_file_of(&file, tags, loc(0).as_ref(), false),
            None => Ok(Vec::new()),
        }
    }
}

impl RoleRef {
    pub fn is_templated(&self) -> bool {
        std::iter::once(&self.name)
            .chain(
                [
                    &self.tasks_from,
                    &self.vars_from,
                    &self.defaults_from,
                    &self.handlers_from,
                ]
                .into_iter()
                .flatten(),
            )
            .any(|s| crate::template::is_template(s))
    }
}

impl Loader<'_> {
    /// An `include_role`'s tasks under a block carrying its `apply` keywords (`loc`: the
    /// include, where errors point when its names were rendered at run time).
    pub(super) fn include_role_tasks(&mut self, role: &RoleRef, loc: &Loc) -> Result<Vec<Task>> {
        let mut call = RoleCall::new(role.name.clone(), loc.clone());
        call.from_include = true;
        call.public = false;
        call.allow_duplicates = Some(role.allow_duplicates);
        let from = [
            &role.tasks_from,
            &role.vars_from,
            &role.defaults_from,
            &role.handlers_from,
        ];
        for (i, f) in from.into_iter().enumerate() {
            call.from[i] = f.as_ref().map(|f| (f.clone(), loc.clone()));
        }
        let (tasks, _) = self.role_tasks(&call, &[], &role.apply_tags)?;
        let mut block = Task::synthetic(
            loc.clone(),
            PathBuf::new(),
            "include_role",
            TaskKind::Block {
                block: tasks,
                rescue: Vec::new(),
                always: Vec::new(),
            },
        );
        block.when = role.apply_when.clone();
        Ok(vec![block])
    }
}
