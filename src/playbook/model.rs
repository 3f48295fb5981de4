use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::diag::Loc;
use crate::modules::{Args, Module};

pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Linear,
    Free,
}

/// One `serial` step: a host count or a percentage of the play's hosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

/// One `vars_prompt` entry of a play.
#[derive(Debug, Clone)]
pub struct VarPrompt {
    pub name: String,
    /// The question (templated with the play's variables); Ansible's default is the name.
    pub prompt: String,
    /// Templated like the prompt; the answer when none is given.
    pub default: Option<Value>,
    /// No echo while typing (Ansible's default); the answer is also kept out of all output.
    pub private: bool,
    pub confirm: bool,
    /// The answer is never templated (otherwise `{{ }}` in it is rendered, as in Ansible).
    pub unsafe_: bool,
}

pub struct Play {
    pub loc: Loc,
    /// `vars_prompt`: asked once when the play starts, unless given with `-e`.
    pub vars_prompt: Vec<VarPrompt>,
    pub name: String,
    /// `name:` was given (otherwise `name` is the host pattern).
    pub named: bool,
    /// Host pattern (may contain templates, rendered with extra vars).
    pub hosts: String,
    /// The playbook's directory (`playbook_dir`).
    pub dir: PathBuf,
    pub vars: Map<String, Value>,
    /// Each entry lists candidate files; the first that exists is loaded (a plain entry is a
    /// list of one; a nested list is Ansible's first-found form).
    pub vars_files: Vec<(Vec<String>, Loc)>,
    /// The `gather_facts` keyword; without it, ansible.cfg's `gathering` decides.
    pub gather_facts: Option<bool>,
    pub serial: Vec<Serial>,
    pub strategy: Strategy,
    pub any_errors_fatal: bool,
    pub max_fail_percentage: Option<f64>,
    pub force_handlers: bool,
    pub opts: TaskOpts,
    pub tags: Vec<String>,
    /// Conditions from `import_playbook ... when:`: every task of the play carries them.
    pub when: Vec<Value>,
    /// Defaults and vars of the play's static roles (`roles:`, `import_role`), which every
    /// task of the play sees (ansible-core's role var exporting): defaults below inventory,
    /// vars above play vars.
    pub role_defaults: Map<String, Value>,
    pub role_vars: Map<String, Value>,
    /// Identities of the roles the play runs statically (see `roles::RoleCall::identity`): a
    /// dependency of an `include_role` that is one of them does not run again.
    pub role_ids: Vec<String>,
    pub pre_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub handlers: Vec<Task>,
}

/// Settings that blocks pass down to their tasks (the nearest one wins).
#[derive(Debug, Clone, Default)]
pub struct TaskOpts {
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    pub connection: Option<String>,
    pub remote_user: Option<String>,
    pub no_log: Option<bool>,
    pub ignore_errors: Option<bool>,
    pub ignore_unreachable: Option<bool>,
    pub check_mode: Option<bool>,
    pub diff: Option<bool>,
    pub any_errors_fatal: Option<bool>,
    pub run_once: Option<bool>,
    pub delegate_to: Option<String>,
    pub timeout: Option<u64>,
    /// `environment:` mappings, outermost first (later ones override).
    pub environment: Vec<Value>,
}

impl TaskOpts {
    /// `self` (inner) over `outer`.
    pub fn inherit(&self, outer: &TaskOpts) -> TaskOpts {
        let mut environment = outer.environment.clone();
        environment.extend(self.environment.iter().cloned());
        TaskOpts {
            become_: self.become_.or(outer.become_),
            become_user: self
                .become_user
                .clone()
                .or_else(|| outer.become_user.clone()),
            become_method: self
                .become_method
                .clone()
                .or_else(|| outer.become_method.clone()),
            connection: self.connection.clone().or_else(|| outer.connection.clone()),
            remote_user: self
                .remote_user
                .clone()
                .or_else(|| outer.remote_user.clone()),
            no_log: self.no_log.or(outer.no_log),
            ignore_errors: self.ignore_errors.or(outer.ignore_errors),
            ignore_unreachable: self.ignore_unreachable.or(outer.ignore_unreachable),
            check_mode: self.check_mode.or(outer.check_mode),
            diff: self.diff.or(outer.diff),
            any_errors_fatal: self.any_errors_fatal.or(outer.any_errors_fatal),
            run_once: self.run_once.or(outer.run_once),
            delegate_to: self
                .delegate_to
                .clone()
                .or_else(|| outer.delegate_to.clone()),
            timeout: self.timeout.or(outer.timeout),
            environment,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoopControl {
    pub loop_var: String,
    pub index_var: Option<String>,
    pub label: Option<Value>,
    pub pause: Option<f64>,
    pub extended: bool,
}

#[derive(Clone)]
pub struct Task {
    pub loc: Loc,
    pub name: Option<String>,
    /// The module or keyword as written (`command`, `ansible.builtin.command`, `include_tasks`,
    /// `meta`); empty for a block. Ansible's `action`, which names an unnamed task in listings.
    pub action: String,
    pub kind: TaskKind,
    pub opts: TaskOpts,
    /// Effective tags: the task's own plus those of every enclosing block/import/play.
    pub tags: Vec<String>,
    pub vars: Map<String, Value>,
    /// Conditions, all of which must hold (bools or expression strings).
    pub when: Vec<Value>,
    pub loop_: Option<Value>,
    pub loop_control: LoopControl,
    pub register: Option<String>,
    pub until: Vec<Value>,
    pub retries: Option<Value>,
    pub delay: Option<Value>,
    pub changed_when: Option<Vec<Value>>,
    pub failed_when: Option<Vec<Value>>,
    pub notify: Vec<String>,
    /// Handler topics (handlers only).
    pub listen: Vec<String>,
    /// Directory of the file the task was written in (for relative paths).
    pub dir: PathBuf,
    /// The role the task belongs to.
    pub role: Option<Arc<RoleScope>>,
    /// The block of a role invocation that already ran in this play: listed, never run
    /// (ansible-core skips it silently).
    pub ran_before: bool,
}

/// What the tasks of one role invocation see (ansible-core's `Role.get_*vars` with the
/// dependency chain already folded in).
#[derive(Debug, Default)]
pub struct RoleScope {
    pub name: String,
    /// The role's directory (`role_path`), searched first for `files/` and `templates/`.
    pub path: PathBuf,
    /// Below inventory vars.
    pub defaults: Map<String, Value>,
    /// `vars/` and the invocation's `vars:`: above play vars, below task vars.
    pub vars: Map<String, Value>,
    /// Role parameters (`- {role: x, param: 1}`): above facts, below extra vars.
    pub params: Map<String, Value>,
}

/// `include_role` as written; its strings may be templates, rendered per host at run time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleRef {
    pub name: String,
    pub tasks_from: Option<String>,
    pub vars_from: Option<String>,
    pub defaults_from: Option<String>,
    pub handlers_from: Option<String>,
    /// `apply:` keywords given to every task of the role.
    pub apply_tags: Vec<String>,
    pub apply_when: Vec<Value>,
    pub allow_duplicates: bool,
}

impl Task {
    /// What to call the task in output: its name, or the module/kind.
    pub fn display_name(&self) -> String {
        // Role tasks are `role : task` in output and listings, as in ansible-playbook.
        match &self.role {
            Some(r) if !matches!(self.kind, TaskKind::Block { .. }) => {
                format!("{} : {}", r.name, self.own_name())
            }
            _ => self.own_name(),
        }
    }

    /// The name `--list-tasks` shows: ansible-core's `Task.get_name()` (the action as written
    /// when there is no name).
    pub fn listed_name(&self) -> String {
        let own = self.name.clone().unwrap_or_else(|| self.action.clone());
        match &self.role {
            Some(r) => format!("{} : {own}", r.name),
            None => own,
        }
    }

    fn own_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.kind {
            TaskKind::Module { module, .. } => module.def().name.to_string(),
            TaskKind::Block { .. } => "block".into(),
            TaskKind::IncludeTasks { .. } => "include_tasks".into(),
            TaskKind::IncludeRole { role } => format!("{} : {}", self.action, role.name),
            TaskKind::Meta { action } => format!("meta: {action}"),
        }
    }
}

#[derive(Clone)]
pub enum TaskKind {
    Module {
        module: &'static dyn Module,
        args: Args,
        args_loc: Loc,
    },
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    /// Loaded at run time, as ansible-core does (the file name may be templated, an earlier
    /// task may write the file). When the name is a plain path the file was also loaded and
    /// validated before the run, and `preloaded` keeps that copy for the load-time checks
    /// (`notify` names); the engine reads the file again when it includes it.
    IncludeTasks {
        file: String,
        preloaded: Option<Vec<Task>>,
    },
    /// A role loaded at run time (its files were checked at load time when not templated).
    IncludeRole {
        role: Box<RoleRef>,
    },
    Meta {
        action: String,
    },
}

impl Task {
    /// A task the loader or engine makes up (a role's block, fact gathering).
    pub fn synthetic(loc: crate::diag::Loc, dir: PathBuf, action: &str, kind: TaskKind) -> Task {
        Task {
            loc,
            name: None,
            action: action.into(),
            kind,
            opts: TaskOpts::default(),
            tags: Vec::new(),
            vars: Map::new(),
            when: Vec::new(),
            loop_: None,
            loop_control: LoopControl {
                loop_var: "item".into(),
                ..Default::default()
            },
            register: None,
            until: Vec::new(),
            retries: None,
            delay: None,
            changed_when: None,
            failed_when: None,
            notify: Vec::new(),
            listen: Vec::new(),
            dir,
            role: None,
            ran_before: false,
        }
    }
}
