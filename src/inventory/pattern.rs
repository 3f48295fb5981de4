//! Host patterns, evaluated like ansible-core's `InventoryManager.get_hosts`.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{Inventory, LOCALHOST_NAMES};
use crate::diag::{Diag, Result};

/// Regexes below are constant; a failure to compile them is a bug caught by the unit tests.
fn constant(re: &str) -> Option<Regex> {
    Regex::new(re).ok()
}

static BRACKETED_HOSTPORT: LazyLock<Option<Regex>> =
    LazyLock::new(|| constant(r"^\[(.+)\]:([0-9]+)$"));
static HOSTPORT: LazyLock<Option<Regex>> =
    LazyLock::new(|| constant(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$"));
/// One hostname label, ranges allowed (`web[01:10]`); the "may not end with `-`/`_`" rule is
/// checked separately (the regex crate has no look-behind).
static LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let range = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";
    constant(&format!(r"(?i)^(?:\w|{range})(?:[\w-]|{range})*$"))
});
static SPLIT_COLON: LazyLock<Option<Regex>> =
    LazyLock::new(|| constant(r"(?:[^\s:\[\]]|\[[^\]]*\])+"));
static SUBSCRIPT: LazyLock<Option<Regex>> =
    LazyLock::new(|| constant(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$"));

fn is_hostname(s: &str) -> bool {
    let Some(label) = LABEL.as_ref() else {
        return false;
    };
    !s.is_empty()
        && s.split('.')
            .all(|l| label.is_match(l) && !l.ends_with(['-', '_']))
}

/// Ansible's `parse_address(allow_ranges=True)`: a host name, IPv4 or IPv6 address (ranges
/// allowed) with an optional `:port` (`[addr]:port` for IPv6). None when it is not one.
pub(super) fn parse_address(address: &str) -> Option<(String, Option<String>)> {
    let mut addr = address.to_string();
    let mut port = None;
    for re in [&BRACKETED_HOSTPORT, &HOSTPORT] {
        if let Some(caps) = re.as_ref().and_then(|re| re.captures(&addr)) {
            let (a, p) = (caps[1].to_string(), caps[2].to_string());
            addr = a;
            port = Some(p);
        }
    }
    let valid = is_hostname(&addr) || addr.parse::<std::net::Ipv6Addr>().is_ok();
    valid.then_some((addr, port))
}

/// Ansible's `split_host_pattern`.
pub(super) fn split_pattern(pattern: &str) -> Vec<String> {
    let parts: Vec<&str> = if pattern.contains(',') {
        pattern.split(',').collect()
    } else if parse_address(pattern).is_some() {
        vec![pattern]
    } else {
        match SPLIT_COLON.as_ref() {
            Some(re) => re.find_iter(pattern).map(|m| m.as_str()).collect(),
            None => vec![pattern],
        }
    };
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Unions first, then intersections, then exclusions; `all` when there is no union term.
fn order_terms(terms: Vec<String>) -> Vec<String> {
    let (mut regular, mut and, mut not) = (Vec::new(), Vec::new(), Vec::new());
    for t in terms {
        if t.starts_with('!') {
            not.push(t);
        } else if t.starts_with('&') {
            and.push(t);
        } else {
            regular.push(t);
        }
    }
    if regular.is_empty() {
        regular.push("all".to_string());
    }
    regular.extend(and);
    regular.extend(not);
    regular
}

pub(super) fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>> {
    let mut hosts: Vec<String> = Vec::new();
    for term in order_terms(split_pattern(pattern)) {
        // A plain host name is taken as is (Ansible does the same before any matching).
        if inv.hosts.contains_key(&term) {
            if !hosts.contains(&term) {
                hosts.push(term);
            }
            continue;
        }
        let (op, body) = match term.chars().next() {
            Some(c @ ('!' | '&')) => (c, &term[1..]),
            _ => (' ', term.as_str()),
        };
        let that = match_one(inv, body, &term)?;
        match op {
            '!' => {
                let that: HashSet<&String> = that.iter().collect();
                hosts.retain(|h| !that.contains(h));
            }
            '&' => {
                let that: HashSet<&String> = that.iter().collect();
                hosts.retain(|h| that.contains(h));
            }
            _ => {
                let mut have: HashSet<String> = hosts.iter().cloned().collect();
                for h in that {
                    if have.insert(h.clone()) {
                        hosts.push(h);
                    }
                }
            }
        }
    }
    Ok(hosts)
}

/// Hosts for one term without its `!`/`&`, subscript applied (duplicates kept, as Ansible).
fn match_one(inv: &Inventory, body: &str, term: &str) -> Result<Vec<String>> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let (expr, subscript) = split_subscript(body);
    let hosts = enumerate(inv, expr)?;
    apply_subscript(hosts, subscript).ok_or_else(|| {
        Diag::input(format!(
            "no hosts matched the subscripted pattern `{term}`"
        ))
        .hint("subscripts count from 0 over the hosts the pattern matches: `web[0]`, `web[1:3]`, `web[-1]`")
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Subscript {
    Index(i64),
    /// Start and end (inclusive; -1 = to the end).
    Range(i64, i64),
}

fn split_subscript(pattern: &str) -> (&str, Option<Subscript>) {
    if pattern.starts_with('~') {
        return (pattern, None);
    }
    let Some(caps) = SUBSCRIPT.as_ref().and_then(|re| re.captures(pattern)) else {
        return (pattern, None);
    };
    let Some(expr) = caps.get(1) else {
        return (pattern, None);
    };
    let expr = &pattern[expr.range()];
    // Numbers too large for i64 can only be past the end: make them so.
    let num = |s: &str| s.parse::<i64>().unwrap_or(i64::MAX / 2);
    if let Some(idx) = caps.get(2) {
        return (expr, Some(Subscript::Index(num(idx.as_str()))));
    }
    let start = caps.get(3).map_or(0, |m| num(m.as_str()));
    let end = match caps.get(5).map(|m| m.as_str()) {
        Some(e) if !e.is_empty() => num(e),
        _ => -1,
    };
    (expr, Some(Subscript::Range(start, end)))
}

/// Python's list indexing and slicing as Ansible's `_apply_subscript` uses them; None for an
/// index past the end.
fn apply_subscript(hosts: Vec<String>, subscript: Option<Subscript>) -> Option<Vec<String>> {
    let Some(sub) = subscript else {
        return Some(hosts);
    };
    if hosts.is_empty() {
        return Some(hosts);
    }
    let len = hosts.len() as i64;
    let index = |i: i64| -> Option<Vec<String>> {
        let i = if i < 0 { len + i } else { i };
        (0..len)
            .contains(&i)
            .then(|| vec![hosts[i as usize].clone()])
    };
    match sub {
        Subscript::Index(i) => index(i),
        // `end` 0 is falsy in Python: Ansible then takes the single host at `start`.
        Subscript::Range(start, 0) => index(start),
        Subscript::Range(start, end) => {
            let end = if end == -1 { len - 1 } else { end };
            let stop = end.saturating_add(1).min(len);
            let start = start.min(len);
            Some(if start < stop {
                hosts[start as usize..stop as usize].to_vec()
            } else {
                Vec::new()
            })
        }
    }
}

/// Ansible's `_enumerate_matches`: groups whose name matches (all their hosts), and hosts whose
/// name matches when no group did or the pattern is a glob/regex.
fn enumerate(inv: &Inventory, pattern: &str) -> Result<Vec<String>> {
    let matcher = compile(pattern)?;
    let mut results = Vec::new();
    let groups: Vec<&String> = inv.groups.keys().filter(|g| matcher.is_match(g)).collect();
    for g in &groups {
        results.extend(inv.group_hosts(g));
    }
    if groups.is_empty() || pattern.starts_with('~') || pattern.contains(['.', '?', '*', '[']) {
        results.extend(
            inv.hosts
                .values()
                .filter(|h| !h.implicit && matcher.is_match(&h.name))
                .map(|h| h.name.clone()),
        );
    }
    if results.is_empty() && LOCALHOST_NAMES.contains(&pattern) {
        results.push(pattern.to_string());
    }
    Ok(results)
}

/// `~regex` (matched at the start, like Python's `re.match`) or a shell glob (whole name).
fn compile(pattern: &str) -> Result<Regex> {
    let source = match pattern.strip_prefix('~') {
        Some(re) => format!("^(?:{re})"),
        None => glob_to_regex(pattern),
    };
    regex::RegexBuilder::new(&source)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            Diag::input(format!("invalid host pattern `{pattern}`: {e}")).hint(
                "`~` patterns are regular expressions (Rust `regex` syntax: no look-around or back-references); others are shell globs",
            )
        })
}

/// Python's `fnmatch.fnmatchcase`: whether `name` matches the shell glob `pattern`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    regex::Regex::new(&glob_to_regex(pattern)).is_ok_and(|re| re.is_match(name))
}

/// Python's `fnmatch.translate`, written for the `regex` crate's syntax.
pub(super) fn glob_to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::from("(?s)^(?:");
    let mut i = 0;
    let mut last_star = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '*' {
            if !last_star {
                out.push_str(".*");
            }
            last_star = true;
            continue;
        }
        last_star = false;
        match c {
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str(r"\[");
                } else {
                    out.push_str(&glob_class(&chars[i..j]));
                    i = j + 1;
                }
            }
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push_str(")$");
    out
}

/// The inside of a glob `[...]` as a regex class; every non-alphanumeric character is written
/// as `\x{..}` so nothing in it is read as class syntax.
fn glob_class(stuff: &[char]) -> String {
    let (negate, body) = match stuff.first() {
        Some('!') => (true, &stuff[1..]),
        _ => (false, stuff),
    };
    if body.is_empty() {
        // `[!]` matches any character (Python: "negated empty range").
        return if negate { ".".into() } else { r"\b\B".into() };
    }
    let lit = |c: char| {
        if c.is_alphanumeric() {
            c.to_string()
        } else {
            format!("\\x{{{:X}}}", c as u32)
        }
    };
    let mut items = String::new();
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            let (a, b) = (body[k], body[k + 2]);
            // Python drops reversed ranges like `z-a`.
            if a <= b {
                items.push_str(&format!("{}-{}", lit(a), lit(b)));
            }
            k += 3;
        } else {
            items.push_str(&lit(body[k]));
            k += 1;
        }
    }
    match (items.is_empty(), negate) {
        (true, false) => r"\b\B".into(),
        (true, true) => ".".into(),
        (false, false) => format!("[{items}]"),
        (false, true) => format!("[^{items}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_regexes_compile() {
        assert!(BRACKETED_HOSTPORT.is_some());
        assert!(HOSTPORT.is_some());
        assert!(LABEL.is_some());
        assert!(SPLIT_COLON.is_some());
        assert!(SUBSCRIPT.is_some());
    }

    #[test]
    fn splits_like_ansible() {
        assert_eq!(split_pattern("a:b:&c:!d"), ["a", "b", "&c", "!d"]);
        assert_eq!(split_pattern("a, b ,c:d"), ["a", "b", "c:d"]);
        assert_eq!(split_pattern("web[1:3]"), ["web[1:3]"]);
        assert_eq!(split_pattern("web*[1:3]:db"), ["web*[1:3]", "db"]);
        assert_eq!(split_pattern("fe80::1"), ["fe80::1"]);
        assert_eq!(split_pattern("host:22"), ["host:22"]);
        assert_eq!(split_pattern("  "), Vec::<String>::new());
        assert_eq!(order_terms(split_pattern("!a:&b:c")), ["c", "&b", "!a"]);
        assert_eq!(order_terms(split_pattern("!a")), ["all", "!a"]);
    }

    #[test]
    fn parses_addresses() {
        assert_eq!(
            parse_address("web1:2222"),
            Some(("web1".into(), Some("2222".into())))
        );
        assert_eq!(
            parse_address("[fe80::1]:22"),
            Some(("fe80::1".into(), Some("22".into())))
        );
        assert_eq!(
            parse_address("web[01:03].lab"),
            Some(("web[01:03].lab".into(), None))
        );
        assert_eq!(parse_address("10.0.0.1"), Some(("10.0.0.1".into(), None)));
        assert_eq!(parse_address("web-"), None);
        assert_eq!(parse_address("a:b"), None);
        assert_eq!(parse_address("web*"), None);
    }

    #[test]
    fn globs_translate() {
        let m = |g: &str, s: &str| Regex::new(&glob_to_regex(g)).unwrap().is_match(s);
        assert!(m("web*", "web1"));
        assert!(m("web*", "web"));
        assert!(!m("web*", "xweb"));
        assert!(m("w?b", "wab"));
        assert!(!m("w?b", "wb"));
        assert!(m("[ab]*", "bob"));
        assert!(!m("[!ab]*", "bob"));
        assert!(m("n[0-9]", "n5"));
        assert!(!m("n[0-9]", "n55"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("x[", "x["));
        assert!(m("[&-]x", "-x"));
        assert!(!m("[z-a]x", "ax"));
    }

    #[test]
    fn subscripts_follow_python() {
        let hosts: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let sub = |p: &str| apply_subscript(hosts.clone(), split_subscript(p).1);
        assert_eq!(sub("g[0]").unwrap(), ["a"]);
        assert_eq!(sub("g[-1]").unwrap(), ["d"]);
        assert_eq!(sub("g[1:2]").unwrap(), ["b", "c"]);
        assert_eq!(sub("g[2:]").unwrap(), ["c", "d"]);
        assert_eq!(sub("g[1:99]").unwrap(), ["b", "c", "d"]);
        assert_eq!(sub("g[2:0]").unwrap(), ["c"]);
        assert_eq!(sub("g[3:1]").unwrap(), Vec::<String>::new());
        assert!(sub("g[4]").is_none());
        assert!(sub("g[-5]").is_none());
        assert!(sub("g[99999999999999999999]").is_none());
        assert_eq!(split_subscript("~web[0]").1, None);
    }
}
