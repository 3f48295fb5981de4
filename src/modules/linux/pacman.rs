//! `pacman` (community.general.pacman): Arch Linux packages through the target's `pacman`.
//!
//! Decides as the collection does. Round trip 1 (one `sh` script) finds the executable,
//! refreshes the sync databases when `update_cache` asks (not in check mode; `-Sl` before and
//! after tells whether anything changed, unless `force`), then reads the inventory: installed
//! packages (`-Q`), installed groups (`-Qg`), the sync databases (`-Sl`), their groups
//! (`-Sgg`), upgradable packages (`-Qu`) and install reasons (`-Qe`, `-Qd`). Names that are
//! neither packages nor groups are resolved as the collection does (`-S --print-format %n`,
//! then `-U --print-format %n` for files and URLs). Installs and removals first run pacman
//! with `--print-format` (what would change: `packages` and the diff), then for real unless in
//! check mode. Command lines are the collection's: `--noconfirm --noprogressbar --needed
//! [extra_args] --sync|--upgrade`, `--remove --noconfirm --noprogressbar [extra_args]
//! [--nodeps --nodeps] [--nosave]`, `--sync --sysupgrade --quiet --noconfirm`,
//! `--noconfirm --database --asdeps|--asexplicit`.
//!
//! One deliberate difference: a listing that exits 1 with nothing on stdout (an empty local
//! database, no dependency packages) is read as empty, where the collection would fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::files::remote::{self, Reply};
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, alias, choice, p,
    typed,
};

static PACMAN_DEF: ModuleDef = ModuleDef {
    name: "pacman",
    namespaces: &["community.general"],
    params: &[
        alias(p("name", List), &["package", "pkg"]),
        choice(
            "state",
            &["absent", "installed", "latest", "present", "removed"],
        ),
        p("force", Bool),
        p("remove_nosave", Bool),
        p("executable", Str),
        p("extra_args", Str),
        alias(p("update_cache", Bool), &["update-cache"]),
        p("update_cache_extra_args", Str),
        p("upgrade", Bool),
        p("upgrade_extra_args", Str),
        choice("reason", &["dependency", "explicit"]),
        choice("reason_for", &["all", "new"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["name", "upgrade"]],
    required_one_of: &[&["name", "update_cache", "upgrade"]],
};

pub struct Pacman;

#[derive(Debug, Clone, serde::Deserialize)]
struct PacmanArgs {
    #[serde(default)]
    name: Vec<String>,
    #[serde(default = "present")]
    state: String,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    remove_nosave: bool,
    #[serde(default = "pacman")]
    executable: String,
    #[serde(default)]
    extra_args: String,
    #[serde(default)]
    update_cache: bool,
    #[serde(default)]
    update_cache_extra_args: String,
    #[serde(default)]
    upgrade: bool,
    #[serde(default)]
    upgrade_extra_args: String,
    reason: Option<String>,
    #[serde(default = "new")]
    reason_for: String,
}

fn present() -> String {
    "present".into()
}
fn pacman() -> String {
    "pacman".into()
}
fn new() -> String {
    "new".into()
}

/// Everything `_build_inventory` collects.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inventory {
    pub installed: BTreeMap<String, String>,
    pub installed_groups: BTreeMap<String, BTreeSet<String>>,
    pub available: BTreeMap<String, String>,
    pub available_groups: BTreeMap<String, BTreeSet<String>>,
    /// name → (current, latest), in `-Qu` order.
    pub upgradable: Vec<(String, String, String)>,
    pub reasons: HashMap<String, String>,
}

impl Inventory {
    fn upgradable(&self, name: &str) -> bool {
        self.upgradable.iter().any(|(n, _, _)| n == name)
    }
}

/// A requested package: its name and what is passed to pacman for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pkg {
    pub name: String,
    pub source: String,
    pub from_file: bool,
}

fn words(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
}

/// `name version` lines (`-Q`).
pub fn parse_versions(text: &str) -> BTreeMap<String, String> {
    words(text)
        .filter(|w| w.len() >= 2)
        .map(|w| (w[0].to_string(), w[1].to_string()))
        .collect()
}

/// `group name` lines (`-Qg`, `-Sgg`).
pub fn parse_groups(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for w in words(text).filter(|w| w.len() >= 2) {
        out.entry(w[0].to_string())
            .or_default()
            .insert(w[1].to_string());
    }
    out
}

/// `repo name version` lines (`-Sl`).
pub fn parse_sync_list(text: &str) -> BTreeMap<String, String> {
    words(text)
        .filter(|w| w.len() >= 3)
        .map(|w| (w[1].to_string(), w[2].to_string()))
        .collect()
}

/// `name current -> latest [ignored]` lines (`-Qu`); ignored packages are left out.
pub fn parse_upgrades(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("[ignored]") {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() != 4 {
            return Err(format!("Invalid line: {line}"));
        }
        out.push((w[0].to_string(), w[1].to_string(), w[3].to_string()));
    }
    Ok(out)
}

/// The install plan: packages to `--sync`, files/URLs to `--upgrade`, names whose install
/// reason is to be set (the collection's `install_packages` selection).
pub fn plan_install(
    pkgs: &[Pkg],
    inv: &Inventory,
    latest: bool,
    reason: Option<&str>,
    reason_for: &str,
) -> (Vec<Pkg>, Vec<Pkg>, Vec<String>) {
    let (mut sync, mut files, mut set_reason) = (Vec::new(), Vec::new(), Vec::new());
    for p in pkgs {
        if let Some(reason) = reason {
            let current = inv.reasons.get(&p.name);
            if current.is_none()
                || reason_for == "all" && current.map(String::as_str) != Some(reason)
            {
                set_reason.push(p.name.clone());
            }
        }
        if p.from_file {
            files.push(p.clone());
            continue;
        }
        if !inv.installed.contains_key(&p.name) || latest && inv.upgradable(&p.name) {
            sync.push(p.clone());
        }
    }
    (sync, files, set_reason)
}

/// The diff entries from an install dry run's `%n %v` lines: (names, before, after).
pub fn install_diff(
    stdout: &str,
    inv: &Inventory,
    set_reason: &[String],
    reason: Option<&str>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut names, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for line in stdout.lines().map(str::trim) {
        if line.contains("loading packages") || line.contains("there is nothing to do") {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let [name, version] = w[..] else {
            continue;
        };
        let known = inv.reasons.get(name);
        if let Some(v) = inv.installed.get(name) {
            before.push(format!(
                "{name}-{v}-{}",
                known.map(String::as_str).unwrap_or_default()
            ));
        }
        if set_reason.iter().any(|n| n == name) {
            after.push(format!("{name}-{version}-{}", reason.unwrap_or_default()));
        } else if let Some(r) = known {
            after.push(format!("{name}-{version}-{r}"));
        } else {
            after.push(format!("{name}-{version}"));
        }
        names.push(name.to_string());
    }
    (names, before, after)
}

fn joined(mut lines: Vec<String>, sort: bool) -> String {
    if sort {
        lines.sort();
    }
    if lines.is_empty() {
        String::new()
    } else {
        lines.join("\n") + "\n"
    }
}

/// What the module reports, collected as the collection's `add_exit_infos` does.
#[derive(Default)]
struct Exit {
    msgs: Vec<String>,
    stdouts: Vec<String>,
    stderrs: Vec<String>,
    changed: bool,
    params: Outcome,
}

impl Exit {
    fn info(&mut self, msg: &str, stdout: &str, stderr: &str) {
        for (list, v) in [
            (&mut self.msgs, msg),
            (&mut self.stdouts, stdout),
            (&mut self.stderrs, stderr),
        ] {
            if !v.is_empty() {
                list.push(v.to_string());
            }
        }
    }
    fn set(&mut self, k: &str, v: impl Into<Value>) {
        self.params.insert(k.into(), v.into());
    }
    fn finish(mut self) -> Outcome {
        if !self.stdouts.is_empty() {
            self.set("stdout", self.stdouts.join("\n"));
        }
        if !self.stderrs.is_empty() {
            self.set("stderr", self.stderrs.join("\n"));
        }
        self.set("msg", self.msgs.join("\n"));
        let mut r = self.params;
        r.insert("changed".into(), self.changed.into());
        r
    }
    fn success(self) -> ModResult {
        Ok(self.finish())
    }
    /// The collection's `fail`: `rc` only where it passes one.
    fn fail(mut self, msg: &str, cmd: Option<&[String]>, out: &Run, rc: bool) -> ModError {
        self.info(msg, &out.stdout, &out.stderr);
        if let Some(cmd) = cmd {
            self.set("cmd", cmd.to_vec());
        }
        if rc {
            self.set("rc", out.rc);
        }
        let mut result = self.finish();
        let msg = match result.remove("msg") {
            Some(Value::String(s)) => s,
            _ => msg.to_string(),
        };
        result.remove("changed");
        ModError::Failed { msg, result }
    }
}

/// One command's output.
#[derive(Debug, Default, Clone)]
struct Run {
    rc: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from_reply(reply: &Reply, key: &str) -> Option<Run> {
        let rc = reply.get(&format!("{key}_rc"))?.parse().unwrap_or(-1);
        let lines = |k: String| reply.all(&k).collect::<Vec<_>>().join("\n");
        Some(Run {
            rc,
            stdout: lines(format!("{key}_out")),
            stderr: lines(format!("{key}_err")),
        })
    }
}

async fn run_cmd(ctx: &ModuleCtx<'_>, argv: &[String]) -> Result<Run, ModError> {
    let line = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
    let out = ctx.exec(format!("LC_ALL=C {line}"), None).await?;
    Ok(Run {
        rc: out.rc,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Shell words of one `_run KEY CMD...` line in the read script.
fn step(key: &str, args: &[&str]) -> String {
    let mut s = format!("_run {key} \"$pm\"");
    for a in args {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s.push('\n');
    s
}

/// The read script: executable, optional refresh, inventory.
fn read_script(a: &PacmanArgs, refresh: Option<&[String]>, inventory: bool) -> String {
    let mut body = String::from(
        r#"pm=$(command -v "$exe") || { _err "Failed to find required executable \"$exe\" in PATH"; exit 0; }
printf 'path=%s\n' "$pm"
_e=$(mktemp) || exit 1
trap 'rm -f "$_e"' EXIT
_run() {
  _k=$1; shift
  _o=$(LC_ALL=C "$@" 2>"$_e"); _r=$?
  printf '%s\n' "$_o" | sed "s/^/${_k}_out=/"
  sed "s/^/${_k}_err=/" "$_e"
  printf '%s_rc=%s\n' "$_k" "$_r"
}
"#,
    );
    if let Some(extra) = refresh {
        if !a.force {
            body.push_str(&step("pre", &["--sync", "--list"]));
        }
        let mut args = vec!["--sync", "--refresh"];
        args.extend(extra.iter().map(String::as_str));
        if a.force {
            args.push("--refresh");
        }
        body.push_str(&step("refresh", &args));
        if !a.force {
            body.push_str(&step("post", &["--sync", "--list"]));
        }
    }
    if inventory {
        for (k, args) in [
            ("q", &["--query"][..]),
            ("qg", &["--query", "--groups"]),
            ("sl", &["--sync", "--list"]),
            ("sgg", &["--sync", "--groups", "--groups"]),
            ("qu", &["--query", "--upgrades"]),
            ("qe", &["--query", "--explicit"]),
            ("qd", &["--query", "--deps"]),
        ] {
            body.push_str(&step(k, args));
        }
    }
    remote::script(&[("exe", quote(&a.executable))], &body)
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().collect();
    v.sort_unstable();
    v
}

fn split_args(name: &str, text: &str) -> Result<Vec<String>, ModError> {
    shell_words::split(text)
        .map_err(|e| ModError::msg(format!("{name}: cannot split `{text}`: {e}")))
}

/// A listing the collection runs with `check_rc=True`: its stdout, or the failure as
/// `run_command` reports it (its own message, none of the module's earlier output).
fn listing(reply: &Reply, key: &str, cmd: &[&str]) -> Result<String, ModError> {
    let run = Run::from_reply(reply, key).unwrap_or(Run {
        rc: -1,
        ..Run::default()
    });
    // Exits 1 with nothing to list (an empty database): read as empty.
    if run.rc == 0 || run.rc == 1 && run.stdout.trim().is_empty() {
        return Ok(run.stdout);
    }
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let msg = if run.stderr.trim().is_empty() {
        format!("`{}` exited {}", cmd.join(" "), run.rc)
    } else {
        run.stderr.trim_end().to_string()
    };
    let mut result = Outcome::new();
    result.insert("cmd".into(), cmd.into());
    result.insert("rc".into(), run.rc.into());
    result.insert("stdout".into(), run.stdout.into());
    result.insert("stderr".into(), run.stderr.into());
    Err(ModError::Failed { msg, result })
}

/// Why the inventory could not be read: a listing failed, or the module fails (`-Qu`).
enum InvError {
    Listing(ModError),
    Fail(String, Run, bool),
}

impl From<ModError> for InvError {
    fn from(e: ModError) -> Self {
        InvError::Listing(e)
    }
}

fn parse_inventory(reply: &Reply, pm: &str) -> Result<Inventory, InvError> {
    let mut inv = Inventory {
        installed: parse_versions(&listing(reply, "q", &[pm, "--query"])?),
        installed_groups: parse_groups(&listing(reply, "qg", &[pm, "--query", "--groups"])?),
        available: parse_sync_list(&listing(reply, "sl", &[pm, "--sync", "--list"])?),
        available_groups: parse_groups(&listing(
            reply,
            "sgg",
            &[pm, "--sync", "--groups", "--groups"],
        )?),
        ..Inventory::default()
    };
    let qu = Run::from_reply(reply, "qu").unwrap_or_default();
    if qu.rc == 1 && qu.stdout.is_empty() {
        // nothing to upgrade
    } else if qu.rc == 0 {
        inv.upgradable =
            parse_upgrades(&qu.stdout).map_err(|msg| InvError::Fail(msg, Run::default(), false))?;
    } else {
        return Err(InvError::Fail(
            "Couldn't get list of packages available for upgrade".into(),
            qu,
            true,
        ));
    }
    for w in words(&listing(reply, "qe", &[pm, "--query", "--explicit"])?) {
        inv.reasons.insert(w[0].to_string(), "explicit".into());
    }
    for w in words(&listing(reply, "qd", &[pm, "--query", "--deps"])?) {
        inv.reasons.insert(w[0].to_string(), "dependency".into());
    }
    Ok(inv)
}

#[async_trait]
impl Module for Pacman {
    fn def(&self) -> &'static ModuleDef {
        &PACMAN_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: PacmanArgs = typed(&args)?;
        let state = match a.state.as_str() {
            "installed" => "present",
            "removed" => "absent",
            s => s,
        };
        let extra = split_args("extra_args", &a.extra_args)?;
        let update_extra = split_args("update_cache_extra_args", &a.update_cache_extra_args)?;
        let upgrade_extra = split_args("upgrade_extra_args", &a.upgrade_extra_args)?;
        let names: Vec<&String> = a.name.iter().filter(|n| !n.is_empty()).collect();
        let has_name = !a.name.is_empty();

        let mut exit = Exit::default();
        let refresh = (a.update_cache && !ctx.check_mode).then_some(&update_extra[..]);
        let need_inventory = has_name || a.upgrade;
        let reply = remote::run(ctx, read_script(&a, refresh, need_inventory)).await?;
        if let Some(e) = reply.get("error") {
            return Err(ModError::msg(e));
        }
        let pm = reply.get("path").unwrap_or("pacman").to_string();

        if a.update_cache {
            if ctx.check_mode {
                exit.info("Would have updated the package db", "", "");
                exit.changed = true;
                exit.set("cache_updated", true);
            } else {
                let pre = if a.force {
                    None
                } else {
                    Some(listing(&reply, "pre", &[&pm, "--sync", "--list"])?)
                };
                let run = Run::from_reply(&reply, "refresh").unwrap_or_default();
                let updated = match &pre {
                    None => true,
                    Some(pre) => {
                        let post = listing(&reply, "post", &[&pm, "--sync", "--list"])?;
                        sorted_lines(pre) != sorted_lines(&post)
                    }
                };
                exit.set("cache_updated", updated);
                exit.changed |= updated;
                if run.rc != 0 {
                    let mut cmd: Vec<String> =
                        vec![pm.clone(), "--sync".into(), "--refresh".into()];
                    cmd.extend(update_extra.iter().cloned());
                    if a.force {
                        cmd.push("--refresh".into());
                    }
                    return Err(exit.fail("could not update package db", Some(&cmd), &run, false));
                }
                exit.info("Updated package db", &run.stdout, &run.stderr);
            }
            if !need_inventory {
                return exit.success();
            }
        }

        let inv = match parse_inventory(&reply, &pm) {
            Ok(inv) => inv,
            Err(InvError::Listing(e)) => return Err(e),
            Err(InvError::Fail(msg, run, rc)) => return Err(exit.fail(&msg, None, &run, rc)),
        };

        if a.upgrade {
            return upgrade(ctx, &pm, &upgrade_extra, &inv, exit).await;
        }
        if !has_name {
            return Err(exit.fail("This is a bug", None, &Run::default(), false));
        }

        // package_list: groups expand to their members, known names stay, the rest is asked.
        let mut pkgs = Vec::new();
        for n in names {
            if let Some(members) = inv.available_groups.get(n.as_str()) {
                pkgs.extend(members.iter().map(|m| Pkg {
                    name: m.clone(),
                    source: m.clone(),
                    from_file: false,
                }));
                continue;
            }
            if inv.available.contains_key(n.as_str()) || inv.installed.contains_key(n.as_str()) {
                pkgs.push(Pkg {
                    name: n.clone(),
                    source: n.clone(),
                    from_file: false,
                });
                continue;
            }
            let mut cmd: Vec<String> = vec![
                pm.clone(),
                "--sync".into(),
                "--print-format".into(),
                "%n".into(),
                n.clone(),
            ];
            let mut out = run_cmd(ctx, &cmd).await?;
            let mut from_file = false;
            if out.rc != 0 {
                cmd[1] = "--upgrade".into();
                out = run_cmd(ctx, &cmd).await?;
                if out.rc != 0 {
                    if state == "absent" {
                        continue;
                    }
                    return Err(exit.fail(
                        &format!("Failed to list package {n}"),
                        Some(&cmd),
                        &out,
                        true,
                    ));
                }
                from_file = true;
            }
            let name = if from_file {
                out.stdout.lines().last().unwrap_or_default()
            } else {
                &out.stdout
            };
            pkgs.push(Pkg {
                name: name.trim().to_string(),
                source: n.clone(),
                from_file,
            });
        }

        if state == "absent" {
            remove(ctx, &a, &pm, &extra, &pkgs, &inv, exit).await
        } else {
            install(ctx, &a, &pm, &extra, &pkgs, &inv, state == "latest", exit).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn install(
    ctx: &ModuleCtx<'_>,
    a: &PacmanArgs,
    pm: &str,
    extra: &[String],
    pkgs: &[Pkg],
    inv: &Inventory,
    latest: bool,
    mut exit: Exit,
) -> ModResult {
    let reason = a.reason.as_deref();
    let (sync, files, set_reason) = plan_install(pkgs, inv, latest, reason, &a.reason_for);
    let nothing = |mut exit: Exit| {
        exit.set("packages", Vec::<String>::new());
        exit.info("package(s) already installed", "", "");
        exit.success()
    };
    if sync.is_empty() && files.is_empty() && set_reason.is_empty() {
        return nothing(exit);
    }
    let mut base: Vec<String> = [pm, "--noconfirm", "--noprogressbar", "--needed"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    base.extend(extra.iter().cloned());
    let batches = [("--sync", &sync), ("--upgrade", &files)];

    let (mut names, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for (verb, list) in batches {
        if list.is_empty() {
            continue;
        }
        let mut cmd = base.clone();
        cmd.extend([verb.to_string(), "--print-format".into(), "%n %v".into()]);
        cmd.extend(list.iter().map(|p| p.source.clone()));
        let out = run_cmd(ctx, &cmd).await?;
        if out.rc != 0 {
            return Err(exit.fail(
                "Failed to list package(s) to install",
                Some(&cmd),
                &out,
                false,
            ));
        }
        let (n, b, af) = install_diff(&out.stdout, inv, &set_reason, reason);
        names.extend(n);
        before.extend(b);
        after.extend(af);
    }
    if names.is_empty() && set_reason.is_empty() {
        return nothing(exit);
    }
    exit.changed = true;
    exit.set(
        "diff",
        json!({"before": joined(before, true), "after": joined(after, true)}),
    );
    let reason_only: Vec<String> = set_reason
        .iter()
        .filter(|n| !names.contains(n))
        .cloned()
        .collect();
    let mut packages: Vec<String> = names.iter().chain(&reason_only).cloned().collect();
    packages.sort();
    if ctx.check_mode {
        exit.info(
            &format!("Would have installed {} packages", packages.len()),
            "",
            "",
        );
        exit.set("packages", packages);
        return exit.success();
    }
    for (verb, list) in batches {
        if list.is_empty() {
            continue;
        }
        let mut cmd = base.clone();
        cmd.push(verb.to_string());
        cmd.extend(list.iter().map(|p| p.source.clone()));
        let out = run_cmd(ctx, &cmd).await?;
        if out.rc != 0 {
            return Err(exit.fail("Failed to install package(s)", Some(&cmd), &out, false));
        }
        exit.info("", &out.stdout, &out.stderr);
    }
    if !set_reason.is_empty() {
        let mut cmd: Vec<String> = vec![pm.into(), "--noconfirm".into(), "--database".into()];
        cmd.push(
            if reason == Some("dependency") {
                "--asdeps"
            } else {
                "--asexplicit"
            }
            .into(),
        );
        cmd.extend(set_reason.iter().cloned());
        let out = run_cmd(ctx, &cmd).await?;
        if out.rc != 0 {
            return Err(exit.fail("Failed to install package(s)", Some(&cmd), &out, false));
        }
        exit.info("", &out.stdout, &out.stderr);
    }
    exit.info(&format!("Installed {} package(s)", packages.len()), "", "");
    exit.set("packages", packages);
    exit.success()
}

async fn remove(
    ctx: &ModuleCtx<'_>,
    a: &PacmanArgs,
    pm: &str,
    extra: &[String],
    pkgs: &[Pkg],
    inv: &Inventory,
    mut exit: Exit,
) -> ModResult {
    let names: Vec<String> = pkgs
        .iter()
        .filter(|p| inv.installed.contains_key(&p.name))
        .map(|p| p.name.clone())
        .collect();
    if names.is_empty() {
        exit.set("packages", Vec::<String>::new());
        exit.info("package(s) already absent", "", "");
        return exit.success();
    }
    exit.changed = true;
    let mut base: Vec<String> = [pm, "--remove", "--noconfirm", "--noprogressbar"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    base.extend(extra.iter().cloned());
    if a.force {
        base.extend(["--nodeps".into(), "--nodeps".into()]);
    }
    let mut cmd = base.clone();
    cmd.extend(["--print-format".into(), "%n-%v".into()]);
    cmd.extend(names.iter().cloned());
    let out = run_cmd(ctx, &cmd).await?;
    if out.rc != 0 {
        return Err(exit.fail(
            "failed to list package(s) to remove",
            Some(&cmd),
            &out,
            false,
        ));
    }
    let removed: Vec<String> = out.stdout.split_whitespace().map(str::to_string).collect();
    exit.set("packages", removed.clone());
    exit.set(
        "diff",
        json!({"before": removed.join("\n") + "\n", "after": ""}),
    );
    if ctx.check_mode {
        exit.info(
            &format!("Would have removed {} packages", removed.len()),
            "",
            "",
        );
        return exit.success();
    }
    let mut cmd = base;
    if a.remove_nosave {
        cmd.push("--nosave".into());
    }
    cmd.extend(names.iter().cloned());
    let out = run_cmd(ctx, &cmd).await?;
    if out.rc != 0 {
        return Err(exit.fail("failed to remove package(s)", Some(&cmd), &out, false));
    }
    exit.info(
        &format!("Removed {} package(s)", removed.len()),
        &out.stdout,
        &out.stderr,
    );
    exit.success()
}

async fn upgrade(
    ctx: &ModuleCtx<'_>,
    pm: &str,
    extra: &[String],
    inv: &Inventory,
    mut exit: Exit,
) -> ModResult {
    if inv.upgradable.is_empty() {
        exit.info("Nothing to upgrade", "", "");
        return exit.success();
    }
    exit.changed = true;
    let (mut before, mut after) = (String::new(), String::new());
    for (name, cur, new) in &inv.upgradable {
        before.push_str(&format!("{name}-{cur}\n"));
        after.push_str(&format!("{name}-{new}\n"));
    }
    exit.set("diff", json!({"before": before, "after": after}));
    exit.set(
        "packages",
        inv.upgradable
            .iter()
            .map(|(n, _, _)| n.clone())
            .collect::<Vec<_>>(),
    );
    if ctx.check_mode {
        exit.info(
            &format!("{} packages would have been upgraded", inv.upgradable.len()),
            "",
            "",
        );
        return exit.success();
    }
    let mut cmd: Vec<String> = [pm, "--sync", "--sysupgrade", "--quiet", "--noconfirm"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd.extend(extra.iter().cloned());
    let out = run_cmd(ctx, &cmd).await?;
    if out.rc != 0 {
        return Err(exit.fail("Could not upgrade", Some(&cmd), &out, false));
    }
    exit.info("System upgraded", &out.stdout, &out.stderr);
    exit.success()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        Inventory {
            installed: parse_versions("a 1.0-1\nb 2.0-1\n"),
            available: parse_sync_list("core a 1.1-1\ncore b 2.0-1\ncore c 3.0-1\n"),
            upgradable: parse_upgrades("a 1.0-1 -> 1.1-1\nz 1-1 -> 2-1 [ignored]\n").unwrap(),
            reasons: [("a", "explicit"), ("b", "dependency")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Inventory::default()
        }
    }

    fn pkg(n: &str) -> Pkg {
        Pkg {
            name: n.into(),
            source: n.into(),
            from_file: false,
        }
    }

    #[test]
    fn listings_parse() {
        let i = inv();
        assert_eq!(i.installed["b"], "2.0-1");
        assert_eq!(i.available["c"], "3.0-1");
        assert_eq!(
            i.upgradable,
            vec![("a".into(), "1.0-1".into(), "1.1-1".into())]
        );
        assert!(parse_upgrades("a 1 2\n").is_err());
        let g = parse_groups("grp a\ngrp b\n\nother c\n");
        assert_eq!(g["grp"].len(), 2);
    }

    #[test]
    fn install_plan_follows_the_collection() {
        let i = inv();
        let all = [pkg("a"), pkg("b"), pkg("c")];
        let (sync, files, reason) = plan_install(&all, &i, false, None, "new");
        assert_eq!(sync, vec![pkg("c")]);
        assert!(files.is_empty() && reason.is_empty());
        let (sync, _, _) = plan_install(&all, &i, true, None, "new");
        assert_eq!(sync, vec![pkg("a"), pkg("c")]);
        // reason_for new: only packages without a reason; all: those whose reason differs.
        let (_, _, reason) = plan_install(&all, &i, false, Some("dependency"), "new");
        assert_eq!(reason, vec!["c".to_string()]);
        let (_, _, reason) = plan_install(&all, &i, false, Some("dependency"), "all");
        assert_eq!(reason, vec!["a".to_string(), "c".to_string()]);
    }

    #[test]
    fn install_diff_names_versions_and_reasons() {
        let i = inv();
        let (names, before, after) = install_diff(
            "loading packages...\na 1.1-1\nc 3.0-1\n",
            &i,
            &["c".to_string()],
            Some("dependency"),
        );
        assert_eq!(names, vec!["a", "c"]);
        assert_eq!(before, vec!["a-1.0-1-explicit"]);
        assert_eq!(after, vec!["a-1.1-1-explicit", "c-3.0-1-dependency"]);
        assert_eq!(
            joined(after, true),
            "a-1.1-1-explicit\nc-3.0-1-dependency\n"
        );
        assert_eq!(joined(vec![], true), "");
    }

    #[test]
    fn read_script_runs_the_collections_listings() {
        let a: PacmanArgs = serde_json::from_value(json!({"name": ["x"], "force": true})).unwrap();
        let s = read_script(&a, Some(&["--debug".to_string()]), true);
        assert!(
            s.contains("_run refresh \"$pm\" --sync --refresh --debug --refresh\n"),
            "{s}"
        );
        assert!(!s.contains("_run pre"));
        assert!(s.contains("_run qu \"$pm\" --query --upgrades\n"));
        let a: PacmanArgs = serde_json::from_value(json!({"update_cache": true})).unwrap();
        let s = read_script(&a, Some(&[]), false);
        assert!(s.contains("_run pre \"$pm\" --sync --list\n"));
        assert!(!s.contains("_run q "));
    }
}
