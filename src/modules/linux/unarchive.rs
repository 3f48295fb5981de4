//! `unarchive`: unpack a tar (plain, gz, xz, bz2, zstd) or zip archive into an existing
//! directory on the target, idempotently.
//!
//! Round trip 1 checks `dest`, `creates`, the source (with `remote_src`) and the tools. A
//! controller archive is then uploaded to the target's /tmp (as Ansible does). Round trip 2
//! lists the archive and stats every entry under `dest`; the controller compares names, types
//! and sizes (and mode/owner/group when asked: Ansible's "unarchive checks"). Round trip 3,
//! only when something differs, extracts and applies the attributes.

use crate::modules::Target;
use async_trait::async_trait;
use serde_json::Value;

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::files::file_params;
use crate::modules::files::remote::{self, FileStat, Kind, Reply};
use crate::modules::files::{AttrArgs, ModeSpec, Wanted, add_path_info};
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, outcome, p, req,
    typed,
};

static UNARCHIVE_DEF: ModuleDef = ModuleDef {
    name: "unarchive",
    namespaces: BUILTIN,
    params: file_params![
        req("src", Str),
        req("dest", Str),
        p("remote_src", Bool),
        p("creates", Str),
        p("extra_opts", List),
        p("list_files", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Unarchive;

/// `unarchive`'s arguments (see `UNARCHIVE_DEF`), with Ansible's defaults.
#[derive(Debug, serde::Deserialize)]
struct UnarchiveArgs {
    src: String,
    dest: String,
    #[serde(default)]
    remote_src: bool,
    creates: Option<String>,
    #[serde(default)]
    extra_opts: Vec<Value>,
    #[serde(default)]
    list_files: bool,
    #[serde(flatten)]
    attrs: AttrArgs,
}

/// One entry of an archive listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    /// None when the listing gave no size (zip listings that could not be lined up).
    pub size: Option<u64>,
}

/// Kind and size from one `tar -tv` line (`-rw-r--r-- u/g 12 2024-01-01 12:00 name`).
pub fn parse_tar_verbose(line: &str) -> Option<(Kind, Option<u64>)> {
    let mut f = line.split_whitespace();
    let perms = f.next()?;
    let _owner = f.next()?;
    let size = f.next()?;
    let kind = match perms.chars().next()? {
        'd' => Kind::Dir,
        'l' => Kind::Link,
        // A hard link is a file once extracted; tar lists it with size 0.
        'h' => return Some((Kind::File, None)),
        '-' => Kind::File,
        _ => Kind::Other,
    };
    Some((kind, size.parse().ok()))
}

/// Kind and size from one `unzip -Z` (zipinfo) entry line
/// (`-rw-r--r--  3.0 unx       12 tx stor 24-Jan-01 12:00 name`); None for header/footer.
pub fn parse_zip_verbose(line: &str) -> Option<(Kind, Option<u64>)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 9 || f[0].len() != 10 {
        return None;
    }
    let size = f[3].parse::<u64>().ok()?;
    let kind = match f[0].chars().next()? {
        'd' => Kind::Dir,
        'l' => Kind::Link,
        _ => Kind::File,
    };
    Some((kind, Some(size)))
}

/// Pairs names (one per line, exact) with the verbose listing's kinds and sizes. When the
/// two do not line up, kinds come from a trailing `/` and sizes are not compared.
pub fn entries(names: &[String], verbose: &[(Kind, Option<u64>)]) -> Vec<Entry> {
    let aligned = names.len() == verbose.len();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (kind, size) = if aligned {
                verbose[i]
            } else if n.ends_with('/') {
                (Kind::Dir, None)
            } else {
                (Kind::File, None)
            };
            let kind = if n.ends_with('/') { Kind::Dir } else { kind };
            Entry {
                name: n.clone(),
                kind,
                size: if kind == Kind::File { size } else { None },
            }
        })
        .collect()
}

/// Why `have` (the entry under dest; None: missing) does not match the archive's `want`.
pub fn differs(
    want: &Entry,
    have: Option<&FileStat>,
    wanted: &Wanted,
    umask: u32,
) -> Option<String> {
    let Some(st) = have else {
        return Some(format!("{} is missing", want.name));
    };
    let ok_kind = match want.kind {
        Kind::Dir => st.kind() == Kind::Dir,
        Kind::Link => st.kind() == Kind::Link,
        Kind::File => st.kind() == Kind::File,
        _ => true,
    };
    if !ok_kind {
        return Some(format!("{} is not the same type", want.name));
    }
    if let Some(size) = want.size
        && st.size != size
    {
        return Some(format!("{} size differs", want.name));
    }
    if st.kind() != Kind::Link {
        match wanted.change_for(st, umask) {
            Ok(ch) if !ch.is_empty() => return Some(format!("{} attributes differ", want.name)),
            Err(e) => return Some(format!("{}: {e:?}", want.name)),
            _ => {}
        }
    }
    None
}

const PROBE: &str = r#"
if [ -d "$d" ]; then printf 'dest=%s\n' "$(_st "$d")"; fi
if [ -n "$cr" ] && [ -e "$cr" ]; then echo creates=1; fi
if [ -n "$rs" ]; then
  if [ -f "$a" ]; then echo src=1; elif [ -e "$a" ]; then echo src=notfile; else echo src=0; fi
fi
printf 'umask=%s\n' "$(umask)"
"#;

/// Lists the archive `$a` and stats each entry under `$d`.
const LIST: &str = r#"
m=$(head -c 6 -- "$a" | od -An -tx1 | tr -d ' \n')
case $m in
  504b0304*|504b0506*) f=zip ;;
  1f8b*) f=tgz ;;
  fd377a585a00*) f=txz ;;
  425a68*) f=tbz ;;
  28b52ffd*) f=tzst ;;
  *) f=tar ;;
esac
printf 'format=%s\n' "$f"
e=$(mktemp) || { _err "cannot create a temporary file"; exit 0; }
if [ $f = zip ]; then
  command -v unzip >/dev/null 2>&1 || { rm -f -- "$e"; _err "cannot unpack the zip archive $shown: the target has no \`unzip\` command (install the unzip package)"; exit 0; }
  names() { unzip -Z1 "$a"; }
  verbose() { unzip -Z "$a"; }
else
  command -v tar >/dev/null 2>&1 || { rm -f -- "$e"; _err "cannot unpack $shown: the target has no \`tar\` command"; exit 0; }
  if [ -n "$xo" ] && tar --version 2>/dev/null | grep -q GNU; then xo="--show-transformed-names $xo"; fi
  names() { eval "tar -tf \"\$a\" $xo"; }
  verbose() { eval "tar -tvf \"\$a\" $xo"; }
fi
if ! names > "$e" 2>&1; then
  m=$(tail -n 3 "$e" | tr '\n' ' '); rm -f -- "$e"
  _err "cannot read $shown as a $f archive: $m"; exit 0
fi
while IFS= read -r n; do
  printf 'n=%s\n' "$n"
  if s=$(_st "$d/$n" 2>/dev/null); then printf 'h=%s\n' "$s"; else echo 'h=-'; fi
done < "$e"
verbose 2>/dev/null | sed 's/^/v=/'
rm -f -- "$e"
"#;

const EXTRACT: &str = r#"
if [ $f = zip ]; then
  cmd="unzip -o \"\$a\" $xo -d \"\$d\""
else
  cmd="tar -xf \"\$a\" -C \"\$d\" $xo"
fi
e=$(mktemp) || { _err "cannot create a temporary file"; exit 0; }
o=$(eval "$cmd" 2>"$e"); rc=$?
err=$(cat -- "$e"); rm -f -- "$e"
printf 'x_rc=%s\n' "$rc"
printf '%s\n' "$o" | sed 's/^/x_out=/'
printf '%s\n' "$err" | sed 's/^/x_err=/'
[ -z "$rs" ] && rm -f -- "$a"
if [ $rc -ne 0 ]; then _err "failed to unpack $shown into $d: $(printf '%s' "$err" | tail -n 3)"; exit 0; fi
if [ -n "$mode$own$grp" ]; then
  printf '%s\n' "$names" | while IFS= read -r n; do
    [ -n "$n" ] || continue
    t=$d/$n
    [ -L "$t" ] && continue
    if [ -n "$own" ]; then chown -- "$own" "$t" 2>&1 | sed 's/^/error=/'; fi
    if [ -n "$grp" ]; then chgrp -- "$grp" "$t" 2>&1 | sed 's/^/error=/'; fi
    if [ -n "$mode" ]; then chmod -- "$mode" "$t" 2>&1 | sed 's/^/error=/'; fi
  done
fi
"#;

fn handler(format: &str) -> &'static str {
    match format {
        "zip" => "ZipArchive",
        "tgz" => "TgzArchive",
        "txz" => "TarXzArchive",
        "tbz" => "TarBzipArchive",
        "tzst" => "TarZstdArchive",
        _ => "TarArchive",
    }
}

/// The request, from checked arguments.
struct Request {
    src: String,
    dest: String,
    remote_src: bool,
    creates: Option<String>,
    wanted: Wanted,
    /// `extra_opts`, each shell-quoted, joined by spaces.
    xo: String,
    list_files: bool,
}

impl Request {
    fn new(a: UnarchiveArgs) -> Result<Request, ModError> {
        if a.remote_src && a.src.contains("://") {
            return Err(ModError::msg(
                "unarchive: downloading `src` from a URL is not supported; fetch it with get_url first and use remote_src",
            ));
        }
        let xo = a
            .extra_opts
            .iter()
            .map(|w| quote(&crate::value::to_text(w)));
        Ok(Request {
            wanted: Wanted::from_attrs(&a.attrs, false)?,
            xo: xo.collect::<Vec<_>>().join(" "),
            creates: a.creates.filter(|s| !s.is_empty()),
            src: a.src,
            dest: a.dest,
            remote_src: a.remote_src,
            list_files: a.list_files,
        })
    }

    /// `rs` for the scripts: set when the archive is the target's own.
    fn rs(&self) -> String {
        if self.remote_src { "1" } else { "" }.into()
    }
}

/// What round trip 1 allows.
#[derive(Debug, PartialEq)]
enum Dest {
    /// `creates` exists: nothing to do, with this message.
    Skip(String),
    /// dest is a directory (its stat) and the target's umask.
    Ready { stat: FileStat, umask: u32 },
}

/// Round trip 1's reply → whether and where to unpack. A pure function.
fn check_dest(req: &Request, reply: &Reply) -> Result<Dest, ModError> {
    if reply.flag("creates") {
        let creates = req.creates.as_deref().unwrap_or_default();
        return Ok(Dest::Skip(format!("skipped, since {creates} exists")));
    }
    let Some(stat) = reply.stat("dest")? else {
        let dest = &req.dest;
        return Err(ModError::msg(format!(
            "Destination '{dest}' is not a directory"
        )));
    };
    if req.remote_src {
        let src = &req.src;
        match reply.get("src") {
            Some("1") => {}
            Some("notfile") => return Err(ModError::msg(format!("Source '{src}' is not a file"))),
            _ => return Err(ModError::msg(format!("Source '{src}' does not exist"))),
        }
    }
    let umask = reply
        .get("umask")
        .and_then(|u| u32::from_str_radix(u.trim(), 8).ok())
        .unwrap_or(0o022);
    Ok(Dest::Ready { stat, umask })
}

/// The archive as round trip 2 listed it, compared with what is under dest.
#[derive(Debug)]
struct Listing {
    /// `zip`, `tgz`, `txz`, `tbz`, `tzst` or `tar`.
    format: String,
    names: Vec<String>,
    /// Why dest does not match the archive; empty: nothing to unpack.
    diffs: Vec<String>,
}

/// Round trip 2's reply → the listing and its differences. A pure function.
fn compare(reply: &Reply, wanted: &Wanted, umask: u32) -> Listing {
    let format = reply.get("format").unwrap_or("tar").to_string();
    let (names, have) = names_and_stats(reply);
    let parse = if format == "zip" {
        parse_zip_verbose
    } else {
        parse_tar_verbose
    };
    let verbose: Vec<_> = reply.all("v").filter_map(parse).collect();
    // Entries that extract to nothing (`./` of `tar -C dir .`) are not compared; they are
    // dropped only after names and the verbose listing are lined up, so sizes still count.
    let (list, have): (Vec<Entry>, Vec<Option<FileStat>>) = entries(&names, &verbose)
        .into_iter()
        .zip(have)
        .filter(|(e, _)| !matches!(e.name.as_str(), "" | "." | "./"))
        .unzip();
    let diffs = list
        .iter()
        .zip(&have)
        .filter_map(|(e, h)| differs(e, h.as_ref(), wanted, umask))
        .collect();
    let names = list.into_iter().map(|e| e.name).collect();
    Listing {
        format,
        names,
        diffs,
    }
}

/// The archive on the target: the user's own (`remote_src`) or our upload, removed after use.
struct Archive<'a> {
    /// The path as a shell word.
    word: String,
    /// Our upload's path, to remove.
    uploaded: Option<String>,
    ctx: &'a ModuleCtx<'a>,
}

impl<'a> Archive<'a> {
    async fn place(ctx: &'a ModuleCtx<'a>, req: &Request) -> Result<Archive<'a>, ModError> {
        if req.remote_src {
            return Ok(Archive {
                word: remote::sh_path(&req.src),
                uploaded: None,
                ctx,
            });
        }
        let local = ctx.find_local(&req.src, "files")?;
        let up = remote::tmp_staging();
        ctx.connection()
            .await?
            .put_file(&local, &up, Some(0o600))
            .await?;
        Ok(Archive {
            word: quote(&up),
            uploaded: Some(up),
            ctx,
        })
    }

    async fn remove(&self) {
        if let Some(up) = &self.uploaded {
            let _ = self.ctx.exec(format!("rm -f -- {}", quote(up)), None).await;
        }
    }
}

/// Round trip 3: extract (the script removes an uploaded archive), then attributes;
/// `extract_results` as Ansible reports them.
async fn extract(
    ctx: &ModuleCtx<'_>,
    req: &Request,
    archive: &Archive<'_>,
    listing: &Listing,
    mut r: Outcome,
) -> ModResult {
    let mode = match &req.wanted.mode {
        Some(ModeSpec::Octal(m)) => format!("{m:04o}"),
        Some(ModeSpec::Symbolic(s)) => s.clone(),
        _ => String::new(),
    };
    let owner = req.wanted.owner.as_deref();
    let group = req.wanted.group.as_deref();
    let vars = vec![
        ("d", remote::sh_path(&req.dest)),
        ("a", archive.word.clone()),
        ("xo", quote(&req.xo)),
        ("shown", quote(&req.src)),
        ("f", quote(&listing.format)),
        ("rs", req.rs()),
        ("names", quote(&listing.names.join("\n"))),
        ("mode", quote(&mode)),
        ("own", owner.map(quote).unwrap_or_default()),
        ("grp", group.map(quote).unwrap_or_default()),
    ];
    let reply = match remote::run(ctx, remote::script(&vars, EXTRACT)).await {
        Ok(reply) => reply,
        Err(ModError::Failed { msg, result }) => {
            r.remove("changed");
            r.extend(result);
            return Err(ModError::Failed { msg, result: r });
        }
        Err(e) => {
            archive.remove().await;
            return Err(e);
        }
    };
    let (src, dest, xo) = (&req.src, &req.dest, &req.xo);
    let cmd = if listing.format == "zip" {
        format!("unzip -o {src} {xo} -d {dest}")
    } else {
        format!("tar -xf {src} -C {dest} {xo}")
    };
    let rc = reply.get("x_rc").and_then(|v| v.parse::<i64>().ok());
    let lines = |k: &str| reply.all(k).collect::<Vec<_>>().join("\n");
    let mut x = Outcome::new();
    x.insert("cmd".into(), cmd.trim().into());
    x.insert("rc".into(), rc.unwrap_or(0).into());
    x.insert("out".into(), lines("x_out").trim().into());
    x.insert("err".into(), lines("x_err").trim().into());
    r.insert("extract_results".into(), Value::Object(x));
    Ok(r)
}

#[async_trait]
impl Module for Unarchive {
    fn def(&self) -> &'static ModuleDef {
        &UNARCHIVE_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let req = Request::new(typed(&args)?)?;
        let vars = vec![
            ("d", remote::sh_path(&req.dest)),
            (
                "cr",
                req.creates
                    .as_deref()
                    .map(remote::sh_path)
                    .unwrap_or_default(),
            ),
            ("rs", req.rs()),
            ("a", remote::sh_path(&req.src)),
        ];
        let reply = remote::run(ctx, remote::script(&vars, PROBE)).await?;
        let mut r = outcome(false);
        r.insert("dest".into(), req.dest.clone().into());
        r.insert("src".into(), req.src.clone().into());
        let (dest_st, umask) = match check_dest(&req, &reply)? {
            Dest::Skip(msg) => {
                r.insert("msg".into(), msg.into());
                return Ok(r);
            }
            Dest::Ready { stat, umask } => (stat, umask),
        };

        let archive = Archive::place(ctx, &req).await?;
        let vars = vec![
            ("d", remote::sh_path(&req.dest)),
            ("a", archive.word.clone()),
            ("xo", quote(&req.xo)),
            ("shown", quote(&req.src)),
        ];
        let listing = match remote::run(ctx, remote::script(&vars, LIST)).await {
            Ok(reply) => compare(&reply, &req.wanted, umask),
            Err(e) => {
                archive.remove().await;
                return Err(e);
            }
        };
        r.insert("handler".into(), handler(&listing.format).into());
        if req.list_files {
            let names = listing.names.iter().map(|n| Value::String(n.clone()));
            r.insert("files".into(), Value::Array(names.collect()));
        }
        add_path_info(&mut r, &dest_st);
        r.insert("dest".into(), req.dest.clone().into());
        if listing.diffs.is_empty() || ctx.check_mode {
            r.insert("changed".into(), (!listing.diffs.is_empty()).into());
            archive.remove().await;
            return Ok(r);
        }
        r.insert("changed".into(), true.into());
        extract(ctx, &req, &archive, &listing, r).await
    }
}

/// `n=`/`h=` pairs in order: names and the stat of each under dest (`-`: missing).
fn names_and_stats(reply: &Reply) -> (Vec<String>, Vec<Option<FileStat>>) {
    let mut names = Vec::new();
    let mut have = Vec::new();
    for (k, v) in &reply.pairs {
        match k.as_str() {
            "n" => names.push(v.clone()),
            "h" => have.push(if v == "-" { None } else { FileStat::parse(v) }),
            _ => {}
        }
    }
    have.resize(names.len(), None);
    (names, have)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(yaml: &str) -> Request {
        let args: Args = serde_yaml_ng::from_str(yaml).unwrap();
        Request::new(typed(&args).unwrap()).unwrap()
    }

    #[test]
    fn creates_skips_and_dest_must_be_a_directory() {
        let req = request("{src: /tmp/a.tgz, dest: /srv, remote_src: true, creates: /srv/x}");
        let dir = "dest=41ed 0 0 4096 1 2 3 4 2 5 8 4096 0 0 root root\n";
        let skip = Reply::parse(format!("creates=1\n{dir}src=1\n").as_bytes());
        assert_eq!(
            check_dest(&req, &skip).unwrap(),
            Dest::Skip("skipped, since /srv/x exists".into())
        );
        let ready = Reply::parse(format!("{dir}src=1\numask=0027\n").as_bytes());
        assert!(matches!(
            check_dest(&req, &ready).unwrap(),
            Dest::Ready { umask: 0o027, .. }
        ));
        let no_dest = Reply::parse(b"src=1\n");
        let e = check_dest(&req, &no_dest).unwrap_err().to_string();
        assert_eq!(e, "Destination '/srv' is not a directory");
        let no_src = Reply::parse(format!("{dir}src=0\n").as_bytes());
        let e = check_dest(&req, &no_src).unwrap_err().to_string();
        assert_eq!(e, "Source '/tmp/a.tgz' does not exist");
        let refused = UnarchiveArgs {
            src: "https://h/a.tgz".into(),
            ..typed(&serde_yaml_ng::from_str("{src: x, dest: /srv, remote_src: true}").unwrap())
                .unwrap()
        };
        assert!(Request::new(refused).is_err());
    }

    #[test]
    fn a_listing_is_compared_entry_by_entry() {
        let listing = "format=tgz\n\
            n=./\nh=41ed 0 0 4096 1 2 3 4 2 5 8 4096 0 0 root root\n\
            n=app/\nh=41ed 0 0 4096 1 2 3 4 2 5 8 4096 0 0 root root\n\
            n=app/a\nh=81a4 0 0 3 1 2 3 4 1 5 8 4096 0 0 root root\n\
            n=app/b\nh=-\n\
            v=drwxr-xr-x 0/0 0 2024-01-01 12:00 ./\n\
            v=drwxr-xr-x 0/0 0 2024-01-01 12:00 app/\n\
            v=-rw-r--r-- 0/0 3 2024-01-01 12:00 app/a\n\
            v=-rw-r--r-- 0/0 5 2024-01-01 12:00 app/b\n";
        let l = compare(&Reply::parse(listing.as_bytes()), &Wanted::default(), 0o022);
        assert_eq!(l.format, "tgz");
        assert_eq!(l.names, ["app/", "app/a", "app/b"]);
        assert_eq!(l.diffs, ["app/b is missing"]);
        let all_there = listing.replace(
            "n=app/b\nh=-\n",
            "n=app/b\nh=81a4 0 0 5 1 2 3 4 1 5 8 4096 0 0 root root\n",
        );
        let l = compare(
            &Reply::parse(all_there.as_bytes()),
            &Wanted::default(),
            0o022,
        );
        assert!(l.diffs.is_empty(), "{:?}", l.diffs);
        // Sizes count even when the archive starts with `./` (made with `tar -C dir .`).
        let grown = all_there.replace(
            "0/0 3 2024-01-01 12:00 app/a",
            "0/0 4 2024-01-01 12:00 app/a",
        );
        let l = compare(&Reply::parse(grown.as_bytes()), &Wanted::default(), 0o022);
        assert_eq!(l.diffs, ["app/a size differs"]);
    }

    #[test]
    fn tar_listing_lines() {
        assert_eq!(
            parse_tar_verbose("-rw-r--r-- root/root        12 2024-01-01 12:00 app/a b.txt"),
            Some((Kind::File, Some(12)))
        );
        assert_eq!(
            parse_tar_verbose("drwxr-xr-x 0/0 0 2024-01-01 12:00 app/"),
            Some((Kind::Dir, Some(0)))
        );
        assert_eq!(
            parse_tar_verbose("lrwxrwxrwx root/root 0 2024-01-01 12:00 app/l -> a"),
            Some((Kind::Link, Some(0)))
        );
        assert_eq!(
            parse_tar_verbose("hrw-r--r-- root/root 0 2024-01-01 12:00 app/h link to app/a"),
            Some((Kind::File, None))
        );
        assert_eq!(parse_tar_verbose("garbage"), None);
    }

    #[test]
    fn zip_listing_lines() {
        assert_eq!(
            parse_zip_verbose("-rw-r--r--  3.0 unx       12 tx stor 24-Jan-01 12:00 app/a.txt"),
            Some((Kind::File, Some(12)))
        );
        assert_eq!(
            parse_zip_verbose("drwxr-xr-x  3.0 unx        0 bx stor 24-Jan-01 12:00 app/"),
            Some((Kind::Dir, Some(0)))
        );
        assert_eq!(
            parse_zip_verbose("Archive:  x.zip   512 bytes   2 files"),
            None
        );
        assert_eq!(
            parse_zip_verbose("2 files, 12 bytes uncompressed, 12 bytes compressed:  0.0%"),
            None
        );
    }

    #[test]
    fn comparing_entries() {
        let names = vec!["app/".to_string(), "app/a".to_string()];
        let list = entries(&names, &[(Kind::Dir, Some(0)), (Kind::File, Some(3))]);
        assert_eq!(list[1].size, Some(3));
        let dir = FileStat::parse("41ed 0 0 4096 1 2 3 4 2 5 8 4096 0 0 root root").unwrap();
        let file3 = FileStat::parse("81a4 0 0 3 1 2 3 4 1 5 8 4096 0 0 root root").unwrap();
        let file4 = FileStat::parse("81a4 0 0 4 1 2 3 4 1 5 8 4096 0 0 root root").unwrap();
        let w = Wanted::default();
        assert_eq!(differs(&list[0], Some(&dir), &w, 0o022), None);
        assert_eq!(differs(&list[1], Some(&file3), &w, 0o022), None);
        assert!(differs(&list[1], Some(&file4), &w, 0o022).is_some());
        assert!(differs(&list[1], None, &w, 0o022).is_some());
        assert!(differs(&list[1], Some(&dir), &w, 0o022).is_some());
        let w600 = Wanted {
            mode: Some(ModeSpec::Octal(0o600)),
            ..Default::default()
        };
        assert!(differs(&list[1], Some(&file3), &w600, 0o022).is_some());
        // Misaligned listings fall back to names only.
        let list = entries(&names, &[(Kind::File, Some(3))]);
        assert_eq!(list[0].kind, Kind::Dir);
        assert_eq!(list[1].size, None);
    }
}
