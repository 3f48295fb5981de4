//! Small helpers over `serde_json::Value`, the one variable type used end to end.

use std::time::Duration;

use serde_json::Value;

/// The most seconds mixop accepts for a timeout, delay or pause (about 31 years). Larger values
/// cannot be meant, and would overflow the clocks (`Duration`, deadlines) and panic.
pub const MAX_SECONDS: u64 = 1_000_000_000;

/// A number of seconds as a `Duration`, or an error naming `what`: finite and from 0 to
/// [`MAX_SECONDS`].
pub fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    if !(0.0..=MAX_SECONDS as f64).contains(&s) {
        return Err(format!(
            "`{what}` must be a number of seconds from 0 to {MAX_SECONDS}, not {s}"
        ));
    }
    Duration::try_from_secs_f64(s).map_err(|e| format!("`{what}`: {e}"))
}

/// [`seconds`] for whole seconds.
pub fn whole_seconds(s: u64, what: &str) -> Result<Duration, String> {
    if s > MAX_SECONDS {
        return Err(format!(
            "`{what}` must be a number of seconds from 0 to {MAX_SECONDS}, not {s}"
        ));
    }
    Ok(Duration::from_secs(s))
}

/// Ansible's boolean strings (`yes`, `on`, `true`, `1`, ...).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" | "y" | "t" => Some(true),
        "no" | "off" | "false" | "0" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

/// A value as a boolean argument (`force: yes`, `force: "true"`).
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::Null => Some(false),
        _ => None,
    }
}

/// Text for a value as a command-line or message fragment (strings without quotes).
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A value as the text Ansible's modules would see for a string argument: Python's `str()` for
/// scalars (`True`, `None`) and JSON for lists and mappings (what `copy` does with `content`).
pub fn arg_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Merges `src` into `dst`: keys in `src` win. With `recursive`, mappings are merged key by key
/// (Ansible's `combine(recursive=True)`).
pub fn merge(
    dst: &mut serde_json::Map<String, Value>,
    src: &serde_json::Map<String, Value>,
    recursive: bool,
) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Object(d)), Value::Object(s)) if recursive => merge(d, s, true),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(seconds(1.5, "delay").unwrap(), Duration::from_millis(1500));
        assert_eq!(seconds(0.0, "delay").unwrap(), Duration::ZERO);
        for bad in [
            1e30,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            MAX_SECONDS as f64 + 1.0,
        ] {
            let e = seconds(bad, "delay").unwrap_err();
            assert!(e.contains("`delay` must be a number of seconds"), "{e}");
        }
        assert!(whole_seconds(u64::MAX, "timeout").is_err());
        assert_eq!(
            whole_seconds(MAX_SECONDS, "t").unwrap().as_secs(),
            MAX_SECONDS
        );
    }
}
