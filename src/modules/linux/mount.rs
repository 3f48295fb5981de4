//! `mount` (ansible.posix.mount): an fstab entry and the mount itself, on Linux targets.
//!
//! Written from the collection's documented behaviour and its `set_mount`/`unset_mount`
//! (the venv has no ansible.posix to compare with): the entry is found by its mount point (a
//! swap entry by its source), its fields compared with the wanted ones and the line rewritten
//! as `src path fstype opts dump passno` when one differs; other lines are kept byte for byte.
//! Round trip 1 reads the fstab and the path's entries in `/proc/self/mountinfo`; the
//! controller decides (pure functions below); round trip 2 (not in check mode, only when there
//! is something to do) writes the fstab in place and runs `mount`/`umount`. A failed mount
//! restores the old fstab and removes the directories it created, as the collection does.

use async_trait::async_trait;
use serde_json::Value;

use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::files::remote::{self, sh_path};
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, alias, choice, outcome, p,
    req, typed,
};

static DEF: ModuleDef = ModuleDef {
    name: "mount",
    namespaces: &["ansible.posix"],
    params: &[
        alias(req("path", Str), &["name"]),
        p("src", Str),
        p("fstype", Str),
        p("opts", Str),
        p("dump", Str),
        p("passno", Str),
        choice(
            "state",
            &[
                "absent",
                "absent_from_fstab",
                "mounted",
                "present",
                "unmounted",
                "remounted",
            ],
        ),
        p("fstab", Str),
        p("boot", Bool),
        p("backup", Bool),
        p("opts_no_log", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, serde::Deserialize)]
struct MountArgs {
    path: String,
    src: Option<String>,
    fstype: Option<String>,
    opts: Option<String>,
    dump: Option<String>,
    passno: Option<String>,
    state: Option<String>,
    fstab: Option<String>,
    #[serde(default = "yes")]
    boot: bool,
    #[serde(default)]
    backup: bool,
}

fn yes() -> bool {
    true
}

/// The entry's fields after the collection's defaulting (`defaults`, `0`, `0`) and the
/// `boot: false` → `noauto` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub src: Option<String>,
    pub fstype: Option<String>,
    pub opts: String,
    pub dump: String,
    pub passno: String,
    pub boot: bool,
}

impl Entry {
    /// The entry and the collection's warnings.
    pub fn new(
        name: &str,
        src: Option<&str>,
        fstype: Option<&str>,
        opts: Option<&str>,
        dump: Option<&str>,
        passno: Option<&str>,
        boot: bool,
    ) -> (Entry, Vec<String>) {
        let mut warnings = Vec::new();
        let mut opts = opts.unwrap_or("defaults").to_string();
        let list: Vec<&str> = opts.split(',').collect();
        if boot && list.contains(&"noauto") {
            warnings.push("Ignore the 'boot' due to 'opts' contains 'noauto'.".to_string());
        } else if !boot {
            if list.contains(&"defaults") {
                warnings.push("Ignore the 'boot' due to 'opts' contains 'defaults'.".to_string());
            } else {
                opts.push_str(",noauto");
            }
        }
        let entry = Entry {
            name: name.to_string(),
            src: src.map(str::to_string),
            fstype: fstype.map(str::to_string),
            opts,
            dump: dump.unwrap_or("0").to_string(),
            passno: passno.unwrap_or("0").to_string(),
            boot,
        };
        (entry, warnings)
    }
}

/// fstab escaping of a field: backslash, space and `&` as octal escapes.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('&', "\\046")
}

fn lines_of(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Whether an fstab line (split into fields) is the entry for `name` (for swap: for `src`).
fn is_entry(fields: &[&str], name: &str, src: Option<&str>) -> bool {
    fields[1] == name
        && !(fields[1] == "none" && fields[2] == "swap" && src.is_some_and(|s| fields[0] != s))
}

/// The collection's `set_mount`: the new fstab text and whether it changed.
pub fn set_mount(text: &str, e: &Entry) -> (String, bool) {
    let name = escape(&e.name);
    let src = escape(e.src.as_deref().unwrap_or_default());
    let fstype = escape(e.fstype.as_deref().unwrap_or_default());
    let want = [
        src.as_str(),
        fstype.as_str(),
        &escape(&e.opts),
        &escape(&e.dump),
        &escape(&e.passno),
    ]
    .map(str::to_string);
    let mut out = String::with_capacity(text.len() + 64);
    let mut exists = false;
    let mut changed = false;
    for line in lines_of(text) {
        let t = line.trim();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() || t.starts_with('#') || !(4..=6).contains(&fields.len()) {
            out.push_str(line);
            continue;
        }
        if !is_entry(&fields, &name, e.src.as_deref()) {
            out.push_str(line);
            continue;
        }
        exists = true;
        // src fstype opts dump passno; a missing dump/passno never equals the wanted text.
        let mut have: Vec<Option<String>> = [0, 2, 3, 4, 5]
            .iter()
            .map(|i| fields.get(*i).map(|s| s.to_string()))
            .collect();
        for (h, w) in have.iter_mut().zip(&want) {
            if h.as_deref() != Some(w.as_str()) {
                *h = Some(w.clone());
                changed = true;
            }
        }
        if changed {
            let h: Vec<String> = have.into_iter().map(Option::unwrap_or_default).collect();
            out.push_str(&format!(
                "{} {} {} {} {} {}\n",
                h[0], fields[1], h[1], h[2], h[3], h[4]
            ));
        } else {
            out.push_str(line);
        }
    }
    if !exists {
        out.push_str(&format!(
            "{} {} {} {} {} {}\n",
            want[0], name, want[1], want[2], want[3], want[4]
        ));
        changed = true;
    }
    (out, changed)
}

/// The collection's `unset_mount`: the fstab without the entry's lines.
pub fn unset_mount(text: &str, name: &str, src: Option<&str>) -> (String, bool) {
    let name = escape(name);
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for line in lines_of(text) {
        let t = line.trim();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() || t.starts_with('#') || fields.len() != 6 || !is_entry(&fields, &name, src)
        {
            out.push_str(line);
            continue;
        }
        changed = true;
    }
    (out, changed)
}

/// What round trip 2 does, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub changed: bool,
    /// The new fstab text, when it changes.
    pub fstab: Option<String>,
    pub mkdir: bool,
    pub umount: bool,
    pub mount: bool,
    pub remount: bool,
    pub rmdir: bool,
}

/// Decides as the collection's `main()` for `state`, given the fstab text, whether `path` is
/// a mount point now and whether it exists.
pub fn plan(state: &str, e: &Entry, fstab: &str, mounted: bool, exists: bool) -> Plan {
    let mut p = Plan::default();
    match state {
        "absent" | "absent_from_fstab" => {
            let (text, changed) = unset_mount(fstab, &e.name, e.src.as_deref());
            p.changed = changed;
            if changed {
                p.fstab = Some(text);
                if state == "absent" {
                    p.umount = mounted;
                    p.rmdir = exists;
                }
            }
        }
        "unmounted" => {
            p.changed = mounted;
            p.umount = mounted;
        }
        "present" => {
            let (text, changed) = set_mount(fstab, e);
            p.changed = changed;
            p.fstab = changed.then_some(text);
        }
        "mounted" => {
            let (text, changed) = set_mount(fstab, e);
            p.mkdir = !exists;
            p.fstab = changed.then_some(text);
            if mounted {
                p.changed = changed;
                p.remount = changed;
            } else {
                p.changed = true;
                p.mount = true;
            }
        }
        // remounted
        _ => {
            p.changed = true;
            p.remount = true;
        }
    }
    p
}

/// `/proc/self/mountinfo` escapes the mount point as fstab does (octal for space, tab,
/// newline and backslash).
fn mountinfo_escape(p: &str) -> String {
    p.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012")
}

pub struct Mount;

#[async_trait]
impl Module for Mount {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: MountArgs = typed(&args)?;
        let state = a.state.as_deref().unwrap_or("present");
        if matches!(state, "mounted" | "present") {
            let missing: Vec<&str> = [("src", &a.src), ("fstype", &a.fstype)]
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            if !missing.is_empty() {
                return Err(ModError::msg(format!(
                    "state is {state} but all of the following are missing: {}",
                    missing.join(", ")
                )));
            }
        }
        let path = a.path.clone();
        let fstab = a.fstab.clone().unwrap_or_else(|| "/etc/fstab".into());
        let (entry, warnings) = Entry::new(
            &path,
            a.src.as_deref(),
            a.fstype.as_deref(),
            a.opts.as_deref(),
            a.dump.as_deref(),
            a.passno.as_deref(),
            a.boot,
        );
        let vars = [
            ("p", sh_path(&path)),
            ("f", sh_path(&fstab)),
            (
                "pe",
                quote(&mountinfo_escape(match path.trim_end_matches('/') {
                    "" => "/",
                    trimmed => trimmed,
                })),
            ),
        ];
        let read = remote::script(
            &vars,
            r#"command -v mount >/dev/null 2>&1 || { _err 'Failed to find required executable "mount" in PATH'; exit 0; }
[ -e "$p" ] && printf 'exists=1\n'
if [ -r /proc/self/mountinfo ]; then
  P="$pe" awk '$5 == ENVIRON["P"] { print "mnt=" $0 }' /proc/self/mountinfo
else
  printf 'nomountinfo=1\n'
fi
if [ -f "$f" ]; then printf '::data::\n'; cat "$f" || { _err "Failed to read $f"; exit 0; }; fi
"#,
        );
        let reply = remote::run(ctx, read).await?;
        let mounted = reply.all("mnt").next().is_some();
        let exists = reply.flag("exists");
        let text = String::from_utf8_lossy(reply.data.as_deref().unwrap_or_default()).into_owned();
        let plan = plan(state, &entry, &text, mounted, exists);

        let mut r = outcome(plan.changed);
        r.insert("name".into(), path.clone().into());
        if let Some(s) = &entry.src {
            r.insert("src".into(), s.clone().into());
        }
        if let Some(s) = &entry.fstype {
            r.insert("fstype".into(), s.clone().into());
        }
        r.insert("opts".into(), entry.opts.clone().into());
        r.insert("dump".into(), entry.dump.clone().into());
        r.insert("passno".into(), entry.passno.clone().into());
        r.insert("fstab".into(), fstab.clone().into());
        r.insert("boot".into(), if entry.boot { "yes" } else { "no" }.into());
        let mut warnings: Vec<Value> = warnings.into_iter().map(Value::from).collect();
        if reply.flag("nomountinfo") {
            warnings.push(
                "Cannot open file /proc/self/mountinfo. Bind mounts might be misinterpreted."
                    .into(),
            );
        }
        if !warnings.is_empty() {
            r.insert("warnings".into(), Value::Array(warnings));
        }
        if ctx.diff
            && let Some(new) = &plan.fstab
        {
            r.insert(
                "diff".into(),
                crate::modules::files::content_diff(
                    &fstab,
                    Some(text.as_bytes()),
                    text.len() as u64,
                    &fstab,
                    Some(new.as_bytes()),
                    new.len() as u64,
                ),
            );
        }
        if ctx.check_mode || !plan.changed {
            return Ok(r);
        }

        // -T FILE: mount reads this fstab instead of /etc/fstab (util-linux).
        let t = if fstab != "/etc/fstab" {
            format!("-T {} ", sh_path(&fstab))
        } else {
            String::new()
        };
        let mut body = String::new();
        if plan.mkdir {
            body.push_str(
                r#"d="$p"; top=
while [ ! -e "$d" ]; do top=$d; d=$(dirname "$d"); done
mkdir -p "$p" || { _err "Error creating $p"; exit 0; }
"#,
            );
        }
        if let Some(new) = &plan.fstab {
            if a.backup {
                body.push_str(
                    r#"if [ -f "$f" ]; then b="$f.$$.$(date +%Y-%m-%d@%H:%M:%S)~"; cp -p "$f" "$b" && printf 'backup_file=%s\n' "$b"; fi
"#,
                );
            }
            body.push_str(&format!(
                r#"mkdir -p "$(dirname "$f")" && printf '%s' {} > "$f" || {{ _err "Failed to write $f"; exit 0; }}
"#,
                quote(new)
            ));
        }
        let put_back = match &plan.fstab {
            Some(_) => format!("printf '%s' {} > \"$f\"; ", quote(&text)),
            None => String::new(),
        };
        let restore = format!(
            r#"{put_back}if [ -n "${{top:-}}" ]; then x=$p; while rmdir "$x" 2>/dev/null && [ "$x" != "$top" ]; do x=$(dirname "$x"); done; fi"#
        );
        if plan.umount {
            body.push_str(
                "o=$(umount \"$p\" 2>&1) || { _err \"Error unmounting $p: $o\"; exit 0; }\n",
            );
        }
        if plan.rmdir {
            body.push_str(
                "if [ -e \"$p\" ]; then o=$(rmdir \"$p\" 2>&1) || { _err \"Error rmdir $p: $o\"; exit 0; }; fi\n",
            );
        }
        if plan.mount {
            body.push_str(&format!(
                "o=$(mount {t}\"$p\" 2>&1) || {{ {restore}; _err \"Error mounting $p: $o\"; exit 0; }}\n"
            ));
        }
        if plan.remount {
            // As the collection: `mount -o remount`, and if that fails, umount then mount.
            let fail = if state == "mounted" {
                format!("{{ {restore}; _err \"Error mounting $p: $o\"; exit 0; }}")
            } else {
                "{ _err \"Error remounting $p: $o\"; exit 0; }".to_string()
            };
            body.push_str(&format!(
                "if ! o=$(mount -o remount {t}\"$p\" 2>&1); then o2=$(umount \"$p\" 2>&1) && o2=$(mount {t}\"$p\" 2>&1) || {{ o=\"$o$o2\"; false; }} || {fail}; fi\n"
            ));
        }
        let done = remote::run(ctx, remote::script(&vars, &body)).await?;
        if let Some(b) = done.get("backup_file") {
            r.insert("backup_file".into(), b.into());
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, src: &str, fstype: &str, opts: Option<&str>, boot: bool) -> Entry {
        Entry::new(name, Some(src), Some(fstype), opts, None, None, boot).0
    }

    const FSTAB: &str =
        "# /etc/fstab\nUUID=1 / ext4 errors=remount-ro 0 1\n\n/swapfile none swap sw 0 0\n";

    #[test]
    fn set_mount_appends_then_is_stable() {
        let e = entry("/mnt/data", "tmpfs", "tmpfs", Some("size=1m"), true);
        let (text, changed) = set_mount(FSTAB, &e);
        assert!(changed);
        assert_eq!(text, format!("{FSTAB}tmpfs /mnt/data tmpfs size=1m 0 0\n"));
        assert_eq!(set_mount(&text, &e), (text.clone(), false));
        // An empty fstab gets just the line.
        assert_eq!(set_mount("", &e).0, "tmpfs /mnt/data tmpfs size=1m 0 0\n");
    }

    #[test]
    fn set_mount_rewrites_a_differing_entry_in_place() {
        let text = "a\tb\n/dev/x   /mnt/data  ext4  defaults  0  2\n# tail\n";
        let e = entry("/mnt/data", "/dev/x", "ext4", Some("ro"), true);
        let (new, changed) = set_mount(text, &e);
        assert!(changed);
        // Fields the task does not give take the defaults (passno 0).
        assert_eq!(new, "a\tb\n/dev/x /mnt/data ext4 ro 0 0\n# tail\n");
        // A 4-field line (dump and passno left out) always gets rewritten.
        let e = entry("/m", "s", "tmpfs", None, true);
        assert_eq!(
            set_mount("s /m tmpfs defaults\n", &e),
            ("s /m tmpfs defaults 0 0\n".into(), true)
        );
    }

    #[test]
    fn escaping_and_swap() {
        let e = entry("/mnt/my data", "//srv/a&b", "cifs", None, true);
        assert_eq!(
            set_mount("", &e).0,
            "//srv/a\\046b /mnt/my\\040data cifs defaults 0 0\n"
        );
        // Swap entries are told apart by their source.
        let e = entry("none", "/swap2", "swap", Some("sw"), true);
        let (new, changed) = set_mount(FSTAB, &e);
        assert!(changed);
        assert_eq!(new, format!("{FSTAB}/swap2 none swap sw 0 0\n"));
    }

    #[test]
    fn boot_false_adds_noauto() {
        let (e, w) = Entry::new("/m", Some("s"), Some("t"), Some("ro"), None, None, false);
        assert_eq!((e.opts.as_str(), w.len()), ("ro,noauto", 0));
        let (e, w) = Entry::new("/m", Some("s"), Some("t"), None, None, None, false);
        assert_eq!(e.opts, "defaults");
        assert_eq!(w, ["Ignore the 'boot' due to 'opts' contains 'defaults'."]);
        let (e, w) = Entry::new("/m", Some("s"), Some("t"), Some("noauto"), None, None, true);
        assert_eq!(e.opts, "noauto");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn unset_removes_every_matching_line() {
        let text = "s /m tmpfs defaults 0 0\n# s /m\nt /m tmpfs ro 0 0\nu /n tmpfs ro 0 0\n";
        assert_eq!(
            unset_mount(text, "/m", None),
            ("# s /m\nu /n tmpfs ro 0 0\n".into(), true)
        );
        assert!(!unset_mount("u /n tmpfs ro 0 0\n", "/m", None).1);
    }

    #[test]
    fn plans_per_state() {
        let e = entry("/m", "tmpfs", "tmpfs", None, true);
        let line = "tmpfs /m tmpfs defaults 0 0\n";
        // mounted: not mounted → mount (and mkdir); mounted and same entry → nothing;
        // mounted with a changed entry → remount.
        let p = plan("mounted", &e, "", false, false);
        assert!(p.changed && p.mount && p.mkdir && p.fstab.as_deref() == Some(line));
        assert_eq!(plan("mounted", &e, line, true, true), Plan::default());
        let p = plan("mounted", &e, "tmpfs /m tmpfs ro 0 0\n", true, true);
        assert!(p.changed && p.remount && !p.mount);
        // present: the fstab only.
        let p = plan("present", &e, "", true, true);
        assert!(p.changed && !p.mount && !p.remount && p.fstab.is_some());
        // unmounted: umount only when mounted, fstab untouched.
        let p = plan("unmounted", &e, line, true, true);
        assert!(p.changed && p.umount && p.fstab.is_none());
        assert!(!plan("unmounted", &e, line, false, true).changed);
        // absent: only when the entry is there; then umount if mounted and remove the dir.
        let p = plan("absent", &e, line, true, true);
        assert!(p.changed && p.umount && p.rmdir && p.fstab.as_deref() == Some(""));
        assert!(!plan("absent", &e, "", true, true).changed);
        let p = plan("absent_from_fstab", &e, line, true, true);
        assert!(p.changed && !p.umount && !p.rmdir);
        // remounted: always.
        assert!(plan("remounted", &e, line, true, true).remount);
    }
}
