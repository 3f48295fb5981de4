//! Python `re` semantics on top of the `regex` crate, for lineinfile's `regexp`, `insertafter`,
//! `insertbefore` and backreference expansion in `line`.
//!
//! Ansible matches bytes patterns against lines that still end in `\n`, so:
//! - `$` (without `(?m)`) matches at the end *or before a final newline*: translated to `\n?\z`;
//! - `\w`, `\d`, `\s` and `.` are ASCII/byte-oriented (bytes regex, Unicode off);
//! - `{` that does not start a valid quantifier is a literal; `[` inside a class is a literal;
//! - look-around and backreferences inside the pattern are not supported (clear error).

use regex::bytes::{Captures, Regex, RegexBuilder};

#[derive(Debug, Clone)]
pub struct PyRegex {
    pub source: String,
    re: Regex,
}

impl PyRegex {
    pub fn new(pattern: &str) -> Result<PyRegex, String> {
        let translated = translate(pattern)?;
        let re = RegexBuilder::new(&translated)
            .unicode(false)
            .build()
            .map_err(|e| format!("invalid regular expression `{pattern}`: {e}"))?;
        Ok(PyRegex {
            source: pattern.to_string(),
            re,
        })
    }
    /// Python's `re.search` on one line (terminator included).
    pub fn search(&self, line: &[u8]) -> bool {
        self.re.is_match(line)
    }
    pub fn captures<'h>(&self, line: &'h [u8]) -> Option<Captures<'h>> {
        self.re.captures(line)
    }
    /// Every non-overlapping match, as `re.finditer` (and `re.sub`) walk them.
    pub fn captures_iter<'r, 'h>(&'r self, text: &'h [u8]) -> regex::bytes::CaptureMatches<'r, 'h> {
        self.re.captures_iter(text)
    }
    /// Whether the pattern turns on `re.MULTILINE` itself (`(?m)`), as `pattern.flags` shows.
    pub fn multiline(&self) -> bool {
        has_inline_flag(&self.source, 'm')
    }
    /// Python's `re.search` over a whole text: the first match's byte range.
    pub fn find(&self, text: &[u8]) -> Option<(usize, usize)> {
        self.re.find(text).map(|m| (m.start(), m.end()))
    }
    /// Python's `match.expand(template)`.
    pub fn expand(&self, caps: &Captures<'_>, template: &[u8]) -> Result<Vec<u8>, String> {
        expand(&self.re, caps, template)
    }
}

fn unsupported(pattern: &str, what: &str) -> String {
    format!(
        "regular expression `{pattern}` uses {what}, which mixop's regex engine does not support"
    )
}

/// Rewrites a Python pattern into an equivalent `regex` crate pattern.
pub fn translate(p: &str) -> Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let multiline = has_inline_flag(p, 'm');
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err(format!(
                        "regular expression `{p}` ends with a lone backslash"
                    ));
                };
                match n {
                    'Z' => out.push_str(r"\z"),
                    '1'..='9' => return Err(unsupported(p, "a backreference")),
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
            }
            '[' => {
                i = copy_class(&chars, i, &mut out, p)?;
            }
            '$' if !multiline => {
                out.push_str(r"(?:\n?\z)");
                i += 1;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i + 2..].iter().take(3).collect();
                if rest.starts_with('=')
                    || rest.starts_with('!')
                    || rest.starts_with("<=")
                    || rest.starts_with("<!")
                {
                    return Err(unsupported(p, "look-around"));
                }
                if rest.starts_with("P=") {
                    return Err(unsupported(p, "a named backreference"));
                }
                if rest.starts_with('#') {
                    // A comment group: skip to its closing parenthesis.
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                out.push_str("(?");
                i += 2;
            }
            '{' => {
                if let Some(len) = quantifier_len(&chars[i..]) {
                    // Python's `{,n}` is `{0,n}`.
                    if chars.get(i + 1) == Some(&',') {
                        out.push_str("{0");
                        out.extend(&chars[i + 1..i + len]);
                    } else {
                        out.extend(&chars[i..i + len]);
                    }
                    i += len;
                } else {
                    out.push_str(r"\{");
                    i += 1;
                }
            }
            '}' => {
                out.push_str(r"\}");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn has_inline_flag(p: &str, flag: char) -> bool {
    let mut rest = p;
    while let Some(at) = rest.find("(?") {
        let tail = &rest[at + 2..];
        let flags: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
            .collect();
        if flags.split('-').next().is_some_and(|on| on.contains(flag)) {
            return true;
        }
        rest = tail;
    }
    false
}

/// `{m}`, `{m,}`, `{,n}`, `{m,n}`: the length of a valid Python quantifier at the start.
fn quantifier_len(s: &[char]) -> Option<usize> {
    let close = s.iter().position(|c| *c == '}')?;
    let body: String = s[1..close].iter().collect();
    let (a, b) = match body.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (body.as_str(), None),
    };
    let digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
    let ok = match b {
        None => !a.is_empty() && digits(a),
        Some(b) => digits(a) && digits(b) && !(a.is_empty() && b.is_empty()),
    };
    ok.then_some(close + 1)
}

/// Copies a character class starting at `chars[start] == '['`, escaping what the regex crate
/// would read as nested classes or set operators. Returns the index after the class.
fn copy_class(chars: &[char], start: usize, out: &mut String, p: &str) -> Result<usize, String> {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    // A `]` right after `[` or `[^` is a literal in Python.
    if chars.get(i) == Some(&']') {
        out.push_str(r"\]");
        i += 1;
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ']' => {
                out.push(']');
                return Ok(i + 1);
            }
            '\\' => {
                let Some(&n) = chars.get(i + 1) else { break };
                out.push('\\');
                out.push(n);
                i += 2;
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                out.push_str(r"\-");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(format!(
        "regular expression `{p}` has an unterminated character set"
    ))
}

/// Python's template expansion: `\1`..`\99`, `\g<n>`, `\g<name>`, `\n`-style escapes, octal
/// escapes; unmatched groups expand to nothing.
pub fn expand(re: &Regex, caps: &Captures<'_>, template: &[u8]) -> Result<Vec<u8>, String> {
    let group = |out: &mut Vec<u8>, idx: usize| -> Result<(), String> {
        if idx >= re.captures_len() {
            return Err(format!("invalid group reference {idx} in `line`"));
        }
        if let Some(m) = caps.get(idx) {
            out.extend_from_slice(m.as_bytes());
        }
        Ok(())
    };
    let octal = |b: u8| (b'0'..=b'7').contains(&b);
    let mut out = Vec::with_capacity(template.len());
    let mut i = 0;
    while i < template.len() {
        let c = template[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&n) = template.get(i + 1) else {
            return Err("bad escape (end of pattern) in `line`".into());
        };
        i += 2;
        match n {
            b'g' => {
                if template.get(i) != Some(&b'<') {
                    return Err("missing < after \\g in `line`".into());
                }
                let end = template[i..]
                    .iter()
                    .position(|b| *b == b'>')
                    .ok_or("missing > after \\g< in `line`")?;
                let name = String::from_utf8_lossy(&template[i + 1..i + end]).into_owned();
                i += end + 1;
                match name.parse::<usize>() {
                    Ok(idx) => group(&mut out, idx)?,
                    Err(_) => {
                        let m = re
                            .capture_names()
                            .position(|x| x == Some(name.as_str()))
                            .ok_or_else(|| format!("unknown group name `{name}` in `line`"))?;
                        group(&mut out, m)?;
                    }
                }
            }
            b'0' => {
                // `\0` followed by up to two more octal digits is an octal escape.
                let mut v: u32 = 0;
                let mut k = 0;
                while k < 2 && template.get(i).is_some_and(|b| octal(*b)) {
                    v = v * 8 + u32::from(template[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push(v as u8);
            }
            b'1'..=b'9' => {
                let d2 = template.get(i).copied().filter(u8::is_ascii_digit);
                let d3 = template.get(i + 1).copied();
                if let (Some(b), Some(c3)) = (d2, d3)
                    && octal(n)
                    && octal(b)
                    && octal(c3)
                {
                    let v =
                        u32::from(n - b'0') * 64 + u32::from(b - b'0') * 8 + u32::from(c3 - b'0');
                    if v > 0o377 {
                        return Err("octal escape value outside of range 0-0o377 in `line`".into());
                    }
                    out.push(v as u8);
                    i += 2;
                } else if let Some(b) = d2 {
                    group(&mut out, usize::from(n - b'0') * 10 + usize::from(b - b'0'))?;
                    i += 1;
                } else {
                    group(&mut out, usize::from(n - b'0'))?;
                }
            }
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            x if x.is_ascii_alphabetic() => {
                return Err(format!("bad escape \\{} in `line`", x as char));
            }
            x => {
                out.push(b'\\');
                out.push(x);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(p: &str, line: &str) -> bool {
        PyRegex::new(p).unwrap().search(line.as_bytes())
    }

    fn exp(p: &str, line: &str, tpl: &str) -> String {
        let r = PyRegex::new(p).unwrap();
        let caps = r.captures(line.as_bytes()).unwrap();
        String::from_utf8(r.expand(&caps, tpl.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn dollar_matches_before_the_final_newline() {
        assert!(search("^foo$", "foo\n"));
        assert!(search("^foo$", "foo"));
        assert!(!search("^foo$", "foo\r\n"));
        assert!(search(r"^foo\r?$", "foo\r\n"));
        assert!(!search("^foo$", "foo\nbar\n"));
        assert!(search(r"foo\s*$", "foo  \n"));
        assert!(search("(?m)^bar$", "foo\nbar\n"));
    }

    #[test]
    fn python_literal_rules() {
        assert!(search(r"^\${HOME}", "${HOME}/x\n"));
        assert!(search("a{2}", "xaay"));
        assert!(search("^a{,2}b", "aab"));
        assert!(!search("^a{,1}b", "aab"));
        assert!(search("[[]x", "[x"));
        assert!(search("[]a]", "]"));
        assert!(search("[a&&b]", "&"));
        assert!(search(r"^\s*#?\s*Port\s", "#Port 22\n"));
        assert!(!search(r"\w", "é"), "\\w is ASCII for bytes patterns");
        assert!(search("é", "café\n"));
        assert!(search("a(?#comment)b", "ab"));
        assert!(search(r"x\Z", "x"));
    }

    #[test]
    fn unsupported_features_are_named() {
        assert!(PyRegex::new("(?=a)").unwrap_err().contains("look-around"));
        assert!(
            PyRegex::new(r"(a)\1")
                .unwrap_err()
                .contains("backreference")
        );
        assert!(PyRegex::new("[abc").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn templates_expand_like_python() {
        assert_eq!(exp(r"^(\w+)=(.*)$", "key=val\n", r"\2=\1"), "val=key");
        assert_eq!(
            exp(r"^(?P<k>\w+)=", "key=val\n", r"\g<k>:\g<0>"),
            "key:key="
        );
        assert_eq!(exp(r"(a)(b)?", "a", r"[\2]\1"), "[]a");
        assert_eq!(exp("(a)", "a", r"\1\n\t\\"), "a\n\t\\");
        assert_eq!(exp("(a)", "a", r"\101\0"), "A\0");
        assert_eq!(exp("(a)", "a", r"\.x"), "\\.x");
        let r = PyRegex::new("(a)").unwrap();
        let caps = r.captures(b"a").unwrap();
        assert!(r.expand(&caps, br"\2").is_err());
        assert!(r.expand(&caps, br"\q").is_err());
        assert!(r.expand(&caps, br"\g<nope>").is_err());
    }
}
