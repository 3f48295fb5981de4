//! Python-compatible text forms: what Ansible prints for a value inside a string (`str()`),
//! `json.dumps` as the `to_json` filters call it, and PyYAML's `yaml.dump` for `to_yaml`.

use serde_json::Value as Json;

/// `str(value)` as Python prints it (strings as-is, containers in repr form).
pub(crate) fn py_str(v: &minijinja::Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    match super::objects::to_json(v) {
        Ok(Json::String(s)) => s,
        Ok(j) => py_repr_json(&j),
        Err(_) => v.to_string(),
    }
}

/// `repr()` of a JSON value in Python syntax (`{'a': [1, True, None]}`).
pub(crate) fn py_repr_json(v: &Json) -> String {
    let mut out = String::new();
    repr_into(&mut out, v);
    out
}

fn repr_into(out: &mut String, v: &Json) {
    match v {
        Json::Null => out.push_str("None"),
        Json::Bool(true) => out.push_str("True"),
        Json::Bool(false) => out.push_str("False"),
        Json::Number(n) => out.push_str(&py_number(n)),
        Json::String(s) => out.push_str(&py_repr_str(s)),
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(out, x);
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&py_repr_str(k));
                out.push_str(": ");
                repr_into(out, x);
            }
            out.push('}');
        }
    }
}

pub(crate) fn py_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        py_float(n.as_f64().unwrap_or(f64::NAN))
    } else {
        n.to_string()
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form outside 1e-4..1e16.
pub(crate) fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// Python's `repr(str)`.
pub(crate) fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            // Python's non-printable ASCII and Latin-1 controls (and NO-BREAK SPACE).
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Shortens text for error messages.
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX - 3).collect();
        format!("{cut}...")
    }
}

/// Python's type name for a JSON value, as Ansible's messages use it.
pub(crate) fn json_type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// `json.dumps(v, indent=..., sort_keys=..., ensure_ascii=True)` with Python's separators.
pub(crate) fn json_dumps(v: &Json, indent: Option<usize>, sort_keys: bool, ascii: bool) -> String {
    let mut out = String::new();
    dump_into(&mut out, v, indent, sort_keys, ascii, 0);
    out
}

fn dump_into(
    out: &mut String,
    v: &Json,
    indent: Option<usize>,
    sort: bool,
    ascii: bool,
    level: usize,
) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            out.push_str(&if f.is_nan() {
                "NaN".to_string()
            } else if f.is_infinite() {
                if f > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                }
            } else {
                py_float(f)
            });
        }
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => json_str(out, s, ascii),
        Json::Array(a) if a.is_empty() => out.push_str("[]"),
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                dump_into(out, x, indent, sort, ascii, level + 1);
            }
            newline(out, level);
            out.push(']');
        }
        Json::Object(m) if m.is_empty() => out.push_str("{}"),
        Json::Object(m) => {
            let mut entries: Vec<(&String, &Json)> = m.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                json_str(out, k, ascii);
                out.push_str(": ");
                dump_into(out, x, indent, sort, ascii, level + 1);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn json_str(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// PyYAML's `yaml.dump(v, default_flow_style=flow, indent=indent)` (keys sorted, like PyYAML).
/// `flow == None` writes collections of scalars in flow style, as PyYAML does by default.
pub(crate) fn yaml_dump(v: &Json, indent: usize, flow: Option<bool>) -> String {
    let indent = indent.clamp(2, 9);
    let mut out = String::new();
    match v {
        Json::Array(_) | Json::Object(_) if use_flow(v, flow) => {
            flow_into(&mut out, v);
            out.push('\n');
        }
        Json::Array(a) if !a.is_empty() => block_seq(&mut out, a, 0, indent, flow),
        Json::Object(m) if !m.is_empty() => block_map(&mut out, m, 0, indent, flow),
        scalar => {
            let (text, plain) = yaml_scalar(scalar, false);
            out.push_str(&text);
            out.push('\n');
            if plain {
                // PyYAML marks the end of a document that is a bare plain scalar.
                out.push_str("...\n");
            }
        }
    }
    out
}

fn is_collection(v: &Json) -> bool {
    matches!(v, Json::Array(_) | Json::Object(_))
}

fn use_flow(v: &Json, flow: Option<bool>) -> bool {
    match v {
        Json::Array(a) if a.is_empty() => true,
        Json::Object(m) if m.is_empty() => true,
        Json::Array(a) => flow.unwrap_or_else(|| !a.iter().any(is_collection)),
        Json::Object(m) => flow.unwrap_or_else(|| !m.values().any(is_collection)),
        _ => false,
    }
}

fn sorted(m: &serde_json::Map<String, Json>) -> Vec<(&String, &Json)> {
    let mut e: Vec<_> = m.iter().collect();
    e.sort_by(|a, b| a.0.cmp(b.0));
    e
}

fn flow_into(out: &mut String, v: &Json) {
    match v {
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow_into(out, x);
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push('{');
            for (i, (k, x)) in sorted(m).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&yaml_scalar(&Json::String(k.clone()), true).0);
                out.push_str(": ");
                flow_into(out, x);
            }
            out.push('}');
        }
        s => out.push_str(&yaml_scalar(s, true).0),
    }
}

fn block_map(
    out: &mut String,
    m: &serde_json::Map<String, Json>,
    col: usize,
    indent: usize,
    flow: Option<bool>,
) {
    for (i, (k, v)) in sorted(m).into_iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(col));
        }
        out.push_str(&yaml_scalar(&Json::String(k.clone()), false).0);
        out.push(':');
        value_after_key(out, v, col, indent, flow);
    }
}

fn value_after_key(out: &mut String, v: &Json, col: usize, indent: usize, flow: Option<bool>) {
    if is_collection(v) && use_flow(v, flow) {
        out.push(' ');
        flow_into(out, v);
        out.push('\n');
        return;
    }
    match v {
        Json::Object(m) => {
            out.push('\n');
            out.push_str(&" ".repeat(col + indent));
            block_map(out, m, col + indent, indent, flow);
        }
        // PyYAML does not indent a sequence that is a mapping value.
        Json::Array(a) => {
            out.push('\n');
            out.push_str(&" ".repeat(col));
            block_seq(out, a, col, indent, flow);
        }
        s => {
            out.push(' ');
            out.push_str(&yaml_scalar(s, false).0);
            out.push('\n');
        }
    }
}

fn block_seq(out: &mut String, a: &[Json], col: usize, indent: usize, flow: Option<bool>) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(col));
        }
        let inner = col + indent;
        if is_collection(v) && use_flow(v, flow) {
            out.push_str("- ");
            flow_into(out, v);
            out.push('\n');
            continue;
        }
        match v {
            // A nested block collection starts on the dash line, at the next indentation level.
            Json::Object(m) => {
                out.push('-');
                out.push_str(&" ".repeat(indent - 1));
                block_map(out, m, inner, indent, flow);
            }
            Json::Array(x) => {
                out.push('-');
                out.push_str(&" ".repeat(indent - 1));
                block_seq(out, x, inner, indent, flow);
            }
            s => {
                out.push_str("- ");
                out.push_str(&yaml_scalar(s, false).0);
                out.push('\n');
            }
        }
    }
}

/// A scalar in PyYAML's style; the flag says whether it was written plain (unquoted).
fn yaml_scalar(v: &Json, in_flow: bool) -> (String, bool) {
    match v {
        Json::Null => ("null".into(), true),
        Json::Bool(b) => ((if *b { "true" } else { "false" }).into(), true),
        Json::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let s = if f.is_nan() {
                ".nan".to_string()
            } else if f.is_infinite() {
                if f > 0.0 {
                    ".inf".into()
                } else {
                    "-.inf".into()
                }
            } else {
                let s = py_float(f);
                match s.split_once('e') {
                    Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
                    _ => s,
                }
            };
            (s, true)
        }
        Json::Number(n) => (n.to_string(), true),
        Json::String(s) => {
            if yaml_plain_ok(s, in_flow) {
                (s.clone(), true)
            } else if s.chars().all(|c| !c.is_control() || c == '\n') && !s.contains('\n') {
                (format!("'{}'", s.replace('\'', "''")), false)
            } else {
                let mut out = String::new();
                json_str(&mut out, s, false);
                (out, false)
            }
        }
        other => (other.to_string(), false),
    }
}

fn yaml_plain_ok(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with(' ') || s.ends_with(' ') || s.chars().any(char::is_control) {
        return false;
    }
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && (s.len() == 1 || s[1..].starts_with(' ')) {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if in_flow && s.contains([',', '[', ']', '{', '}']) {
        return false;
    }
    !yaml_resolves_to_non_string(s)
}

/// Whether PyYAML's YAML 1.1 resolver would read the plain scalar as something other than a
/// string (then it must be quoted).
fn yaml_resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "=", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, ".inf" | ".nan") {
        return true;
    }
    let digits_us = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '_');
    // ints: decimal, 0x, 0o/0 octal, 0b, sexagesimal
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit() || c == '_');
    }
    if let Some(bin) = body.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| matches!(c, '0' | '1' | '_'));
    }
    if digits_us(body) {
        return true;
    }
    if body.contains(':') && body.split(':').all(digits_us) {
        return true;
    }
    // floats need a dot in YAML 1.1: 1.5, .5, 1., 1.5e+3
    let (mant, exp) = match body.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    if let Some((int, frac)) = mant.split_once('.') {
        let int_ok = int.is_empty() || digits_us(int);
        let frac_ok = frac.is_empty() || digits_us(frac);
        let exp_ok = exp.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
        });
        if int_ok && frac_ok && exp_ok && !(int.is_empty() && frac.is_empty()) {
            return true;
        }
    }
    // timestamps like 2024-01-02
    let b = s.as_bytes();
    if b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float(3.0), "3.0");
        assert_eq!(py_float(1.5e20), "1.5e+20");
        assert_eq!(py_float(0.00001), "1e-05");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(-2.5), "-2.5");
    }

    #[test]
    fn python_repr_of_containers() {
        let v = json!({"b": 1, "a": [1, "x", null, true], "q": "it's"});
        assert_eq!(
            py_repr_json(&v),
            r#"{'b': 1, 'a': [1, 'x', None, True], 'q': "it's"}"#
        );
    }

    #[test]
    fn json_dumps_like_python() {
        let v = json!({"b": 1, "a": ["é", 1.0]});
        assert_eq!(
            json_dumps(&v, None, false, true),
            r#"{"b": 1, "a": ["\u00e9", 1.0]}"#
        );
        assert_eq!(
            json_dumps(&v, Some(4), true, true),
            "{\n    \"a\": [\n        \"\\u00e9\",\n        1.0\n    ],\n    \"b\": 1\n}"
        );
    }

    #[test]
    fn yaml_like_pyyaml() {
        let v = json!({"b": 1, "a": [1, 2], "c": {"x": "y"}});
        assert_eq!(yaml_dump(&v, 2, None), "a: [1, 2]\nb: 1\nc: {x: y}\n");
        assert_eq!(
            yaml_dump(&v, 4, Some(false)),
            "a:\n- 1\n- 2\nb: 1\nc:\n    x: y\n"
        );
        assert_eq!(yaml_dump(&json!("abc"), 2, None), "abc\n...\n");
        assert_eq!(yaml_dump(&json!("yes"), 2, None), "'yes'\n");
        assert_eq!(
            yaml_dump(&json!(["a: b", "1.5"]), 2, None),
            "['a: b', '1.5']\n"
        );
    }
}
