//! Builds the typed playbook from YAML nodes, validating as it goes: every error names
//! file:line:col and says how to fix it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::model::*;
use super::roles::{PlayRoles, roles_path};
use crate::diag::{Diag, Loc, Result};
use crate::modules::{self, did_you_mean};
use crate::template::Templar;
use crate::yaml::{self, Kind, Node};

const PLAY_KEYWORDS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_prompt",
    "vars_files",
    "gather_facts",
    "serial",
    "strategy",
    "handlers",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "any_errors_fatal",
    "max_fail_percentage",
    "connection",
    "become",
    "become_user",
    "become_method",
    "environment",
    "tags",
    "check_mode",
    "diff",
    "no_log",
    "ignore_errors",
    "ignore_unreachable",
    "remote_user",
    "force_handlers",
    "timeout",
    "run_once",
    "roles",
];

const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "loop",
    "loop_control",
    "register",
    "vars",
    "tags",
    "become",
    "become_user",
    "become_method",
    "environment",
    "ignore_errors",
    "ignore_unreachable",
    "no_log",
    "delegate_to",
    "run_once",
    "retries",
    "until",
    "delay",
    "changed_when",
    "failed_when",
    "notify",
    "listen",
    "check_mode",
    "diff",
    "any_errors_fatal",
    "connection",
    "remote_user",
    "timeout",
    "args",
    "action",
    "local_action",
    "with_items",
    "with_list",
    "with_dict",
    "with_indexed_items",
    "with_first_found",
    "with_fileglob",
    "block",
    "rescue",
    "always",
];

/// Ansible keywords mixop knows about but does not implement: named at load time, never ignored.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "async",
        "run the task normally; long commands stream their output",
    ),
    ("poll", "run the task normally"),
    ("throttle", "use --forks or serial"),
    ("debugger", "use -vvv and --log"),
    (
        "collections",
        "use short module names or fully qualified ones",
    ),
    ("module_defaults", "set the arguments on each task"),
    ("include", "use include_tasks or import_tasks"),
    (
        "delegate_facts",
        "set facts on the delegated host with a task of its own",
    ),
    ("order", "order hosts in the inventory"),
    ("become_flags", "not supported"),
    ("become_exe", "not supported"),
];

/// The task variable that carries a `with_<lookup>` loop's terms to its lookup.
const LOOKUP_TERMS: &str = "_mixop_lookup_terms";

/// Whether `k` gives a task its loop: `loop`, or `with_<name>` for any name (a lookup mixop
/// lacks is refused by `loop_keyword`, naming it).
fn is_loop_keyword(k: &str) -> bool {
    k == "loop" || k.strip_prefix("with_").is_some_and(|l| !l.is_empty())
}

pub struct Loader<'t> {
    templar: &'t Templar,
    /// `-e` variables: with an import's `vars`, all that is known when a templated
    /// `import_playbook` path is rendered (as in Ansible).
    extra_vars: Map<String, Value>,
    /// Files being imported, to catch import cycles.
    stack: Vec<PathBuf>,
    /// The playbook's directory (the root for `files/` and `templates/`).
    pub(super) root: Option<PathBuf>,
    /// Where roles are searched after the playbook's directory (`roles_path()`).
    pub(super) roles_path: Vec<PathBuf>,
    /// The role whose tasks are being loaded.
    pub(super) role: Option<Arc<RoleScope>>,
    /// Roles being loaded, to catch dependency cycles.
    pub(super) role_stack: Vec<PathBuf>,
    pub(super) play_roles: PlayRoles,
}

impl<'t> Loader<'t> {
    fn new(templar: &'t Templar, root: &Path) -> Loader<'t> {
        Loader {
            templar,
            extra_vars: Map::new(),
            stack: Vec::new(),
            root: Some(root.to_path_buf()),
            roles_path: roles_path(),
            role: None,
            role_stack: Vec::new(),
            play_roles: PlayRoles::default(),
        }
    }
}

/// What an `import_playbook` entry gives every play it imports.
#[derive(Clone, Default)]
struct Import {
    vars: Map<String, Value>,
    /// Conditions every task of the imported plays carries (Ansible applies them per task).
    when: Vec<Value>,
    tags: Vec<String>,
}

/// Loads a playbook and everything it imports, validating the whole plan.
pub fn load_playbook(
    path: &Path,
    templar: &Templar,
    extra_vars: &Map<String, Value>,
) -> Result<Playbook> {
    let mut loader = Loader::new(templar, path.parent().unwrap_or(Path::new("")));
    loader.extra_vars = extra_vars.clone();
    let plays = loader.playbook_file(path, &Import::default())?;
    Ok(Playbook {
        path: path.to_path_buf(),
        plays,
    })
}

/// Loads a task file at run time (`include_tasks` with a templated name). `playbook_dir` is
/// searched for `src` files too, as at load time; `role` is the role of the including task.
pub fn load_task_file(
    path: &Path,
    templar: &Templar,
    inherited_tags: &[String],
    playbook_dir: &Path,
    role: Option<Arc<RoleScope>>,
) -> Result<Vec<Task>> {
    let mut loader = Loader::new(templar, playbook_dir);
    loader.role = role;
    loader.task_file(path, inherited_tags, None)
}

/// Loads an `include_role` at run time, its names rendered: the role's tasks (dependencies
/// first) under a block carrying `apply`. `loc` is the include's; `role_ids` the identities of
/// the roles that already ran in the play (dependencies among them are left out), to which
/// this role's dependencies are added.
pub fn load_role(
    role: &RoleRef,
    loc: &Loc,
    templar: &Templar,
    playbook_dir: &Path,
    role_ids: &mut Vec<String>,
) -> Result<Vec<Task>> {
    let mut loader = Loader::new(templar, playbook_dir);
    loader.play_roles.seen = std::mem::take(role_ids);
    let tasks = loader.include_role_tasks(role, loc);
    *role_ids = std::mem::take(&mut loader.play_roles.seen);
    tasks
}

/// A task's module found as an Ansible plugin file: `library/NAME.py|.ps1` beside the playbook
/// or the task file, or `collections/ansible_collections/NS/COLL/plugins/modules/NAME.py`.
fn python_plugin<'a>(name: &str, dirs: impl Iterator<Item = &'a PathBuf>) -> Option<PathBuf> {
    let parts: Vec<&str> = name.split('.').collect();
    for dir in dirs {
        let mut candidates = Vec::new();
        let short = parts.last().copied().unwrap_or(name);
        for ext in ["py", "ps1"] {
            candidates.push(dir.join("library").join(format!("{short}.{ext}")));
        }
        if let [ns, coll, module] = parts.as_slice() {
            let base = dir
                .join("collections/ansible_collections")
                .join(ns)
                .join(coll);
            for ext in ["py", "ps1"] {
                candidates.push(base.join("plugins/modules").join(format!("{module}.{ext}")));
            }
        }
        if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
            return Some(found);
        }
    }
    None
}

pub(super) fn keys_of(node: &Node, what: &str) -> Result<Vec<(String, Node, Node)>> {
    Ok(node
        .expect_map(what)?
        .iter()
        .map(|(k, v)| (k.key_text(), k.clone(), v.clone()))
        .collect())
}

fn unknown_key(key: &str, key_node: &Node, known: &[&str], what: &str) -> Diag {
    if let Some((_, hint)) = UNSUPPORTED.iter().find(|(k, _)| *k == key) {
        return Diag::input(format!("`{key}` is not supported by mixop"))
            .at(&key_node.loc)
            .label("not supported")
            .hint(*hint);
    }
    let mut d = Diag::input(format!("unknown {what} keyword `{key}`"))
        .at(&key_node.loc)
        .label("unknown keyword");
    if let Some(s) = did_you_mean(key, known) {
        d = d.hint(format!("did you mean `{s}`?"));
    }
    d
}

pub(super) fn bool_of(node: &Node, what: &str) -> Result<bool> {
    match &node.kind {
        Kind::Bool(b) => Ok(*b),
        Kind::Str(s) => crate::value::parse_bool(s).ok_or_else(|| {
            Diag::input(format!("`{what}` must be a boolean, found `{s}`")).at(&node.loc)
        }),
        _ => Err(Diag::input(format!(
            "`{what}` must be a boolean, found {}",
            node.type_name()
        ))
        .at(&node.loc)),
    }
}

pub(super) fn string_of(node: &Node, what: &str) -> Result<String> {
    match &node.kind {
        Kind::Str(s) => Ok(s.clone()),
        Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => {
            Ok(crate::value::to_text(&node.to_value()))
        }
        _ => Err(Diag::input(format!(
            "`{what}` must be a string, found {}",
            node.type_name()
        ))
        .at(&node.loc)),
    }
}

/// A string or a list of strings (`tags`, `notify`, `listen`).
pub(super) fn string_list(node: &Node, what: &str) -> Result<Vec<String>> {
    match &node.kind {
        Kind::Seq(items) => items.iter().map(|i| string_of(i, what)).collect(),
        Kind::Null => Ok(Vec::new()),
        Kind::Str(s) if what == "tags" => Ok(s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()),
        _ => Ok(vec![string_of(node, what)?]),
    }
}

pub(super) fn vars_map(node: &Node, what: &str) -> Result<Map<String, Value>> {
    if node.is_null() {
        return Ok(Map::new());
    }
    let pairs = node.expect_map(what)?;
    let mut m = Map::new();
    for (k, v) in pairs {
        let name = k.key_text();
        if !modules::builtin::is_identifier(&name) {
            return Err(Diag::input(format!("`{name}` is not a valid variable name"))
                .at(&k.loc)
                .hint("variable names are letters, digits and underscores, not starting with a digit"));
        }
        m.insert(name, v.to_value());
    }
    Ok(m)
}

impl Loader<'_> {
    fn enter(&mut self, path: &Path, loc: Option<&Loc>) -> Result<()> {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.stack.contains(&canon) {
            return Err(Diag::input(format!("`{}` imports itself", path.display()))
                .at_opt(loc)
                .hint("remove the import cycle"));
        }
        self.stack.push(canon);
        Ok(())
    }

    fn read(&self, path: &Path, loc: Option<&Loc>) -> Result<Vec<Node>> {
        if !path.is_file() {
            return Err(Diag::input(format!("file not found: {}", path.display())).at_opt(loc));
        }
        yaml::load_file(path)
    }

    fn playbook_file(&mut self, path: &Path, import: &Import) -> Result<Vec<Play>> {
        self.enter(path, None)?;
        let docs = self.read(path, None)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let Some(doc) = docs.first() else {
            return Err(Diag::input(format!(
                "{}: the playbook is empty",
                path.display()
            )));
        };
        let entries = doc.as_seq().ok_or_else(|| {
            Diag::input(format!(
                "a playbook must be a list of plays, found {}",
                doc.type_name()
            ))
            .at(&doc.loc)
            .hint("start each play with `- hosts: ...`")
        })?;
        let mut plays = Vec::new();
        for entry in entries {
            if let Some(target) = entry
                .get("import_playbook")
                .or_else(|| entry.get("ansible.builtin.import_playbook"))
            {
                let mut inner = import.clone();
                for (k, knode, v) in keys_of(entry, "an import_playbook entry")? {
                    match k.as_str() {
                        "import_playbook" | "ansible.builtin.import_playbook" | "name" => {}
                        "vars" => {
                            crate::value::merge(&mut inner.vars, &vars_map(&v, "vars")?, false)
                        }
                        "when" => inner.when.extend(self.conditions(&v, "when")?),
                        "tags" => {
                            for t in string_list(&v, "tags")? {
                                if !inner.tags.contains(&t) {
                                    inner.tags.push(t);
                                }
                            }
                        }
                        _ => {
                            return Err(unknown_key(
                                &k,
                                &knode,
                                &["import_playbook", "vars", "name", "when", "tags"],
                                "import_playbook",
                            ));
                        }
                    }
                }
                let file = self.import_path(target, &inner.vars)?;
                let sub = dir.join(&file);
                if !sub.is_file() {
                    return Err(Diag::no_such_file("imported playbook", &sub).at(&target.loc));
                }
                plays.extend(self.playbook_file(&sub, &inner)?);
                continue;
            }
            plays.push(self.play(entry, &dir, import)?);
        }
        self.stack.pop();
        Ok(plays)
    }

    /// An `import_playbook` path, rendered (when templated) with the import's `vars` and the
    /// extra vars: nothing else is known when playbooks are loaded.
    fn import_path(&self, target: &Node, vars: &Map<String, Value>) -> Result<String> {
        let file = string_of(target, "import_playbook")?;
        self.check_template(&file, &target.loc)?;
        if !crate::template::is_template(&file) {
            return Ok(file);
        }
        let mut known = vars.clone();
        crate::value::merge(&mut known, &self.extra_vars, false);
        let ctx = crate::template::Vars {
            vars: std::sync::Arc::new(known),
            hostvars: Default::default(),
            data_vars: Default::default(),
        };
        self.templar.render_str(&file, &ctx).map_err(|e| {
            Diag::input(format!("import_playbook path: {}", e.message))
                .at(&target.loc)
                .hint(
                    "an imported playbook's path is rendered when playbooks are loaded: only \
                     extra vars (-e) and the import's `vars` are known then",
                )
        })
    }

    fn play(&mut self, node: &Node, dir: &Path, import: &Import) -> Result<Play> {
        let import_vars = &import.vars;
        let pairs = keys_of(node, "a play")?;
        if node.get("hosts").is_none() {
            let mut d = Diag::input("a play needs `hosts`")
                .at(&node.loc)
                .label("this play");
            if pairs
                .iter()
                .any(|(k, _, _)| modules::lookup(k).is_some() || k == "block")
            {
                d = d.hint("this looks like a task: tasks go under `tasks:` of a play");
            }
            return Err(d);
        }
        let mut play = Play {
            named: false,
            loc: node.loc.clone(),
            vars_prompt: Vec::new(),
            name: String::new(),
            hosts: String::new(),
            dir: dir.to_path_buf(),
            vars: import_vars.clone(),
            vars_files: Vec::new(),
            gather_facts: None,
            serial: Vec::new(),
            strategy: Strategy::Linear,
            any_errors_fatal: false,
            max_fail_percentage: None,
            force_handlers: false,
            opts: TaskOpts::default(),
            tags: Vec::new(),
            when: import.when.clone(),
            role_defaults: Map::new(),
            role_vars: Map::new(),
            role_ids: Vec::new(),
            pre_tasks: Vec::new(),
            tasks: Vec::new(),
            post_tasks: Vec::new(),
            handlers: Vec::new(),
        };
        let mut sections: Vec<(String, Node)> = Vec::new();
        for (k, knode, v) in &pairs {
            match k.as_str() {
                "name" => play.name = string_of(v, "name")?,
                "hosts" => {
                    play.hosts = match &v.kind {
                        Kind::Seq(items) => items
                            .iter()
                            .map(|i| string_of(i, "hosts"))
                            .collect::<Result<Vec<_>>>()?
                            .join(","),
                        _ => string_of(v, "hosts")?,
                    }
                }
                "vars" => crate::value::merge(&mut play.vars, &vars_map(v, "vars")?, false),
                "vars_prompt" => {
                    for entry in v.expect_seq("vars_prompt")? {
                        play.vars_prompt.push(self.var_prompt(entry)?);
                    }
                }
                "vars_files" => {
                    for f in v.expect_seq("vars_files")? {
                        let candidates = match &f.kind {
                            Kind::Seq(items) => items
                                .iter()
                                .map(|i| string_of(i, "vars_files"))
                                .collect::<Result<Vec<_>>>()?,
                            _ => vec![string_of(f, "vars_files")?],
                        };
                        // Of a first-found list only the file that would be loaded is checked.
                        let chosen = match &f.kind {
                            Kind::Seq(items) => items.iter().zip(&candidates).find(|(i, name)| {
                                i.as_str().is_some_and(crate::template::is_template)
                                    || dir.join(name).is_file()
                            }),
                            _ => Some((f, &candidates[0])),
                        };
                        if let Some((node, name)) = chosen {
                            check_vars_file(&dir.join(name), node)?;
                        }
                        play.vars_files.push((candidates, f.loc.clone()));
                    }
                }
                "gather_facts" => play.gather_facts = Some(bool_of(v, k)?),
                "serial" => play.serial = serial_of(v)?,
                "strategy" => {
                    play.strategy = match string_of(v, k)?.as_str() {
                        "linear" | "ansible.builtin.linear" => Strategy::Linear,
                        "free" | "ansible.builtin.free" => Strategy::Free,
                        other => {
                            return Err(Diag::input(format!("unknown strategy `{other}`"))
                                .at(&v.loc)
                                .hint("mixop supports `linear` and `free`"));
                        }
                    }
                }
                "any_errors_fatal" => play.any_errors_fatal = bool_of(v, k)?,
                "force_handlers" => play.force_handlers = bool_of(v, k)?,
                "max_fail_percentage" => {
                    play.max_fail_percentage = Some(v.to_value().as_f64().ok_or_else(|| {
                        Diag::input("`max_fail_percentage` must be a number").at(&v.loc)
                    })?)
                }
                "tags" => play.tags = string_list(v, "tags")?,
                "pre_tasks" | "roles" | "tasks" | "post_tasks" | "handlers" => {
                    sections.push((k.clone(), v.clone()))
                }
                _ if self.task_opt(&mut play.opts, k, v)? => {}
                _ => return Err(unknown_key(k, knode, PLAY_KEYWORDS, "play")),
            }
        }
        if play.hosts.trim().is_empty() {
            return Err(Diag::input("`hosts` is empty").at(&node.loc));
        }
        for t in &import.tags {
            if !play.tags.contains(t) {
                play.tags.push(t.clone());
            }
        }
        play.named = !play.name.is_empty();
        if !play.named {
            play.name = play.hosts.clone();
        }
        // In the order they run, so that a role runs once where it first appears.
        const ORDER: [&str; 5] = ["pre_tasks", "roles", "tasks", "post_tasks", "handlers"];
        sections.sort_by_key(|(k, _)| ORDER.iter().position(|o| o == k));
        self.play_roles = PlayRoles::default();
        let mut roles = Vec::new();
        for (k, v) in sections {
            if k == "roles" {
                // Roles run after pre_tasks, before tasks (ansible-core's `Play.compile`).
                for entry in v.expect_seq("roles")? {
                    let call = self.role_entry(entry)?;
                    roles.extend(self.role_tasks(&call, &[], &play.tags)?.0);
                }
                continue;
            }
            let tasks = self.task_list(&v, dir, &play.tags, k == "handlers")?;
            match k.as_str() {
                "pre_tasks" => play.pre_tasks = tasks,
                "tasks" => play.tasks = tasks,
                "post_tasks" => play.post_tasks = tasks,
                _ => play.handlers = tasks,
            }
        }
        play.tasks.splice(0..0, roles);
        let play_roles = std::mem::take(&mut self.play_roles);
        // Role handlers come before the play's own (ansible-core's `Play.compile_roles_handlers`).
        play.handlers.splice(0..0, play_roles.handlers);
        play.role_defaults = play_roles.defaults;
        play.role_vars = play_roles.vars;
        play.role_ids = play_roles.seen;
        let mut topics: Vec<(String, bool)> = Vec::new();
        handler_topics(&play.handlers, &mut topics);
        for list in [
            &play.pre_tasks,
            &play.tasks,
            &play.post_tasks,
            &play.handlers,
        ] {
            check_notify(list, &topics)?;
        }
        Ok(play)
    }

    /// Parses keywords shared by plays, blocks and tasks. Returns false for other keys.
    pub(super) fn task_opt(&self, opts: &mut TaskOpts, k: &str, v: &Node) -> Result<bool> {
        match k {
            "become" => opts.become_ = Some(bool_of(v, k)?),
            "become_user" => opts.become_user = Some(self.str_tmpl(v, k)?),
            "become_method" => {
                let m = string_of(v, k)?;
                if m != "sudo" {
                    return Err(Diag::input(format!("become_method `{m}` is not supported"))
                        .at(&v.loc)
                        .hint("mixop supports `sudo`"));
                }
                opts.become_method = Some(m);
            }
            "connection" => {
                let c = string_of(v, k)?;
                if crate::connection::Transport::parse(&c).is_none() {
                    return Err(Diag::input(format!("unknown connection `{c}`"))
                        .at(&v.loc)
                        .hint("use `ssh`, `winrm` or `local`"));
                }
                opts.connection = Some(c);
            }
            "remote_user" => opts.remote_user = Some(self.str_tmpl(v, k)?),
            "no_log" => opts.no_log = Some(bool_of(v, k)?),
            "ignore_errors" => opts.ignore_errors = Some(bool_of(v, k)?),
            "ignore_unreachable" => opts.ignore_unreachable = Some(bool_of(v, k)?),
            "check_mode" => opts.check_mode = Some(bool_of(v, k)?),
            "diff" => opts.diff = Some(bool_of(v, k)?),
            "any_errors_fatal" => opts.any_errors_fatal = Some(bool_of(v, k)?),
            "run_once" => opts.run_once = Some(bool_of(v, k)?),
            "delegate_to" => opts.delegate_to = Some(self.str_tmpl(v, k)?),
            "timeout" => {
                let secs = v.to_value().as_u64().ok_or_else(|| {
                    Diag::input("`timeout` must be a number of seconds").at(&v.loc)
                })?;
                crate::value::whole_seconds(secs, "timeout")
                    .map_err(|e| Diag::input(e).at(&v.loc))?;
                opts.timeout = Some(secs);
            }
            "environment" => {
                let value = v.to_value();
                match &value {
                    Value::Object(_) => self.check_value_templates(&value, &v.loc)?,
                    Value::String(s) if crate::template::is_template(s) => {
                        self.check_template(s, &v.loc)?
                    }
                    _ => {
                        return Err(Diag::input(
                            "`environment` must be a mapping of variable names to values",
                        )
                        .at(&v.loc));
                    }
                }
                opts.environment.push(value);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn str_tmpl(&self, v: &Node, what: &str) -> Result<String> {
        let s = string_of(v, what)?;
        self.check_template(&s, &v.loc)?;
        Ok(s)
    }

    pub(super) fn check_template(&self, s: &str, loc: &Loc) -> Result<()> {
        if !crate::template::is_template(s) {
            return Ok(());
        }
        self.templar.check_template(s).map_err(|e| {
            let d = Diag::input(format!("template error: {}", e.message))
                .at(loc)
                .label("in this template");
            match self.python_filter(&e.message, loc) {
                Some(file) => d.hint(format!(
                    "{} defines it: mixop cannot run Ansible's Python filter and test plugins; \
                     write the expression with Jinja's and Ansible's built-in filters",
                    file.display()
                )),
                None => d,
            }
        })
    }

    /// A template file a task renders: its syntax and every filter, test and lookup it names,
    /// checked now (as the task's own templates are) and reported at the file's line.
    fn check_template_file(&self, path: &Path, used_at: &Loc) -> Result<()> {
        let (text, _) = crate::vault::read_text(path).map_err(|d| d.at(used_at))?;
        let Err(e) = self.templar.check_template(&text) else {
            return Ok(());
        };
        let line = e.line.unwrap_or(1);
        let offset: usize = text
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum();
        let len = text[offset..].find('\n').unwrap_or(text.len() - offset);
        let src = crate::diag::Source::new(path, text.clone());
        let message = e
            .message
            .trim_end_matches(&format!(" (template line {line})"))
            .to_string();
        let hint = match self.python_filter(&e.message, used_at) {
            Some(file) => format!(
                "{} defines it: mixop cannot run Ansible's Python filter and test plugins \
                 (the template is rendered by the task at {used_at})",
                file.display()
            ),
            None => format!("the template is rendered by the task at {used_at}"),
        };
        Err(Diag::input(format!("template error: {message}"))
            .at(&Loc {
                src,
                offset,
                len,
                line,
                col: 1,
            })
            .label("in this template")
            .hint(hint))
    }

    /// For "no filter/test named 'x'": the `filter_plugins/` or `test_plugins/` Python file
    /// beside the playbook or the task file that defines `x`, if any.
    fn python_filter(&self, message: &str, loc: &Loc) -> Option<PathBuf> {
        let (kind, rest) = message
            .strip_prefix("no filter named '")
            .map(|r| ("filter_plugins", r))
            .or_else(|| {
                message
                    .strip_prefix("no test named '")
                    .map(|r| ("test_plugins", r))
            })?;
        let name = rest.split('\'').next()?;
        let short = name.rsplit('.').next().unwrap_or(name);
        [Some(loc.dir()), self.root.clone()]
            .into_iter()
            .flatten()
            .filter_map(|d| std::fs::read_dir(d.join(kind)).ok())
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "py"))
            .find(|p| {
                std::fs::read_to_string(p).is_ok_and(|t| {
                    t.contains(&format!("'{short}'")) || t.contains(&format!("\"{short}\""))
                })
            })
    }

    fn check_value_templates(&self, v: &Value, loc: &Loc) -> Result<()> {
        match v {
            Value::String(s) => self.check_template(s, loc),
            Value::Array(a) => a
                .iter()
                .try_for_each(|x| self.check_value_templates(x, loc)),
            Value::Object(m) => m
                .values()
                .try_for_each(|x| self.check_value_templates(x, loc)),
            _ => Ok(()),
        }
    }

    /// Checks a node's templates, pointing at the exact node that is wrong.
    pub(super) fn check_node_templates(&self, n: &Node) -> Result<()> {
        match &n.kind {
            Kind::Str(s) => self.check_template(s, &n.loc),
            Kind::Seq(items) => items.iter().try_for_each(|x| self.check_node_templates(x)),
            Kind::Map(pairs) => pairs.iter().try_for_each(|(k, v)| {
                self.check_node_templates(k)?;
                self.check_node_templates(v)
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn conditions(&self, v: &Node, what: &str) -> Result<Vec<Value>> {
        let items: Vec<&Node> = match &v.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            match &item.kind {
                Kind::Bool(b) => out.push(Value::Bool(*b)),
                Kind::Str(s) => {
                    let expr = s.trim();
                    let check = if expr.starts_with("{{") && expr.ends_with("}}") {
                        self.templar.check_template(expr)
                    } else {
                        self.templar.check_expr(expr)
                    };
                    check.map_err(|e| {
                        Diag::input(format!("`{what}` does not compile: {}", e.message))
                            .at(&item.loc)
                            .label("this expression")
                            .hint(format!(
                                "`{what}` takes a bare Jinja expression such as `result.rc == 0`"
                            ))
                    })?;
                    out.push(Value::String(s.clone()));
                }
                Kind::Int(_) | Kind::Float(_) => out.push(item.to_value()),
                _ => {
                    return Err(Diag::input(format!(
                        "`{what}` must be an expression, a boolean or a list of them, found {}",
                        item.type_name()
                    ))
                    .at(&item.loc));
                }
            }
        }
        Ok(out)
    }

    fn task_list(
        &mut self,
        node: &Node,
        dir: &Path,
        tags: &[String],
        handlers: bool,
    ) -> Result<Vec<Task>> {
        if node.is_null() {
            return Ok(Vec::new());
        }
        let items = node.expect_seq("a task list")?;
        let mut out = Vec::new();
        for item in items {
            out.push(self.task(item, dir, tags, handlers)?);
        }
        Ok(out)
    }

    pub fn task_file(
        &mut self,
        path: &Path,
        tags: &[String],
        loc: Option<&Loc>,
    ) -> Result<Vec<Task>> {
        self.task_file_of(path, tags, loc, false)
    }

    /// A file of tasks, or of handlers.
    pub(super) fn task_file_of(
        &mut self,
        path: &Path,
        tags: &[String],
        loc: Option<&Loc>,
        handlers: bool,
    ) -> Result<Vec<Task>> {
        self.enter(path, loc)?;
        let docs = self.read(path, loc)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let tasks = match docs.first() {
            None => Vec::new(),
            Some(doc) if doc.is_null() => Vec::new(),
            Some(doc) => {
                if doc.as_seq().is_none() {
                    return Err(Diag::input(format!(
                        "a task file must be a list of tasks, found {}",
                        doc.type_name()
                    ))
                    .at(&doc.loc));
                }
                self.task_list(doc, &dir, tags, handlers)?
            }
        };
        self.stack.pop();
        Ok(tasks)
    }

    fn task(
        &mut self,
        node: &Node,
        dir: &Path,
        inherited_tags: &[String],
        handler: bool,
    ) -> Result<Task> {
        let pairs = keys_of(node, "a task")?;
        let mut task = Task::synthetic(
            node.loc.clone(),
            dir.to_path_buf(),
            "",
            TaskKind::Meta {
                action: "noop".into(),
            },
        );
        task.tags = inherited_tags.to_vec();
        task.role = self.role.clone();
        let mut action: Option<(String, Node, Node)> = None;
        let mut args_kw: Option<Node> = None;
        let mut block_parts: Vec<(String, Node)> = Vec::new();
        let mut local_action = false;
        for (k, knode, v) in &pairs {
            match k.as_str() {
                "name" => {
                    let n = string_of(v, "name")?;
                    self.check_template(&n, &v.loc)?;
                    task.name = Some(n);
                }
                "when" => task.when = self.conditions(v, "when")?,
                "until" => task.until = self.conditions(v, "until")?,
                "changed_when" => task.changed_when = Some(self.conditions(v, "changed_when")?),
                "failed_when" => task.failed_when = Some(self.conditions(v, "failed_when")?),
                k if is_loop_keyword(k) => {
                    if task.loop_.is_some() {
                        return Err(Diag::input("a task can have only one loop").at(&knode.loc));
                    }
                    task.loop_ = Some(self.loop_keyword(k, knode, v, &mut task.vars)?);
                }
                "loop_control" => task.loop_control = loop_control(v, self)?,
                "register" => task.register = Some(register_name(v)?),
                "vars" => {
                    self.check_node_templates(v)?;
                    task.vars.extend(vars_map(v, "vars")?);
                }
                "tags" => {
                    for t in string_list(v, "tags")? {
                        if !task.tags.contains(&t) {
                            task.tags.push(t);
                        }
                    }
                }
                "retries" => task.retries = Some(v.to_value()),
                "delay" => task.delay = Some(delay_value(v)?),
                "notify" => task.notify = string_list(v, "notify")?,
                "listen" if handler => task.listen = string_list(v, "listen")?,
                "block" | "rescue" | "always" => block_parts.push((k.clone(), v.clone())),
                "args" => args_kw = Some(v.clone()),
                "action" | "local_action" => {
                    if action.is_some() {
                        return Err(two_actions(&action, k, knode));
                    }
                    local_action = k == "local_action";
                    let (name, args_node) = split_action(v)?;
                    action = Some((name, knode.clone(), args_node));
                }
                _ if self.task_opt(&mut task.opts, k, v)? => {}
                _ if TASK_KEYWORDS.contains(&k.as_str()) || k == "listen" => {
                    return Err(
                        Diag::input(format!("`{k}` is only valid on handlers")).at(&knode.loc)
                    );
                }
                _ => {
                    refuse_unsupported_key(k, knode)?;
                    if action.is_some() {
                        return Err(two_actions(&action, k, knode));
                    }
                    action = Some((k.clone(), knode.clone(), v.clone()));
                }
            }
        }
        if local_action {
            task.opts.delegate_to = Some("localhost".into());
        }
        if !block_parts.is_empty() {
            if let Some((name, knode, _)) = &action {
                return Err(
                    Diag::input(format!("a block cannot also run the module `{name}`"))
                        .at(&knode.loc)
                        .hint("move the module into a task inside `block:`"),
                );
            }
            task.kind = self.block(block_parts, dir, &task.tags, handler)?;
            return Ok(task);
        }
        let Some((name, knode, args_node)) = action else {
            return Err(Diag::input("this task has no module")
                .at(&node.loc)
                .hint("add a module such as `command: ...`, or check the indentation"));
        };
        self.action(&mut task, &name, &knode, &args_node, args_kw.as_ref())?;
        Ok(task)
    }

    /// One `vars_prompt` entry. `encrypt` (and its `salt`/`salt_size`) is refused: mixop has
    /// no passlib-compatible hashing to give the same result Ansible would.
    fn var_prompt(&mut self, entry: &Node) -> Result<crate::playbook::VarPrompt> {
        let mut vp = crate::playbook::VarPrompt {
            name: String::new(),
            prompt: String::new(),
            default: None,
            private: true,
            confirm: false,
            unsafe_: false,
        };
        let mut prompt = None;
        for (k, knode, v) in keys_of(entry, "a vars_prompt entry")? {
            match k.as_str() {
                "name" => vp.name = string_of(&v, "name")?,
                "prompt" => {
                    let s = string_of(&v, "prompt")?;
                    self.check_template(&s, &v.loc)?;
                    prompt = Some(s);
                }
                "default" => {
                    self.check_node_templates(&v)?;
                    vp.default = Some(v.to_value());
                }
                "private" => vp.private = bool_of(&v, "private")?,
                "confirm" => vp.confirm = bool_of(&v, "confirm")?,
                "unsafe" => vp.unsafe_ = bool_of(&v, "unsafe")?,
                "encrypt" | "salt" | "salt_size" => {
                    return Err(Diag::input(format!(
                        "vars_prompt: `{k}` is not supported by mixop"
                    ))
                    .at(&knode.loc)
                    .label("not supported")
                    .hint(
                        "mixop cannot hash the answer as Ansible's passlib would; prompt for \
                         the plain value and hash it in a task (or pass the hash with -e)",
                    ));
                }
                other => {
                    let known = [
                        "name",
                        "prompt",
                        "default",
                        "private",
                        "confirm",
                        "unsafe",
                        "encrypt",
                        "salt",
                        "salt_size",
                    ];
                    let mut d = Diag::input(format!("unknown vars_prompt key `{other}`"))
                        .at(&knode.loc)
                        .label("unknown key");
                    if let Some(s) = did_you_mean(other, &known) {
                        d = d.hint(format!("did you mean `{s}`?"));
                    }
                    return Err(d);
                }
            }
        }
        if vp.name.is_empty() {
            return Err(Diag::input("a vars_prompt entry needs `name`").at(&entry.loc));
        }
        vp.prompt = prompt.unwrap_or_else(|| vp.name.clone());
        Ok(vp)
    }

    /// A loop keyword's value as the loop the engine runs. `with_items` flattens one level,
    /// `with_dict` goes through dict2items, and `with_<lookup>` queries the lookup with its
    /// terms, which ride in a task variable (`vars`) so templates in them render lazily.
    fn loop_keyword(
        &mut self,
        k: &str,
        knode: &Node,
        v: &Node,
        vars: &mut serde_json::Map<String, Value>,
    ) -> Result<Value> {
        self.check_node_templates(v)?;
        if let Some(lookup) = k.strip_prefix("with_")
            && lookup != "items"
        {
            if !crate::template::lookups::is_supported(lookup) {
                return Err(Diag::input(format!(
                    "`{k}`: the lookup plugin `{lookup}` is not supported by mixop"
                ))
                .at(&knode.loc)
                .label("unknown lookup")
                .hint(format!(
                    "mixop's lookups: {}",
                    crate::template::lookups::SUPPORTED.join(", ")
                )));
            }
            // ansible-core: `with_X: terms` runs lookup X with `terms` as its list of terms
            // (a string is templated first, a non-list is one term).
            vars.insert(LOOKUP_TERMS.into(), v.to_value());
            return Ok(Value::String(format!(
                "{{{{ {}('{lookup}', {LOOKUP_TERMS}) }}}}",
                crate::template::lookups::WITH_FUNCTION
            )));
        }
        let value = match (k, v.to_value()) {
            ("with_items", Value::String(s)) if crate::template::is_template(&s) => {
                Value::String(wrap_expr(&s, "| flatten(levels=1)"))
            }
            ("with_items", Value::Array(a)) => Value::Array(flatten_once(a)),
            (_, v2 @ (Value::Array(_) | Value::String(_))) => v2,
            (_, other) => {
                return Err(Diag::input(format!(
                    "`{k}` needs a list or a template that yields one, found {}",
                    v.type_name()
                ))
                .at(&v.loc)
                .hint(format!("got {other}")));
            }
        };
        if let Value::String(s) = &value
            && !crate::template::is_template(s)
        {
            return Err(
                Diag::input(format!("`{k}` needs a list, found the string `{s}`"))
                    .at(&v.loc)
                    .hint(format!(
                        "write `{k}: \"{{{{ {s} }}}}\"` to loop over a variable"
                    )),
            );
        }
        Ok(value)
    }

    /// `block`, `rescue` and `always` as the task's kind.
    fn block(
        &mut self,
        parts: Vec<(String, Node)>,
        dir: &Path,
        tags: &[String],
        handler: bool,
    ) -> Result<TaskKind> {
        let mut lists: [Vec<Task>; 3] = Default::default();
        for (k, v) in parts {
            let i = ["block", "rescue", "always"]
                .iter()
                .position(|x| *x == k)
                .unwrap_or(0);
            lists[i] = self.task_list(&v, dir, tags, handler)?;
        }
        let [block, rescue, always] = lists;
        Ok(TaskKind::Block {
            block,
            rescue,
            always,
        })
    }

    fn action(
        &mut self,
        task: &mut Task,
        name: &str,
        knode: &Node,
        args_node: &Node,
        args_kw: Option<&Node>,
    ) -> Result<()> {
        task.action = name.to_string();
        let short = name.rsplit('.').next().unwrap_or(name);
        let builtin_ns = name == short
            || name.starts_with("ansible.builtin.")
            || name.starts_with("ansible.legacy.");
        if builtin_ns && matches!(short, "import_tasks" | "include_tasks") {
            let file_node = match &args_node.kind {
                Kind::Map(_) => args_node.get("file").cloned().ok_or_else(|| {
                    Diag::input(format!("`{short}` needs `file`")).at(&args_node.loc)
                })?,
                _ => args_node.clone(),
            };
            if let Some(pairs) = args_node.as_map() {
                for (k, _) in pairs {
                    if k.key_text() != "file" {
                        return Err(Diag::input(format!(
                            "`{short}` argument `{}` is not supported",
                            k.key_text()
                        ))
                        .at(&k.loc));
                    }
                }
            }
            let file = string_of(&file_node, short)?;
            self.check_template(&file, &file_node.loc)?;
            let templated = crate::template::is_template(&file);
            if short == "import_tasks" {
                if templated {
                    return Err(Diag::input(
                        "`import_tasks` is static: its file name cannot use variables",
                    )
                    .at(&file_node.loc)
                    .hint("use `include_tasks` for a file chosen at run time"));
                }
                if task.loop_.is_some() {
                    return Err(Diag::input("`import_tasks` cannot loop")
                        .at(&knode.loc)
                        .hint("use `include_tasks` with `loop`"));
                }
                let path = task.dir.join(&file);
                let tasks = self.task_file(&path, &task.tags, Some(&file_node.loc))?;
                task.kind = TaskKind::Block {
                    block: tasks,
                    rescue: Vec::new(),
                    always: Vec::new(),
                };
                return Ok(());
            }
            // include_tasks: tags and conditions apply to the include itself, not the tasks.
            let preloaded = if templated {
                None
            } else {
                Some(self.task_file(&task.dir.join(&file), &[], Some(&file_node.loc))?)
            };
            task.kind = TaskKind::IncludeTasks { file, preloaded };
            return Ok(());
        }
        if builtin_ns && matches!(short, "import_role" | "include_role") {
            let (call, rref) = self.role_action(short, args_node, task)?;
            if short == "import_role" {
                let (tasks, _) = self.role_tasks(&call, &[], &task.tags)?;
                task.kind = TaskKind::Block {
                    block: tasks,
                    rescue: Vec::new(),
                    always: Vec::new(),
                };
                return Ok(());
            }
            // include_role is loaded when it runs; a role named literally is checked now.
            if !rref.is_templated() {
                self.role_tasks(&call, &[], &rref.apply_tags)?;
            }
            task.kind = TaskKind::IncludeRole {
                role: Box::new(rref),
            };
            return Ok(());
        }
        if builtin_ns && short == "meta" {
            let action = string_of(args_node, "meta")?;
            if !modules::builtin::META_ACTIONS.contains(&action.as_str()) {
                return Err(Diag::input(format!("unknown meta action `{action}`"))
                    .at(&args_node.loc)
                    .hint(format!(
                        "mixop supports: {}",
                        modules::builtin::META_ACTIONS.join(", ")
                    )));
            }
            task.kind = TaskKind::Meta { action };
            return Ok(());
        }
        if builtin_ns && short == "import_playbook" {
            return Err(Diag::input(
                "`import_playbook` is only valid at the top level of a playbook",
            )
            .at(&knode.loc));
        }
        let Some(module) = modules::lookup(name) else {
            let mut candidates: Vec<&str> = modules::names();
            // A dotted name is a module's; a short one may be a misspelt keyword, but only a
            // near miss (`dnf` is a module mixop lacks, not a typo of `diff`).
            if !name.contains('.') {
                candidates.extend(
                    TASK_KEYWORDS
                        .iter()
                        .filter(|k| modules::edit_distance(name, k) <= 1),
                );
            }
            let mut d = Diag::input(format!("unknown module or keyword `{name}`"))
                .at(&knode.loc)
                .label("not a module mixop knows");
            let dirs = [Some(knode.loc.dir()), self.root.clone()];
            if let Some((_, hint)) = UNSUPPORTED.iter().find(|(k, _)| *k == name) {
                d = d.hint(*hint);
            } else if let Some(plugin) = python_plugin(name, dirs.iter().flatten()) {
                d = d.hint(format!(
                    "`{name}` is a module from {}: mixop runs its own modules and cannot run \
                     Ansible's Python or PowerShell plugins; use `command`/`shell` or a module \
                     mixop has",
                    plugin.display()
                ));
            } else if let Some(s) = did_you_mean(short, &candidates) {
                d = d.hint(format!("did you mean `{s}`?"));
            } else {
                d = d.hint(format!("mixop's modules: {}", modules::names().join(", ")));
            }
            return Err(d);
        };
        let def = module.def();
        let mut args = modules::args_from_value(def, &args_node.to_value())
            .map_err(|m| Diag::input(m).at(&args_node.loc))?;
        if let Some(extra) = args_kw {
            let Value::Object(extra_map) = extra.to_value() else {
                return Err(Diag::input("`args` must be a mapping").at(&extra.loc));
            };
            for (k, v) in extra_map {
                args.entry(k).or_insert(v);
            }
        }
        let arg_loc = |key: &str| -> Loc {
            args_node
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.key_text() == key))
                .map(|(k, _)| k.loc.clone())
                .or_else(|| {
                    args_kw
                        .and_then(|a| a.as_map())
                        .and_then(|m| m.iter().find(|(k, _)| k.key_text() == key))
                        .map(|(k, _)| k.loc.clone())
                })
                .unwrap_or_else(|| args_node.loc.clone())
        };
        if let Err(e) = modules::validate_args(def, &args) {
            let key = e.param.clone().unwrap_or_default();
            return Err(Diag::input(e.to_string()).at(&arg_loc(&key)).label("here"));
        }
        self.check_node_templates(args_node)?;
        if let Some(a) = args_kw {
            self.check_node_templates(a)?;
        }
        self.check_local_source(def.name, &args, &task.dir, &arg_loc)?;
        task.kind = TaskKind::Module {
            module,
            args,
            args_loc: args_node.loc.clone(),
        };
        Ok(())
    }
}

impl Loader<'_> {
    /// A `src` on the controller that is written literally must exist before anything runs.
    fn check_local_source(
        &self,
        module: &str,
        args: &modules::Args,
        dir: &Path,
        arg_loc: &dyn Fn(&str) -> Loc,
    ) -> Result<()> {
        let Some((subdir, what)) = modules::source::local_source(module, args) else {
            return Ok(());
        };
        let Some(src) = args.get("src").and_then(Value::as_str) else {
            return Ok(());
        };
        if crate::template::is_template(src) {
            return Ok(());
        }
        // Windows users may end a directory `src` with `\` as well as `/`.
        let path = Path::new(if module.starts_with("win_") {
            src.trim_end_matches('\\')
        } else {
            src
        });
        let mut dirs: Vec<PathBuf> = self.role.iter().map(|r| r.path.clone()).collect();
        dirs.push(dir.to_path_buf());
        if let Some(root) = self.root.as_ref().filter(|r| r.as_path() != dir) {
            dirs.push(root.clone());
        }
        let candidates: Vec<PathBuf> = if path.is_absolute() {
            vec![path.to_path_buf()]
        } else {
            dirs.iter()
                .flat_map(|d| [d.join(subdir).join(path), d.join(path)])
                .collect()
        };
        let mut loc = arg_loc("src");
        // Point at the value rather than the key when we can.
        if let Some(off) = loc.src.text[loc.offset..].find(src) {
            let offset = loc.offset + off;
            let (line, col) = loc.src.line_col(offset);
            loc = Loc {
                offset,
                len: src.len(),
                line,
                col,
                ..loc
            };
        }
        if let Some(found) = candidates.iter().find(|c| c.exists()) {
            // A vault-encrypted source is decrypted now, so a wrong password stops the run
            // before any host is contacted.
            let decrypt = modules::arg_bool(args, "decrypt", true);
            if decrypt && found.is_file() && crate::vault::is_vault_file(found) {
                crate::vault::read(found).map_err(|d| d.at(&loc))?;
            }
            if subdir == "templates" && found.is_file() {
                self.check_template_file(found, &loc)?;
            }
            return Ok(());
        }
        Err(Diag::input(format!("{what} `{src}` not found"))
            .at(&loc)
            .label("no such file")
            .hint(format!(
                "looked in: {}",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
    }
}

/// A `vars_files` entry written literally is loaded now (decrypted when it is a vault), so a
/// bad file or a wrong vault password stops the run before any host is contacted. One that
/// does not exist yet, or whose name is templated, is loaded when its play starts.
fn check_vars_file(path: &Path, entry: &Node) -> Result<()> {
    if entry.as_str().is_some_and(crate::template::is_template) || !path.is_file() {
        return Ok(());
    }
    let docs =
        yaml::load_file(path).map_err(|d| if d.loc.is_none() { d.at(&entry.loc) } else { d })?;
    match docs.first() {
        None => Ok(()),
        Some(doc) if matches!(doc.kind, Kind::Map(_) | Kind::Null) => Ok(()),
        Some(doc) => Err(Diag::input(format!(
            "a vars file must be a mapping of variable names to values, found {}",
            doc.type_name()
        ))
        .at(&doc.loc)),
    }
}

/// `register:`'s variable name.
fn register_name(v: &Node) -> Result<String> {
    let r = string_of(v, "register")?;
    if !modules::builtin::is_identifier(&r) {
        return Err(
            Diag::input(format!("`{r}` is not a valid variable name for register")).at(&v.loc),
        );
    }
    Ok(r)
}

/// `delay:` — a literal is checked here, a template when it is rendered.
fn delay_value(v: &Node) -> Result<Value> {
    let value = v.to_value();
    let literal = match &value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if !crate::template::is_template(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if let Some(secs) = literal {
        crate::value::seconds(secs.max(0.0), "delay").map_err(|e| Diag::input(e).at(&v.loc))?;
    }
    Ok(value)
}

/// A task key that is no keyword is a module name, unless it is one of the Ansible keywords
/// mixop refuses by name (`ansible.builtin.include_role` gets `include_role`'s message).
fn refuse_unsupported_key(k: &str, knode: &Node) -> Result<()> {
    let short = ["ansible.builtin.", "ansible.legacy."]
        .iter()
        .find_map(|ns| k.strip_prefix(ns))
        .filter(|s| matches!(*s, "include_role" | "import_role" | "include"))
        .unwrap_or(k);
    if UNSUPPORTED.iter().any(|(u, _)| *u == short) {
        return Err(unknown_key(short, knode, TASK_KEYWORDS, "task"));
    }
    Ok(())
}

fn two_actions(first: &Option<(String, Node, Node)>, second: &str, knode: &Node) -> Diag {
    let first = first.as_ref().map(|(n, _, _)| n.as_str()).unwrap_or("");
    Diag::input(format!(
        "a task can run only one module, but this one has `{first}` and `{second}`"
    ))
    .at(&knode.loc)
    .label("second module")
    .hint("split it into two tasks, or fix the indentation if this was meant as an argument")
}

/// `action: copy src=a dest=b` or `action: {module: copy, src: a}`.
fn split_action(v: &Node) -> Result<(String, Node)> {
    match &v.kind {
        Kind::Str(s) => {
            let s = s.trim();
            let (name, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
            let mut args = v.clone();
            args.kind = if rest.trim().is_empty() {
                Kind::Null
            } else {
                Kind::Str(rest.trim().to_string())
            };
            Ok((name.to_string(), args))
        }
        Kind::Map(pairs) => {
            let name = v
                .get("module")
                .and_then(Node::as_str)
                .ok_or_else(|| Diag::input("`action` as a mapping needs `module`").at(&v.loc))?;
            let mut args = v.clone();
            args.kind = Kind::Map(
                pairs
                    .iter()
                    .filter(|(k, _)| k.key_text() != "module")
                    .cloned()
                    .collect(),
            );
            Ok((name.to_string(), args))
        }
        _ => Err(Diag::input("`action` must be a string or a mapping").at(&v.loc)),
    }
}

fn loop_control(v: &Node, loader: &Loader<'_>) -> Result<LoopControl> {
    let mut lc = LoopControl {
        loop_var: "item".into(),
        ..Default::default()
    };
    for (k, knode, val) in keys_of(v, "loop_control")? {
        match k.as_str() {
            "loop_var" => lc.loop_var = string_of(&val, &k)?,
            "index_var" => lc.index_var = Some(string_of(&val, &k)?),
            "label" => {
                loader.check_node_templates(&val)?;
                lc.label = Some(val.to_value())
            }
            "pause" => {
                let secs = match val.to_value() {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| Diag::input("`pause` must be a number of seconds").at(&val.loc))?;
                crate::value::seconds(secs.max(0.0), "pause")
                    .map_err(|e| Diag::input(e).at(&val.loc))?;
                lc.pause = Some(secs);
            }
            "extended" => lc.extended = bool_of(&val, &k)?,
            _ => {
                return Err(unknown_key(
                    &k,
                    &knode,
                    &["loop_var", "index_var", "label", "pause", "extended"],
                    "loop_control",
                ));
            }
        }
    }
    Ok(lc)
}

fn serial_of(v: &Node) -> Result<Vec<Serial>> {
    let one = |n: &Node| -> Result<Serial> {
        match &n.kind {
            Kind::Int(i) if *i > 0 => Ok(Serial::Count(*i as usize)),
            Kind::Str(s) if s.trim().ends_with('%') => s
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| *p > 0.0)
                .map(Serial::Percent)
                .ok_or_else(|| Diag::input(format!("invalid serial `{s}`")).at(&n.loc)),
            Kind::Str(s) => s
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|c| *c > 0)
                .map(Serial::Count)
                .ok_or_else(|| Diag::input(format!("invalid serial `{s}`")).at(&n.loc)),
            _ => Err(Diag::input(
                "`serial` must be a positive number, a percentage like \"30%\", or a list of them",
            )
            .at(&n.loc)),
        }
    };
    match &v.kind {
        Kind::Seq(items) => items.iter().map(one).collect(),
        _ => Ok(vec![one(v)?]),
    }
}

/// `"{{ x }}"` + `| f` → `"{{ (x) | f }}"`.
fn wrap_expr(s: &str, filter: &str) -> String {
    let inner = s.trim();
    if let Some(body) = inner.strip_prefix("{{").and_then(|b| b.strip_suffix("}}")) {
        format!("{{{{ ({}) {filter} }}}}", body.trim())
    } else {
        s.to_string()
    }
}

fn flatten_once(a: Vec<Value>) -> Vec<Value> {
    a.into_iter()
        .flat_map(|v| match v {
            Value::Array(inner) => inner,
            other => vec![other],
        })
        .collect()
}

/// The names and `listen` topics a play's handlers answer to; a block among handlers stands
/// for the handlers in its `block:` (ansible-core runs neither its rescue nor its always).
/// Each with whether it is a name (templated at run time) rather than a `listen` topic (not).
fn handler_topics(handlers: &[Task], out: &mut Vec<(String, bool)>) {
    for h in handlers {
        match &h.kind {
            TaskKind::Block { block, .. } => handler_topics(block, out),
            _ => {
                out.extend(h.name.iter().map(|n| (n.clone(), true)));
                out.extend(h.listen.iter().map(|l| (l.clone(), false)));
            }
        }
    }
}

/// Whether a notification can reach this handler name or topic. A templated name is known
/// only at run time (ansible-core templates it with the play's variables), so its literal
/// parts must match in order and each `{{ }}` may stand for any text.
fn answers((topic, is_name): &(String, bool), n: &str) -> bool {
    if topic == n {
        return true;
    }
    if !is_name || !crate::template::is_template(topic) {
        return false;
    }
    let mut parts = Vec::new();
    let mut rest = topic.as_str();
    while let Some(i) = rest.find("{{") {
        parts.push(&rest[..i]);
        rest = rest[i..].find("}}").map_or("", |j| &rest[i + j + 2..]);
    }
    parts.push(rest);
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !n.starts_with(first) || n.len() < first.len() + last.len() || !n.ends_with(last) {
        return false;
    }
    let mut at = first.len();
    let end = n.len() - last.len();
    for p in &parts[1..parts.len() - 1] {
        match n[at..end].find(p) {
            Some(i) => at += i + p.len(),
            None => return false,
        }
    }
    true
}

/// Every `notify` must name a handler (or a `listen` topic) of the play.
fn check_notify(tasks: &[Task], topics: &[(String, bool)]) -> Result<()> {
    for t in tasks {
        for n in &t.notify {
            // A templated notification is known only at run time.
            if crate::template::is_template(n) {
                continue;
            }
            if !topics.iter().any(|topic| answers(topic, n)) {
                let known: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
                let mut d = Diag::input(format!(
                    "`notify` names the handler `{n}`, which this play does not have"
                ))
                .at(&t.loc);
                d = match did_you_mean(n, &known) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None if known.is_empty() => d.hint("add it under the play's `handlers:`"),
                    None => d.hint(format!("the play's handlers are: {}", known.join(", "))),
                };
                return Err(d);
            }
        }
        match &t.kind {
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                check_notify(block, topics)?;
                check_notify(rescue, topics)?;
                check_notify(always, topics)?;
            }
            TaskKind::IncludeTasks {
                preloaded: Some(p), ..
            } => check_notify(p, topics)?,
            _ => {}
        }
    }
    Ok(())
}
