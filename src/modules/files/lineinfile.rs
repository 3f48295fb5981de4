//! `lineinfile`: ensure a line is present in (or absent from) a text file.
//!
//! The text transformation (`present` / `absent`) is a pure function that follows
//! ansible-core's lineinfile line by line: the *last* match is replaced unless `firstmatch`,
//! `insertafter`/`insertbefore` only apply when `regexp`/`search_string` match nothing, an
//! exact copy of `line` anywhere counts as present, and so on.

use crate::modules::Target;
use async_trait::async_trait;
use serde_json::Value;

use super::file_params;
use super::pyre::PyRegex;
use super::remote::{self, Install, Staged};
use super::{
    AttrArgs, BUILTIN, Wanted, attrs_differ, content_diff, failed_rc, probe_text, validate_command,
};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, alias, choice, outcome, p,
    req, typed,
};

static DEF: ModuleDef = ModuleDef {
    name: "lineinfile",
    namespaces: BUILTIN,
    params: file_params![
        alias(req("path", Str), &["dest", "destfile", "name"]),
        choice("state", &["present", "absent"]),
        alias(p("regexp", Str), &["regex"]),
        p("search_string", Str),
        alias(p("line", Str), &["value"]),
        p("insertafter", Str),
        p("insertbefore", Str),
        p("backrefs", Bool),
        p("create", Bool),
        p("backup", Bool),
        p("firstmatch", Bool),
        p("validate", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[
        &["insertbefore", "insertafter"],
        &["regexp", "search_string"],
        &["backrefs", "search_string"],
    ],
    required_one_of: &[],
};

/// What `present` works with (already validated).
pub struct Present<'a> {
    pub regexp: Option<&'a PyRegex>,
    pub search_string: Option<&'a [u8]>,
    pub line: &'a [u8],
    /// `insertafter`: `EOF` (the default when neither is given), `BOF`, or a regex source.
    pub insertafter: Option<&'a str>,
    pub insertbefore: Option<&'a str>,
    /// The compiled `insertafter`/`insertbefore` regex, when it is one.
    pub ins_re: Option<&'a PyRegex>,
    pub backrefs: bool,
    pub firstmatch: bool,
}

#[derive(Debug, PartialEq)]
pub struct Edit {
    pub content: Vec<u8>,
    pub changed: bool,
    pub msg: String,
    /// Lines removed (`absent`).
    pub found: usize,
}

/// Python's `readlines()`: split after each `\n`, keeping it.
pub fn split_lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// `bytes.rstrip(b'\r\n')`.
fn rstrip_nl(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && (l[end - 1] == b'\n' || l[end - 1] == b'\r') {
        end -= 1;
    }
    &l[..end]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Python truthiness of an optional string argument.
fn truthy(s: Option<&str>) -> bool {
    s.is_some_and(|s| !s.is_empty())
}

pub fn present(data: &[u8], o: &Present<'_>) -> Result<Edit, String> {
    let mut lines = split_lines(data);
    let mut index0: Option<usize> = None;
    let mut index1: Option<usize> = None;
    let mut matched = false;

    if let Some(re) = o.regexp {
        for (i, l) in lines.iter().enumerate() {
            if re.search(l) {
                index0 = Some(i);
                matched = true;
                if o.firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(ss) = o.search_string {
        for (i, l) in lines.iter().enumerate() {
            if contains(l, ss) {
                index0 = Some(i);
                matched = true;
                if o.firstmatch {
                    break;
                }
            }
        }
    }
    if !matched {
        for (i, l) in lines.iter().enumerate() {
            if o.line == rstrip_nl(l) {
                index0 = Some(i);
            } else if let Some(ins) = o.ins_re
                && ins.search(l)
            {
                if truthy(o.insertafter) {
                    index1 = Some(i + 1);
                    if o.firstmatch {
                        break;
                    }
                }
                if truthy(o.insertbefore) {
                    index1 = Some(i);
                    if o.firstmatch {
                        break;
                    }
                }
            }
        }
    }

    let with_nl = |l: &[u8]| {
        let mut v = l.to_vec();
        v.push(b'\n');
        v
    };
    let ends_with_nl = |l: &[u8]| matches!(l.last(), Some(b'\n' | b'\r'));
    let mut msg = "";
    let mut changed = false;

    if let Some(i0) = index0 {
        let mut new_line = match (o.backrefs && matched, o.regexp) {
            (true, Some(re)) => {
                let caps = re
                    .captures(&lines[i0])
                    .ok_or("the regexp stopped matching while expanding backrefs")?;
                re.expand(&caps, o.line)?
            }
            _ => o.line.to_vec(),
        };
        if !new_line.ends_with(b"\n") {
            new_line.push(b'\n');
        }
        // (Ansible has an insert branch here for "no regexp, no match, no exact line", which
        // cannot be reached: without a regexp or search string, index0 comes from an exact
        // line.)
        if lines[i0] != new_line {
            lines[i0] = new_line;
            msg = "line replaced";
            changed = true;
        }
    } else if o.backrefs {
        // Without a match there is nothing to expand the backrefs from: leave the file alone.
    } else if o.insertbefore == Some("BOF") || o.insertafter == Some("BOF") {
        lines.insert(0, with_nl(o.line));
        msg = "line added";
        changed = true;
    } else if o.insertafter == Some("EOF") || index1.is_none() {
        if let Some(last) = lines.last()
            && !ends_with_nl(last)
        {
            lines.push(b"\n".to_vec());
        }
        lines.push(with_nl(o.line));
        msg = "line added";
        changed = true;
    } else if let Some(i1) = index1
        && truthy(o.insertafter)
    {
        if lines.len() == i1 {
            if rstrip_nl(&lines[i1 - 1]) != o.line {
                lines.push(with_nl(o.line));
                msg = "line added";
                changed = true;
            }
        } else if o.line != rstrip_nl(&lines[i1]) {
            lines.insert(i1, with_nl(o.line));
            msg = "line added";
            changed = true;
        }
    } else if let Some(i1) = index1 {
        lines.insert(i1, with_nl(o.line));
        msg = "line added";
        changed = true;
    }
    Ok(Edit {
        content: lines.concat(),
        changed,
        msg: msg.to_string(),
        found: 0,
    })
}

/// Removes every line matching `regexp`, containing `search_string`, or equal to `line`.
pub fn absent(
    data: &[u8],
    regexp: Option<&PyRegex>,
    search_string: Option<&[u8]>,
    line: Option<&[u8]>,
) -> Edit {
    let lines = split_lines(data);
    let total = lines.len();
    let kept: Vec<Vec<u8>> = lines
        .into_iter()
        .filter(|l| {
            let hit = if let Some(re) = regexp {
                re.search(l)
            } else if let Some(ss) = search_string {
                contains(l, ss)
            } else {
                line.is_some_and(|x| x == rstrip_nl(l))
            };
            !hit
        })
        .collect();
    let found = total - kept.len();
    Edit {
        content: kept.concat(),
        changed: found > 0,
        msg: if found > 0 {
            format!("{found} line(s) removed")
        } else {
            String::new()
        },
        found,
    }
}

pub struct LineInFile;

/// `lineinfile`'s arguments (see `DEF`), with Ansible's defaults.
#[derive(Debug, serde::Deserialize)]
struct LineInFileArgs {
    path: String,
    #[serde(default = "state_present")]
    state: String,
    regexp: Option<String>,
    search_string: Option<String>,
    line: Option<String>,
    insertafter: Option<String>,
    insertbefore: Option<String>,
    #[serde(default)]
    backrefs: bool,
    #[serde(default)]
    create: bool,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    firstmatch: bool,
    validate: Option<String>,
    #[serde(flatten)]
    attrs: AttrArgs,
}

fn state_present() -> String {
    "present".into()
}

/// The arguments checked and compiled, before the host is touched.
struct Checked {
    regexp: Option<PyRegex>,
    /// `insertafter`/`insertbefore` compiled, when it is a regex (not BOF/EOF).
    ins_re: Option<PyRegex>,
    /// `insertafter` with Ansible's default (`EOF` when neither is given for `present`).
    insertafter: Option<String>,
    wanted: Wanted,
    warnings: Vec<Value>,
}

fn check_args(a: &LineInFileArgs) -> Result<Checked, ModError> {
    let regexp = a
        .regexp
        .as_deref()
        .map(PyRegex::new)
        .transpose()
        .map_err(ModError::msg)?;
    if let Some(v) = a.validate.as_deref()
        && !v.contains("%s")
    {
        return Err(ModError::msg(format!("validate must contain %s: {v}")));
    }
    let mut warnings = Vec::new();
    if regexp.as_ref().is_some_and(|r| r.source.is_empty())
        || a.search_string.as_deref() == Some("")
    {
        warnings.push(Value::String(
            "An empty regexp or search_string matches every line in the file; the last line \
             would be replaced rather than a line appended. Use '^' to match every line on \
             purpose."
                .into(),
        ));
    }
    let mut insertafter = a.insertafter.clone();
    let mut ins_re = None;
    if a.state == "present" {
        if a.backrefs && regexp.is_none() {
            return Err(ModError::msg("regexp is required with backrefs=true"));
        }
        if a.line.is_none() {
            return Err(ModError::msg("line is required with state=present"));
        }
        if insertafter.is_none() && a.insertbefore.is_none() {
            insertafter = Some("EOF".into());
        }
        let ins_src = match (insertafter.as_deref(), a.insertbefore.as_deref()) {
            (Some(x), _) if x != "BOF" && x != "EOF" => Some(x),
            (None, Some(b)) if b != "BOF" => Some(b),
            _ => None,
        };
        ins_re = ins_src
            .map(PyRegex::new)
            .transpose()
            .map_err(ModError::msg)?;
    } else if regexp.is_none() && a.search_string.is_none() && a.line.is_none() {
        return Err(ModError::msg(
            "one of line, search_string, or regexp is required with state=absent",
        ));
    }
    Ok(Checked {
        regexp,
        ins_re,
        insertafter,
        wanted: Wanted::from_attrs(&a.attrs, false)?,
        warnings,
    })
}

/// The edit to make, from the checked arguments and what the probe found; None when the file
/// to remove lines from is not there. A pure function.
fn plan(a: &LineInFileArgs, c: &Checked, probe: &remote::Probe) -> Result<Option<Edit>, ModError> {
    let path = &a.path;
    let target = probe.effective(true);
    if target.is_some_and(|s| s.kind() == remote::Kind::Dir) {
        return Err(failed_rc(format!("Path {path} is a directory !"), 256));
    }
    let exists = target.is_some();
    if exists && probe.content.is_none() {
        return Err(ModError::msg(format!("{path} is not readable")));
    }
    let before = probe.content.as_deref().unwrap_or_default();
    let search_string = a.search_string.as_deref().map(str::as_bytes);
    if a.state != "present" {
        return Ok(exists.then(|| {
            absent(
                before,
                c.regexp.as_ref(),
                search_string,
                a.line.as_deref().map(str::as_bytes),
            )
        }));
    }
    if !exists && !a.create {
        return Err(failed_rc(
            format!("Destination {path} does not exist !"),
            257,
        ));
    }
    present(
        before,
        &Present {
            regexp: c.regexp.as_ref(),
            search_string,
            line: a.line.as_deref().unwrap_or_default().as_bytes(),
            insertafter: c.insertafter.as_deref(),
            insertbefore: a.insertbefore.as_deref(),
            ins_re: c.ins_re.as_ref(),
            backrefs: a.backrefs,
            firstmatch: a.firstmatch,
        },
    )
    .map(Some)
    .map_err(ModError::msg)
}

#[async_trait]
impl Module for LineInFile {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: LineInFileArgs = typed(&args)?;
        let checked = check_args(&a)?;
        let probe = probe_text(ctx, &a.path).await?;
        let Some(edit) = plan(&a, &checked, &probe)? else {
            let mut r = outcome(false);
            r.insert("msg".into(), "file not present".into());
            return Ok(r);
        };
        let written = write_edit(
            ctx,
            &TextEdit {
                path: &a.path,
                probe: &probe,
                before: probe.content.as_deref().unwrap_or_default(),
                after: &edit.content,
                changed: edit.changed,
                msg: edit.msg.clone(),
                wanted: &checked.wanted,
                backup: a.backup,
                validate: a.validate.as_deref(),
            },
        )
        .await?;
        let mut r = outcome(written.changed);
        if let Some(d) = written.diff {
            r.insert("diff".into(), d);
        }
        if !checked.warnings.is_empty() {
            r.insert("warnings".into(), Value::Array(checked.warnings));
        }
        r.insert("msg".into(), written.msg.into());
        r.insert("backup".into(), written.backup_file.clone().into());
        if !written.backup_file.is_empty() {
            r.insert("backup_file".into(), written.backup_file.into());
        }
        if a.state == "absent" {
            r.insert("found".into(), edit.found.into());
        }
        Ok(r)
    }
}

/// A text file's new content, for `write_edit`.
pub(super) struct TextEdit<'a> {
    pub path: &'a str,
    pub probe: &'a remote::Probe,
    pub before: &'a [u8],
    pub after: &'a [u8],
    pub changed: bool,
    pub msg: String,
    pub wanted: &'a Wanted,
    pub backup: bool,
    pub validate: Option<&'a str>,
}

/// What `write_edit` did.
pub(super) struct Written {
    pub changed: bool,
    pub msg: String,
    pub backup_file: String,
    pub diff: Option<Value>,
}

/// Writes an edited text file as lineinfile and replace do (through the link, with backup and
/// validate, keeping its owner), then applies `mode`/`owner`/`group`; nothing is written in
/// check mode. `msg` gains Ansible's "ownership, perms or SE linux context changed".
pub(super) async fn write_edit(ctx: &ModuleCtx<'_>, e: &TextEdit<'_>) -> Result<Written, ModError> {
    let (path, probe, wanted) = (e.path, e.probe, e.wanted);
    let target = probe.effective(true);
    // Writes go to the link's target, like Ansible's `os.path.realpath(dest)`.
    let real = probe
        .lnk_source
        .clone()
        .unwrap_or_else(|| probe.path.clone());
    let mut msg = e.msg.clone();
    let mut backup_file = String::new();
    let mut changed = e.changed;
    let diff = ctx.diff.then(|| {
        let header = format!("{path} (content)");
        content_diff(
            &header,
            Some(e.before),
            e.before.len() as u64,
            &header,
            Some(e.after),
            e.after.len() as u64,
        )
    });
    if e.changed && !ctx.check_mode {
        let conn = ctx.connection().await?;
        let direct = ctx.become_.is_none() && probe.parent_exists;
        let tmp = remote::tmp_beside(&real);
        let (upload, staged) = if direct {
            (tmp.clone(), Staged::InPlace)
        } else {
            let up = remote::tmp_staging();
            (up.clone(), Staged::Moved(up))
        };
        conn.put_bytes(e.after, &upload, Some(0o600)).await?;
        let base = target.map(|s| s.perm());
        let attrs = match target {
            Some(st) => wanted.change_for(st, probe.umask)?,
            None => wanted.for_new(0o666 & !probe.umask, probe.umask)?,
        };
        let installed = remote::install(
            ctx,
            &Install {
                dest: real.clone(),
                tmp: tmp.clone(),
                staged,
                base_mode: base,
                keep_owner: target.map(|s| format!("{}:{}", s.uid, s.gid)),
                attrs,
                backup: e.backup,
                validate: e.validate.map(|v| validate_command(v, &tmp)).transpose()?,
                make_parents: !probe.parent_exists,
                dir_mode: None,
            },
        )
        .await?;
        if let Some(b) = installed.backup_file {
            backup_file = b;
        }
        if let Some(pre) = &installed.before_attrs
            && attrs_differ(pre, &installed.stat)
        {
            msg = join_msg(&msg, changed);
            changed = true;
        }
    } else if let Some(st) = target {
        let ch = wanted.change_for(st, probe.umask)?;
        if !ch.is_empty() {
            msg = join_msg(&msg, changed);
            changed = true;
            if !ctx.check_mode {
                remote::apply_attrs(ctx, &real, &ch, false).await?;
            }
        }
    }
    Ok(Written {
        changed,
        msg,
        backup_file,
        diff,
    })
}

fn join_msg(msg: &str, changed: bool) -> String {
    let mut m = msg.to_string();
    if changed {
        m.push_str(" and ");
    }
    m.push_str("ownership, perms or SE linux context changed");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: serde_json::Value) -> LineInFileArgs {
        let normalized =
            crate::modules::normalize_args(&DEF, v.as_object().unwrap().clone()).unwrap();
        typed(&normalized).unwrap()
    }

    fn message(e: ModError) -> String {
        match e {
            ModError::Failed { msg, .. } => msg,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arguments_are_refused_before_the_host_is_touched() {
        let refused = |v| message(check_args(&args(v)).err().expect("refused"));
        assert_eq!(
            refused(serde_json::json!({"path": "/f", "backrefs": true, "line": "x"})),
            "regexp is required with backrefs=true"
        );
        assert_eq!(
            refused(serde_json::json!({"path": "/f"})),
            "line is required with state=present"
        );
        assert_eq!(
            refused(serde_json::json!({"path": "/f", "state": "absent"})),
            "one of line, search_string, or regexp is required with state=absent"
        );
        assert_eq!(
            refused(serde_json::json!({"path": "/f", "line": "x", "validate": "visudo"})),
            "validate must contain %s: visudo"
        );
        let c = check_args(&args(
            serde_json::json!({"path": "/f", "line": "x", "regexp": ""}),
        ))
        .unwrap();
        assert_eq!(c.insertafter.as_deref(), Some("EOF"));
        assert_eq!(c.warnings.len(), 1);
        let c = check_args(&args(
            serde_json::json!({"path": "/f", "line": "x", "insertbefore": "^b"}),
        ))
        .unwrap();
        assert_eq!((c.insertafter, c.ins_re.is_some()), (None, true));
    }

    #[test]
    fn plan_follows_what_the_probe_found() {
        let file = |content: Option<&str>| remote::Probe {
            path: "/f".into(),
            lstat: content.map(|_| {
                remote::FileStat::parse("81a4 0 0 2 1 1 1 7 1 1 0 4096 0 0 root root")
                    .expect("a stat line")
            }),
            content: content.map(|c| c.as_bytes().to_vec()),
            ..remote::Probe::default()
        };
        let present = args(serde_json::json!({"path": "/f", "line": "b"}));
        let c = check_args(&present).unwrap();
        let e = plan(&present, &c, &file(Some("a\n"))).unwrap().unwrap();
        assert_eq!((e.content.as_slice(), e.changed), (&b"a\nb\n"[..], true));
        let e = plan(&present, &c, &file(Some("a\nb\n"))).unwrap().unwrap();
        assert!(!e.changed);
        assert_eq!(
            message(plan(&present, &c, &file(None)).unwrap_err()),
            "Destination /f does not exist !"
        );
        let absent = args(serde_json::json!({"path": "/f", "line": "b", "state": "absent"}));
        let c = check_args(&absent).unwrap();
        assert!(plan(&absent, &c, &file(None)).unwrap().is_none());
        let e = plan(&absent, &c, &file(Some("a\nb\n"))).unwrap().unwrap();
        assert_eq!((e.content.as_slice(), e.found), (&b"a\n"[..], 1));
    }

    /// One lineinfile case: (file content, options) → (new content, changed).
    #[derive(Default)]
    struct Case<'a> {
        regexp: Option<&'a str>,
        search: Option<&'a str>,
        line: &'a str,
        after: Option<&'a str>,
        before: Option<&'a str>,
        backrefs: bool,
        firstmatch: bool,
    }

    fn run(data: &str, c: Case<'_>) -> (String, bool, String) {
        let re = c.regexp.map(|r| PyRegex::new(r).unwrap());
        let after = if c.after.is_none() && c.before.is_none() {
            Some("EOF")
        } else {
            c.after
        };
        let ins_src = match (after, c.before) {
            (Some(a), _) if a != "BOF" && a != "EOF" => Some(a),
            (None, Some(b)) if b != "BOF" => Some(b),
            _ => None,
        };
        let ins = ins_src.map(|s| PyRegex::new(s).unwrap());
        let e = present(
            data.as_bytes(),
            &Present {
                regexp: re.as_ref(),
                search_string: c.search.map(str::as_bytes),
                line: c.line.as_bytes(),
                insertafter: after,
                insertbefore: c.before,
                ins_re: ins.as_ref(),
                backrefs: c.backrefs,
                firstmatch: c.firstmatch,
            },
        )
        .unwrap();
        (String::from_utf8(e.content).unwrap(), e.changed, e.msg)
    }

    #[test]
    fn appends_at_eof_by_default_and_is_idempotent() {
        let c = || Case {
            line: "c",
            ..Default::default()
        };
        assert_eq!(
            run("a\nb\n", c()),
            ("a\nb\nc\n".into(), true, "line added".into())
        );
        assert!(!run("a\nb\nc\n", c()).1);
        // A line already present anywhere counts.
        assert!(!run("c\na\n", c()).1);
        // Missing final newline: one is added before the new line.
        assert_eq!(run("a", c()).0, "a\nc\n");
        assert_eq!(run("", c()).0, "c\n");
    }

    #[test]
    fn exact_line_without_newline_at_eof_gets_one() {
        let (out, changed, msg) = run(
            "a\nc",
            Case {
                line: "c",
                ..Default::default()
            },
        );
        assert_eq!(
            (out.as_str(), changed, msg.as_str()),
            ("a\nc\n", true, "line replaced")
        );
    }

    #[test]
    fn regexp_replaces_the_last_match() {
        let c = |first| Case {
            regexp: Some("^port="),
            line: "port=22",
            firstmatch: first,
            ..Default::default()
        };
        assert_eq!(
            run("port=1\nx\nport=2\n", c(false)).0,
            "port=1\nx\nport=22\n"
        );
        assert_eq!(
            run("port=1\nx\nport=2\n", c(true)).0,
            "port=22\nx\nport=2\n"
        );
        assert!(!run("port=22\n", c(false)).1);
        // No match: appended at EOF.
        assert_eq!(run("x\n", c(false)).0, "x\nport=22\n");
    }

    #[test]
    fn regexp_match_wins_over_insertafter() {
        let (out, ..) = run(
            "a=1\n[sec]\nb=2\n",
            Case {
                regexp: "^a=".into(),
                line: "a=9",
                after: Some(r"^\[sec\]"),
                ..Default::default()
            },
        );
        assert_eq!(out, "a=9\n[sec]\nb=2\n");
    }

    #[test]
    fn insertafter_regex() {
        let c = |first| Case {
            line: "new",
            after: Some("^#"),
            firstmatch: first,
            ..Default::default()
        };
        assert_eq!(run("#1\nx\n#2\ny\n", c(false)).0, "#1\nx\n#2\nnew\ny\n");
        assert_eq!(run("#1\nx\n#2\ny\n", c(true)).0, "#1\nnew\nx\n#2\ny\n");
        // Anchor on the last line.
        assert_eq!(run("x\n#1\n", c(false)).0, "x\n#1\nnew\n");
        // Anchor not found: EOF.
        assert_eq!(run("x\n", c(false)).0, "x\nnew\n");
        // The line after the anchor already is the line (but the line is also "present").
        assert!(!run("#1\nnew\n", c(false)).1);
    }

    #[test]
    fn insertbefore_regex_and_bof() {
        let c = |before: &'static str, first| Case {
            line: "new",
            before: Some(before),
            firstmatch: first,
            ..Default::default()
        };
        assert_eq!(
            run("a\n#1\nb\n#2\n", c("^#", false)).0,
            "a\n#1\nb\nnew\n#2\n"
        );
        assert_eq!(
            run("a\n#1\nb\n#2\n", c("^#", true)).0,
            "a\nnew\n#1\nb\n#2\n"
        );
        assert_eq!(run("#1\n", c("^#", false)).0, "new\n#1\n");
        assert_eq!(run("a\nb\n", c("BOF", false)).0, "new\na\nb\n");
        assert_eq!(run("a\nb\n", c("^zzz", false)).0, "a\nb\nnew\n");
        // insertbefore=EOF is not a keyword in Ansible: it is a regex that matches "EOF".
        assert_eq!(
            run("a\nEOF here\n", c("EOF", false)).0,
            "a\nnew\nEOF here\n"
        );
        let (out, ..) = run(
            "a\n",
            Case {
                line: "new",
                after: Some("BOF"),
                ..Default::default()
            },
        );
        assert_eq!(out, "new\na\n");
    }

    #[test]
    fn backrefs() {
        let c = |line| Case {
            regexp: Some(r"^(\s*)#?\s*Port\s+(\d+)$"),
            line,
            backrefs: true,
            ..Default::default()
        };
        assert_eq!(run("  #Port 22\n", c(r"\1Port 2222")).0, "  Port 2222\n");
        // No match with backrefs: nothing happens (not even an append).
        assert_eq!(
            run("x\n", c(r"\1Port 2222")),
            ("x\n".into(), false, "".into())
        );
        // Named and \g<0> references.
        let (out, ..) = run(
            "key = value\n",
            Case {
                regexp: Some(r"^(?P<k>\w+) = (?P<v>.*)$"),
                line: r"\g<v>=\g<k>",
                backrefs: true,
                ..Default::default()
            },
        );
        assert_eq!(out, "value=key\n");
        // Without backrefs, `\1` is literal text.
        let (out, ..) = run(
            "a=1\n",
            Case {
                regexp: Some("^a="),
                line: r"a=\1",
                ..Default::default()
            },
        );
        assert_eq!(out, "a=\\1\n");
    }

    #[test]
    fn search_string_is_literal() {
        let c = Case {
            search: Some("a.b["),
            line: "x",
            ..Default::default()
        };
        assert_eq!(run("1\nza.b[z\n2\n", c).0, "1\nx\n2\n");
        let c = Case {
            search: Some("a.b["),
            line: "x",
            ..Default::default()
        };
        assert_eq!(run("axb\n", c).0, "axb\nx\n");
    }

    #[test]
    fn crlf_lines() {
        // An exact match ignores \r\n but the replacement compares raw bytes (Ansible).
        let (out, changed, _) = run(
            "a\r\nb\r\n",
            Case {
                line: "b",
                ..Default::default()
            },
        );
        assert_eq!((out.as_str(), changed), ("a\r\nb\n", true));
        // A file ending in \r (old Mac) does not get an extra newline before the append.
        assert_eq!(
            run(
                "a\r",
                Case {
                    line: "z",
                    ..Default::default()
                }
            )
            .0,
            "a\rz\n"
        );
    }

    #[test]
    fn absent_removes_every_match() {
        let re = PyRegex::new("^#").unwrap();
        let e = absent(b"#a\nb\n#c\n", Some(&re), None, None);
        assert_eq!(
            (e.content.as_slice(), e.found, e.msg.as_str()),
            (&b"b\n"[..], 2, "2 line(s) removed")
        );
        let e = absent(b"b\nb\r\nbb\n", None, None, Some(b"b"));
        assert_eq!((e.content.as_slice(), e.found), (&b"bb\n"[..], 2));
        let e = absent(b"xay\nz\n", None, Some(b"a"), None);
        assert_eq!(e.content, b"z\n");
        let e = absent(b"z\n", None, None, Some(b"q"));
        assert!(!e.changed && e.msg.is_empty());
    }
}
