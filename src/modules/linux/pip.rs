//! `pip`: Python packages with the target's pip, optionally in a virtualenv it creates, as
//! ansible.builtin.pip does: the install/uninstall command always runs (pip decides), and
//! `changed` is what pip reports (`Successfully installed`/`uninstalled`), or a `pip list`
//! comparison around a requirements file. Check mode compares `pip list --format=freeze`
//! with the requested names and versions (a simplified PEP 440 comparison: numeric release
//! segments; pre-release tags are ignored).

use async_trait::async_trait;
use serde_json::Value;

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, arg_bool, arg_str,
    choice, outcome, p,
};

static PIP_DEF: ModuleDef = ModuleDef {
    name: "pip",
    namespaces: BUILTIN,
    params: &[
        p("name", List),
        p("version", Str),
        p("requirements", Str),
        p("virtualenv", Str),
        p("virtualenv_site_packages", Bool),
        p("virtualenv_command", Str),
        p("virtualenv_python", Str),
        choice("state", &["absent", "forcereinstall", "latest", "present"]),
        p("extra_args", Str),
        p("editable", Bool),
        p("chdir", Str),
        p("executable", Str),
        p("umask", Str),
        p("break_system_packages", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["name", "requirements"], &["executable", "virtualenv"]],
    required_one_of: &[&["name", "requirements"]],
};

pub struct Pip;

/// `name` plus `version` as Ansible's `Package(name, version)` writes it.
pub fn with_version(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) if v.starts_with(['<', '>', '=', '!', '~']) => format!("{name}{v}"),
        Some(v) => format!("{name}=={v}"),
        None => name.to_string(),
    }
}

/// PEP 503 name normalization.
fn canonical(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn release(v: &str) -> Vec<u64> {
    v.trim()
        .split('.')
        .map_while(|p| {
            let d: String = p.chars().take_while(char::is_ascii_digit).collect();
            d.parse().ok()
        })
        .collect()
}

fn cmp_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (release(a), release(b));
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    x.cmp(&y)
}

/// Whether an installed `version` satisfies a requirement's specifiers (`>=1.0,<2`).
pub fn satisfies(version: &str, specs: &str) -> bool {
    specs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|s| {
            let op_len = s.find(|c: char| !"<>=!~".contains(c)).unwrap_or(s.len());
            let (op, want) = (&s[..op_len], s[op_len..].trim());
            let o = cmp_versions(version, want.trim_end_matches(".*"));
            match op {
                "==" if want.ends_with(".*") => {
                    let w = release(want.trim_end_matches(".*"));
                    release(version).starts_with(&w)
                }
                "==" | "===" => o.is_eq(),
                "!=" => o.is_ne(),
                ">=" => o.is_ge(),
                "<=" => o.is_le(),
                ">" => o.is_gt(),
                "<" => o.is_lt(),
                "~=" => {
                    let mut w = release(want);
                    w.pop();
                    o.is_ge() && release(version).starts_with(&w)
                }
                _ => false,
            }
        })
}

/// Ansible's `_is_present`: a requirement against `pip list --format=freeze` lines.
pub fn is_present(req: &str, freeze: &str) -> bool {
    let split = req.find(['<', '>', '=', '!', '~']).unwrap_or(req.len());
    let name = canonical(req[..split].split('[').next().unwrap_or_default());
    let specs = &req[split..];
    freeze.lines().any(|l| match l.split_once("==") {
        Some((n, v)) => canonical(n) == name && satisfies(v, specs),
        None => false,
    })
}

fn failed(cmd: &[String], out: &str, err: &str) -> ModError {
    let mut result = Outcome::new();
    result.insert("cmd".into(), cmd.join(" ").into());
    ModError::Failed {
        msg: format!("stdout: {out}\n\n:stderr: {err}"),
        result,
    }
}

#[async_trait]
impl Module for Pip {
    fn def(&self) -> &'static ModuleDef {
        &PIP_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let state = arg_str(&args, "state").unwrap_or("present");
        let version = arg_str(&args, "version");
        let names: Option<Vec<String>> = args.get("name").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
        let requirements = arg_str(&args, "requirements");
        if state == "latest" && version.is_some() {
            return Err(ModError::msg("version is incompatible with state=latest"));
        }
        let chdir = arg_str(&args, "chdir").unwrap_or("/tmp").to_string();
        let env = arg_str(&args, "virtualenv").map(|e| {
            if e.starts_with('/') || args.get("chdir").is_none_or(Value::is_null) {
                e.to_string()
            } else {
                format!("{chdir}/{e}")
            }
        });
        let mut packages: Vec<String> = names.clone().unwrap_or_default();
        if let Some(v) = version {
            if packages.len() > 1 {
                return Err(ModError::msg(
                    "'version' argument is ambiguous when installing multiple package distributions. Please specify version restrictions next to each package in 'name' argument.",
                ));
            }
            if let Some(p) = packages.first_mut() {
                if p.contains(['<', '>', '=', '!', '~']) {
                    return Err(ModError::msg(
                        "The 'version' argument conflicts with any version specifier provided along with a package name. Please keep the version specifier, but remove the 'version' argument.",
                    ));
                }
                *p = with_version(p, Some(v));
            }
        }
        let mut extra = arg_str(&args, "extra_args").unwrap_or("").to_string();
        if arg_bool(&args, "editable", false) && !extra.split(' ').any(|a| a == "-e") {
            extra = format!("{extra} -e").trim().to_string();
        }
        let umask = arg_str(&args, "umask")
            .map(|u| {
                u32::from_str_radix(u, 8)
                    .map(|m| format!("umask {m:o}; "))
                    .map_err(|_| ModError::msg("umask must be an octal integer"))
            })
            .transpose()?
            .unwrap_or_default();
        let mut env_prefix = String::from("LANG=C LC_ALL=C LC_MESSAGES=C ");
        if arg_bool(&args, "break_system_packages", false) {
            env_prefix.push_str("PIP_BREAK_SYSTEM_PACKAGES=1 ");
        }
        let run = |cmd: String| {
            let line = format!(
                "{umask}cd {} && {env_prefix}{cmd}",
                crate::modules::files::remote::sh_path(&chdir)
            );
            async move {
                let out = ctx.exec(line, None).await?;
                Ok::<_, ModError>((
                    out.rc,
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ))
            }
        };

        let (mut out, mut err) = (String::new(), String::new());
        let mut venv_created = false;
        if let Some(env) = &env {
            let (rc, _, _) = run(format!("test -e {}/bin/activate", quote(env))).await?;
            if rc != 0 {
                if ctx.check_mode {
                    return Ok(outcome(true));
                }
                let vc = arg_str(&args, "virtualenv_command").unwrap_or("virtualenv");
                let mut cmd: Vec<String> = shell_words::split(vc).map_err(|e| {
                    ModError::msg(format!("cannot parse virtualenv_command `{vc}`: {e}"))
                })?;
                let is_venv = vc.contains("pyvenv") || vc.contains("-m venv");
                if arg_bool(&args, "virtualenv_site_packages", false) {
                    cmd.push("--system-site-packages".into());
                }
                match (is_venv, arg_str(&args, "virtualenv_python")) {
                    (false, Some(py)) => cmd.push(format!("-p{py}")),
                    (false, None) => cmd.push("-p$(command -v python3)".into()),
                    (true, Some(_)) => {
                        return Err(ModError::msg(
                            "virtualenv_python should not be used when using the venv module or pyvenv as virtualenv_command",
                        ));
                    }
                    (true, None) => {}
                }
                cmd.push(env.clone());
                let line: Vec<String> = cmd
                    .iter()
                    .map(|w| {
                        if w.starts_with("-p$(") {
                            format!("\"{w}\"")
                        } else {
                            quote(w)
                        }
                    })
                    .collect();
                let (rc, o, e) = run(line.join(" ")).await?;
                out.push_str(&o);
                err.push_str(&e);
                if rc != 0 {
                    return Err(failed(&cmd, &out, &err));
                }
                venv_created = true;
            }
        }
        // Ansible's `_get_pip`: the executable, the virtualenv's pip, or this Python's.
        let pip: Vec<String> = match (arg_str(&args, "executable"), &env) {
            (Some(x), _) => vec![x.to_string()],
            (None, Some(env)) => {
                let (rc, _, _) = run(format!("test -x {}/bin/pip3", quote(env))).await?;
                vec![format!(
                    "{env}/bin/{}",
                    if rc == 0 { "pip3" } else { "pip" }
                )]
            }
            (None, None) => vec!["python3".into(), "-m".into(), "pip.__main__".into()],
        };
        let mut cmd = pip.clone();
        cmd.extend(
            match state {
                "absent" => &["uninstall", "-y"][..],
                "latest" => &["install", "-U"],
                "forcereinstall" => &["install", "-U", "--force-reinstall"],
                _ => &["install"],
            }
            .iter()
            .map(|s| s.to_string()),
        );
        if !extra.is_empty() {
            cmd.extend(
                shell_words::split(&extra)
                    .map_err(|e| ModError::msg(format!("cannot parse extra_args: {e}")))?,
            );
        }
        if names.is_some() {
            cmd.extend(packages.iter().cloned());
        } else if let Some(r) = requirements {
            cmd.extend(["-r".to_string(), r.to_string()]);
        }
        let sh = |c: &[String]| c.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let freeze = async || {
            let mut list = pip.clone();
            list.extend(["list".into(), "--format=freeze".into()]);
            let (rc, o, e) = run(sh(&list)).await?;
            if rc == 0 {
                return Ok((list, o, e));
            }
            let mut list = pip.clone();
            list.push("freeze".into());
            let (rc, o, e) = run(sh(&list)).await?;
            if rc != 0 {
                return Err(failed(&list, &o, &e));
            }
            Ok::<_, ModError>((list, o, e))
        };

        if ctx.check_mode {
            if !extra.is_empty() || requirements.is_some() || state == "latest" || names.is_none() {
                return Ok(outcome(true));
            }
            let (list, o, e) = freeze().await?;
            out.push_str(&o);
            err.push_str(&e);
            let changed = packages.iter().any(|p| {
                let present = is_present(p, &o);
                (state == "present" && !present) || (state == "absent" && present)
            });
            let mut r = outcome(changed);
            r.insert("cmd".into(), list.join(" ").into());
            r.insert("stdout".into(), out.into());
            r.insert("stderr".into(), err.into());
            return Ok(r);
        }
        let before = if requirements.is_some() {
            Some(freeze().await?.1)
        } else {
            None
        };
        let (rc, o, e) = run(sh(&cmd)).await?;
        out.push_str(&o);
        err.push_str(&e);
        if rc == 1
            && state == "absent"
            && (o.contains("not installed") || e.contains("not installed"))
        {
        } else if rc != 0 {
            return Err(failed(&cmd, &out, &err));
        }
        let changed = if state == "absent" {
            o.contains("Successfully uninstalled")
        } else if let Some(before) = before {
            freeze().await?.1 != before
        } else {
            o.contains("Successfully installed")
        };
        let mut r = outcome(changed || venv_created);
        r.insert("cmd".into(), cmd.into_iter().map(Value::from).collect());
        r.insert("name".into(), names.map(Value::from).unwrap_or(Value::Null));
        r.insert(
            "version".into(),
            version.map(Value::from).unwrap_or(Value::Null),
        );
        r.insert("state".into(), state.into());
        r.insert(
            "requirements".into(),
            requirements.map(Value::from).unwrap_or(Value::Null),
        );
        r.insert(
            "virtualenv".into(),
            env.map(Value::from).unwrap_or(Value::Null),
        );
        r.insert("stdout".into(), out.into());
        r.insert("stderr".into(), err.into());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_presence() {
        assert_eq!(with_version("a", Some("1.0")), "a==1.0");
        assert_eq!(with_version("a", Some(">=1.0")), "a>=1.0");
        let freeze = "Mixop_Demo==1.2.0\nrequests==2.31.0\n";
        assert!(is_present("mixop-demo", freeze));
        assert!(is_present("mixop-demo==1.2", freeze));
        assert!(is_present("mixop.demo>=1.0,<2", freeze));
        assert!(is_present("mixop-demo~=1.1", freeze));
        assert!(is_present("mixop-demo==1.*", freeze));
        assert!(!is_present("mixop-demo==1.3", freeze));
        assert!(!is_present("mixop-demo>1.2", freeze));
        assert!(is_present("requests[socks]>=2", freeze));
        assert!(!is_present("other", freeze));
    }
}
