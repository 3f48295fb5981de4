//! The render context as minijinja objects: variables are converted only when accessed.
//!
//! `Scope` is the root context of one evaluation (one host's variables plus `hostvars`);
//! `LazyNode` is a dict or list inside a host's variables, addressed by its path from the host's
//! map, so nothing is copied until a template reads a scalar or asks for a whole value.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use minijinja::value::{ArgType, Enumerator, Object, ObjectRepr};
use minijinja::{Error, ErrorKind, State};
use serde_json::{Map, Value as Json};

use super::{Inner, OMIT, TemplateError, Vars, is_template, lock, pyfmt};

/// Name under which a scope finds itself (not a valid identifier, so templates cannot use it).
pub(crate) const SCOPE_KEY: &str = "\u{0}scope";

/// One step of a path into a host's variables.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Seg {
    Key(String),
    Idx(usize),
    /// A subscript minijinja could not describe (`x[...]`).
    Unknown,
}

/// State shared by all scopes of one top-level evaluation.
#[derive(Default, Debug)]
struct Shared {
    /// Variables whose own template failed, by display path (to explain the outer error).
    failed_vars: Mutex<Vec<(String, TemplateError)>>,
    /// Variables being templated right now, to detect `a: "{{ b }}"`, `b: "{{ a }}"`.
    in_progress: Mutex<Vec<String>>,
    /// The last lookups that found nothing, as (root, path): minijinja describes computed
    /// subscripts as `[...]`, these fill them in (`hostvars[...]` -> `hostvars['srv']`).
    misses: Mutex<Vec<(String, Vec<Seg>)>>,
}

impl Shared {
    fn record_miss(&self, root: &str, segs: Vec<Seg>) {
        let mut m = lock(&self.misses);
        if m.len() >= 16 {
            m.remove(0);
        }
        m.push((root.to_string(), segs));
    }
}

pub(crate) struct Scope {
    pub(crate) inner: Arc<Inner>,
    vars: Arc<Map<String, Json>>,
    hostvars: Arc<BTreeMap<String, Arc<Map<String, Json>>>>,
    /// `Some(h)` when this scope is `hostvars[h]` seen from another host.
    host: Option<String>,
    /// Top-level names whose values are data, never templates (see `Vars::data_vars`).
    data: Arc<BTreeSet<String>>,
    data_by_host: Arc<BTreeMap<String, Arc<BTreeSet<String>>>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("host", &self.host)
            .field("vars", &self.vars.len())
            .finish_non_exhaustive()
    }
}

impl Scope {
    pub(crate) fn root(inner: Arc<Inner>, ctx: &Vars) -> Arc<Scope> {
        Arc::new(Scope {
            inner,
            vars: ctx.vars.clone(),
            hostvars: ctx.hostvars.clone(),
            host: None,
            data: ctx.data_vars.get("").cloned().unwrap_or_default(),
            data_by_host: ctx.data_vars.clone(),
            shared: Arc::default(),
        })
    }

    pub(crate) fn vars(&self) -> &Map<String, Json> {
        &self.vars
    }

    fn for_host(&self, host: &str) -> Option<Arc<Scope>> {
        let vars = self.hostvars.get(host)?.clone();
        Some(Arc::new(Scope {
            inner: self.inner.clone(),
            vars,
            hostvars: self.hostvars.clone(),
            host: Some(host.to_string()),
            data: self.data_by_host.get(host).cloned().unwrap_or_default(),
            data_by_host: self.data_by_host.clone(),
            shared: self.shared.clone(),
        }))
    }

    /// The value at `path` is data (under a registered result, fact or loop item).
    fn is_data(&self, path: &[Seg]) -> bool {
        matches!(path.first(), Some(Seg::Key(k)) if self.data.contains(k))
    }

    /// How a path reads in a template (`hostvars['srv'].k3s_token`, `cfg.items[0]`).
    fn display(&self, path: &[Seg]) -> String {
        let mut out = String::new();
        let mut rest = path;
        match &self.host {
            Some(h) => out.push_str(&format!("hostvars['{h}']")),
            None => {
                if let Some((Seg::Key(k), tail)) = path.split_first() {
                    out.push_str(k);
                    rest = tail;
                }
            }
        }
        for seg in rest {
            push_seg(&mut out, seg, false);
        }
        out
    }

    /// A variable value as a minijinja value: scalars directly, containers as lazy views,
    /// strings holding templates rendered in this scope. `None` when a templated value turned
    /// out undefined (so `is defined` and `default` see it as undefined).
    fn wrap(self: &Arc<Self>, path: Vec<Seg>, v: &Json) -> Option<minijinja::Value> {
        Some(match v {
            Json::Null => minijinja::Value::from(()),
            Json::Bool(b) => minijinja::Value::from(*b),
            Json::Number(n) => number(n),
            Json::String(s) if is_template(s) && !self.is_data(&path) => {
                return self.template_var(&path, s);
            }
            Json::String(s) => minijinja::Value::from(s.as_str()),
            Json::Array(_) | Json::Object(_) => minijinja::Value::from_object(LazyNode {
                scope: self.clone(),
                path,
            }),
        })
    }

    /// Renders a variable whose value is a template (Ansible templates variables lazily).
    fn template_var(self: &Arc<Self>, path: &[Seg], s: &str) -> Option<minijinja::Value> {
        let name = self.display(path);
        {
            let mut stack = lock(&self.shared.in_progress);
            if let Some(pos) = stack.iter().position(|n| *n == name) {
                let mut cycle: Vec<&str> = stack[pos..].iter().map(String::as_str).collect();
                cycle.push(&name);
                return Some(minijinja::Value::from(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "recursive loop detected in template: {} refers to itself",
                        cycle.join(" -> ")
                    ),
                )));
            }
            stack.push(name.clone());
        }
        let result = self.inner.render_mj(s, self);
        lock(&self.shared.in_progress).pop();
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let undefined = e.undefined.is_some();
                let msg = e.message.clone();
                lock(&self.shared.failed_vars).push((name.clone(), e));
                if undefined {
                    None
                } else {
                    Some(minijinja::Value::from(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("{name}: {msg}"),
                    )))
                }
            }
        }
    }

    /// Remembers that `path` (below this scope) does not exist.
    fn record_miss(&self, path: Vec<Seg>) {
        match &self.host {
            Some(h) => {
                let mut segs = vec![Seg::Key(h.clone())];
                segs.extend(path);
                self.shared.record_miss("hostvars", segs);
            }
            None => {
                let mut it = path.into_iter();
                if let Some(Seg::Key(root)) = it.next() {
                    self.shared.record_miss(&root, it.collect());
                }
            }
        }
    }

    /// The recorded miss that fits a description with unknown subscripts.
    fn fill_unknown(&self, root: &str, segs: &[Seg]) -> Option<(String, Vec<Seg>)> {
        lock(&self.shared.misses)
            .iter()
            .rev()
            .find(|(r, s)| {
                (root.is_empty() || r == root)
                    && s.len() == segs.len()
                    && s.iter()
                        .zip(segs)
                        .all(|(a, b)| *b == Seg::Unknown || a == b)
            })
            .cloned()
    }

    fn failed_var(&self, name: &str) -> Option<TemplateError> {
        lock(&self.shared.failed_vars)
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.clone())
    }
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let k = key.as_str()?;
        if let Some(v) = self.vars.get(k) {
            return self.wrap(vec![Seg::Key(k.to_string())], v);
        }
        match k {
            SCOPE_KEY => Some(minijinja::Value::from_dyn_object(self.clone())),
            "hostvars" => Some(minijinja::Value::from_object(Hostvars {
                scope: self.clone(),
            })),
            "vars" => Some(minijinja::Value::from_object(LazyNode {
                scope: self.clone(),
                path: Vec::new(),
            })),
            "omit" => Some(minijinja::Value::from(OMIT)),
            _ => {
                if self.host.is_none() {
                    self.shared.record_miss(k, Vec::new());
                }
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.vars
                .keys()
                .map(|k| minijinja::Value::from(k.as_str()))
                .collect(),
        )
    }
}

/// `hostvars`: every inventory host's variables, each converted only when accessed.
#[derive(Debug)]
pub(crate) struct Hostvars {
    scope: Arc<Scope>,
}

impl Object for Hostvars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        let Some(host) = self.scope.for_host(name) else {
            self.scope
                .shared
                .record_miss("hostvars", vec![Seg::Key(name.to_string())]);
            return None;
        };
        Some(minijinja::Value::from_object(LazyNode {
            scope: host,
            path: Vec::new(),
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.scope
                .hostvars
                .keys()
                .map(|k| minijinja::Value::from(k.as_str()))
                .collect(),
        )
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.scope.hostvars.len())
    }
}

/// A dict or list inside a scope's variables (an empty path is the whole variable map).
pub(crate) struct LazyNode {
    scope: Arc<Scope>,
    path: Vec<Seg>,
}

impl fmt::Debug for LazyNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LazyNode({})", self.scope.display(&self.path))
    }
}

enum Target<'a> {
    Map(&'a Map<String, Json>),
    List(&'a [Json]),
    Other(&'a Json),
}

impl LazyNode {
    fn target(&self) -> Option<Target<'_>> {
        let Some((first, rest)) = self.path.split_first() else {
            return Some(Target::Map(&self.scope.vars));
        };
        let Seg::Key(k) = first else { return None };
        let mut cur = self.scope.vars.get(k)?;
        for seg in rest {
            cur = match (seg, cur) {
                (Seg::Key(k), Json::Object(m)) => m.get(k)?,
                (Seg::Idx(i), Json::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(match cur {
            Json::Object(m) => Target::Map(m),
            Json::Array(a) => Target::List(a),
            other => Target::Other(other),
        })
    }

    fn child(&self, seg: Seg) -> Vec<Seg> {
        let mut p = Vec::with_capacity(self.path.len() + 1);
        p.extend_from_slice(&self.path);
        p.push(seg);
        p
    }

    fn len(&self) -> usize {
        match self.target() {
            Some(Target::Map(m)) => m.len(),
            Some(Target::List(a)) => a.len(),
            _ => 0,
        }
    }

    /// The whole value as JSON, with templated strings inside rendered.
    pub(crate) fn to_json(&self) -> Result<Json, Error> {
        let mut path = self.path.clone();
        match self.target() {
            Some(Target::Map(m)) => resolve_map(&self.scope, &mut path, m),
            Some(Target::List(a)) => resolve_list(&self.scope, &mut path, a),
            Some(Target::Other(v)) => resolve(&self.scope, &mut path, v),
            None => Ok(Json::Null),
        }
    }
}

fn resolve(scope: &Arc<Scope>, path: &mut Vec<Seg>, v: &Json) -> Result<Json, Error> {
    match v {
        Json::String(s) if is_template(s) && !scope.is_data(path) => {
            match scope.template_var(path, s) {
                Some(mv) => to_json(&mv),
                None => Err(Error::new(
                    ErrorKind::UndefinedError,
                    format!("`{}` is undefined", scope.display(path)),
                )),
            }
        }
        Json::Object(m) => resolve_map(scope, path, m),
        Json::Array(a) => resolve_list(scope, path, a),
        other => Ok(other.clone()),
    }
}

fn resolve_map(
    scope: &Arc<Scope>,
    path: &mut Vec<Seg>,
    m: &Map<String, Json>,
) -> Result<Json, Error> {
    let mut out = Map::with_capacity(m.len());
    for (k, v) in m {
        path.push(Seg::Key(k.clone()));
        let r = resolve(scope, path, v);
        path.pop();
        out.insert(k.clone(), r?);
    }
    Ok(Json::Object(out))
}

fn resolve_list(scope: &Arc<Scope>, path: &mut Vec<Seg>, a: &[Json]) -> Result<Json, Error> {
    let mut out = Vec::with_capacity(a.len());
    for (i, v) in a.iter().enumerate() {
        path.push(Seg::Idx(i));
        let r = resolve(scope, path, v);
        path.pop();
        out.push(r?);
    }
    Ok(Json::Array(out))
}

impl Object for LazyNode {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.target() {
            Some(Target::List(_)) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        match self.target()? {
            Target::Map(m) => {
                let k: Cow<'_, str> = match key.as_str() {
                    Some(s) => Cow::Borrowed(s),
                    // YAML `{1: a}` arrives with string keys; `d[1]` should still find it.
                    None if key.is_number() => Cow::Owned(key.to_string()),
                    None => return None,
                };
                let Some((k, v)) = m.get_key_value(&*k) else {
                    self.scope.record_miss(self.child(Seg::Key(k.into_owned())));
                    return None;
                };
                self.scope.wrap(self.child(Seg::Key(k.clone())), v)
            }
            Target::List(a) => {
                let i = key.as_i64()?;
                let idx = if i < 0 {
                    a.len()
                        .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
                } else {
                    usize::try_from(i).ok()?
                };
                let Some(v) = a.get(idx) else {
                    self.scope.record_miss(self.child(Seg::Idx(idx)));
                    return None;
                };
                self.scope.wrap(self.child(Seg::Idx(idx)), v)
            }
            Target::Other(_) => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.target() {
            Some(Target::Map(m)) => Enumerator::Values(
                m.keys()
                    .map(|k| minijinja::Value::from(k.as_str()))
                    .collect(),
            ),
            Some(Target::List(a)) => Enumerator::Seq(a.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.len())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.len() > 0
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_json() {
            Ok(j) => f.write_str(&pyfmt::py_repr_json(&j)),
            Err(_) => f.write_str("<undefined>"),
        }
    }
}

/// A serde_json number as a minijinja value (integers stay integers).
pub(crate) fn number(n: &serde_json::Number) -> minijinja::Value {
    if let Some(i) = n.as_i64() {
        minijinja::Value::from(i)
    } else if let Some(u) = n.as_u64() {
        minijinja::Value::from(u)
    } else {
        minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// A JSON value as a minijinja value (eager; for small results of filters and lookups).
pub(crate) fn from_json(v: &Json) -> minijinja::Value {
    match v {
        Json::Null => minijinja::Value::from(()),
        Json::Bool(b) => minijinja::Value::from(*b),
        Json::Number(n) => number(n),
        Json::String(s) => minijinja::Value::from(s.as_str()),
        Json::Array(a) => minijinja::Value::from(a.iter().map(from_json).collect::<Vec<_>>()),
        Json::Object(m) => minijinja::Value::from_pairs(
            m.iter()
                .map(|(k, v)| (minijinja::Value::from(k.as_str()), from_json(v))),
        ),
    }
}

/// Converts a minijinja value to JSON (the typed result of a template).
pub(crate) fn to_json(v: &minijinja::Value) -> Result<Json, Error> {
    use minijinja::value::ValueKind as K;
    Ok(match v.kind() {
        K::Undefined => return Err(Error::new(ErrorKind::UndefinedError, "undefined value")),
        K::None => Json::Null,
        K::Bool => Json::Bool(v.is_true()),
        K::Number => {
            if v.is_integer() {
                if let Ok(i) = i64::try_from(v.clone()) {
                    Json::from(i)
                } else if let Ok(u) = u64::try_from(v.clone()) {
                    Json::from(u)
                } else {
                    let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
                }
            } else {
                let f = f64::try_from(v.clone())?;
                serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
            }
        }
        K::String => Json::String(v.as_str().unwrap_or_default().to_string()),
        K::Bytes => Json::String(String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into()),
        K::Seq | K::Iterable => {
            if let Some(node) = v.downcast_object_ref::<LazyNode>() {
                return node.to_json();
            }
            let mut out = Vec::new();
            for item in v.try_iter()? {
                out.push(to_json(&item)?);
            }
            Json::Array(out)
        }
        K::Map => {
            if let Some(node) = v.downcast_object_ref::<LazyNode>() {
                return node.to_json();
            }
            let mut out = Map::new();
            for key in v.try_iter()? {
                let item = v.get_item(&key)?;
                let k = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => pyfmt::py_str(&key),
                };
                out.insert(k, to_json(&item)?);
            }
            Json::Object(out)
        }
        K::Invalid => {
            return Err(Error::new(ErrorKind::InvalidOperation, v.to_string()));
        }
        _ => Json::String(v.to_string()),
    })
}

/// Fails, naming the variable, when `value` is undefined (strict mode): minijinja's own argument
/// check carries the undefined value's origin, which becomes "`name` is undefined".
pub(crate) fn check_defined(state: &State, value: &minijinja::Value) -> Result<(), Error> {
    if value.is_undefined() {
        <Cow<'_, str> as ArgType>::from_state_and_value(Some(state), Some(value))?;
        if matches!(
            state.undefined_behavior(),
            minijinja::UndefinedBehavior::Strict
        ) {
            return Err(Error::new(ErrorKind::UndefinedError, "undefined value"));
        }
    }
    Ok(())
}

/// Where in the template an error happened, for messages.
pub(crate) fn location(src: &str, line: Option<usize>) -> String {
    let text = src.trim();
    if !text.contains('\n') {
        return format!(" in {}", pyfmt::short(&format!("\"{text}\"")));
    }
    match line {
        Some(n) => format!(" (template line {n})"),
        None => String::new(),
    }
}

fn push_seg(out: &mut String, seg: &Seg, bracket: bool) {
    match seg {
        Seg::Key(k) if !bracket && is_ident(k) => {
            out.push('.');
            out.push_str(k);
        }
        Seg::Key(k) => out.push_str(&format!("[{}]", pyfmt::py_repr_str(k))),
        Seg::Idx(i) => out.push_str(&format!("[{i}]")),
        Seg::Unknown => out.push_str("[...]"),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses minijinja's description of an undefined expression (`hostvars["srv"].token`,
/// `cfg.items[0]`) into a root name and segments.
fn parse_described(expr: &str) -> Option<(String, Vec<Seg>)> {
    let b = expr.as_bytes();
    let mut i = 0;
    // `(...)`: a base minijinja could not describe; an empty root stands for it.
    let root = if expr.starts_with("(...)") {
        i = 5;
        String::new()
    } else {
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i == 0 {
            return None;
        }
        expr[..i].to_string()
    };
    let mut segs = Vec::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                i = start;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                segs.push(Seg::Key(expr[start..i].to_string()));
            }
            b'[' => {
                let rest = &expr[i + 1..];
                if let Some(after) = rest.strip_prefix('"') {
                    // A Rust-debug-quoted string: find the closing quote, honouring escapes.
                    let mut key = String::new();
                    let mut chars = after.char_indices();
                    let mut end = None;
                    while let Some((j, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    key.push(match n {
                                        'n' => '\n',
                                        't' => '\t',
                                        other => other,
                                    });
                                }
                            }
                            '"' => {
                                end = Some(j);
                                break;
                            }
                            c => key.push(c),
                        }
                    }
                    let end = end?;
                    // skip `"` and `]`
                    i = i + 1 + 1 + end + 1;
                    if b.get(i) != Some(&b']') {
                        return None;
                    }
                    i += 1;
                    segs.push(Seg::Key(key));
                } else {
                    let close = rest.find(']')?;
                    let inside = &rest[..close];
                    segs.push(match inside.parse::<usize>() {
                        Ok(n) => Seg::Idx(n),
                        Err(_) => Seg::Unknown,
                    });
                    i = i + 1 + close + 1;
                }
            }
            _ => return None,
        }
    }
    Some((root, segs))
}

/// Python-style display of a parsed path (matches `Scope::display`).
fn display_described(root: &str, segs: &[Seg]) -> String {
    let mut out = root.to_string();
    for (n, seg) in segs.iter().enumerate() {
        push_seg(&mut out, seg, n == 0 && root == "hostvars");
    }
    out
}

/// The backticked expression in minijinja's "`expr` is undefined" detail.
fn described_undefined(detail: &str) -> Option<&str> {
    let end = detail.find("` is undefined")?;
    let start = detail[..end].rfind('`')?;
    Some(&detail[start + 1..end])
}

/// Turns a minijinja runtime error into a `TemplateError` naming what is undefined.
pub(crate) fn map_error(e: &Error, src: &str, scope: &Scope) -> TemplateError {
    let line = e.line();
    let loc = location(src, line);
    let detail = e.detail().unwrap_or("");
    if let Some(expr) = described_undefined(detail) {
        let (name, what) = match parse_described(expr) {
            Some((mut root, mut segs)) => {
                if (root.is_empty() || segs.contains(&Seg::Unknown))
                    && let Some((r, filled)) = scope.fill_unknown(&root, &segs)
                {
                    root = r;
                    segs = filled;
                }
                if root.is_empty() {
                    root = "(...)".into();
                }
                let name = display_described(&root, &segs);
                let what = describe_undefined(scope, &root, &segs, &name);
                (name, what)
            }
            None => (expr.to_string(), format!("'{expr}' is undefined")),
        };
        if let Some(inner) = scope.failed_var(&name) {
            return TemplateError {
                message: format!(
                    "variable '{name}' could not be templated: {}{loc}",
                    inner.message
                ),
                undefined: inner.undefined.or(Some(name)),
                line,
            };
        }
        return TemplateError {
            message: format!("{what}{loc}"),
            undefined: Some(name),
            line,
        };
    }
    let message = match e.kind() {
        ErrorKind::UndefinedError => format!("undefined value{loc}"),
        ErrorKind::SyntaxError => format!("template syntax error: {detail}{loc}"),
        ErrorKind::InvalidOperation | ErrorKind::BadSerialization if !detail.is_empty() => {
            format!("{detail}{loc}")
        }
        kind if detail.is_empty() => format!("{kind}{loc}"),
        kind => format!("{kind}: {detail}{loc}"),
    };
    TemplateError {
        message,
        undefined: if e.kind() == ErrorKind::UndefinedError {
            Some(String::new()).filter(|s| !s.is_empty())
        } else {
            None
        },
        line,
    }
}

fn describe_undefined(scope: &Scope, root: &str, segs: &[Seg], name: &str) -> String {
    if root == "hostvars" && !scope.vars().contains_key("hostvars") {
        match segs {
            [Seg::Key(h)] => {
                return format!(
                    "hostvars['{h}'] is undefined: '{h}' is not a host in the inventory"
                );
            }
            [Seg::Key(h), Seg::Key(var)] => {
                return format!(
                    "hostvars['{h}'] has no variable '{var}' (a fact set on '{h}' exists only if \
                     a task ran there: was '{h}' excluded by --limit, skipped or failed earlier?)"
                );
            }
            _ => {}
        }
    }
    match segs.split_last() {
        None => format!("'{name}' is undefined"),
        Some((last, parent)) => {
            let parent_name = display_described(root, parent);
            match last {
                Seg::Key(k) => {
                    format!("'{name}' is undefined: '{parent_name}' has no attribute '{k}'")
                }
                Seg::Idx(i) => format!("'{name}' is undefined: '{parent_name}' has no item {i}"),
                Seg::Unknown => format!("'{name}' is undefined"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minijinja_descriptions() {
        let (root, segs) = parse_described(r#"hostvars["srv"].k3s_token"#).unwrap();
        assert_eq!(root, "hostvars");
        assert_eq!(
            segs,
            vec![Seg::Key("srv".into()), Seg::Key("k3s_token".into())]
        );
        assert_eq!(display_described(&root, &segs), "hostvars['srv'].k3s_token");
        let (root, segs) = parse_described(r#"cfg["a b"][2].x[...]"#).unwrap();
        assert_eq!(display_described(&root, &segs), "cfg['a b'][2].x[...]");
        let (root, segs) = parse_described("(...).x").unwrap();
        assert_eq!((root.as_str(), segs), ("", vec![Seg::Key("x".into())]));
        assert!(parse_described("a b").is_none());
        assert_eq!(
            described_undefined("cannot iterate (`foo.bar` is undefined)"),
            Some("foo.bar")
        );
    }
}
