//! The shell side of the file modules: small POSIX `sh` scripts that gather everything a module
//! needs in one round trip and print it as `key=value` lines (optionally followed by a
//! `::data::` line and raw bytes), plus the parsers for that output.
//!
//! Targets need a POSIX shell and coreutils-style `stat -c` (GNU coreutils or BusyBox).

use std::sync::Arc;

use crate::connection::{FsAttrs, FsContent, FsError, RemoteFs};
use crate::modules::posix::quote;
use crate::modules::{ModError, ModuleCtx};

/// `stat -c` format shared by every script: mode in hex (type + permission bits), ids, size,
/// times, inode, links, device, blocks, rdev, then the names (which never contain spaces).
const STAT_FMT: &str = "%f %u %g %s %X %Y %Z %i %h %d %b %B %t %T %U %G";

/// Helpers every script starts with.
fn prelude() -> String {
    format!(
        r#"LC_ALL=C; export LC_ALL
_st() {{ stat $2 -c '{STAT_FMT}' -- "$1"; }}
_err() {{ printf 'error=%s\n' "$(printf '%s' "$1" | tr '\n' ' ')"; }}
_mkdirs() {{
  case $1 in /*) _c= ;; *) _c=. ;; esac
  _o=$IFS; IFS=/; set -f; set -- $1; IFS=$_o; set +f
  for _x do
    [ -n "$_x" ] || continue
    _c=$_c/$_x
    if [ ! -d "$_c" ]; then
      if _e=$(mkdir -- "$_c" 2>&1); then
        if [ -n "$dmode" ]; then _e=$(chmod -- "$dmode" "$_c" 2>&1) || {{ _err "$_e"; return 1; }}; fi
        if [ -n "$down" ]; then _e=$(chown -- "$down" "$_c" 2>&1) || {{ _err "$_e"; return 1; }}; fi
        if [ -n "$dgrp" ]; then _e=$(chgrp -- "$dgrp" "$_c" 2>&1) || {{ _err "$_e"; return 1; }}; fi
        [ -n "$_mkq" ] || printf 'created=%s\n' "$_c"
      elif [ ! -d "$_c" ]; then
        _err "cannot create directory $_c: $_e"; return 1
      fi  # else: made by someone else meanwhile (parallel tasks), as mkdir -p accepts
    fi
  done
}}
"#
    )
}

/// A shell word for a path, expanding a leading `~` like Ansible does for `path` arguments.
pub fn sh_path(p: &str) -> String {
    if p == "~" {
        return "\"$HOME\"".into();
    }
    if let Some(rest) = p.strip_prefix("~/") {
        return format!("\"$HOME\"/{}", quote(rest));
    }
    if let Some(rest) = p.strip_prefix('~') {
        let (user, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if !user.is_empty()
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return if tail.is_empty() {
                format!("~{user}")
            } else {
                format!("~{user}/{}", quote(tail))
            };
        }
    }
    quote(p)
}

/// Builds a script: the prelude, `name=value` assignments (values are already shell words),
/// then the body.
pub fn script(vars: &[(&str, String)], body: &str) -> String {
    let mut s = prelude();
    for (k, v) in vars {
        s.push_str(k);
        s.push('=');
        s.push_str(if v.is_empty() { "''" } else { v });
        s.push('\n');
    }
    s.push_str(body);
    s
}

/// What a script printed: `key=value` pairs in order, and the raw bytes after `::data::`.
#[derive(Debug, Default, Clone)]
pub struct Reply {
    pub pairs: Vec<(String, String)>,
    pub data: Option<Vec<u8>>,
}

impl Reply {
    pub fn parse(out: &[u8]) -> Reply {
        let mut reply = Reply::default();
        let mut rest = out;
        while !rest.is_empty() {
            let (line, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            if line == b"::data::" {
                reply.data = Some(next.to_vec());
                break;
            }
            let line = String::from_utf8_lossy(line);
            if let Some((k, v)) = line.split_once('=') {
                reply.pairs.push((k.to_string(), v.to_string()));
            }
            rest = next;
        }
        reply
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("1")
    }
    pub fn stat(&self, key: &str) -> Result<Option<FileStat>, ModError> {
        match self.get(key) {
            None => Ok(None),
            Some(line) => FileStat::parse(line)
                .map(Some)
                .ok_or_else(|| ModError::msg(format!("cannot parse `stat` output: {line}"))),
        }
    }
}

/// Runs a script on the target without streaming its output to the progress display (it may
/// carry file content). Long scripts go through stdin to stay clear of command-line limits.
pub async fn run(ctx: &ModuleCtx<'_>, script: String) -> Result<Reply, ModError> {
    let stdin = script.len() > 64 * 1024;
    run_script(ctx, script, stdin).await
}

/// `run` with the script always on stdin (`sh -s`), so what it carries (passwords, headers)
/// never appears on a command line or in the transport's command log.
pub async fn run_stdin(ctx: &ModuleCtx<'_>, script: String) -> Result<Reply, ModError> {
    run_script(ctx, script, true).await
}

/// The one remote-script runner: runs `script` with the task's become, environment and
/// timeout and parses its `key=value` reply. An `error=` line fails the module with that
/// message and what the script reported besides it (`rc` and output of a failed `validate`,
/// get_url's HTTP `status_code` and `response`).
async fn run_script(ctx: &ModuleCtx<'_>, script: String, stdin: bool) -> Result<Reply, ModError> {
    let out = if stdin {
        ctx.exec("/bin/sh -s", Some(script.into_bytes())).await?
    } else {
        ctx.exec(script, None).await?
    };
    let reply = Reply::parse(&out.stdout);
    if let Some(e) = reply.get("error") {
        return Err(ModError::Failed {
            msg: e.to_string(),
            result: failure_details(&reply),
        });
    }
    if out.rc != 0 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ModError::msg(format!(
            "the remote shell script failed (rc={}): {}",
            out.rc,
            stderr.trim()
        )));
    }
    Ok(reply)
}

/// What a script that printed `error=` reported besides its message.
fn failure_details(reply: &Reply) -> crate::modules::Outcome {
    let mut result = crate::modules::Outcome::new();
    for key in ["rc", "status_code"] {
        if let Some(n) = reply.get(key).and_then(|r| r.parse::<i64>().ok()) {
            result.insert(key.into(), n.into());
        }
    }
    if let Some(r) = reply.get("response") {
        result.insert("response".into(), r.into());
    }
    if let Some(d) = &reply.data {
        result.insert(
            "stdout".into(),
            String::from_utf8_lossy(d).trim_end().to_string().into(),
        );
    }
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    Char,
    Block,
    Fifo,
    Socket,
    Other,
}

/// One `stat` line.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStat {
    /// `st_mode`: type and permission bits.
    pub raw_mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub inode: u64,
    pub nlink: u64,
    pub dev: u64,
    pub blocks: u64,
    pub block_size: u64,
    pub rdev: u64,
    /// None when the id has no name on the target.
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[cfg(test)]
impl FileStat {
    /// A root-owned stat with this `st_mode` and link count, for plans' unit tests.
    pub fn for_test(raw_mode: u32, nlink: u64) -> FileStat {
        FileStat {
            raw_mode,
            uid: 0,
            gid: 0,
            size: 0,
            atime: 1,
            mtime: 1,
            ctime: 1,
            inode: 7,
            nlink,
            dev: 1,
            blocks: 0,
            block_size: 4096,
            rdev: 0,
            owner: Some("root".into()),
            group: Some("root".into()),
        }
    }
}

impl FileStat {
    pub fn parse(line: &str) -> Option<FileStat> {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 16 {
            return None;
        }
        let n = |i: usize| f[i].parse::<u64>().ok();
        let t = |i: usize| f[i].parse::<i64>().ok();
        let hex = |i: usize| u64::from_str_radix(f[i], 16).ok();
        let name = |s: &str| (s != "UNKNOWN" && !s.is_empty()).then(|| s.to_string());
        let (major, minor) = (hex(12)?, hex(13)?);
        Some(FileStat {
            raw_mode: u32::from_str_radix(f[0], 16).ok()?,
            uid: n(1)?,
            gid: n(2)?,
            size: n(3)?,
            atime: t(4)?,
            mtime: t(5)?,
            ctime: t(6)?,
            inode: n(7)?,
            nlink: n(8)?,
            dev: n(9)?,
            blocks: n(10)?,
            block_size: n(11)?,
            // glibc's makedev encoding, as Python's st_rdev reports it.
            rdev: ((major & 0xffff_f000) << 32)
                | ((major & 0xfff) << 8)
                | ((minor & 0xffff_ff00) << 12)
                | (minor & 0xff),
            owner: name(f[14]),
            // A group name is the rest of the line.
            group: name(&f[15..].join(" ")),
        })
    }
    /// From direct file-system attributes; what SFTP does not report (ctime, inode, device,
    /// blocks) is 0.
    pub fn from_fs(
        a: &FsAttrs,
        nlink: u64,
        owner: Option<String>,
        group: Option<String>,
    ) -> FileStat {
        FileStat {
            raw_mode: a.mode,
            uid: a.uid.into(),
            gid: a.gid.into(),
            size: a.size,
            atime: a.atime.into(),
            mtime: a.mtime.into(),
            ctime: 0,
            inode: 0,
            nlink,
            dev: 0,
            blocks: 0,
            block_size: 0,
            rdev: 0,
            owner,
            group,
        }
    }
    pub fn kind(&self) -> Kind {
        match self.raw_mode & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Link,
            0o020000 => Kind::Char,
            0o060000 => Kind::Block,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => Kind::Other,
        }
    }
    pub fn perm(&self) -> u32 {
        self.raw_mode & 0o7777
    }
    pub fn mode_str(&self) -> String {
        format!("{:04o}", self.perm())
    }
    pub fn owner_name(&self) -> String {
        self.owner.clone().unwrap_or_else(|| self.uid.to_string())
    }
    pub fn group_name(&self) -> String {
        self.group.clone().unwrap_or_else(|| self.gid.to_string())
    }
    /// Does this entry already belong to `want` (a name or a numeric id)?
    pub fn owner_is(&self, want: &str) -> bool {
        id_matches(want, self.uid, self.owner.as_deref())
    }
    pub fn group_is(&self, want: &str) -> bool {
        id_matches(want, self.gid, self.group.as_deref())
    }
}

fn id_matches(want: &str, id: u64, name: Option<&str>) -> bool {
    match want.parse::<u64>() {
        Ok(n) => n == id,
        Err(_) => name == Some(want),
    }
}

/// What to gather about one path.
#[derive(Debug, Clone, Default)]
pub struct ProbeOpts {
    /// Follow a symlink for the checksum, content and `tstat`.
    pub follow: bool,
    /// If the path is a directory, probe `path/<join_if_dir>` instead (copy's `dest` rule).
    pub join_if_dir: Option<String>,
    /// Checksum algorithm (`sha1`, `sha256`, `md5`, ...), of regular readable files only.
    pub checksum: Option<String>,
    /// Send the content of a regular file up to this many bytes (`Some(u64::MAX)`: any size).
    pub content_max: Option<u64>,
    /// Report whether a directory is empty (`dir_empty`).
    pub dir_empty: bool,
    /// `file state=link`: where the link would point, to check it exists (`src_exists`).
    pub link_src: Option<String>,
    /// `file state=hard`: the file the hard link names (`src_id`, `src_kind`).
    pub hard_src: Option<String>,
    /// List everything below a directory (`entry=<stat> <relative path>` lines).
    pub list_tree: bool,
    /// `file --mime-type --mime-encoding` (`mime=`).
    pub mime: bool,
    /// `lsattr -d` (`attrs=`).
    pub attributes: bool,
}

const PROBE_BODY: &str = r#"
if [ -n "$alt" ] && [ -d "$p" ]; then p=${p%/}/$alt; fi
printf 'path=%s\n' "$p"
printf 'umask=%s\n' "$(umask)"
d=$(dirname -- "$p")
if [ -d "$d" ]; then echo parent=1; else echo parent=0; fi
if s=$(_st "$p" 2>&1); then
  printf 'lstat=%s\n' "$s"
else
  case $s in
    *'No such file'*|*'Not a directory'*) echo exists=0 ;;
    *) _err "$s"; exit 0 ;;
  esac
fi
q=$p
if [ -L "$p" ]; then
  printf 'lnk_target=%s\n' "$(readlink -- "$p")"
  printf 'lnk_source=%s\n' "$(readlink -f -- "$p")"
  if t=$(_st "$p" -L 2>/dev/null); then printf 'tstat=%s\n' "$t"; fi
  [ "$fl" = 1 ] || q=
fi
if [ -e "$p" ]; then
  a=; [ -r "$p" ] && a=${a}r; [ -w "$p" ] && a=${a}w; [ -x "$p" ] && a=${a}x
  printf 'access=%s\n' "$a"
fi
if [ -n "$alg" ] && [ -n "$q" ] && [ -f "$q" ] && [ -r "$q" ]; then
  if c=$( ( "${alg}sum" < "$q" || openssl dgst -r "-$alg" < "$q" ) 2>/dev/null ); then
    printf 'checksum=%s\n' "${c%% *}"
  fi
fi
if [ -n "$dempty" ] && [ -d "$p" ] && [ ! -L "$p" ]; then
  if [ -z "$(ls -A -- "$p" 2>/dev/null)" ]; then echo dir_empty=1; else echo dir_empty=0; fi
fi
if [ -n "$lsrc" ]; then
  case $lsrc in
    /*) la=$lsrc ;;
    *) if [ -d "$p" ] && [ ! -L "$p" ]; then la=$p/$lsrc; else la=$d/$lsrc; fi ;;
  esac
  printf 'src_abs=%s\n' "$la"
  if [ -e "$la" ]; then echo src_exists=1; fi
fi
if [ -n "$hsrc" ] && [ -e "$hsrc" ]; then
  printf 'src_id=%s\n' "$(stat -L -c '%d:%i' -- "$hsrc")"
fi
if [ -n "$tree" ] && [ -d "$p" ] && [ ! -L "$p" ]; then
  (cd -- "$p" && find . -mindepth 1 -exec stat -c "entry=$STF %n" -- {} + &&
    if [ -n "$alg" ]; then find . -type f -exec "${alg}sum" -- {} + | sed 's/^/sum=/'; fi)
fi
if [ -n "$mime" ] && [ -e "$p" ] && command -v file >/dev/null 2>&1; then
  printf 'mime=%s\n' "$(file -b --mime-type --mime-encoding -- "$p" 2>/dev/null)"
fi
if [ -n "$lsa" ] && [ -e "$p" ] && command -v lsattr >/dev/null 2>&1; then
  if o=$(lsattr -vd -- "$p" 2>/dev/null); then printf 'attrs=%s\n' "$o"; fi
fi
if [ -n "$cmax" ] && [ -n "$q" ] && [ -f "$q" ] && [ -r "$q" ]; then
  sz=$(stat -L -c %s -- "$q")
  if [ "$cmax" = all ] || [ "$sz" -le "$cmax" ]; then echo '::data::'; cat -- "$q"; fi
fi
"#;

/// Everything known about one path after a probe.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// The path probed (with `~` expanded and `join_if_dir` applied).
    pub path: String,
    /// `lstat` of the path; None when it does not exist.
    pub lstat: Option<FileStat>,
    /// `stat` through a symlink; None for a dangling link or a non-link.
    pub tstat: Option<FileStat>,
    pub lnk_target: Option<String>,
    pub lnk_source: Option<String>,
    pub parent_exists: bool,
    pub readable: bool,
    pub writeable: bool,
    pub executable: bool,
    pub checksum: Option<String>,
    pub content: Option<Vec<u8>>,
    pub dir_empty: Option<bool>,
    pub src_abs: Option<String>,
    pub src_exists: bool,
    pub src_id: Option<String>,
    /// `(relative path without "./", stat)` for everything below a directory.
    pub tree: Vec<(String, FileStat)>,
    /// `relative path → checksum` of the regular files below a directory.
    pub sums: std::collections::HashMap<String, String>,
    pub mime: Option<String>,
    pub attrs: Option<String>,
    /// The target shell's umask.
    pub umask: u32,
}

impl Probe {
    /// The stat that describes what the path is, following a link when asked.
    pub fn effective(&self, follow: bool) -> Option<&FileStat> {
        match &self.lstat {
            Some(l) if l.kind() == Kind::Link && follow => self.tstat.as_ref(),
            other => other.as_ref(),
        }
    }
    /// Ansible's `get_state`: absent, link, directory, hard (a file with several links), file.
    pub fn state(&self) -> &'static str {
        match &self.lstat {
            None => "absent",
            Some(s) => match s.kind() {
                Kind::Link => "link",
                Kind::Dir => "directory",
                _ if s.nlink > 1 => "hard",
                _ => "file",
            },
        }
    }

    pub fn from_reply(reply: Reply) -> Result<Probe, ModError> {
        let mut tree = Vec::new();
        for e in reply.all("entry") {
            // `<16 stat fields> ./relative/path`: split the path off after the 16th space.
            let mut cut = 0;
            let mut spaces = 0;
            for (i, b) in e.bytes().enumerate() {
                if b == b' ' {
                    spaces += 1;
                    if spaces == 16 {
                        cut = i;
                        break;
                    }
                }
            }
            if cut == 0 {
                continue;
            }
            let (st, name) = (&e[..cut], &e[cut + 1..]);
            if let Some(st) = FileStat::parse(st) {
                tree.push((name.trim_start_matches("./").to_string(), st));
            }
        }
        let sums = reply
            .all("sum")
            .filter_map(|l| {
                let (sum, name) = l.split_once("  ")?;
                Some((name.trim_start_matches("./").to_string(), sum.to_string()))
            })
            .collect();
        let access = reply.get("access").unwrap_or("");
        Ok(Probe {
            path: reply.get("path").unwrap_or_default().to_string(),
            lstat: reply.stat("lstat")?,
            tstat: reply.stat("tstat")?,
            lnk_target: reply.get("lnk_target").map(str::to_string),
            lnk_source: reply.get("lnk_source").map(str::to_string),
            parent_exists: reply.flag("parent"),
            readable: access.contains('r'),
            writeable: access.contains('w'),
            executable: access.contains('x'),
            checksum: reply
                .get("checksum")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            dir_empty: reply.get("dir_empty").map(|v| v == "1"),
            src_abs: reply.get("src_abs").map(str::to_string),
            src_exists: reply.flag("src_exists"),
            src_id: reply.get("src_id").map(str::to_string),
            tree,
            sums,
            mime: reply.get("mime").map(str::to_string),
            attrs: reply.get("attrs").map(str::to_string),
            umask: reply
                .get("umask")
                .and_then(|u| u32::from_str_radix(u.trim(), 8).ok())
                .unwrap_or(0o022),
            content: reply.data,
        })
    }
}

/// Builds the probe script for a path (given as a shell word, see `sh_path`).
pub fn probe_script(path_word: String, o: &ProbeOpts) -> String {
    let opt = |v: &Option<String>| v.as_deref().map(quote).unwrap_or_default();
    let flag = |b: bool| if b { "1".to_string() } else { String::new() };
    script(
        &[
            ("p", path_word),
            ("alt", opt(&o.join_if_dir)),
            ("fl", flag(o.follow)),
            ("alg", opt(&o.checksum)),
            (
                "cmax",
                match o.content_max {
                    None => String::new(),
                    Some(u64::MAX) => "all".into(),
                    Some(n) => n.to_string(),
                },
            ),
            ("dempty", flag(o.dir_empty)),
            ("lsrc", opt(&o.link_src)),
            ("hsrc", opt(&o.hard_src)),
            ("tree", flag(o.list_tree)),
            ("mime", flag(o.mime)),
            ("lsa", flag(o.attributes)),
            ("STF", quote(STAT_FMT)),
        ],
        PROBE_BODY,
    )
}

pub async fn probe(ctx: &ModuleCtx<'_>, path: &str, o: &ProbeOpts) -> Result<Probe, ModError> {
    Probe::from_reply(run(ctx, probe_script(sh_path(path), o)).await?)
}

/// Probes two paths in one round trip (`remote_src`: the source, then the destination). The
/// first must not ask for content.
pub async fn probe_pair(
    ctx: &ModuleCtx<'_>,
    first: (&str, &ProbeOpts),
    second: (&str, &ProbeOpts),
) -> Result<(Probe, Probe), ModError> {
    let one = probe_script(sh_path(first.0), first.1);
    let two = probe_script(sh_path(second.0), second.1);
    let s = format!("( {one}\n) | sed 's/^/S:/'\n{two}");
    let reply = run(ctx, s).await?;
    let (a, b): (Vec<_>, Vec<_>) = reply
        .pairs
        .into_iter()
        .partition(|(k, _)| k.starts_with("S:"));
    let a = Reply {
        pairs: a
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("S:").to_string(), v))
            .collect(),
        data: None,
    };
    let b = Reply {
        pairs: b,
        data: reply.data,
    };
    if let Some(e) = a.get("error") {
        return Err(ModError::msg(e.to_string()));
    }
    Ok((Probe::from_reply(a)?, Probe::from_reply(b)?))
}

/// Wraps a script body as a subshell fragment, so several can share one round trip (each with
/// its own variables; `exit` leaves only the fragment).
pub fn fragment(vars: &[(&str, String)], body: &str) -> String {
    let mut s = String::from("(\n");
    for (k, v) in vars {
        s.push_str(k);
        s.push('=');
        s.push_str(if v.is_empty() { "''" } else { v });
        s.push('\n');
    }
    s.push_str(body);
    s.push_str("\n)\n");
    s
}

/// Joins fragments behind one prelude.
pub fn batch(fragments: &[String]) -> String {
    let mut s = prelude();
    for f in fragments {
        s.push_str(f);
    }
    s
}

pub const ATTRS: &str = ATTRS_BODY;
pub const INSTALL: &str = INSTALL_BODY;

/// Owner, group and mode to apply (already resolved to octal).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttrChange {
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl AttrChange {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.owner.is_none() && self.group.is_none()
    }
}

const ATTRS_BODY: &str = r#"
if [ -n "$mode" ]; then e=$(chmod -- "$mode" "$p" 2>&1) || { _err "$e"; exit 0; }; fi
if [ -n "$own" ]; then e=$(chown $h -- "$own" "$p" 2>&1) || { _err "chown failed: $e"; exit 0; }; fi
if [ -n "$grp" ]; then e=$(chgrp $h -- "$grp" "$p" 2>&1) || { _err "chgrp failed: $e"; exit 0; }; fi
printf 'lstat=%s\n' "$(_st "$p")"
if [ -L "$p" ]; then t=$(_st "$p" -L 2>/dev/null) && printf 'tstat=%s\n' "$t"; fi
"#;

/// Applies owner/group/mode to one path and returns its new `lstat` (and `tstat`).
/// `no_deref` changes a symlink itself (`chown -h`) instead of its target.
pub async fn apply_attrs(
    ctx: &ModuleCtx<'_>,
    path: &str,
    ch: &AttrChange,
    no_deref: bool,
) -> Result<(FileStat, Option<FileStat>), ModError> {
    let reply = run(ctx, script(&attr_vars(path, ch, no_deref), ATTRS_BODY)).await?;
    let st = reply
        .stat("lstat")?
        .ok_or_else(|| ModError::msg(format!("{path} disappeared while changing it")))?;
    Ok((st, reply.stat("tstat")?))
}

pub fn attr_vars(path: &str, ch: &AttrChange, no_deref: bool) -> Vec<(&'static str, String)> {
    vec![
        ("p", sh_path(path)),
        (
            "mode",
            ch.mode.map(|m| format!("{m:04o}")).unwrap_or_default(),
        ),
        ("own", ch.owner.as_deref().map(quote).unwrap_or_default()),
        ("grp", ch.group.as_deref().map(quote).unwrap_or_default()),
        ("h", if no_deref { "-h".into() } else { String::new() }),
    ]
}

/// How the new content reaches its temporary name beside `dest`.
#[derive(Debug, Clone)]
pub enum Staged {
    /// Uploaded straight to the temporary name.
    InPlace,
    /// Uploaded elsewhere (a become run, or a parent directory that does not exist yet):
    /// copied in and removed.
    Moved(String),
    /// A file already on the target (`remote_src`): copied, keeping its times.
    Copied(String),
}

/// Everything the install script needs.
#[derive(Debug, Clone)]
pub struct Install {
    pub dest: String,
    pub tmp: String,
    pub staged: Staged,
    /// Mode the file gets when none is asked for (the old file's, or the source's for
    /// `remote_src`); None: the default for new files (0666 & ~umask).
    pub base_mode: Option<u32>,
    /// Keep the replaced file's owner (`uid:gid`), ignoring failure like Ansible does.
    pub keep_owner: Option<String>,
    pub attrs: AttrChange,
    pub backup: bool,
    /// The `validate` command with the temporary path already substituted.
    pub validate: Option<String>,
    /// Create missing parent directories (mode for them, if any).
    pub make_parents: bool,
    pub dir_mode: Option<u32>,
}

/// The result of an install: the new stat, the stat before asked-for attributes were applied
/// (to tell whether they changed anything), and the backup's name.
#[derive(Debug, Clone)]
pub struct Installed {
    pub stat: FileStat,
    pub before_attrs: Option<FileStat>,
    pub backup_file: Option<String>,
}

const INSTALL_BODY: &str = r#"
trap 'rm -f -- "$tmp"' HUP INT TERM
_fail() { rm -f -- "$tmp"; if [ "$how" = move ]; then rm -f -- "$up"; fi; _err "$1"; exit 0; }
if [ -n "$mkp" ]; then _mkdirs "$(dirname -- "$dest")" || { rm -f -- "$tmp"; exit 0; }; fi
case $how in
  move) e=$( (umask 077 && cat -- "$up" > "$tmp") 2>&1 ) || _fail "cannot write $tmp: $e"; rm -f -- "$up" ;;
  copy) e=$( (umask 077 && cp -- "$up" "$tmp") 2>&1) || _fail "cannot copy $up: $e"; touch -r "$up" "$tmp" 2>/dev/null ;;
esac
bm=$bmode
[ -n "$bm" ] || bm=$(printf '%04o' $(( 0666 & ~0$(umask) )))
# An asked-for mode goes on first: the file, already in dest's directory, is never more open
# than asked for, even briefly. `pre_mode` says what it would have had without it.
e=$(chmod -- "${mode:-$bm}" "$tmp" 2>&1) || _fail "$e"
[ -z "$keep" ] || chown -- "$keep" "$tmp" 2>/dev/null
printf 'pre=%s\npre_mode=%s\n' "$(_st "$tmp")" "$bm"
# Again after chown, which clears set-id bits.
if [ -n "$mode" ] && [ -n "$keep" ]; then e=$(chmod -- "$mode" "$tmp" 2>&1) || _fail "$e"; fi
if [ -n "$own" ]; then e=$(chown -- "$own" "$tmp" 2>&1) || _fail "chown failed: $e"; fi
if [ -n "$grp" ]; then e=$(chgrp -- "$grp" "$tmp" 2>&1) || _fail "chgrp failed: $e"; fi
if [ -n "$val" ]; then
  out=$(eval "$val" 2>&1); rc=$?
  if [ "$rc" -ne 0 ]; then
    rm -f -- "$tmp"; printf 'error=failed to validate\nrc=%s\n::data::\n%s\n' "$rc" "$out"; exit 0
  fi
fi
if [ -n "$bak" ] && [ -e "$dest" ]; then
  b=$dest.$$.$(date +%Y-%m-%d@%H:%M:%S~)
  e=$(cp -p -- "$dest" "$b" 2>&1) || _fail "could not make a backup of $dest: $e"
  printf 'backup_file=%s\n' "$b"
fi
e=$(mv -f -- "$tmp" "$dest" 2>&1) || _fail "cannot replace $dest: $e"
printf 'lstat=%s\n' "$(_st "$dest")"
"#;

pub fn install_script(i: &Install) -> String {
    script(&install_vars(i), INSTALL_BODY)
}

pub fn install_vars(i: &Install) -> Vec<(&'static str, String)> {
    let (how, up) = match &i.staged {
        Staged::InPlace => ("direct", String::new()),
        Staged::Moved(p) => ("move", quote(p)),
        Staged::Copied(p) => ("copy", sh_path(p)),
    };
    let oct = |m: Option<u32>| m.map(|m| format!("{m:04o}")).unwrap_or_default();
    vec![
        ("dest", quote(&i.dest)),
        ("tmp", quote(&i.tmp)),
        ("up", up),
        ("how", how.into()),
        ("bmode", oct(i.base_mode)),
        (
            "keep",
            i.keep_owner.as_deref().map(quote).unwrap_or_default(),
        ),
        ("mode", oct(i.attrs.mode)),
        (
            "own",
            i.attrs.owner.as_deref().map(quote).unwrap_or_default(),
        ),
        (
            "grp",
            i.attrs.group.as_deref().map(quote).unwrap_or_default(),
        ),
        ("val", i.validate.as_deref().map(quote).unwrap_or_default()),
        ("bak", if i.backup { "1".into() } else { String::new() }),
        (
            "mkp",
            if i.make_parents {
                "1".into()
            } else {
                String::new()
            },
        ),
        ("dmode", oct(i.dir_mode)),
        ("down", String::new()),
        ("dgrp", String::new()),
    ]
}

pub async fn install(ctx: &ModuleCtx<'_>, i: &Install) -> Result<Installed, ModError> {
    let reply = run(ctx, install_script(i)).await?;
    let stat = reply
        .stat("lstat")?
        .ok_or_else(|| ModError::msg(format!("{}: no status after writing it", i.dest)))?;
    Ok(Installed {
        stat,
        before_attrs: reply.stat("pre")?.map(|mut st| {
            // The asked-for mode was applied before `pre` was taken; report the mode the file
            // would have had without it, to tell whether the mode changed anything.
            if let Some(m) = reply
                .get("pre_mode")
                .and_then(|m| u32::from_str_radix(m, 8).ok())
            {
                st.raw_mode = (st.raw_mode & !0o7777) | (m & 0o7777);
            }
            st
        }),
        backup_file: reply.get("backup_file").map(str::to_string),
    })
}

/// The connection's direct file-system calls, when this task may use them: never with
/// `become`, since they run as the login user.
pub async fn direct_fs(ctx: &ModuleCtx<'_>) -> Result<Option<Arc<dyn RemoteFs>>, ModError> {
    if ctx.become_.is_some() {
        return Ok(None);
    }
    Ok(ctx.connection().await?.remote_fs().await?)
}

/// A refusal means "do it with a script instead"; a broken connection is an error.
fn refused<T>(r: Result<T, FsError>) -> Result<Option<T>, ModError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(FsError::Refused(why)) => {
            tracing::debug!(%why, "direct file call refused; using a script");
            Ok(None)
        }
        Err(FsError::Conn(e)) => Err(e.into()),
    }
}

/// `dirname` as the probe script's `dirname --` computes it.
fn dirname(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { "." } else { "/" };
    }
    match t.rfind('/') {
        None => ".",
        Some(i) => match t[..i].trim_end_matches('/') {
            "" => "/",
            d => d,
        },
    }
}

/// Largest existing file `probe_direct` reads to compare; bigger ones are hashed on the target.
const DIRECT_READ_MAX: u64 = 1024 * 1024;

/// copy's probe of its destination with direct calls, for the two common cases: nothing there
/// yet (with its parent a directory), or a regular file small enough to read and hash here.
/// `join_if_dir` is applied like the probe script does; `content_max` as in [`ProbeOpts`]. The
/// umask is not known: callers must not need it (no symbolic modes). `None` for everything
/// else (links, directories, missing parents, `~` paths, a refused call): the probe script.
pub async fn probe_direct(
    fs: &dyn RemoteFs,
    path: &str,
    join_if_dir: Option<&str>,
    content_max: Option<u64>,
) -> Result<Option<Probe>, ModError> {
    if path.starts_with('~') || path.is_empty() {
        return Ok(None);
    }
    let is = |a: &FsAttrs, t: u32| a.mode & 0o170000 == t;
    let mut p = path.to_string();
    if let Some(alt) = join_if_dir {
        let Some(st) = refused(fs.stat(&p).await)? else {
            return Ok(None);
        };
        if st.is_some_and(|a| is(&a, 0o040000)) {
            p = format!("{}/{alt}", p.strip_suffix('/').unwrap_or(&p));
        }
    }
    match refused(fs.stat(dirname(&p)).await)? {
        Some(Some(a)) if is(&a, 0o040000) => {}
        _ => return Ok(None),
    }
    let a = match refused(fs.lstat(&p).await)? {
        Some(None) => {
            return Ok(Some(Probe {
                path: p,
                parent_exists: true,
                ..Default::default()
            }));
        }
        Some(Some(a)) if is(&a, 0o100000) && a.size <= DIRECT_READ_MAX => a,
        _ => return Ok(None),
    };
    let Some(Some(data)) = refused(fs.read(&p, DIRECT_READ_MAX).await)? else {
        return Ok(None);
    };
    let Some(Some(nlink)) = refused(fs.nlink(&p).await)? else {
        return Ok(None);
    };
    let Some((un, gn)) = refused(fs.id_names(a.uid, a.gid).await)? else {
        return Ok(None);
    };
    let size = data.len() as u64;
    Ok(Some(Probe {
        path: p,
        lstat: Some(FileStat::from_fs(&FsAttrs { size, ..a }, nlink, un, gn)),
        parent_exists: true,
        readable: true,
        checksum: Some(crate::modules::source::sha1_hex(&data)),
        content: content_max.filter(|m| size <= *m).map(|_| data),
        ..Default::default()
    }))
}

/// An `owner`/`group` argument as an id: numeric, or the name the target gives `current`.
/// `None`: a name for another id, which only the target can resolve (the script path).
fn wanted_id(want: Option<&str>, current: u32, current_name: Option<&str>) -> Option<u32> {
    match want {
        None => Some(current),
        Some(w) => match w.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => (current_name == Some(w)).then_some(current),
        },
    }
}

/// The install script's work done with direct calls and no process on the target: create the
/// temporary file with the content, then the same chmod/chown steps in the same order, then
/// the atomic rename. Only for an in-place install without validate, backup or missing
/// parents. `i.base_mode: None` takes the mode a new file gets (0666 less the umask) from the
/// file itself. `Ok(None)` when the target refused a call: nothing has changed then, and the
/// caller uploads and runs the script, which reports any problem the usual way.
pub async fn install_direct(
    fs: &dyn RemoteFs,
    content: FsContent<'_>,
    i: &Install,
) -> Result<Option<Installed>, ModError> {
    if !matches!(i.staged, Staged::InPlace) || i.validate.is_some() || i.backup || i.make_parents {
        return Ok(None);
    }
    let tmp = i.tmp.as_str();
    let perm = if i.base_mode.is_none() && i.attrs.mode.is_none() {
        0o666
    } else {
        0o600
    };
    if refused(fs.create(tmp, content, perm).await)?.is_none() {
        return Ok(None);
    }
    let steps = async {
        let Some(Some(created)) = refused(fs.lstat(tmp).await)? else {
            return Ok(None);
        };
        let bm = i.base_mode.unwrap_or(created.mode & 0o7777);
        let first = i.attrs.mode.unwrap_or(bm);
        if first != created.mode & 0o7777 && refused(fs.chmod(tmp, first).await)?.is_none() {
            return Ok(None);
        }
        if let Some((u, g)) = i.keep_owner.as_deref().and_then(|k| k.split_once(':'))
            && let (Ok(u), Ok(g)) = (u.parse(), g.parse())
        {
            // Ignored when refused, like Ansible does.
            refused(fs.chown(tmp, u, g).await)?;
        }
        let Some(Some(mut pre)) = refused(fs.lstat(tmp).await)? else {
            return Ok(None);
        };
        if let (Some(m), Some(_)) = (i.attrs.mode, &i.keep_owner)
            && refused(fs.chmod(tmp, m).await)?.is_none()
        {
            return Ok(None);
        }
        if i.attrs.owner.is_some() || i.attrs.group.is_some() {
            let Some(cur) = refused(fs.lstat(tmp).await)?.flatten() else {
                return Ok(None);
            };
            let Some((un, gn)) = refused(fs.id_names(cur.uid, cur.gid).await)? else {
                return Ok(None);
            };
            let uid = wanted_id(i.attrs.owner.as_deref(), cur.uid, un.as_deref());
            let gid = wanted_id(i.attrs.group.as_deref(), cur.gid, gn.as_deref());
            let (Some(uid), Some(gid)) = (uid, gid) else {
                return Ok(None);
            };
            // Even to the same ids, as the script's chown does (it clears set-id bits).
            if refused(fs.chown(tmp, uid, gid).await)?.is_none() {
                return Ok(None);
            }
        }
        let Some(Some(fin)) = refused(fs.lstat(tmp).await)? else {
            return Ok(None);
        };
        if refused(fs.rename(tmp, &i.dest).await)?.is_none() {
            return Ok(None);
        }
        let (un, gn) = fs.id_names(fin.uid, fin.gid).await.map_err(|e| match e {
            FsError::Conn(c) => ModError::from(c),
            FsError::Refused(m) => ModError::msg(m),
        })?;
        pre.mode = (pre.mode & !0o7777) | (bm & 0o7777);
        Ok(Some(Installed {
            stat: FileStat::from_fs(&fin, 1, un.clone(), gn.clone()),
            before_attrs: Some(FileStat::from_fs(&pre, 1, un, gn)),
            backup_file: None,
        }))
    };
    let r: Result<Option<Installed>, ModError> = steps.await;
    if !matches!(r, Ok(Some(_))) {
        let _ = fs.remove(tmp).await;
    }
    r
}

/// A temporary name beside `dest` (same directory, so the final rename is atomic).
pub fn tmp_beside(dest: &str) -> String {
    let (dir, base) = match dest.rsplit_once('/') {
        Some((d, b)) => (if d.is_empty() { "/" } else { d }, b),
        None => (".", dest),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let sep = if dir.ends_with('/') { "" } else { "/" };
    format!("{dir}{sep}.{base}.mixop-{}.tmp", &id[..12])
}

/// A staging name in the target's /tmp, for uploads that cannot go beside `dest` directly.
pub fn tmp_staging() -> String {
    format!("/tmp/.mixop-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse() {
        let st = FileStat::parse(
            "81a4 0 0 12 1700000000 1700000001 1700000002 42 1 2049 8 4096 0 0 root root",
        )
        .unwrap();
        assert_eq!(st.kind(), Kind::File);
        assert_eq!(st.mode_str(), "0644");
        assert_eq!(
            (st.uid, st.size, st.mtime, st.inode),
            (0, 12, 1700000001, 42)
        );
        assert_eq!(st.owner.as_deref(), Some("root"));
        assert!(st.owner_is("root") && st.owner_is("0") && !st.owner_is("1"));
        let d =
            FileStat::parse("41ed 1000 1000 4096 1 2 3 4 2 5 8 4096 0 0 UNKNOWN UNKNOWN").unwrap();
        assert_eq!(d.kind(), Kind::Dir);
        assert_eq!(d.perm(), 0o755);
        assert_eq!(d.owner_name(), "1000");
        let l = FileStat::parse("a1ff 0 0 7 1 2 3 4 1 5 0 4096 0 0 root root").unwrap();
        assert_eq!(l.kind(), Kind::Link);
        let c = FileStat::parse("21b6 0 0 0 1 2 3 4 1 5 0 4096 1 3 root root").unwrap();
        assert_eq!((c.kind(), c.rdev), (Kind::Char, 259));
        assert!(FileStat::parse("81a4 0 0").is_none());
        assert!(FileStat::parse("zz 0 0 12 1 2 3 4 1 5 8 4096 0 0 a b").is_none());
    }

    #[test]
    fn replies_split_pairs_and_data() {
        let r = Reply::parse(b"path=/a b\nexists=0\nx=1=2\n::data::\nline1\n::data::\n");
        assert_eq!(r.get("path"), Some("/a b"));
        assert_eq!(r.get("x"), Some("1=2"));
        assert_eq!(r.data.as_deref(), Some(&b"line1\n::data::\n"[..]));
        let r = Reply::parse(b"a=1\na=2");
        assert_eq!(r.all("a").collect::<Vec<_>>(), vec!["1", "2"]);
        assert!(r.data.is_none());
    }

    #[test]
    fn tree_entries_keep_spaces_in_names() {
        let reply = Reply::parse(
            b"path=/d\nlstat=41ed 0 0 4096 1 2 3 4 2 5 8 4096 0 0 root root\nentry=81a4 0 0 3 1 2 3 9 1 5 8 4096 0 0 root root ./a b/c d\n",
        );
        let p = Probe::from_reply(reply).unwrap();
        assert_eq!(p.tree.len(), 1);
        assert_eq!(p.tree[0].0, "a b/c d");
        assert_eq!(p.state(), "directory");
    }

    #[test]
    fn tilde_paths_expand_in_sh() {
        assert_eq!(sh_path("~/x y"), "\"$HOME\"/'x y'");
        assert_eq!(sh_path("~"), "\"$HOME\"");
        assert_eq!(sh_path("~root/a"), "~root/a");
        assert_eq!(sh_path("/a/~b"), "'/a/~b'");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("p={}; printf %s \"$p\"", sh_path("~/q r")))
            .env("HOME", "/home/u")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/home/u/q r");
    }

    #[test]
    fn dirname_matches_the_shell() {
        for (p, want) in [
            ("/tmp/a", "/tmp"),
            ("/a", "/"),
            ("a", "."),
            ("a/b", "a"),
            ("a//b", "a"),
            ("/a/b/", "/a"),
            ("/", "/"),
            ("//x", "/"),
        ] {
            assert_eq!(dirname(p), want, "{p}");
            let out = std::process::Command::new("dirname")
                .arg("--")
                .arg(p)
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), want, "{p}");
        }
    }

    #[test]
    fn owner_arguments_resolve_without_the_target_only_when_they_can() {
        assert_eq!(wanted_id(None, 7, None), Some(7));
        assert_eq!(wanted_id(Some("0"), 7, Some("u")), Some(0));
        assert_eq!(wanted_id(Some("u"), 7, Some("u")), Some(7));
        assert_eq!(wanted_id(Some("root"), 7, Some("u")), None);
        assert_eq!(wanted_id(Some("root"), 7, None), None);
    }

    #[test]
    fn temporary_names_stay_beside_dest() {
        let t = tmp_beside("/etc/app/conf.yml");
        assert!(
            t.starts_with("/etc/app/.conf.yml.mixop-") && t.ends_with(".tmp"),
            "{t}"
        );
        assert!(tmp_beside("/x").starts_with("/.x.mixop-"));
        assert!(tmp_beside("rel").starts_with("./.rel.mixop-"));
    }
}
