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
                if let Some(dir) = scope.inner.opts.search_paths.first() {
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
