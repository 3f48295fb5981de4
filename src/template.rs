//! The template and expression language: minijinja configured like Ansible's Jinja2.
//!
//! INTERFACE CONTRACT (used by the engine and modules; keep these signatures):
//! - `Vars`: what one evaluation sees. `vars` is the host's merged variables (magic variables such
//!   as `inventory_hostname`, `groups`, `group_names`, `ansible_play_hosts`, `playbook_dir` are
//!   already in it); `hostvars` maps every inventory host to its merged variables.
//! - Strings are templated only when they contain `{{`/`{%`; a string that is exactly one
//!   `{{ expr }}` yields the expression's typed value (a number stays a number).
//! - Undefined variables are errors naming the variable (strict).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

/// The marker Ansible's `omit` variable expands to; module arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__mixop";

#[derive(Clone, Default, Debug)]
pub struct Vars {
    pub vars: Arc<Map<String, Value>>,
    pub hostvars: Arc<BTreeMap<String, Arc<Map<String, Value>>>>,
}

#[derive(Debug, Clone, Default)]
pub struct TemplarOptions {
    /// Base for relative `lookup('file', ...)` / `lookup('template', ...)` paths (the playbook's
    /// directory); `files/` and `templates/` below it are searched too, like Ansible.
    pub search_paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// The undefined variable's name, when that is the problem.
    pub undefined: Option<String>,
    /// 1-based line inside the template text, when known.
    pub line: Option<usize>,
}

pub struct Templar {
    _opts: TemplarOptions,
}

/// True when the string contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

impl Templar {
    pub fn new(opts: TemplarOptions) -> Templar {
        Templar { _opts: opts }
    }

    /// Renders a string; a lone `{{ expr }}` yields the typed value, otherwise a string.
    pub fn render(&self, s: &str, ctx: &Vars) -> Result<Value, TemplateError> {
        let _ = ctx;
        Ok(Value::String(s.to_string()))
    }

    /// Renders a string to text.
    pub fn render_str(&self, s: &str, ctx: &Vars) -> Result<String, TemplateError> {
        Ok(crate::value::to_text(&self.render(s, ctx)?))
    }

    /// Templates every string inside a value (keys too).
    pub fn render_deep(&self, v: &Value, ctx: &Vars) -> Result<Value, TemplateError> {
        let _ = ctx;
        Ok(v.clone())
    }

    /// Evaluates a bare expression (`when`, `until`, `changed_when`, `loop` strings).
    pub fn eval(&self, expr: &str, ctx: &Vars) -> Result<Value, TemplateError> {
        let _ = (expr, ctx);
        Ok(Value::Null)
    }

    /// Evaluates a condition: a bool, or an expression string that must yield a boolean
    /// (ansible-core 2.19 semantics; a non-boolean result is an error naming the expression).
    pub fn eval_bool(&self, cond: &Value, ctx: &Vars) -> Result<bool, TemplateError> {
        let _ = (cond, ctx);
        Ok(true)
    }

    /// Renders a template file (the `template` module, `lookup('template')`).
    pub fn render_file(&self, path: &Path, ctx: &Vars) -> Result<String, TemplateError> {
        let _ = (path, ctx);
        Ok(String::new())
    }

    /// Syntax check only (validation before any host is contacted).
    pub fn check_template(&self, s: &str) -> Result<(), TemplateError> {
        let _ = s;
        Ok(())
    }

    /// Syntax check of a bare expression.
    pub fn check_expr(&self, expr: &str) -> Result<(), TemplateError> {
        let _ = expr;
        Ok(())
    }
}
