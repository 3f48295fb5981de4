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

struct Plan {
    script: String,
    changed: bool,
}

#[async_trait]
impl Module for File {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: FileArgs = typed(&args)?;
        let path = a.path.clone();
        let (recurse, force, follow) = (a.recurse, a.force, a.follow);
        let src = a.src.clone();
        let wanted = Wanted::from_attrs(&a.attrs, false)?;
        let req_state = a.state.as_deref();
        if recurse && req_state.is_some_and(|s| s != "directory") {
            return Err(ModError::msg(
                "recurse option requires state to be 'directory'",
            ));
        }
        if src.is_some() && req_state.is_some_and(|s| s != "link" && s != "hard") {
            return Err(ModError::msg(
                "src option requires state to be 'link' or 'hard'",
            ));
        }

        let probe = remote::probe(
            ctx,
            &path,
            &ProbeOpts {
                follow,
                dir_empty: matches!(req_state, Some("link" | "hard")),
                link_src: src.clone().filter(|_| req_state == Some("link")),
                hard_src: src.clone().filter(|_| req_state == Some("hard")),
                list_tree: recurse,
                ..Default::default()
            },
        )
        .await?;
        let prev = probe.state();
        let state = match req_state {
            Some(s) => s,
            None if prev != "absent" => prev,
            None if recurse => "directory",
            None => "file",
        };
        let mtime = parse_stamp(
            a.modification_time.as_deref(),
            &a.modification_time_format,
            state,
        )?;
        let atime = parse_stamp(a.access_time.as_deref(), &a.access_time_format, state)?;
        let p = remote::sh_path(&probe.path);
        let stamps = |st: Option<&FileStat>, w: &str| -> String {
            let mut s = String::new();
            for (flag, stamp, cur) in [
                ("-m", mtime, st.map(|s| s.mtime)),
                ("-a", atime, st.map(|s| s.atime)),
            ] {
                if let Some(cmd) = touch_args(flag, stamp, cur) {
                    s.push_str(&format!(
                        "e=$({cmd} {w} 2>&1) || {{ _err \"$e\"; exit 0; }}\n"
                    ));
                }
            }
            s
        };
        let stamps_change = |st: Option<&FileStat>| !stamps(st, "x").is_empty();
        let fail = |msg: String, extra: &[(&str, Value)]| -> ModResult {
            let mut result = Outcome::new();
            result.insert("path".into(), path.clone().into());
            for (k, v) in extra {
                result.insert((*k).into(), v.clone());
            }
            Err(ModError::Failed { msg, result })
        };

        let mut r = outcome(false);
        let mut path_key = "path";
        let mut diff_before = Map::new();
        let mut diff_after = Map::new();
        diff_before.insert("path".into(), probe.path.clone().into());
        diff_after.insert("path".into(), probe.path.clone().into());
        if prev != state {
            diff_before.insert("state".into(), prev.into());
            diff_after.insert("state".into(), state.into());
        }
        // Where attributes apply, and the stat they are compared with.
        let mut report_path = probe.path.clone();
        let plan: Plan = match state {
            "absent" => {
                r.insert("state".into(), "absent".into());
                if prev == "absent" {
                    Plan {
                        script: String::new(),
                        changed: false,
                    }
                } else {
                    let cmd = if prev == "directory" {
                        "rm -rf"
                    } else {
                        "rm -f"
                    };
                    Plan {
                        script: format!("e=$({cmd} -- {p} 2>&1) || {{ _err \"$e\"; exit 0; }}\n"),
                        changed: true,
                    }
                }
            }
            "file" => {
                let (target, st) = match (&probe.lstat, follow) {
                    (Some(l), true) if l.kind() == Kind::Link => (
                        probe.lnk_source.clone().unwrap_or_default(),
                        probe.tstat.clone(),
                    ),
                    _ => (probe.path.clone(), probe.lstat.clone()),
                };
                let tstate = match &st {
                    None => "absent",
                    Some(s) if s.kind() == Kind::Dir => "directory",
                    Some(s) if s.kind() == Kind::Link => "link",
                    Some(s) if s.nlink > 1 => "hard",
                    Some(_) => "file",
                };
                if !matches!(tstate, "file" | "hard") {
                    return fail(
                        format!("file ({target}) is {tstate}, cannot continue"),
                        &[("state", tstate.into())],
                    );
                }
                let Some(st) = st else {
                    return fail(format!("cannot read the status of {target}"), &[]);
                };
                let ch = wanted.change_for(&st, probe.umask)?;
                let w = quote(&target);
                report_path = target.clone();
                Plan {
                    changed: !ch.is_empty() || stamps_change(Some(&st)),
                    script: attr_lines(&w, &ch, false, false) + &stamps(Some(&st), &w),
                }
            }
            "directory" => {
                let (target, st) = match (&probe.lstat, follow) {
                    (Some(l), true) if l.kind() == Kind::Link => (
                        probe.lnk_source.clone().unwrap_or_default(),
                        probe.tstat.clone(),
                    ),
                    _ => (probe.path.clone(), probe.lstat.clone()),
                };
                report_path = target.clone();
                let w = quote(&target);
                match st {
                    None => {
                        let ch = wanted.for_new(0o777 & !probe.umask, probe.umask)?;
                        let oct = ch.mode.map(|m| format!("{m:04o}")).unwrap_or_default();
                        let script = format!(
                            "dmode={}\ndown={}\ndgrp={}\n_mkq=1; _mkdirs {w} || exit 0; _mkq=\n{}",
                            if oct.is_empty() { "''".into() } else { oct },
                            ch.owner.as_deref().map(quote).unwrap_or("''".into()),
                            ch.group.as_deref().map(quote).unwrap_or("''".into()),
                            stamps(None, &w)
                        );
                        Plan {
                            script,
                            changed: true,
                        }
                    }
                    Some(st) if st.kind() != Kind::Dir => {
                        let kind = if st.kind() == Kind::Link {
                            "link"
                        } else if st.nlink > 1 {
                            "hard"
                        } else {
                            "file"
                        };
                        return fail(format!("{path} already exists as a {kind}"), &[]);
                    }
                    Some(st) => {
                        let ch = wanted.change_for(&st, probe.umask)?;
                        let mut script = attr_lines(&w, &ch, false, false) + &stamps(Some(&st), &w);
                        let mut changed = !script.is_empty();
                        if recurse {
                            let rch = recursive_change(&probe, &wanted)?;
                            if !rch.is_empty() {
                                changed = true;
                                script.push_str(&recursive_script(&w, &rch, &wanted));
                            }
                            // Timestamps below the directory (explicit times or `now`).
                            for (rel, est) in &probe.tree {
                                let ew = quote(&format!("{target}/{rel}"));
                                let t = stamps(Some(est), &ew);
                                if !t.is_empty() {
                                    changed = true;
                                    script.push_str(&t);
                                }
                            }
                        }
                        Plan { script, changed }
                    }
                }
            }
            "link" => {
                path_key = "dest";
                let src = match (&src, &probe.lnk_target) {
                    (Some(s), _) => Some(s.clone()),
                    (None, Some(t)) if follow => Some(t.clone()),
                    _ => None,
                };
                if let Some(s) = &src
                    && !force
                    && !probe.src_exists
                {
                    let abs = probe.src_abs.clone().unwrap_or_else(|| s.clone());
                    return fail(
                        format!(
                            "src file does not exist, use 'force=yes' if you really want to \
                             create the link: {abs}"
                        ),
                        &[("src", s.clone().into())],
                    );
                }
                match prev {
                    "directory" if !force => {
                        return fail(
                            format!("refusing to convert from directory to symlink for {path}"),
                            &[],
                        );
                    }
                    "directory" if probe.dir_empty == Some(false) => {
                        return fail(
                            format!("the directory {path} is not empty, refusing to convert it"),
                            &[],
                        );
                    }
                    "file" | "hard" if !force => {
                        return fail(
                            format!("refusing to convert from {prev} to symlink for {path}"),
                            &[],
                        );
                    }
                    _ => {}
                }
                let mut script = String::new();
                let changed = match prev {
                    "link" => match &src {
                        Some(s) if probe.lnk_target.as_deref() != Some(s) => {
                            diff_before.insert(
                                "src".into(),
                                probe.lnk_target.clone().unwrap_or_default().into(),
                            );
                            diff_after.insert("src".into(), s.clone().into());
                            true
                        }
                        _ => false,
                    },
                    _ => {
                        if src.is_none() {
                            return fail("src is required for creating new symlinks".into(), &[]);
                        }
                        true
                    }
                };
                if let Some(s) = &src {
                    r.insert("src".into(), s.clone().into());
                }
                if changed {
                    if prev == "directory" {
                        script.push_str(&format!(
                            "e=$(rmdir -- {p} 2>&1) || {{ _err \"$e\"; exit 0; }}\n"
                        ));
                    }
                    script.push_str(&format!(
                        "e=$(ln -sfn -- {} {p} 2>&1) || {{ _err \"Error while linking: $e\"; exit 0; }}\n",
                        quote(src.as_deref().unwrap_or_default())
                    ));
                }
                // Attributes apply to the link's target when following (and it exists).
                let target_stat = if changed { None } else { probe.tstat.clone() };
                let mut attr_changed = false;
                if follow {
                    match target_stat {
                        Some(ts) => {
                            let ch = wanted.change_for(&ts, probe.umask)?;
                            attr_changed = !ch.is_empty();
                            script.push_str(&attr_lines(&p, &ch, false, false));
                        }
                        None if changed => {
                            let ch = AttrChange {
                                mode: match &wanted.mode {
                                    Some(ModeSpec::Octal(m)) => Some(*m),
                                    _ => None,
                                },
                                owner: wanted.owner.clone(),
                                group: wanted.group.clone(),
                            };
                            if !ch.is_empty() {
                                script.push_str(&format!("if [ -e {p} ]; then\n"));
                                script.push_str(&attr_lines(&p, &ch, false, false));
                                script.push_str("fi\n");
                            }
                        }
                        None => {}
                    }
                } else if let Some(ls) = &probe.lstat {
                    let ch = AttrChange {
                        mode: None,
                        ..wanted.change_for(ls, probe.umask)?
                    };
                    attr_changed = !ch.is_empty();
                    script.push_str(&attr_lines(&p, &ch, true, false));
                } else if changed {
                    let ch = AttrChange {
                        mode: None,
                        owner: wanted.owner.clone(),
                        group: wanted.group.clone(),
                    };
                    script.push_str(&attr_lines(&p, &ch, true, false));
                }
                Plan {
                    script,
                    changed: changed || attr_changed,
                }
            }
            "hard" => {
                path_key = "dest";
                if prev != "hard" && src.is_none() {
                    return fail("src is required for creating new hardlinks".into(), &[]);
                }
                if let Some(s) = &src {
                    r.insert("src".into(), s.clone().into());
                    if probe.src_id.is_none() {
                        return fail("src does not exist".into(), &[("src", s.clone().into())]);
                    }
                }
                let same_inode = probe
                    .lstat
                    .as_ref()
                    .is_some_and(|l| Some(format!("{}:{}", l.dev, l.inode)) == probe.src_id);
                let changed = match prev {
                    "absent" => true,
                    "link" => src.is_some() && probe.lnk_target != src,
                    "hard" => {
                        let differs = src.is_some() && !same_inode;
                        if differs && !force {
                            return fail(
                                "Cannot link, different hard link exists at destination".into(),
                                &[],
                            );
                        }
                        differs
                    }
                    "file" => {
                        if !force {
                            return fail("Cannot link, file exists at destination".into(), &[]);
                        }
                        true
                    }
                    _ => {
                        if same_inode {
                            false
                        } else {
                            return fail(
                                "Cannot link: different hard link exists at destination".into(),
                                &[],
                            );
                        }
                    }
                };
                let mut script = String::new();
                if changed {
                    script.push_str(&format!(
                        "e=$(ln -f -- {} {p} 2>&1) || {{ _err \"Error while linking: $e\"; exit 0; }}\n",
                        quote(src.as_deref().unwrap_or_default())
                    ));
                }
                let base = if changed { None } else { probe.lstat.clone() };
                let ch = match &base {
                    Some(st) => wanted.change_for(st, probe.umask)?,
                    None => AttrChange {
                        mode: match &wanted.mode {
                            Some(ModeSpec::Octal(m)) => Some(*m),
                            _ => None,
                        },
                        owner: wanted.owner.clone(),
                        group: wanted.group.clone(),
                    },
                };
                let attr_changed = base.is_some() && !ch.is_empty();
                script.push_str(&attr_lines(&p, &ch, false, false));
                Plan {
                    script,
                    changed: changed || attr_changed,
                }
            }
            _ => {
                // touch
                path_key = "dest";
                let st = probe.effective(follow).cloned();
                let mut script = String::new();
                let created = st.is_none();
                let ch = match &st {
                    None => {
                        script.push_str(&format!(
                            "e=$( (: >> {p}) 2>&1) || {{ _err \"Error, could not touch target: $e\"; exit 0; }}\n"
                        ));
                        wanted.for_new(0o666 & !probe.umask, probe.umask)?
                    }
                    Some(s) => wanted.change_for(s, probe.umask)?,
                };
                script.push_str(&attr_lines(&p, &ch, false, false));
                script.push_str(&stamps(st.as_ref(), &p));
                Plan {
                    changed: created || !ch.is_empty() || stamps_change(st.as_ref()),
                    script,
                }
            }
        };

        r.insert("changed".into(), plan.changed.into());
        r.insert(path_key.into(), report_path.clone().into());
        if ctx.diff && plan.changed {
            let mut d = Map::new();
            d.insert("before".into(), Value::Object(diff_before));
            d.insert("after".into(), Value::Object(diff_after));
            r.insert("diff".into(), Value::Object(d));
        }
        if state == "absent" {
            if plan.changed && !ctx.check_mode {
                remote::run(ctx, remote::script(&[], &plan.script)).await?;
            }
            return Ok(r);
        }
        let final_stat = if plan.changed && !ctx.check_mode && !plan.script.is_empty() {
            let body = format!(
                "{}printf 'lstat=%s\\n' \"$(_st {})\"\n",
                plan.script,
                quote(&report_path)
            );
            let reply = remote::run(ctx, remote::script(&[], &body)).await?;
            reply.stat("lstat")?
        } else if ctx.check_mode && plan.changed {
            // Nothing was changed; report what is there now.
            probe.lstat.clone().filter(|_| report_path == probe.path)
        } else if report_path == probe.path {
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
