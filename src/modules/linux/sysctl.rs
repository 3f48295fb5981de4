//! `sysctl` (ansible.posix.sysctl): a key in a sysctl file, optionally set live (`sysctl -w`)
//! and reloaded from that file (`sysctl -p FILE`), deciding exactly as the collection does.
//!
//! Round trip 1 reads the live value (`sysctl -e -n`) and the file's lines; the controller
//! computes the rewritten file and what to do; round trip 2 (not in check mode, only when
//! something is to be done) sets the value, replaces the file atomically and reloads it.

use async_trait::async_trait;

use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::files::remote::{self, sh_path};
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, alias, arg_bool, arg_str,
    choice, outcome, p, req,
};

static SYSCTL_DEF: ModuleDef = ModuleDef {
    name: "sysctl",
    namespaces: &["ansible.posix"],
    params: &[
        alias(req("name", Str), &["key"]),
        alias(p("value", Str), &["val"]),
        choice("state", &["present", "absent"]),
        p("reload", Bool),
        p("sysctl_set", Bool),
        p("ignoreerrors", Bool),
        p("sysctl_file", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Sysctl;

/// The collection's `_parse_value`: booleans become `1`/`0`, other text is stripped.
pub fn parse_value(v: &str) -> String {
    let l = v.to_lowercase();
    if ["y", "yes", "on", "1", "true", "t", "1.0"].contains(&l.as_str()) {
        "1".into()
    } else if ["n", "no", "off", "0", "false", "f", "0.0"].contains(&l.as_str()) {
        "0".into()
    } else {
        v.trim().to_string()
    }
}

/// Whitespace-separated words equal, in order (`_values_is_equal`).
fn values_equal(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.split_whitespace().eq(b.split_whitespace()))
}

/// What to do, as the collection's `process()` decides it.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub changed: bool,
    pub set_proc: bool,
    pub write_file: bool,
    pub lines: Vec<String>,
}

pub fn plan(
    name: &str,
    value: &str,
    present: bool,
    reload: bool,
    sysctl_set: bool,
    proc_value: Option<&str>,
    file_lines: &[String],
) -> Plan {
    let lines: Vec<String> = file_lines.iter().map(|l| l.trim().to_string()).collect();
    let kv = |l: &str| {
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            return None;
        }
        l.split_once('=')
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
    };
    let file_value = lines
        .iter()
        .filter_map(|l| kv(l))
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .next_back();
    // fix_lines: the first occurrence of each key is kept (normalized), later ones dropped.
    let mut checked: Vec<String> = Vec::new();
    let mut fixed = Vec::new();
    for l in &lines {
        let Some((k, v)) = kv(l) else {
            fixed.push(l.clone());
            continue;
        };
        if checked.contains(&k) {
            continue;
        }
        checked.push(k.clone());
        if k == name {
            if present {
                fixed.push(format!("{k}={value}"));
            }
        } else {
            fixed.push(format!("{k}={v}"));
        }
    }
    if present && !checked.iter().any(|k| k == name) {
        fixed.push(format!("{name}={value}"));
    }
    let mut p = Plan {
        changed: false,
        set_proc: false,
        write_file: false,
        lines: fixed,
    };
    match (&file_value, present) {
        (None, true) => (p.changed, p.write_file) = (true, true),
        (None, false) => {}
        (Some(v), false) if !v.is_empty() => (p.changed, p.write_file) = (true, true),
        (Some(v), _) if v != value => (p.changed, p.write_file) = (true, true),
        _ if reload => p.changed = !values_equal(proc_value, value),
        _ => {}
    }
    if sysctl_set && present && !values_equal(proc_value, value) {
        p.changed = true;
        p.set_proc = proc_value.is_some();
    }
    p
}

#[async_trait]
impl Module for Sysctl {
    fn def(&self) -> &'static ModuleDef {
        &SYSCTL_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let name = arg_str(&args, "name")
            .unwrap_or_default()
            .trim()
            .to_string();
        let present = arg_str(&args, "state") != Some("absent");
        let raw = arg_str(&args, "value");
        if name.is_empty() {
            return Err(ModError::msg("name cannot be blank"));
        }
        if present && raw.is_none() {
            return Err(ModError::msg(
                "state is present but all of the following are missing: value",
            ));
        }
        if present && raw == Some("") {
            return Err(ModError::msg("value cannot be blank"));
        }
        let value = raw.map(parse_value).unwrap_or_default();
        let reload = arg_bool(&args, "reload", true);
        let ignore = arg_bool(&args, "ignoreerrors", false);
        let file = arg_str(&args, "sysctl_file").unwrap_or("/etc/sysctl.conf");
        let read = remote::script(
            &[("n", quote(&name)), ("f", sh_path(file))],
            r#"command -v sysctl >/dev/null 2>&1 || { _err 'Failed to find required executable "sysctl" in PATH'; exit 0; }
v=$(sysctl -e -n "$n" 2>/dev/null) && printf 'proc=%s\n' "$v" | head -n 1
if [ -f "$f" ]; then sed 's/^/l=/' "$f" || { _err "Failed to open $f"; exit 0; }; fi
"#,
        );
        let reply = remote::run(ctx, read).await?;
        let lines: Vec<String> = reply.all("l").map(str::to_string).collect();
        let plan = plan(
            &name,
            &value,
            present,
            reload,
            arg_bool(&args, "sysctl_set", false),
            reply.get("proc"),
            &lines,
        );
        if ctx.check_mode || !plan.changed {
            return Ok(outcome(plan.changed));
        }
        let e = if ignore { "-e " } else { "" };
        let failed_re =
            r#"grep -Eq '^sysctl: setting key "[^"]+": (Invalid argument|Read-only file system)$'"#;
        let mut body = String::new();
        if plan.set_proc {
            // One argument `name=value` (the collection's `name="value"` after shlex).
            body.push_str(&format!(
                "o=$(sysctl {e}-w {} 2>&1); if [ $? != 0 ] || printf '%s\\n' \"$o\" | {failed_re}; then _err \"setting $n failed: $o\"; exit 0; fi\n",
                quote(&format!("{name}={value}"))
            ));
        }
        if plan.write_file {
            let mut content = plan.lines.join("\n");
            content.push('\n');
            body.push_str(&format!(
                r#"t=$(mktemp "$(dirname "$f")/.ansible_m_sysctl_XXXXXX") || {{ _err "cannot write beside $f"; exit 0; }}
printf '%s' {} > "$t" || {{ rm -f "$t"; _err "Failed to write to file $t"; exit 0; }}
if [ -e "$f" ]; then chmod --reference="$f" "$t"; chown --reference="$f" "$t"; else chmod 0644 "$t"; fi
mv -f "$t" "$f" || {{ rm -f "$t"; _err "Failed to replace $f"; exit 0; }}
"#,
                quote(&content)
            ));
        }
        if reload {
            body.push_str(&format!(
                "o=$(sysctl {e}-p \"$f\" 2>&1); if [ $? != 0 ] || printf '%s\\n' \"$o\" | {failed_re}; then _err \"Failed to reload sysctl: $o\"; exit 0; fi\n"
            ));
        }
        remote::run(
            ctx,
            remote::script(&[("n", quote(&name)), ("f", sh_path(file))], &body),
        )
        .await?;
        Ok(outcome(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(t: &str) -> Vec<String> {
        t.lines().map(str::to_string).collect()
    }

    #[test]
    fn values_parse_like_the_collection() {
        assert_eq!(parse_value("yes"), "1");
        assert_eq!(parse_value("False"), "0");
        assert_eq!(parse_value(" 4096 87380 6291456 "), "4096 87380 6291456");
    }

    #[test]
    fn plans_follow_the_collection() {
        let file = lines("# comment\nnet.ipv4.ip_forward = 0\n\nvm.x=1\nvm.x=2\n");
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            true,
            true,
            false,
            Some("0"),
            &file,
        );
        assert!(p.changed && p.write_file && !p.set_proc);
        assert_eq!(
            p.lines,
            ["# comment", "net.ipv4.ip_forward=1", "", "vm.x=1"]
        );
        // Same value in the file and live: nothing.
        let file = lines("net.ipv4.ip_forward=1\n");
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            true,
            true,
            false,
            Some("1"),
            &file,
        );
        assert!(!p.changed);
        // Same in the file, different live: reload changes it.
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            true,
            true,
            false,
            Some("0"),
            &file,
        );
        assert!(p.changed && !p.write_file);
        let p = plan(
            "net.ipv4.ip_forward",
            "1",
            true,
            false,
            true,
            Some("0"),
            &file,
        );
        assert!(p.changed && p.set_proc && !p.write_file);
        // Absent: removed from the file; not there: nothing.
        let p = plan(
            "net.ipv4.ip_forward",
            "",
            false,
            true,
            false,
            Some("1"),
            &file,
        );
        assert!(p.changed && p.write_file && p.lines.is_empty());
        let p = plan("vm.other", "", false, true, false, None, &file);
        assert!(!p.changed);
        // Whitespace-separated values compare word by word.
        let file = lines("net.ipv4.tcp_rmem = 4096 87380 6291456");
        let p = plan(
            "net.ipv4.tcp_rmem",
            "4096 87380 6291456",
            true,
            true,
            false,
            Some("4096\t87380\t6291456"),
            &file,
        );
        assert!(!p.changed);
    }
}
