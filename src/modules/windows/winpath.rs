//! Windows path strings as the Windows modules handle them on the controller: both `\` and `/`
//! separate, names compare case-insensitively. Only string work: what a path means on the host
//! is for the host to say.

/// A path separator on Windows.
pub fn is_sep(c: char) -> bool {
    c == '\\' || c == '/'
}

/// `C:\dir\` or `C:/dir/`: the user means a directory.
pub fn has_trailing_sep(p: &str) -> bool {
    p.ends_with(is_sep)
}

fn trim_end(p: &str) -> &str {
    let t = p.trim_end_matches(is_sep);
    // Keep the root of `C:\` and `\`.
    if t.len() == 2 && t.ends_with(':') {
        t
    } else if t.is_empty() && !p.is_empty() {
        &p[..1]
    } else {
        t
    }
}

/// `base` + `\` + `rel`, with `/` in `rel` turned into `\`.
pub fn join(base: &str, rel: &str) -> String {
    let rel = rel.trim_start_matches(is_sep).replace('/', "\\");
    let b = trim_end(base);
    if b.is_empty() {
        return rel;
    }
    if b.ends_with(is_sep) {
        format!("{b}{rel}")
    } else {
        format!("{b}\\{rel}")
    }
}

/// The directory holding `p` (`[IO.Path]::GetDirectoryName`), or None for a root or a bare name.
pub fn parent(p: &str) -> Option<String> {
    let t = trim_end(p);
    let i = t.rfind(is_sep)?;
    let head = &t[..i];
    if head.is_empty() {
        return Some(t[..1].to_string());
    }
    if head.len() == 2 && head.ends_with(':') {
        return Some(format!("{head}\\"));
    }
    Some(head.to_string())
}

/// The last component of `p` (trailing separators ignored).
pub fn leaf(p: &str) -> String {
    let t = trim_end(p);
    t.rsplit(is_sep).next().unwrap_or(t).to_string()
}

/// A key for comparing paths the way Windows does (case-insensitive, either separator).
pub fn key(p: &str) -> String {
    trim_end(p).replace('/', "\\").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_parents() {
        assert_eq!(join("C:\\app", "a.txt"), "C:\\app\\a.txt");
        assert_eq!(join("C:\\app\\", "sub/a.txt"), "C:\\app\\sub\\a.txt");
        assert_eq!(join("C:/app/", "a"), "C:/app\\a");
        assert_eq!(join("C:\\", "a"), "C:\\a");
        assert_eq!(parent("C:\\app\\a.txt").as_deref(), Some("C:\\app"));
        assert_eq!(parent("C:\\app\\").as_deref(), Some("C:\\"));
        assert_eq!(parent("C:\\app").as_deref(), Some("C:\\"));
        assert_eq!(parent("C:\\"), None);
        assert_eq!(parent("\\x").as_deref(), Some("\\"));
        assert_eq!(parent("name"), None);
        assert_eq!(leaf("C:\\app\\dir\\"), "dir");
        assert_eq!(leaf("C:/a/b.zip"), "b.zip");
        assert!(has_trailing_sep("C:\\x\\") && has_trailing_sep("C:/x/"));
        assert_eq!(key("C:/App/Ä\\"), "c:\\app\\ä");
    }

    #[test]
    fn odd_names_stay_exact() {
        let odd = "it's \"q\" $x `b` é 名";
        assert_eq!(join("C:\\d", odd), format!("C:\\d\\{odd}"));
        assert_eq!(leaf(&join("C:\\d", odd)), odd);
    }
}
