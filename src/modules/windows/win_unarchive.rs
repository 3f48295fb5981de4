//! `win_unarchive`: unpack a `.zip` (Expand-Archive) or a tar archive (`.tar`, `.tar.gz`/`.tgz`,
//! `.tar.bz2`, `.tar.xz`, through the tar.exe Windows ships) that is already on the Windows host
//! into a directory, idempotently — like community.windows.win_unzip, which extracts every time.
//!
//! Skipped when `creates` exists. Otherwise the probe lists the archive and stats every name
//! under `dest`; the archive is extracted only when an entry is missing there, has another kind,
//! or (when the listing gives sizes) another size. `delete_archive` (alias `rm`) removes it
//! afterwards; a run after that finds no archive and, since it was asked to delete it, reports
//! nothing to do instead of failing.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, p, req,
};

pub static SCRIPT: super::Script = script!("win_unarchive");

static DEF: ModuleDef = ModuleDef {
    name: "win_unarchive",
    namespaces: &["community.windows", "ansible.windows"],
    params: &[
        // Expand-Archive's parameter names, and win_unzip's `rm`.
        alias(req("src", Str), &["path"]),
        alias(req("dest", Str), &["destination"]),
        p("creates", Str),
        alias(p("delete_archive", Bool), &["rm"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnarchiveArgs {
    pub src: String,
    pub dest: String,
    #[serde(default)]
    pub creates: Option<String>,
    #[serde(default)]
    pub delete_archive: bool,
    /// Filled in by the module: `zip` or `tar`.
    #[serde(default)]
    pub format: String,
}

/// The archive's format, from its name (Expand-Archive accepts only `.zip`).
pub fn format_of(src: &str) -> Option<&'static str> {
    let l = src.to_lowercase();
    if l.ends_with(".zip") {
        Some("zip")
    } else if [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz",
    ]
    .iter()
    .any(|e| l.ends_with(e))
    {
        Some("tar")
    } else {
        None
    }
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct Kind {
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct ArchiveEntry {
    pub name: String,
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Have {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Probe {
    #[serde(default)]
    pub creates: bool,
    #[serde(default)]
    pub src: Kind,
    #[serde(default)]
    pub dest: Kind,
    #[serde(default)]
    pub tar_exe: bool,
    #[serde(default, deserialize_with = "list")]
    pub entries: Vec<ArchiveEntry>,
    #[serde(default, deserialize_with = "list")]
    pub verbose: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub have: Vec<Have>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub extract: bool,
    pub delete_archive: bool,
    /// Why nothing is done, or why it is extracted.
    #[serde(skip)]
    pub reason: String,
}

impl Plan {
    pub fn changes(&self) -> bool {
        self.extract || self.delete_archive
    }
}

/// The size in one `tar -tv` line as bsdtar (Windows' tar.exe) prints it:
/// `-rw-r--r--  0 user group 12 Jan  1 12:00 name`.
pub fn bsdtar_size(line: &str) -> Option<u64> {
    line.split_whitespace().nth(4)?.parse().ok()
}

/// A name that would land outside `dest` (absolute, a drive, or `..`).
fn escapes(name: &str) -> bool {
    let n = name.replace('\\', "/");
    n.starts_with('/') || n.as_bytes().get(1) == Some(&b':') || n.split('/').any(|c| c == "..")
}

pub fn plan(probe: &Probe, a: &UnarchiveArgs) -> Result<Plan, String> {
    let keep = |reason: String| Plan {
        extract: false,
        delete_archive: false,
        reason,
    };
    if probe.creates {
        return Ok(keep(format!(
            "The file or directory '{}' already exists.",
            a.creates.as_deref().unwrap_or_default()
        )));
    }
    if !probe.src.exists {
        if a.delete_archive {
            return Ok(keep(format!(
                "'{}' is gone (an earlier run extracted and deleted it)",
                a.src
            )));
        }
        return Err(format!("File '{}' does not exist.", a.src));
    }
    if probe.src.is_dir {
        return Err(format!("'{}' is a directory, not an archive", a.src));
    }
    if probe.dest.exists && !probe.dest.is_dir {
        return Err(format!("'{}' exists and is not a directory", a.dest));
    }
    if a.format == "tar" && !probe.tar_exe {
        return Err(
            "tar.exe was not found in %SystemRoot%\\System32 (it ships with Windows 10 1803 and \
             Server 2019 and later); only .zip archives can be extracted here"
                .into(),
        );
    }
    if let Some(bad) = probe.entries.iter().find(|e| escapes(&e.name)) {
        return Err(format!(
            "Error unzipping '{}' to '{}'! Filename contains relative paths which would extract \
             outside the destination: {}",
            a.src, a.dest, bad.name
        ));
    }
    let sizes: Vec<Option<u64>> = if a.format == "tar" {
        if probe.verbose.len() == probe.entries.len() {
            probe.verbose.iter().map(|l| bsdtar_size(l)).collect()
        } else {
            vec![None; probe.entries.len()]
        }
    } else {
        probe.entries.iter().map(|e| e.size).collect()
    };
    let mut why = None;
    for (e, size) in probe.entries.iter().zip(sizes) {
        let is_dir = e.name.ends_with('/') || e.name.ends_with('\\');
        let have = probe
            .have
            .iter()
            .find(|h| h.name == e.name)
            .map(|h| &h.kind);
        let reason = match have {
            None => Some("missing"),
            Some(h) if !h.exists => Some("missing"),
            Some(h) if h.is_dir != is_dir => Some("of another kind"),
            Some(h) if !is_dir && size.is_some() && h.size != size => Some("of another size"),
            _ => None,
        };
        if let Some(r) = reason {
            why = Some(format!("{} is {r} in {}", e.name, a.dest));
            break;
        }
    }
    if probe.entries.is_empty() && !probe.dest.exists {
        why = Some(format!("{} does not exist", a.dest));
    }
    Ok(Plan {
        extract: why.is_some(),
        delete_archive: a.delete_archive,
        reason: why.unwrap_or_else(|| format!("{} already holds the content of {}", a.dest, a.src)),
    })
}

#[derive(Debug, Deserialize, Default)]
struct Applied {
    #[serde(default)]
    removed: bool,
}

pub(super) struct WinUnarchive;

#[async_trait]
impl Module for WinUnarchive {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let mut a: UnarchiveArgs = typed_args(DEF.name, &args)?;
        a.format = format_of(&a.src)
            .ok_or_else(|| {
                ModError::msg(format!(
                    "cannot tell the format of '{}': win_unarchive extracts .zip and tar \
                     archives (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz)",
                    a.src
                ))
            })?
            .to_string();
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &a).await?;
        let plan = plan(&probe, &a).map_err(ModError::msg)?;
        let mut removed = false;
        if plan.changes() && !ctx.check_mode {
            let (applied, w) = SCRIPT.apply::<Applied>(ctx, &a, &plan).await?;
            warnings.extend(w);
            removed = applied.removed;
        }
        let files: Vec<Value> = probe
            .entries
            .iter()
            .map(|e| Value::String(e.name.clone()))
            .collect();
        let mut fields = json!({
            "src": a.src, "dest": a.dest, "removed": removed, "files": files,
            "extracted": plan.extract, "msg": plan.reason,
        });
        if probe.creates {
            fields["skipped"] = true.into();
        }
        Ok(finish(plan.changes(), warnings, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(src: &str) -> UnarchiveArgs {
        UnarchiveArgs {
            src: src.into(),
            dest: "C:\\out".into(),
            creates: None,
            delete_archive: false,
            format: format_of(src).unwrap_or("zip").into(),
        }
    }

    fn kind(exists: bool, is_dir: bool, size: Option<u64>) -> Kind {
        Kind {
            exists,
            is_dir,
            size,
        }
    }

    fn probe(entries: &[(&str, Option<u64>)], have: &[(&str, Kind)]) -> Probe {
        Probe {
            src: kind(true, false, Some(100)),
            dest: kind(true, true, None),
            tar_exe: true,
            entries: entries
                .iter()
                .map(|(n, s)| ArchiveEntry {
                    name: n.to_string(),
                    size: *s,
                })
                .collect(),
            have: have
                .iter()
                .map(|(n, k)| Have {
                    name: n.to_string(),
                    kind: k.clone(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_of("C:\\a\\K.ZIP"), Some("zip"));
        assert_eq!(format_of("x.tar.gz"), Some("tar"));
        assert_eq!(format_of("x.tgz"), Some("tar"));
        assert_eq!(format_of("x.gz"), None);
        assert_eq!(format_of("x.7z"), None);
    }

    #[test]
    fn extracts_only_when_dest_differs() {
        let entries = [("bin/", None), ("bin/k.exe", Some(7)), ("README", Some(3))];
        let all = [
            ("bin/", kind(true, true, None)),
            ("bin/k.exe", kind(true, false, Some(7))),
            ("README", kind(true, false, Some(3))),
        ];
        let p = plan(&probe(&entries, &all), &args("C:\\k.zip")).unwrap();
        assert!(!p.changes(), "{p:?}");
        let mut changed = all.clone();
        changed[1].1.size = Some(8);
        let p = plan(&probe(&entries, &changed), &args("C:\\k.zip")).unwrap();
        assert!(p.extract);
        assert!(
            p.reason.contains("bin/k.exe is of another size"),
            "{}",
            p.reason
        );
        let p = plan(&probe(&entries, &all[..2]), &args("C:\\k.zip")).unwrap();
        assert!(p.reason.contains("README is missing"));
        let mut kinds = all.clone();
        kinds[2].1.is_dir = true;
        assert!(
            plan(&probe(&entries, &kinds), &args("C:\\k.zip"))
                .unwrap()
                .extract
        );
    }

    #[test]
    fn tar_sizes_come_from_the_verbose_listing() {
        let mut p = probe(
            &[("d/", None), ("d/a b.txt", None)],
            &[
                ("d/", kind(true, true, None)),
                ("d/a b.txt", kind(true, false, Some(5))),
            ],
        );
        p.verbose = vec![
            "drwxr-xr-x  0 root   root        0 Jan  1  2024 d/".into(),
            "-rw-r--r--  0 root   root        5 Jan  1  2024 d/a b.txt".into(),
        ];
        let a = args("C:\\in\\x.tar.gz");
        assert!(!plan(&p, &a).unwrap().extract);
        p.verbose[1] = "-rw-r--r--  0 root   root        6 Jan  1  2024 d/a b.txt".into();
        assert!(plan(&p, &a).unwrap().extract);
        // Without tar.exe: a clear refusal.
        p.tar_exe = false;
        assert!(plan(&p, &a).unwrap_err().contains("tar.exe"));
    }

    #[test]
    fn creates_missing_archive_and_traversal() {
        let mut a = args("C:\\k.zip");
        a.creates = Some("C:\\out\\bin".into());
        let p = Probe {
            creates: true,
            ..Default::default()
        };
        let pl = plan(&p, &a).unwrap();
        assert!(!pl.changes() && pl.reason.contains("already exists"));
        let a = args("C:\\k.zip");
        let e = plan(&Probe::default(), &a).unwrap_err();
        assert_eq!(e, "File 'C:\\k.zip' does not exist.");
        let mut a2 = a.clone();
        a2.delete_archive = true;
        assert!(!plan(&Probe::default(), &a2).unwrap().changes());
        let e = plan(&probe(&[("../evil.dll", Some(1))], &[]), &a).unwrap_err();
        assert!(e.contains("outside the destination"), "{e}");
        assert!(plan(&probe(&[("C:/evil", Some(1))], &[]), &a).is_err());
        // delete_archive on an extracted archive: removing it is the change.
        let p = probe(&[("a", Some(1))], &[("a", kind(true, false, Some(1)))]);
        let pl = plan(&p, &a2).unwrap();
        assert!(!pl.extract && pl.delete_archive && pl.changes());
    }

    #[test]
    fn odd_paths_travel_as_data() {
        let odd = "C:\\it's \"q\" $x `b` \u{e9}\u{540d}.zip";
        let a = args(odd);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["src"], odd);
        assert_eq!(v["format"], "zip");
    }
}
