//! Read-only and controller-bound modules: `stat`, `slurp`, `fetch`.

use crate::modules::Target;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use base64::Engine;
use serde_json::{Map, Value};

use super::remote::{self, FileStat, Kind, Probe, ProbeOpts};
use super::{BUILTIN, sha1_file, sha1_hex};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, alias, arg_bool,
    arg_str, choice, outcome, p, req,
};

static STAT_DEF: ModuleDef = ModuleDef {
    name: "stat",
    namespaces: BUILTIN,
    params: &[
        alias(req("path", Str), &["dest", "name"]),
        p("follow", Bool),
        p("get_checksum", Bool),
        alias(
            choice(
                "checksum_algorithm",
                &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"],
            ),
            &["checksum", "checksum_algo"],
        ),
        alias(p("get_mime", Bool), &["mime", "mime_type", "mime-type"]),
        alias(p("get_attributes", Bool), &["attr", "attributes"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Stat;

/// Ansible's `stat` dictionary for an existing path.
pub fn stat_output(path: &str, probe: &Probe, st: &FileStat) -> Map<String, Value> {
    let m = st.raw_mode;
    let bit = |b: u32| Value::Bool(m & b != 0);
    let mut o = Map::new();
    o.insert("exists".into(), true.into());
    o.insert("path".into(), path.into());
    o.insert("mode".into(), st.mode_str().into());
    let k = st.kind();
    o.insert("isdir".into(), (k == Kind::Dir).into());
    o.insert("ischr".into(), (k == Kind::Char).into());
    o.insert("isblk".into(), (k == Kind::Block).into());
    o.insert("isreg".into(), (k == Kind::File).into());
    o.insert("isfifo".into(), (k == Kind::Fifo).into());
    o.insert("islnk".into(), (k == Kind::Link).into());
    o.insert("issock".into(), (k == Kind::Socket).into());
    o.insert("uid".into(), st.uid.into());
    o.insert("gid".into(), st.gid.into());
    o.insert("size".into(), st.size.into());
    o.insert("inode".into(), st.inode.into());
    o.insert("dev".into(), st.dev.into());
    o.insert("nlink".into(), st.nlink.into());
    // Ansible reports float seconds; the target's `stat` gives whole seconds.
    for (key, t) in [
        ("atime", st.atime),
        ("mtime", st.mtime),
        ("ctime", st.ctime),
    ] {
        o.insert(
            key.into(),
            serde_json::Number::from_f64(t as f64).map_or(Value::Null, Value::Number),
        );
    }
    for (key, b) in [
        ("wusr", 0o200),
        ("rusr", 0o400),
        ("xusr", 0o100),
        ("wgrp", 0o020),
        ("rgrp", 0o040),
        ("xgrp", 0o010),
        ("woth", 0o002),
        ("roth", 0o004),
        ("xoth", 0o001),
        ("isuid", 0o4000),
        ("isgid", 0o2000),
    ] {
        o.insert(key.into(), bit(b));
    }
    o.insert("blocks".into(), st.blocks.into());
    o.insert("block_size".into(), st.block_size.into());
    o.insert("device_type".into(), st.rdev.into());
    o.insert("readable".into(), probe.readable.into());
    o.insert("writeable".into(), probe.writeable.into());
    o.insert("executable".into(), probe.executable.into());
    if k == Kind::Link {
        if let Some(s) = &probe.lnk_source {
            o.insert("lnk_source".into(), s.clone().into());
        }
        if let Some(t) = &probe.lnk_target {
            o.insert("lnk_target".into(), t.clone().into());
        }
    }
    if let Some(n) = &st.owner {
        o.insert("pw_name".into(), n.clone().into());
    }
    if let Some(n) = &st.group {
        o.insert("gr_name".into(), n.clone().into());
    }
    if let Some(c) = &probe.checksum {
        o.insert("checksum".into(), c.clone().into());
    }
    o
}

/// `lsattr -vd` output (`<version> <flags> <path>`) → (version, flags, attribute names).
pub fn parse_lsattr(line: &str) -> Option<(String, String, Vec<String>)> {
    let mut f = line.split_whitespace();
    let version = f.next()?.to_string();
    let flags: String = f.next()?.chars().filter(|c| *c != '-').collect();
    let names = flags
        .chars()
        .filter_map(|c| {
            Some(match c {
                'A' => "noatime",
                'a' => "append",
                'c' => "compressed",
                'C' => "nocow",
                'd' => "nodump",
                'D' => "dirsync",
                'e' => "extents",
                'E' => "encrypted",
                'h' => "blocksize",
                'i' => "immutable",
                'I' => "indexed",
                'j' => "journalled",
                'N' => "inline",
                's' => "zero",
                'S' => "synchronous",
                't' => "notail",
                'T' => "blockroot",
                'u' => "undelete",
                'X' => "compressedraw",
                'Z' => "compresseddirty",
                _ => return None,
            })
        })
        .map(str::to_string)
        .collect();
    Some((version, flags, names))
}

#[async_trait]
impl Module for Stat {
    fn def(&self) -> &'static ModuleDef {
        &STAT_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let path = arg_str(&args, "path").unwrap_or_default();
        let follow = arg_bool(&args, "follow", false);
        let get_mime = arg_bool(&args, "get_mime", true);
        let get_attrs = arg_bool(&args, "get_attributes", true);
        let probe = remote::probe(
            ctx,
            path,
            &ProbeOpts {
                follow,
                checksum: arg_bool(&args, "get_checksum", true).then(|| {
                    arg_str(&args, "checksum_algorithm")
                        .unwrap_or("sha1")
                        .to_string()
                }),
                mime: get_mime,
                attributes: get_attrs,
                ..Default::default()
            },
        )
        .await?;
        let mut r = outcome(false);
        let Some(st) = probe.effective(follow) else {
            let mut o = Map::new();
            o.insert("exists".into(), false.into());
            r.insert("stat".into(), Value::Object(o));
            return Ok(r);
        };
        let mut o = stat_output(&probe.path, &probe, st);
        if get_mime {
            let (mt, cs) = probe
                .mime
                .as_deref()
                .and_then(|m| m.split_once(';'))
                .map(|(t, c)| {
                    let cs = c.trim().trim_start_matches("charset=").to_string();
                    (t.trim().to_string(), cs)
                })
                .unwrap_or(("unknown".into(), "unknown".into()));
            o.insert("mimetype".into(), mt.into());
            o.insert("charset".into(), cs.into());
        }
        if get_attrs {
            let (version, flags, names) = probe
                .attrs
                .as_deref()
                .and_then(parse_lsattr)
                .map(|(v, f, n)| (Value::String(v), f, n))
                .unwrap_or((Value::Null, String::new(), Vec::new()));
            o.insert("version".into(), version);
            o.insert("attributes".into(), names.into());
            o.insert("attr_flags".into(), flags.into());
        }
        r.insert("stat".into(), Value::Object(o));
        Ok(r)
    }
}

static SLURP_DEF: ModuleDef = ModuleDef {
    name: "slurp",
    namespaces: BUILTIN,
    params: &[alias(req("src", Str), &["path"])],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Slurp;

/// Reads a whole remote file in the probe's round trip, with Ansible's slurp messages.
async fn read_remote(ctx: &ModuleCtx<'_>, src: &str) -> Result<(Probe, Vec<u8>), ModError> {
    let mut probe = remote::probe(
        ctx,
        src,
        &ProbeOpts {
            follow: true,
            content_max: Some(u64::MAX),
            ..Default::default()
        },
    )
    .await?;
    match probe.effective(true).map(FileStat::kind) {
        None => Err(ModError::msg(format!("File not found: {src}"))),
        Some(Kind::Dir) => Err(ModError::msg(format!(
            "Source is a directory and must be a file: {src}"
        ))),
        Some(_) => match probe.content.take() {
            Some(data) => Ok((probe, data)),
            None if !probe.readable => Err(ModError::msg(format!("File is not readable: {src}"))),
            None => Err(ModError::msg(format!("Unable to slurp file: {src}"))),
        },
    }
}

#[async_trait]
impl Module for Slurp {
    fn def(&self) -> &'static ModuleDef {
        &SLURP_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let src = arg_str(&args, "src").unwrap_or_default();
        let (_, data) = read_remote(ctx, src).await?;
        let mut r = outcome(false);
        r.insert(
            "content".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&data)
                .into(),
        );
        r.insert("source".into(), src.into());
        r.insert("encoding".into(), "base64".into());
        Ok(r)
    }
}

static FETCH_DEF: ModuleDef = ModuleDef {
    name: "fetch",
    namespaces: BUILTIN,
    params: &[
        req("src", Str),
        req("dest", Str),
        p("flat", Bool),
        p("fail_on_missing", Bool),
        p("validate_checksum", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Fetch;

/// Lexically normalizes a path (`a/./b/../c` → `a/c`), like Python's `os.path.normpath`.
pub fn normpath(p: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// Where fetch stores a file on the controller: `dest/<host>/<src path>`, or with `flat`,
/// `dest` itself (`dest/<basename>` when `dest` ends with `/`). Relative `dest` is taken
/// from `base` (the playbook's directory). `src` is the task's own argument, not a path the
/// target reports, and the result must stay inside `dest/<host>` (inside `dest` with `flat`):
/// `src: ../otherhost/x` must not write into another host's directory.
pub fn fetch_dest(
    dest: &str,
    host: &str,
    src: &str,
    flat: bool,
    base: &Path,
) -> Result<PathBuf, String> {
    let root = base.join(dest);
    let mut inside = root.clone();
    let out = if flat {
        if dest.ends_with('/') {
            let name = src.rsplit('/').next().unwrap_or(src);
            root.join(name)
        } else {
            if root.is_dir() {
                return Err(
                    "dest is an existing directory, use a trailing slash if you want \
                            to fetch src into that directory"
                        .into(),
                );
            }
            root.clone()
        }
    } else {
        inside = root.join(host);
        inside.join(src.trim_start_matches('/'))
    };
    let out = normpath(&out);
    let inside = normpath(&inside);
    if !out.starts_with(&inside) || (!flat && out == inside) {
        return Err(format!(
            "Detected directory traversal, expected to be contained in '{}' but got '{}'",
            inside.display(),
            out.display()
        ));
    }
    if out.is_dir() {
        return Err(format!(
            "calculated dest '{}' is an existing directory, use another path that does not \
             point to an existing directory",
            out.display()
        ));
    }
    Ok(out)
}

/// The mode of a fetched file on the controller: an existing file keeps its own; a new one gets
/// the source's permission bits (plus owner read/write) masked by the controller's umask, as
/// OpenSSH's `sftp get` does, so a private source (a kubeconfig, a key) stays private.
fn fetched_mode(local: &Path, src_mode: Option<u32>) -> u32 {
    if let Ok(m) = std::fs::metadata(local) {
        return m.permissions().mode() & 0o7777;
    }
    let src = src_mode.map_or(0o666, |m| (m & 0o777) | 0o600);
    src & !crate::connection::local::umask()
}

/// Fetched files up to this size come back in the probe itself (one round trip).
const INLINE_FETCH: u64 = 64 * 1024;

#[async_trait]
impl Module for Fetch {
    fn def(&self) -> &'static ModuleDef {
        &FETCH_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        if ctx.check_mode {
            let mut r = outcome(false);
            r.insert("skipped".into(), true.into());
            r.insert(
                "msg".into(),
                "check mode not (yet) supported for this module".into(),
            );
            return Ok(r);
        }
        let src = arg_str(&args, "src").unwrap_or_default();
        let dest = arg_str(&args, "dest").unwrap_or_default();
        let flat = arg_bool(&args, "flat", false);
        let fail_on_missing = arg_bool(&args, "fail_on_missing", true);
        let validate = arg_bool(&args, "validate_checksum", true);
        // Without become the connection streams the file; with it, reading must go through a
        // become command, so the probe carries the content.
        let probe = remote::probe(
            ctx,
            src,
            &ProbeOpts {
                follow: true,
                checksum: Some("sha1".into()),
                content_max: Some(if ctx.become_.is_some() {
                    u64::MAX
                } else {
                    INLINE_FETCH
                }),
                ..Default::default()
            },
        )
        .await?;
        let soft_fail = |msg: &str| -> ModResult {
            let mut result = Outcome::new();
            result.insert("file".into(), src.into());
            result.insert("changed".into(), false.into());
            if fail_on_missing {
                Err(ModError::Failed {
                    msg: msg.to_string(),
                    result,
                })
            } else {
                result.insert(
                    "msg".into(),
                    format!("{msg}, not transferring, ignored").into(),
                );
                Ok(result)
            }
        };
        match probe.effective(true).map(FileStat::kind) {
            None => {
                return soft_fail("the remote file does not exist");
            }
            Some(Kind::Dir) => {
                return soft_fail("remote file is a directory, fetch cannot work on directories");
            }
            _ => {}
        }
        let Some(remote_sum) = probe.checksum.clone() else {
            return soft_fail(&format!("file is not readable: {src}"));
        };
        let base = ctx
            .search_dirs
            .last()
            .cloned()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."));
        // The local name comes from the task's `src`; only `~` needs the target (its home).
        let name = if src.starts_with('~') {
            probe.path.as_str()
        } else {
            src
        };
        let local = fetch_dest(dest, ctx.host, name, flat, &base).map_err(ModError::msg)?;
        let local_sum = if local.is_file() {
            sha1_file(&local).ok()
        } else {
            None
        };
        let mut r = outcome(false);
        r.insert("dest".into(), local.display().to_string().into());
        if local_sum.as_deref() == Some(remote_sum.as_str()) {
            r.insert("file".into(), src.into());
            r.insert("checksum".into(), remote_sum.into());
            return Ok(r);
        }
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ModError::msg(format!("{}: {e}", parent.display())))?;
        }
        let mode = fetched_mode(&local, probe.effective(true).map(|s| s.raw_mode));
        match &probe.content {
            Some(data) => crate::connection::local::atomic_write(&local, data, Some(mode))?,
            None => {
                let real = probe.lnk_source.clone().unwrap_or(probe.path.clone());
                // Into a private (0700) directory beside the destination, then chmod and rename:
                // the copy is never readable with more than `mode`, even for a moment.
                let parent = local.parent().unwrap_or(Path::new("."));
                let io = |e: std::io::Error| ModError::msg(format!("{}: {e}", local.display()));
                let dir = tempfile::Builder::new()
                    .prefix(".mixop-fetch-")
                    .tempdir_in(parent)
                    .map_err(io)?;
                let part = dir.path().join("file");
                ctx.connection().await?.get_file(&real, &part).await?;
                std::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode))
                    .map_err(io)?;
                std::fs::rename(&part, &local).map_err(io)?;
            }
        }
        let new_sum = match &probe.content {
            Some(d) => sha1_hex(d),
            None => {
                sha1_file(&local).map_err(|e| ModError::msg(format!("{}: {e}", local.display())))?
            }
        };
        r.insert("checksum".into(), new_sum.clone().into());
        r.insert("remote_checksum".into(), remote_sum.clone().into());
        if validate && new_sum != remote_sum {
            r.insert("file".into(), src.into());
            return Err(ModError::Failed {
                msg: "checksum mismatch".into(),
                result: r,
            });
        }
        r.insert("changed".into(), true.into());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_layout() {
        let base = Path::new("/pb");
        assert_eq!(
            fetch_dest("out", "web1", "/etc/hosts", false, base).unwrap(),
            PathBuf::from("/pb/out/web1/etc/hosts")
        );
        assert_eq!(
            fetch_dest("/abs/", "web1", "rel/x.txt", false, base).unwrap(),
            PathBuf::from("/abs/web1/rel/x.txt")
        );
        assert_eq!(
            fetch_dest("/abs/", "web1", "/etc/hosts", true, base).unwrap(),
            PathBuf::from("/abs/hosts")
        );
        assert_eq!(
            fetch_dest("/abs/f.txt", "web1", "/etc/hosts", true, base).unwrap(),
            PathBuf::from("/abs/f.txt")
        );
        assert!(
            fetch_dest("/abs", "web1", "../../../etc/passwd", false, base)
                .unwrap_err()
                .contains("traversal")
        );
        // Out of the host's own directory into another host's.
        let e = fetch_dest("/abs", "web1", "../otherhost/kubeconfig", false, base).unwrap_err();
        assert!(e.contains("contained in '/abs/web1'"), "{e}");
        assert!(fetch_dest("/abs", "web1", "a/../../web2/x", false, base).is_err());
        assert!(fetch_dest("/abs", "web1", "..", false, base).is_err());
        assert_eq!(
            fetch_dest("/abs", "web1", "a/../b", false, base).unwrap(),
            PathBuf::from("/abs/web1/b")
        );
        assert!(fetch_dest("/abs/", "web1", "..", true, base).is_err());
        let d = tempfile::tempdir().unwrap();
        let err = fetch_dest(&d.path().display().to_string(), "h", "/x", true, base).unwrap_err();
        assert!(err.contains("trailing slash"), "{err}");
    }

    #[test]
    fn normpaths() {
        assert_eq!(
            normpath(Path::new("/a/./b/../c//d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normpath(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(normpath(Path::new("../a")), PathBuf::from("../a"));
    }

    #[test]
    fn lsattr_lines() {
        let (v, f, n) = parse_lsattr("123 --------------e------- /x").unwrap();
        assert_eq!((v.as_str(), f.as_str()), ("123", "e"));
        assert_eq!(n, vec!["extents"]);
        let (_, f, n) = parse_lsattr("1 ----i---------e------- /x y").unwrap();
        assert_eq!(f, "ie");
        assert_eq!(n, vec!["immutable", "extents"]);
    }

    #[test]
    fn stat_dictionary() {
        let st = FileStat::parse("81ed 0 0 5 1 2 3 4 1 5 8 4096 0 0 root root").unwrap();
        let probe = Probe {
            readable: true,
            checksum: Some("abc".into()),
            ..Default::default()
        };
        let o = stat_output("/x", &probe, &st);
        assert_eq!(o["mode"], "0755");
        assert_eq!(o["isreg"], true);
        assert_eq!(o["xoth"], true);
        assert_eq!(o["woth"], false);
        assert_eq!(o["pw_name"], "root");
        assert_eq!(o["checksum"], "abc");
        assert_eq!(o["mtime"], 2.0);
        assert!(o.get("lnk_target").is_none());
    }
}
