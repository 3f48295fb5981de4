//! `lookup()` / `query()`: Ansible's env, file, template, vars and pipe lookups.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, State, Value};

use super::filters::err;
use super::objects::{SCOPE_KEY, Scope};

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("query", query);
    env.add_function("q", query);
    env.add_function(WITH_FUNCTION, with_lookup);
}

/// The function a `with_<lookup>` loop calls: `_mixop_with('nested', terms)` runs the lookup
/// with `terms` as its list of terms (a non-list is one term), as ansible-core's
/// `_get_loop_items` does, and returns its list unchanged.
pub(crate) const WITH_FUNCTION: &str = "_mixop_with";

fn with_lookup(state: &State, name: String, terms: Value) -> Result<Value, Error> {
    super::objects::check_defined(state, &terms)?;
    let terms: Vec<Value> = if terms.kind() == ValueKind::Seq {
        terms.try_iter()?.collect()
    } else {
        vec![terms]
    };
    let none = Kwargs::from_iter(std::iter::empty::<(&str, Value)>());
    run(state, &name, &terms, &none)
        .map(Value::from)
        .map_err(|e| {
            let detail = e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string());
            err(format!("with_{name}: {detail}"))
        })
}

/// Finds `name` like Ansible's `find_file_in_search_path`: absolute paths as given, otherwise
/// `<base>/<subdir>/<name>` then `<base>/<name>` for each search path (the current directory
/// when there is none).
pub(super) fn find_file(search_paths: &[PathBuf], subdir: &str, name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let cwd = [PathBuf::from(".")];
    let bases = if search_paths.is_empty() {
        &cwd[..]
    } else {
        search_paths
    };
    bases
        .iter()
        .flat_map(|b| [b.join(subdir).join(name), b.join(name)])
        .find(|c| c.is_file())
}

fn scope(state: &State) -> Result<Arc<Scope>, Error> {
    state
        .lookup(SCOPE_KEY)
        .and_then(|v| v.downcast_object::<Scope>())
        .ok_or_else(|| err("lookup() is not available here"))
}

/// Where relative names are looked up: the role's directory in a role's task (`role_path`),
/// then the playbook's.
fn search_paths(scope: &Arc<Scope>) -> Vec<PathBuf> {
    let root = Value::from_dyn_object(scope.clone());
    let mut paths: Vec<PathBuf> = root
        .get_attr("role_path")
        .ok()
        .and_then(|v| v.as_str().map(PathBuf::from))
        .into_iter()
        .collect();
    paths.extend(scope.inner.opts.search_paths.iter().cloned());
    paths
}

fn searched(scope: &Arc<Scope>, subdir: &str) -> String {
    let paths = &search_paths(scope);
    if paths.is_empty() {
        return format!("./{subdir}, .");
    }
    paths
        .iter()
        .flat_map(|b| {
            [
                b.join(subdir).display().to_string(),
                b.display().to_string(),
            ]
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lookup plugins `run` implements (short names; `ansible.builtin.` is accepted too).
pub(crate) const SUPPORTED: &[&str] = &[
    "env",
    "file",
    "template",
    "vars",
    "pipe",
    "items",
    "list",
    "fileglob",
    "first_found",
    "password",
    "nested",
    "together",
    "subelements",
    "sequence",
    "lines",
    "dict",
    "indexed_items",
];

/// Whether `lookup(name, ...)` names a plugin mixop has.
pub(crate) fn is_supported(name: &str) -> bool {
    SUPPORTED.contains(&name.strip_prefix("ansible.builtin.").unwrap_or(name))
}

fn run(state: &State, name: &str, terms: &[Value], kwargs: &Kwargs) -> Result<Vec<Value>, Error> {
    let plugin = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    let term_str = |t: &Value| -> Result<String, Error> {
        super::objects::check_defined(state, t)?;
        t.as_str().map(str::to_string).ok_or_else(|| {
            err(format!(
                "lookup('{plugin}') terms must be strings, got {}",
                t.kind()
            ))
        })
    };
    let mut out = Vec::with_capacity(terms.len());
    match plugin {
        "env" => {
            let default: Option<Value> = kwargs.get("default")?;
            for t in terms {
                let t = term_str(t)?;
                let var = t.split_whitespace().next().unwrap_or_default();
                out.push(match std::env::var(var) {
                    Ok(v) => Value::from(v),
                    // ansible-core 2.19: an unset variable without a default is undefined.
                    Err(_) => default.clone().unwrap_or(Value::UNDEFINED),
                });
            }
        }
        "file" => {
            let lstrip = kwargs.get::<Option<bool>>("lstrip")?.unwrap_or(false);
            let rstrip = kwargs.get::<Option<bool>>("rstrip")?.unwrap_or(true);
            let scope = scope(state)?;
            for t in terms {
                let t = term_str(t)?;
                let path = find_file(&search_paths(&scope), "files", &t).ok_or_else(|| {
                    err(format!(
                        "could not find file '{t}' (searched {})",
                        searched(&scope, "files")
                    ))
                })?;
                let (mut text, _) = crate::vault::read_text(&path).map_err(|d| err(d.message))?;
                if rstrip {
                    text.truncate(text.trim_end().len());
                }
                if lstrip {
                    text = text.trim_start().to_string();
                }
                out.push(Value::from(text));
            }
        }
        "template" => {
            let scope = scope(state)?;
            for t in terms {
                let t = term_str(t)?;
                let path = find_file(&search_paths(&scope), "templates", &t).ok_or_else(|| {
                    err(format!(
                        "could not find template '{t}' (searched {})",
                        searched(&scope, "templates")
                    ))
                })?;
                let (src, _) = crate::vault::read_text(&path).map_err(|d| err(d.message))?;
                let text = scope
                    .inner
                    .render_text(&src, &scope)
                    .map_err(|e| err(format!("{}: {}", path.display(), e.message)))?;
                out.push(Value::from(text));
            }
        }
        "vars" => {
            let default: Option<Value> = kwargs.get("default")?;
            let scope = scope(state)?;
            let root = Value::from_dyn_object(scope);
            for t in terms {
                let t = term_str(t)?;
                let v = root.get_attr(&t)?;
                if v.is_undefined() {
                    match &default {
                        Some(d) => out.push(d.clone()),
                        None => return Err(err(format!("No variable named '{t}' was found"))),
                    }
                } else {
                    out.push(v);
                }
            }
        }
        "pipe" => {
            let scope = scope(state)?;
            for t in terms {
                let cmd = term_str(t)?;
                let mut c = std::process::Command::new("/bin/sh");
                c.arg("-c").arg(&cmd).stdin(std::process::Stdio::null());
                // The playbook's directory ("" for `mixop run pb.yml`: the current one).
                if let Some(dir) = scope.inner.opts.search_paths.first()
                    && !dir.as_os_str().is_empty()
                {
                    c.current_dir(dir);
                }
                let o = c
                    .output()
                    .map_err(|e| err(format!("cannot run '{cmd}': {e}")))?;
                if !o.status.success() {
                    return Err(err(format!(
                        "lookup_plugin.pipe({cmd}) returned {}",
                        o.status.code().unwrap_or(-1)
                    )));
                }
                let text = String::from_utf8_lossy(&o.stdout);
                out.push(Value::from(text.trim_end()));
            }
        }
        "fileglob" => {
            let scope = scope(state)?;
            for t in &flat_terms(terms)? {
                out.extend(fileglob(&scope.inner.opts.search_paths, &term_str(t)?));
            }
        }
        "first_found" => {
            let scope = scope(state)?;
            let mut skip = kwargs.get::<Option<bool>>("skip")?.unwrap_or(false);
            let (mut files, mut paths) = (Vec::new(), Vec::new());
            let add = |v: &Value,
                       files: &mut Vec<String>,
                       paths: &mut Vec<String>|
             -> Result<(), Error> {
                match v.kind() {
                    ValueKind::Map => {
                        for (key, into) in [("files", &mut *files), ("paths", &mut *paths)] {
                            let x = v.get_attr(key)?;
                            if !x.is_undefined() {
                                split_terms(&x, into)?;
                            }
                        }
                        Ok(())
                    }
                    _ => split_terms(v, files),
                }
            };
            for t in &flat_terms(terms)? {
                add(t, &mut files, &mut paths)?;
                // A mapping term may carry `skip` (ansible-core's term-level options).
                if t.kind() == ValueKind::Map {
                    let s = t.get_attr("skip")?;
                    if !s.is_undefined() {
                        skip = s.is_true();
                    }
                }
            }
            if let Some(f) = kwargs.get::<Option<Value>>("files")? {
                split_terms(&f, &mut files)?;
            }
            if let Some(p) = kwargs.get::<Option<Value>>("paths")? {
                split_terms(&p, &mut paths)?;
            }
            let found = files.iter().find_map(|f| {
                if paths.is_empty() {
                    find_file(&scope.inner.opts.search_paths, "files", f)
                } else {
                    paths.iter().find_map(|p| {
                        find_file(&scope.inner.opts.search_paths, "files", &format!("{p}/{f}"))
                    })
                }
            });
            match found {
                Some(p) => out.push(Value::from(p.display().to_string())),
                None if skip => {}
                None => {
                    return Err(err(format!(
                        "No file was found when using first_found (looked for {} in {})",
                        files.join(", "),
                        if paths.is_empty() {
                            searched(&scope, "files")
                        } else {
                            paths.join(", ")
                        }
                    )));
                }
            }
        }
        "password" => {
            let scope = scope(state)?;
            for t in terms {
                let pw = password(&scope.inner.opts.search_paths, &term_str(t)?)?;
                crate::secret::register(&pw);
                out.push(Value::from(pw));
            }
        }
        "items" | "list" => {
            for t in terms {
                if t.kind() == ValueKind::Seq && plugin == "items" {
                    out.extend(t.try_iter()?);
                } else {
                    out.push(t.clone());
                }
            }
        }
        "nested" => {
            if terms.is_empty() {
                return Err(err(
                    "with_nested requires at least one element in the nested list",
                ));
            }
            let lists: Vec<Vec<Value>> = terms
                .iter()
                .map(|t| as_list(state, t, plugin))
                .collect::<Result<_, _>>()?;
            let mut result: Vec<Vec<Value>> = lists[0].iter().map(|x| vec![x.clone()]).collect();
            // Ansible's `_combine` flattens one level at each step: list elements of a
            // term are spread into the tuple.
            for next in &lists[1..] {
                let mut combined = Vec::new();
                for x in &result {
                    for y in next {
                        let mut row = x.clone();
                        spread(y, &mut row)?;
                        combined.push(row);
                    }
                }
                result = combined;
            }
            for row in result {
                let mut flat = Vec::new();
                for x in &row {
                    spread(x, &mut flat)?;
                }
                out.push(Value::from(flat));
            }
        }
        "together" => {
            if terms.is_empty() {
                return Err(err(
                    "with_together requires at least one element in each list",
                ));
            }
            let lists: Vec<Vec<Value>> = terms
                .iter()
                .map(|t| as_list(state, t, plugin))
                .collect::<Result<_, _>>()?;
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            for i in 0..n {
                let mut row = Vec::new();
                for l in &lists {
                    spread(&l.get(i).cloned().unwrap_or(Value::from(())), &mut row)?;
                }
                out.push(Value::from(row));
            }
        }
        "subelements" => out.extend(subelements(state, terms)?),
        "sequence" => {
            if terms.is_empty() {
                return Err(err("sequence: no terms (give `start=1 end=5` or `1-5`)"));
            }
            for t in terms {
                for n in sequence(&term_str(t)?)? {
                    out.push(Value::from(n));
                }
            }
        }
        "lines" => {
            let scope = scope(state)?;
            for t in terms {
                let cmd = term_str(t)?;
                let mut c = std::process::Command::new("/bin/sh");
                c.arg("-c").arg(&cmd).stdin(std::process::Stdio::null());
                // The playbook's directory ("" for `mixop run pb.yml`: the current one).
                if let Some(dir) = scope.inner.opts.search_paths.first()
                    && !dir.as_os_str().is_empty()
                {
                    c.current_dir(dir);
                }
                let o = c
                    .output()
                    .map_err(|e| err(format!("cannot run '{cmd}': {e}")))?;
                if !o.status.success() {
                    return Err(err(format!(
                        "lookup_plugin.lines({cmd}) returned {}",
                        o.status.code().unwrap_or(-1)
                    )));
                }
                out.extend(
                    py_splitlines(&String::from_utf8_lossy(&o.stdout))
                        .into_iter()
                        .map(Value::from),
                );
            }
        }
        "dict" => {
            for t in terms {
                super::objects::check_defined(state, t)?;
                let serde_json::Value::Object(m) = super::objects::to_json(t)? else {
                    return Err(err(format!(
                        "the 'dict' lookup plugin expects a dictionary, got '{}' of type {}",
                        super::pyfmt::py_str(t),
                        t.kind()
                    )));
                };
                for (k, v) in m {
                    out.push(super::objects::from_json(
                        &serde_json::json!({"key": k, "value": v}),
                    ));
                }
            }
        }
        "indexed_items" => {
            let mut flat = Vec::new();
            for t in terms {
                super::objects::check_defined(state, t)?;
                spread(t, &mut flat)?;
            }
            for (i, v) in flat.into_iter().enumerate() {
                out.push(Value::from(vec![Value::from(i), v]));
            }
        }
        other => {
            return Err(err(format!(
                "lookup plugin '{other}' is not supported (mixop supports {})",
                SUPPORTED.join(", ")
            )));
        }
    }
    Ok(out)
}

fn invoke(
    state: &State,
    name: &str,
    terms: Rest<Value>,
    kwargs: Kwargs,
    query: bool,
) -> Result<Value, Error> {
    let wantlist = kwargs.get::<Option<bool>>("wantlist")?.unwrap_or(false) || query;
    let errors: String = kwargs
        .get::<Option<String>>("errors")?
        .unwrap_or_else(|| "strict".into());
    let result = run(state, name, &terms.0, &kwargs).and_then(|r| {
        kwargs.assert_all_used()?;
        Ok(r)
    });
    let items = match result {
        Ok(items) => items,
        Err(_) if errors == "ignore" || errors == "warn" => {
            return Ok(if wantlist {
                Value::from(Vec::<Value>::new())
            } else {
                Value::from(())
            });
        }
        Err(e) => {
            let detail = e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string());
            return Err(err(format!("lookup('{name}') failed: {detail}")));
        }
    };
    if wantlist || items.is_empty() {
        return Ok(Value::from(items));
    }
    if items.len() == 1 {
        return Ok(items.into_iter().next().unwrap_or(Value::UNDEFINED));
    }
    // Several results: joined with commas when all are strings (Ansible's backwards compat).
    if items.iter().all(|v| v.kind() == ValueKind::String) {
        let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
        return Ok(Value::from(parts.join(",")));
    }
    Ok(Value::from(items))
}

fn lookup(state: &State, name: String, terms: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    invoke(state, &name, terms, kwargs, false)
}

fn query(state: &State, name: String, terms: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    invoke(state, &name, terms, kwargs, true)
}

/// A term that must be a list (`nested`, `together`); Ansible iterates strings by character,
/// which is never what a playbook means, so mixop refuses them.
fn as_list(state: &State, t: &Value, plugin: &str) -> Result<Vec<Value>, Error> {
    super::objects::check_defined(state, t)?;
    match t.kind() {
        ValueKind::Seq => Ok(t.try_iter()?.collect()),
        _ => Err(err(format!(
            "{plugin}: each term must be a list, got {} `{}`",
            t.kind(),
            super::pyfmt::py_str(t)
        ))),
    }
}

/// Ansible's `LookupBase._flatten` of one element: a list's items, or the value itself.
fn spread(v: &Value, into: &mut Vec<Value>) -> Result<(), Error> {
    if v.kind() == ValueKind::Seq {
        into.extend(v.try_iter()?);
    } else {
        into.push(v.clone());
    }
    Ok(())
}

/// Python's `str.splitlines()` (without the line ends).
fn py_splitlines(s: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut cur));
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => lines.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// `subelements`: `[list-or-dict, "key.subkey", {skip_missing: bool}]` as pairs
/// `[record, element]`. As in ansible-core, the record no longer has the list it was paired
/// from (the plugin pops it), and records with `skipped` set are left out.
fn subelements(state: &State, terms: &[Value]) -> Result<Vec<Value>, Error> {
    use serde_json::Value as Json;
    let bad = |msg: &str| {
        err(format!(
            "subelements lookup expects a list of two or three items, {msg}"
        ))
    };
    if !(2..=3).contains(&terms.len()) {
        return Err(bad(""));
    }
    for t in terms {
        super::objects::check_defined(state, t)?;
    }
    let first = super::objects::to_json(&terms[0])?;
    let Some(path) = terms[1].as_str().map(str::to_string) else {
        return Err(bad(
            "first a dict or a list, second a string pointing to the subkey",
        ));
    };
    let records: Vec<Json> = match first {
        Json::Object(m) => {
            if m.get("skipped").is_some_and(|s| s != &Json::Bool(false)) {
                return Ok(Vec::new());
            }
            m.into_iter().map(|(_, v)| v).collect()
        }
        Json::Array(a) => a,
        _ => {
            return Err(bad(
                "first a dict or a list, second a string pointing to the subkey",
            ));
        }
    };
    let mut skip_missing = false;
    if let Some(flags) = terms.get(2) {
        let Json::Object(f) = super::objects::to_json(flags)? else {
            return Err(bad(
                "the optional third item must be a dict with flags ('skip_missing',)",
            ));
        };
        for (k, v) in f {
            match (k.as_str(), v) {
                ("skip_missing", Json::Bool(b)) => skip_missing = b,
                ("skip_missing", Json::String(s)) => {
                    skip_missing = crate::value::parse_bool(&s).unwrap_or(false)
                }
                ("skip_missing", Json::Number(n)) => skip_missing = n.as_f64() == Some(1.0),
                _ => {
                    return Err(bad(
                        "the optional third item must be a dict with flags ('skip_missing',)",
                    ));
                }
            }
        }
    }
    let keys: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    for mut record in records {
        let Json::Object(m) = &record else {
            return Err(err(format!(
                "subelements lookup expects a dictionary, got '{}'",
                super::pyfmt::py_repr_json(&record)
            )));
        };
        if m.get("skipped").is_some_and(|s| s != &Json::Bool(false)) {
            continue;
        }
        // Walk the keys read-only first (ansible-core's loop, `continue`s included), then
        // take the list out of the record.
        let mut sub = &record;
        let mut descend: Vec<&str> = Vec::new();
        let mut take: Option<&str> = None;
        for (i, key) in keys.iter().enumerate() {
            let last = i + 1 == keys.len();
            let Json::Object(m) = sub else { unreachable!() };
            let Some(value) = m.get(*key) else {
                if skip_missing {
                    continue;
                }
                return Err(err(format!(
                    "could not find '{key}' key in iterated item '{}'",
                    super::pyfmt::py_repr_json(sub)
                )));
            };
            if !last {
                if !value.is_object() {
                    if skip_missing {
                        continue;
                    }
                    return Err(err(format!(
                        "the key {key} should point to a dictionary, got '{}'",
                        super::pyfmt::py_repr_json(value)
                    )));
                }
                descend.push(key);
                sub = value;
            } else if value.is_array() {
                take = Some(key);
            } else {
                return Err(err(format!(
                    "the key {key} should point to a list, got '{}'",
                    super::pyfmt::py_repr_json(value)
                )));
            }
        }
        let mut sublist = Vec::new();
        if let Some(key) = take {
            let mut sub = &mut record;
            for k in descend {
                sub = &mut sub[k];
            }
            if let Some(Json::Array(a)) = sub.as_object_mut().and_then(|m| m.shift_remove(key)) {
                sublist = a;
            }
        }
        for e in sublist {
            out.push(Value::from(vec![
                super::objects::from_json(&record),
                super::objects::from_json(&e),
            ]));
        }
    }
    Ok(out)
}

/// ansible-core's `sequence` lookup on one term: the shortcut `[start-]end[/stride][:format]`
/// or `key=value` words (start, end, count, stride, format). Numbers are read as 2.19's
/// config typing reads integers: decimal only (`010` is ten; `0x10` is refused), `2.0` is 2.
fn sequence(term: &str) -> Result<Vec<String>, Error> {
    let int = |key: &str, v: &str| -> Result<i64, Error> {
        let bad = || {
            err(format!(
                "Config '{key}' for 'sequence' lookup plugin has an invalid value: \
                 Invalid value provided for 'integer': '{v}'"
            ))
        };
        let t = v.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Ok(n);
        }
        match t.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && f.is_finite() && !t.contains(['e', 'E', 'n', 'N']) => {
                Ok(f as i64)
            }
            _ => Err(bad()),
        }
    };
    let (mut start, mut end, mut count, mut stride, mut format) =
        (1i64, None::<i64>, None::<i64>, 1i64, "%d".to_string());
    let shortcut =
        regex::Regex::new(r"(?i)^((0?x?[0-9a-f]+)-)?(0?x?[0-9a-f]+)(/(0?x?[0-9a-f]+))?(:(.+))?$")
            .expect("valid regex");
    if let Some(c) = shortcut.captures(term) {
        if let Some(s) = c.get(2) {
            start = int("start", s.as_str())?;
        }
        end = Some(int("end", &c[3])?);
        if let Some(s) = c.get(5) {
            stride = int("stride", s.as_str())?;
        }
        if let Some(f) = c.get(7) {
            format = f.as_str().to_string();
        }
    } else {
        let (pairs, free) = crate::modules::split_kv(term);
        let mut unknown: Vec<String> = pairs
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !["start", "end", "count", "stride", "format"].contains(&k.as_str()))
            .collect();
        if !free.trim().is_empty() {
            unknown.push("_raw".into());
        }
        if !unknown.is_empty() {
            return Err(err(format!(
                "unrecognized arguments to with_sequence: [{}]",
                unknown
                    .iter()
                    .map(|k| super::pyfmt::py_repr_str(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for (k, v) in pairs {
            match k.as_str() {
                "start" => start = int("start", &v)?,
                "end" => end = Some(int("end", &v)?),
                "count" => count = Some(int("count", &v)?),
                "stride" => stride = int("stride", &v)?,
                _ => format = v,
            }
        }
    }
    let end = match (count, end) {
        (None, None) => return Err(err("must specify count or end in with_sequence")),
        (Some(_), Some(_)) => {
            return Err(err("can't specify both count and end in with_sequence"));
        }
        (Some(0), None) => return Ok(Vec::new()),
        (Some(c), None) => start + c * stride - 1,
        (None, Some(e)) => e,
    };
    if stride > 0 && end < start {
        return Err(err("to count backwards make stride negative"));
    }
    if stride < 0 && end > start {
        return Err(err("to count forward don't make stride negative"));
    }
    if stride == 0 {
        return Ok(Vec::new());
    }
    if format.matches('%').count() != 1 {
        return Err(err(format!("bad formatting string: {format}")));
    }
    let mut out = Vec::new();
    let mut i = start;
    while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
        out.push(percent_format(&format, i).ok_or_else(|| {
            err(format!(
                "problem formatting {i} with {}",
                super::pyfmt::py_repr_str(&format)
            ))
        })?);
        i += stride;
    }
    Ok(out)
}

/// Python's `format % n` for a format with one conversion (`%d`, `%05x`, `%-3o`, `%.2f`, `%s`).
fn percent_format(format: &str, n: i64) -> Option<String> {
    let at = format.find('%')?;
    let (head, rest) = (&format[..at], &format[at + 1..]);
    let spec_end = rest.find(|c: char| c.is_ascii_alphabetic())?;
    let (spec, conv) = (&rest[..spec_end], rest[spec_end..].chars().next()?);
    let tail = &rest[spec_end + conv.len_utf8()..];
    let flags: String = spec.chars().take_while(|c| "-+ 0#".contains(*c)).collect();
    let rest = &spec[flags.len()..];
    let (width, prec) = match rest.split_once('.') {
        Some((w, p)) => (w, Some(p.parse::<usize>().ok()?)),
        None => (rest, None),
    };
    let width: usize = if width.is_empty() {
        0
    } else {
        width.parse().ok()?
    };
    let neg = n < 0;
    let a = n.unsigned_abs();
    let (mut digits, numeric) = match conv {
        'd' | 'i' | 'u' => (a.to_string(), true),
        'x' => (format!("{a:x}"), true),
        'X' => (format!("{a:X}"), true),
        'o' => (format!("{a:o}"), true),
        'f' | 'F' => (format!("{:.*}", prec.unwrap_or(6), a as f64), true),
        's' | 'r' => (n.to_string(), false),
        _ => return None,
    };
    if numeric && !matches!(conv, 'f' | 'F') {
        if let Some(p) = prec {
            while digits.len() < p {
                digits.insert(0, '0');
            }
        }
        if flags.contains('#') {
            match conv {
                'x' => digits.insert_str(0, "0x"),
                'X' => digits.insert_str(0, "0X"),
                'o' => digits.insert_str(0, "0o"),
                _ => {}
            }
        }
    }
    let sign = if !numeric {
        ""
    } else if neg {
        "-"
    } else if flags.contains('+') {
        "+"
    } else if flags.contains(' ') {
        " "
    } else {
        ""
    };
    let body_len = sign.len() + digits.chars().count();
    let pad = width.saturating_sub(body_len);
    let body = if flags.contains('-') {
        format!("{sign}{digits}{}", " ".repeat(pad))
    } else if flags.contains('0') && numeric {
        format!("{sign}{}{digits}", "0".repeat(pad))
    } else {
        format!("{}{sign}{digits}", " ".repeat(pad))
    };
    Some(format!("{head}{body}{tail}"))
}

/// A `first_found` term: a name, a comma/semicolon-separated list of names, or a list of them.
/// Terms with each list term standing for its items (`with_<lookup>` passes its list whole).
fn flat_terms(terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut flat = Vec::new();
    let mut todo: Vec<Value> = terms.iter().rev().cloned().collect();
    while let Some(t) = todo.pop() {
        match t.kind() {
            ValueKind::Seq => todo.extend(t.try_iter()?.collect::<Vec<_>>().into_iter().rev()),
            _ => flat.push(t),
        }
    }
    Ok(flat)
}

fn split_terms(v: &Value, into: &mut Vec<String>) -> Result<(), Error> {
    match v.kind() {
        ValueKind::Seq => {
            for x in v.try_iter()? {
                split_terms(&x, into)?;
            }
        }
        _ => match v.as_str() {
            Some(s) => into.extend(
                s.split([',', ';'])
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string),
            ),
            None => {
                return Err(err(format!(
                    "first_found: cannot use {} as a file name",
                    v.kind()
                )));
            }
        },
    }
    Ok(())
}

/// `fileglob`: the files (not directories) matching a glob; a relative glob's directory is found
/// in the search paths (`files/` first), as ansible.builtin.fileglob does. Sorted by name.
fn fileglob(search_paths: &[PathBuf], term: &str) -> Vec<Value> {
    let path = Path::new(term);
    let (dir, pattern) = match (path.parent(), path.file_name()) {
        (Some(d), Some(f)) => (d.to_path_buf(), f.to_string_lossy().into_owned()),
        _ => return Vec::new(),
    };
    let dirs: Vec<PathBuf> = if dir.is_absolute() {
        vec![dir]
    } else {
        let cwd = [PathBuf::from(".")];
        let bases = if search_paths.is_empty() {
            &cwd[..]
        } else {
            search_paths
        };
        bases
            .iter()
            .flat_map(|b| [b.join("files").join(&dir), b.join(&dir)])
            .filter(|d| d.is_dir())
            .take(1)
            .collect()
    };
    let mut found: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter(|e| crate::inventory::fnmatch(&pattern, &e.file_name().to_string_lossy()))
        .map(|e| e.path().display().to_string())
        .collect();
    found.sort();
    found.into_iter().map(Value::from).collect()
}

/// `password`: `PATH [length=N] [chars=SET,...]`. Reads the password stored at PATH (relative to
/// the playbook), or generates one and stores it there (mode 0600, written to a temporary name
/// first); `/dev/null` generates without storing.
fn password(search_paths: &[PathBuf], term: &str) -> Result<String, Error> {
    let mut words = term.split_whitespace();
    let file = words
        .next()
        .ok_or_else(|| err("password: a path is required"))?;
    let mut length = 20usize;
    let mut chars = String::new();
    for w in words {
        match w.split_once('=') {
            Some(("length", n)) => {
                length = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=4096).contains(n))
                    .ok_or_else(|| err(format!("password: length `{n}` is not 1 to 4096")))?
            }
            Some(("chars", set)) => {
                for part in set.split(',') {
                    chars.push_str(match part {
                        "ascii_letters" => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                        "ascii_lowercase" => "abcdefghijklmnopqrstuvwxyz",
                        "ascii_uppercase" => "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                        "digits" => "0123456789",
                        "hexdigits" => "0123456789abcdefABCDEF",
                        "octdigits" => "01234567",
                        "punctuation" => "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
                        other => other,
                    });
                }
            }
            Some(("seed" | "encrypt" | "ident" | "salt", _)) => {
                return Err(err(format!("password: `{w}` is not supported by mixop")));
            }
            _ => return Err(err(format!("password: cannot understand `{w}`"))),
        }
    }
    if chars.is_empty() {
        chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:-_".into();
    }
    let path = match Path::new(file) {
        p if p.is_absolute() => p.to_path_buf(),
        p => search_paths
            .first()
            .map_or_else(|| p.to_path_buf(), |b| b.join(p)),
    };
    if path != Path::new("/dev/null")
        && let Ok(text) = std::fs::read_to_string(&path)
    {
        // Ansible stores `PASSWORD salt=...` when encrypting; the password is the first word.
        return Ok(text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string());
    }
    let set: Vec<char> = chars.chars().collect();
    let mut pw = String::with_capacity(length);
    // Unbiased picks from OS randomness (uuid's v4 bytes come from getrandom).
    let limit = 256 - 256 % set.len().min(256);
    while pw.chars().count() < length {
        for b in *uuid::Uuid::new_v4().as_bytes() {
            if (b as usize) < limit && pw.chars().count() < length {
                pw.push(set[b as usize % set.len()]);
            }
        }
    }
    if path != Path::new("/dev/null") {
        write_private(&path, &pw).map_err(|e| {
            err(format!(
                "password: cannot store the password in {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(pw)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("mixop-tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{text}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
