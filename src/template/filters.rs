//! Ansible's filters, tests and Python string/dict methods on top of minijinja's builtins.
//!
//! minijinja already provides Jinja's own filters (`default`, `lower`, `map`, `select`, `unique`,
//! `sort`, `min`, ...); this file adds Ansible's and replaces the few whose semantics differ
//! (`bool`, `string`, `join` print values the Python way).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use serde_json::{Map, Value as Json};
use sha1::Digest as _;

use super::objects::{check_defined, from_json, to_json};
use super::{lock, pyfmt};

pub(super) fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// A defined value as JSON.
fn json(state: &State, v: &Value) -> Result<Json, Error> {
    check_defined(state, v)?;
    to_json(v)
}

/// Python's `str()` of a defined value.
fn text(state: &State, v: &Value) -> Result<String, Error> {
    check_defined(state, v)?;
    Ok(pyfmt::py_str(v))
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("bool", to_bool);
    env.add_filter("ipwrap", ipwrap);
    env.add_filter("ipaddr", |v: Value, q: Option<Value>| {
        super::ipaddr::ipaddr(&v, &super::ipaddr::query_text(q.as_ref()), 0)
    });
    env.add_filter("ipv4", |v: Value, q: Option<Value>| {
        super::ipaddr::ipaddr(&v, &super::ipaddr::query_text(q.as_ref()), 4)
    });
    env.add_filter("ipv6", |v: Value, q: Option<Value>| {
        super::ipaddr::ipaddr(&v, &super::ipaddr::query_text(q.as_ref()), 6)
    });
    env.add_filter("string", string);
    env.add_filter("join", join);
    env.add_filter("flatten", flatten);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("combine", combine);
    env.add_filter("ternary", ternary);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("to_json", to_json_filter);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json_filter);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    env.add_filter("quote", quote);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("expanduser", expanduser);
    env.add_filter("splitext", splitext);
    env.add_filter("path_join", path_join);
    env.add_filter("hash", hash);
    env.add_filter("checksum", |state: &State, v: Value| {
        digest(state, &v, "sha1")
    });
    env.add_filter("sha1", |state: &State, v: Value| digest(state, &v, "sha1"));
    env.add_filter("md5", |state: &State, v: Value| digest(state, &v, "md5"));
    env.add_filter("mandatory", mandatory);
    env.add_filter("difference", |s: &State, a: Value, b: Value| {
        set_op(s, &a, &b, SetOp::Difference)
    });
    env.add_filter("intersect", |s: &State, a: Value, b: Value| {
        set_op(s, &a, &b, SetOp::Intersect)
    });
    env.add_filter("union", |s: &State, a: Value, b: Value| {
        set_op(s, &a, &b, SetOp::Union)
    });
    env.add_filter("symmetric_difference", |s: &State, a: Value, b: Value| {
        set_op(s, &a, &b, SetOp::Symmetric)
    });
    env.add_filter("extract", extract);
    env.add_filter("type_debug", type_debug);
    env.add_filter("pow", |x: f64, y: f64| x.powf(y));
    env.add_filter("log", |x: f64, base: Option<f64>| match base {
        Some(10.0) => x.log10(),
        Some(b) => x.ln() / b.ln(),
        None => x.ln(),
    });
    env.add_filter("root", |x: f64, base: Option<f64>| match base {
        None => x.sqrt(),
        Some(2.0) => x.sqrt(),
        Some(b) => x.powf(1.0 / b),
    });

    env.add_test("failed", |s: &State, v: Value| result_flag(s, &v, "failed"));
    env.add_test("failure", |s: &State, v: Value| {
        result_flag(s, &v, "failed")
    });
    env.add_test("succeeded", |s: &State, v: Value| {
        result_flag(s, &v, "failed").map(|b| !b)
    });
    env.add_test("success", |s: &State, v: Value| {
        result_flag(s, &v, "failed").map(|b| !b)
    });
    env.add_test("successful", |s: &State, v: Value| {
        result_flag(s, &v, "failed").map(|b| !b)
    });
    env.add_test("changed", changed);
    env.add_test("change", changed);
    env.add_test("skipped", |s: &State, v: Value| {
        result_flag(s, &v, "skipped")
    });
    env.add_test("skip", |s: &State, v: Value| result_flag(s, &v, "skipped"));
    env.add_test("unreachable", |s: &State, v: Value| {
        result_flag(s, &v, "unreachable")
    });
    env.add_test("reachable", |s: &State, v: Value| {
        result_flag(s, &v, "unreachable").map(|b| !b)
    });
    env.add_test("match", |s: &State, v: Value, p: String, k: Kwargs| {
        regex_test(s, &v, &p, k, "match")
    });
    env.add_test("search", |s: &State, v: Value, p: String, k: Kwargs| {
        regex_test(s, &v, &p, k, "search")
    });
    env.add_test("regex", |s: &State, v: Value, p: String, k: Kwargs| {
        regex_test(s, &v, &p, k, "")
    });
    env.add_test("contains", contains);
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("truthy", |s: &State, v: Value, k: Kwargs| truthy(s, &v, k));
    env.add_test("falsy", |s: &State, v: Value, k: Kwargs| {
        truthy(s, &v, k).map(|b| !b)
    });
    env.add_test("subset", |s: &State, a: Value, b: Value| subset(s, &a, &b));
    env.add_test("issubset", |s: &State, a: Value, b: Value| {
        subset(s, &a, &b)
    });
    env.add_test("superset", |s: &State, a: Value, b: Value| {
        subset(s, &b, &a)
    });
    env.add_test("issuperset", |s: &State, a: Value, b: Value| {
        subset(s, &b, &a)
    });
    env.add_test("any", |s: &State, v: Value| {
        Ok::<_, Error>(items(s, &v)?.iter().any(Value::is_true))
    });
    env.add_test("all", |s: &State, v: Value| {
        Ok::<_, Error>(items(s, &v)?.iter().all(Value::is_true))
    });
    // Python's notions: strings and dicts are sequences, booleans are numbers.
    env.add_test("sequence", |v: Value| {
        matches!(
            v.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Bytes
        )
    });
    env.add_test("number", |v: Value| {
        matches!(v.kind(), ValueKind::Number | ValueKind::Bool)
    });

    env.add_function("dict", dict_fn);
}

/// The items of a sequence-like value.
fn items(state: &State, v: &Value) -> Result<Vec<Value>, Error> {
    check_defined(state, v)?;
    if v.kind() == ValueKind::String {
        return Err(err(format!(
            "expected a list, got a string ('{}')",
            pyfmt::short(v.as_str().unwrap_or_default())
        )));
    }
    Ok(v.try_iter()?.collect())
}

fn json_list(state: &State, v: &Value, what: &str) -> Result<Vec<Json>, Error> {
    match json(state, v)? {
        Json::Array(a) => Ok(a),
        other => Err(err(format!(
            "{what} expects a list, got {}",
            pyfmt::json_type_name(&other)
        ))),
    }
}

fn to_bool(state: &State, v: Value) -> Result<bool, Error> {
    check_defined(state, &v)?;
    Ok(match v.kind() {
        ValueKind::Bool => v.is_true(),
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default().to_lowercase();
            matches!(s.as_str(), "yes" | "on" | "true" | "1")
        }
        ValueKind::Number => f64::try_from(v).is_ok_and(|f| f == 1.0),
        _ => false,
    })
}

fn string(state: &State, v: Value) -> Result<String, Error> {
    text(state, &v)
}

fn join(state: &State, v: Value, sep: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let attribute: Option<String> = kwargs.get("attribute")?;
    kwargs.assert_all_used()?;
    check_defined(state, &v)?;
    let sep = sep.unwrap_or_default();
    let mut parts = Vec::new();
    for item in v.try_iter()? {
        let item = match &attribute {
            Some(a) => item.get_attr(a)?,
            None => item,
        };
        parts.push(text(state, &item)?);
    }
    Ok(parts.join(&sep))
}

fn flatten(state: &State, v: Value, levels: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let levels = match levels {
        Some(l) if !l.is_none() => Some(l),
        _ => kwargs
            .get::<Option<Value>>("levels")?
            .filter(|l| !l.is_none()),
    };
    let levels = levels.map(i64::try_from).transpose()?;
    let skip_nulls = kwargs.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    fn go(list: &[Json], levels: Option<i64>, skip_nulls: bool, out: &mut Vec<Json>) {
        for e in list {
            match e {
                Json::Null if skip_nulls => {}
                Json::String(s) if skip_nulls && (s == "None" || s == "null") => {}
                Json::Array(inner) => match levels {
                    None => go(inner, None, skip_nulls, out),
                    Some(l) if l >= 1 => go(inner, Some(l - 1), skip_nulls, out),
                    Some(_) => out.push(e.clone()),
                },
                other => out.push(other.clone()),
            }
        }
    }
    let list = json_list(state, &v, "flatten")?;
    let mut out = Vec::new();
    go(&list, levels, skip_nulls, &mut out);
    Ok(from_json(&Json::Array(out)))
}

fn dict2items(state: &State, v: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name: String = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name: String = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    let Json::Object(m) = json(state, &v)? else {
        return Err(err(format!(
            "dict2items requires a dictionary, got {}",
            v.kind()
        )));
    };
    let out: Vec<Json> = m
        .into_iter()
        .map(|(k, v)| {
            let mut e = Map::new();
            e.insert(key_name.clone(), Json::String(k));
            e.insert(value_name.clone(), v);
            Json::Object(e)
        })
        .collect();
    Ok(from_json(&Json::Array(out)))
}

fn items2dict(state: &State, v: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name: String = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".into());
    let value_name: String = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".into());
    kwargs.assert_all_used()?;
    let list = json_list(state, &v, "items2dict")?;
    let mut out = Map::new();
    for item in list {
        let (Some(k), Some(val)) = (item.get(&key_name), item.get(&value_name)) else {
            return Err(err(format!(
                "items2dict requires each dictionary in the list to contain the keys '{key_name}' and '{value_name}', got {}",
                pyfmt::short(&pyfmt::py_repr_json(&item))
            )));
        };
        let k = match k {
            Json::String(s) => s.clone(),
            other => pyfmt::py_repr_json(other),
        };
        out.insert(k, val.clone());
    }
    Ok(from_json(&Json::Object(out)))
}

fn merge_hash(
    x: &Map<String, Json>,
    y: &Map<String, Json>,
    recursive: bool,
    list_merge: &str,
) -> Map<String, Json> {
    let mut out = x.clone();
    for (k, yv) in y {
        let merged = match (out.get(k), yv) {
            (Some(Json::Object(xm)), Json::Object(ym)) if recursive => {
                Json::Object(merge_hash(xm, ym, recursive, list_merge))
            }
            (Some(Json::Array(xa)), Json::Array(ya)) if list_merge != "replace" => {
                let without = |a: &[Json], b: &[Json]| -> Vec<Json> {
                    a.iter().filter(|e| !b.contains(e)).cloned().collect()
                };
                Json::Array(match list_merge {
                    "keep" => xa.clone(),
                    "append" => xa.iter().chain(ya).cloned().collect(),
                    "prepend" => ya.iter().chain(xa).cloned().collect(),
                    "append_rp" => without(xa, ya)
                        .into_iter()
                        .chain(ya.iter().cloned())
                        .collect(),
                    // prepend_rp
                    _ => ya.iter().cloned().chain(without(xa, ya)).collect(),
                })
            }
            _ => yv.clone(),
        };
        out.insert(k.clone(), merged);
    }
    out
}

fn combine(state: &State, v: Value, rest: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge: String = kwargs
        .get::<Option<String>>("list_merge")?
        .unwrap_or_else(|| "replace".into());
    if !matches!(
        list_merge.as_str(),
        "replace" | "keep" | "append" | "prepend" | "append_rp" | "prepend_rp"
    ) {
        return Err(err(format!("combine: unknown list_merge '{list_merge}'")));
    }
    kwargs.assert_all_used().map_err(|_| {
        err("'recursive' and 'list_merge' are the only valid keyword arguments of combine")
    })?;
    let mut dicts = Vec::new();
    for term in std::iter::once(&v).chain(rest.0.iter()) {
        match json(state, term)? {
            Json::Array(a) => dicts.extend(a),
            other => dicts.push(other),
        }
    }
    let mut result = Map::new();
    for d in dicts {
        match d {
            Json::Object(m) => result = merge_hash(&result, &m, recursive, &list_merge),
            other => {
                return Err(err(format!(
                    "combine expects dictionaries, got {} ({})",
                    pyfmt::json_type_name(&other),
                    pyfmt::short(&pyfmt::py_repr_json(&other))
                )));
            }
        }
    }
    Ok(from_json(&Json::Object(result)))
}

fn ternary(
    state: &State,
    v: Value,
    t: Value,
    f: Value,
    none: Option<Value>,
) -> Result<Value, Error> {
    check_defined(state, &v)?;
    if v.is_none()
        && let Some(n) = none.filter(|n| !n.is_none())
    {
        return Ok(n);
    }
    Ok(if v.is_true() { t } else { f })
}

fn encode_text(s: &str, encoding: &str) -> Result<Vec<u8>, Error> {
    match encoding.to_ascii_lowercase().replace('_', "-").as_str() {
        "utf-8" | "utf8" => Ok(s.as_bytes().to_vec()),
        "utf-16-le" | "utf-16le" => Ok(s.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        "ascii" if s.is_ascii() => Ok(s.as_bytes().to_vec()),
        other => Err(err(format!(
            "unsupported encoding '{other}' (use utf-8 or utf-16-le)"
        ))),
    }
}

fn b64encode(
    state: &State,
    v: Value,
    encoding: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let encoding = encoding
        .or(kwargs.get("encoding")?)
        .unwrap_or_else(|| "utf-8".into());
    let urlsafe = kwargs.get::<Option<bool>>("urlsafe")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let bytes = encode_text(&text(state, &v)?, &encoding)?;
    Ok(if urlsafe {
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    } else {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    })
}

fn b64decode(
    state: &State,
    v: Value,
    encoding: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let encoding = encoding
        .or(kwargs.get("encoding")?)
        .unwrap_or_else(|| "utf-8".into());
    let urlsafe = kwargs.get::<Option<bool>>("urlsafe")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let input: String = text(state, &v)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let engine = if urlsafe {
        base64::engine::general_purpose::URL_SAFE
    } else {
        base64::engine::general_purpose::STANDARD
    };
    let bytes = engine
        .decode(input.as_bytes())
        .map_err(|e| err(format!("b64decode: invalid base64 input: {e}")))?;
    match encoding.to_ascii_lowercase().replace('_', "-").as_str() {
        "utf-16-le" | "utf-16le" => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16(&units).map_err(|_| err("b64decode: result is not valid UTF-16-LE"))
        }
        _ => String::from_utf8(bytes)
            .map_err(|_| err(format!("b64decode: result is not valid {encoding} text"))),
    }
}

fn to_json_filter(state: &State, v: Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent = kwargs.get::<Option<usize>>("indent")?;
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    Ok(pyfmt::json_dumps(
        &json(state, &v)?,
        indent,
        sort_keys,
        ensure_ascii,
    ))
}

fn to_nice_json(
    state: &State,
    v: Value,
    indent: Option<usize>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let indent = indent.or(kwargs.get("indent")?).unwrap_or(4);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    Ok(pyfmt::json_dumps(
        &json(state, &v)?,
        Some(indent),
        sort_keys,
        ensure_ascii,
    ))
}

fn from_json_filter(state: &State, v: Value) -> Result<Value, Error> {
    let s = text(state, &v)?;
    let parsed: Json =
        serde_json::from_str(&s).map_err(|e| err(format!("from_json: invalid JSON: {e}")))?;
    Ok(from_json(&parsed))
}

fn to_yaml(state: &State, v: Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent = kwargs.get::<Option<usize>>("indent")?.unwrap_or(2);
    let flow = kwargs.get::<Option<bool>>("default_flow_style")?;
    let _ = kwargs.get::<Option<Value>>("width")?;
    kwargs.assert_all_used()?;
    Ok(pyfmt::yaml_dump(&json(state, &v)?, indent, flow))
}

fn to_nice_yaml(
    state: &State,
    v: Value,
    indent: Option<usize>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let indent = indent.or(kwargs.get("indent")?).unwrap_or(4);
    let _ = kwargs.get::<Option<Value>>("width")?;
    kwargs.assert_all_used()?;
    Ok(pyfmt::yaml_dump(&json(state, &v)?, indent, Some(false)))
}

fn from_yaml(state: &State, v: Value) -> Result<Value, Error> {
    check_defined(state, &v)?;
    let Some(s) = v.as_str() else { return Ok(v) };
    let docs = crate::yaml::load_str(crate::diag::Source::new("<from_yaml>", s.to_string()))
        .map_err(|d| err(format!("from_yaml: {}", d.message)))?;
    Ok(docs
        .first()
        .map(|d| from_json(&d.to_value()))
        .unwrap_or(Value::from(())))
}

/// Compiles a Python-syntax regular expression (cached: the same patterns run for every host).
fn regex(pattern: &str, ignorecase: bool, multiline: bool) -> Result<regex::Regex, Error> {
    type Cache = Mutex<HashMap<(String, bool, bool), regex::Regex>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (pattern.to_string(), ignorecase, multiline);
    if let Some(r) = lock(cache).get(&key) {
        return Ok(r.clone());
    }
    // Python's end-of-string anchor is `\Z`; Rust spells it `\z`.
    let translated = pattern.replace("\\Z", "\\z");
    let re = regex::RegexBuilder::new(&translated)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| err(format!("invalid regular expression '{pattern}': {e}")))?;
    let mut c = lock(cache);
    if c.len() > 512 {
        c.clear();
    }
    c.insert(key, re.clone());
    Ok(re)
}

/// Python `re.sub` replacement syntax (`\1`, `\g<name>`) to the regex crate's (`${1}`).
fn py_replacement(rep: &str) -> String {
    let mut out = String::with_capacity(rep.len());
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut num = String::new();
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        if num.len() == 2 {
                            break;
                        }
                        num.push(d);
                        chars.next();
                    }
                    out.push_str(&format!("${{{num}}}"));
                }
                Some('g') => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

fn regex_replace(
    state: &State,
    v: Value,
    pattern: Option<String>,
    replacement: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let pattern = pattern.or(kwargs.get("pattern")?).unwrap_or_default();
    let replacement = replacement
        .or(kwargs.get("replacement")?)
        .unwrap_or_default();
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let count = kwargs.get::<Option<usize>>("count")?.unwrap_or(0);
    let mandatory_count = kwargs.get::<Option<usize>>("mandatory_count")?.unwrap_or(0);
    kwargs.assert_all_used()?;
    let value = text(state, &v)?;
    let re = regex(&pattern, ignorecase, multiline)?;
    let matches = re.find_iter(&value).count();
    let subs = if count == 0 {
        matches
    } else {
        matches.min(count)
    };
    if mandatory_count != 0 && mandatory_count != subs {
        return Err(err(format!(
            "'{pattern}' should match {mandatory_count} times, but matches {subs} times in '{value}'"
        )));
    }
    Ok(re
        .replacen(&value, count, py_replacement(&replacement).as_str())
        .into_owned())
}

fn regex_search(
    state: &State,
    v: Value,
    pattern: String,
    groups: Rest<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let value = text(state, &v)?;
    let re = regex(&pattern, ignorecase, multiline)?;
    let Some(caps) = re.captures(&value) else {
        return Ok(Value::from(()));
    };
    if groups.0.is_empty() {
        return Ok(Value::from(caps.get(0).map_or("", |m| m.as_str())));
    }
    let mut out = Vec::new();
    for g in &groups.0 {
        let m = if let Some(name) = g.strip_prefix("\\g<").and_then(|r| r.strip_suffix('>')) {
            match name.parse::<usize>() {
                Ok(i) => caps.get(i),
                Err(_) => caps.name(name),
            }
        } else if let Some(n) = g.strip_prefix('\\').and_then(|n| n.parse::<usize>().ok()) {
            caps.get(n)
        } else {
            return Err(err(format!(
                "regex_search: unknown argument '{g}' (use '\\\\1' or '\\\\g<name>')"
            )));
        };
        out.push(m.map_or(Value::from(()), |m| Value::from(m.as_str())));
    }
    Ok(Value::from(out))
}

fn regex_findall(state: &State, v: Value, pattern: String, kwargs: Kwargs) -> Result<Value, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let value = text(state, &v)?;
    let re = regex(&pattern, ignorecase, multiline)?;
    let groups = re.captures_len() - 1;
    let mut out = Vec::new();
    for caps in re.captures_iter(&value) {
        let g = |i: usize| Value::from(caps.get(i).map_or("", |m| m.as_str()));
        out.push(match groups {
            0 => g(0),
            1 => g(1),
            n => Value::from((1..=n).map(g).collect::<Vec<_>>()),
        });
    }
    Ok(Value::from(out))
}

fn regex_escape(state: &State, v: Value, re_type: Option<String>) -> Result<String, Error> {
    let s = text(state, &v)?;
    let special: &str = match re_type.as_deref().unwrap_or("python") {
        "python" => "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}",
        "posix_basic" => "].[^$*\\",
        other => {
            return Err(err(format!(
                "regex_escape: unsupported regex type '{other}'"
            )));
        }
    };
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// `shlex.quote`.
pub(super) fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn quote(state: &State, v: Value) -> Result<String, Error> {
    check_defined(state, &v)?;
    if v.is_none() {
        return Ok("''".into());
    }
    Ok(shell_quote(&pyfmt::py_str(&v)))
}

fn basename(state: &State, v: Value) -> Result<String, Error> {
    let p = text(state, &v)?;
    Ok(p.rsplit('/').next().unwrap_or_default().to_string())
}

/// `posixpath.dirname`.
fn dirname(state: &State, v: Value) -> Result<String, Error> {
    let p = text(state, &v)?;
    let head = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    if !head.is_empty() && head.chars().any(|c| c != '/') {
        Ok(head.trim_end_matches('/').to_string())
    } else {
        Ok(head.to_string())
    }
}

fn expanduser(state: &State, v: Value) -> Result<String, Error> {
    let p = text(state, &v)?;
    if (p == "~" || p.starts_with("~/"))
        && let Ok(home) = std::env::var("HOME")
    {
        let home = home.trim_end_matches('/');
        return Ok(format!("{home}{}", &p[1..]));
    }
    Ok(p)
}

/// `posixpath.splitext`: the extension starts at the last dot of the last component, unless
/// that component is only dots before it (`.bashrc` has none).
fn splitext(state: &State, v: Value) -> Result<Value, Error> {
    let p = text(state, &v)?;
    let base_start = p.rfind('/').map_or(0, |i| i + 1);
    let base = &p[base_start..];
    let split = base
        .rfind('.')
        .filter(|&i| base[..i].chars().any(|c| c != '.'));
    let (root, ext) = match split {
        Some(i) => (&p[..base_start + i], &p[base_start + i..]),
        None => (p.as_str(), ""),
    };
    Ok(Value::from(vec![Value::from(root), Value::from(ext)]))
}

fn path_join(state: &State, v: Value) -> Result<String, Error> {
    check_defined(state, &v)?;
    if let Some(s) = v.as_str() {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    for part in v.try_iter()? {
        let part = text(state, &part)?;
        if part.starts_with('/') {
            out = part;
        } else if out.is_empty() || out.ends_with('/') {
            out.push_str(&part);
        } else {
            out.push('/');
            out.push_str(&part);
        }
    }
    Ok(out)
}

fn digest(state: &State, v: &Value, kind: &str) -> Result<String, Error> {
    let data = text(state, v)?;
    let bytes = data.as_bytes();
    Ok(match kind {
        "sha1" => hex::encode(sha1::Sha1::digest(bytes)),
        "md5" => format!("{:x}", md5::compute(bytes)),
        "sha224" => hex::encode(sha2::Sha224::digest(bytes)),
        "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
        "sha384" => hex::encode(sha2::Sha384::digest(bytes)),
        "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
        other => {
            return Err(err(format!(
                "unsupported hash type '{other}' (supported: md5, sha1, sha224, sha256, sha384, sha512)"
            )));
        }
    })
}

fn hash(state: &State, v: Value, kind: Option<String>) -> Result<String, Error> {
    digest(state, &v, kind.as_deref().unwrap_or("sha1"))
}

fn mandatory(state: &State, v: &Value, msg: Option<String>) -> Result<Value, Error> {
    if v.is_undefined() {
        if let Some(m) = msg {
            return Err(err(m));
        }
        check_defined(state, v)?;
    }
    Ok(v.clone())
}

enum SetOp {
    Difference,
    Intersect,
    Union,
    Symmetric,
}

/// Set operations keep the first list's order (Python's `set` order is unspecified).
fn set_op(state: &State, a: &Value, b: &Value, op: SetOp) -> Result<Value, Error> {
    let a = json_list(state, a, "set operation")?;
    let b = json_list(state, b, "set operation")?;
    let mut out: Vec<Json> = Vec::new();
    let push = |x: &Json, out: &mut Vec<Json>| {
        if !out.contains(x) {
            out.push(x.clone());
        }
    };
    match op {
        SetOp::Difference => a
            .iter()
            .filter(|x| !b.contains(x))
            .for_each(|x| push(x, &mut out)),
        SetOp::Intersect => a
            .iter()
            .filter(|x| b.contains(x))
            .for_each(|x| push(x, &mut out)),
        SetOp::Union => a.iter().chain(b.iter()).for_each(|x| push(x, &mut out)),
        SetOp::Symmetric => {
            a.iter()
                .filter(|x| !b.contains(x))
                .for_each(|x| push(x, &mut out));
            b.iter()
                .filter(|x| !a.contains(x))
                .for_each(|x| push(x, &mut out));
        }
    }
    Ok(from_json(&Json::Array(out)))
}

fn extract(
    state: &State,
    item: Value,
    container: Value,
    morekeys: Option<Value>,
) -> Result<Value, Error> {
    check_defined(state, &container)?;
    let mut keys = vec![item];
    match morekeys {
        Some(m) if m.kind() == ValueKind::Seq => keys.extend(m.try_iter()?),
        Some(m) if !m.is_none() => keys.push(m),
        _ => {}
    }
    let is_hostvars = container
        .downcast_object_ref::<super::objects::Hostvars>()
        .is_some();
    let mut v = container;
    for (i, k) in keys.iter().enumerate() {
        v = v.get_item(k)?;
        if v.is_undefined() {
            let key = pyfmt::py_str(k);
            return Err(err(if is_hostvars && i == 0 {
                format!("extract: hostvars has no host '{key}' (is it in the inventory?)")
            } else if is_hostvars {
                format!(
                    "extract: hostvars['{}'] has no variable '{key}'",
                    pyfmt::py_str(&keys[0])
                )
            } else {
                format!("extract: the container has no item '{key}'")
            }));
        }
    }
    Ok(v)
}

fn type_debug(state: &State, v: Value) -> Result<String, Error> {
    Ok(pyfmt::json_type_name(&json(state, &v)?).to_string())
}

/// `dict(...)`: Python's constructor (a list of pairs, a mapping, keyword arguments).
fn dict_fn(args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    if args.0.len() > 1 {
        return Err(err("dict expected at most 1 positional argument"));
    }
    if let Some(src) = args.0.first() {
        match src.kind() {
            ValueKind::Map => {
                for k in src.try_iter()? {
                    let v = src.get_item(&k)?;
                    pairs.push((k, v));
                }
            }
            ValueKind::Seq | ValueKind::Iterable => {
                for pair in src.try_iter()? {
                    let kv: Vec<Value> = pair.try_iter()?.collect();
                    let [k, v] = <[Value; 2]>::try_from(kv)
                        .map_err(|_| err("dict() needs a list of key/value pairs"))?;
                    pairs.push((k, v));
                }
            }
            ValueKind::None | ValueKind::Undefined => {}
            other => return Err(err(format!("dict() cannot convert {other}"))),
        }
    }
    for k in kwargs.args().map(str::to_string).collect::<Vec<_>>() {
        let v: Value = kwargs.get(&k)?;
        pairs.push((Value::from(k), v));
    }
    Ok(Value::from_pairs(pairs))
}

// ---- tests ----

fn result_flag(state: &State, v: &Value, key: &str) -> Result<bool, Error> {
    check_defined(state, v)?;
    if v.kind() != ValueKind::Map {
        return Err(err(format!(
            "the '{key}' test expects a registered task result (a dictionary), got {}",
            v.kind()
        )));
    }
    Ok(v.get_attr(key).is_ok_and(|x| x.is_true()))
}

fn changed(state: &State, v: Value) -> Result<bool, Error> {
    check_defined(state, &v)?;
    if v.kind() != ValueKind::Map {
        return Err(err(format!(
            "the 'changed' test expects a registered task result (a dictionary), got {}",
            v.kind()
        )));
    }
    let c = v.get_attr("changed")?;
    if !c.is_undefined() {
        return Ok(c.is_true());
    }
    let results = v.get_attr("results")?;
    if results.kind() == ValueKind::Seq {
        for r in results.try_iter()? {
            if r.kind() == ValueKind::Map && r.get_attr("changed")?.is_true() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn regex_test(
    state: &State,
    v: &Value,
    pattern: &str,
    kwargs: Kwargs,
    kind: &str,
) -> Result<bool, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let match_type: String = kwargs
        .get::<Option<String>>("match_type")?
        .unwrap_or_else(|| "search".into());
    kwargs.assert_all_used()?;
    let kind = if kind.is_empty() {
        match_type.as_str()
    } else {
        kind
    };
    let value = text(state, v)?;
    match kind {
        "match" => Ok(regex(&format!(r"\A(?:{pattern})"), ignorecase, multiline)?.is_match(&value)),
        "fullmatch" => {
            Ok(regex(&format!(r"\A(?:{pattern})\z"), ignorecase, multiline)?.is_match(&value))
        }
        "search" => Ok(regex(pattern, ignorecase, multiline)?.is_match(&value)),
        other => Err(err(format!("regex test: unknown match_type '{other}'"))),
    }
}

fn contains(state: &State, seq: Value, item: Value) -> Result<bool, Error> {
    check_defined(state, &seq)?;
    check_defined(state, &item)?;
    if let (Some(s), Some(i)) = (seq.as_str(), item.as_str()) {
        return Ok(s.contains(i));
    }
    Ok(seq.try_iter()?.any(|x| x == item))
}

fn truthy(state: &State, v: &Value, kwargs: Kwargs) -> Result<bool, Error> {
    let convert = kwargs.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    check_defined(state, v)?;
    if convert && let Some(b) = v.as_str().and_then(crate::value::parse_bool) {
        return Ok(b);
    }
    Ok(v.is_true())
}

fn subset(state: &State, a: &Value, b: &Value) -> Result<bool, Error> {
    let a = json_list(state, a, "subset")?;
    let b = json_list(state, b, "subset")?;
    Ok(a.iter().all(|x| b.contains(x)))
}

#[derive(Debug, PartialEq)]
enum Part {
    Num(u64),
    Str(String),
}

/// distutils' LooseVersion components: runs of digits, runs of letters, other text.
fn loose_parts(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut kind = 0u8; // 1 digit, 2 alpha, 3 other
    let flush = |cur: &mut String, kind: u8, parts: &mut Vec<Part>| {
        if !cur.is_empty() && cur != "." {
            parts.push(match (kind, cur.parse::<u64>()) {
                (1, Ok(n)) => Part::Num(n),
                _ => Part::Str(cur.clone()),
            });
        }
        cur.clear();
    };
    for c in s.chars() {
        let k = if c.is_ascii_digit() {
            1
        } else if c.is_ascii_lowercase() {
            2
        } else if c == '.' {
            4
        } else {
            3
        };
        if k != kind || k == 4 {
            flush(&mut cur, kind, &mut parts);
            kind = k;
        }
        cur.push(c);
    }
    flush(&mut cur, kind, &mut parts);
    parts
}

fn cmp_loose(a: &str, b: &str) -> Result<std::cmp::Ordering, Error> {
    let (pa, pb) = (loose_parts(a), loose_parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            (Part::Num(x), Part::Num(y)) => x.cmp(y),
            (Part::Str(x), Part::Str(y)) => x.cmp(y),
            _ => {
                return Err(err(format!(
                    "Version comparison failed: cannot compare '{a}' and '{b}' (a number against text)"
                )));
            }
        };
        if o.is_ne() {
            return Ok(o);
        }
    }
    Ok(pa.len().cmp(&pb.len()))
}

/// Semantic versions (`1.2.3-rc.1+build`): precedence per semver.org.
fn cmp_semver(a: &str, b: &str, strict: bool) -> Result<std::cmp::Ordering, Error> {
    type Parsed<'a> = ([u64; 3], Option<&'a str>);
    fn parse(v: &str, strict: bool) -> Option<Parsed<'_>> {
        let v = v.split('+').next()?;
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) if !strict => (c, Some(p)),
            _ => (v, None),
        };
        // StrictVersion: 1.2, 1.2.3, 1.2a1
        let (core, pre) = if strict {
            match core.find(['a', 'b']) {
                Some(i) => (&core[..i], Some(&core[i..])),
                None => (core, pre),
            }
        } else {
            (core, pre)
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.len() > 3 || (nums.len() < 3 && !strict) || nums.len() < 2 {
            return None;
        }
        let mut out = [0u64; 3];
        for (i, n) in nums.iter().enumerate() {
            out[i] = n.parse().ok()?;
        }
        Some((out, pre))
    }
    let what = if strict { "strict" } else { "semver" };
    let pa = parse(a, strict).ok_or_else(|| {
        err(format!(
            "Version comparison failed: invalid {what} version '{a}'"
        ))
    })?;
    let pb = parse(b, strict).ok_or_else(|| {
        err(format!(
            "Version comparison failed: invalid {what} version '{b}'"
        ))
    })?;
    Ok(pa.0.cmp(&pb.0).then_with(|| match (pa.1, pb.1) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => {
            let xs: Vec<&str> = x.split('.').collect();
            let ys: Vec<&str> = y.split('.').collect();
            for (p, q) in xs.iter().zip(ys.iter()) {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => std::cmp::Ordering::Less,
                    (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
                    _ => p.cmp(q),
                };
                if o.is_ne() {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
    }))
}

fn version_test(
    state: &State,
    v: Value,
    other: Value,
    op: Option<String>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    let op = op
        .or(kwargs.get("operator")?)
        .unwrap_or_else(|| "eq".into());
    let strict = kwargs.get::<Option<bool>>("strict")?.unwrap_or(false);
    let version_type: Option<String> = kwargs.get("version_type")?;
    kwargs.assert_all_used()?;
    let a = text(state, &v)?;
    let b = text(state, &other)?;
    if a.is_empty() {
        return Err(err("Input version value cannot be empty"));
    }
    if b.is_empty() {
        return Err(err("Version parameter to compare against cannot be empty"));
    }
    let ord = match (strict, version_type.as_deref()) {
        (true, _) | (_, Some("strict")) => cmp_semver(&a, &b, true)?,
        (_, Some("semver" | "semantic")) => cmp_semver(&a, &b, false)?,
        (_, None | Some("loose" | "pep440")) => cmp_loose(&a, &b)?,
        (_, Some(t)) => {
            return Err(err(format!(
                "Invalid version type ({t}). Must be one of 'loose', 'strict', 'semver', 'semantic', 'pep440'"
            )));
        }
    };
    use std::cmp::Ordering::*;
    Ok(match op.as_str() {
        "==" | "=" | "eq" => ord == Equal,
        "<" | "lt" => ord == Less,
        "<=" | "le" => ord != Greater,
        ">" | "gt" => ord == Greater,
        ">=" | "ge" => ord != Less,
        "!=" | "<>" | "ne" => ord != Equal,
        other => {
            return Err(err(format!(
                "Invalid operator type ({other}). Must be one of ==, =, eq, <, lt, <=, le, >, gt, >=, ge, !=, <>, ne"
            )));
        }
    })
}

// ---- Python methods on values (`s.startswith('x')`, `d.items()`) ----

fn arg_str<'a>(args: &'a [Value], i: usize, method: &str) -> Result<Option<&'a str>, Error> {
    match args.get(i) {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| err(format!("{method}() expects a string argument"))),
    }
}

pub(super) fn call_method(
    state: &mut State,
    value: &Value,
    name: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        return str_method(state, s, name, args);
    }
    match (value.kind(), name) {
        (ValueKind::Map, "items") => state.apply_filter("items", std::slice::from_ref(value)),
        (ValueKind::Map, "keys") => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
        (ValueKind::Map, "values") => {
            let vals: Result<Vec<Value>, Error> =
                value.try_iter()?.map(|k| value.get_item(&k)).collect();
            Ok(Value::from(vals?))
        }
        (ValueKind::Map, "get") => {
            let key = args.first().ok_or_else(|| err("get() needs a key"))?;
            let v = value.get_item(key)?;
            Ok(if v.is_undefined() {
                args.get(1).cloned().unwrap_or(Value::from(()))
            } else {
                v
            })
        }
        (ValueKind::Seq, "index") => {
            let needle = args.first().ok_or_else(|| err("index() needs a value"))?;
            value
                .try_iter()?
                .position(|x| &x == needle)
                .map(Value::from)
                .ok_or_else(|| err(format!("{needle} is not in list")))
        }
        (ValueKind::Seq, "count") => {
            let needle = args.first().ok_or_else(|| err("count() needs a value"))?;
            Ok(Value::from(
                value.try_iter()?.filter(|x| x == needle).count(),
            ))
        }
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

fn str_method(state: &mut State, s: &str, name: &str, args: &[Value]) -> Result<Value, Error> {
    let chars_arg = |i| arg_str(args, i, name);
    Ok(match name {
        "lower" => Value::from(s.to_lowercase()),
        "upper" => Value::from(s.to_uppercase()),
        "strip" | "lstrip" | "rstrip" => {
            let set = chars_arg(0)?;
            let pred = |c: char| match set {
                Some(set) => set.contains(c),
                None => c.is_whitespace(),
            };
            Value::from(match name {
                "strip" => s.trim_matches(pred),
                "lstrip" => s.trim_start_matches(pred),
                _ => s.trim_end_matches(pred),
            })
        }
        "split" => state.apply_filter(
            "split",
            &[Value::from(s)]
                .iter()
                .chain(args)
                .cloned()
                .collect::<Vec<_>>(),
        )?,
        "splitlines" => Value::from(s.lines().map(Value::from).collect::<Vec<_>>()),
        "startswith" | "endswith" => {
            let arg = args
                .first()
                .ok_or_else(|| err(format!("{name}() needs an argument")))?;
            let candidates: Vec<String> = if let Some(p) = arg.as_str() {
                vec![p.to_string()]
            } else {
                arg.try_iter()?.map(|v| pyfmt::py_str(&v)).collect()
            };
            Value::from(candidates.iter().any(|p| {
                if name == "startswith" {
                    s.starts_with(p.as_str())
                } else {
                    s.ends_with(p.as_str())
                }
            }))
        }
        "replace" => {
            let old = chars_arg(0)?.ok_or_else(|| err("replace() needs 2 arguments"))?;
            let new = chars_arg(1)?.ok_or_else(|| err("replace() needs 2 arguments"))?;
            match args.get(2).and_then(Value::as_usize) {
                Some(n) => Value::from(s.replacen(old, new, n)),
                None => Value::from(s.replace(old, new)),
            }
        }
        "find" => {
            let sub = chars_arg(0)?.ok_or_else(|| err("find() needs an argument"))?;
            Value::from(s.find(sub).map_or(-1, |i| s[..i].chars().count() as i64))
        }
        "count" => {
            let sub = chars_arg(0)?.ok_or_else(|| err("count() needs an argument"))?;
            Value::from(if sub.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(sub).count()
            })
        }
        "join" => {
            let items = args
                .first()
                .ok_or_else(|| err("join() needs an argument"))?;
            let parts: Vec<String> = items.try_iter()?.map(|v| pyfmt::py_str(&v)).collect();
            Value::from(parts.join(s))
        }
        "title" => state.apply_filter("title", &[Value::from(s)])?,
        "capitalize" => state.apply_filter("capitalize", &[Value::from(s)])?,
        "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
        "isalpha" => Value::from(!s.is_empty() && s.chars().all(char::is_alphabetic)),
        "isalnum" => Value::from(!s.is_empty() && s.chars().all(char::is_alphanumeric)),
        "islower" => {
            Value::from(s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase))
        }
        "isupper" => {
            Value::from(s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase))
        }
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    })
}

/// ansible.utils.ipwrap: an IPv6 address in brackets (for URLs and `host:port`); IPv4
/// addresses, names and anything else unchanged; lists element by element.
fn ipwrap(v: Value) -> Result<Value, Error> {
    if v.kind() == minijinja::value::ValueKind::Seq {
        return Ok(Value::from(
            v.try_iter()?.map(ipwrap).collect::<Result<Vec<_>, _>>()?,
        ));
    }
    Ok(match v.as_str() {
        Some(s) if s.parse::<std::net::Ipv6Addr>().is_ok() => Value::from(format!("[{s}]")),
        _ => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_replacement_syntax() {
        assert_eq!(py_replacement(r"\1-\g<name>-$"), "${1}-${name}-$$");
        assert_eq!(py_replacement(r"a\\b"), r"a\b");
    }

    #[test]
    fn loose_versions() {
        use std::cmp::Ordering::*;
        assert_eq!(cmp_loose("1.10", "1.9").unwrap(), Greater);
        assert_eq!(cmp_loose("1.2.0", "1.2").unwrap(), Greater);
        assert_eq!(cmp_loose("v1.28.3+k3s1", "v1.28.3+k3s1").unwrap(), Equal);
        assert!(cmp_loose("1.a", "1.2").is_err());
        assert_eq!(cmp_semver("1.0.0-rc.1", "1.0.0", false).unwrap(), Less);
        assert_eq!(cmp_semver("1.2a1", "1.2", true).unwrap(), Less);
    }

    #[test]
    fn shlex_quote() {
        assert_eq!(shell_quote("abc/d.e"), "abc/d.e");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's x"), r#"'it'"'"'s x'"#);
    }
}
