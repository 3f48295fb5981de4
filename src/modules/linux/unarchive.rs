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

#[async_trait]
impl Module for Unarchive {
    fn def(&self) -> &'static ModuleDef {
        &UNARCHIVE_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: UnarchiveArgs = typed(&args)?;
        let (src, dest, remote_src) = (a.src.clone(), a.dest.clone(), a.remote_src);
        if remote_src && src.contains("://") {
            return Err(ModError::msg(
                "unarchive: downloading `src` from a URL is not supported; fetch it with get_url first and use remote_src",
            ));
        }
        let wanted = Wanted::from_attrs(&a.attrs, false)?;
        let extra: Vec<String> = a.extra_opts.iter().map(crate::value::to_text).collect();
        let xo = extra.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let list_files = a.list_files;
        let local = if remote_src {
            None
        } else {
            Some(ctx.find_local(&src, "files")?)
        };

        // Round trip 1.
        let creates = a.creates.as_deref().filter(|s| !s.is_empty());
        let vars = vec![
            ("d", remote::sh_path(&dest)),
            ("cr", creates.map(remote::sh_path).unwrap_or_default()),
            (
                "rs",
                if remote_src {
                    "1".into()
                } else {
                    String::new()
                },
            ),
            ("a", remote::sh_path(&src)),
        ];
        let reply = remote::run(ctx, remote::script(&vars, PROBE)).await?;
        let mut r = outcome(false);
        r.insert("dest".into(), dest.clone().into());
        r.insert("src".into(), src.clone().into());
        if reply.flag("creates") {
            let msg = format!("skipped, since {} exists", creates.unwrap_or_default());
            r.insert("msg".into(), msg.into());
            return Ok(r);
        }
        let Some(dest_st) = reply.stat("dest")? else {
            return Err(ModError::msg(format!(
                "Destination '{dest}' is not a directory"
            )));
        };
        let umask = reply
            .get("umask")
            .and_then(|u| u32::from_str_radix(u.trim(), 8).ok())
            .unwrap_or(0o022);
        if remote_src {
            match reply.get("src") {
                Some("1") => {}
                Some("notfile") => {
                    return Err(ModError::msg(format!("Source '{src}' is not a file")));
                }
                _ => return Err(ModError::msg(format!("Source '{src}' does not exist"))),
            }
        }

        // The archive on the target.
        let archive = match &local {
            Some(path) => {
                let up = remote::tmp_staging();
                ctx.connection()
                    .await?
                    .put_file(path, &up, Some(0o600))
                    .await?;
                up
            }
            None => src.clone(),
        };
        let a_word = if remote_src {
            remote::sh_path(&archive)
        } else {
            quote(&archive)
        };
        let cleanup = || async {
            if !remote_src {
                let _ = ctx
                    .exec(format!("rm -f -- {}", quote(&archive)), None)
                    .await;
            }
        };

        // Round trip 2: list and compare.
        let vars = vec![
            ("d", remote::sh_path(&dest)),
            ("a", a_word.clone()),
            ("xo", quote(&xo)),
            ("shown", quote(&src)),
        ];
        let reply = match remote::run(ctx, remote::script(&vars, LIST)).await {
            Ok(r) => r,
            Err(e) => {
                cleanup().await;
                return Err(e);
            }
        };
        let format = reply.get("format").unwrap_or("tar").to_string();
        let (names, have) = names_and_stats(&reply);
        let verbose: Vec<_> = reply
            .all("v")
            .filter_map(if format == "zip" {
                parse_zip_verbose
            } else {
                parse_tar_verbose
            })
            .collect();
        let list = entries(&names, &verbose);
        let diffs: Vec<String> = list
            .iter()
            .zip(&have)
            .filter_map(|(e, h)| differs(e, h.as_ref(), &wanted, umask))
            .collect();
        r.insert("handler".into(), handler(&format).into());
        if list_files {
            r.insert(
                "files".into(),
                Value::Array(names.iter().map(|n| Value::String(n.clone())).collect()),
            );
        }
        add_path_info(&mut r, &dest_st);
        r.insert("dest".into(), dest.clone().into());
        if diffs.is_empty() {
            cleanup().await;
            return Ok(r);
        }
        r.insert("changed".into(), true.into());
        if ctx.check_mode {
            cleanup().await;
            return Ok(r);
        }

        // Round trip 3: extract, then attributes.
        let mode = match &wanted.mode {
            Some(ModeSpec::Octal(m)) => format!("{m:04o}"),
            Some(ModeSpec::Symbolic(s)) => s.clone(),
            _ => String::new(),
        };
        let names_text = names.join("\n");
        let vars = vec![
            ("d", remote::sh_path(&dest)),
            ("a", a_word),
            ("xo", quote(&xo)),
            ("shown", quote(&src)),
            ("f", quote(&format)),
            (
                "rs",
                if remote_src {
                    "1".into()
                } else {
                    String::new()
                },
            ),
            ("names", quote(&names_text)),
            ("mode", quote(&mode)),
            (
                "own",
                wanted.owner.as_deref().map(quote).unwrap_or_default(),
            ),
            (
                "grp",
                wanted.group.as_deref().map(quote).unwrap_or_default(),
            ),
        ];
        let reply = match remote::run(ctx, remote::script(&vars, EXTRACT)).await {
            Ok(r) => r,
            Err(ModError::Failed { msg, result }) => {
                let mut res = r;
                res.remove("changed");
                res.extend(result);
                return Err(ModError::Failed { msg, result: res });
            }
            Err(e) => {
                cleanup().await;
                return Err(e);
            }
        };
        let lines = |k: &str| reply.all(k).collect::<Vec<_>>().join("\n");
        let mut x = Outcome::new();
        x.insert(
            "cmd".into(),
            if format == "zip" {
                format!("unzip -o {src} {xo} -d {dest}")
            } else {
                format!("tar -xf {src} -C {dest} {xo}")
            }
            .trim()
            .to_string()
            .into(),
        );
        x.insert(
            "rc".into(),
            reply
                .get("x_rc")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                .into(),
        );
        x.insert("out".into(), lines("x_out").trim().to_string().into());
        x.insert("err".into(), lines("x_err").trim().to_string().into());
        r.insert("extract_results".into(), Value::Object(x));
        Ok(r)
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
    // Entries that extract to nothing (`./`, stripped prefixes) are not compared.
    let keep: Vec<bool> = names
        .iter()
        .map(|n| !n.is_empty() && n != "./" && n != ".")
        .collect();
    let names2 = names
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(n, _)| n.clone())
        .collect();
    let have2 = have
        .into_iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(h, _)| h)
        .collect();
    (names2, have2)
}

#[cfg(test)]
mod tests {
    use super::*;

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
