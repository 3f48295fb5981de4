//! Text that must never be shown: values decrypted from Ansible Vault.
//!
//! Decrypted values are registered here as they are loaded; every way out of the process that
//! can carry a value — events (human and JSON output, the `--log` file), diagnostics, the log's
//! own messages, `inventory` and ad hoc listings — passes its text through [`mask`]. Masking
//! works on text, so a secret transformed on the way (`b64encode`, a substring) is not caught.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;

/// What a secret is replaced with.
pub const MASK: &str = "********";

/// Shorter values are not masked: hiding every `yes`, `22` or `app` in the output would wreck
/// it, and a value that short is no secret anyway.
pub const MIN_LEN: usize = 4;

#[derive(Default)]
struct Registry {
    secrets: BTreeSet<String>,
    /// Built on first use after a change.
    matcher: Option<Arc<AhoCorasick>>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    secrets: BTreeSet::new(),
    matcher: None,
});

/// Registers a secret: the text, its trimmed form, each of its lines (a key printed line by
/// line), and the JSON-escaped forms of these (log lines hold JSON).
pub fn register(text: &str) {
    let mut forms: Vec<String> = vec![text.to_string(), text.trim().to_string()];
    if text.contains('\n') {
        forms.extend(text.lines().map(|l| l.trim().to_string()));
    }
    let escaped: Vec<String> = forms
        .iter()
        .filter_map(|f| {
            let json = serde_json::to_string(f).ok()?;
            let inner = &json[1..json.len() - 1];
            (inner != f).then(|| inner.to_string())
        })
        .collect();
    forms.extend(escaped);
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let mut added = false;
    for f in forms {
        if f.chars().count() >= MIN_LEN && !reg.secrets.contains(&f) {
            reg.secrets.insert(f);
            added = true;
        }
    }
    if added {
        reg.matcher = None;
    }
}

/// Keys of a `no_log` task's arguments and result whose values say where or what rather than
/// carry a secret (a path, a state, timings): left out by [`register_values`], so that hiding a
/// task does not mask every later mention of `/etc/hosts` or `present`.
const PLAIN_KEYS: &[&str] = &[
    "changed",
    "failed",
    "skipped",
    "unreachable",
    "rc",
    "state",
    "dest",
    "path",
    "src",
    "owner",
    "group",
    "mode",
    "name",
    "module",
    "start",
    "end",
    "delta",
    "invocation",
    "before_header",
    "after_header",
    "chdir",
    "creates",
    "removes",
    "uid",
    "gid",
    "size",
    "checksum",
    "md5sum",
    "censored",
];

/// Registers every string in a `no_log` task's arguments or result (but those under
/// [`PLAIN_KEYS`] and `skip`) as a secret: what went into or came out of a hidden task stays
/// hidden later too — in a registered variable, a fact read through `hostvars`, a `--diff`.
pub fn register_values(v: &Value, skip: &[&str]) {
    match v {
        Value::String(s) => register(s),
        Value::Array(items) => items.iter().for_each(|i| register_values(i, skip)),
        Value::Object(map) => {
            for (k, item) in map {
                if !PLAIN_KEYS.contains(&k.as_str()) && !skip.contains(&k.as_str()) {
                    register_values(item, skip);
                }
            }
        }
        _ => {}
    }
}

/// Is anything registered? (Lets callers skip copying what has nothing to mask.)
pub fn active() -> bool {
    !REGISTRY
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .secrets
        .is_empty()
}

fn matcher() -> Option<Arc<AhoCorasick>> {
    {
        let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        if reg.secrets.is_empty() {
            return None;
        }
        if let Some(m) = &reg.matcher {
            return Some(m.clone());
        }
    }
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    // The longest match wins, so a secret that contains another is hidden whole.
    let built = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(reg.secrets.iter())
        .ok()
        .map(Arc::new);
    reg.matcher = built.clone();
    built
}

/// The text with every registered secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    match matcher() {
        Some(m) if m.is_match(text) => {
            Cow::Owned(m.replace_all(text, &vec![MASK; m.patterns_len()]))
        }
        _ => Cow::Borrowed(text),
    }
}

/// Masks a string in place.
pub fn mask_string(s: &mut String) {
    if let Cow::Owned(masked) = mask(s) {
        *s = masked;
    }
}

/// Masks every string in a value, keys included.
pub fn mask_value(v: &mut Value) {
    if matcher().is_none() {
        return;
    }
    match v {
        Value::String(s) => mask_string(s),
        Value::Array(items) => items.iter_mut().for_each(mask_value),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (mut k, mut item) in old {
                mask_string(&mut k);
                mask_value(&mut item);
                map.insert(k, item);
            }
        }
        _ => {}
    }
}

/// Asks for a secret on the terminal without echoing it (`what` names it in the error when there
/// is no terminal, `hint` says how to give it instead). The answer is registered as a secret.
///
/// Reads the controlling terminal a byte at a time: a buffered reader would swallow what was
/// typed ahead for the next question (`-k` then `-K`).
pub fn ask(prompt: &str, what: &str, hint: &str) -> Result<String, crate::diag::Diag> {
    let line = ask_tty(prompt, what, hint, false)?;
    register(&line);
    Ok(line)
}

/// Asks on the controlling terminal, echoing what is typed when `echo` (nothing is
/// registered as a secret).
pub fn ask_tty(
    prompt: &str,
    what: &str,
    hint: &str,
    echo: bool,
) -> Result<String, crate::diag::Diag> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let no_tty = || {
        crate::diag::Diag::usage(format!(
            "cannot ask for {what}: there is no terminal to ask on"
        ))
        .hint(hint.to_string())
    };
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_tty())?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for an open terminal descriptor.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(no_tty());
    }
    let mut quiet = saved;
    if echo {
        quiet.c_lflag |= libc::ECHO;
    } else {
        quiet.c_lflag &= !libc::ECHO;
    }
    tty.write_all(prompt.as_bytes()).map_err(|_| no_tty())?;
    // SAFETY: `quiet` is the terminal's own settings with echo off.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let read = loop {
        match tty.read(&mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) if byte[0] == b'\n' => break Ok(()),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    // SAFETY: puts back the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    read.map_err(|_| no_tty())?;
    if !echo {
        let _ = tty.write_all(b"\n");
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches('\r')
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The registry is process-wide: each test uses secrets of its own.
    #[test]
    fn masks_whole_secrets_their_lines_and_json_forms() {
        register("tok-3141\n  line-two-xyz\n");
        assert_eq!(mask("a tok-3141 b"), "a ******** b");
        assert_eq!(mask("line-two-xyz"), "********");
        assert_eq!(mask("tok-3141\\n  line-two-xyz\\n"), "********");
        let mut v = json!({"tok-3141": ["x line-two-xyz"], "n": 1});
        mask_value(&mut v);
        assert_eq!(v, json!({"********": ["x ********"], "n": 1}));
    }

    #[test]
    fn values_of_a_hidden_task_are_registered_but_plain_keys() {
        let v = json!({"stdout": "rv-token-77", "dest": "/etc/rv-path", "state": "present",
            "results": [{"item": "rv-item-88", "msg": "rv-msg-99"}]});
        register_values(&v, &["msg"]);
        assert_eq!(mask("rv-token-77 rv-item-88"), "******** ********");
        assert_eq!(
            mask("/etc/rv-path present rv-msg-99"),
            "/etc/rv-path present rv-msg-99"
        );
    }

    #[test]
    fn short_values_are_left_alone_and_longest_wins() {
        register("abc");
        assert_eq!(mask("abc"), "abc");
        register("pw-55");
        register("pw-55-long");
        assert_eq!(mask("pw-55-long pw-55"), "******** ********");
    }
}
