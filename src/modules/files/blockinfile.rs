//! `blockinfile`: insert, update or remove a block of lines between two marker lines.
//!
//! The text transformation is a pure function (`edit`) that follows ansible-core's blockinfile
//! step by step: the *last* begin and end markers found delimit the old block, which is removed
//! and replaced in place; without both markers the block goes after the last line matching
//! `insertafter` (before it for `insertbefore`; the whole text is searched when the pattern
//! carries `(?m)`), at `EOF` by default or at `BOF`. Lines are split as Python's
//! `bytes.splitlines(keepends=True)` does (`\n`, `\r\n` and `\r`). The file is then written
//! like lineinfile's (`lineinfile::write_edit`: through links, atomically, backup, validate,
//! mode/owner/group).

use async_trait::async_trait;

use super::file_params;
use super::lineinfile::{TextEdit, write_edit};
use super::pyre::PyRegex;
use super::remote;
use super::{AttrArgs, BUILTIN, Wanted, failed_rc, probe_text};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice,
    outcome, p, req, typed,
};

static DEF: ModuleDef = ModuleDef {
    name: "blockinfile",
    namespaces: BUILTIN,
    params: file_params![
        alias(req("path", Str), &["dest", "destfile", "name"]),
        choice("state", &["present", "absent"]),
        p("marker", Str),
        alias(p("block", Str), &["content"]),
        p("insertafter", Str),
        p("insertbefore", Str),
        p("create", Bool),
        p("backup", Bool),
        p("validate", Str),
        p("marker_begin", Str),
        p("marker_end", Str),
        p("append_newline", Bool),
        p("prepend_newline", Bool),
        p("unsafe_writes", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["insertbefore", "insertafter"]],
    required_one_of: &[],
};

/// What `edit` works with (already validated and defaulted).
pub struct Block<'a> {
    pub present: bool,
    pub block: &'a [u8],
    /// The begin and end marker lines, each ending in `\n`.
    pub marker0: &'a [u8],
    pub marker1: &'a [u8],
    /// `insertafter` after Ansible's defaulting (`EOF` when neither is given).
    pub insertafter: Option<&'a str>,
    pub insertbefore: Option<&'a str>,
    /// The compiled `insertafter` (unless `EOF`) or `insertbefore` (unless `BOF`).
    pub ins_re: Option<&'a PyRegex>,
    pub append_newline: bool,
    pub prepend_newline: bool,
}

/// Python's `bytes.splitlines(keepends=True)`.
pub fn splitlines(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\n' => {
                out.push(data[start..=i].to_vec());
                start = i + 1;
            }
            b'\r' => {
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                out.push(data[start..=i].to_vec());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < data.len() {
        out.push(data[start..].to_vec());
    }
    out
}

/// `marker` with `{mark}` replaced, plus the line separator.
pub fn marker_line(marker: &str, mark: &str) -> Vec<u8> {
    let mut m = marker.replace("{mark}", mark).into_bytes();
    m.push(b'\n');
    m
}

/// The file's new content (`original` is `None` when the file does not exist yet).
pub fn edit(original: Option<&[u8]>, o: &Block<'_>) -> Result<Vec<u8>, String> {
    let text = original.unwrap_or_default();
    let mut lines = splitlines(text);
    let nl: &[u8] = b"\n";
    let blocklines: Vec<Vec<u8>> = if o.present && !o.block.is_empty() {
        let mut b = o.block.to_vec();
        if !b.ends_with(nl) {
            b.push(b'\n');
        }
        let mut v = vec![o.marker0.to_vec()];
        v.extend(splitlines(&b));
        v.push(o.marker1.to_vec());
        v
    } else {
        Vec::new()
    };

    let mut n0 = None;
    let mut n1 = None;
    for (i, l) in lines.iter().enumerate() {
        if l == o.marker0 {
            n0 = Some(i);
        }
        if l == o.marker1 {
            n1 = Some(i);
        }
    }
    let mut at = match (n0, n1) {
        (Some(a), Some(b)) if a < b => {
            lines.drain(a..=b);
            a
        }
        (Some(a), Some(b)) => {
            lines.drain(b..=a);
            b
        }
        _ => match o.ins_re {
            Some(re) => {
                let mut found = None;
                if re.multiline() {
                    if let Some((s, e)) = re.find(text) {
                        let count =
                            |end: usize| text[..end].iter().filter(|b| **b == b'\n').count();
                        if o.insertafter.is_some_and(|s| !s.is_empty()) {
                            found = Some(count(e));
                        } else if o.insertbefore.is_some_and(|s| !s.is_empty()) {
                            found = Some(count(s));
                        }
                    }
                } else {
                    for (i, l) in lines.iter().enumerate() {
                        if re.search(l) {
                            found = Some(i);
                        }
                    }
                }
                match found {
                    None => lines.len(),
                    Some(n) if o.insertafter.is_some() => n + 1,
                    Some(n) => n,
                }
            }
            None if o.insertbefore.is_some() => 0,
            None => lines.len(),
        },
    };

    // A line separator before the block.
    if at > 0 {
        let count = lines.len();
        let prev = lines.get_mut(at - 1).ok_or_else(|| {
            format!(
                "the insertafter pattern matched past the last line (line {at} of {count}): \
                 ansible-core fails here with IndexError"
            )
        })?;
        if !prev.ends_with(nl) {
            prev.push(b'\n');
        }
    }
    if o.prepend_newline && o.present && at != 0 && lines[at - 1] != nl {
        lines.insert(at, nl.to_vec());
        at += 1;
    }
    let after_block = at + blocklines.len();
    lines.splice(at..at, blocklines);
    if o.append_newline && o.present && after_block < lines.len() && lines[after_block] != nl {
        lines.insert(after_block, nl.to_vec());
    }
    Ok(lines.concat())
}

/// Ansible's message for an edit (`None`: nothing changed).
pub fn message(original: Option<&[u8]>, result: &[u8], inserted: bool) -> Option<&'static str> {
    match original {
        Some(o) if o == result => None,
        None => Some("File created"),
        Some(_) if !inserted => Some("Block removed"),
        Some(_) => Some("Block inserted"),
    }
}

/// `blockinfile`'s arguments (see `DEF`), with Ansible's defaults.
#[derive(Debug, serde::Deserialize)]
struct BlockInFileArgs {
    path: String,
    #[serde(default = "present")]
    state: String,
    #[serde(default = "default_marker")]
    marker: String,
    #[serde(default)]
    block: String,
    insertafter: Option<String>,
    insertbefore: Option<String>,
    #[serde(default)]
    create: bool,
    #[serde(default)]
    backup: bool,
    validate: Option<String>,
    #[serde(default = "begin")]
    marker_begin: String,
    #[serde(default = "end")]
    marker_end: String,
    #[serde(default)]
    append_newline: bool,
    #[serde(default)]
    prepend_newline: bool,
    #[serde(flatten)]
    attrs: AttrArgs,
}

fn present() -> String {
    "present".into()
}
fn default_marker() -> String {
    "# {mark} ANSIBLE MANAGED BLOCK".into()
}
fn begin() -> String {
    "BEGIN".into()
}
fn end() -> String {
    "END".into()
}

pub struct BlockInFile;

#[async_trait]
impl Module for BlockInFile {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: BlockInFileArgs = typed(&args)?;
        let path = a.path.clone();
        let present = a.state == "present";
        let wanted = Wanted::from_attrs(&a.attrs, false)?;
        let probe = probe_text(ctx, &path).await?;
        let target = probe.effective(true);
        if target.is_some_and(|s| s.kind() == remote::Kind::Dir) {
            return Err(failed_rc(format!("Path {path} is a directory !"), 256));
        }
        let exists = target.is_some();
        if !exists && !a.create {
            return Err(failed_rc(format!("Path {path} does not exist !"), 257));
        }
        if exists && probe.content.is_none() {
            return Err(ModError::msg(format!("{path} is not readable")));
        }
        let original = if exists { probe.content.clone() } else { None };
        if !present && !exists {
            let mut r = outcome(false);
            r.insert("msg".into(), format!("File {path} not present").into());
            return Ok(r);
        }

        let (mut ins_after, ins_before) = (a.insertafter.as_deref(), a.insertbefore.as_deref());
        if ins_after.is_none() && ins_before.is_none() {
            ins_after = Some("EOF");
        }
        let ins_src = match (ins_after, ins_before) {
            (Some(x), _) if x != "EOF" => Some(x),
            (_, Some(x)) if x != "BOF" => Some(x),
            _ => None,
        };
        let ins_re = ins_src
            .map(PyRegex::new)
            .transpose()
            .map_err(ModError::msg)?;
        let marker0 = marker_line(&a.marker, &a.marker_begin);
        let marker1 = marker_line(&a.marker, &a.marker_end);
        let inserted = present && !a.block.is_empty();
        let result = edit(
            original.as_deref(),
            &Block {
                present,
                block: a.block.as_bytes(),
                marker0: &marker0,
                marker1: &marker1,
                insertafter: ins_after,
                insertbefore: ins_before,
                ins_re: ins_re.as_ref(),
                append_newline: a.append_newline,
                prepend_newline: a.prepend_newline,
            },
        )
        .map_err(ModError::msg)?;
        let msg = message(original.as_deref(), &result, inserted);
        let before = original.clone().unwrap_or_default();
        let written = write_edit(
            ctx,
            &TextEdit {
                path: &path,
                probe: &probe,
                before: &before,
                after: &result,
                changed: msg.is_some(),
                msg: msg.unwrap_or_default().to_string(),
                wanted: &wanted,
                backup: a.backup && exists,
                validate: a.validate.as_deref(),
            },
        )
        .await?;
        let mut r = outcome(written.changed);
        r.insert("msg".into(), written.msg.into());
        if let Some(d) = written.diff {
            r.insert("diff".into(), d);
        }
        if !written.backup_file.is_empty() {
            r.insert("backup_file".into(), written.backup_file.into());
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One blockinfile case on `text` (`None`: no file); `after`/`before` as given by the task.
    #[derive(Default)]
    struct Case<'a> {
        absent: bool,
        block: &'a str,
        after: Option<&'a str>,
        before: Option<&'a str>,
        append: bool,
        prepend: bool,
    }

    fn run(text: Option<&str>, c: Case<'_>) -> Result<String, String> {
        let after = if c.after.is_none() && c.before.is_none() {
            Some("EOF")
        } else {
            c.after
        };
        let src = match (after, c.before) {
            (Some(x), _) if x != "EOF" => Some(x),
            (_, Some(x)) if x != "BOF" => Some(x),
            _ => None,
        };
        let re = src.map(|s| PyRegex::new(s).unwrap());
        let m0 = marker_line("# {mark} ANSIBLE MANAGED BLOCK", "BEGIN");
        let m1 = marker_line("# {mark} ANSIBLE MANAGED BLOCK", "END");
        edit(
            text.map(str::as_bytes),
            &Block {
                present: !c.absent,
                block: c.block.as_bytes(),
                marker0: &m0,
                marker1: &m1,
                insertafter: after,
                insertbefore: c.before,
                ins_re: re.as_ref(),
                append_newline: c.append,
                prepend_newline: c.prepend,
            },
        )
        .map(|v| String::from_utf8(v).unwrap())
    }

    const B: &str = "# BEGIN ANSIBLE MANAGED BLOCK\n";
    const E: &str = "# END ANSIBLE MANAGED BLOCK\n";

    fn blk(body: &str) -> String {
        format!("{B}{body}{E}")
    }

    #[test]
    fn splitlines_like_python() {
        let s = |t: &str| {
            splitlines(t.as_bytes())
                .into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(s("a\nb\r\nc\rd"), ["a\n", "b\r\n", "c\r", "d"]);
        assert_eq!(s(""), Vec::<String>::new());
        assert_eq!(s("\n\n"), ["\n", "\n"]);
    }

    #[test]
    fn inserts_at_eof_and_replaces_in_place() {
        let c = |b| Case {
            block: b,
            ..Default::default()
        };
        assert_eq!(
            run(Some("a\n"), c("x=1")).unwrap(),
            format!("a\n{}", blk("x=1\n"))
        );
        // Missing final newline: one is added before the block.
        assert_eq!(
            run(Some("a"), c("x")).unwrap(),
            format!("a\n{}", blk("x\n"))
        );
        assert_eq!(run(None, c("x\ny\n")).unwrap(), blk("x\ny\n"));
        // An existing block is replaced where it is.
        let text = format!("a\n{}b\n", blk("old\n"));
        assert_eq!(
            run(Some(&text), c("new")).unwrap(),
            format!("a\n{}b\n", blk("new\n"))
        );
        // Same block: same text.
        let same = format!("a\n{}b\n", blk("new\n"));
        assert_eq!(run(Some(&same), c("new")).unwrap(), same);
        // Markers in reverse order: the span between them goes.
        let rev = format!("a\n{E}mid\n{B}b\n");
        assert_eq!(
            run(Some(&rev), c("z")).unwrap(),
            format!("a\n{}b\n", blk("z\n"))
        );
        // Only a begin marker: a new block at EOF, the stray marker stays.
        let half = format!("{B}a\n");
        assert_eq!(
            run(Some(&half), c("z")).unwrap(),
            format!("{B}a\n{}", blk("z\n"))
        );
    }

    #[test]
    fn absent_and_empty_block_remove() {
        let text = format!("a\n{}b\n", blk("old\n"));
        let absent = Case {
            absent: true,
            ..Default::default()
        };
        assert_eq!(run(Some(&text), absent).unwrap(), "a\nb\n");
        // An empty block with state=present removes too.
        assert_eq!(run(Some(&text), Case::default()).unwrap(), "a\nb\n");
        // Nothing to remove, but the last line gains its newline (as in Ansible).
        let absent = Case {
            absent: true,
            ..Default::default()
        };
        assert_eq!(run(Some("a"), absent).unwrap(), "a\n");
    }

    #[test]
    fn insertafter_and_insertbefore() {
        let c = |after, before| Case {
            block: "X",
            after,
            before,
            ..Default::default()
        };
        let text = "#1\na\n#2\nb\n";
        // The last matching line.
        assert_eq!(
            run(Some(text), c(Some("^#"), None)).unwrap(),
            format!("#1\na\n#2\n{}b\n", blk("X\n"))
        );
        assert_eq!(
            run(Some(text), c(None, Some("^#"))).unwrap(),
            format!("#1\na\n{}#2\nb\n", blk("X\n"))
        );
        assert_eq!(
            run(Some(text), c(None, Some("BOF"))).unwrap(),
            format!("{}{text}", blk("X\n"))
        );
        // No match: EOF, for both.
        assert_eq!(
            run(Some(text), c(None, Some("^zz"))).unwrap(),
            format!("{text}{}", blk("X\n"))
        );
        // (?m): the first match in the whole text; the line after its end (or of its start).
        assert_eq!(
            run(Some(text), c(Some("(?m)^#"), None)).unwrap(),
            format!("#1\n{}a\n#2\nb\n", blk("X\n"))
        );
        assert_eq!(
            run(Some("a\nb\nc\n"), c(None, Some("(?m)^b\\nc"))).unwrap(),
            format!("a\n{}b\nc\n", blk("X\n"))
        );
        // A (?m) match ending past the last newline is Ansible's IndexError.
        assert!(run(Some("a\nb\n"), c(Some("(?m)b\\n"), None)).is_err());
    }

    #[test]
    fn newline_padding() {
        let c = Case {
            block: "X",
            after: Some("^a"),
            append: true,
            prepend: true,
            ..Default::default()
        };
        assert_eq!(
            run(Some("a\nb\n"), c).unwrap(),
            format!("a\n\n{}\nb\n", blk("X\n"))
        );
        // Not at the start or end of the file, nor next to an existing blank line.
        let c = Case {
            block: "X",
            before: Some("BOF"),
            append: true,
            prepend: true,
            ..Default::default()
        };
        assert_eq!(
            run(Some("\nb\n"), c).unwrap(),
            format!("{}\nb\n", blk("X\n"))
        );
        let c = Case {
            block: "X",
            append: true,
            prepend: true,
            ..Default::default()
        };
        assert_eq!(
            run(Some("a\n\n"), c).unwrap(),
            format!("a\n\n{}", blk("X\n"))
        );
    }

    #[test]
    fn messages() {
        assert_eq!(message(None, b"", false), Some("File created"));
        assert_eq!(message(Some(b"a"), b"a", true), None);
        assert_eq!(message(Some(b"a"), b"a\n", false), Some("Block removed"));
        assert_eq!(message(Some(b"a"), b"ab", true), Some("Block inserted"));
    }
}
