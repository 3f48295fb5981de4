//! `dnf` (and `yum`, which ansible-core >= 2.17 redirects to `ansible.builtin.dnf`): RPM
//! packages through the target's `dnf` command (dnf 4), with ansible.builtin.dnf's arguments,
//! decisions and result keys (`msg`, `results`, `rc`, `failures`), without python3-dnf.
//!
//! Round trip 1 (one `sh` script): `dnf makecache` (`--refresh` for `update_cache`), then per
//! name `dnf repoquery` for the installed packages the spec matches, the available ones, and
//! the installed packages of the same names (for a versioned spec). The controller decides as
//! Ansible's `_mark_package_install` / `base.remove` do: `present` skips an installed spec and
//! (without `allow_downgrade`) a versioned spec older than what is installed; `latest`
//! upgrades what is installed and installs the rest; `absent` removes what is installed.
//! Round trip 2 runs `dnf install|upgrade|downgrade|remove|autoremove` — with `--assumeno` in
//! check mode — and reads the transaction table dnf prints (the same in both modes) for
//! `results` (`Installed: NEVRA`, `Removed: NEVRA`, as Ansible's install/remove sets).

use std::cmp::Ordering;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::files::remote;
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, Param, alias,
    arg_bool, arg_str, choice, outcome, p,
};

const DNF_PARAMS: &[Param] = &[
    alias(p("name", List), &["pkg"]),
    choice(
        "state",
        &["absent", "installed", "latest", "present", "removed"],
    ),
    p("enablerepo", List),
    p("disablerepo", List),
    p("disable_gpg_check", Bool),
    alias(p("update_cache", Bool), &["expire-cache"]),
    p("autoremove", Bool),
    p("allow_downgrade", Bool),
    p("installroot", Str),
    p("exclude", List),
    p("conf_file", Str),
    p("download_only", Bool),
    p("download_dir", Str),
    p("releasever", Str),
    p("allowerasing", Bool),
    p("best", Bool),
    p("nobest", Bool),
    p("bugfix", Bool),
    p("security", Bool),
    p("cacheonly", Bool),
    p("disable_excludes", Str),
    p("disable_plugin", List),
    p("enable_plugin", List),
    p("install_weak_deps", Bool),
    p("skip_broken", Bool),
    p("update_only", Bool),
    p("validate_certs", Bool),
    p("sslverify", Bool),
    p("lock_timeout", Int),
    p("install_repoquery", Bool),
    choice(
        "use_backend",
        &["auto", "dnf", "yum", "yum4", "dnf4", "dnf5"],
    ),
];

static DNF_DEF: ModuleDef = ModuleDef {
    name: "dnf",
    namespaces: BUILTIN,
    params: DNF_PARAMS,
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["best", "nobest"]],
    required_one_of: &[&["name", "update_cache", "autoremove"]],
};

static YUM_DEF: ModuleDef = ModuleDef {
    name: "yum",
    ..DNF_DEF
};

/// Ansible arguments of ansible.builtin.dnf that mixop refuses at load time.
pub const NOT_IMPLEMENTED: &[&str] = &["list"];

pub struct Dnf;
pub struct Yum;

/// An installed or available package, as `repoquery` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkg {
    pub name: String,
    pub epoch: u64,
    pub version: String,
    pub release: String,
    pub arch: String,
}

impl Pkg {
    fn parse(line: &str) -> Option<Pkg> {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, epoch, version, release, arch] = f[..] else {
            return None;
        };
        Some(Pkg {
            name: name.into(),
            epoch: epoch.parse().unwrap_or(0),
            version: version.into(),
            release: release.into(),
            arch: arch.into(),
        })
    }
    /// dnf's `str(package)`: `name-[epoch:]version-release.arch`.
    pub fn nevra(&self) -> String {
        let e = if self.epoch == 0 {
            String::new()
        } else {
            format!("{}:", self.epoch)
        };
        format!(
            "{}-{e}{}-{}.{}",
            self.name, self.version, self.release, self.arch
        )
    }
    fn evr_cmp(&self, o: &Pkg) -> Ordering {
        self.epoch
            .cmp(&o.epoch)
            .then_with(|| rpmvercmp(&self.version, &o.version))
            .then_with(|| rpmvercmp(&self.release, &o.release))
    }
}

/// rpm's `rpmvercmp`: alternating digit and letter segments, `~` sorts before everything
/// (even the end), `^` after the end but before anything else.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while let Some(&c) = a.first().filter(|c| sep(**c)) {
            let _ = c;
            a = &a[1..];
        }
        while let Some(&c) = b.first().filter(|c| sep(**c)) {
            let _ = c;
            b = &b[1..];
        }
        // Tilde: older than anything, including the end.
        match (a.first() == Some(&b'~'), b.first() == Some(&b'~')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // Caret: newer than the end, older than any other segment.
        match (a.first() == Some(&b'^'), b.first() == Some(&b'^')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => {
                return if b.is_empty() {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (false, true) => {
                return if a.is_empty() {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            _ => {}
        }
        if a.is_empty() || b.is_empty() {
            break;
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (take(a), take(b));
        let (sa, sb) = (&a[..na], &b[..nb]);
        if nb == 0 {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            let ta = trim_zeros(sa);
            let tb = trim_zeros(sb);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    &s[n..]
}

/// What the probe found for one name.
#[derive(Debug, Default, Clone)]
pub struct Found {
    /// Installed packages the spec matches.
    pub installed: Vec<Pkg>,
    /// Packages in the enabled repositories the spec matches.
    pub available: Vec<Pkg>,
    /// Installed packages with the names of `available` (only asked for a versioned spec).
    pub same_name: Vec<Pkg>,
}

/// A local package file (Ansible's `filenames`).
pub fn is_file(spec: &str) -> bool {
    spec.ends_with(".rpm") && !spec.contains("://")
}

/// Ansible's `_install_remote_rpms`: a file is installed unless its package (same name and
/// arch) is installed at the same version, or newer without `allow_downgrade`.
fn file_wanted(f: &Found, allow_downgrade: bool) -> bool {
    let Some(pkg) = f.available.first() else {
        return true;
    };
    let same = f
        .same_name
        .iter()
        .filter(|i| i.name == pkg.name && i.arch == pkg.arch);
    !same.clone().any(|i| i.evr_cmp(pkg) == Ordering::Equal)
        && (allow_downgrade || !same.clone().any(|i| i.evr_cmp(pkg) == Ordering::Greater))
}

pub fn is_glob(spec: &str) -> bool {
    spec.contains(['*', '?', '['])
}

/// Ansible's `_is_newer_version_installed` for a spec that is not only a name: an installed
/// package of that name is newer than what the spec selects.
fn newer_installed(spec: &str, f: &Found) -> bool {
    let Some(best) = f.available.iter().max_by(|a, b| a.evr_cmp(b)) else {
        return false;
    };
    let just_name = f
        .available
        .iter()
        .any(|p| spec == p.name || spec == format!("{}.{}", p.name, p.arch));
    if just_name {
        return false;
    }
    f.same_name
        .iter()
        .filter(|i| i.name == best.name)
        .any(|i| i.evr_cmp(best) == Ordering::Greater)
}

/// The dnf commands one task runs, each with the specs it gets.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub install: Vec<String>,
    pub upgrade: Vec<String>,
    pub downgrade: Vec<String>,
    pub remove: Vec<String>,
    pub upgrade_all: bool,
    pub autoremove: bool,
    /// Messages for `results` (as Ansible's for names that match nothing to remove).
    pub notes: Vec<String>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.install.is_empty()
            && self.upgrade.is_empty()
            && self.downgrade.is_empty()
            && self.remove.is_empty()
            && !self.upgrade_all
            && !self.autoremove
    }
}

/// Ansible's decisions (`ensure`, `_mark_package_install`) over what the probe found.
pub fn plan(
    state: &str,
    specs: &[String],
    found: &[Found],
    allow_downgrade: bool,
    update_only: bool,
    autoremove: bool,
) -> Plan {
    let mut p = Plan::default();
    if state == "latest" && specs == ["*"] {
        p.upgrade_all = true;
        return p;
    }
    for (spec, f) in specs.iter().zip(found) {
        if is_file(spec) && state != "absent" {
            if file_wanted(f, allow_downgrade) {
                p.install.push(spec.clone());
            }
            continue;
        }
        match state {
            "absent" => {
                if f.installed.is_empty() {
                    p.notes.push(format!("No match for argument: {spec}"));
                } else {
                    p.remove.push(spec.clone());
                }
            }
            "latest" => {
                if is_glob(spec) {
                    if !f.installed.is_empty() {
                        p.upgrade.push(spec.clone());
                    }
                    if !update_only {
                        p.install.push(spec.clone());
                    }
                } else if newer_installed(spec, f) {
                    if allow_downgrade {
                        p.downgrade.push(spec.clone());
                    }
                } else if !f.installed.is_empty() {
                    p.upgrade.push(spec.clone());
                } else if update_only {
                    p.notes.push(format!(
                        "Packages providing {spec} not installed due to update_only specified"
                    ));
                } else {
                    p.install.push(spec.clone());
                }
            }
            _ => {
                if update_only {
                    if f.installed.is_empty() {
                        p.notes.push(format!(
                            "Packages providing {spec} not installed due to update_only specified"
                        ));
                    } else {
                        p.upgrade.push(spec.clone());
                    }
                } else if is_glob(spec) {
                    p.install.push(spec.clone());
                } else if newer_installed(spec, f) {
                    if allow_downgrade {
                        p.downgrade.push(spec.clone());
                    }
                } else if f.installed.is_empty() {
                    p.install.push(spec.clone());
                }
            }
        }
    }
    p.autoremove = state == "absent" && autoremove;
    p
}

/// One row of dnf's transaction table.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    /// `true`: goes into the system (Ansible's install set); `false`: leaves it.
    pub forward: bool,
    /// Upgrading/Downgrading/Reinstalling: the installed package of this name.arch leaves.
    pub replaces_installed: bool,
    pub name: String,
    pub arch: String,
    /// `[epoch:]version-release`, as dnf prints it.
    pub evr: String,
}

impl Row {
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

/// The transaction table dnf 4 prints before it asks (or runs with `-y`), as rows; a long
/// name that wrapped onto a line of its own is joined with the next line.
pub fn parse_table(out: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut section: Option<(bool, bool)> = None;
    let mut pending: Option<String> = None;
    for line in out.lines() {
        if line.starts_with("Transaction Summary") || line.starts_with("=====") {
            if line.starts_with("Transaction Summary") {
                section = None;
            }
            continue;
        }
        if !line.starts_with(' ') {
            let head = line.trim_end();
            section = match head {
                "Installing:"
                | "Installing dependencies:"
                | "Installing weak dependencies:"
                | "Installing group/module packages:"
                | "Installing group packages:"
                | "Installing module packages:" => Some((true, false)),
                "Upgrading:" | "Downgrading:" | "Reinstalling:" => Some((true, true)),
                "Removing:"
                | "Removing dependent packages:"
                | "Removing unused dependencies:"
                | "Removing unused dependencies (autoremove):" => Some((false, false)),
                _ => None,
            };
            pending = None;
            continue;
        }
        let Some((forward, replaces)) = section else {
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"replacing") {
            // ` replacing  name.arch evr`: an obsoleted package leaves.
            if let [_, na, evr, ..] = words[..]
                && let Some((name, arch)) = na.rsplit_once('.')
            {
                rows.push(Row {
                    forward: false,
                    replaces_installed: false,
                    name: name.into(),
                    arch: arch.into(),
                    evr: evr.into(),
                });
            }
            continue;
        }
        let words: Vec<String> = match pending.take() {
            Some(name) => std::iter::once(name)
                .chain(words.iter().map(|w| w.to_string()))
                .collect(),
            None => words.iter().map(|w| w.to_string()).collect(),
        };
        match &words[..] {
            [name] => pending = Some(name.clone()),
            [name, arch, evr, _repo, ..] => rows.push(Row {
                forward,
                replaces_installed: replaces,
                name: name.clone(),
                arch: arch.clone(),
                evr: evr.clone(),
            }),
            _ => {}
        }
    }
    rows
}

/// Arguments that shape every dnf command line.
#[derive(Debug, Default, Clone)]
pub struct Opts {
    pub installroot: Option<String>,
    pub releasever: Option<String>,
    pub conf_file: Option<String>,
    pub disablerepo: Vec<String>,
    pub enablerepo: Vec<String>,
    pub exclude: Vec<String>,
    pub disable_gpg_check: bool,
    pub sslverify: bool,
    pub disable_excludes: Option<String>,
    pub cacheonly: bool,
    pub disable_plugin: Vec<String>,
    pub enable_plugin: Vec<String>,
    pub install_weak_deps: bool,
    pub best: Option<bool>,
    pub skip_broken: bool,
    pub allowerasing: bool,
    pub autoremove: bool,
    pub download_only: bool,
    pub download_dir: Option<String>,
    pub bugfix: bool,
    pub security: bool,
}

impl Opts {
    /// Options every dnf call gets (probe and change alike).
    pub fn common(&self) -> String {
        let mut w: Vec<String> = Vec::new();
        if let Some(r) = self.installroot.as_deref().filter(|r| *r != "/") {
            w.push(format!("--installroot={}", quote(r)));
        }
        if let Some(r) = &self.releasever {
            w.push(format!("--releasever={}", quote(r)));
        }
        if let Some(c) = &self.conf_file {
            w.push(format!("--config={}", quote(c)));
        }
        // Ansible disables first, then enables (so `disablerepo: '*'` + `enablerepo: x` works).
        for r in &self.disablerepo {
            w.push(format!("--disablerepo={}", quote(r)));
        }
        for r in &self.enablerepo {
            w.push(format!("--enablerepo={}", quote(r)));
        }
        for x in &self.exclude {
            w.push(format!("--exclude={}", quote(x)));
        }
        if let Some(d) = &self.disable_excludes {
            w.push(format!("--disableexcludes={}", quote(d)));
        }
        if self.disable_gpg_check {
            w.push("--nogpgcheck".into());
        }
        if !self.sslverify {
            w.push("--setopt=sslverify=False".into());
        }
        if self.cacheonly {
            w.push("--cacheonly".into());
        }
        for x in &self.disable_plugin {
            w.push(format!("--disableplugin={}", quote(x)));
        }
        for x in &self.enable_plugin {
            w.push(format!("--enableplugin={}", quote(x)));
        }
        w.join(" ")
    }

    /// One change command: `op` with its specs, `-y` or (check mode) `--assumeno`.
    pub fn command(&self, op: &str, specs: &[String], check: bool) -> String {
        let mut w = vec![
            "dnf".to_string(),
            if check { "--assumeno" } else { "-y" }.to_string(),
        ];
        let common = self.common();
        if !common.is_empty() {
            w.push(common);
        }
        if !self.install_weak_deps {
            w.push("--setopt=install_weak_deps=False".into());
        }
        if let Some(b) = self.best {
            w.push(format!(
                "--setopt=best={}",
                if b { "True" } else { "False" }
            ));
        }
        if self.skip_broken {
            w.push("--setopt=strict=False".into());
        }
        // Ansible's dnf sets clean_requirements_on_remove from `autoremove` (dnf's default
        // is true).
        w.push(format!(
            "--setopt=clean_requirements_on_remove={}",
            if self.autoremove { "True" } else { "False" }
        ));
        if op != "remove" && op != "autoremove" {
            if self.allowerasing {
                w.push("--allowerasing".into());
            }
            if self.download_only {
                w.push("--downloadonly".into());
                if let Some(d) = &self.download_dir {
                    w.push(format!("--downloaddir={}", quote(d)));
                }
            }
        }
        if op == "upgrade" {
            if self.bugfix {
                w.push("--bugfix".into());
            }
            if self.security {
                w.push("--security".into());
            }
        }
        w.push(op.to_string());
        if !specs.is_empty() {
            w.push("--".into());
            w.extend(specs.iter().map(|s| quote(s)));
        }
        w.join(" ")
    }
}

const QF: &str = "%{name}\\t%{epoch}\\t%{version}\\t%{release}\\t%{arch}";

/// The probe: dnf present, configuration readable, metadata loaded, then per spec the
/// installed, available and same-name installed packages.
pub fn probe_script(o: &Opts, specs: &[String], refresh: bool) -> String {
    let mut body = format!(
        r#"export LC_ALL=C LANG=C LANGUAGE=C
command -v dnf >/dev/null 2>&1 || {{ _err 'Failed to find required executable "dnf" in PATH (mixop'"'"'s dnf module runs the dnf 4 command on the target)'; exit 0; }}
if [ -n "$conf" ] && [ ! -r "$conf" ]; then printf 'noconf=1\n'; exit 0; fi
o=$(dnf {common} {refresh} makecache 2>&1) || {{ _err "Failed to synchronize repodata: $(printf '%s' "$o" | grep -v '^Unable to detect release version' | tail -n 3)"; exit 0; }}
printf 'cache=ok\n'
T=$(printf '\t')
Q() {{ dnf -q {common} repoquery --qf '{QF}' "$@" 2>/dev/null; }}
"#,
        common = o.common(),
        refresh = if refresh { "--refresh" } else { "" },
    );
    for (i, s) in specs.iter().enumerate() {
        if is_file(s) {
            // A local .rpm: what it holds, and the installed packages of its name.arch.
            body.push_str(&format!(
                r#"if f=$(rpm -qp --qf '{QF}\n' -- {q} 2>&1); then
  printf '%s\n' "$f" | sed "s/^/file={i}$T/"
  Q --installed -- $(printf '%s' "$f" | awk -F"$T" '{{print $1 "." $5}}') | sed "s/^/same={i}$T/"
else _err "Error occurred attempting remote rpm operation: $f"; exit 0; fi
"#,
                q = quote(s)
            ));
            continue;
        }
        let s = quote(s);
        body.push_str(&format!(
            r#"Q --installed -- {s} | sed "s/^/inst={i}$T/"
a=$(Q --available -- {s})
[ -z "$a" ] || printf '%s\n' "$a" | sed "s/^/avail={i}$T/"
n=$(printf '%s\n' "$a" | cut -f1 | sort -u | tr '\n' ' ')
case " $n" in *" "{s}" "*|" ") ;; *) Q --installed -- $n | sed "s/^/same={i}$T/" ;; esac
"#
        ));
    }
    remote::script(
        &[(
            "conf",
            o.conf_file.as_deref().map(quote).unwrap_or_default(),
        )],
        &body,
    )
}

fn parse_found(reply: &remote::Reply, n: usize) -> Vec<Found> {
    let mut found = vec![Found::default(); n];
    for (key, val) in &reply.pairs {
        let Some((i, rest)) = val.split_once('\t') else {
            continue;
        };
        let (Ok(i), Some(pkg)) = (i.parse::<usize>(), Pkg::parse(rest)) else {
            continue;
        };
        let Some(f) = found.get_mut(i) else { continue };
        match key.as_str() {
            "inst" => f.installed.push(pkg),
            "avail" => f.available.push(pkg),
            "same" => f.same_name.push(pkg),
            "file" => f.available.push(pkg),
            _ => {}
        }
    }
    found
}

/// A failure as Ansible's `fail_json`: `results: []`, `rc: 1` when dnf ran, and `extra`.
fn fail(msg: impl Into<String>, extra: Value) -> ModError {
    let mut result = Outcome::new();
    result.insert("results".into(), json!([]));
    if let Value::Object(m) = extra {
        result.extend(m);
    }
    ModError::Failed {
        msg: msg.into(),
        result,
    }
}

fn list_arg(args: &Args, name: &str) -> Vec<String> {
    args.get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// What one dnf change command did (or, with `--assumeno`, would do).
struct Ran {
    rows: Vec<Row>,
    out: String,
}

async fn run_dnf(ctx: &ModuleCtx<'_>, cmd: &str, check: bool) -> Result<Ran, ModError> {
    let out = ctx
        .exec(format!("LC_ALL=C LANG=C LANGUAGE=C {cmd} 2>&1"), None)
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = parse_table(&text);
    // `--assumeno` answers "no": rc 1 and "Operation aborted." after a table is the expected
    // end of a check-mode run.
    let aborted_as_asked = check && text.contains("Operation aborted.") && !text.contains("Error:");
    if out.rc != 0 && !aborted_as_asked {
        let missing: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("No match for argument: "))
            .map(|s| format!("No package {} available.", s.trim()))
            .collect();
        if !missing.is_empty() {
            return Err(fail(
                "Failed to install some of the specified packages",
                json!({ "failures": missing, "rc": 1 }),
            ));
        }
        let err: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Error:"))
            .collect();
        let detail = if err.is_empty() {
            text.trim().to_string()
        } else {
            err.join("\n")
        };
        let msg = if detail.contains("Problem") || detail.contains("conflict") {
            format!("Depsolve Error occurred: {detail}")
        } else {
            format!("Unknown Error occurred: {detail}")
        };
        return Err(fail(
            msg,
            json!({ "failures": [detail], "stdout": text, "rc": 1 }),
        ));
    }
    Ok(Ran { rows, out: text })
}

#[async_trait]
impl Module for Dnf {
    fn def(&self) -> &'static ModuleDef {
        &DNF_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        run(ctx, args).await
    }
}

#[async_trait]
impl Module for Yum {
    fn def(&self) -> &'static ModuleDef {
        &YUM_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        run(ctx, args).await
    }
}

async fn run(ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
    let names = list_arg(&args, "name");
    for n in &names {
        if n.contains(' ') && !n.contains(['@', '>', '<', '=']) {
            return Err(fail(
                "It appears that a space separated string of packages was passed in as an argument. To operate on several packages, pass a comma separated string of packages or a list of packages.",
                json!({}),
            ));
        }
        if n.contains("://") {
            return Err(ModError::msg(format!(
                "dnf: installing from a URL ({n}) is not implemented by mixop; download it with get_url first"
            )));
        }
        if n.starts_with('@') || (n.contains('/') && !n.starts_with('/') && !is_file(n)) {
            return Err(ModError::msg(format!(
                "dnf: groups, environments and modules ({n}) are not implemented by mixop"
            )));
        }
    }
    if arg_str(&args, "use_backend") == Some("dnf5") {
        return Err(ModError::msg(
            "dnf: use_backend dnf5 is not implemented by mixop (it drives the dnf 4 command)",
        ));
    }
    let autoremove = arg_bool(&args, "autoremove", false);
    let mut state = match arg_str(&args, "state") {
        Some("installed") | None => "present",
        Some("removed") => "absent",
        Some(s) => s,
    }
    .to_string();
    if arg_str(&args, "state").is_none() && autoremove {
        state = "absent".into();
    }
    // As Ansible's YumDnf, which compares the state as written: `removed` is refused too.
    if autoremove && arg_str(&args, "state").is_some_and(|s| s != "absent") {
        return Err(fail(
            "Autoremove should be used alone or with state=absent",
            json!({}),
        ));
    }
    let o = Opts {
        installroot: arg_str(&args, "installroot").map(str::to_string),
        releasever: arg_str(&args, "releasever").map(str::to_string),
        conf_file: arg_str(&args, "conf_file").map(str::to_string),
        disablerepo: list_arg(&args, "disablerepo"),
        enablerepo: list_arg(&args, "enablerepo"),
        exclude: list_arg(&args, "exclude"),
        disable_gpg_check: arg_bool(&args, "disable_gpg_check", false),
        sslverify: arg_bool(&args, "validate_certs", true) && arg_bool(&args, "sslverify", true),
        disable_excludes: arg_str(&args, "disable_excludes").map(str::to_string),
        cacheonly: arg_bool(&args, "cacheonly", false),
        disable_plugin: list_arg(&args, "disable_plugin"),
        enable_plugin: list_arg(&args, "enable_plugin"),
        install_weak_deps: arg_bool(&args, "install_weak_deps", true),
        best: if args.get("nobest").is_some_and(|v| !v.is_null()) {
            Some(!arg_bool(&args, "nobest", false))
        } else {
            args.get("best").and_then(crate::value::as_bool)
        },
        skip_broken: arg_bool(&args, "skip_broken", false),
        allowerasing: arg_bool(&args, "allowerasing", false),
        autoremove,
        download_only: arg_bool(&args, "download_only", false),
        download_dir: arg_str(&args, "download_dir").map(str::to_string),
        bugfix: arg_bool(&args, "bugfix", false),
        security: arg_bool(&args, "security", false),
    };
    if state == "absent" && names.iter().any(|n| is_file(n)) {
        return Err(fail(
            "Cannot remove paths -- please specify package name.",
            json!({}),
        ));
    }
    let update_cache = arg_bool(&args, "update_cache", false);
    let specs: Vec<String> = if state == "latest" && names == ["*"] {
        vec![]
    } else {
        names.clone()
    };
    let reply = remote::run(ctx, probe_script(&o, &specs, update_cache)).await?;
    if reply.flag("noconf") {
        return Err(fail(
            "cannot read configuration file",
            json!({ "conf_file": o.conf_file }),
        ));
    }
    if reply.get("cache") != Some("ok") {
        return Err(ModError::msg("dnf: the probe script did not finish"));
    }
    if update_cache && names.is_empty() && !autoremove {
        let mut r = outcome(false);
        r.insert("msg".into(), "Cache updated".into());
        r.insert("results".into(), json!([]));
        r.insert("rc".into(), 0.into());
        return Ok(r);
    }
    let found = parse_found(&reply, specs.len());
    let p = plan(
        &state,
        &names,
        &found,
        arg_bool(&args, "allow_downgrade", false),
        arg_bool(&args, "update_only", false),
        autoremove,
    );
    // Ansible lists every file it was given as installed, even when nothing changes.
    let mut results: Vec<String> = names
        .iter()
        .filter(|n| is_file(n))
        .map(|n| format!("Installed {n}"))
        .collect();
    results.extend(p.notes.clone());
    let check = ctx.check_mode;
    let mut rows: Vec<Row> = Vec::new();
    let mut outs: Vec<String> = Vec::new();
    let mut cmds: Vec<(&str, Vec<String>)> = Vec::new();
    if p.upgrade_all {
        cmds.push(("upgrade", vec![]));
    }
    for (op, list) in [
        ("install", &p.install),
        ("upgrade", &p.upgrade),
        ("downgrade", &p.downgrade),
        ("remove", &p.remove),
    ] {
        if !list.is_empty() {
            cmds.push((op, list.clone()));
        }
    }
    if p.autoremove {
        cmds.push(("autoremove", vec![]));
    }
    for (op, list) in &cmds {
        let ran = run_dnf(ctx, &o.command(op, list, check), check).await?;
        rows.extend(ran.rows);
        outs.push(ran.out);
    }
    let installed_all: Vec<&Pkg> = found
        .iter()
        .flat_map(|f| f.installed.iter().chain(&f.same_name))
        .collect();
    let action = if o.download_only {
        "Downloaded"
    } else {
        "Installed"
    };
    let mut ins: Vec<String> = Vec::new();
    let mut rem: Vec<String> = Vec::new();
    for r in &rows {
        if r.forward {
            ins.push(format!("{action}: {}", r.nevra()));
            if r.replaces_installed {
                for old in installed_all
                    .iter()
                    .filter(|i| i.name == r.name && i.arch == r.arch)
                {
                    let old = format!("Removed: {}", old.nevra());
                    if !rem.contains(&old) {
                        rem.push(old);
                    }
                }
            }
        } else {
            rem.push(format!("Removed: {}", r.nevra()));
        }
    }
    ins.sort();
    ins.dedup();
    rem.sort();
    rem.dedup();
    let changed = !rows.is_empty();
    results.extend(ins);
    results.extend(rem);
    let msg = if !changed {
        "Nothing to do"
    } else if check {
        "Check mode: No changes made, but would have if not in check mode"
    } else {
        ""
    };
    let _ = p.is_empty();
    let mut r = outcome(changed);
    r.insert("msg".into(), msg.into());
    r.insert("results".into(), json!(results));
    r.insert("rc".into(), 0.into());
    if ctx.diff && changed {
        r.insert("diff".into(), json!({ "prepared": outs.join("") }));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, ver: &str) -> Pkg {
        Pkg {
            name: name.into(),
            epoch: 0,
            version: ver.into(),
            release: "1".into(),
            arch: "noarch".into(),
        }
    }

    #[test]
    fn rpm_version_order() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0", "1.0", Greater),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0", "1.0a", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("1.a", "1.1", Less),
            ("001", "1", Equal),
            ("1.0.0", "1.0", Greater),
            ("5.14.0-1", "5.14.0-1", Equal),
        ] {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn nevra_shows_a_nonzero_epoch() {
        let mut p = pkg("k", "1.0");
        assert_eq!(p.nevra(), "k-1.0-1.noarch");
        p.epoch = 2;
        assert_eq!(p.nevra(), "k-2:1.0-1.noarch");
    }

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn plans_follow_ansible() {
        let installed = Found {
            installed: vec![pkg("a", "1.0")],
            available: vec![pkg("a", "1.0"), pkg("a", "2.0")],
            same_name: vec![],
        };
        let absent = Found {
            installed: vec![],
            available: vec![pkg("b", "1.0")],
            same_name: vec![],
        };
        let nothing = Found::default();
        let s = specs(&["a", "b", "zz"]);
        let f = vec![installed.clone(), absent.clone(), nothing.clone()];
        let p = plan("present", &s, &f, false, false, false);
        assert_eq!(p.install, specs(&["b", "zz"]));
        assert!(p.upgrade.is_empty());
        let p = plan("latest", &s, &f, false, false, false);
        assert_eq!(p.install, specs(&["b", "zz"]));
        assert_eq!(p.upgrade, specs(&["a"]));
        let p = plan("latest", &s, &f, false, true, false);
        assert!(p.install.is_empty());
        assert_eq!(p.notes.len(), 2);
        let p = plan("absent", &s, &f, false, false, true);
        assert_eq!(p.remove, specs(&["a"]));
        assert_eq!(
            p.notes,
            specs(&["No match for argument: b", "No match for argument: zz"])
        );
        assert!(p.autoremove);
        assert!(plan("latest", &specs(&["*"]), &[], false, false, false).upgrade_all);
    }

    #[test]
    fn a_package_file_installs_unless_its_version_or_a_newer_one_is_there() {
        let file = |installed: &[&str]| Found {
            installed: vec![],
            available: vec![pkg("l", "3.0")],
            same_name: installed.iter().map(|v| pkg("l", v)).collect(),
        };
        let s = specs(&["/tmp/l-3.0-1.noarch.rpm"]);
        for (inst, down, want) in [
            (&[][..], false, true),
            (&["2.0"][..], false, true),
            (&["3.0"][..], false, false),
            (&["4.0"][..], false, false),
            (&["4.0"][..], true, true),
        ] {
            let p = plan("present", &s, &[file(inst)], down, false, false);
            assert_eq!(p.install == s, want, "{inst:?} {down}");
        }
    }

    #[test]
    fn an_older_versioned_spec_needs_allow_downgrade() {
        let f = Found {
            installed: vec![],
            available: vec![pkg("a", "1.0")],
            same_name: vec![pkg("a", "2.0")],
        };
        let s = specs(&["a-1.0"]);
        let p = plan("present", &s, std::slice::from_ref(&f), false, false, false);
        assert!(p.is_empty(), "{p:?}");
        let p = plan("present", &s, std::slice::from_ref(&f), true, false, false);
        assert_eq!(p.downgrade, s);
        // A newer versioned spec installs (dnf upgrades to it).
        let f2 = Found {
            installed: vec![],
            available: vec![pkg("a", "3.0")],
            same_name: vec![pkg("a", "2.0")],
        };
        let p = plan("present", &specs(&["a-3.0"]), &[f2], false, false, false);
        assert_eq!(p.install, specs(&["a-3.0"]));
    }

    #[test]
    fn transaction_tables_become_rows() {
        let out = "Dependencies resolved.
================================================================================
 Package               Architecture     Version           Repository       Size
================================================================================
Installing:
 mixop-hello           noarch           1.0-1             mixop           5.9 k
 a-very-long-package-name-that-wraps-onto-its-own-line
                       x86_64           2:3.1-4.el9       mixop            10 M
Upgrading:
 mixop-extra           noarch           2.0-1             mixop           5.9 k
     replacing  mixop-old.noarch 0.9-1
Installing dependencies:
 mixop-dep             noarch           1.0-1             mixop           5.9 k
Removing:
 mixop-gone            noarch           1.0-1             @mixop            4  

Transaction Summary
================================================================================
Install  2 Packages
";
        let rows = parse_table(out);
        let got: Vec<(bool, bool, String)> = rows
            .iter()
            .map(|r| (r.forward, r.replaces_installed, r.nevra()))
            .collect();
        assert_eq!(
            got,
            vec![
                (true, false, "mixop-hello-1.0-1.noarch".to_string()),
                (
                    true,
                    false,
                    "a-very-long-package-name-that-wraps-onto-its-own-line-2:3.1-4.el9.x86_64"
                        .to_string()
                ),
                (true, true, "mixop-extra-2.0-1.noarch".to_string()),
                (false, false, "mixop-old-0.9-1.noarch".to_string()),
                (true, false, "mixop-dep-1.0-1.noarch".to_string()),
                (false, false, "mixop-gone-1.0-1.noarch".to_string()),
            ]
        );
        assert!(parse_table("Dependencies resolved.\nNothing to do.\nComplete!\n").is_empty());
    }

    #[test]
    fn command_lines() {
        let o = Opts {
            installroot: Some("/opt/root".into()),
            releasever: Some("9".into()),
            disablerepo: specs(&["*"]),
            enablerepo: specs(&["mixop"]),
            exclude: specs(&["kernel*"]),
            disable_gpg_check: true,
            sslverify: true,
            install_weak_deps: true,
            ..Default::default()
        };
        assert_eq!(
            o.command("install", &specs(&["a", "b-1.0"]), true),
            "dnf --assumeno --installroot=/opt/root --releasever=9 --disablerepo='*' --enablerepo=mixop --exclude='kernel*' --nogpgcheck --setopt=clean_requirements_on_remove=False install -- a b-1.0"
        );
        let o = Opts {
            autoremove: true,
            sslverify: true,
            install_weak_deps: false,
            ..Default::default()
        };
        assert_eq!(
            o.command("remove", &specs(&["a"]), false),
            "dnf -y --setopt=install_weak_deps=False --setopt=clean_requirements_on_remove=True remove -- a"
        );
    }
}
