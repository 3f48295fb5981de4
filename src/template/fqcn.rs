//! Collection-qualified filter and test names (`x | ansible.utils.ipwrap`,
//! `x is ansible.builtin.match`): Jinja's grammar has no dotted filter names, so the
//! collection prefix is dropped before compiling and the short name resolves as usual (or is
//! reported unknown by the check walk).

use std::borrow::Cow;

/// Collections whose filters and tests mixop implements under their short names.
const COLLECTIONS: &[&str] = &[
    "ansible.builtin.",
    "ansible.legacy.",
    "ansible.utils.",
    "ansible.netcommon.",
    "ansible.windows.",
    "ansible.posix.",
    "community.general.",
];

/// Drops collection prefixes after `|` and after `is` / `is not`, in code only: inside
/// `{{ }}` and `{% %}`, or everywhere when `expr` (a bare expression such as `when:`), never in
/// string literals.
pub(crate) fn strip_collections(src: &str, expr: bool) -> Cow<'_, str> {
    if !COLLECTIONS.iter().any(|c| src.contains(c)) {
        return Cow::Borrowed(src);
    }
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut in_code = expr;
    let mut quote: Option<u8> = None;
    // The last code token before this point: a `|`, the word `is`/`not` after `is`, or other.
    let mut after_pipe_or_is = false;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &src[i..];
        if !in_code {
            if rest.starts_with("{{") || rest.starts_with("{%") {
                in_code = true;
                after_pipe_or_is = false;
                out.push_str(&rest[..2]);
                i += 2;
                continue;
            }
        } else if let Some(q) = quote {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                out.push_str(&src[i..i + 2]);
                i += 2;
                continue;
            }
            if bytes[i] == q {
                quote = None;
            }
        } else if !expr && (rest.starts_with("}}") || rest.starts_with("%}")) {
            in_code = false;
            out.push_str(&rest[..2]);
            i += 2;
            continue;
        } else {
            match bytes[i] {
                b'\'' | b'"' => {
                    quote = Some(bytes[i]);
                    after_pipe_or_is = false;
                }
                b'|' => {
                    after_pipe_or_is = true;
                    out.push('|');
                    i += 1;
                    continue;
                }
                c if c.is_ascii_whitespace() => {
                    out.push(c as char);
                    i += 1;
                    continue;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let end = rest
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                        .unwrap_or(rest.len());
                    let word = &rest[..end];
                    let prev_is_dot = i > 0 && bytes[i - 1] == b'.';
                    let stripped = if after_pipe_or_is && !prev_is_dot {
                        COLLECTIONS.iter().find_map(|c| {
                            word.strip_prefix(c)
                                .filter(|s| !s.is_empty() && !s.contains('.'))
                        })
                    } else {
                        None
                    };
                    out.push_str(stripped.unwrap_or(word));
                    after_pipe_or_is =
                        word == "is" || (word == "not" && last_word(&out[..out.len() - 3]) == "is");
                    i += end;
                    continue;
                }
                _ => after_pipe_or_is = false,
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    Cow::Owned(out)
}

/// The word before the end of `s` (skipping whitespace).
fn last_word(s: &str) -> &str {
    let t = s.trim_end();
    let start = t
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |p| p + 1);
    &t[start..]
}

#[cfg(test)]
mod tests {
    use super::strip_collections as s;

    #[test]
    fn collection_prefixes_are_dropped_in_code_only() {
        assert_eq!(
            s("{{ a | ansible.utils.ipwrap }}", false),
            "{{ a | ipwrap }}"
        );
        assert_eq!(
            s(
                "{{ a|ansible.builtin.to_json(indent=2) | community.general.json_query('x') }}",
                false
            ),
            "{{ a|to_json(indent=2) | json_query('x') }}"
        );
        assert_eq!(
            s(
                "x is ansible.builtin.match('a') and y is not ansible.builtin.defined",
                true
            ),
            "x is match('a') and y is not defined"
        );
        // Strings, text outside blocks and attribute paths are left alone.
        assert_eq!(
            s(
                "echo a | ansible.utils.x {{ 'b | ansible.utils.ipwrap' }}",
                false
            ),
            "echo a | ansible.utils.x {{ 'b | ansible.utils.ipwrap' }}"
        );
        assert_eq!(s("{{ ansible.utils.x }}", false), "{{ ansible.utils.x }}");
        assert_eq!(
            s(
                "{% if a is ansible.builtin.string %}{{ a | ansible.builtin.upper }}{% endif %}",
                false
            ),
            "{% if a is string %}{{ a | upper }}{% endif %}"
        );
        assert_eq!(s("a | my.coll.f", true), "a | my.coll.f");
    }
}
