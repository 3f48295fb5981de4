//! `include_vars`: variables from YAML/JSON files on the controller (vault-encrypted ones too),
//! set for the host as facts are, as ansible.builtin.include_vars does.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::ParamType::*;
use super::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, arg_str, outcome, p,
};

pub static DEF: ModuleDef = ModuleDef {
    name: "include_vars",
    namespaces: &["ansible.builtin"],
    params: &[
        p("file", Str),
        p("dir", Str),
        p("name", Str),
        p("files_matching", Str),
        p("ignore_files", List),
        p("extensions", List),
        p("depth", Int),
        p("hash_behaviour", Str),
        // `include_vars: file.yml` (free-form text arrives as `cmd`).
        p("cmd", Str),
    ],
    free_form: FreeForm::Command,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[&["file", "dir", "cmd"]],
    required_one_of: &[&["file", "dir", "cmd"]],
};

pub struct IncludeVars;

#[async_trait]
impl Module for IncludeVars {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        if args.get("hash_behaviour").and_then(Value::as_str) == Some("merge") {
            return Err(ModError::msg(
                "include_vars: hash_behaviour=merge is not supported (mixop replaces, as Ansible's default)",
            ));
        }
        let files = match (
            arg_str(&args, "file").or(arg_str(&args, "cmd")),
            arg_str(&args, "dir"),
        ) {
            (Some(file), _) => vec![ctx.find_local(file, "vars")?],
            (None, Some(dir)) => dir_files(&ctx.find_local(dir, "vars")?, &args)?,
            (None, None) => unreachable!("required_one_of"),
        };
        let mut vars = Map::new();
        for f in &files {
            merge_file(&mut vars, f)?;
        }
        for k in vars.keys() {
            if !super::builtin::is_identifier(k) {
                return Err(ModError::msg(format!(
                    "include_vars: `{k}` in {} is not a valid variable name",
                    files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let facts = match arg_str(&args, "name") {
            Some(name) => {
                let mut m = Map::new();
                m.insert(name.to_string(), Value::Object(vars));
                m
            }
            None => vars,
        };
        let mut r = outcome(false);
        r.insert("ansible_facts".into(), Value::Object(facts));
        r.insert(
            "ansible_included_var_files".into(),
            files
                .iter()
                .map(|f| Value::from(f.display().to_string()))
                .collect(),
        );
        Ok(r)
    }
}

fn merge_file(vars: &mut Map<String, Value>, path: &Path) -> Result<(), ModError> {
    let docs = crate::yaml::load_file(path).map_err(|d| ModError::msg(d.message))?;
    match docs.first().map(|d| d.to_value()) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) => {
            vars.extend(m);
            Ok(())
        }
        Some(_) => Err(ModError::msg(format!(
            "{} must hold a mapping of variables",
            path.display()
        ))),
    }
}

/// The files of `dir` as Ansible takes them: sorted by name, walked depth-first up to `depth`
/// (0 = unlimited), filtered by `extensions`, `files_matching` and `ignore_files`.
fn dir_files(dir: &Path, args: &Args) -> Result<Vec<PathBuf>, ModError> {
    let list = |k: &str| -> Vec<String> {
        args.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(crate::value::to_text).collect())
            .unwrap_or_default()
    };
    let mut extensions = list("extensions");
    if extensions.is_empty() {
        extensions = vec!["yaml".into(), "yml".into(), "json".into()];
    }
    let ignore = list("ignore_files");
    let matching = match arg_str(args, "files_matching") {
        Some(re) => Some(
            regex::Regex::new(re)
                .map_err(|e| ModError::msg(format!("include_vars: files_matching `{re}`: {e}")))?,
        ),
        None => None,
    };
    let depth = args.get("depth").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut out = Vec::new();
    walk(dir, 1, depth, &mut |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext_ok = p
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| x == &e.to_string_lossy()));
        let ignored = ignore.iter().any(|i| crate::inventory::fnmatch(i, &name));
        let matches = matching.as_ref().is_none_or(|re| re.is_match(&name));
        if ext_ok && !ignored && matches {
            out.push(p.to_path_buf());
        }
    })
    .map_err(|e| ModError::msg(format!("include_vars: {}: {e}", dir.display())))?;
    Ok(out)
}

fn walk(dir: &Path, level: usize, depth: usize, f: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if depth == 0 || level < depth {
                walk(&p, level + 1, depth, f)?;
            }
        } else {
            f(&p);
        }
    }
    Ok(())
}
