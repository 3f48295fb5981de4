//! `apt`: Debian packages through `apt-get`/`dpkg`, as ansible.builtin.apt does it (same
//! arguments, decisions, command lines and result keys), without python-apt on the target.
//!
//! Round trip 1 (one `sh` script): refresh the cache when `update_cache`/`cache_valid_time`
//! ask for it (not in check mode), expand name globs (`apt-cache pkgnames`), then report
//! `dpkg-query` status, `apt-cache policy` (installed, candidate, version table) and
//! `apt-mark showauto` for the named packages. The controller decides as Ansible's
//! `package_status`/`install`/`remove` do; round trip 2 runs the one `apt-get` (or `dpkg -i`)
//! command, with `--simulate` in check mode as Ansible does. `upgrade` uses `apt-get`
//! (Ansible prefers `aptitude` when it is installed).

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::files::remote::{self, Reply};
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, alias, arg_bool,
    arg_str, choice, outcome, p,
};

static APT_DEF: ModuleDef = ModuleDef {
    name: "apt",
    namespaces: BUILTIN,
    params: &[
        alias(p("name", List), &["package", "pkg"]),
        choice(
            "state",
            &["absent", "build-dep", "fixed", "latest", "present"],
        ),
        alias(p("update_cache", Bool), &["update-cache"]),
        p("update_cache_retries", Int),
        p("update_cache_retry_max_delay", Int),
        p("cache_valid_time", Int),
        p("purge", Bool),
        p("deb", Str),
        alias(p("default_release", Str), &["default-release"]),
        alias(p("install_recommends", Bool), &["install-recommends"]),
        p("force", Bool),
        choice("upgrade", &["dist", "full", "no", "safe", "yes"]),
        p("dpkg_options", Str),
        p("autoremove", Bool),
        p("autoclean", Bool),
        p("fail_on_autoremove", Bool),
        p("policy_rc_d", Int),
        p("only_upgrade", Bool),
        p("force_apt_get", Bool),
        p("clean", Bool),
        alias(p("allow_unauthenticated", Bool), &["allow-unauthenticated"]),
        alias(
            p("allow_downgrade", Bool),
            &["allow-downgrade", "allow_downgrades", "allow-downgrades"],
        ),
        p("allow_change_held_packages", Bool),
        p("lock_timeout", Int),
        p("auto_install_module_deps", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["deb", "name", "upgrade"]],
    required_one_of: &[&[
        "autoremove",
        "deb",
        "name",
        "update_cache",
        "upgrade",
        "clean",
    ]],
};

pub struct Apt;

const APT_GET: &str = "/usr/bin/apt-get";
const APT_GET_ZERO: &str = "\n0 upgraded, 0 newly installed, 0 to remove";
/// What Ansible's `run_command_environ_update` sets for every apt command.
const APT_ENV: &str = "DEBIAN_FRONTEND=noninteractive DEBIAN_PRIORITY=critical LANG=C LC_ALL=C LC_MESSAGES=C LC_CTYPE=C LANGUAGE=C";

/// A package spec split like Ansible's `package_split` (`name`, `name=1.0*`, `name>=1.0`).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub raw: String,
    pub name: String,
    pub cmp: Option<&'static str>,
    pub version: Option<String>,
}

pub fn package_split(raw: &str) -> Spec {
    match raw.find('=') {
        Some(i) => {
            let (name_end, cmp) = if i > 0 && raw.as_bytes()[i - 1] == b'>' {
                (i - 1, ">=")
            } else {
                (i, "=")
            };
            Spec {
                raw: raw.to_string(),
                name: raw[..name_end].to_string(),
                cmp: Some(cmp),
                version: Some(raw[i + 1..].to_string()),
            }
        }
        None => Spec {
            raw: raw.to_string(),
            name: raw.to_string(),
            cmp: None,
            version: None,
        },
    }
}

fn has_glob(name: &str) -> bool {
    name.contains(['*', '?', '[', ']', '!'])
}

/// One package's `apt-cache policy` entry.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Policy {
    pub installed: Option<String>,
    pub candidate: Option<String>,
    /// The version table, highest first.
    pub versions: Vec<String>,
}

/// Parses `apt-cache policy` output (LC_ALL=C).
pub fn parse_policy(lines: &[&str]) -> HashMap<String, Policy> {
    let mut out: HashMap<String, Policy> = HashMap::new();
    let mut cur: Option<String> = None;
    let none = |v: &str| (v != "(none)").then(|| v.to_string());
    for line in lines {
        if !line.starts_with(' ') {
            if let Some(name) = line.strip_suffix(':') {
                cur = Some(name.to_string());
                out.entry(name.to_string()).or_default();
            }
            continue;
        }
        let Some(p) = cur.as_ref().and_then(|c| out.get_mut(c)) else {
            continue;
        };
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Installed: ") {
            p.installed = none(v);
        } else if let Some(v) = t.strip_prefix("Candidate: ") {
            p.candidate = none(v);
        } else if (line.starts_with(" *** ") || line.starts_with("     "))
            && !line.starts_with("      ")
        {
            // ` *** 1.0 100` or `     2.0 500`; source lines are indented further.
            let t = t.trim_start_matches("*** ");
            if let Some(v) = t.split_whitespace().next() {
                p.versions.push(v.to_string());
            }
        }
    }
    out
}

/// dpkg's view of a package: the status letters (`ii`, `rc`, ...) and version.
#[derive(Debug, Clone, PartialEq)]
pub struct Dpkg {
    pub status: String,
    pub version: String,
}

impl Dpkg {
    /// `CURSTATE_INSTALLED`.
    pub fn installed(&self) -> bool {
        self.status.as_bytes().get(1) == Some(&b'i')
    }
    /// Files left on disk (installed, or removed with its conffiles kept).
    pub fn has_files(&self) -> bool {
        !matches!(self.status.as_bytes().get(1), None | Some(b'n'))
    }
}

/// Debian version ordering (`dpkg --compare-versions`): epoch, upstream, revision.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> std::cmp::Ordering {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            // Non-digit prefix, compared with dpkg's character order.
            while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit())
            {
                let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
                let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
                if ac != bc {
                    return ac.cmp(&bc);
                }
                if i < a.len() && !a[i].is_ascii_digit() {
                    i += 1;
                }
                if j < b.len() && !b[j].is_ascii_digit() {
                    j += 1;
                }
            }
            let num = |s: &[u8], k: &mut usize| {
                let start = *k;
                while *k < s.len() && s[*k].is_ascii_digit() {
                    *k += 1;
                }
                let d = std::str::from_utf8(&s[start..*k])
                    .unwrap_or("0")
                    .trim_start_matches('0');
                d.to_string()
            };
            let (x, y) = (num(a, &mut i), num(b, &mut j));
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(&y));
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// Ansible's `package_status`: (installed, installed version matches, installable version),
/// where `Some(None)` stands for Ansible's `True` (a virtual package: let apt choose).
struct Status {
    installed: bool,
    version_ok: bool,
    installable: Option<Option<String>>,
    has_files: bool,
}

fn version_matches(spec: &Spec, v: &str) -> bool {
    match (spec.cmp, &spec.version) {
        (Some("="), Some(want)) => crate::inventory::fnmatch(want, v),
        (Some(">="), Some(want)) => compare_versions(v, want).is_ge(),
        _ => true,
    }
}

fn package_status(
    spec: &Spec,
    dpkg: Option<&Dpkg>,
    policy: Option<&Policy>,
    install: bool,
) -> Result<Status, ModError> {
    let Some(policy) = policy else {
        if install {
            return Err(ModError::msg(format!(
                "No package matching '{}' is available",
                spec.name
            )));
        }
        let d = dpkg.filter(|d| d.has_files());
        return Ok(Status {
            installed: d.is_some_and(Dpkg::installed),
            version_ok: d.is_some_and(|d| d.installed() && version_matches(spec, &d.version)),
            installable: None,
            has_files: d.is_some(),
        });
    };
    if policy.versions.is_empty() && policy.installed.is_none() {
        // A purely virtual package: apt picks the provider.
        return Ok(Status {
            installed: false,
            version_ok: false,
            installable: Some(None),
            has_files: false,
        });
    }
    // The candidate under Ansible's pins: a `=` spec pins the highest matching version.
    let best = match (spec.cmp, &spec.version) {
        (Some("="), Some(want)) => policy
            .versions
            .iter()
            .find(|v| crate::inventory::fnmatch(want, v))
            .cloned(),
        _ => policy.candidate.clone(),
    };
    let installed_version = dpkg
        .filter(|d| d.installed())
        .map(|d| d.version.clone())
        .or_else(|| policy.installed.clone().filter(|_| dpkg.is_none()));
    let has_files = dpkg.is_some_and(Dpkg::has_files);
    let Some(iv) = installed_version else {
        return Ok(Status {
            installed: false,
            version_ok: false,
            installable: best.map(Some),
            has_files,
        });
    };
    let version_ok = version_matches(spec, &iv);
    let installable = best
        .filter(|b| *b != iv && version_matches(spec, b))
        .map(Some);
    Ok(Status {
        installed: true,
        version_ok,
        installable,
        has_files,
    })
}

/// Everything the task asks, read once from the arguments.
struct Opts {
    state: String,
    purge: bool,
    force: bool,
    autoremove: bool,
    fail_on_autoremove: bool,
    only_upgrade: bool,
    allow_unauthenticated: bool,
    allow_downgrade: bool,
    allow_change_held: bool,
    install_recommends: Option<bool>,
    default_release: Option<String>,
    /// `-o "Dpkg::Options::=--force-confdef" ... -o DPkg::Lock::Timeout=60`.
    dpkg_options: String,
    dpkg_raw: String,
    check: bool,
}

fn expand_dpkg_options(compressed: &str) -> String {
    compressed
        .split(',')
        .map(|o| format!("-o \"Dpkg::Options::=--{o}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

fn flag(on: bool, text: &str) -> &str {
    if on { text } else { "" }
}

/// Ansible's `install()` command: the specs to pass, or `None` when nothing is to be done.
fn install_cmd(o: &Opts, pkgs: &[String]) -> String {
    let build_dep = o.state == "build-dep";
    let check = flag(o.check, "--simulate");
    let force = flag(o.force, "--force-yes");
    let only = flag(o.only_upgrade, "--only-upgrade");
    let fixed = flag(o.state == "fixed", "--fix-broken");
    let no_remove = flag(o.fail_on_autoremove, "--no-remove");
    let packages = pkgs
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = if build_dep {
        format!(
            "{APT_GET} -y {} {only} {fixed} {force} {no_remove} {check} build-dep {packages}",
            o.dpkg_options
        )
    } else {
        format!(
            "{APT_GET} -y {} {only} {fixed} {force} {} {no_remove} {check} install {packages}",
            o.dpkg_options,
            flag(o.autoremove, "--auto-remove")
        )
    };
    if let Some(r) = &o.default_release {
        cmd.push_str(&format!(" -t '{r}'"));
    }
    match o.install_recommends {
        Some(false) => cmd.push_str(" -o APT::Install-Recommends=no"),
        Some(true) => cmd.push_str(" -o APT::Install-Recommends=yes"),
        None => {}
    }
    if o.allow_unauthenticated {
        cmd.push_str(" --allow-unauthenticated");
    }
    if o.allow_downgrade {
        cmd.push_str(" --allow-downgrades");
    }
    if o.allow_change_held {
        cmd.push_str(" --allow-change-held-packages");
    }
    cmd
}

/// Which specs `install()` passes to apt-get, or the failure it reports.
fn plan_install(
    o: &Opts,
    specs: &[Spec],
    dpkg: &HashMap<String, Dpkg>,
    policy: &HashMap<String, Policy>,
) -> Result<Vec<String>, ModError> {
    if o.state == "build-dep" {
        return Ok(specs.iter().map(|s| s.raw.clone()).collect());
    }
    let upgrade = o.state == "latest";
    let mut list = Vec::new();
    for s in specs {
        let st = package_status(s, dpkg.get(&s.name), policy.get(&s.name), true)?;
        if !st.installed && o.only_upgrade {
            continue;
        }
        if !st.version_ok && st.installable.is_none() {
            return Err(ModError::msg(format!(
                "no available installation candidate for {}",
                s.raw
            )));
        }
        match &st.installable {
            Some(inst) if (!st.installed && !o.only_upgrade) || upgrade || !st.version_ok => {
                list.push(match (inst, &s.version) {
                    (Some(v), _) => format!("{}={v}", s.name),
                    (None, Some(v)) => format!("{}={v}", s.name),
                    (None, None) => s.name.clone(),
                });
            }
            // Legacy: an installed version matching a `=` glob with a newer match available.
            Some(_) if st.version_ok && s.cmp == Some("=") => {
                list.push(format!(
                    "{}={}",
                    s.name,
                    s.version.clone().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
    Ok(list)
}

/// Which specs `remove()` passes to apt-get.
fn plan_remove(o: &Opts, specs: &[Spec], dpkg: &HashMap<String, Dpkg>) -> Vec<String> {
    specs
        .iter()
        .filter(|s| {
            let st = package_status(s, dpkg.get(&s.name), None, false)
                .expect("remove never fails on unknown packages");
            st.version_ok || (st.has_files && o.purge)
        })
        .map(|s| s.raw.clone())
        .collect()
}

/// Ansible's `parse_diff`: the part of apt-get's output between the dependency resolution and
/// the summary line.
pub fn parse_diff(out: &str) -> Value {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "Resolving dependencies...")
        .or_else(|| {
            lines
                .iter()
                .position(|l| *l == "Reading state information...")
        })
        .map(|i| i + 1)
        .unwrap_or(0);
    let re = regex::Regex::new("^[0-9]+ (packages )?upgraded").expect("static regex");
    let end = lines
        .iter()
        .position(|l| re.is_match(l))
        .map(|i| i + 1)
        .unwrap_or(lines.len());
    let text = lines
        .get(start..end.max(start))
        .unwrap_or_default()
        .join("\n");
    serde_json::json!({ "prepared": text })
}

/// The read script: cache refresh, glob expansion, then dpkg/policy/auto state of `names`.
fn read_script(
    names: &[String],
    update: bool,
    valid_time: i64,
    check: bool,
    release: Option<&str>,
    deb: Option<&str>,
) -> Result<String, ModError> {
    let mut body = String::from(
        r#"export DEBIAN_FRONTEND=noninteractive DEBIAN_PRIORITY=critical LANG=C LC_MESSAGES=C LC_CTYPE=C LANGUAGE=C
command -v apt-get >/dev/null 2>&1 || { _err 'Failed to find required executable "apt-get" in PATH'; exit 0; }
_mt() { if [ -e /var/lib/apt/periodic/update-success-stamp ]; then stat -c %Y /var/lib/apt/periodic/update-success-stamp; elif [ -e /var/lib/apt/lists ]; then stat -c %Y /var/lib/apt/lists; else echo 0; fi; }
m0=$(_mt); printf 'mtime0=%s\n' "$m0"
if [ "$upd" = 1 ] && [ $((m0 + cvt)) -lt "$(date +%s)" ]; then
  printf 'update=1\n'
  if [ "$check" != 1 ]; then o=$(apt-get update 2>&1) || { _err "Failed to update apt cache: $(printf '%s' "$o" | grep '^[EW]:' | head -n 3)"; exit 0; }; fi
  printf 'mtime1=%s\n' "$(_mt)"
fi
set --
"#,
    );
    for n in names {
        let name = package_split(n).name;
        if has_glob(&name) {
            if !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.:*?[]!".contains(&c))
            {
                return Err(ModError::msg(format!(
                    "invalid package name pattern `{name}`"
                )));
            }
            let prefix: String = name.chars().take_while(|c| !"*?[]!".contains(*c)).collect();
            // Globs select native packages only unless they name an architecture (Ansible).
            let arch_filter = if name.contains(':') { "" } else { "*:*) ;; " };
            body.push_str(&format!(
                "for n in $(apt-cache pkgnames {} 2>/dev/null | sort); do case $n in {arch_filter}{name}) printf 'match=%s\\t%s\\n' {} \"$n\"; set -- \"$@\" \"$n\";; esac; done\n",
                quote(&prefix),
                quote(&name)
            ));
        } else {
            body.push_str(&format!("set -- \"$@\" {}\n", quote(&name)));
        }
    }
    if let Some(deb) = deb {
        body.push_str(&format!(
            r#"d={}
[ -f "$d" ] || {{ _err "Unable to install package: could not open file $d"; exit 0; }}
f=$(dpkg-deb -f "$d" Package Version 2>&1) || {{ _err "dpkg --field $d failed: $f"; exit 0; }}
printf '%s\n' "$f" | sed 's/^/deb_/; s/: /=/'
set -- "$@" "$(dpkg-deb -f "$d" Package)"
"#,
            crate::modules::files::remote::sh_path(deb)
        ));
    }
    body.push_str(&format!(
        r#"if [ $# -gt 0 ]; then
  dpkg-query -W -f='dpkg=${{Package}}\t${{db:Status-Abbrev}}\t${{Version}}\n' "$@" 2>/dev/null
  apt-cache {} policy "$@" 2>/dev/null | sed 's/^/policy=/'
  apt-mark showauto "$@" 2>/dev/null | sed 's/^/auto=/'
fi
"#,
        release
            .map(|r| format!("-o APT::Default-Release={}", quote(r)))
            .unwrap_or_default()
    ));
    Ok(remote::script(
        &[
            ("upd", if update { "1" } else { "0" }.into()),
            ("cvt", valid_time.to_string()),
            ("check", if check { "1" } else { "0" }.into()),
        ],
        &body,
    ))
}

/// What the read script found.
struct Found {
    dpkg: HashMap<String, Dpkg>,
    policy: HashMap<String, Policy>,
    auto: Vec<String>,
    matches: Vec<(String, String)>,
    cache_updated: bool,
    cache_update_time: i64,
}

fn parse_found(reply: &Reply, check: bool) -> Found {
    let mut dpkg = HashMap::new();
    for line in reply.all("dpkg") {
        let mut f = line.split('\t');
        if let (Some(n), Some(s), Some(v)) = (f.next(), f.next(), f.next()) {
            dpkg.insert(
                n.to_string(),
                Dpkg {
                    status: s.trim().to_string(),
                    version: v.to_string(),
                },
            );
        }
    }
    let policy_lines: Vec<&str> = reply.all("policy").collect();
    let t0: i64 = reply
        .get("mtime0")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let t1: Option<i64> = reply.get("mtime1").and_then(|t| t.parse().ok());
    Found {
        dpkg,
        policy: parse_policy(&policy_lines),
        auto: reply.all("auto").map(str::to_string).collect(),
        matches: reply
            .all("match")
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        cache_updated: reply.flag("update") && (check || t1.is_some_and(|t| t != t0)),
        cache_update_time: t1.unwrap_or(t0),
    }
}

/// Runs one apt command with Ansible's environment; returns (rc, stdout, stderr).
async fn apt_exec(ctx: &ModuleCtx<'_>, cmd: &str) -> Result<(i32, String, String), ModError> {
    let out = ctx.exec(format!("{APT_ENV} {cmd}"), None).await?;
    Ok((
        out.rc,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn failed(msg: String, out: String, err: String, rc: i32) -> ModError {
    let mut result = Outcome::new();
    result.insert("stdout".into(), out.into());
    result.insert("stderr".into(), err.into());
    result.insert("rc".into(), rc.into());
    ModError::Failed { msg, result }
}

fn diff_of(ctx: &ModuleCtx<'_>, out: &str) -> Value {
    if ctx.diff {
        parse_diff(out)
    } else {
        Value::Object(Map::new())
    }
}

#[async_trait]
impl Module for Apt {
    fn def(&self) -> &'static ModuleDef {
        &APT_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        if args.get("policy_rc_d").is_some_and(|v| !v.is_null()) {
            return Err(ModError::msg(
                "apt: `policy_rc_d` is not supported by mixop (it would write /usr/sbin/policy-rc.d)",
            ));
        }
        let names: Vec<String> = args
            .get("name")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let state = arg_str(&args, "state").unwrap_or("present").to_string();
        let o = Opts {
            state: state.clone(),
            purge: arg_bool(&args, "purge", false),
            force: arg_bool(&args, "force", false),
            autoremove: arg_bool(&args, "autoremove", false),
            fail_on_autoremove: arg_bool(&args, "fail_on_autoremove", false),
            only_upgrade: arg_bool(&args, "only_upgrade", false),
            allow_unauthenticated: arg_bool(&args, "allow_unauthenticated", false),
            allow_downgrade: arg_bool(&args, "allow_downgrade", false),
            allow_change_held: arg_bool(&args, "allow_change_held_packages", false),
            install_recommends: args
                .get("install_recommends")
                .and_then(crate::value::as_bool),
            default_release: arg_str(&args, "default_release").map(str::to_string),
            dpkg_options: format!(
                "{} -o DPkg::Lock::Timeout={}",
                expand_dpkg_options(arg_str(&args, "dpkg_options").unwrap_or(DPKG_OPTIONS)),
                args.get("lock_timeout")
                    .and_then(Value::as_i64)
                    .unwrap_or(60)
            ),
            dpkg_raw: arg_str(&args, "dpkg_options")
                .unwrap_or(DPKG_OPTIONS)
                .to_string(),
            check: ctx.check_mode,
        };
        let upgrade = arg_str(&args, "upgrade").filter(|u| *u != "no");
        let deb = arg_str(&args, "deb");
        let valid_time = args
            .get("cache_valid_time")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let update = arg_bool(&args, "update_cache", false) || valid_time != 0;

        if arg_bool(&args, "clean", false) {
            let (rc, out, err) = apt_exec(ctx, "apt-get clean").await?;
            if rc != 0 || !err.is_empty() {
                return Err(failed("apt-get clean failed".into(), out, err, rc));
            }
            if names.is_empty() && upgrade.is_none() && deb.is_none() {
                let mut r = outcome(true);
                r.insert("msg".into(), out.clone().into());
                r.insert("stdout".into(), out.clone().into());
                r.insert("stderr".into(), err.into());
                r.insert("diff".into(), diff_of(ctx, &out));
                return Ok(r);
            }
        }
        for n in &names {
            if n.matches('=').count() > 1 {
                return Err(ModError::msg(format!("invalid package spec: {n}")));
            }
        }
        let wanted: Vec<String> = names.iter().filter(|n| *n != "*").cloned().collect();
        let reply = remote::run(
            ctx,
            read_script(
                &wanted,
                update,
                valid_time,
                ctx.check_mode,
                o.default_release.as_deref(),
                deb,
            )?,
        )
        .await?;
        let found = parse_found(&reply, ctx.check_mode);
        let cache_keys = |mut r: Outcome| {
            r.insert("cache_updated".into(), found.cache_updated.into());
            r.insert("cache_update_time".into(), found.cache_update_time.into());
            r
        };
        if update && names.is_empty() && upgrade.is_none() && deb.is_none() {
            return Ok(cache_keys(outcome(found.cache_updated)));
        }
        if let Some(mode) = upgrade {
            return run_upgrade(ctx, &o, mode).await;
        }
        if let Some(deb) = deb {
            if state != "present" {
                return Err(ModError::msg("deb only supports state=present"));
            }
            return install_deb(ctx, &o, deb, &reply, &found).await;
        }
        if names.iter().any(|n| n == "*") && state == "latest" {
            if !wanted.is_empty() {
                return Err(ModError::msg(
                    "unable to install additional packages when upgrading all installed packages",
                ));
            }
            return run_upgrade(ctx, &o, "yes").await;
        }
        // Expand globs as Ansible's `expand_pkgspec_from_fnmatches`.
        let mut specs = Vec::new();
        for raw in &wanted {
            let s = package_split(raw);
            if has_glob(&s.name) {
                let hits: Vec<&str> = found
                    .matches
                    .iter()
                    .filter(|(p, _)| *p == s.name)
                    .map(|(_, n)| n.as_str())
                    .collect();
                if hits.is_empty() {
                    return Err(ModError::msg(format!(
                        "No package(s) matching '{}' available",
                        s.name
                    )));
                }
                specs.extend(hits.into_iter().map(package_split));
            } else {
                specs.push(s);
            }
        }
        if specs.is_empty() {
            if arg_bool(&args, "autoclean", false) {
                return cleanup(ctx, &o, "autoclean", "Del ").await;
            }
            if o.autoremove {
                return cleanup(
                    ctx,
                    &o,
                    "autoremove",
                    "The following packages will be REMOVED",
                )
                .await;
            }
        }
        if state == "absent" {
            let list = plan_remove(&o, &specs, &found.dpkg);
            if list.is_empty() {
                return Ok(outcome(false));
            }
            let packages = list
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(" ");
            let cmd = format!(
                "{APT_GET} -q -y {} {} {} {} {} {} remove {packages}",
                o.dpkg_options,
                flag(o.purge, "--purge"),
                flag(o.force, "--force-yes"),
                flag(o.autoremove, "--auto-remove"),
                flag(o.check, "--simulate"),
                flag(o.allow_change_held, "--allow-change-held-packages"),
            );
            let (rc, out, err) = apt_exec(ctx, &cmd).await?;
            if rc != 0 {
                return Err(failed(
                    format!("'apt-get remove {packages}' failed: {err}"),
                    out,
                    err,
                    rc,
                ));
            }
            let mut r = outcome(true);
            r.insert("diff".into(), diff_of(ctx, &out));
            r.insert("stdout".into(), out.into());
            r.insert("stderr".into(), err.into());
            return Ok(r);
        }
        let list = plan_install(&o, &specs, &found.dpkg, &found.policy)?;
        let mut r = outcome(false);
        if !list.is_empty() {
            let cmd = install_cmd(&o, &list);
            let (rc, out, err) = apt_exec(ctx, &cmd).await?;
            if rc != 0 {
                return Err(failed(format!("'{cmd}' failed: {err}"), out, err, rc));
            }
            let changed = state != "build-dep" || !out.contains(APT_GET_ZERO);
            r = outcome(changed);
            r.insert("stdout".into(), out.clone().into());
            r.insert("stderr".into(), err.into());
            r.insert("diff".into(), diff_of(ctx, &out));
        }
        // Ansible marks every named package manual (never counted as a change).
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        if state != "build-dep"
            && !ctx.check_mode
            && names.iter().any(|n| found.auto.iter().any(|a| a == n))
        {
            let cmd = format!(
                "apt-mark manual {}",
                names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ")
            );
            let (rc, out, err) = apt_exec(ctx, &cmd).await?;
            if rc != 0 {
                return Err(failed(format!("'{cmd}' failed: {err}"), out, err, rc));
            }
        }
        Ok(cache_keys(r))
    }
}

const DPKG_OPTIONS: &str = "force-confdef,force-confold";

async fn run_upgrade(ctx: &ModuleCtx<'_>, o: &Opts, mode: &str) -> ModResult {
    let autoremove = flag(o.autoremove, "--auto-remove");
    let command = match mode {
        "dist" | "full" => format!("dist-upgrade {autoremove}"),
        _ => format!("upgrade --with-new-pkgs {autoremove}"),
    };
    let mut cmd = format!(
        "{APT_GET} -y {} {} {} {} {} {} {command}",
        o.dpkg_options,
        flag(o.force, "--force-yes"),
        flag(o.fail_on_autoremove, "--no-remove"),
        flag(o.allow_unauthenticated, "--allow-unauthenticated"),
        flag(o.allow_downgrade, "--allow-downgrades"),
        flag(o.check, "--simulate"),
    );
    if let Some(r) = &o.default_release {
        cmd.push_str(&format!(" -t '{r}'"));
    }
    let (rc, out, err) = apt_exec(ctx, &cmd).await?;
    if rc != 0 {
        let mut e = failed(format!("'{APT_GET} {command}' failed: {err}"), out, err, rc);
        if let ModError::Failed { result, .. } = &mut e {
            result.remove("stderr");
        }
        return Err(e);
    }
    let changed = !out.contains(APT_GET_ZERO);
    let mut r = outcome(changed);
    r.insert("msg".into(), out.clone().into());
    if changed {
        r.insert("diff".into(), diff_of(ctx, &out));
    }
    r.insert("stdout".into(), out.into());
    r.insert("stderr".into(), err.into());
    Ok(r)
}

async fn cleanup(ctx: &ModuleCtx<'_>, o: &Opts, op: &str, changed_marker: &str) -> ModResult {
    let cmd = format!(
        "{APT_GET} -y {} {} {} {op} {}",
        o.dpkg_options,
        flag(o.purge, "--purge"),
        flag(o.force, "--force-yes"),
        flag(o.check, "--simulate"),
    );
    let (rc, out, err) = apt_exec(ctx, &cmd).await?;
    if rc != 0 {
        return Err(failed(
            format!("'apt-get {op}' failed: {err}"),
            out,
            err,
            rc,
        ));
    }
    let mut r = outcome(out.contains(changed_marker));
    r.insert("diff".into(), diff_of(ctx, &out));
    r.insert("stdout".into(), out.into());
    r.insert("stderr".into(), err.into());
    Ok(r)
}

/// `deb`: `dpkg -i` unless the same version is installed. Dependencies must already be met
/// (Ansible would first install missing ones through apt).
async fn install_deb(
    ctx: &ModuleCtx<'_>,
    o: &Opts,
    deb: &str,
    reply: &Reply,
    found: &Found,
) -> ModResult {
    let (Some(name), Some(version)) = (reply.get("deb_Package"), reply.get("deb_Version")) else {
        return Err(ModError::msg(format!(
            "Unable to install package: cannot read the control fields of {deb}"
        )));
    };
    if let Some(d) = found.dpkg.get(name)
        && d.installed()
        && compare_versions(version, &d.version).is_eq()
    {
        let mut r = outcome(false);
        r.insert("stdout".into(), "".into());
        r.insert("stderr".into(), "".into());
        r.insert("diff".into(), "".into());
        return Ok(r);
    }
    let mut options = o
        .dpkg_raw
        .split(',')
        .map(|x| format!("--{x}"))
        .collect::<Vec<_>>()
        .join(" ");
    if o.check {
        options.push_str(" --simulate");
    }
    if o.force {
        options.push_str(" --force-all");
    }
    let cmd = format!(
        "dpkg {options} -i {}",
        crate::modules::files::remote::sh_path(deb)
    );
    let (rc, out, err) = apt_exec(ctx, &cmd).await?;
    if rc != 0 {
        let mut e = failed(format!("{cmd} failed"), out, err, rc);
        if let ModError::Failed { result, .. } = &mut e {
            result.remove("rc");
        }
        return Err(e);
    }
    let mut r = outcome(true);
    r.insert("diff".into(), parse_diff(&out));
    r.insert("stdout".into(), out.into());
    r.insert("stderr".into(), err.into());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn splits_specs_like_ansible() {
        let s = package_split("foo>=1.0");
        assert_eq!(
            (s.name.as_str(), s.cmp, s.version.as_deref()),
            ("foo", Some(">="), Some("1.0"))
        );
        let s = package_split("foo=1.*");
        assert_eq!(
            (s.name.as_str(), s.cmp, s.version.as_deref()),
            ("foo", Some("="), Some("1.*"))
        );
        assert_eq!(package_split("foo").cmp, None);
    }

    #[test]
    fn debian_version_order() {
        // Cases from dpkg's own test suite.
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.1", "2.0", Greater),
            ("1.0-1", "1.0-2", Less),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("2.0-1~bpo", "2.0-1", Less),
            ("0001", "1", Equal),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
    }

    const POLICY: &str = "mixop-a:
  Installed: 1.0
  Candidate: 2.0
  Version table:
     2.0 500
        500 file:/opt/repo ./ Packages
 *** 1.0 500
        500 file:/opt/repo ./ Packages
        100 /var/lib/dpkg/status
mixop-b:
  Installed: (none)
  Candidate: 1.0
  Version table:
     1.0 500
        500 file:/opt/repo ./ Packages
virt:
  Installed: (none)
  Candidate: (none)
  Version table:";

    fn found() -> (HashMap<String, Dpkg>, HashMap<String, Policy>) {
        let policy = parse_policy(&POLICY.lines().collect::<Vec<_>>());
        let mut dpkg = HashMap::new();
        dpkg.insert(
            "mixop-a".to_string(),
            Dpkg {
                status: "ii".into(),
                version: "1.0".into(),
            },
        );
        dpkg.insert(
            "mixop-c".to_string(),
            Dpkg {
                status: "rc".into(),
                version: "3.0".into(),
            },
        );
        (dpkg, policy)
    }

    fn opts(state: &str) -> Opts {
        Opts {
            state: state.into(),
            purge: false,
            force: false,
            autoremove: false,
            fail_on_autoremove: false,
            only_upgrade: false,
            allow_unauthenticated: false,
            allow_downgrade: false,
            allow_change_held: false,
            install_recommends: None,
            default_release: None,
            dpkg_options: expand_dpkg_options(DPKG_OPTIONS),
            dpkg_raw: DPKG_OPTIONS.into(),
            check: false,
        }
    }

    fn specs(names: &[&str]) -> Vec<Spec> {
        names.iter().map(|n| package_split(n)).collect()
    }

    #[test]
    fn policy_parses() {
        let (_, p) = found();
        assert_eq!(p["mixop-a"].versions, ["2.0", "1.0"]);
        assert_eq!(p["mixop-a"].installed.as_deref(), Some("1.0"));
        assert_eq!(p["mixop-b"].candidate.as_deref(), Some("1.0"));
        assert_eq!(p["virt"], Policy::default());
    }

    #[test]
    fn install_plans_follow_ansible() {
        let (d, p) = found();
        let plan = |state: &str, names: &[&str]| {
            plan_install(&opts(state), &specs(names), &d, &p).map_err(|e| match e {
                ModError::Failed { msg, .. } => msg,
                ModError::Conn(_) => unreachable!(),
            })
        };
        // Installed (any version) and present: nothing; new: the candidate, pinned.
        assert_eq!(
            plan("present", &["mixop-a", "mixop-b"]).unwrap(),
            ["mixop-b=1.0"]
        );
        assert_eq!(plan("latest", &["mixop-a"]).unwrap(), ["mixop-a=2.0"]);
        assert_eq!(
            plan("present", &["mixop-a=1.0"]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(plan("present", &["mixop-a=2.*"]).unwrap(), ["mixop-a=2.0"]);
        // Legacy: a `=` glob matching the installed one and a newer one installs it.
        assert_eq!(plan("present", &["mixop-a=*"]).unwrap(), ["mixop-a=*"]);
        assert_eq!(
            plan("present", &["mixop-a>=0.5"]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(plan("present", &["mixop-a>=1.5"]).unwrap(), ["mixop-a=2.0"]);
        assert_eq!(plan("present", &["virt"]).unwrap(), ["virt"]);
        assert_eq!(
            plan("present", &["nope"]).unwrap_err(),
            "No package matching 'nope' is available"
        );
        assert_eq!(
            plan("present", &["mixop-b=9"]).unwrap_err(),
            "no available installation candidate for mixop-b=9"
        );
        let mut o = opts("present");
        o.only_upgrade = true;
        assert!(
            plan_install(&o, &specs(&["mixop-b"]), &d, &p)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn remove_plans_follow_ansible() {
        let (d, _) = found();
        let o = opts("absent");
        assert_eq!(
            plan_remove(&o, &specs(&["mixop-a", "mixop-b", "mixop-c", "nope"]), &d),
            ["mixop-a"]
        );
        assert!(plan_remove(&o, &specs(&["mixop-a=2.0"]), &d).is_empty());
        let mut o = opts("absent");
        o.purge = true;
        assert_eq!(
            plan_remove(&o, &specs(&["mixop-a", "mixop-c"]), &d),
            ["mixop-a", "mixop-c"]
        );
    }

    #[test]
    fn install_command_line_as_ansible_builds_it() {
        let mut o = opts("present");
        o.install_recommends = Some(false);
        o.dpkg_options = format!("{} -o DPkg::Lock::Timeout=60", o.dpkg_options);
        assert_eq!(
            install_cmd(&o, &["a=1".into(), "b".into()]),
            "/usr/bin/apt-get -y -o \"Dpkg::Options::=--force-confdef\" -o \"Dpkg::Options::=--force-confold\" -o DPkg::Lock::Timeout=60       install 'a=1' 'b' -o APT::Install-Recommends=no"
        );
    }

    #[test]
    fn diff_is_the_prepared_section() {
        let out = "Reading package lists...\nBuilding dependency tree...\nReading state information...\nThe following NEW packages will be installed:\n  mixop-a\n0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.\nInst mixop-a (1.0 repo)\n";
        assert_eq!(
            parse_diff(out)["prepared"],
            "The following NEW packages will be installed:\n  mixop-a\n0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded."
        );
    }
}
