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

/// Joins words into a command line that `sh` splits back into exactly those words.
pub fn join(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_sh() {
        let words = vec![
            "printf".to_string(),
            "%s|".into(),
            "a b".into(),
            "it's".into(),
            "$HOME".into(),
            "".into(),
        ];
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(join(&words))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's|$HOME||");
    }
}
