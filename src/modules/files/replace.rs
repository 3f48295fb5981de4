//! `replace`: replace every match of a Python regular expression in a file, optionally only
//! between `after` and `before` (ansible-core's replace module: `re.subn` with MULTILINE over
//! the whole text, the section found with DOTALL).

use async_trait::async_trait;

use super::file_params;
use super::lineinfile::{TextEdit, write_edit};
use super::pyre::PyRegex;
use super::remote;
use super::{BUILTIN, Wanted, failed_rc, probe_text};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, arg_bool,
    arg_str, outcome, p, req,
};

static DEF: ModuleDef = ModuleDef {
    name: "replace",
    namespaces: BUILTIN,
    params: file_params![
        alias(req("path", Str), &["dest", "destfile", "name"]),
        req("regexp", Str),
        p("replace", Str),
        p("after", Str),
        p("before", Str),
        p("backup", Bool),
        p("validate", Str),
        p("encoding", Str),
        p("unsafe_writes", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// The new text and how many replacements `re.subn` made, or `Err(msg)` for the message
/// Ansible gives when the before/after section is not found.
pub fn substitute(
    text: &[u8],
    regexp: &str,
    replace: &str,
    after: Option<&str>,
    before: Option<&str>,
) -> Result<Result<(Vec<u8>, usize), String>, String> {
    let section_src = match (after, before) {
        (Some(a), Some(b)) => Some(format!("{a}(?P<subsection>.*?){b}")),
        (Some(a), None) => Some(format!("{a}(?P<subsection>.*)")),
        (None, Some(b)) => Some(format!("(?P<subsection>.*){b}")),
        (None, None) => None,
    };
    let (start, end) = match &section_src {
        Some(src) => {
            let re = PyRegex::new(&format!("(?s){src}"))?;
            let Some(m) = re.captures(text).and_then(|c| c.name("subsection")) else {
                return Ok(Err(format!(
                    "Pattern for before/after params did not match the given file: {src}"
                )));
            };
            (m.start(), m.end())
        }
        None => (0, text.len()),
    };
    let section = &text[start..end];
    let re = PyRegex::new(&format!("(?m){regexp}"))?;
    let mut out = Vec::with_capacity(text.len());
    out.extend_from_slice(&text[..start]);
    let mut last = 0;
    let mut count = 0;
    for caps in re.captures_iter(section) {
        let m = caps.get(0).expect("group 0 always matches");
        out.extend_from_slice(&section[last..m.start()]);
        out.extend(re.expand(&caps, replace.as_bytes())?);
        last = m.end();
        count += 1;
    }
    out.extend_from_slice(&section[last..]);
    out.extend_from_slice(&text[end..]);
    Ok(Ok((out, count)))
}

pub struct Replace;

#[async_trait]
impl Module for Replace {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let path = arg_str(&args, "path").unwrap_or_default().to_string();
        let regexp = arg_str(&args, "regexp").unwrap_or_default();
        let replace = arg_str(&args, "replace").unwrap_or_default();
        let wanted = Wanted::from_args(&args, false)?;
        let validate = arg_str(&args, "validate");
        if let Some(v) = validate
            && !v.contains("%s")
        {
            return Err(ModError::msg(format!("validate must contain %s: {v}")));
        }
        // The regex works on bytes, so any ASCII-compatible encoding behaves alike.
        if let Some(enc) = arg_str(&args, "encoding") {
            let e = enc.to_ascii_lowercase().replace(['-', '_'], "");
            if !matches!(e.as_str(), "utf8" | "ascii" | "latin1" | "iso88591") {
                return Err(ModError::msg(format!(
                    "encoding `{enc}` is not supported (utf-8, ascii and latin-1 are)"
                )));
            }
        }
        let empty = |k| arg_str(&args, k).filter(|s| !s.is_empty());
        let probe = probe_text(ctx, &path).await?;
        match probe.effective(true) {
            Some(st) if st.kind() == remote::Kind::Dir => {
                return Err(failed_rc(format!("Path {path} is a directory !"), 256));
            }
            None => return Err(failed_rc(format!("Path {path} does not exist !"), 257)),
            Some(_) => {}
        }
        let Some(before) = probe.content.clone() else {
            return Err(ModError::msg(format!("{path} is not readable")));
        };
        let (after, count) =
            match substitute(&before, regexp, replace, empty("after"), empty("before"))
                .map_err(ModError::msg)?
            {
                Ok(done) => done,
                Err(msg) => {
                    let mut r = outcome(false);
                    r.insert("rc".into(), 0.into());
                    r.insert("msg".into(), msg.into());
                    return Ok(r);
                }
            };
        let changed = count > 0 && after != before;
        let written = write_edit(
            ctx,
            &TextEdit {
                path: &path,
                probe: &probe,
                before: &before,
                after: &after,
                changed,
                msg: if changed {
                    format!("{count} replacements made")
                } else {
                    String::new()
                },
                wanted: &wanted,
                backup: arg_bool(&args, "backup", false),
                validate,
            },
        )
        .await?;
        let mut r = outcome(written.changed);
        r.insert("rc".into(), 0.into());
        r.insert("msg".into(), written.msg.into());
        if changed && let Some(d) = written.diff {
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
    use super::substitute;

    fn sub(text: &str, re: &str, rep: &str, a: Option<&str>, b: Option<&str>) -> (String, usize) {
        let (out, n) = substitute(text.as_bytes(), re, rep, a, b).unwrap().unwrap();
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn multiline_subn_with_python_templates() {
        // Values from Python: re.subn(re.compile(r, re.M), rep, text).
        assert_eq!(
            sub("a=1\nb=2\na=3\n", r"^a=(\d)$", r"a=\1\1", None, None),
            ("a=11\nb=2\na=33\n".into(), 2)
        );
        assert_eq!(
            sub(
                "host old.example\n",
                r"(?P<h>\w+)\.example",
                r"\g<h>.test",
                None,
                None
            ),
            ("host old.test\n".into(), 1)
        );
        assert_eq!(sub("x\n", "^y", "z", None, None), ("x\n".into(), 0));
        // `$` before each newline, `\n` in the template is a newline.
        assert_eq!(sub("a\nb", "$", ";", None, None), ("a;\nb;".into(), 2));
        assert_eq!(sub("a b", " ", r"\n", None, None), ("a\nb".into(), 1));
    }

    #[test]
    fn after_and_before_limit_the_section() {
        let text = "x=1\n# start\nx=2\n# end\nx=3\n";
        assert_eq!(
            sub(text, "^x=", "y=", Some("# start"), Some("# end")),
            ("x=1\n# start\ny=2\n# end\nx=3\n".into(), 1)
        );
        assert_eq!(
            sub(text, "^x=", "y=", Some("# start"), None),
            ("x=1\n# start\ny=2\n# end\ny=3\n".into(), 2)
        );
        assert_eq!(
            sub(text, "^x=", "y=", None, Some("# end")),
            ("y=1\n# start\ny=2\n# end\nx=3\n".into(), 2)
        );
        let missing = substitute(text.as_bytes(), "x", "y", Some("nope"), None).unwrap();
        assert_eq!(
            missing.unwrap_err(),
            "Pattern for before/after params did not match the given file: nope(?P<subsection>.*)"
        );
    }
}
