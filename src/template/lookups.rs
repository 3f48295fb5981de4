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
pub(crate) const SUPPORTED: &[&str] = &["env", "file", "template", "vars", "pipe", "items", "list"];

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
