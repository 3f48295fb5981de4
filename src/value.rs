//! Small helpers over `serde_json::Value`, the one variable type used end to end.

use serde_json::Value;

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
