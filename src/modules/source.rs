//! The controller half of copy/template, shared by the POSIX modules (`copy`, `template`) and
//! the Windows ones (`win_copy`, `win_template`): where the new content comes from (inline
//! `content`, a file or directory found beside the playbook, a template rendered here, or a path
//! on the target), its checksum, the "must it be written?" decision, and the `--diff` sides.
//! Only the probing and writing of the destination differ per family of host.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Args, ModError, ModuleCtx, arg_bool, arg_str};

/// Diffs of files larger than this are not shown (the file is still compared by checksum).
pub const MAX_DIFF_BYTES: u64 = 1024 * 1024;

/// Where new content comes from.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Vec<u8>),
    /// A controller file (streamed by the connection).
    Local(PathBuf),
    /// A file on the target itself (`remote_src`).
    Remote(String),
}

impl Content {
    /// SHA-1 (Ansible's `checksum`) and size of controller-side content; None for `Remote`.
    pub fn digest(&self) -> Result<Option<(String, u64)>, ModError> {
        match self {
            Content::Bytes(b) => Ok(Some((sha1_hex(b), b.len() as u64))),
            Content::Local(p) => {
                let sum = sha1_file(p)
                    .map_err(|e| ModError::msg(format!("cannot read {}: {e}", p.display())))?;
                let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                Ok(Some((sum, size)))
            }
            Content::Remote(_) => Ok(None),
        }
    }

    /// The new content for a `--diff` (None when it is on the target or too large to show).
    pub fn diff_bytes(&self, size: u64) -> Option<Vec<u8>> {
        match self {
            Content::Bytes(b) => Some(b.clone()),
            Content::Local(p) if size <= MAX_DIFF_BYTES => std::fs::read(p).ok(),
            _ => None,
        }
    }
}

/// What a copy task's `content`/`src`/`remote_src` name, resolved on the controller.
#[derive(Debug)]
pub enum CopySource {
    /// Inline `content` (a mapping or list is written as JSON, like Ansible).
    Inline(Vec<u8>),
    /// A controller file: its path, base name and content (decrypted when it is a vault and
    /// `decrypt` is on, as Ansible's copy does by default).
    File {
        path: PathBuf,
        name: String,
        content: Content,
    },
    /// A controller directory; `trailing`: `src` ended with a separator (copy its contents);
    /// `decrypt`: vault-encrypted files in it are decrypted.
    Dir {
        path: PathBuf,
        trailing: bool,
        decrypt: bool,
    },
    /// `remote_src: true`: a path on the target, as given.
    Remote(String),
}

/// Resolves a copy task's source. `seps` are the separators that mark "a directory's contents"
/// at the end of `src` (`/` on the controller; Windows users also write `\`).
pub fn copy_source(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    seps: &[char],
) -> Result<CopySource, ModError> {
    if let Some(content) = args.get("content").filter(|v| !v.is_null()) {
        return Ok(CopySource::Inline(
            crate::value::arg_text(content).into_bytes(),
        ));
    }
    let src = arg_str(args, "src").unwrap_or_default();
    if src.is_empty() {
        return Err(ModError::msg("src (or content) is required"));
    }
    if arg_bool(args, "remote_src", false) {
        return Ok(CopySource::Remote(src.to_string()));
    }
    let trailing = src.ends_with(seps);
    let decrypt = arg_bool(args, "decrypt", true);
    let found = ctx.find_local(src.trim_end_matches(seps), "files")?;
    if found.is_dir() {
        return Ok(CopySource::Dir {
            path: found,
            trailing,
            decrypt,
        });
    }
    Ok(CopySource::File {
        name: file_name(&found),
        content: local_content(&found, decrypt)?.0,
        path: found,
    })
}

/// A controller file as content to upload, with its SHA-1 and size: the plaintext of a
/// vault-encrypted file when `decrypt` (Ansible's copy default), else the file as it is.
pub fn local_content(path: &Path, decrypt: bool) -> Result<(Content, String, u64), ModError> {
    if decrypt && crate::vault::is_vault_file(path) {
        let (plain, _) = crate::vault::read(path).map_err(|d| ModError::msg(d.message))?;
        let (sum, size) = (sha1_hex(&plain), plain.len() as u64);
        return Ok((Content::Bytes(plain), sum, size));
    }
    let sum = sha1_file(path).map_err(|e| ModError::msg(format!("{}: {e}", path.display())))?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok((Content::Local(path.to_path_buf()), sum, size))
}

/// A template rendered on the controller: its text with the newline sequence applied, and the
/// template file it came from.
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub path: PathBuf,
    pub name: String,
}

/// `newline_sequence` as Ansible accepts it (the real characters or their escapes).
pub fn newline_sequence(
    arg: Option<&str>,
    default: &'static str,
) -> Result<&'static str, ModError> {
    match arg.unwrap_or(default) {
        "\n" | "\\n" => Ok("\n"),
        "\r\n" | "\\r\\n" => Ok("\r\n"),
        "\r" | "\\r" => Ok("\r"),
        other => Err(ModError::msg(format!(
            "newline_sequence must be one of \\n, \\r, \\r\\n; got {other:?}"
        ))),
    }
}

/// Renders `src` (found under `templates/`) with the task's variables; `default_newline` is
/// the family's default `newline_sequence` (`\n` for `template`, `\r\n` for `win_template`).
pub fn render_template(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    default_newline: &'static str,
) -> Result<Rendered, ModError> {
    let nl = newline_sequence(arg_str(args, "newline_sequence"), default_newline)?;
    let src = arg_str(args, "src").unwrap_or_default();
    if src.is_empty() {
        return Err(ModError::msg("src and dest are required"));
    }
    let found = ctx.find_local(src, "templates")?;
    let text = ctx
        .templar
        .render_file(&found, ctx.vars)
        .map_err(|e| ModError::msg(format!("{}: {e}", ctx.task)))?;
    Ok(Rendered {
        bytes: apply_newlines(&text, nl).into_bytes(),
        name: file_name(&found),
        path: found,
    })
}

/// Rewrites every line ending (`\r\n` or `\n`) as `nl`.
pub fn apply_newlines(text: &str, nl: &str) -> String {
    if nl == "\n" {
        return text.to_string();
    }
    text.replace("\r\n", "\n").replace('\n', nl)
}

/// Must the destination be written?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It exists and `force: no`: leave it whatever it holds.
    KeepExisting,
    /// It already holds the content.
    Same,
    /// Write the content.
    Write,
}

/// The one copy decision: `dest_checksum` is the destination's SHA-1 when it is a regular file
/// that may be compared (None when missing, or not comparable).
pub fn decide(
    dest_exists: bool,
    dest_checksum: Option<&str>,
    src_checksum: &str,
    force: bool,
) -> Decision {
    if dest_exists && !force {
        Decision::KeepExisting
    } else if dest_checksum == Some(src_checksum) {
        Decision::Same
    } else {
        Decision::Write
    }
}

/// For `mixop check`: the controller folder a module's literal `src` is looked up in, and how
/// to name it in the error, or None when the module has no controller-side `src` (or the task
/// says `remote_src`).
pub fn local_source(module: &str, args: &Args) -> Option<(&'static str, &'static str)> {
    match module {
        "template" => Some(("templates", "template source")),
        "win_template" => Some(("templates", "win_template source")),
        "copy" | "win_copy" if !arg_bool(args, "remote_src", false) => Some((
            "files",
            if module == "copy" {
                "copy source"
            } else {
                "win_copy source"
            },
        )),
        _ => None,
    }
}

/// Text for a `--diff` side, or the marker Ansible's callback understands when the content is
/// binary (`*_binary`) or too large (`*_larger`).
fn diff_side(diff: &mut Map<String, Value>, side: &str, data: Option<&[u8]>, size: u64) {
    let marker = if side == "before" { "dst" } else { "src" };
    match data {
        _ if size > MAX_DIFF_BYTES => {
            diff.insert(format!("{marker}_larger"), MAX_DIFF_BYTES.into());
        }
        Some(d) if d.contains(&0) || std::str::from_utf8(d).is_err() => {
            diff.insert(format!("{marker}_binary"), 1.into());
        }
        Some(d) => {
            diff.insert(side.into(), String::from_utf8_lossy(d).into_owned().into());
        }
        None => {
            diff.insert(side.into(), "".into());
        }
    }
}

/// A content diff (`before`/`after` with headers), Ansible-shaped.
pub fn content_diff(
    before_header: &str,
    before: Option<&[u8]>,
    before_size: u64,
    after_header: &str,
    after: Option<&[u8]>,
    after_size: u64,
) -> Value {
    let mut d = Map::new();
    d.insert("before_header".into(), before_header.into());
    d.insert("after_header".into(), after_header.into());
    diff_side(&mut d, "before", before, before_size);
    diff_side(&mut d, "after", after, after_size);
    Value::Object(d)
}

/// SHA-1 of bytes, hex, as Ansible's `checksum`.
pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(data))
}

/// SHA-1 of a controller file, streamed.
pub fn sha1_file(path: &Path) -> std::io::Result<String> {
    use sha1::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha1::Sha1::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A controller directory, walked with symlinks followed (Ansible's `local_follow: true`).
#[derive(Debug, Default)]
pub struct LocalTree {
    /// Relative paths, `/`-separated, parents before children.
    pub dirs: Vec<String>,
    /// relative path → (content, sha1, permission bits, size); see [`local_content`].
    pub files: BTreeMap<String, (Content, String, u32, u64)>,
}

pub fn walk_local(root: &Path, decrypt: bool) -> Result<LocalTree, ModError> {
    fn walk(
        dir: &Path,
        rel: &str,
        tree: &mut LocalTree,
        seen: &mut HashSet<PathBuf>,
        decrypt: bool,
    ) -> Result<(), ModError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |e: std::io::Error| ModError::msg(format!("{}: {e}", dir.display()));
        // Guard against symlink loops.
        let canon = dir.canonicalize().map_err(err)?;
        if !seen.insert(canon) {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let path = e.path();
            let meta = std::fs::metadata(&path)
                .map_err(|e| ModError::msg(format!("{}: {e}", path.display())))?;
            if meta.is_dir() {
                tree.dirs.push(r.clone());
                walk(&path, &r, tree, seen, decrypt)?;
            } else if meta.is_file() {
                let (content, sum, size) = local_content(&path, decrypt)?;
                tree.files
                    .insert(r, (content, sum, meta.permissions().mode() & 0o7777, size));
            }
        }
        Ok(())
    }
    let mut tree = LocalTree::default();
    walk(root, "", &mut tree, &mut HashSet::new(), decrypt)?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(decide(true, Some("a"), "a", false), Decision::KeepExisting);
        assert_eq!(decide(true, Some("a"), "b", false), Decision::KeepExisting);
        assert_eq!(decide(true, Some("a"), "a", true), Decision::Same);
        assert_eq!(decide(true, Some("a"), "b", true), Decision::Write);
        assert_eq!(decide(false, None, "b", false), Decision::Write);
        // Exists but not comparable (a symlink without follow, a directory): written.
        assert_eq!(decide(true, None, "b", true), Decision::Write);
    }

    #[test]
    fn newlines() {
        assert_eq!(newline_sequence(None, "\r\n").unwrap(), "\r\n");
        assert_eq!(newline_sequence(Some("\\n"), "\r\n").unwrap(), "\n");
        assert_eq!(newline_sequence(Some("\r"), "\n").unwrap(), "\r");
        assert!(newline_sequence(Some("x"), "\n").is_err());
        assert_eq!(apply_newlines("a\nb\r\nc", "\r\n"), "a\r\nb\r\nc");
        assert_eq!(apply_newlines("a\nb\r\n", "\r"), "a\rb\r");
        assert_eq!(apply_newlines("a\r\nb", "\n"), "a\r\nb");
    }

    #[test]
    fn local_sources_for_check() {
        let args = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            local_source("win_copy", &args(serde_json::json!({"src": "a"}))),
            Some(("files", "win_copy source"))
        );
        assert_eq!(
            local_source(
                "win_copy",
                &args(serde_json::json!({"src": "a", "remote_src": "yes"}))
            ),
            None
        );
        assert_eq!(
            local_source("win_template", &args(serde_json::json!({}))),
            Some(("templates", "win_template source"))
        );
        assert_eq!(local_source("win_file", &args(serde_json::json!({}))), None);
    }

    #[test]
    fn diff_sides() {
        let d = content_diff("a", Some(b"x\n"), 2, "b", Some(b"\0bin"), 4);
        assert_eq!(d["before"], "x\n");
        assert_eq!(d["src_binary"], 1);
        assert!(d.get("after").is_none());
        let d = content_diff("a", None, 0, "b", Some(b"y"), MAX_DIFF_BYTES + 1);
        assert_eq!(d["before"], "");
        assert_eq!(d["src_larger"], MAX_DIFF_BYTES);
    }

    #[test]
    fn local_walk_follows_links_and_sorts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), "x").unwrap();
        std::fs::write(d.path().join("top"), "y").unwrap();
        std::os::unix::fs::symlink(d.path().join("top"), d.path().join("a/lnk")).unwrap();
        // A loop back to the root must not recurse forever.
        std::os::unix::fs::symlink(d.path(), d.path().join("a/loop")).unwrap();
        let t = walk_local(d.path(), true).unwrap();
        assert_eq!(t.dirs, vec!["a", "a/b", "a/loop"]);
        let names: Vec<_> = t.files.keys().cloned().collect();
        assert_eq!(names, vec!["a/b/f", "a/lnk", "top"]);
        assert_eq!(t.files["a/lnk"].1, sha1_hex(b"y"));
    }
}
