//! POSIX shell helpers shared by the Linux modules.

/// Quotes a word for `sh` (single quotes, with embedded quotes escaped).
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `sh` word that expands on the host to what Python's
/// `os.path.expanduser(os.path.expandvars(s))` gives there — what Ansible's modules do with
/// `path` arguments and with `command`'s words: `$NAME` and `${NAME}` take the environment's
/// value (and stay as written when unset), a leading `~` or `~user` the home directory; nothing
/// else is interpreted. With `glob`, `*`, `?` and `[...]` also stay active, as for Python's
/// `glob.glob` (`creates`/`removes`).
pub fn expand_word(s: &str, glob: bool) -> String {
    build_word(s, glob).0
}

/// `expand_word` with globbing, and whether a `[...]` class in it is active: sh leaves an
/// unmatched pattern as written, which for such a class is not a match in Python's terms.
pub fn glob_word(s: &str) -> (String, bool) {
    build_word(s, true)
}

fn build_word(s: &str, glob: bool) -> (String, bool) {
    let mut bracket = false;
    let mut out = String::new();
    let mut lit = String::new();
    let flush = |lit: &mut String, out: &mut String| {
        if !lit.is_empty() {
            out.push_str(&quote(lit));
            lit.clear();
        }
    };
    let b = s.as_bytes();
    let mut i = 0;
    if let Some(rest) = s.strip_prefix('~') {
        let user = rest.split('/').next().unwrap_or("");
        if user
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        {
            // The tilde prefix ends at the first unquoted `/`, so that one stays bare.
            out.push('~');
            out.push_str(user);
            i = 1 + user.len();
            if rest[user.len()..].starts_with('/') {
                out.push('/');
                i += 1;
            }
        }
    }
    while i < b.len() {
        let c = b[i];
        if c == b'$' {
            // Python's `\$(\w+|\{[^}]*\})`; a name sh cannot look up is never set in practice.
            let (name, end) = if b.get(i + 1) == Some(&b'{') {
                match s[i + 2..].find('}') {
                    Some(k) => (&s[i + 2..i + 2 + k], i + 3 + k),
                    None => ("", i + 1),
                }
            } else {
                let n = s[i + 1..]
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                (&s[i + 1..i + 1 + n], i + 1 + n)
            };
            if is_sh_name(name) {
                flush(&mut lit, &mut out);
                let written = s[i..end].replace('$', "\\$").replace('}', "\\}");
                out.push_str(&format!("\"${{{name}-{written}}}\""));
                i = end;
                continue;
            }
        } else if glob && (c == b'*' || c == b'?') {
            flush(&mut lit, &mut out);
            out.push(c as char);
            i += 1;
            continue;
        } else if glob && c == b'[' {
            // fnmatch's bracket: `[!...]` negates, a `]` right after the opening is literal.
            let mut j = i + 1;
            if b.get(j) == Some(&b'!') {
                j += 1;
            }
            if b.get(j) == Some(&b']') {
                j += 1;
            }
            if let Some(k) = s[j..].find(']') {
                let inner = &s[i + 1..j + k];
                // Only classes sh reads the same way stay active (no `[:alpha:]`-style
                // classes, which Python does not have); others are literal text.
                if inner
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._!-][".contains(&c))
                    && !inner.contains("[:")
                    && !inner.contains("[.")
                    && !inner.contains("[=")
                {
                    flush(&mut lit, &mut out);
                    bracket = true;
                    out.push_str(&s[i..=j + k]);
                    i = j + k + 1;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or_default();
        lit.push(ch);
        i += ch.len_utf8();
    }
    flush(&mut lit, &mut out);
    if out.is_empty() {
        out.push_str("''");
    }
    (out, bracket)
}

fn is_sh_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_sh() {
        let words = ["printf", "%s|", "a b", "it's", "$HOME", ""];
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's|$HOME||");
    }

    fn sh(script: &str, dir: &std::path::Path) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("HOME", "/home/u")
            .env("V", "a b*")
            .env_remove("UNSET_V")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn expanded_words_match_pythons_expanduser_expandvars() {
        let dir = tempfile::tempdir().unwrap();
        // (input, what Python's os.path.expanduser(os.path.expandvars(input)) gives)
        let cases = [
            ("$HOME/x", "/home/u/x"),
            ("${HOME}x", "/home/ux"),
            ("~", "/home/u"),
            ("~/a b", "/home/u/a b"),
            ("x~/y", "x~/y"),
            ("~nosuchuser-mixop/y", "~nosuchuser-mixop/y"),
            ("$V", "a b*"),
            ("$UNSET_V/${UNSET_V}", "$UNSET_V/${UNSET_V}"),
            ("$1 ${} $ ${a b}", "$1 ${} $ ${a b}"),
            ("it's `x` $(id) \\ \"", "it's `x` $(id) \\ \""),
            ("*.txt", "*.txt"),
            ("", ""),
        ];
        std::fs::write(dir.path().join("f.txt"), "").unwrap();
        for (input, want) in cases {
            let got = sh(
                &format!("printf '%s|' {}", expand_word(input, false)),
                dir.path(),
            );
            assert_eq!(
                got,
                format!("{want}|"),
                "{input:?} as {}",
                expand_word(input, false)
            );
        }
    }

    #[test]
    fn glob_words_expand_like_python_glob() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a1.done", "a2.done", ".hidden.done", "b c.done", "x[1].log"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let cases = [
            ("*.done", "a1.done|a2.done|b c.done|"),
            ("a?.done", "a1.done|a2.done|"),
            ("a[!1].done", "a2.done|"),
            ("b c*", "b c.done|"),
            ("$HOME*", "/home/u*|"),
            // Unmatched: sh keeps the pattern as written (see `glob_word`).
            ("x[1].log", "x[1].log|"),
            ("x[[]1].log", "x[1].log|"),
            ("none*", "none*|"),
            ("$V", "a b*|"),
        ];
        for (input, want) in cases {
            let got = sh(
                &format!("printf '%s|' {}", expand_word(input, true)),
                dir.path(),
            );
            assert_eq!(got, want, "{input:?} as {}", expand_word(input, true));
        }
        assert!(glob_word("x[1].log").1 && !glob_word("a[ b]*").1 && !glob_word("*").1);
    }
}
