//! The template and expression language: minijinja configured like Ansible's Jinja2.
//!
//! INTERFACE CONTRACT (used by the engine and modules; keep these signatures):
//! - `Vars`: what one evaluation sees. `vars` is the host's merged variables (magic variables such
//!   as `inventory_hostname`, `groups`, `group_names`, `ansible_play_hosts`, `playbook_dir` are
//!   already in it); `hostvars` maps every inventory host to its merged variables.
//! - Strings are templated only when they contain `{{`/`{%`; a string that is exactly one
//!   `{{ expr }}` yields the expression's typed value (a number stays a number).
//! - Undefined variables are errors naming the variable (strict).
//!
//! How it works:
//! - Variables are never converted wholesale: the render context is a `minijinja` object
//!   ([`objects::Scope`]) that converts a variable only when a template touches it, and dicts and
//!   lists stay lazy views into the `serde_json` data ([`objects::LazyNode`]).
//! - Variables whose values are themselves templates (`url: "https://{{ ip }}"`) are rendered
//!   when accessed, in the context of the host that owns them, like Ansible's lazy templating.
//! - Compiled templates are cached by source text: the engine renders the same strings for every
//!   host, so each is parsed once. Typed results ride on the formatter: a template that is a single
//!   `{{ expr }}` records the emitted value instead of printing it.
//!
//! Where mixop differs from ansible-core 2.19 (checked by `tests/template_oracle.rs`):
//! - `" {{ n }} "` (whitespace around one expression) yields the typed value when it is not a
//!   string; Ansible renders text. A string result keeps the whitespace, as in Ansible.
//! - An attribute of an undefined variable (`foo.bar | default(1)` with `foo` undefined) is an
//!   error naming `foo`; Ansible chains undefined values there.
//! - Every string inside variables is templated on access, registered results included; Ansible
//!   only templates trusted (playbook/inventory) strings.
//! - `difference`/`intersect`/`union` keep the first list's order (Python's set order is
//!   unspecified); `range`, `zip`, `reverse` yield lists without `| list`.
//! - `to_yaml`/`to_nice_yaml` follow PyYAML for common data, but write multi-line strings
//!   double-quoted and do not fold lines at 80 columns.
//! - Python methods on values are limited to common ones (`split`, `startswith`, `strip`,
//!   `replace`, `items`, `keys`, `values`, `get`, ...).

mod filters;
mod fqcn;
mod ipaddr;
pub(crate) mod lookups;
mod objects;
pub(crate) mod pyfmt;
pub(crate) use pyfmt::py_repr_json;
#[cfg(test)]
mod unit_tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};

use objects::Scope;

/// The marker Ansible's `omit` variable expands to; module arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__mixop";

#[derive(Clone, Default, Debug)]
pub struct Vars {
    pub vars: Arc<Map<String, Value>>,
    pub hostvars: Arc<BTreeMap<String, Arc<Map<String, Value>>>>,
    /// Top-level variables holding data rather than templates — registered results, facts,
    /// loop items — by host (`""` is the host being evaluated). Strings inside them are never
    /// rendered, so command output containing `{{` stays text (as in ansible-core 2.19).
    pub data_vars: Arc<BTreeMap<String, Arc<BTreeSet<String>>>>,
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

impl TemplateError {
    pub(crate) fn new(message: impl Into<String>) -> TemplateError {
        TemplateError {
            message: message.into(),
            undefined: None,
            line: None,
        }
    }
}

/// Evaluates templates and expressions; cheap to share (`Arc` inside), safe across threads.
#[derive(Clone)]
pub struct Templar {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Templar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templar")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// A compiled template registered in the environment under `name`.
#[derive(Clone, Debug)]
struct Compiled {
    name: Arc<str>,
    /// The source is one `{{ expr }}`: the result is the expression's value.
    typed: bool,
}

type CacheEntry = Result<Compiled, TemplateError>;

#[derive(Default)]
struct Caches {
    /// Inline template strings.
    strings: HashMap<String, CacheEntry>,
    /// Bare expressions (`when:`), compiled as `{{ expr }}`.
    exprs: HashMap<String, CacheEntry>,
    /// Template files, keyed by content (always rendered as text).
    files: HashMap<String, CacheEntry>,
    /// Whether a filter (`true`) or test (`false`) name exists, as probed by `Inner::exists`.
    names: HashMap<(bool, String), bool>,
}

pub(crate) struct Inner {
    env: Environment<'static>,
    caches: Mutex<Caches>,
    /// Sources handed to the environment's loader by name (taken out once compiled).
    sources: Arc<Mutex<HashMap<String, String>>>,
    next_id: AtomicUsize,
    pub(crate) opts: Arc<TemplarOptions>,
}

/// Locks a mutex, recovering the data if another thread panicked while holding it (the caches
/// stay consistent: entries are inserted whole).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The variable an undefined name starts from (`a` for `a.b[0]`), as Ansible names it.
fn undefined_root(name: &str) -> &str {
    name.split(['.', '[']).next().unwrap_or(name)
}

/// True when the string contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The expression inside a string of the form `{{ expr }}` (whitespace around allowed), before
/// checking that it parses as one expression.
fn single_expr_candidate(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    // Whitespace control markers belong to the delimiters.
    let inner = inner
        .strip_prefix('-')
        .or_else(|| inner.strip_prefix('+'))
        .unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.trim().is_empty() {
        return None;
    }
    Some(inner)
}

/// Ansible's `escape_backslashes` for templates written in YAML: backslashes in string
/// constants inside `{{ }}` are doubled, so Jinja's unescaping gives back what YAML produced
/// (`regex_replace('(\\d+)', '\\1')` written in a double-quoted YAML string means `\1`, not
/// `\x01`). `{% %}` statements, conditionals and template files are left alone, as in Ansible.
fn escape_backslashes(src: &str) -> std::borrow::Cow<'_, str> {
    if !src.contains('\\') {
        return std::borrow::Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 8);
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start + 2]);
        rest = &rest[start + 2..];
        // Inside a variable block: copy up to the closing `}}`, doubling backslashes in strings.
        let mut quote: Option<char> = None;
        let mut end = rest.len();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some(q) => {
                    if c == '\\' {
                        out.push_str("\\\\");
                        if let Some(&(_, n)) = chars.peek() {
                            // The escaped character cannot close the string; quotes and
                            // backslashes stay escaped so Jinja keeps them as written.
                            chars.next();
                            if n == '\\' || n == q {
                                out.push('\\');
                            }
                            out.push(n);
                        }
                        continue;
                    }
                    if c == q {
                        quote = None;
                    }
                    out.push(c);
                }
                None => {
                    if c == '}' && rest[i..].starts_with("}}") {
                        end = i;
                        break;
                    }
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                    }
                    out.push(c);
                }
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
#[test]
fn backslashes_in_expression_strings_are_kept() {
    assert_eq!(escape_backslashes("a\\b"), "a\\b");
    assert_eq!(
        escape_backslashes("x\\1 {{ f('\\1', \"\\d\") }} \\2"),
        "x\\1 {{ f('\\\\1', \"\\\\d\") }} \\2"
    );
    assert_eq!(escape_backslashes("{{ 'it\\'s' }}"), "{{ 'it\\\\\\'s' }}");
}

/// Captured value of a typed template (stored as a state extension by the formatter).
#[derive(Default)]
struct Capture(Option<minijinja::Value>);

fn build_env(
    sources: Arc<Mutex<HashMap<String, String>>>,
    opts: Arc<TemplarOptions>,
) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug mode makes minijinja remember which expression produced an undefined value; that is
    // how errors name the missing variable.
    env.set_debug(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_loader(move |name| {
        if name.starts_with('=') || name.starts_with('#') {
            return Ok(lock(&sources).remove(name));
        }
        // `{% include %}` / `{% import %}` of a template file.
        match lookups::find_file(&opts.search_paths, "templates", name) {
            Some(path) => crate::vault::read_text(&path)
                .map(|(text, _)| Some(text))
                .map_err(|d| minijinja::Error::new(ErrorKind::TemplateNotFound, d.message)),
            None => Ok(None),
        }
    });
    env.set_formatter(|out, state, value| {
        objects::check_defined(state, value)?;
        let write_err = |_| minijinja::Error::new(ErrorKind::WriteFailure, "cannot write output");
        if state.name().starts_with('=') {
            // A typed template: remember the value. Strings are written too, so that a string
            // result keeps the whitespace around the braces (a trailing newline matters in files).
            if let Some(s) = value.as_str() {
                out.write_str(s).map_err(write_err)?;
            }
            state.get_or_insert_extension(Capture::default()).0 = Some(value.clone());
            return Ok(());
        }
        if value.is_none() {
            // Ansible renders a top-level None as nothing inside a larger string.
            return Ok(());
        }
        match value.as_str() {
            Some(s) => out.write_str(s).map_err(write_err),
            None => out.write_str(&pyfmt::py_str(value)).map_err(write_err),
        }
    });
    env.set_unknown_method_callback(filters::call_method);
    filters::register(&mut env);
    lookups::register(&mut env);
    env
}

enum Mode {
    Str,
    Expr,
    File,
}

impl Inner {
    fn compile(&self, src: &str, mode: Mode) -> CacheEntry {
        {
            let caches = lock(&self.caches);
            let map = match mode {
                Mode::Str => &caches.strings,
                Mode::Expr => &caches.exprs,
                Mode::File => &caches.files,
            };
            if let Some(hit) = map.get(src) {
                return hit.clone();
            }
        }
        let entry = self.compile_uncached(src, &mode);
        let mut caches = lock(&self.caches);
        let map = match mode {
            Mode::Str => &mut caches.strings,
            Mode::Expr => &mut caches.exprs,
            Mode::File => &mut caches.files,
        };
        map.insert(src.to_string(), entry.clone());
        entry
    }

    /// Every filter and test the compiled template applies exists (user-defined ones cannot be
    /// added, so an unknown name is a typo or a plugin mixop lacks).
    fn check_names(&self, compiled: &Compiled, src: &str) -> Result<(), TemplateError> {
        use minijinja::machinery::{Instruction, get_compiled_template};
        let tmpl = self
            .env
            .get_template(&compiled.name)
            .map_err(|e| map_syntax_error(&e, src))?;
        let code = get_compiled_template(&tmpl);
        for instrs in std::iter::once(&code.instructions).chain(code.blocks.values()) {
            let mut idx = 0;
            while let Some(instr) = instrs.get(idx) {
                let (filter, name) = match instr {
                    Instruction::ApplyFilter(name, ..) => (true, *name),
                    Instruction::PerformTest(name, ..) => (false, *name),
                    _ => {
                        idx += 1;
                        continue;
                    }
                };
                if !self.exists(filter, name) {
                    let line = instrs.get_line(idx);
                    let mut err = TemplateError::new(format!(
                        "no {} named '{name}'{}",
                        if filter { "filter" } else { "test" },
                        objects::location(src, line)
                    ));
                    err.line = line;
                    return Err(err);
                }
                idx += 1;
            }
        }
        check_lookup_names(src)
    }

    /// Whether the environment has a filter (or test) of this name: applied to `none`, does it
    /// fail as unknown rather than for its input or arguments?
    fn exists(&self, filter: bool, name: &str) -> bool {
        let key = (filter, name.to_string());
        if let Some(&known) = lock(&self.caches).names.get(&key) {
            return known;
        }
        let probe = if filter {
            format!("none | {name}")
        } else {
            format!("none is {name}")
        };
        let unknown = if filter {
            minijinja::ErrorKind::UnknownFilter
        } else {
            minijinja::ErrorKind::UnknownTest
        };
        let known = match self.env.compile_expression_owned(probe) {
            Ok(expr) => expr.eval(()).map_or_else(|e| e.kind() != unknown, |_| true),
            Err(_) => true,
        };
        lock(&self.caches).names.insert(key, known);
        known
    }

    fn compile_uncached(&self, src: &str, mode: &Mode) -> CacheEntry {
        let (source, typed) = match mode {
            Mode::Expr => {
                let src = &*fqcn::strip_collections(src, true);
                // Checked on its own first, so `a }}{{ b` is not accepted as an expression and
                // syntax errors point into the expression the user wrote.
                self.env
                    .compile_expression_owned(src.to_string())
                    .map_err(|e| map_syntax_error(&e, src))?;
                (format!("{{{{ {src} }}}}"), true)
            }
            Mode::Str => {
                let source = escape_backslashes(src);
                let source = fqcn::strip_collections(&source, false).into_owned();
                // Judged on the escaped source, as it will be compiled: `'C:\x'` is not a valid
                // escape for Jinja until its backslash is doubled.
                let typed = single_expr_candidate(&source).is_some_and(|inner| {
                    self.env.compile_expression_owned(inner.to_string()).is_ok()
                });
                (source, typed)
            }
            Mode::File => (fqcn::strip_collections(src, false).into_owned(), false),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = Arc::from(format!("{}{id}", if typed { '=' } else { '#' }));
        lock(&self.sources).insert(name.to_string(), source);
        match self.env.get_template(&name) {
            Ok(_) => Ok(Compiled { name, typed }),
            Err(e) => {
                lock(&self.sources).remove(&*name);
                Err(map_syntax_error(&e, src))
            }
        }
    }

    /// Renders a compiled template in `scope`; typed templates yield their value.
    fn run(
        &self,
        c: &Compiled,
        src: &str,
        scope: &Arc<Scope>,
    ) -> Result<minijinja::Value, TemplateError> {
        let tmpl = self
            .env
            .get_template(&c.name)
            .map_err(|e| map_syntax_error(&e, src))?;
        let root = minijinja::Value::from_dyn_object(scope.clone());
        if !c.typed {
            return tmpl
                .render(root)
                .map(minijinja::Value::from)
                .map_err(|e| objects::map_error(&e, src, scope));
        }
        let captured = tmpl
            .render_captured(root)
            .map_err(|e| objects::map_error(&e, src, scope))?;
        let value = captured
            .state()
            .get_extension::<Capture>()
            .and_then(|c| c.0.clone());
        match value {
            Some(v) if v.as_str().is_some() => Ok(minijinja::Value::from(captured.output())),
            Some(v) => Ok(v),
            None => Ok(minijinja::Value::from(captured.output())),
        }
    }

    /// Renders a string (fast path for plain text) to a minijinja value.
    pub(crate) fn render_mj(
        &self,
        s: &str,
        scope: &Arc<Scope>,
    ) -> Result<minijinja::Value, TemplateError> {
        if !is_template(s) {
            return Ok(minijinja::Value::from(s));
        }
        let c = self.compile(s, Mode::Str)?;
        self.run(&c, s, scope)
    }

    /// Renders template file content as text.
    pub(crate) fn render_text(
        &self,
        src: &str,
        scope: &Arc<Scope>,
    ) -> Result<String, TemplateError> {
        let c = self.compile(src, Mode::File)?;
        let v = self.run(&c, src, scope)?;
        Ok(v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()))
    }

    fn eval_mj(&self, expr: &str, scope: &Arc<Scope>) -> Result<minijinja::Value, TemplateError> {
        let c = self.compile(expr, Mode::Expr)?;
        let src = format!("{{{{ {expr} }}}}");
        self.run(&c, &src, scope)
    }
}

/// A syntax (compile) error as a `TemplateError` with the line.
fn map_syntax_error(e: &minijinja::Error, src: &str) -> TemplateError {
    let detail = e.detail().unwrap_or("invalid template").to_string();
    let mut err = TemplateError::new(format!(
        "template syntax error: {detail}{}",
        objects::location(src, e.line())
    ));
    err.line = e.line();
    err
}

/// Every `lookup('name', ...)` / `query(...)` / `q(...)` whose plugin is written as a literal
/// names one mixop has (a templated name is judged when it is rendered).
fn check_lookup_names(src: &str) -> Result<(), TemplateError> {
    static CALL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"\b(lookup|query|q)\(\s*(?:'([A-Za-z0-9_.]+)'|"([A-Za-z0-9_.]+)")"#)
            .expect("valid regex")
    });
    for c in CALL.captures_iter(src) {
        let Some(name) = c.get(2).or_else(|| c.get(3)) else {
            continue;
        };
        if !lookups::is_supported(name.as_str()) {
            let line = src[..name.start()].matches('\n').count() + 1;
            let mut err = TemplateError::new(format!(
                "no lookup plugin named '{}'{} (mixop supports {})",
                name.as_str(),
                objects::location(src, Some(line)),
                lookups::SUPPORTED.join(", ")
            ));
            err.line = Some(line);
            return Err(err);
        }
    }
    Ok(())
}

impl Templar {
    pub fn new(opts: TemplarOptions) -> Templar {
        let sources = Arc::new(Mutex::new(HashMap::new()));
        let opts = Arc::new(opts);
        let env = build_env(sources.clone(), opts.clone());
        Templar {
            inner: Arc::new(Inner {
                env,
                caches: Mutex::new(Caches::default()),
                sources,
                next_id: AtomicUsize::new(0),
                opts,
            }),
        }
    }

    fn scope(&self, ctx: &Vars) -> Arc<Scope> {
        Scope::root(self.inner.clone(), ctx)
    }

    /// Renders a string; a lone `{{ expr }}` yields the typed value, otherwise a string.
    pub fn render(&self, s: &str, ctx: &Vars) -> Result<Value, TemplateError> {
        if !is_template(s) {
            return Ok(Value::String(s.to_string()));
        }
        let scope = self.scope(ctx);
        let v = self.inner.render_mj(s, &scope)?;
        objects::to_json(&v).map_err(|e| objects::map_error(&e, s, &scope))
    }

    /// Renders a string to text.
    pub fn render_str(&self, s: &str, ctx: &Vars) -> Result<String, TemplateError> {
        Ok(crate::value::to_text(&self.render(s, ctx)?))
    }

    /// Renders display text (task names) as ansible-core 2.19 does with
    /// `fail_on_undefined=False`: each `{{ ... }}` that fails is replaced by
    /// `<< error N - MESSAGE >>` and the rest is rendered. Text with `{% %}` or `{# #}` that fails
    /// is left as written. Returns the text and the errors met.
    pub fn render_lenient(&self, s: &str, ctx: &Vars) -> (String, Vec<TemplateError>) {
        if !is_template(s) {
            return (s.to_string(), Vec::new());
        }
        match self.render_str(s, ctx) {
            Ok(text) => return (text, Vec::new()),
            Err(e) if s.contains("{%") || s.contains("{#") => return (s.to_string(), vec![e]),
            Err(_) => {}
        }
        let mut out = String::new();
        let mut errors = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}").map(|end| end + 2) else {
                break;
            };
            out.push_str(&rest[..start]);
            let segment = &rest[start..start + len];
            match self.render_str(segment, ctx) {
                Ok(text) => out.push_str(&text),
                Err(e) => {
                    let msg = match &e.undefined {
                        Some(var) => format!("'{}' is undefined", undefined_root(var)),
                        None => e.message.clone(),
                    };
                    errors.push(e);
                    out.push_str(&format!("<< error {} - {msg} >>", errors.len()));
                }
            }
            rest = &rest[start + len..];
        }
        out.push_str(rest);
        (out, errors)
    }

    /// Templates every string inside a value (keys too).
    pub fn render_deep(&self, v: &Value, ctx: &Vars) -> Result<Value, TemplateError> {
        match v {
            Value::String(s) => self.render(s, ctx),
            Value::Array(items) => items
                .iter()
                .map(|i| self.render_deep(i, ctx))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(m) => {
                let mut out = Map::with_capacity(m.len());
                for (k, v) in m {
                    let k = if is_template(k) {
                        self.render_str(k, ctx)?
                    } else {
                        k.clone()
                    };
                    out.insert(k, self.render_deep(v, ctx)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluates a bare expression (`when`, `until`, `changed_when`, `loop` strings).
    pub fn eval(&self, expr: &str, ctx: &Vars) -> Result<Value, TemplateError> {
        let scope = self.scope(ctx);
        let v = self.inner.eval_mj(expr, &scope)?;
        objects::to_json(&v).map_err(|e| objects::map_error(&e, expr, &scope))
    }

    /// Evaluates a condition: a bool, or an expression string that must yield a boolean
    /// (ansible-core 2.19 semantics; a non-boolean result is an error naming the expression).
    pub fn eval_bool(&self, cond: &Value, ctx: &Vars) -> Result<bool, TemplateError> {
        let expr = match cond {
            Value::Bool(b) => return Ok(*b),
            Value::String(s) => s,
            other => {
                return Err(TemplateError::new(format!(
                    "conditional must be a boolean or an expression, got {} ({other})",
                    pyfmt::json_type_name(other)
                )));
            }
        };
        // `when: "{{ x }}"` is accepted for compatibility and means the same as `when: x`.
        let bare = single_expr_candidate(expr)
            .filter(|inner| {
                self.inner
                    .env
                    .compile_expression_owned(inner.to_string())
                    .is_ok()
            })
            .unwrap_or(expr)
            .trim();
        if bare.is_empty() {
            return Err(TemplateError::new("conditional is an empty expression"));
        }
        let scope = self.scope(ctx);
        let v = self.inner.eval_mj(bare, &scope)?;
        match v.kind() {
            minijinja::value::ValueKind::Bool => Ok(v.is_true()),
            _ => {
                let json = objects::to_json(&v).unwrap_or(Value::Null);
                Err(TemplateError::new(format!(
                    "conditional '{bare}' must yield a boolean, but it yielded {} {}; \
                     compare explicitly (e.g. `| bool`, `| length > 0`, `is defined`)",
                    pyfmt::json_type_name(&json),
                    pyfmt::short(&pyfmt::py_repr_json(&json)),
                )))
            }
        }
    }

    /// Renders a template file (the `template` module, `lookup('template')`).
    pub fn render_file(&self, path: &Path, ctx: &Vars) -> Result<String, TemplateError> {
        let (src, _) = crate::vault::read_text(path).map_err(|d| TemplateError::new(d.message))?;
        let scope = self.scope(ctx);
        self.inner.render_text(&src, &scope).map_err(|mut e| {
            // `file:line: message` (the line moves from the message's end to the path).
            let (line, message) = match e.line {
                Some(n) => (
                    format!(":{n}"),
                    e.message
                        .trim_end_matches(&format!(" (template line {n})"))
                        .to_string(),
                ),
                None => (String::new(), e.message.clone()),
            };
            e.message = format!("{}{line}: {message}", path.display());
            e
        })
    }

    /// Validation before any host is contacted: syntax, and that every filter and test named
    /// exists (`run` would fail on one only when the expression is reached, maybe after changes).
    pub fn check_template(&self, s: &str) -> Result<(), TemplateError> {
        if !is_template(s) {
            return Ok(());
        }
        let compiled = self.inner.compile(s, Mode::Str)?;
        self.inner.check_names(&compiled, s)
    }

    /// Syntax check of a bare expression.
    pub fn check_expr(&self, expr: &str) -> Result<(), TemplateError> {
        let bare = single_expr_candidate(expr)
            .filter(|inner| {
                self.inner
                    .env
                    .compile_expression_owned(inner.to_string())
                    .is_ok()
            })
            .unwrap_or(expr);
        if bare.trim().is_empty() {
            return Err(TemplateError::new("empty expression"));
        }
        let compiled = self.inner.compile(bare.trim(), Mode::Expr)?;
        self.inner.check_names(&compiled, expr)
    }
}
