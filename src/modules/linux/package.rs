//! `package` (the generic package manager front, as Ansible's `package` action plugin) and
//! `package_facts`.
//!
//! `package` picks its backend as Ansible does: `use`, else the `ansible_package_use`
//! variable, else the `pkg_mgr` fact (gathered facts), else a probe for it on the target; then
//! runs that module with every other argument, checked against the backend's own schema.

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, alias, choice, lookup,
    normalize_args, outcome, p,
};

static PACKAGE_DEF: ModuleDef = ModuleDef {
    name: "package",
    namespaces: BUILTIN,
    params: &[
        alias(p("name", List), &["pkg"]),
        p("state", Str),
        p("use", Str),
    ],
    free_form: FreeForm::KeyValue,
    // Every other argument goes to the backend module, which checks it (as in Ansible).
    open_args: true,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Package;

fn var<'a>(ctx: &'a ModuleCtx<'_>, path: &[&str]) -> Option<&'a Value> {
    let mut v = ctx.vars.vars.get(path[0])?;
    for k in &path[1..] {
        v = v.get(k)?;
    }
    Some(v)
}

/// The backend module's name, as Ansible's package action finds it.
async fn backend(ctx: &ModuleCtx<'_>, args: &Args) -> Result<String, ModError> {
    if let Some(u) = args
        .get("use")
        .and_then(Value::as_str)
        .filter(|u| *u != "auto")
    {
        return Ok(u.to_string());
    }
    for path in [
        &["ansible_package_use"][..],
        &["ansible_facts", "pkg_mgr"],
        &["ansible_pkg_mgr"],
    ] {
        if let Some(m) = var(ctx, path)
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            return Ok(m.to_string());
        }
    }
    let out = ctx
        .exec(crate::modules::builtin::PKG_MGR_PROBE, None)
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().strip_prefix("pkg_mgr=") {
        Some(m) if !m.is_empty() => Ok(m.to_string()),
        _ => Err(ModError::msg(
            "Could not detect a package manager. Try using the \"use\" option.",
        )),
    }
}

#[async_trait]
impl Module for Package {
    fn def(&self) -> &'static ModuleDef {
        &PACKAGE_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, mut args: Args) -> ModResult {
        let name = backend(ctx, &args).await?;
        args.remove("use");
        let short = name.rsplit('.').next().unwrap_or(&name);
        let Some(m) = lookup(&name)
            .or_else(|| lookup(short))
            .filter(|m| m.def().name != "package" && m.def().target != Target::Windows)
        else {
            return Err(ModError::msg(format!(
                "Could not find a matching action for the \"{name}\" package manager."
            )));
        };
        let args = normalize_args(m.def(), args).map_err(|e| ModError::msg(e.to_string()))?;
        m.run(ctx, args).await
    }
}

static PACKAGE_FACTS_DEF: ModuleDef = ModuleDef {
    name: "package_facts",
    namespaces: BUILTIN,
    params: &[p("manager", List), choice("strategy", &["first", "all"])],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct PackageFacts;

/// The managers mixop reads, in Ansible's `auto` order, with the listing command.
const MANAGERS: &[(&str, &str)] = &[
    (
        "apt",
        "command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${db:Status-Abbrev}\\t${binary:Package}\\t${Version}\\t${Architecture}\\t${Section}\\n'",
    ),
    (
        "rpm",
        "command -v rpm >/dev/null 2>&1 && rpm -qa --qf '%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{EPOCH}\\t%{ARCH}\\n'",
    ),
];

/// `dpkg-query` lines as Ansible's APT manager reports installed packages. python-apt names
/// a foreign-architecture package `name:arch`, which `${binary:Package}` also does.
pub fn parse_dpkg(text: &str, into: &mut Map<String, Value>) {
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [status, name, version, arch, section] = f[..] else {
            continue;
        };
        // python-apt's `is_installed`: a current version exists.
        if matches!(status.as_bytes().get(1), None | Some(b'n' | b'c')) {
            continue;
        }
        push(
            into,
            serde_json::json!({
                "name": name, "version": version, "arch": arch, "category": section,
                "source": "apt",
            }),
        );
    }
}

/// `rpm -qa` lines as Ansible's RPM manager reports them (`epoch` null when unset).
pub fn parse_rpm(text: &str, into: &mut Map<String, Value>) {
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, version, release, epoch, arch] = f[..] else {
            continue;
        };
        let epoch = epoch.parse::<i64>().map(Value::from).unwrap_or(Value::Null);
        push(
            into,
            serde_json::json!({
                "name": name, "version": version, "release": release, "epoch": epoch,
                "arch": arch, "source": "rpm",
            }),
        );
    }
}

fn push(into: &mut Map<String, Value>, pkg: Value) {
    let name = pkg["name"].as_str().unwrap_or_default().to_string();
    if let Value::Array(list) = into.entry(name).or_insert_with(|| Value::Array(vec![])) {
        list.push(pkg);
    }
}

#[async_trait]
impl Module for PackageFacts {
    fn def(&self) -> &'static ModuleDef {
        &PACKAGE_FACTS_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let wanted: Vec<String> = args
            .get("manager")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_else(|| vec!["auto".into()]);
        let auto = wanted.iter().any(|m| m == "auto");
        let first = args.get("strategy").and_then(Value::as_str) != Some("all");
        for m in &wanted {
            if m != "auto" && !MANAGERS.iter().any(|(n, _)| n == m) {
                return Err(ModError::msg(format!(
                    "Unsupported package manager: {m} (mixop reads: apt, rpm)"
                )));
            }
        }
        let mut packages = Map::new();
        let mut found = Vec::new();
        for (name, cmd) in MANAGERS {
            if !auto && !wanted.iter().any(|m| m == name) {
                continue;
            }
            let out = ctx.exec(*cmd, None).await?;
            if out.rc != 0 {
                continue;
            }
            let text = String::from_utf8_lossy(&out.stdout);
            match *name {
                "apt" => parse_dpkg(&text, &mut packages),
                _ => parse_rpm(&text, &mut packages),
            }
            found.push(*name);
            if first {
                break;
            }
        }
        if found.is_empty() {
            return Err(ModError::msg(format!(
                "Could not detect a supported package manager from the following list: {wanted:?}, or the required Python library is not installed. Check warnings for details."
            )));
        }
        let mut r = outcome(false);
        r.insert(
            "ansible_facts".into(),
            serde_json::json!({ "packages": packages }),
        );
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_lines_become_ansible_packages() {
        let mut m = Map::new();
        parse_dpkg(
            "ii \tmixop-a\t1.0\tall\tmisc\nrc \tgone\t2.0\tall\tmisc\nii \tlibc6:i386\t2.36\ti386\tlibs\nbad line\n",
            &mut m,
        );
        assert_eq!(
            m["mixop-a"],
            serde_json::json!([{"name": "mixop-a", "version": "1.0", "arch": "all", "category": "misc", "source": "apt"}])
        );
        assert!(!m.contains_key("gone"));
        assert_eq!(m["libc6:i386"][0]["arch"], "i386");
    }

    #[test]
    fn rpm_lines_become_ansible_packages() {
        let mut m = Map::new();
        parse_rpm(
            "bash\t5.1.8\t6.el9\t(none)\tx86_64\nkernel\t5.14\t1\t1\tx86_64\nkernel\t5.15\t1\t1\tx86_64\n",
            &mut m,
        );
        assert_eq!(m["bash"][0]["epoch"], Value::Null);
        assert_eq!(m["kernel"].as_array().unwrap().len(), 2);
        assert_eq!(m["kernel"][1]["epoch"], 1);
    }
}
