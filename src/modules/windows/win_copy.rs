//! `win_copy` and `win_template` (ansible.windows): put content at a destination on a Windows
//! host, idempotently by SHA-1, the way ansible.windows.win_copy decides.
//!
//! The controller half — where the content comes from, rendering, checksums, the write/keep
//! decision, the diff — is `modules::source`, shared with `copy`/`template`. Here: one probe of
//! the destination (size first, SHA-1 only when the size matches, so a big changed file is not
//! hashed for nothing), a pure `plan`, then at most one apply request (directories, backup,
//! copies on the host) and one upload per changed file through the connection's atomic,
//! hash-checked `put_file`/`put_bytes`. An unchanged file is never sent again
//! (ansible/ansible#20027): a directory copy uploads only the files that differ.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::winpath::{has_trailing_sep, join, key, leaf, parent};
use super::{WINDOWS, finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::source::{self, Content, CopySource, Decision, MAX_DIFF_BYTES};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, p, req,
};

pub static SCRIPT: super::Script = script!("win_copy");

static COPY_DEF: ModuleDef = ModuleDef {
    name: "win_copy",
    namespaces: WINDOWS,
    params: &[
        p("src", Str),
        p("content", Any),
        req("dest", Str),
        p("remote_src", Bool),
        p("force", Bool),
        p("backup", Bool),
        // A vault-encrypted `src` file is decrypted on the controller unless `decrypt: false`.
        p("decrypt", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[&["src", "content"]],
    required_one_of: &[&["src", "content"]],
};

static TEMPLATE_DEF: ModuleDef = ModuleDef {
    name: "win_template",
    namespaces: WINDOWS,
    params: &[
        req("src", Str),
        req("dest", Str),
        p("force", Bool),
        p("backup", Bool),
        p("newline_sequence", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Deserialize)]
struct CopyArgs {
    dest: String,
    #[serde(default = "yes")]
    force: bool,
    #[serde(default)]
    backup: bool,
}

fn yes() -> bool {
    true
}

/// One path the probe reports on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Query {
    pub path: String,
    /// Report the SHA-1 of a file...
    pub checksum: bool,
    /// ...only when its size is this (a different size is a different file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_size: Option<u64>,
    /// Report the content (base64) of a file up to this size (for `--diff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<u64>,
}

impl Query {
    fn stat(path: &str) -> Query {
        Query {
            path: path.to_string(),
            checksum: false,
            expect_size: None,
            content: None,
        }
    }
    fn sum(path: &str, expect_size: Option<u64>, content: Option<u64>) -> Query {
        Query {
            path: path.to_string(),
            checksum: true,
            expect_size,
            content,
        }
    }
}

/// The probe's arguments.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ProbeArgs {
    pub dest: String,
    pub paths: Vec<Query>,
    /// Roots to list recursively (remote_src directories), with SHA-1 of every file.
    pub trees: Vec<String>,
}

/// What is at one queried path.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct Entry {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub content_b64: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Tree {
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default, deserialize_with = "list")]
    pub entries: Vec<TreeEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TreeEntry {
    /// Relative to the root, `\`-separated.
    pub rel: String,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Probe {
    #[serde(default, deserialize_with = "list")]
    pub paths: Vec<Entry>,
    #[serde(default, deserialize_with = "list")]
    pub trees: Vec<Tree>,
}

impl Probe {
    /// What the probe said about `path` (as queried); missing when it was not asked.
    pub fn entry(&self, path: &str) -> Entry {
        self.paths
            .iter()
            .find(|e| e.path == path)
            .cloned()
            .unwrap_or_else(|| Entry {
                path: path.to_string(),
                ..Default::default()
            })
    }
    pub fn tree(&self, root: &str) -> Option<&Tree> {
        self.trees.iter().find(|t| t.root == root)
    }
}

/// Where a file's new content is.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The task's controller content number N (uploaded).
    Controller(usize),
    /// A file on the host (`remote_src`: copied there).
    Host(String),
}

/// One file of the source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// Relative path in a directory copy (`\`-separated); empty for a single file.
    pub rel: String,
    pub checksum: String,
    pub size: u64,
    pub origin: Origin,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RemoteCopy {
    pub from: String,
    pub to: String,
}

/// What to do; the serialized part is what the apply step carries out.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Plan {
    /// Directories to create (with their parents).
    pub mkdirs: Vec<String>,
    /// The file to back up before it is replaced.
    pub backup: Option<String>,
    /// Copies on the host (remote_src).
    pub copies: Vec<RemoteCopy>,
    /// Uploads after apply: controller content number → destination.
    #[serde(skip)]
    pub uploads: Vec<(usize, String)>,
    /// The destination as resolved (a file, or a directory copy's base).
    #[serde(skip)]
    pub dest: String,
    /// What was at the (single file) destination.
    #[serde(skip)]
    pub before: Option<Entry>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        !self.mkdirs.is_empty() || !self.copies.is_empty() || !self.uploads.is_empty()
    }
    fn needs_apply(&self) -> bool {
        !self.mkdirs.is_empty() || self.backup.is_some() || !self.copies.is_empty()
    }
}

/// A single file to put at `dest`.
#[derive(Debug, Clone)]
pub struct FileReq<'a> {
    pub dest: &'a str,
    /// The name to use inside `dest` when it is a directory (or ends with a separator); None
    /// for inline `content`.
    pub basename: Option<&'a str>,
    pub src_label: &'a str,
    pub file: SourceFile,
    pub force: bool,
    pub backup: bool,
}

/// The paths the single-file plan needs to know about.
pub fn file_queries(
    dest: &str,
    basename: Option<&str>,
    size: Option<u64>,
    diff: Option<u64>,
) -> Vec<Query> {
    let mut q = vec![Query::sum(dest, size, diff)];
    if let Some(n) = basename {
        q.push(Query::sum(&join(dest, n), size, diff));
    }
    if let Some(par) = parent(dest) {
        q.push(Query::stat(&par));
    }
    q
}

/// A single file (ansible.windows.win_copy's "single" and "remote" file modes).
pub fn plan_file(probe: &Probe, r: &FileReq) -> Result<Plan, String> {
    let dest_e = probe.entry(r.dest);
    let joined = match r.basename {
        Some(n) if has_trailing_sep(r.dest) || (dest_e.exists && dest_e.is_dir) => {
            Some(join(r.dest, n))
        }
        _ => None,
    };
    let path = joined.clone().unwrap_or_else(|| r.dest.to_string());
    let e = match &joined {
        Some(j) => probe.entry(j),
        None => dest_e.clone(),
    };
    if e.exists && e.is_dir {
        return Err(format!(
            "cannot copy file from '{}' to '{path}': dest is already a folder",
            r.src_label
        ));
    }
    let mut plan = Plan {
        dest: path.clone(),
        before: Some(e.clone()),
        ..Default::default()
    };
    if joined.is_some() {
        // The parent is `dest` itself.
        if dest_e.exists && !dest_e.is_dir {
            return Err(format!(
                "object at destination parent dir '{}' is currently a file",
                r.dest
            ));
        }
        if !dest_e.exists {
            plan.mkdirs.push(r.dest.to_string());
        }
    } else if let Some(par) = parent(&path) {
        let pe = probe.entry(&par);
        if pe.exists && !pe.is_dir {
            return Err(format!(
                "object at destination parent dir '{par}' is currently a file"
            ));
        }
        if !pe.exists {
            return Err(format!("Destination directory '{par}' does not exist"));
        }
    }
    match source::decide(e.exists, e.checksum.as_deref(), &r.file.checksum, r.force) {
        Decision::KeepExisting | Decision::Same => plan.mkdirs.clear(),
        Decision::Write => {
            if r.backup && e.exists {
                plan.backup = Some(path.clone());
            }
            match &r.file.origin {
                Origin::Controller(i) => plan.uploads.push((*i, path)),
                Origin::Host(src) => plan.copies.push(RemoteCopy {
                    from: src.clone(),
                    to: path,
                }),
            }
        }
    }
    Ok(plan)
}

/// What the destination tree holds, by `winpath::key` of the relative path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Have {
    pub is_dir: bool,
    pub checksum: Option<String>,
}

/// A directory copy: `dirs` and `files` (relative, `\`-separated) under `base`.
pub struct TreeReq<'a> {
    pub base: &'a str,
    pub src_label: &'a str,
    pub dirs: &'a [String],
    pub files: &'a [SourceFile],
    pub force: bool,
}

pub fn plan_tree(
    base_e: &Entry,
    parent_e: Option<&Entry>,
    have: &HashMap<String, Have>,
    r: &TreeReq,
) -> Result<Plan, String> {
    if base_e.exists && !base_e.is_dir {
        return Err(format!(
            "cannot copy folder from '{}' to '{}': dest is already a file",
            r.src_label, r.base
        ));
    }
    if let Some(pe) = parent_e
        && pe.exists
        && !pe.is_dir
    {
        return Err(format!(
            "cannot copy file from '{}' to '{}': object at dest parent dir is not a folder",
            r.src_label, r.base
        ));
    }
    let mut plan = Plan {
        dest: r.base.to_string(),
        ..Default::default()
    };
    if !base_e.exists {
        plan.mkdirs.push(r.base.to_string());
    }
    for rel in r.dirs {
        let path = join(r.base, rel);
        match have.get(&key(rel)) {
            Some(h) if !h.is_dir => {
                return Err(format!(
                    "cannot copy folder to dest '{path}': object at path is already a file"
                ));
            }
            Some(_) => {}
            None => plan.mkdirs.push(path),
        }
    }
    for f in r.files {
        let path = join(r.base, &f.rel);
        let write = match have.get(&key(&f.rel)) {
            Some(h) if h.is_dir => {
                return Err(format!(
                    "cannot copy file to dest '{path}': object at path is already a directory"
                ));
            }
            Some(h) => {
                source::decide(true, h.checksum.as_deref(), &f.checksum, r.force) == Decision::Write
            }
            None => true,
        };
        if write {
            match &f.origin {
                Origin::Controller(i) => plan.uploads.push((*i, path)),
                Origin::Host(src) => plan.copies.push(RemoteCopy {
                    from: src.clone(),
                    to: path,
                }),
            }
        }
    }
    Ok(plan)
}

#[derive(Debug, Deserialize, Default)]
struct Applied {
    #[serde(default)]
    backup_file: Option<String>,
}

/// Carries out `plan` (unless check mode): apply, then the uploads.
async fn execute(
    ctx: &ModuleCtx<'_>,
    plan: &Plan,
    sources: &[Content],
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ModError> {
    if ctx.check_mode || !plan.changes() {
        return Ok(None);
    }
    let mut backup = None;
    if plan.needs_apply() {
        let (applied, w) = SCRIPT
            .apply::<Applied>(ctx, &json!({ "dest": plan.dest }), plan)
            .await?;
        warnings.extend(w);
        backup = applied.backup_file;
    }
    if !plan.uploads.is_empty() {
        let conn = ctx.connection().await?;
        for (i, dest) in &plan.uploads {
            match &sources[*i] {
                Content::Bytes(b) => conn.put_bytes(b, dest, None).await?,
                Content::Local(p) => conn.put_file(p, dest, None).await?,
                Content::Remote(_) => {
                    return Err(ModError::msg("win_copy: a host file cannot be uploaded"));
                }
            }
        }
    }
    Ok(backup)
}

/// One file from the controller (a file, inline content or a rendered template).
async fn copy_single(
    ctx: &ModuleCtx<'_>,
    a: &CopyArgs,
    basename: Option<&str>,
    content: Content,
    label: String,
) -> ModResult {
    let (sum, size) = content
        .digest()?
        .ok_or_else(|| ModError::msg("win_copy: no controller content"))?;
    let diff_max = ctx.diff.then_some(MAX_DIFF_BYTES);
    let query = ProbeArgs {
        dest: a.dest.clone(),
        paths: file_queries(&a.dest, basename, Some(size), diff_max),
        trees: vec![],
    };
    let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &query).await?;
    let plan = plan_file(
        &probe,
        &FileReq {
            dest: &a.dest,
            basename,
            src_label: &label,
            file: SourceFile {
                rel: String::new(),
                checksum: sum.clone(),
                size,
                origin: Origin::Controller(0),
            },
            force: a.force,
            backup: a.backup,
        },
    )
    .map_err(ModError::msg)?;
    let mut diff = Value::Null;
    if ctx.diff && plan.changes() {
        let before = plan.before.clone().unwrap_or_default();
        let before_bytes = match (&before.content_b64, before.exists) {
            (_, false) => Some(Vec::new()),
            (Some(b), true) => base64::engine::general_purpose::STANDARD.decode(b).ok(),
            (None, true) => None,
        };
        diff = source::content_diff(
            &plan.dest,
            before_bytes.as_deref(),
            before.size.unwrap_or(0),
            &label,
            content.diff_bytes(size).as_deref(),
            size,
        );
    }
    let sources = [content];
    let backup = execute(ctx, &plan, &sources, &mut warnings).await?;
    let mut fields = json!({
        "dest": plan.dest,
        "src": label,
        "checksum": sum,
        "size": size,
        "operation": "file_copy",
    });
    if let Some(n) = basename {
        fields["original_basename"] = n.into();
    }
    if let Some(b) = backup {
        fields["backup_file"] = b.into();
    }
    if !diff.is_null() {
        fields["diff"] = diff;
    }
    Ok(finish(plan.changes(), warnings, fields))
}

/// A controller directory: `src/` copies its contents into `dest`, `src` the directory itself.
async fn copy_local_tree(
    ctx: &ModuleCtx<'_>,
    a: &CopyArgs,
    dir: &std::path::Path,
    trailing: bool,
    decrypt: bool,
    label: String,
) -> ModResult {
    let local = source::walk_local(dir, decrypt)?;
    let base = if trailing {
        a.dest.clone()
    } else {
        join(&a.dest, &source::file_name(dir))
    };
    let dirs: Vec<String> = local.dirs.iter().map(|d| d.replace('/', "\\")).collect();
    let mut sources = Vec::new();
    let mut files = Vec::new();
    for (rel, (content, sum, _, size)) in &local.files {
        let size = *size;
        files.push(SourceFile {
            rel: rel.replace('/', "\\"),
            checksum: sum.clone(),
            size,
            origin: Origin::Controller(sources.len()),
        });
        sources.push(content.clone());
    }
    let mut paths = vec![Query::stat(&base)];
    if let Some(par) = parent(&base) {
        paths.push(Query::stat(&par));
    }
    paths.extend(dirs.iter().map(|d| Query::stat(&join(&base, d))));
    paths.extend(
        files
            .iter()
            .map(|f| Query::sum(&join(&base, &f.rel), Some(f.size), None)),
    );
    let query = ProbeArgs {
        dest: a.dest.clone(),
        paths,
        trees: vec![],
    };
    let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &query).await?;
    let mut have = HashMap::new();
    for rel in dirs.iter().chain(files.iter().map(|f| &f.rel)) {
        let e = probe.entry(&join(&base, rel));
        if e.exists {
            have.insert(
                key(rel),
                Have {
                    is_dir: e.is_dir,
                    checksum: e.checksum,
                },
            );
        }
    }
    let base_e = probe.entry(&base);
    let parent_e = parent(&base).map(|p| probe.entry(&p));
    let plan = plan_tree(
        &base_e,
        parent_e.as_ref(),
        &have,
        &TreeReq {
            base: &base,
            src_label: &label,
            dirs: &dirs,
            files: &files,
            force: a.force,
        },
    )
    .map_err(ModError::msg)?;
    execute(ctx, &plan, &sources, &mut warnings).await?;
    Ok(finish(
        plan.changes(),
        warnings,
        json!({ "dest": base, "src": label, "operation": "folder_copy" }),
    ))
}

/// `remote_src: true`: a file or directory already on the host.
async fn copy_remote(ctx: &ModuleCtx<'_>, a: &CopyArgs, src: &str) -> ModResult {
    let name = leaf(src);
    let base = if has_trailing_sep(src) {
        a.dest.clone()
    } else {
        join(&a.dest, &name)
    };
    let mut paths = vec![Query::sum(src, None, None)];
    paths.extend(file_queries(&a.dest, Some(&name), None, None));
    if let Some(par) = parent(&base) {
        paths.push(Query::stat(&par));
    }
    let query = ProbeArgs {
        dest: a.dest.clone(),
        paths,
        trees: vec![src.to_string(), base.clone()],
    };
    let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &query).await?;
    let src_e = probe.entry(src);
    if !src_e.exists {
        return Err(ModError::msg(format!(
            "Cannot copy src file: '{src}' as it does not exist"
        )));
    }
    if !src_e.is_dir {
        let sum = src_e
            .checksum
            .clone()
            .ok_or_else(|| ModError::msg(format!("{src}: the host reported no checksum")))?;
        let size = src_e.size.unwrap_or(0);
        let plan = plan_file(
            &probe,
            &FileReq {
                dest: &a.dest,
                basename: Some(&name),
                src_label: src,
                file: SourceFile {
                    rel: String::new(),
                    checksum: sum.clone(),
                    size,
                    origin: Origin::Host(src.to_string()),
                },
                force: a.force,
                backup: a.backup,
            },
        )
        .map_err(ModError::msg)?;
        let backup = execute(ctx, &plan, &[], &mut warnings).await?;
        let mut fields = json!({
            "dest": plan.dest, "src": src, "checksum": sum, "size": size,
            "operation": "file_copy", "original_basename": name,
        });
        if let Some(b) = backup {
            fields["backup_file"] = b.into();
        }
        return Ok(finish(plan.changes(), warnings, fields));
    }
    let empty = Tree::default();
    let src_tree = probe.tree(src).unwrap_or(&empty);
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in &src_tree.entries {
        if e.is_dir {
            dirs.push(e.rel.clone());
        } else {
            files.push(SourceFile {
                rel: e.rel.clone(),
                checksum: e.checksum.clone().unwrap_or_default(),
                size: e.size.unwrap_or(0),
                origin: Origin::Host(join(src, &e.rel)),
            });
        }
    }
    let base_tree = probe.tree(&base).unwrap_or(&empty);
    let have: HashMap<String, Have> = base_tree
        .entries
        .iter()
        .map(|e| {
            (
                key(&e.rel),
                Have {
                    is_dir: e.is_dir,
                    checksum: e.checksum.clone(),
                },
            )
        })
        .collect();
    let base_e = Entry {
        path: base.clone(),
        exists: base_tree.exists,
        is_dir: base_tree.is_dir,
        ..Default::default()
    };
    let parent_e = parent(&base).map(|p| probe.entry(&p));
    let plan = plan_tree(
        &base_e,
        parent_e.as_ref(),
        &have,
        &TreeReq {
            base: &base,
            src_label: src,
            dirs: &dirs,
            files: &files,
            force: a.force,
        },
    )
    .map_err(ModError::msg)?;
    execute(ctx, &plan, &[], &mut warnings).await?;
    Ok(finish(
        plan.changes(),
        warnings,
        json!({ "dest": base, "src": src, "operation": "folder_copy" }),
    ))
}

pub(super) struct WinCopy;
pub(super) struct WinTemplate;

#[async_trait]
impl Module for WinCopy {
    fn def(&self) -> &'static ModuleDef {
        &COPY_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: CopyArgs = typed_args(COPY_DEF.name, &args)?;
        match source::copy_source(ctx, &args, &['/', '\\'])? {
            CopySource::Inline(bytes) => {
                if has_trailing_sep(&a.dest) {
                    return Err(ModError::msg("dest must be a file if content is defined"));
                }
                copy_single(ctx, &a, None, Content::Bytes(bytes), String::new()).await
            }
            CopySource::File {
                path,
                name,
                content,
            } => {
                let label = path.display().to_string();
                copy_single(ctx, &a, Some(&name), content, label).await
            }
            CopySource::Dir {
                path,
                trailing,
                decrypt,
            } => {
                let label = path.display().to_string();
                copy_local_tree(ctx, &a, &path, trailing, decrypt, label).await
            }
            CopySource::Remote(src) => copy_remote(ctx, &a, &src).await,
        }
    }
}

#[async_trait]
impl Module for WinTemplate {
    fn def(&self) -> &'static ModuleDef {
        &TEMPLATE_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: CopyArgs = typed_args(TEMPLATE_DEF.name, &args)?;
        // ansible.windows.win_template writes Windows line endings unless told otherwise.
        let rendered = source::render_template(ctx, &args, "\r\n")?;
        let label = rendered.path.display().to_string();
        copy_single(
            ctx,
            &a,
            Some(&rendered.name),
            Content::Bytes(rendered.bytes),
            label,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ODD: &str = "it's \"q\" $x `b` n\u{e9} \u{540d}\nline";

    fn entry(path: &str, exists: bool, is_dir: bool, sum: Option<&str>) -> Entry {
        Entry {
            path: path.into(),
            exists,
            is_dir,
            size: Some(3),
            checksum: sum.map(str::to_string),
            content_b64: None,
        }
    }

    fn probe(entries: Vec<Entry>) -> Probe {
        Probe {
            paths: entries,
            trees: vec![],
        }
    }

    fn file(sum: &str) -> SourceFile {
        SourceFile {
            rel: String::new(),
            checksum: sum.into(),
            size: 3,
            origin: Origin::Controller(0),
        }
    }

    fn req<'a>(dest: &'a str, basename: Option<&'a str>, sum: &str) -> FileReq<'a> {
        FileReq {
            dest,
            basename,
            src_label: "files/a.txt",
            file: file(sum),
            force: true,
            backup: false,
        }
    }

    #[test]
    fn unchanged_file_sends_nothing() {
        let p = probe(vec![
            entry("C:\\app\\a.txt", true, false, Some("abc")),
            entry("C:\\app", true, true, None),
        ]);
        let plan = plan_file(&p, &req("C:\\app\\a.txt", Some("a.txt"), "abc")).unwrap();
        assert!(!plan.changes(), "{plan:?}");
        assert!(plan.uploads.is_empty() && plan.mkdirs.is_empty());
        let plan = plan_file(&p, &req("C:\\app\\a.txt", Some("a.txt"), "def")).unwrap();
        assert_eq!(plan.uploads, vec![(0, "C:\\app\\a.txt".to_string())]);
    }

    #[test]
    fn into_a_directory_and_trailing_separator() {
        // dest is an existing directory: the file goes inside, by its name.
        let p = probe(vec![entry("C:\\app", true, true, None)]);
        let plan = plan_file(&p, &req("C:\\app", Some("a.txt"), "abc")).unwrap();
        assert_eq!(plan.dest, "C:\\app\\a.txt");
        assert!(plan.mkdirs.is_empty());
        // dest ends with \ and is missing: it is created.
        let p = probe(vec![]);
        let plan = plan_file(&p, &req("C:\\new\\", Some("a.txt"), "abc")).unwrap();
        assert_eq!(plan.dest, "C:\\new\\a.txt");
        assert_eq!(plan.mkdirs, vec!["C:\\new\\".to_string()]);
        // a file path whose directory is missing: Ansible refuses.
        let e = plan_file(&p, &req("C:\\new\\a.txt", Some("a.txt"), "abc")).unwrap_err();
        assert!(
            e.contains("Destination directory 'C:\\new' does not exist"),
            "{e}"
        );
        // the parent is a file
        let p = probe(vec![entry("C:\\f", true, false, Some("x"))]);
        let e = plan_file(&p, &req("C:\\f\\a.txt", None, "abc")).unwrap_err();
        assert!(e.contains("is currently a file"), "{e}");
        // the destination is a directory and there is no name to put inside it (content)
        let p = probe(vec![entry("C:\\d", true, true, None)]);
        let e = plan_file(&p, &req("C:\\d", None, "abc")).unwrap_err();
        assert!(e.contains("dest is already a folder"), "{e}");
    }

    #[test]
    fn force_and_backup() {
        let p = probe(vec![
            entry("C:\\a.txt", true, false, Some("old")),
            entry("C:\\", true, true, None),
        ]);
        let mut r = req("C:\\a.txt", None, "new");
        r.force = false;
        assert!(!plan_file(&p, &r).unwrap().changes());
        r.force = true;
        r.backup = true;
        let plan = plan_file(&p, &r).unwrap();
        assert_eq!(plan.backup.as_deref(), Some("C:\\a.txt"));
        // No backup of a file that does not exist.
        let p = probe(vec![entry("C:\\", true, true, None)]);
        assert_eq!(plan_file(&p, &r).unwrap().backup, None);
        // A size mismatch means the host reported no checksum: written.
        let p = probe(vec![
            entry("C:\\a.txt", true, false, None),
            entry("C:\\", true, true, None),
        ]);
        assert!(
            plan_file(&p, &req("C:\\a.txt", None, "new"))
                .unwrap()
                .changes()
        );
    }

    #[test]
    fn remote_src_copies_on_the_host() {
        let p = probe(vec![entry("D:\\out", true, true, None)]);
        let mut r = req("D:\\out", Some("in.bin"), "abc");
        r.file.origin = Origin::Host("C:\\in.bin".into());
        let plan = plan_file(&p, &r).unwrap();
        assert_eq!(
            plan.copies,
            vec![RemoteCopy {
                from: "C:\\in.bin".into(),
                to: "D:\\out\\in.bin".into()
            }]
        );
        assert!(plan.uploads.is_empty());
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["copies"][0]["to"], "D:\\out\\in.bin");
        assert!(v.get("uploads").is_none() && v.get("dest").is_none());
    }

    #[test]
    fn odd_names_arrive_exactly() {
        let dir = format!("C:\\{ODD}");
        let p = probe(vec![entry(&dir, true, true, None)]);
        let plan = plan_file(&p, &req(&dir, Some(ODD), "abc")).unwrap();
        assert_eq!(plan.uploads, vec![(0, format!("{dir}\\{ODD}"))]);
        let q = file_queries(&dir, Some(ODD), Some(3), None);
        let json = serde_json::to_string(&q).unwrap();
        let back: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[1]["path"], format!("{dir}\\{ODD}"));
        assert_eq!(back[2]["path"], "C:\\");
    }

    #[test]
    fn trees_upload_only_what_differs() {
        let files = vec![
            SourceFile {
                rel: "same.txt".into(),
                checksum: "s".into(),
                size: 1,
                origin: Origin::Controller(0),
            },
            SourceFile {
                rel: "sub\\changed.txt".into(),
                checksum: "new".into(),
                size: 1,
                origin: Origin::Controller(1),
            },
            SourceFile {
                rel: "sub\\New $f.txt".into(),
                checksum: "n".into(),
                size: 1,
                origin: Origin::Controller(2),
            },
        ];
        let dirs = vec!["sub".to_string(), "sub\\empty".to_string()];
        let mut have = HashMap::new();
        have.insert(
            "same.txt".into(),
            Have {
                is_dir: false,
                checksum: Some("s".into()),
            },
        );
        have.insert(
            "sub".into(),
            Have {
                is_dir: true,
                checksum: None,
            },
        );
        // Case differs on the host: still the same file (Windows).
        have.insert(
            key("SUB\\Changed.TXT"),
            Have {
                is_dir: false,
                checksum: Some("old".into()),
            },
        );
        let base_e = entry("C:\\site", true, true, None);
        let r = TreeReq {
            base: "C:\\site",
            src_label: "files/site",
            dirs: &dirs,
            files: &files,
            force: true,
        };
        let plan = plan_tree(&base_e, None, &have, &r).unwrap();
        assert_eq!(plan.mkdirs, vec!["C:\\site\\sub\\empty".to_string()]);
        assert_eq!(
            plan.uploads,
            vec![
                (1, "C:\\site\\sub\\changed.txt".to_string()),
                (2, "C:\\site\\sub\\New $f.txt".to_string())
            ]
        );
        // force: no leaves existing files alone.
        let r = TreeReq { force: false, ..r };
        let plan = plan_tree(&base_e, None, &have, &r).unwrap();
        assert_eq!(plan.uploads.len(), 1);
        // Nothing to do at all.
        let mut all = have.clone();
        all.insert(
            key("sub\\empty"),
            Have {
                is_dir: true,
                checksum: None,
            },
        );
        all.insert(
            key("sub\\changed.txt"),
            Have {
                is_dir: false,
                checksum: Some("new".into()),
            },
        );
        all.insert(
            key("sub\\new $f.txt"),
            Have {
                is_dir: false,
                checksum: Some("n".into()),
            },
        );
        let r = TreeReq { force: true, ..r };
        assert!(!plan_tree(&base_e, None, &all, &r).unwrap().changes());
        // Conflicts.
        let mut clash = have.clone();
        clash.insert(
            "sub".into(),
            Have {
                is_dir: false,
                checksum: None,
            },
        );
        assert!(
            plan_tree(&base_e, None, &clash, &r)
                .unwrap_err()
                .contains("already a file")
        );
        let e = plan_tree(&entry("C:\\site", true, false, None), None, &have, &r).unwrap_err();
        assert!(e.contains("dest is already a file"), "{e}");
        // A missing base is created first.
        let plan = plan_tree(
            &entry("C:\\site", false, false, None),
            None,
            &HashMap::new(),
            &r,
        )
        .unwrap();
        assert_eq!(plan.mkdirs[0], "C:\\site");
        assert_eq!(plan.uploads.len(), 3);
    }

    #[test]
    fn probe_answers_from_powershell_51() {
        let p: Probe = serde_json::from_str(
            r#"{"paths": {"path": "C:\\a", "exists": true, "is_dir": false, "size": 3, "checksum": "abc"},
                "trees": {"root": "C:\\t", "exists": true, "is_dir": true, "entries": {"rel": "x", "is_dir": true}}}"#,
        )
        .unwrap();
        assert_eq!(p.paths.len(), 1);
        assert_eq!(p.trees[0].entries.len(), 1);
        let p: Probe = serde_json::from_str(r#"{"paths": null, "trees": null}"#).unwrap();
        assert!(p.entry("C:\\a").path == "C:\\a" && !p.entry("C:\\a").exists);
    }
}
