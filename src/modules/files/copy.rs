//! `copy` and `template`: put content at a destination with attributes, idempotently.
//!
//! One probe of the destination (type, attributes, sha1, and the old text when `--diff` is on)
//! decides everything; an unchanged file costs that single round trip. A change uploads the
//! content beside the destination and one install script applies mode/owner/group, runs
//! `validate`, makes the backup and renames it into place atomically.

use crate::connection::FsContent;
use crate::modules::Target;
use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use serde_json::Value;

use super::file_params;
use super::remote::{self, AttrChange, FileStat, Install, Kind, ProbeOpts, Staged};
use super::{AttrArgs, BUILTIN, ModeSpec, Wanted, add_path_info, content_diff, validate_command};
use crate::modules::ParamType::*;
use crate::modules::source::{
    self, Content, CopySource, Decision, MAX_DIFF_BYTES, file_name, walk_local,
};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, outcome, p, posix,
    req, typed,
};

static COPY_DEF: ModuleDef = ModuleDef {
    name: "copy",
    namespaces: BUILTIN,
    params: file_params![
        p("src", Str),
        p("content", Any),
        req("dest", Str),
        p("force", Bool),
        p("backup", Bool),
        p("remote_src", Bool),
        p("validate", Str),
        p("follow", Bool),
        p("directory_mode", Any),
        p("checksum", Str),
        p("decrypt", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["src", "content"]],
    required_one_of: &[&["src", "content"]],
};

static TEMPLATE_DEF: ModuleDef = ModuleDef {
    name: "template",
    namespaces: BUILTIN,
    params: file_params![
        req("src", Str),
        req("dest", Str),
        p("force", Bool),
        p("backup", Bool),
        p("validate", Str),
        p("follow", Bool),
        p("newline_sequence", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// "Put this content at dest with these attributes, idempotently."
pub struct PutRequest {
    /// `dest` as the task gave it.
    pub dest: String,
    /// Name to use inside `dest` when it is a directory or ends with `/`; None refuses a
    /// directory (inline `content`).
    pub basename: Option<String>,
    pub content: Content,
    /// What the result reports as `src`, and the diff's `after_header`.
    pub src_label: String,
    pub wanted: Wanted,
    pub force: bool,
    pub backup: bool,
    pub validate: Option<String>,
    pub follow: bool,
    pub directory_mode: Option<u32>,
    /// `checksum` argument: the expected sha1 of the source.
    pub expect_checksum: Option<String>,
}

/// `dest` with `name` joined when it ends with `/` (Ansible's trailing-slash rule).
pub fn join_dest(dest: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if dest.ends_with('/') => format!("{dest}{n}"),
        _ => dest.to_string(),
    }
}

/// The source as probed: sha1, size, and its permission bits (for `mode: preserve` and, with
/// `remote_src`, the new file's mode); inline content has none.
#[derive(Debug, Clone)]
struct Source {
    sum: String,
    size: u64,
    mode: Option<u32>,
}

/// Round trip 1 (or direct file-system calls): the source's checksum and what is at dest.
async fn probe_put(
    ctx: &ModuleCtx<'_>,
    req: &PutRequest,
    fs: Option<&dyn crate::connection::RemoteFs>,
) -> Result<(Source, remote::Probe), ModError> {
    let diff_max = ctx.diff.then_some(MAX_DIFF_BYTES);
    let dest_opts = ProbeOpts {
        follow: req.follow,
        join_if_dir: req.basename.clone(),
        checksum: Some("sha1".into()),
        content_max: diff_max,
        ..Default::default()
    };
    let first = join_dest(&req.dest, req.basename.as_deref());
    match &req.content {
        Content::Bytes(_) | Content::Local(_) => {
            let (sum, size) = req.content.digest()?.unwrap_or_default();
            let mode = match &req.content {
                Content::Local(p) => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::metadata(p)
                        .ok()
                        .map(|m| m.permissions().mode() & 0o7777)
                }
                _ => None,
            };
            // A symbolic mode needs the target's umask, which only the probe script reports.
            let direct = match fs {
                Some(fs) if !matches!(req.wanted.mode, Some(ModeSpec::Symbolic(_))) => {
                    let join = req.basename.as_deref();
                    remote::probe_direct(fs, &first, join, diff_max).await?
                }
                _ => None,
            };
            let probe = match direct {
                Some(p) => p,
                None => remote::probe(ctx, &first, &dest_opts).await?,
            };
            Ok((Source { sum, size, mode }, probe))
        }
        Content::Remote(src) => {
            let src_opts = ProbeOpts {
                follow: true,
                checksum: Some("sha1".into()),
                ..Default::default()
            };
            let (sp, dp) =
                remote::probe_pair(ctx, (src.as_str(), &src_opts), (&first, &dest_opts)).await?;
            let Some(st) = sp.effective(true) else {
                return Err(ModError::msg(format!("Source {src} not found")));
            };
            if st.kind() != Kind::File {
                return Err(ModError::msg(format!(
                    "Cannot copy invalid source '{src}': not a file"
                )));
            }
            let sum = sp
                .checksum
                .clone()
                .ok_or_else(|| ModError::msg(format!("Source {src} not readable")))?;
            let source = Source {
                sum,
                size: st.size,
                mode: Some(st.perm()),
            };
            Ok((source, dp))
        }
    }
}

/// What `put_content` does about dest.
#[derive(Debug)]
enum PutPlan {
    /// dest exists and `force` is off: leave it alone.
    Keep,
    /// dest (`real`, the file a followed link points to) has the content; only these
    /// attributes change, maybe none.
    Same {
        real: String,
        stat: FileStat,
        attrs: AttrChange,
    },
    /// New content, installed at `install.dest`.
    Write {
        install: Install,
        /// Where the content goes first (`Staged::Moved`'s path, or the temporary file for
        /// `Staged::InPlace`); None when it is copied on the target.
        upload: Option<String>,
    },
}

/// Decide from the request, the probed source and dest. `staging_needed`: the content cannot
/// be written beside dest by the connecting user (become). A pure function apart from the
/// random temporary names.
fn plan_put(
    req: &PutRequest,
    src: &Source,
    probe: &remote::Probe,
    staging_needed: bool,
) -> Result<PutPlan, ModError> {
    if let Some(want) = &req.expect_checksum
        && want != &src.sum
    {
        let mut result = Outcome::new();
        result.insert("checksum".into(), src.sum.clone().into());
        result.insert("expected_checksum".into(), want.clone().into());
        return Err(ModError::Failed {
            msg: "Copied file does not match the expected checksum. Transfer failed.".into(),
            result,
        });
    }
    let mut wanted = req.wanted.clone();
    if wanted.mode == Some(ModeSpec::Preserve) {
        wanted.mode = src.mode.map(ModeSpec::Octal);
    }
    let path = &probe.path;
    let is_link = probe.lstat.as_ref().is_some_and(|s| s.kind() == Kind::Link);
    let current = probe.effective(req.follow);
    if current.is_some_and(|s| s.kind() == Kind::Dir) {
        return Err(ModError::msg(if req.basename.is_none() {
            "can not use content with a dir as dest".to_string()
        } else {
            format!("{path} is a directory; cannot replace it with a file")
        }));
    }
    // Without `follow`, a symlink at dest is always replaced by a file (Ansible).
    let comparable = (req.follow || !is_link)
        .then_some(probe.checksum.as_deref())
        .flatten();
    let decision = source::decide(probe.lstat.is_some(), comparable, &src.sum, req.force);
    if decision == Decision::KeepExisting {
        return Ok(PutPlan::Keep);
    }
    let make_parents = !probe.parent_exists;
    if make_parents && !req.dest.ends_with('/') {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
        return Err(ModError::msg(format!(
            "Destination directory {dir} does not exist"
        )));
    }
    // With `follow`, a symlinked destination is written through to its target.
    let real = match (&probe.lnk_source, req.follow) {
        (Some(t), true) => t.clone(),
        _ => path.clone(),
    };
    if decision == Decision::Same {
        let stat = current
            .cloned()
            .ok_or_else(|| ModError::msg(format!("{path}: cannot read it")))?;
        let attrs = wanted.change_for(&stat, probe.umask)?;
        return Ok(PutPlan::Same { real, stat, attrs });
    }
    let tmp = remote::tmp_beside(&real);
    let staged = match &req.content {
        Content::Remote(src) => Staged::Copied(src.clone()),
        _ if !staging_needed && !make_parents => Staged::InPlace,
        _ => Staged::Moved(remote::tmp_staging()),
    };
    let upload = match &staged {
        Staged::InPlace => Some(tmp.clone()),
        Staged::Moved(up) => Some(up.clone()),
        Staged::Copied(_) => None,
    };
    // Replacing keeps the old file's mode and owner (Ansible's atomic_move); remote_src takes
    // the source's mode instead (copystat).
    let remote_src = matches!(req.content, Content::Remote(_));
    let base_mode = if remote_src {
        src.mode
    } else {
        current.map(FileStat::perm)
    };
    let keep_owner = current
        .filter(|_| !remote_src)
        .map(|s| format!("{}:{}", s.uid, s.gid));
    let attrs = wanted.for_new(base_mode.unwrap_or(0o666 & !probe.umask), probe.umask)?;
    let validate = req.validate.as_deref();
    Ok(PutPlan::Write {
        install: Install {
            dest: real,
            validate: validate.map(|v| validate_command(v, &tmp)).transpose()?,
            tmp,
            staged,
            base_mode,
            keep_owner,
            attrs,
            backup: req.backup,
            make_parents,
            dir_mode: req.directory_mode,
        },
        upload,
    })
}

/// Put the request's content at its destination: probe, plan, then change only what differs.
pub async fn put_content(ctx: &ModuleCtx<'_>, req: PutRequest) -> ModResult {
    // Direct file-system calls (SFTP) for content from the controller: a destination that
    // does not exist yet is found, and any new file installed, without a process on the target.
    let fs = match &req.content {
        Content::Remote(_) => None,
        _ => remote::direct_fs(ctx).await?,
    };
    let (src, probe) = probe_put(ctx, &req, fs.as_deref()).await?;
    let (install, upload) = match plan_put(&req, &src, &probe, ctx.become_.is_some())? {
        PutPlan::Keep => {
            let mut r = outcome(false);
            r.insert("dest".into(), req.dest.clone().into());
            r.insert("src".into(), req.src_label.clone().into());
            return Ok(r);
        }
        PutPlan::Same { real, stat, attrs } => {
            let changed = !attrs.is_empty();
            let stat = if changed && !ctx.check_mode {
                remote::apply_attrs(ctx, &real, &attrs, false).await?.0
            } else {
                stat
            };
            let mut r = outcome(changed);
            r.insert("dest".into(), real.clone().into());
            r.insert("path".into(), real.into());
            r.insert("checksum".into(), src.sum.into());
            add_path_info(&mut r, &stat);
            return Ok(r);
        }
        PutPlan::Write { install, upload } => (install, upload),
    };
    let real = &install.dest;
    let mut r = outcome(true);
    if ctx.diff {
        let current = probe.effective(req.follow);
        let before_size = current.map(|s| s.size).unwrap_or(0);
        let before = match current {
            Some(_) => probe.content.as_deref(),
            None => Some(&b""[..]),
        };
        let after = req.content.diff_bytes(src.size);
        let diff = content_diff(
            real,
            before,
            before_size,
            &req.src_label,
            after.as_deref(),
            src.size,
        );
        r.insert("diff".into(), diff);
    }
    r.insert("dest".into(), real.clone().into());
    r.insert("checksum".into(), src.sum.clone().into());
    if ctx.check_mode {
        return Ok(r);
    }
    let direct = match (&fs, &req.content) {
        (Some(fs), Content::Bytes(b)) => {
            remote::install_direct(fs.as_ref(), FsContent::Bytes(b), &install).await?
        }
        (Some(fs), Content::Local(p)) => {
            remote::install_direct(fs.as_ref(), FsContent::File(p), &install).await?
        }
        _ => None,
    };
    let installed = match direct {
        Some(done) => done,
        None => {
            if let Some(up) = &upload {
                let conn = ctx.connection().await?;
                match &req.content {
                    Content::Bytes(b) => conn.put_bytes(b, up, Some(0o600)).await?,
                    Content::Local(p) => conn.put_file(p, up, Some(0o600)).await?,
                    Content::Remote(_) => {}
                }
            }
            remote::install(ctx, &install).await?
        }
    };
    r.insert("src".into(), req.src_label.into());
    if let Some(b) = installed.backup_file {
        r.insert("backup_file".into(), b.into());
    }
    add_path_info(&mut r, &installed.stat);
    Ok(r)
}

pub struct Copy;
pub struct Template;

/// What `copy` and `template` both take (see their `ModuleDef`s), with Ansible's defaults.
#[derive(Debug, serde::Deserialize)]
struct PutArgs {
    dest: String,
    #[serde(default = "crate::modules::yes")]
    force: bool,
    #[serde(default)]
    backup: bool,
    validate: Option<String>,
    #[serde(default)]
    follow: bool,
    #[serde(flatten)]
    attrs: AttrArgs,
}

impl PutArgs {
    /// The request for `content` at `dest`, with these arguments.
    fn request(
        &self,
        content: Content,
        basename: Option<String>,
        src_label: String,
    ) -> Result<PutRequest, ModError> {
        Ok(PutRequest {
            dest: self.dest.clone(),
            basename,
            content,
            src_label,
            wanted: Wanted::from_attrs(&self.attrs, true)?,
            force: self.force,
            backup: self.backup,
            validate: self.validate.clone(),
            follow: self.follow,
            directory_mode: None,
            expect_checksum: None,
        })
    }
}

/// `copy`'s own arguments besides `PutArgs` (`content`, `remote_src` and `decrypt` are read by
/// `source::copy_source`).
#[derive(Debug, serde::Deserialize)]
struct CopyArgs {
    src: Option<String>,
    directory_mode: Option<Value>,
    checksum: Option<String>,
    #[serde(flatten)]
    put: PutArgs,
}

#[async_trait]
impl Module for Copy {
    fn def(&self) -> &'static ModuleDef {
        &COPY_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: CopyArgs = typed(&args)?;
        let dest = a.put.dest.clone();
        if dest.is_empty() {
            return Err(ModError::msg("dest is required"));
        }
        // Argument errors before the source is looked at.
        let wanted = Wanted::from_attrs(&a.put.attrs, true)?;
        let directory_mode = match &a.directory_mode {
            None => None,
            Some(v) => Some(
                crate::modules::parse_mode(v)
                    .map_err(|e| ModError::msg(format!("directory_mode: {e}")))?,
            ),
        };
        let base = |content, basename, src_label| -> Result<PutRequest, ModError> {
            Ok(PutRequest {
                wanted: wanted.clone(),
                directory_mode,
                expect_checksum: a.checksum.clone(),
                ..a.put.request(content, basename, src_label)?
            })
        };

        match source::copy_source(ctx, &args, &['/'])? {
            CopySource::Inline(bytes) => {
                if dest.ends_with('/') {
                    return Err(ModError::msg("can not use content with a dir as dest"));
                }
                put_content(ctx, base(Content::Bytes(bytes), None, String::new())?).await
            }
            CopySource::Remote(src) => {
                copy_remote(
                    ctx,
                    &src,
                    base(Content::Remote(src.clone()), None, src.clone())?,
                )
                .await
            }
            CopySource::Dir {
                path,
                trailing,
                decrypt,
            } => {
                let label = a.src.clone().unwrap_or_default();
                copy_tree(
                    ctx,
                    &path,
                    trailing,
                    decrypt,
                    base(Content::Bytes(vec![]), None, label)?,
                )
                .await
            }
            CopySource::File {
                path,
                name,
                content,
            } => {
                let label = path.display().to_string();
                put_content(ctx, base(content, Some(name), label)?).await
            }
        }
    }
}

#[async_trait]
impl Module for Template {
    fn def(&self) -> &'static ModuleDef {
        &TEMPLATE_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: PutArgs = typed(&args)?;
        let rendered = source::render_template(ctx, &args, "\n")?;
        let req = a.request(
            Content::Bytes(rendered.bytes),
            Some(rendered.name),
            rendered.path.display().to_string(),
        )?;
        put_content(ctx, req).await
    }
}

/// Where a directory copy lands: `src/` copies the contents into `dest`, `src` copies the
/// directory itself into `dest/<name>`.
pub fn tree_base(dest: &str, src_name: &str, trailing_slash: bool) -> String {
    let d = dest.trim_end_matches('/');
    let d = if d.is_empty() && dest.starts_with('/') {
        ""
    } else {
        d
    };
    if trailing_slash {
        if d.is_empty() {
            "/".into()
        } else {
            d.to_string()
        }
    } else {
        format!("{d}/{src_name}")
    }
}

/// Recursive copy of a controller directory: one probe lists the remote tree with checksums,
/// changed files are uploaded, and one batch script creates directories, installs the files
/// and fixes attributes.
async fn copy_tree(
    ctx: &ModuleCtx<'_>,
    src: &Path,
    trailing: bool,
    decrypt: bool,
    req: PutRequest,
) -> ModResult {
    let local = walk_local(src, decrypt)?;
    let base = tree_base(&req.dest, &file_name(src), trailing);
    let probe = remote::probe(
        ctx,
        &base,
        &ProbeOpts {
            follow: false,
            checksum: Some("sha1".into()),
            list_tree: true,
            ..Default::default()
        },
    )
    .await?;
    let base = probe.path.clone();
    let remote_kind = |rel: &str| -> Option<&FileStat> {
        probe.tree.iter().find(|(n, _)| n == rel).map(|(_, st)| st)
    };
    match probe.lstat.as_ref().map(FileStat::kind) {
        None | Some(Kind::Dir) => {}
        Some(_) => {
            return Err(ModError::msg(format!(
                "{base} exists and is not a directory"
            )));
        }
    }
    let dir_wanted = Wanted {
        mode: req.directory_mode.map(ModeSpec::Octal),
        owner: req.wanted.owner.clone(),
        group: req.wanted.group.clone(),
    };
    let mut frags = Vec::new();
    let mut changed = false;
    // Directories: create the missing ones (with directory_mode/owner/group), fix the others.
    let mut all_dirs = vec![String::new()];
    all_dirs.extend(local.dirs.iter().cloned());
    let mut missing_dirs: HashSet<String> = HashSet::new();
    for rel in &all_dirs {
        let full = if rel.is_empty() {
            base.clone()
        } else {
            format!("{base}/{rel}")
        };
        let st = if rel.is_empty() {
            probe.lstat.as_ref()
        } else {
            remote_kind(rel)
        };
        match st {
            None => {
                missing_dirs.insert(rel.clone());
                changed = true;
                frags.push(remote::fragment(
                    &[
                        ("d", posix::quote(&full)),
                        (
                            "dmode",
                            req.directory_mode
                                .map(|m| format!("{m:04o}"))
                                .unwrap_or_default(),
                        ),
                        (
                            "down",
                            dir_wanted
                                .owner
                                .as_deref()
                                .map(posix::quote)
                                .unwrap_or_default(),
                        ),
                        (
                            "dgrp",
                            dir_wanted
                                .group
                                .as_deref()
                                .map(posix::quote)
                                .unwrap_or_default(),
                        ),
                    ],
                    "_mkdirs \"$d\" || exit 0",
                ));
            }
            Some(st) if st.kind() == Kind::Dir => {
                let ch = dir_wanted.change_for(st, probe.umask)?;
                if !ch.is_empty() {
                    changed = true;
                    frags.push(remote::fragment(
                        &remote::attr_vars(&full, &ch, false),
                        remote::ATTRS,
                    ));
                }
            }
            Some(_) => {
                return Err(ModError::msg(format!(
                    "{full} exists and is not a directory"
                )));
            }
        }
    }
    // Files.
    let conn = ctx.connection().await?;
    let mut uploads = Vec::new();
    for (rel, (content, sum, lmode, _)) in &local.files {
        let full = format!("{base}/{rel}");
        let mut wanted = req.wanted.clone();
        if wanted.mode == Some(ModeSpec::Preserve) {
            wanted.mode = Some(ModeSpec::Octal(*lmode));
        }
        let st = remote_kind(rel);
        if let Some(st) = st {
            if st.kind() == Kind::Dir {
                return Err(ModError::msg(format!(
                    "{full} is a directory; cannot replace it with a file"
                )));
            }
            if !req.force {
                continue;
            }
            if st.kind() == Kind::File && probe.sums.get(rel) == Some(sum) {
                let ch = wanted.change_for(st, probe.umask)?;
                if !ch.is_empty() {
                    changed = true;
                    frags.push(remote::fragment(
                        &remote::attr_vars(&full, &ch, false),
                        remote::ATTRS,
                    ));
                }
                continue;
            }
        }
        changed = true;
        let parent = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let parent_missing = missing_dirs.contains(parent);
        let tmp = remote::tmp_beside(&full);
        let staged = if ctx.become_.is_none() && !parent_missing {
            Staged::InPlace
        } else {
            Staged::Moved(remote::tmp_staging())
        };
        let upload = match &staged {
            Staged::Moved(up) => up.clone(),
            _ => tmp.clone(),
        };
        let existing = st.filter(|s| s.kind() == Kind::File);
        let base_mode = existing.map(FileStat::perm);
        let install = Install {
            dest: full,
            tmp,
            staged,
            base_mode,
            keep_owner: existing.map(|s| format!("{}:{}", s.uid, s.gid)),
            attrs: wanted.for_new(base_mode.unwrap_or(0o666 & !probe.umask), probe.umask)?,
            backup: false,
            validate: None,
            make_parents: false,
            dir_mode: None,
        };
        uploads.push((content, upload));
        frags.push(remote::fragment(
            &remote::install_vars(&install),
            remote::INSTALL,
        ));
    }
    let mut r = outcome(changed);
    r.insert("dest".into(), req.dest.clone().into());
    r.insert("src".into(), req.src_label.clone().into());
    if !changed || ctx.check_mode {
        return Ok(r);
    }
    for (content, up) in &uploads {
        match content {
            Content::Local(p) => conn.put_file(p, up, Some(0o600)).await?,
            Content::Bytes(b) => conn.put_bytes(b, up, Some(0o600)).await?,
            Content::Remote(_) => {}
        }
    }
    remote::run(ctx, remote::batch(&frags)).await?;
    Ok(r)
}

const REMOTE_TREE_BODY: &str = r#"
[ -d "$s" ] || { _err "Source $s not found"; exit 0; }
if [ ! -d "$b" ]; then echo changed=1; [ -n "$chk" ] || { _mkq=1; _mkdirs "$b" || exit 0; _mkq=; }; fi
cd -- "$s" || { _err "cannot enter $s"; exit 0; }
find . -mindepth 1 -type d | while IFS= read -r d; do
  [ -d "$b/$d" ] && continue
  echo changed=1
  [ -n "$chk" ] || mkdir -p -- "$b/$d" || { _err "cannot create $b/$d"; exit 1; }
done
find . -type f | while IFS= read -r f; do
  if [ -f "$b/$f" ] && cmp -s -- "$f" "$b/$f"; then
    t=$b/$f
  else
    echo changed=1
    [ -n "$chk" ] && continue
    t=$b/$f
    n=$(dirname -- "$t")/.mixop-$$.tmp
    e=$( (cp -p -- "$f" "$n" && mv -f -- "$n" "$t") 2>&1) || { rm -f -- "$n"; _err "cannot copy $f: $e"; exit 1; }
  fi
  [ -n "$chk" ] && continue
  if [ -n "$mode" ] && [ "$(stat -c %a -- "$t")" != "$(printf '%o' 0$mode)" ]; then echo changed=1; chmod -- "$mode" "$t"; fi
  if [ -n "$own" ] && ! [ "$(stat -c %U -- "$t")" = "$own" -o "$(stat -c %u -- "$t")" = "$own" ]; then echo changed=1; chown -- "$own" "$t"; fi
  if [ -n "$grp" ] && ! [ "$(stat -c %G -- "$t")" = "$grp" -o "$(stat -c %g -- "$t")" = "$grp" ]; then echo changed=1; chgrp -- "$grp" "$t"; fi
done
"#;

/// `remote_src: true`: a file is copied like any other content (one probe of both ends); a
/// directory is synchronised by one script on the target (`cmp` per file, `cp -p` when they
/// differ).
async fn copy_remote(ctx: &ModuleCtx<'_>, src: &str, req: PutRequest) -> ModResult {
    let probe = remote::probe(
        ctx,
        src.trim_end_matches('/'),
        &ProbeOpts {
            follow: true,
            ..Default::default()
        },
    )
    .await?;
    let Some(st) = probe.effective(true) else {
        return Err(ModError::msg(format!("Source {src} not found")));
    };
    if st.kind() != Kind::Dir {
        let name = src.rsplit('/').next().unwrap_or(src).to_string();
        let req = PutRequest {
            basename: Some(name),
            ..req
        };
        return put_content(ctx, req).await;
    }
    let name = src
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let base = tree_base(&req.dest, name, src.ends_with('/'));
    let mode = match &req.wanted.mode {
        None | Some(ModeSpec::Preserve) => String::new(),
        Some(ModeSpec::Octal(m)) => format!("{m:04o}"),
        Some(ModeSpec::Symbolic(_)) => {
            return Err(ModError::msg(
                "symbolic modes are not supported when copying a directory with remote_src",
            ));
        }
    };
    let script = remote::script(
        &[
            ("s", remote::sh_path(&probe.path)),
            ("b", remote::sh_path(&base)),
            (
                "chk",
                if ctx.check_mode {
                    "1".into()
                } else {
                    String::new()
                },
            ),
            ("mode", mode),
            (
                "own",
                req.wanted
                    .owner
                    .as_deref()
                    .map(posix::quote)
                    .unwrap_or_default(),
            ),
            (
                "grp",
                req.wanted
                    .group
                    .as_deref()
                    .map(posix::quote)
                    .unwrap_or_default(),
            ),
            (
                "dmode",
                req.directory_mode
                    .map(|m| format!("{m:04o}"))
                    .unwrap_or_default(),
            ),
            ("down", String::new()),
            ("dgrp", String::new()),
        ],
        REMOTE_TREE_BODY,
    );
    let reply = remote::run(ctx, script).await?;
    let mut r = outcome(reply.flag("changed"));
    r.insert("dest".into(), base.into());
    r.insert("src".into(), src.into());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dest: &str, force: bool, mode: Option<ModeSpec>) -> PutRequest {
        PutRequest {
            dest: dest.into(),
            basename: None,
            content: Content::Bytes(b"new\n".to_vec()),
            src_label: String::new(),
            wanted: Wanted {
                mode,
                ..Wanted::default()
            },
            force,
            backup: false,
            validate: Some("visudo -cf %s".into()),
            follow: false,
            directory_mode: None,
            expect_checksum: None,
        }
    }

    fn dest(file: Option<(u32, &str)>) -> remote::Probe {
        remote::Probe {
            path: "/etc/app.conf".into(),
            lstat: file.map(|(mode, _)| FileStat::for_test(0o100000 | mode, 1)),
            checksum: file.map(|(_, sum)| sum.to_string()),
            parent_exists: true,
            umask: 0o022,
            ..remote::Probe::default()
        }
    }

    fn source(sum: &str) -> Source {
        Source {
            sum: sum.into(),
            size: 4,
            mode: Some(0o750),
        }
    }

    #[test]
    fn same_content_changes_only_attributes_and_force_off_keeps_any_file() {
        let there = dest(Some((0o644, "aa")));
        match plan_put(
            &put("/etc/app.conf", true, None),
            &source("aa"),
            &there,
            false,
        ) {
            Ok(PutPlan::Same { real, attrs, .. }) => {
                assert_eq!(real, "/etc/app.conf");
                assert!(attrs.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let preserve = put("/etc/app.conf", true, Some(ModeSpec::Preserve));
        match plan_put(&preserve, &source("aa"), &there, false) {
            Ok(PutPlan::Same { attrs, .. }) => assert_eq!(attrs.mode, Some(0o750)),
            other => panic!("{other:?}"),
        }
        let keep = plan_put(
            &put("/etc/app.conf", false, None),
            &source("bb"),
            &there,
            false,
        );
        assert!(matches!(keep, Ok(PutPlan::Keep)));
        let mut expect = put("/etc/app.conf", true, None);
        expect.expect_checksum = Some("cc".into());
        let e = plan_put(&expect, &source("aa"), &there, false).unwrap_err();
        assert!(
            e.to_string()
                .contains("does not match the expected checksum")
        );
    }

    #[test]
    fn new_content_is_staged_beside_dest_unless_become_or_missing_parents() {
        let there = dest(Some((0o640, "aa")));
        match plan_put(
            &put("/etc/app.conf", true, None),
            &source("bb"),
            &there,
            false,
        ) {
            Ok(PutPlan::Write { install, upload }) => {
                assert!(matches!(install.staged, Staged::InPlace));
                assert_eq!(upload.as_deref(), Some(install.tmp.as_str()));
                assert!(install.tmp.starts_with("/etc/"), "{}", install.tmp);
                assert_eq!(install.base_mode, Some(0o640));
                assert_eq!(install.keep_owner.as_deref(), Some("0:0"));
                let v = install.validate.unwrap();
                assert!(
                    v.starts_with("visudo -cf ") && v.contains(&install.tmp),
                    "{v}"
                );
            }
            other => panic!("{other:?}"),
        }
        match plan_put(
            &put("/etc/app.conf", true, None),
            &source("bb"),
            &there,
            true,
        ) {
            Ok(PutPlan::Write { install, upload }) => {
                assert!(matches!(install.staged, Staged::Moved(ref up) if up.starts_with("/tmp/")));
                assert!(upload.unwrap().starts_with("/tmp/"));
            }
            other => panic!("{other:?}"),
        }
        let mut orphan = dest(None);
        orphan.parent_exists = false;
        let e = plan_put(
            &put("/etc/app.conf", true, None),
            &source("bb"),
            &orphan,
            false,
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "Destination directory /etc does not exist"
        );
        let into_dir = plan_put(&put("/etc/new/", true, None), &source("bb"), &orphan, false);
        match into_dir {
            Ok(PutPlan::Write { install, .. }) => {
                assert!(install.make_parents);
                assert_eq!(install.base_mode, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dest_resolution() {
        assert_eq!(join_dest("/etc/app/", Some("a.conf")), "/etc/app/a.conf");
        assert_eq!(join_dest("/etc/app", Some("a.conf")), "/etc/app");
        assert_eq!(join_dest("/etc/app/", None), "/etc/app/");
        assert_eq!(tree_base("/srv/www", "site", false), "/srv/www/site");
        assert_eq!(tree_base("/srv/www/", "site", false), "/srv/www/site");
        assert_eq!(tree_base("/srv/www/", "site", true), "/srv/www");
        assert_eq!(tree_base("/", "site", true), "/");
        assert_eq!(tree_base("/", "site", false), "/site");
        assert_eq!(tree_base("rel", "site", false), "rel/site");
    }
}
