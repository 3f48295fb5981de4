//! URL helpers shared by `get_url` and `win_get_url`: the file name a download gets, masking
//! credentials for results and messages, checksum normalization.

use super::ModError;

/// Ansible's normalization: drop non-word characters, lowercase, must be hex.
pub fn normalize_hex(v: &str) -> Result<String, ModError> {
    let hex: String = v
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ModError::msg("The checksum format is invalid"));
    }
    Ok(hex)
}

/// The file name a URL gives a download into a directory (Ansible's `url_filename`).
pub fn url_filename(url: &str) -> String {
    let no_frag = url.split(['?', '#']).next().unwrap_or(url);
    let path = match no_frag.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => no_frag,
    };
    let base = path.rsplit('/').next().unwrap_or("");
    let name = percent_decode(base);
    if name.is_empty() || name == "." || name == ".." {
        "index.html".into()
    } else {
        name
    }
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace('/', "_")
}

/// The URL with any `user:password@` removed, for results and messages.
pub fn mask_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let host_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..host_end].rfind('@') {
            return format!("{scheme}://{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

/// The file name ansible.windows.win_get_url gives a download into a directory: the last
/// segment of the URL's path, percent-decoded, or the host name when the path has none.
pub fn win_url_filename(url: &str) -> String {
    let no_frag = url.split(['?', '#']).next().unwrap_or(url);
    let (host, path) = match no_frag.split_once("://") {
        Some((_, rest)) => match rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        },
        None => ("", no_frag),
    };
    let base = percent_decode(path.rsplit('/').next().unwrap_or(""));
    if base.is_empty() {
        let host = host.rsplit('@').next().unwrap_or(host);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.split(':').next().unwrap_or(host),
        };
        host.to_string()
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_and_masks() {
        assert_eq!(url_filename("http://h/a/b.tgz?x=1"), "b.tgz");
        assert_eq!(url_filename("http://h/"), "index.html");
        assert_eq!(url_filename("http://h"), "index.html");
        assert_eq!(url_filename("http://h/my%20file"), "my file");
        assert_eq!(win_url_filename("http://h/a/b.tgz?x=1"), "b.tgz");
        assert_eq!(win_url_filename("http://u:p@h.example:8080/"), "h.example");
        assert_eq!(win_url_filename("https://h.example"), "h.example");
        assert_eq!(win_url_filename("http://[::1]:80/"), "::1");
        assert_eq!(
            win_url_filename("http://h/d/%C3%A9t%C3%A9.zip"),
            "\u{e9}t\u{e9}.zip"
        );
        assert_eq!(mask_url("https://u:p@h:8/x@y"), "https://h:8/x@y");
        assert_eq!(mask_url("https://h/x"), "https://h/x");
        assert!(normalize_hex("AB:cd").is_ok_and(|h| h == "abcd"));
        assert!(normalize_hex("xyz").is_err());
    }
}
