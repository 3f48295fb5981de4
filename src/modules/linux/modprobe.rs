//! `modprobe` (community.general.modprobe): load or unload a kernel module, optionally
//! persistently (`/etc/modules-load.d/<name>.conf`, options in `/etc/modprobe.d/<name>.conf`).
//!
//! Decides as the collection does: a module counts as loaded when `lsmod` lists it (`-` read
//! as `_`; `/proc/modules` when there is no `lsmod`) or `modules.builtin` names it;
//! `persistent: present` writes the two files unless a `modules-load.d` line names the module
//! and the `options <name> k=v` lines in `modprobe.d` are exactly `params`; `persistent:
//! absent` comments those lines out. Check mode runs `modprobe -n` as the collection does.
//! Round trip 1 reads the state and the files, round trip 2 loads/unloads and writes.

use std::collections::BTreeSet;

use async_trait::async_trait;
use base64::Engine;
use serde_json::Value;

use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::files::remote;
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, choice, p, req,
    typed,
};

static DEF: ModuleDef = ModuleDef {
    name: "modprobe",
    namespaces: &["community.general"],
    params: &[
        req("name", Str),
        choice("state", &["present", "absent"]),
        p("params", Str),
        choice("persistent", &["disabled", "present", "absent"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub const MODULES_LOAD: &str = "/etc/modules-load.d";
pub const MODPROBE_D: &str = "/etc/modprobe.d";

#[derive(Debug, serde::Deserialize)]
struct ModprobeArgs {
    name: String,
    #[serde(default = "present")]
    state: String,
    #[serde(default)]
    params: String,
    #[serde(default = "disabled")]
    persistent: String,
}

fn present() -> String {
    "present".into()
}
fn disabled() -> String {
    "disabled".into()
}

/// `^ *NAME *(?:[#;].*)?\n?\Z`: a modules-load.d line that loads `name`.
pub fn is_module_line(line: &str, name: &str) -> bool {
    let l = line.strip_suffix('\n').unwrap_or(line);
    let Some(rest) = l.trim_start_matches(' ').strip_prefix(name) else {
        return false;
    };
    if l.contains('\n') {
        return false;
    }
    let rest = rest.trim_start_matches(' ');
    rest.is_empty() || rest.starts_with(['#', ';'])
}

/// `^options NAME (\w+=\S+) *(?:[#;].*)?\n?\Z`: the `k=v` an options line sets for `name`.
pub fn option_of<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let l = line.strip_suffix('\n').unwrap_or(line);
    if l.contains('\n') {
        return None;
    }
    let rest = l
        .strip_prefix("options ")?
        .strip_prefix(name)?
        .strip_prefix(' ')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (kv, tail) = rest.split_at(end);
    let (k, v) = kv.split_once('=')?;
    if k.is_empty() || v.is_empty() || !k.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let tail = tail.trim_start_matches(' ');
    (tail.is_empty() || tail.starts_with(['#', ';'])).then_some(kv)
}

/// A file under one of the two directories, as read from the host.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfFile {
    pub path: String,
    pub text: String,
}

/// Python's `readlines()`.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The collection's persistence decision: whether it changes anything, and the files to
/// write (path, new content), in order.
pub fn plan_persistent(
    name: &str,
    params: &str,
    persistent: &str,
    load_files: &[ConfFile],
    option_files: &[ConfFile],
) -> (bool, Vec<(String, String)>) {
    let loaded = load_files
        .iter()
        .any(|f| lines(&f.text).iter().any(|l| is_module_line(l, name)));
    let permanent: BTreeSet<&str> = option_files
        .iter()
        .flat_map(|f| {
            lines(&f.text)
                .into_iter()
                .filter_map(|l| option_of(l, name))
        })
        .collect();
    let desired: BTreeSet<&str> = params.split_whitespace().collect();
    let params_set = desired == permanent;
    // Every file, with its matching lines commented out (only those that change).
    let comment_out = |files: &[ConfFile], hit: &dyn Fn(&str) -> bool| -> Vec<(String, String)> {
        files
            .iter()
            .filter_map(|f| {
                let ls = lines(&f.text);
                if !ls.iter().any(|l| hit(l)) {
                    return None;
                }
                let new: String = ls
                    .iter()
                    .map(|l| {
                        if hit(l) {
                            format!("#{l}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect();
                Some((f.path.clone(), new))
            })
            .collect()
    };
    let disable_params = || comment_out(option_files, &|l| option_of(l, name).is_some());
    let mut writes = Vec::new();
    let mut changed = false;
    match persistent {
        "present" if !(loaded && params_set) => {
            if !loaded {
                writes.push((format!("{MODULES_LOAD}/{name}.conf"), format!("{name}\n")));
                changed = true;
            }
            if !params_set {
                writes.extend(disable_params());
                let content: Vec<String> = params
                    .split_whitespace()
                    .map(|p| format!("options {name} {p}"))
                    .collect();
                writes.push((
                    format!("{MODPROBE_D}/{name}.conf"),
                    content.join("\n") + "\n",
                ));
                changed = true;
            }
        }
        "absent" if loaded || !permanent.is_empty() => {
            if loaded {
                writes.extend(comment_out(load_files, &|l| is_module_line(l, name)));
                changed = true;
            }
            if !permanent.is_empty() {
                writes.extend(disable_params());
                changed = true;
            }
        }
        _ => {}
    }
    (changed, writes)
}

/// Reads the files the probe sent as `<key>f=<path>` / `<key>b=<base64>` pairs.
fn conf_files(reply: &remote::Reply, key: &str) -> Result<Vec<ConfFile>, ModError> {
    let (pk, bk) = (format!("{key}f"), format!("{key}b"));
    let paths = reply.all(&pk).collect::<Vec<_>>();
    let bodies = reply.all(&bk).collect::<Vec<_>>();
    paths
        .iter()
        .zip(bodies)
        .map(|(p, b)| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| ModError::msg(format!("reading {p}: {e}")))?;
            Ok(ConfFile {
                path: p.to_string(),
                text: String::from_utf8_lossy(&raw).into_owned(),
            })
        })
        .collect()
}

pub struct Modprobe;

#[async_trait]
impl Module for Modprobe {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: ModprobeArgs = typed(&args)?;
        let name = a.name.clone();
        let words = shell_words::split(&a.params)
            .map_err(|e| ModError::msg(format!("params cannot be parsed: {}: {e}", a.params)))?;
        let argv: String = std::iter::once(quote(&name))
            .chain(words.iter().map(|w| quote(w)))
            .collect::<Vec<_>>()
            .join(" ");
        let vars = [
            ("n", quote(&name)),
            ("u", quote(&name.replace('-', "_"))),
            ("ml", quote(MODULES_LOAD)),
            ("md", quote(MODPROBE_D)),
        ];
        // `_loaded`: listed by lsmod (or /proc/modules), or built into the kernel.
        let loaded_fn = r#"_loaded() {
  if command -v lsmod >/dev/null 2>&1; then lsmod; else cat /proc/modules; fi | awk -v u="$u" '$1 == u { f = 1 } END { exit !f }' && return 0
  b="/lib/modules/$(uname -r)/modules.builtin"
  [ -f "$b" ] && grep -q "/$n\.ko\$" "$b"
}
"#;
        let read = remote::script(
            &vars,
            &format!(
                r#"{loaded_fn}command -v modprobe >/dev/null 2>&1 || {{ _err 'Failed to find required executable "modprobe" in PATH'; exit 0; }}
_loaded && printf 'loaded=1\n'
for d in ml md; do
  eval dir=\$$d
  [ -d "$dir" ] || continue
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    printf '%sf=%s\n%sb=' "$d" "$f" "$d"; base64 < "$f" | tr -d '\n'; printf '\n'
  done
done
"#
            ),
        );
        let reply = remote::run(ctx, read).await?;
        let loaded = reply.flag("loaded");
        let load_files = conf_files(&reply, "ml")?;
        let option_files = conf_files(&reply, "md")?;

        let mut body = String::from(loaded_fn);
        let n_flag = if ctx.check_mode { " -n" } else { "" };
        let load = a.state == "present" && !loaded;
        let unload = a.state == "absent" && loaded;
        if load {
            body.push_str(&format!(
                r#"e=$(modprobe{n_flag} {argv} 2>&1 >/dev/null) || {{ printf 'rc=%s\n' "$?"; _err "$e"; exit 0; }}
if [ -n "{check}" ] || _loaded; then printf 'changed=1\n'
else w=$(modprobe -n --first-time {argv} 2>&1 >/dev/null) || printf 'warning=%s\n' "$(printf '%s' "$w" | tr '\n' ' ')"; fi
"#,
                check = if ctx.check_mode { "1" } else { "" },
            ));
        }
        if unload {
            body.push_str(&format!(
                r#"e=$(modprobe -r {n}{n_flag} 2>&1 >/dev/null) || {{ printf 'rc=%s\n' "$?"; _err "$e"; exit 0; }}
printf 'changed=1\n'
"#,
                n = quote(&name)
            ));
        }
        let (file_changed, writes) =
            plan_persistent(&name, &a.params, &a.persistent, &load_files, &option_files);
        if !ctx.check_mode {
            for (path, content) in &writes {
                body.push_str(&format!(
                    "mkdir -p \"$(dirname {p})\" && printf '%s' {c} > {p} || {{ _err \"Failed to write {path}\"; exit 0; }}\n",
                    p = quote(path),
                    c = quote(content),
                    path = path.replace(['"', '$', '`', '\\'], "_"),
                ));
            }
        }
        let mut changed = file_changed;
        let mut warnings = Vec::new();
        if load || unload || (!ctx.check_mode && !writes.is_empty()) {
            let done = remote::run(ctx, remote::script(&vars, &body)).await?;
            changed |= done.flag("changed");
            warnings.extend(done.all("warning").map(|w| Value::from(w.to_string())));
        }
        let mut r = Outcome::new();
        r.insert("changed".into(), changed.into());
        r.insert("name".into(), name.into());
        r.insert("params".into(), a.params.into());
        r.insert("state".into(), a.state.into());
        if !warnings.is_empty() {
            r.insert("warnings".into(), Value::Array(warnings));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> ConfFile {
        ConfFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn line_matching_follows_the_collection_regexes() {
        assert!(is_module_line("br_netfilter\n", "br_netfilter"));
        assert!(is_module_line("  br_netfilter  # k3s\n", "br_netfilter"));
        assert!(is_module_line("overlay;x", "overlay"));
        assert!(!is_module_line("#overlay\n", "overlay"));
        assert!(!is_module_line("overlay2\n", "overlay"));
        assert!(!is_module_line("\toverlay\n", "overlay"));
        assert_eq!(
            option_of("options bonding mode=1\n", "bonding"),
            Some("mode=1")
        );
        assert_eq!(
            option_of("options bonding mode=1  # active-backup\n", "bonding"),
            Some("mode=1")
        );
        assert_eq!(
            option_of("options bonding mode=1 miimon=100\n", "bonding"),
            None
        );
        assert_eq!(option_of("#options bonding mode=1\n", "bonding"), None);
        assert_eq!(option_of("options bonding mode\n", "bonding"), None);
        assert_eq!(option_of("options  bonding mode=1\n", "bonding"), None);
    }

    #[test]
    fn persistent_present_writes_both_files_once() {
        let (changed, writes) = plan_persistent("dummy", "numdummies=2", "present", &[], &[]);
        assert!(changed);
        assert_eq!(
            writes,
            [
                ("/etc/modules-load.d/dummy.conf".into(), "dummy\n".into()),
                (
                    "/etc/modprobe.d/dummy.conf".into(),
                    "options dummy numdummies=2\n".into()
                ),
            ]
        );
        let ml = [file("/etc/modules-load.d/dummy.conf", "dummy\n")];
        let md = [file(
            "/etc/modprobe.d/dummy.conf",
            "options dummy numdummies=2\n",
        )];
        assert_eq!(
            plan_persistent("dummy", "numdummies=2", "present", &ml, &md),
            (false, vec![])
        );
        // Other params: old lines (anywhere) commented out, the options file rewritten.
        let md = [
            file("/etc/modprobe.d/dummy.conf", "options dummy numdummies=2\n"),
            file(
                "/etc/modprobe.d/other.conf",
                "x\noptions dummy numdummies=2\n",
            ),
        ];
        let (changed, writes) = plan_persistent("dummy", "numdummies=4", "present", &ml, &md);
        assert!(changed);
        assert_eq!(
            writes,
            [
                (
                    "/etc/modprobe.d/dummy.conf".into(),
                    "#options dummy numdummies=2\n".into()
                ),
                (
                    "/etc/modprobe.d/other.conf".into(),
                    "x\n#options dummy numdummies=2\n".into()
                ),
                (
                    "/etc/modprobe.d/dummy.conf".into(),
                    "options dummy numdummies=4\n".into()
                ),
            ]
        );
        // No params and none set: only the modules-load.d file (the empty set of params
        // counts as set, as in the collection).
        let (_, writes) = plan_persistent("overlay", "", "present", &[], &[]);
        assert_eq!(
            writes,
            [(
                "/etc/modules-load.d/overlay.conf".into(),
                "overlay\n".into()
            )]
        );
        // Already persistent without params: nothing.
        let ml = [file(
            "/etc/modules-load.d/k3s.conf",
            "overlay\nbr_netfilter\n",
        )];
        assert_eq!(
            plan_persistent("overlay", "", "present", &ml, &[]),
            (false, vec![])
        );
    }

    #[test]
    fn persistent_absent_comments_out() {
        let ml = [file(
            "/etc/modules-load.d/k3s.conf",
            "overlay\nbr_netfilter\n",
        )];
        let md = [file("/etc/modprobe.d/o.conf", "options overlay a=1\n")];
        let (changed, writes) = plan_persistent("overlay", "", "absent", &ml, &md);
        assert!(changed);
        assert_eq!(
            writes,
            [
                (
                    "/etc/modules-load.d/k3s.conf".into(),
                    "#overlay\nbr_netfilter\n".into()
                ),
                (
                    "/etc/modprobe.d/o.conf".into(),
                    "#options overlay a=1\n".into()
                ),
            ]
        );
        let ml = [file(
            "/etc/modules-load.d/k3s.conf",
            "#overlay\nbr_netfilter\n",
        )];
        assert_eq!(
            plan_persistent("overlay", "", "absent", &ml, &[]),
            (false, vec![])
        );
        // disabled: the files are not looked at.
        assert_eq!(
            plan_persistent("overlay", "", "disabled", &[], &[]),
            (false, vec![])
        );
    }
}
