//! `file`: directories, links, hard links, touch, removal, and attributes — one probe to learn
//! the current state, and (only when something must change) one batch script to change it.

use crate::modules::Target;
use async_trait::async_trait;
use serde_json::{Map, Value};

use super::file_params;
use super::remote::{self, AttrChange, FileStat, Kind, Probe, ProbeOpts};
use super::{AttrArgs, BUILTIN, ModeSpec, Wanted, add_path_info};
use crate::modules::ParamType::*;
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, alias, choice,
    outcome, p, req, typed,
};

static DEF: ModuleDef = ModuleDef {
    name: "file",
    namespaces: BUILTIN,
    params: file_params![
        alias(req("path", Str), &["dest", "name"]),
        choice(
            "state",
            &["absent", "directory", "file", "hard", "link", "touch"],
        ),
        p("src", Str),
        p("recurse", Bool),
        p("force", Bool),
        p("follow", Bool),
        p("modification_time", Str),
        p("modification_time_format", Str),
        p("access_time", Str),
        p("access_time_format", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct File;

/// `file`'s arguments (see `DEF`), with Ansible's defaults.
#[derive(Debug, serde::Deserialize)]
struct FileArgs {
    path: String,
    state: Option<String>,
    src: Option<String>,
    #[serde(default)]
    recurse: bool,
    #[serde(default)]
    force: bool,
    #[serde(default = "crate::modules::yes")]
    follow: bool,
    modification_time: Option<String>,
    #[serde(default = "stamp_format")]
    modification_time_format: String,
    access_time: Option<String>,
    #[serde(default = "stamp_format")]
    access_time_format: String,
    #[serde(flatten)]
    attrs: AttrArgs,
}

fn stamp_format() -> String {
    "%Y%m%d%H%M.%S".into()
}

/// A requested time: keep it, set it to now, or set it to this epoch second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stamp {
    Preserve,
    Now,
    At(i64),
}

/// Ansible's `modification_time`/`access_time`: `preserve`, `now`, or a time in `format`
/// (strftime, default `%Y%m%d%H%M.%S`), read in the controller's local time zone.
pub fn parse_stamp(v: Option<&str>, fmt: &str, state: &str) -> Result<Stamp, ModError> {
    let v = match v {
        Some(v) => v,
        None if state == "touch" => "now",
        None => "preserve",
    };
    match v {
        "preserve" => Ok(Stamp::Preserve),
        "now" => Ok(Stamp::Now),
        t => {
            let naive = chrono::NaiveDateTime::parse_from_str(t, fmt).map_err(|e| {
                ModError::msg(format!(
                    "Error while obtaining timestamp for time {t} using format {fmt}: {e}"
                ))
            })?;
            use chrono::TimeZone;
            let local = chrono::Local
                .from_local_datetime(&naive)
                .earliest()
                .ok_or_else(|| {
                    ModError::msg(format!("{t} does not exist in the local time zone"))
                })?;
            Ok(Stamp::At(local.timestamp()))
        }
    }
}

/// `touch` arguments for a stamp that differs from `current`; None when nothing changes.
fn touch_args(flag: &str, s: Stamp, current: Option<i64>) -> Option<String> {
    match s {
        Stamp::Preserve => None,
        Stamp::Now => Some(format!("touch {flag} --")),
        Stamp::At(t) if Some(t) == current => None,
        Stamp::At(t) => {
            let utc = chrono::DateTime::from_timestamp(t, 0)?;
            Some(format!(
                "TZ=UTC0 touch {flag} -t {} --",
                utc.format("%Y%m%d%H%M.%S")
            ))
        }
    }
}

/// Shell lines that apply `ch` to `$p`-style path word `w`.
fn attr_lines(w: &str, ch: &AttrChange, no_deref: bool, recurse: bool) -> String {
    let h = if no_deref { " -h" } else { "" };
    let r = if recurse { " -R" } else { "" };
    let mut s = String::new();
    if let Some(m) = ch.mode {
        s.push_str(&format!(
            "e=$(chmod{r} -- {m:04o} {w} 2>&1) || {{ _err \"$e\"; exit 0; }}\n"
        ));
    }
    if let Some(o) = &ch.owner {
        s.push_str(&format!(
            "e=$(chown{h}{r} -- {} {w} 2>&1) || {{ _err \"chown failed: $e\"; exit 0; }}\n",
            quote(o)
        ));
    }
    if let Some(g) = &ch.group {
        s.push_str(&format!(
            "e=$(chgrp{h}{r} -- {} {w} 2>&1) || {{ _err \"chgrp failed: $e\"; exit 0; }}\n",
            quote(g)
        ));
    }
    s
}

/// The attribute change for a recursive run: one `-R` command per attribute that differs
/// anywhere below (entries are compared one by one, symlinks skipped like chmod -R does).
fn recursive_change(probe: &Probe, wanted: &Wanted) -> Result<AttrChange, ModError> {
    let mut ch = AttrChange::default();
    for (_, st) in probe.tree.iter().filter(|(_, s)| s.kind() != Kind::Link) {
        let c = wanted.change_for(st, probe.umask)?;
        // The -R command takes the spec itself (chmod resolves it per entry); this only
        // records that some entry differs.
        if c.mode.is_some() {
            ch.mode = c.mode;
        }
        if c.owner.is_some() {
            ch.owner = c.owner;
        }
        if c.group.is_some() {
            ch.group = c.group;
        }
    }
    Ok(ch)
}

/// What the task asks for, resolved from its arguments and the probe's current state.
struct Request<'a> {
    /// The path as written (for messages).
    path: &'a str,
    /// The state to reach: as requested, else what is there, else `directory`/`file`.
    state: &'a str,
    src: Option<&'a str>,
    recurse: bool,
    force: bool,
    follow: bool,
    wanted: Wanted,
    mtime: Stamp,
    atime: Stamp,
}

impl Request<'_> {
    /// `touch` lines for the timestamps that differ from `st` (all asked ones when absent).
    fn stamp_lines(&self, st: Option<&FileStat>, w: &str) -> String {
        let mut s = String::new();
        for (flag, stamp, cur) in [
            ("-m", self.mtime, st.map(|s| s.mtime)),
            ("-a", self.atime, st.map(|s| s.atime)),
        ] {
            if let Some(cmd) = touch_args(flag, stamp, cur) {
                s.push_str(&format!(
                    "e=$({cmd} {w} 2>&1) || {{ _err \"$e\"; exit 0; }}\n"
                ));
            }
        }
        s
    }

    /// A refusal, as Ansible reports it: the message, the path and `extra` result keys.
    fn refuse(&self, msg: impl Into<String>, extra: &[(&str, Value)]) -> ModError {
        let mut result = Outcome::new();
        result.insert("path".into(), self.path.into());
        for (k, v) in extra {
            result.insert((*k).into(), v.clone());
        }
        ModError::Failed {
            msg: msg.into(),
            result,
        }
    }
}

/// What the plan decided: the script that makes the change (empty when there is none to run),
/// whether anything changes, and what the result reports.
#[derive(Debug, Default)]
struct Plan {
    script: String,
    changed: bool,
    /// Where attributes apply and the stat that is reported (a followed link's target).
    report_path: String,
    /// `path`, or `dest` for links, hard links and touch (as ansible-core names it).
    path_key: &'static str,
    /// Result keys the state adds (`state` for absent, `src` for links).
    result: Outcome,
    /// `src` before and after, for `--diff` of a relinked symlink.
    src_diff: Option<(String, String)>,
}

impl Plan {
    fn at(report_path: &str) -> Plan {
        Plan {
            report_path: report_path.to_string(),
            path_key: "path",
            ..Plan::default()
        }
    }
}

/// Decides what to change: a pure function of the request and the probe.
fn plan(req: &Request, probe: &Probe) -> Result<Plan, ModError> {
    match req.state {
        "absent" => Ok(plan_absent(probe)),
        "file" => plan_file(req, probe),
        "directory" => plan_directory(req, probe),
        "link" => plan_link(req, probe),
        "hard" => plan_hard(req, probe),
        _ => plan_touch(req, probe),
    }
}

fn plan_absent(probe: &Probe) -> Plan {
    let mut plan = Plan::at(&probe.path);
    plan.result.insert("state".into(), "absent".into());
    let prev = probe.state();
    if prev != "absent" {
        let cmd = if prev == "directory" {
            "rm -rf"
        } else {
            "rm -f"
        };
        let p = remote::sh_path(&probe.path);
        plan.script = format!("e=$({cmd} -- {p} 2>&1) || {{ _err \"$e\"; exit 0; }}\n");
        plan.changed = true;
    }
    plan
}

/// The path attributes apply to, and its stat: a link's target when following.
fn followed(req: &Request, probe: &Probe) -> (String, Option<FileStat>) {
    match (&probe.lstat, req.follow) {
        (Some(l), true) if l.kind() == Kind::Link => (
            probe.lnk_source.clone().unwrap_or_default(),
            probe.tstat.clone(),
        ),
        _ => (probe.path.clone(), probe.lstat.clone()),
    }
}

fn plan_file(req: &Request, probe: &Probe) -> Result<Plan, ModError> {
    let (target, st) = followed(req, probe);
    let tstate = match &st {
        None => "absent",
        Some(s) if s.kind() == Kind::Dir => "directory",
        Some(s) if s.kind() == Kind::Link => "link",
        Some(s) if s.nlink > 1 => "hard",
        Some(_) => "file",
    };
    if !matches!(tstate, "file" | "hard") {
        return Err(req.refuse(
            format!("file ({target}) is {tstate}, cannot continue"),
            &[("state", tstate.into())],
        ));
    }
    let Some(st) = st else {
        return Err(req.refuse(format!("cannot read the status of {target}"), &[]));
    };
    let ch = req.wanted.change_for(&st, probe.umask)?;
    let w = quote(&target);
    let stamps = req.stamp_lines(Some(&st), &w);
    let mut plan = Plan::at(&target);
    plan.changed = !ch.is_empty() || !stamps.is_empty();
    plan.script = attr_lines(&w, &ch, false, false) + &stamps;
    Ok(plan)
}

fn plan_directory(req: &Request, probe: &Probe) -> Result<Plan, ModError> {
    let (target, st) = followed(req, probe);
    let w = quote(&target);
    let mut plan = Plan::at(&target);
    match st {
        None => {
            let ch = req.wanted.for_new(0o777 & !probe.umask, probe.umask)?;
            let word = |v: Option<String>| v.unwrap_or_else(|| "''".into());
            plan.script = format!(
                "dmode={}\ndown={}\ndgrp={}\n_mkq=1; _mkdirs {w} || exit 0; _mkq=\n{}",
                word(ch.mode.map(|m| format!("{m:04o}"))),
                word(ch.owner.as_deref().map(quote)),
                word(ch.group.as_deref().map(quote)),
                req.stamp_lines(None, &w)
            );
            plan.changed = true;
        }
        Some(st) if st.kind() != Kind::Dir => {
            let kind = if st.kind() == Kind::Link {
                "link"
            } else if st.nlink > 1 {
                "hard"
            } else {
                "file"
            };
            return Err(req.refuse(format!("{} already exists as a {kind}", req.path), &[]));
        }
        Some(st) => {
            let ch = req.wanted.change_for(&st, probe.umask)?;
            plan.script = attr_lines(&w, &ch, false, false) + &req.stamp_lines(Some(&st), &w);
            if req.recurse {
                let rch = recursive_change(probe, &req.wanted)?;
                if !rch.is_empty() {
                    plan.script
                        .push_str(&recursive_script(&w, &rch, &req.wanted));
                }
                // Timestamps below the directory (explicit times or `now`).
                for (rel, est) in &probe.tree {
                    let ew = quote(&format!("{target}/{rel}"));
                    plan.script.push_str(&req.stamp_lines(Some(est), &ew));
                }
            }
            plan.changed = !plan.script.is_empty();
        }
    }
    Ok(plan)
}

/// The attributes a new link, hard link or file gets: the mode only when it is octal.
fn attrs_for_new(wanted: &Wanted, with_mode: bool) -> AttrChange {
    AttrChange {
        mode: match &wanted.mode {
            Some(ModeSpec::Octal(m)) if with_mode => Some(*m),
            _ => None,
        },
        owner: wanted.owner.clone(),
        group: wanted.group.clone(),
    }
}

fn plan_link(req: &Request, probe: &Probe) -> Result<Plan, ModError> {
    let prev = probe.state();
    let path = req.path;
    let p = remote::sh_path(&probe.path);
    let src = match (req.src, &probe.lnk_target) {
        (Some(s), _) => Some(s.to_string()),
        (None, Some(t)) if req.follow => Some(t.clone()),
        _ => None,
    };
    if let Some(s) = &src
        && !req.force
        && !probe.src_exists
    {
        let abs = probe.src_abs.clone().unwrap_or_else(|| s.clone());
        return Err(req.refuse(
            format!(
                "src file does not exist, use 'force=yes' if you really want to create the \
                 link: {abs}"
            ),
            &[("src", s.clone().into())],
        ));
    }
    match prev {
        "directory" if !req.force => {
            return Err(req.refuse(
                format!("refusing to convert from directory to symlink for {path}"),
                &[],
            ));
        }
        "directory" if probe.dir_empty == Some(false) => {
            return Err(req.refuse(
                format!("the directory {path} is not empty, refusing to convert it"),
                &[],
            ));
        }
        "file" | "hard" if !req.force => {
            return Err(req.refuse(
                format!("refusing to convert from {prev} to symlink for {path}"),
                &[],
            ));
        }
        _ => {}
    }
    let mut plan = Plan::at(&probe.path);
    plan.path_key = "dest";
    let relinked = match (prev, &src) {
        ("link", Some(s)) if probe.lnk_target.as_deref() != Some(s) => {
            plan.src_diff = Some((probe.lnk_target.clone().unwrap_or_default(), s.clone()));
            true
        }
        ("link", _) => false,
        (_, None) => return Err(req.refuse("src is required for creating new symlinks", &[])),
        _ => true,
    };
    if let Some(s) = &src {
        plan.result.insert("src".into(), s.clone().into());
    }
    if relinked {
        if prev == "directory" {
            plan.script.push_str(&format!(
                "e=$(rmdir -- {p} 2>&1) || {{ _err \"$e\"; exit 0; }}\n"
            ));
        }
        plan.script.push_str(&format!(
            "e=$(ln -sfn -- {} {p} 2>&1) || {{ _err \"Error while linking: $e\"; exit 0; }}\n",
            quote(src.as_deref().unwrap_or_default())
        ));
    }
    // Attributes apply to the link's target when following (and it exists).
    let mut attr_changed = false;
    if req.follow {
        match probe.tstat.as_ref().filter(|_| !relinked) {
            Some(ts) => {
                let ch = req.wanted.change_for(ts, probe.umask)?;
                attr_changed = !ch.is_empty();
                plan.script.push_str(&attr_lines(&p, &ch, false, false));
            }
            None if relinked => {
                let ch = attrs_for_new(&req.wanted, true);
                if !ch.is_empty() {
                    plan.script.push_str(&format!("if [ -e {p} ]; then\n"));
                    plan.script.push_str(&attr_lines(&p, &ch, false, false));
                    plan.script.push_str("fi\n");
                }
            }
            None => {}
        }
    } else if let Some(ls) = &probe.lstat {
        let ch = AttrChange {
            mode: None,
            ..req.wanted.change_for(ls, probe.umask)?
        };
        attr_changed = !ch.is_empty();
        plan.script.push_str(&attr_lines(&p, &ch, true, false));
    } else if relinked {
        let ch = attrs_for_new(&req.wanted, false);
        plan.script.push_str(&attr_lines(&p, &ch, true, false));
    }
    plan.changed = relinked || attr_changed;
    Ok(plan)
}

fn plan_hard(req: &Request, probe: &Probe) -> Result<Plan, ModError> {
    let prev = probe.state();
    let p = remote::sh_path(&probe.path);
    let mut plan = Plan::at(&probe.path);
    plan.path_key = "dest";
    if prev != "hard" && req.src.is_none() {
        return Err(req.refuse("src is required for creating new hardlinks", &[]));
    }
    if let Some(s) = req.src {
        plan.result.insert("src".into(), s.into());
        if probe.src_id.is_none() {
            return Err(req.refuse("src does not exist", &[("src", s.into())]));
        }
    }
    let same_inode = probe
        .lstat
        .as_ref()
        .is_some_and(|l| Some(format!("{}:{}", l.dev, l.inode)) == probe.src_id);
    let linked = match prev {
        "absent" => true,
        "link" => req.src.is_some() && probe.lnk_target.as_deref() != req.src,
        "hard" => {
            let differs = req.src.is_some() && !same_inode;
            if differs && !req.force {
                return Err(req.refuse(
                    "Cannot link, different hard link exists at destination",
                    &[],
                ));
            }
            differs
        }
        "file" if !req.force => {
            return Err(req.refuse("Cannot link, file exists at destination", &[]));
        }
        "file" => true,
        _ if same_inode => false,
        _ => {
            return Err(req.refuse(
                "Cannot link: different hard link exists at destination",
                &[],
            ));
        }
    };
    if linked {
        plan.script.push_str(&format!(
            "e=$(ln -f -- {} {p} 2>&1) || {{ _err \"Error while linking: $e\"; exit 0; }}\n",
            quote(req.src.unwrap_or_default())
        ));
    }
    let base = probe.lstat.as_ref().filter(|_| !linked);
    let ch = match base {
        Some(st) => req.wanted.change_for(st, probe.umask)?,
        None => attrs_for_new(&req.wanted, true),
    };
    plan.script.push_str(&attr_lines(&p, &ch, false, false));
    plan.changed = linked || (base.is_some() && !ch.is_empty());
    Ok(plan)
}

fn plan_touch(req: &Request, probe: &Probe) -> Result<Plan, ModError> {
    let p = remote::sh_path(&probe.path);
    let st = probe.effective(req.follow);
    let mut plan = Plan::at(&probe.path);
    plan.path_key = "dest";
    let ch = match st {
        None => {
            plan.script.push_str(&format!(
                "e=$( (: >> {p}) 2>&1) || {{ _err \"Error, could not touch target: $e\"; exit 0; }}\n"
            ));
            req.wanted.for_new(0o666 & !probe.umask, probe.umask)?
        }
        Some(s) => req.wanted.change_for(s, probe.umask)?,
    };
    plan.script.push_str(&attr_lines(&p, &ch, false, false));
    let stamps = req.stamp_lines(st, &p);
    plan.script.push_str(&stamps);
    plan.changed = st.is_none() || !ch.is_empty() || !stamps.is_empty();
    Ok(plan)
}

#[async_trait]
impl Module for File {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: FileArgs = typed(&args)?;
        let req_state = a.state.as_deref();
        if a.recurse && req_state.is_some_and(|s| s != "directory") {
            return Err(ModError::msg(
                "recurse option requires state to be 'directory'",
            ));
        }
        if a.src.is_some() && req_state.is_some_and(|s| s != "link" && s != "hard") {
            return Err(ModError::msg(
                "src option requires state to be 'link' or 'hard'",
            ));
        }
        let probe = remote::probe(
            ctx,
            &a.path,
            &ProbeOpts {
                follow: a.follow,
                dir_empty: matches!(req_state, Some("link" | "hard")),
                link_src: a.src.clone().filter(|_| req_state == Some("link")),
                hard_src: a.src.clone().filter(|_| req_state == Some("hard")),
                list_tree: a.recurse,
                ..Default::default()
            },
        )
        .await?;
        let prev = probe.state();
        let state = match req_state {
            Some(s) => s,
            None if prev != "absent" => prev,
            None if a.recurse => "directory",
            None => "file",
        };
        let req = Request {
            path: &a.path,
            state,
            src: a.src.as_deref(),
            recurse: a.recurse,
            force: a.force,
            follow: a.follow,
            wanted: Wanted::from_attrs(&a.attrs, false)?,
            mtime: parse_stamp(
                a.modification_time.as_deref(),
                &a.modification_time_format,
                state,
            )?,
            atime: parse_stamp(a.access_time.as_deref(), &a.access_time_format, state)?,
        };
        let plan = plan(&req, &probe)?;
        apply(ctx, &req, &probe, plan).await
    }
}

/// Runs the plan's script (unless checking) and reports as ansible-core's `file` does.
async fn apply(ctx: &ModuleCtx<'_>, req: &Request<'_>, probe: &Probe, plan: Plan) -> ModResult {
    let mut r = outcome(plan.changed);
    r.extend(plan.result);
    r.insert(plan.path_key.into(), plan.report_path.clone().into());
    if ctx.diff && plan.changed {
        let prev = probe.state();
        let mut before = Map::new();
        let mut after = Map::new();
        before.insert("path".into(), probe.path.clone().into());
        after.insert("path".into(), probe.path.clone().into());
        if prev != req.state {
            before.insert("state".into(), prev.into());
            after.insert("state".into(), req.state.into());
        }
        if let Some((was, now)) = plan.src_diff {
            before.insert("src".into(), was.into());
            after.insert("src".into(), now.into());
        }
        r.insert(
            "diff".into(),
            serde_json::json!({"before": before, "after": after}),
        );
    }
    if req.state == "absent" {
        if plan.changed && !ctx.check_mode {
            remote::run(ctx, remote::script(&[], &plan.script)).await?;
        }
        return Ok(r);
    }
    let final_stat = if plan.changed && !ctx.check_mode && !plan.script.is_empty() {
        let body = format!(
            "{}printf 'lstat=%s\\n' \"$(_st {})\"\n",
            plan.script,
            quote(&plan.report_path)
        );
        let reply = remote::run(ctx, remote::script(&[], &body)).await?;
        reply.stat("lstat")?
    } else if ctx.check_mode && plan.changed {
        // Nothing was changed; report what is there now.
        probe
            .lstat
            .clone()
            .filter(|_| plan.report_path == probe.path)
    } else if plan.report_path == probe.path {
        probe.lstat.clone()
    } else {
        probe.tstat.clone()
    };
    if let Some(st) = final_stat {
        // A dangling link has no path information in Ansible's results.
        let dangling = st.kind() == Kind::Link && probe.tstat.is_none() && !plan.changed;
        if !dangling {
            add_path_info(&mut r, &st);
        }
    }
    Ok(r)
}

/// `chmod -R` / `chown -R` / `chgrp -R` for what differs below a directory. Symbolic modes go
/// to chmod as written (it resolves `X` and the umask per entry exactly as they were compared).
fn recursive_script(w: &str, ch: &AttrChange, wanted: &Wanted) -> String {
    let mut s = String::new();
    if ch.mode.is_some() {
        let m = match &wanted.mode {
            Some(ModeSpec::Octal(m)) => format!("{m:04o}"),
            Some(ModeSpec::Symbolic(sym)) => quote(sym),
            _ => String::new(),
        };
        if !m.is_empty() {
            s.push_str(&format!(
                "e=$(chmod -R -- {m} {w} 2>&1) || {{ _err \"$e\"; exit 0; }}\n"
            ));
        }
    }
    let own = AttrChange {
        mode: None,
        ..ch.clone()
    };
    s.push_str(&attr_lines(w, &own, false, true));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_take_the_schemas_defaults() {
        let given =
            serde_json::json!({"dest": "/a", "follow": null, "recurse": "yes", "mode": 420});
        let args =
            crate::modules::normalize_args(&DEF, given.as_object().unwrap().clone()).unwrap();
        let a: FileArgs = typed(&args).unwrap();
        assert_eq!(a.path, "/a");
        assert!(a.follow && a.recurse && !a.force);
        assert_eq!(a.state, None);
        assert_eq!(a.modification_time_format, "%Y%m%d%H%M.%S");
        let w = Wanted::from_attrs(&a.attrs, false).unwrap();
        assert_eq!(w.mode, Some(ModeSpec::Octal(0o644)));
        assert_eq!((w.owner, w.group), (None, None));
    }

    #[test]
    fn stamps() {
        assert_eq!(
            parse_stamp(None, &stamp_format(), "touch").unwrap(),
            Stamp::Now
        );
        assert_eq!(
            parse_stamp(None, &stamp_format(), "file").unwrap(),
            Stamp::Preserve
        );
        assert!(matches!(
            parse_stamp(Some("202401021530.45"), &stamp_format(), "file").unwrap(),
            Stamp::At(_)
        ));
        assert!(parse_stamp(Some("yesterday"), &stamp_format(), "file").is_err());
        let t = 1_700_000_000;
        assert_eq!(touch_args("-m", Stamp::At(t), Some(t)), None);
        assert_eq!(
            touch_args("-m", Stamp::At(t), Some(1)).unwrap(),
            "TZ=UTC0 touch -m -t 202311142213.20 --"
        );
        assert!(touch_args("-a", Stamp::Now, Some(t)).is_some());
    }

    fn stat(raw_mode: u32, nlink: u64) -> FileStat {
        FileStat::for_test(raw_mode, nlink)
    }

    fn probe(lstat: Option<FileStat>) -> Probe {
        Probe {
            path: "/t/x".into(),
            lstat,
            umask: 0o022,
            ..Probe::default()
        }
    }

    fn request(state: &str, mode: Option<u32>) -> Request<'_> {
        Request {
            path: "/t/x",
            state,
            src: None,
            recurse: false,
            force: false,
            follow: true,
            wanted: Wanted {
                mode: mode.map(ModeSpec::Octal),
                ..Wanted::default()
            },
            mtime: Stamp::Preserve,
            atime: Stamp::Preserve,
        }
    }

    fn refusal(r: Result<Plan, ModError>) -> String {
        match r {
            Err(ModError::Failed { msg, result }) => {
                assert_eq!(result["path"], "/t/x");
                msg
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_directory_is_made_once_and_then_left_alone() {
        let made = plan(&request("directory", Some(0o750)), &probe(None)).unwrap();
        assert!(made.changed);
        assert!(made.script.contains("dmode=0750\n"), "{}", made.script);
        assert!(made.script.contains("_mkdirs /t/x"), "{}", made.script);
        let there = probe(Some(stat(0o040750, 2)));
        let same = plan(&request("directory", Some(0o750)), &there).unwrap();
        assert!(!same.changed && same.script.is_empty());
        let chmod = plan(&request("directory", Some(0o700)), &there).unwrap();
        assert!(chmod.changed && chmod.script.contains("chmod -- 0700 /t/x"));
        let on_file = plan(&request("directory", None), &probe(Some(stat(0o100644, 1))));
        assert_eq!(refusal(on_file), "/t/x already exists as a file");
    }

    #[test]
    fn absent_removes_what_is_there_and_nothing_else() {
        let gone = plan(&request("absent", None), &probe(None)).unwrap();
        assert!(!gone.changed && gone.script.is_empty());
        assert_eq!(gone.result["state"], "absent");
        let dir = plan(&request("absent", None), &probe(Some(stat(0o040755, 2)))).unwrap();
        assert!(dir.changed && dir.script.contains("rm -rf -- /t/x"));
        let file = plan(&request("absent", None), &probe(Some(stat(0o100644, 1)))).unwrap();
        assert!(file.script.contains("rm -f -- /t/x"));
    }

    #[test]
    fn links_refuse_to_replace_files_without_force_and_relink_with_a_diff() {
        let mut req = request("link", None);
        req.src = Some("/t/a");
        let mut file = probe(Some(stat(0o100644, 1)));
        file.src_exists = true;
        assert_eq!(
            refusal(plan(&req, &file)),
            "refusing to convert from file to symlink for /t/x"
        );
        let mut link = probe(Some(stat(0o120777, 1)));
        link.src_exists = true;
        link.lnk_target = Some("/t/old".into());
        let p = plan(&req, &link).unwrap();
        assert!(p.changed && p.script.contains("ln -sfn -- /t/a /t/x"));
        assert_eq!(p.path_key, "dest");
        assert_eq!(p.src_diff, Some(("/t/old".into(), "/t/a".into())));
        link.lnk_target = Some("/t/a".into());
        assert!(!plan(&req, &link).unwrap().changed);
        req.src = None;
        assert_eq!(
            refusal(plan(&req, &probe(None))),
            "src is required for creating new symlinks"
        );
    }

    #[test]
    fn hard_links_compare_inodes() {
        let mut req = request("hard", None);
        req.src = Some("/t/a");
        let mut there = probe(Some(stat(0o100644, 2)));
        there.src_id = Some("1:7".into());
        assert!(!plan(&req, &there).unwrap().changed);
        there.src_id = Some("1:8".into());
        assert_eq!(
            refusal(plan(&req, &there)),
            "Cannot link, different hard link exists at destination"
        );
        req.force = true;
        assert!(
            plan(&req, &there)
                .unwrap()
                .script
                .contains("ln -f -- /t/a /t/x")
        );
    }

    #[test]
    fn touch_creates_or_only_updates_times() {
        let mut req = request("touch", None);
        req.mtime = Stamp::Now;
        let new = plan(&req, &probe(None)).unwrap();
        assert!(new.changed && new.script.contains(": >> /t/x"));
        let old = plan(&req, &probe(Some(stat(0o100644, 1)))).unwrap();
        assert!(old.changed && !old.script.contains(": >>"));
        assert!(old.script.contains("touch -m --"));
        req.mtime = Stamp::At(1);
        assert!(!plan(&req, &probe(Some(stat(0o100644, 1)))).unwrap().changed);
    }

    #[test]
    fn attribute_lines_quote_names() {
        let ch = AttrChange {
            mode: Some(0o640),
            owner: Some("a b".into()),
            group: None,
        };
        let s = attr_lines("/x", &ch, true, false);
        assert!(s.contains("chmod -- 0640 /x"));
        assert!(s.contains("chown -h -- 'a b' /x"));
    }
}
