//! Ansible's INI inventory format, as ansible-core 2.19's `ini` inventory plugin reads it:
//!
//! - lines before the first section are hosts of `ungrouped`; `[g]` (or `[g:hosts]`) holds
//!   hosts, `[g:children]` child group names, `[g:vars]` `key = value` lines;
//! - a host line is split like a shell line (`shlex`, `#` starts a comment), the first word is
//!   the host (with `:port` and `[01:20]` ranges), the rest are `key=value` words;
//! - every value, inline or in `:vars`, goes through Python's `ast.literal_eval` and stays a
//!   string when it is not a Python literal: `x=5` is a number, `x=true` the string `true`,
//!   `x=True` a boolean. Inline values lose their shell quotes first, so `x='5'` is 5 while
//!   `x = '5'` in a `:vars` section is the string "5" (Ansible's documentation says `:vars`
//!   values are strings; the plugin does not do that, and mixop follows the plugin);
//! - a group named in `[g:children]` or `[g:vars]` must be declared somewhere in the file
//!   (`[g]` or `[g:children]`); lines starting with `#` or `;` are comments.

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::Inventory;
use super::load::{expand_host_range, parse_port};
use super::pattern::parse_address;
use crate::diag::{Diag, Loc, Result, Source};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Hosts,
    Children,
    Vars,
}

/// A group used in `[g:children]` or `[g:vars]` before it is declared.
struct Pending {
    loc: Loc,
    section: Section,
    /// For `Children`: the groups that named it as a child.
    parents: Vec<String>,
}

const RANGE_HINT: &str = "ranges look like `web[01:10]`, `db[a:f]` or `node[1:9:2]`";

pub(super) fn parse(inv: &mut Inventory, src: &Arc<Source>) -> Result<()> {
    let mut pending: IndexMap<String, Pending> = IndexMap::new();
    let mut group = "ungrouped".to_string();
    let mut section = Section::Hosts;
    let mut offset = 0;
    for (index, raw) in src.text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let lead = raw.len() - raw.trim_start().len();
        let loc = Loc {
            src: src.clone(),
            offset: start + lead,
            len: line.len(),
            line: index + 1,
            col: raw[..lead].chars().count() + 1,
        };
        if let Some((name, kind)) = section_header(line) {
            section = match kind {
                None | Some("hosts") => Section::Hosts,
                Some("children") => Section::Children,
                Some("vars") => Section::Vars,
                Some(other) => {
                    return Err(Diag::input(format!(
                        "section [{name}:{other}] has unknown type `{other}`"
                    ))
                    .at(&loc)
                    .hint("a section is `[group]`, `[group:children]` or `[group:vars]`"));
                }
            };
            group = name.to_string();
            if !inv.groups.contains_key(&group) {
                // `[g:vars]` alone does not declare a group; remember it and check at the end.
                if section == Section::Vars && !pending.contains_key(&group) {
                    pending.insert(
                        group.clone(),
                        Pending {
                            loc: loc.clone(),
                            section,
                            parents: Vec::new(),
                        },
                    );
                }
                inv.add_group(&group, Some(&loc));
            }
            if section != Section::Vars
                && let Some(p) = pending.shift_remove(&group)
                && p.section == Section::Children
            {
                for parent in &p.parents {
                    inv.add_child(parent, &group, &p.loc)?;
                }
            }
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(Diag::input(format!("invalid section `{line}`"))
                .at(&loc)
                .hint(
                    "a section is `[group]`, `[group:children]` or `[group:vars]`, without spaces",
                ));
        }
        match section {
            Section::Hosts => host_line(inv, &group, line, &loc)?,
            Section::Vars => {
                let Some((key, value)) = line.split_once('=') else {
                    return Err(Diag::input(format!("expected `key = value`, found `{line}`"))
                        .at(&loc)
                        .hint(format!("lines of a `[{group}:vars]` section set variables of group `{group}`")));
                };
                set_group_var(inv, &group, key.trim(), value_at(value.trim(), &loc), &loc)?;
            }
            Section::Children => {
                let Some(child) = child_name(line) else {
                    return Err(Diag::input(format!("expected a group name, found `{line}`"))
                        .at(&loc)
                        .hint(format!("lines of a `[{group}:children]` section name child groups of `{group}`, one per line")));
                };
                if inv.groups.contains_key(child) {
                    inv.add_child(&group, child, &loc)?;
                } else {
                    pending
                        .entry(child.to_string())
                        .or_insert_with(|| Pending {
                            loc: loc.clone(),
                            section,
                            parents: Vec::new(),
                        })
                        .parents
                        .push(group.clone());
                }
            }
        }
    }
    // Like Ansible, only the first unresolved reference is reported.
    if let Some((name, p)) = pending.first() {
        let msg = match p.section {
            Section::Vars => {
                format!("section [{name}:vars] is for group `{name}`, which is not defined")
            }
            _ => format!(
                "section [{}:children] names group `{name}`, which is not defined",
                p.parents.last().map_or("", String::as_str)
            ),
        };
        return Err(Diag::input(msg).at(&p.loc).hint(format!(
            "declare it with a `[{name}]` or `[{name}:children]` section"
        )));
    }
    Ok(())
}

/// `[name]` or `[name:kind]`, optionally followed by a `#` comment (Ansible's section regex).
fn section_header(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let (inner, after) = (&rest[..close], rest[close + 1..].trim_start());
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    let name_ok = !name.is_empty() && !name.contains(char::is_whitespace);
    let kind_ok = kind.is_none_or(|k| !k.is_empty() && k.chars().all(is_word_char));
    (name_ok && kind_ok).then_some((name, kind))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A `[g:children]` line: one group name, optionally followed by a `#` comment.
fn child_name(line: &str) -> Option<&str> {
    let end = line
        .find(|c: char| c == ':' || c == ']' || c.is_whitespace() || c == '#')
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    let rest = rest.trim_start();
    (!name.is_empty() && (rest.is_empty() || rest.starts_with('#'))).then_some(name)
}

fn host_line(inv: &mut Inventory, group: &str, line: &str, loc: &Loc) -> Result<()> {
    let words = shlex_split(line)
        .map_err(|e| Diag::input(format!("cannot split host line `{line}`: {e}")).at(loc))?;
    let Some((first, rest)) = words.split_first() else {
        return Ok(());
    };
    let (pattern, port) = match parse_address(first) {
        Some((host, port)) => (host, port),
        None => (first.clone(), None),
    };
    if first.trim_end().ends_with(':') && port.is_none() {
        return Err(Diag::input(format!("host `{first}` ends with `:`"))
            .at(loc)
            .hint("`:` after a host name introduces its port, e.g. `web1:2222`"));
    }
    let port = parse_port(port.as_deref()).map_err(|e| Diag::input(e).at(loc))?;
    let names = if pattern.contains('[') {
        expand_host_range(&pattern).map_err(|e| {
            Diag::input(format!("host `{first}`: {e}"))
                .at(loc)
                .hint(RANGE_HINT)
        })?
    } else {
        vec![pattern]
    };
    if let Some(bad) = names.iter().find(|n| n.is_empty() || n.trim() == "---") {
        let what = if bad.is_empty() {
            "empty host name".to_string()
        } else {
            "host `---`: this looks like a YAML file".to_string()
        };
        return Err(Diag::input(what).at(loc));
    }
    let mut vars = Map::new();
    for word in rest {
        let Some((key, value)) = word.split_once('=') else {
            return Err(Diag::input(format!(
                "expected `key=value` after the host name, found `{word}`"
            ))
            .at(loc)
            .hint("a host line is `NAME[:PORT] key=value key2=\"value with spaces\"`"));
        };
        vars.insert(key.to_string(), value_at(value, loc));
    }
    for name in names {
        inv.add_host(
            &name,
            Some(group),
            port,
            Some(loc),
            Some(loc.path().to_path_buf()),
        );
        if let Some(h) = inv.hosts.get_mut(&name) {
            h.vars
                .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    Ok(())
}

fn set_group_var(
    inv: &mut Inventory,
    group: &str,
    key: &str,
    value: Value,
    loc: &Loc,
) -> Result<()> {
    let Some(g) = inv.groups.get_mut(group) else {
        return Ok(());
    };
    if key == "ansible_group_priority" {
        // Python's int(): strings of digits, numbers (truncated), booleans.
        g.priority = match &value {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.abs() < 9.0e18)
                    .map(|f| f.trunc() as i64)
            }),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            Diag::input(format!(
                "`ansible_group_priority` must be an integer, found `{value}`"
            ))
            .at(loc)
        })?;
    } else {
        g.vars.insert(key.to_string(), value);
    }
    Ok(())
}

/// A value read at `loc`: a secret when the file was vault-encrypted.
fn value_at(text: &str, loc: &Loc) -> Value {
    if loc.src.secret {
        crate::secret::register(text);
    }
    literal_or_string(text)
}

/// What Ansible stores for an INI value: the Python literal it spells, or the text itself.
pub(super) fn literal_or_string(text: &str) -> Value {
    py_literal(text).unwrap_or_else(|| Value::String(text.to_string()))
}

/// Python's `shlex.split(line, comments=True)` (POSIX mode).
pub(super) fn shlex_split(line: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once any character or quote of it was read (`''` is an empty word).
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' => break,
            '\\' => {
                word.push(chars.next().ok_or("no escaped character")?);
                in_word = true;
            }
            '\'' => {
                loop {
                    match chars.next().ok_or("no closing quotation")? {
                        '\'' => break,
                        ch => word.push(ch),
                    }
                }
                in_word = true;
            }
            '"' => {
                loop {
                    match chars.next().ok_or("no closing quotation")? {
                        '"' => break,
                        '\\' => match chars.next().ok_or("no escaped character")? {
                            // Inside double quotes a backslash only escapes `"` and itself.
                            ch @ ('"' | '\\') => word.push(ch),
                            ch => {
                                word.push('\\');
                                word.push(ch);
                            }
                        },
                        ch => word.push(ch),
                    }
                }
                in_word = true;
            }
            ch => {
                word.push(ch);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Python's `ast.literal_eval(text)` for the literals an inventory can hold: numbers,
/// strings (with prefixes and escapes, adjacent ones joined), `True`/`False`/`None`, lists,
/// tuples (also bare `1, 2`) and sets as lists, dicts (keys as JSON keys), `...` as the
/// string "...". None when the text is not such a literal (it then stays a string). Complex
/// numbers, integers beyond 64 bits and infinite floats also give None.
pub(super) fn py_literal(text: &str) -> Option<Value> {
    let mut p = PyParser {
        s: text.trim_start_matches([' ', '\t']).as_bytes(),
        text: text.trim_start_matches([' ', '\t']),
        pos: 0,
        depth: 0,
    };
    let value = p.expr_list(true)?;
    p.skip_space();
    (p.pos == p.s.len()).then_some(value)
}

/// Nesting deeper than this is not a literal mixop reads (and keeps the recursion bounded).
const MAX_LITERAL_DEPTH: usize = 100;

struct PyParser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl PyParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Spaces and a trailing `# comment` (Python's tokenizer drops both).
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\x0c' => self.pos += 1,
                b'#' => self.pos = self.s.len(),
                _ => break,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `a, b, ...` (a tuple when there is a comma); `top` allows the bare form.
    fn expr_list(&mut self, top: bool) -> Option<Value> {
        let first = self.expr()?;
        self.skip_space();
        if self.peek() != Some(b',') {
            return Some(first);
        }
        let mut items = vec![first];
        while self.eat(b',') {
            self.skip_space();
            match self.peek() {
                None if top => break,
                Some(b')') if !top => break,
                _ => items.push(self.expr()?),
            }
        }
        Some(Value::Array(items))
    }

    /// Items up to `close`, with an optional trailing comma.
    fn items(&mut self, close: u8) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.expr()?);
            if !self.eat(b',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    fn expr(&mut self) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_LITERAL_DEPTH {
            return None;
        }
        let v = self.atom();
        self.depth -= 1;
        v
    }

    fn atom(&mut self) -> Option<Value> {
        self.skip_space();
        let c = self.peek()?;
        match c {
            b'(' => {
                self.pos += 1;
                if self.eat(b')') {
                    return Some(Value::Array(Vec::new()));
                }
                let v = self.expr_list(false)?;
                self.eat(b')').then_some(v)
            }
            b'[' => {
                self.pos += 1;
                self.items(b']').map(Value::Array)
            }
            b'{' => {
                self.pos += 1;
                self.brace()
            }
            b'-' | b'+' => {
                // One sign on a number literal, as literal_eval allows.
                self.pos += 1;
                self.skip_space();
                let n = self.number()?;
                if c == b'+' {
                    return Some(n);
                }
                match n {
                    Value::Number(n) if n.is_i64() => n.as_i64()?.checked_neg().map(Value::from),
                    Value::Number(n) => {
                        serde_json::Number::from_f64(-n.as_f64()?).map(Value::Number)
                    }
                    _ => None,
                }
            }
            b'0'..=b'9' => self.number(),
            b'.' if self.s.get(self.pos + 1).is_some_and(u8::is_ascii_digit) => self.number(),
            b'.' if self.s[self.pos..].starts_with(b"...") => {
                self.pos += 3;
                Some(Value::from("..."))
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80)
                {
                    self.pos += 1;
                }
                let name = &self.text[start..self.pos];
                if matches!(self.peek(), Some(b'\'' | b'"')) {
                    return self.strings(start);
                }
                match name {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::Null),
                    _ => None,
                }
            }
            b'\'' | b'"' => self.strings(self.pos),
            _ => None,
        }
    }

    /// `{}` dict or `{a, b}` set, after the `{`.
    fn brace(&mut self) -> Option<Value> {
        if self.eat(b'}') {
            return Some(Value::Object(Map::new()));
        }
        let first = self.expr()?;
        if !self.eat(b':') {
            let mut items = vec![first];
            if self.eat(b',') {
                items.extend(self.items(b'}')?);
            } else if !self.eat(b'}') {
                return None;
            }
            let mut set: Vec<Value> = Vec::new();
            for item in items {
                if matches!(item, Value::Array(_) | Value::Object(_)) {
                    return None;
                }
                if !set.contains(&item) {
                    set.push(item);
                }
            }
            return Some(Value::Array(set));
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            let value = self.expr()?;
            map.insert(json_key(&key)?, value);
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            if !self.eat(b',') {
                return None;
            }
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            key = self.expr()?;
            if !self.eat(b':') {
                return None;
            }
        }
    }

    /// A number literal (without sign).
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        let s = self.s;
        let digits = |pos: &mut usize, ok: fn(u8) -> bool| -> Option<()> {
            // digit (["_"] digit)*
            if !s.get(*pos).copied().is_some_and(ok) {
                return None;
            }
            while let Some(&c) = s.get(*pos) {
                if ok(c) {
                    *pos += 1;
                } else if c == b'_' && s.get(*pos + 1).copied().is_some_and(ok) {
                    *pos += 2;
                } else {
                    break;
                }
            }
            Some(())
        };
        let mut pos = self.pos;
        let radix = match (s.get(pos), s.get(pos + 1).map(u8::to_ascii_lowercase)) {
            (Some(b'0'), Some(b'x')) => 16,
            (Some(b'0'), Some(b'o')) => 8,
            (Some(b'0'), Some(b'b')) => 2,
            _ => 10,
        };
        let value = if radix != 10 {
            pos += 2;
            if s.get(pos) == Some(&b'_') {
                pos += 1;
            }
            let begin = pos;
            let ok: fn(u8) -> bool = match radix {
                16 => |c: u8| c.is_ascii_hexdigit(),
                8 => |c: u8| (b'0'..=b'7').contains(&c),
                _ => |c: u8| c == b'0' || c == b'1',
            };
            digits(&mut pos, ok)?;
            let text: String = self.text[begin..pos]
                .chars()
                .filter(|c| *c != '_')
                .collect();
            Value::from(i64::from_str_radix(&text, radix).ok()?)
        } else {
            let mut is_float = false;
            if s.get(pos) != Some(&b'.') {
                digits(&mut pos, |c| c.is_ascii_digit())?;
            }
            if s.get(pos) == Some(&b'.') {
                is_float = true;
                pos += 1;
                if s.get(pos).is_some_and(u8::is_ascii_digit) {
                    digits(&mut pos, |c| c.is_ascii_digit())?;
                }
            }
            if matches!(s.get(pos), Some(b'e' | b'E')) {
                let mut p = pos + 1;
                if matches!(s.get(p), Some(b'+' | b'-')) {
                    p += 1;
                }
                if digits(&mut p, |c| c.is_ascii_digit()).is_some() {
                    pos = p;
                    is_float = true;
                }
            }
            if matches!(s.get(pos), Some(b'j' | b'J')) {
                return None; // complex
            }
            let text: String = self.text[start..pos]
                .chars()
                .filter(|c| *c != '_')
                .collect();
            if is_float {
                let f: f64 = text.parse().ok()?;
                Value::Number(serde_json::Number::from_f64(f).filter(|_| f.is_finite())?)
            } else {
                // Python refuses leading zeros in non-zero decimal integers (`010`).
                if text.len() > 1 && text.starts_with('0') && text.bytes().any(|c| c != b'0') {
                    return None;
                }
                Value::from(text.parse::<i64>().ok()?)
            }
        };
        // `1abc` is a syntax error in Python, not a number followed by a name.
        if s.get(pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.' || *c >= 0x80)
        {
            return None;
        }
        self.pos = pos;
        Some(value)
    }

    /// One or more adjacent string literals starting at `start` (prefix included).
    fn strings(&mut self, start: usize) -> Option<Value> {
        self.pos = start;
        let mut out = String::new();
        let mut bytes_kind = None;
        loop {
            let begin = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.pos += 1;
            }
            let prefix = self.text[begin..self.pos].to_ascii_lowercase();
            let Some(quote @ (b'\'' | b'"')) = self.peek() else {
                // Not a string: the joined literal ends before it.
                self.pos = begin;
                break;
            };
            let (raw, bytes) = match prefix.as_str() {
                "" | "u" => (false, false),
                "r" => (true, false),
                "b" => (false, true),
                "br" | "rb" => (true, true),
                _ => return None, // f-strings and the like are not literals
            };
            // Python refuses to join bytes with str.
            if *bytes_kind.get_or_insert(bytes) != bytes {
                return None;
            }
            out.push_str(&self.string_body(quote, raw, bytes)?);
            self.skip_space();
        }
        Some(Value::String(out))
    }

    /// The body of one string literal, the opening quote at `pos`.
    fn string_body(&mut self, quote: u8, raw: bool, bytes: bool) -> Option<String> {
        let triple = self.s[self.pos..].starts_with(&[quote, quote, quote]);
        self.pos += if triple { 3 } else { 1 };
        let rest = &self.text[self.pos..];
        let mut out: Vec<u8> = Vec::new();
        let mut chars = rest.char_indices().peekable();
        let q = quote as char;
        while let Some((i, c)) = chars.next() {
            if c == q {
                if !triple {
                    self.pos += i + 1;
                    return String::from_utf8(out).ok();
                }
                if rest[i..].starts_with(&q.to_string().repeat(3)) {
                    self.pos += i + 3;
                    return String::from_utf8(out).ok();
                }
            }
            if (c == '\n' || c == '\r') && !triple {
                return None;
            }
            if bytes && !c.is_ascii() {
                return None;
            }
            if c != '\\' {
                push_char(&mut out, c);
                continue;
            }
            let (_, e) = chars.next()?;
            if raw {
                push_char(&mut out, '\\');
                push_char(&mut out, e);
                continue;
            }
            match e {
                '\n' => {}
                '\\' | '\'' | '"' => push_char(&mut out, e),
                'a' => out.push(7),
                'b' => out.push(8),
                'f' => out.push(12),
                'n' => out.push(b'\n'),
                'r' => out.push(b'\r'),
                't' => out.push(b'\t'),
                'v' => out.push(11),
                '0'..='7' => {
                    let mut n = e.to_digit(8)?;
                    for _ in 0..2 {
                        match chars.peek() {
                            Some(&(_, d @ '0'..='7')) => {
                                n = n * 8 + d.to_digit(8)?;
                                chars.next();
                            }
                            _ => break,
                        }
                    }
                    push_code(&mut out, n, bytes)?;
                }
                'x' | 'u' | 'U' if e == 'x' || !bytes => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let mut n = 0u32;
                    for _ in 0..len {
                        let (_, d) = chars.next()?;
                        n = n.checked_mul(16)? + d.to_digit(16)?;
                    }
                    push_code(&mut out, n, bytes)?;
                }
                // `\N{NAME}` needs Unicode's name table: leave such values as text.
                'N' if !bytes => return None,
                other => {
                    // Unknown escapes keep their backslash (Python warns, Ansible ignores it).
                    push_char(&mut out, '\\');
                    push_char(&mut out, other);
                }
            }
        }
        None
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// A numeric escape: a byte in bytes literals, a code point in strings.
fn push_code(out: &mut Vec<u8>, n: u32, bytes: bool) -> Option<()> {
    if bytes {
        out.push(u8::try_from(n).ok()?);
    } else {
        push_char(out, char::from_u32(n)?);
    }
    Some(())
}

/// A dict key as JSON writes it (Python's json: `True` → "true", `None` → "null").
fn json_key(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_literals() {
        let cases: &[(&str, Value)] = &[
            ("5", json!(5)),
            ("-3", json!(-3)),
            ("+3", json!(3)),
            ("0x10", json!(16)),
            ("0o17", json!(15)),
            ("0b101", json!(5)),
            ("1_000", json!(1000)),
            ("1e3", json!(1000.0)),
            ("1.5", json!(1.5)),
            (".5", json!(0.5)),
            ("1.", json!(1.0)),
            ("True", json!(true)),
            ("None", Value::Null),
            ("'a b'", json!("a b")),
            ("\"x\" 'y'", json!("xy")),
            ("r'\\n'", json!("\\n")),
            ("'\\n\\x41\\101\\u00e9\\d'", json!("\nAA\u{e9}\\d")),
            ("b'abc'", json!("abc")),
            ("[1, 'a', [None]]", json!([1, "a", [null]])),
            ("(1,)", json!([1])),
            ("1, 2", json!([1, 2])),
            ("1,", json!([1])),
            ("()", json!([])),
            ("(5)", json!(5)),
            ("{'k': 1, 2: [3]}", json!({"k": 1, "2": [3]})),
            ("{1, 2, 1}", json!([1, 2])),
            ("{}", json!({})),
            ("5 # comment", json!(5)),
            ("...", json!("...")),
            ("'''tri'ple'''", json!("tri'ple")),
        ];
        for (text, want) in cases {
            assert_eq!(py_literal(text).as_ref(), Some(want), "{text}");
        }
        for text in [
            "",
            "true",
            "yes",
            "010",
            "1abc",
            "--5",
            "1+2",
            "inf",
            "1j",
            "{k:1}",
            "f'x'",
            "'open",
            "[1,",
            "a b",
            "hello # c",
            "1 2",
            "{1:}",
            "b'x' 'y'",
            "0x",
            "1__0",
        ] {
            assert_eq!(py_literal(text), None, "{text}");
        }
    }

    #[test]
    fn shell_words() {
        let split = |s: &str| shlex_split(s).unwrap();
        assert_eq!(split("a b=1  c='x y'"), ["a", "b=1", "c=x y"]);
        assert_eq!(
            split(r#"h x="a \"q\" \n" y=a\ b"#),
            ["h", r#"x=a "q" \n"#, "y=a b"]
        );
        assert_eq!(split("h x=1#c y=2"), ["h", "x=1"]);
        assert_eq!(split("h x=''"), ["h", "x="]);
        assert_eq!(split("h ''"), ["h", ""]);
        assert_eq!(shlex_split("h x='open"), Err("no closing quotation"));
        assert_eq!(shlex_split("h x\\"), Err("no escaped character"));
    }

    #[test]
    fn section_headers() {
        assert_eq!(section_header("[web]"), Some(("web", None)));
        assert_eq!(
            section_header("[web:vars] # c"),
            Some(("web", Some("vars")))
        );
        assert_eq!(section_header("[web:bogus]"), Some(("web", Some("bogus"))));
        assert_eq!(section_header("[web ]"), None);
        assert_eq!(section_header("[web] x"), None);
        assert_eq!(child_name("db # c"), Some("db"));
        assert_eq!(child_name("db x"), None);
    }
}
