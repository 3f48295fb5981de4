//! known_hosts lookup and host key policies (OpenSSH's `StrictHostKeyChecking`).
//!
//! russh ships a `known_hosts` helper, but it splits lines on single spaces only, stops at the
//! first same-type key that differs (OpenSSH accepts a host when *any* line matches), miscounts
//! line numbers after comments, fails the whole file on one unknown key type and ignores
//! markers and wildcards. Our messages must name the exact file:line to fix, so we parse here.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha1::{Digest, Sha1};

/// What to do with a host key that is not (or not identically) in known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Unknown and mismatched keys are refused (OpenSSH `yes`, Ansible's default).
    Strict,
    /// Unknown keys are recorded in the first known_hosts file; mismatches are refused.
    AcceptNew,
    /// No checking at all (OpenSSH `no`/`off`, Ansible `host_key_checking = False`).
    Off,
}

impl HostKeyPolicy {
    /// Parses the values OpenSSH and Ansible accept (`yes`/`no`/`accept-new`/`off`, booleans).
    pub fn parse(s: &str) -> Option<HostKeyPolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "strict" | "yes" | "true" | "on" | "1" | "ask" => Some(HostKeyPolicy::Strict),
            "accept-new" | "accept_new" | "acceptnew" => Some(HostKeyPolicy::AcceptNew),
            "off" | "no" | "false" | "0" | "none" => Some(HostKeyPolicy::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Off => "off",
        }
    }
}

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The outcome of looking a server key up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A line for this host records exactly this key.
    Known(Location),
    /// Lines for this host record keys of the same type, none of them this one.
    Mismatch(Location),
    /// A `@revoked` line lists this key.
    Revoked(Location),
    /// No line for this host records a key of this type.
    Unknown,
}

/// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// One usable line of a known_hosts file.
#[derive(Debug)]
struct Entry {
    line: usize,
    marker: Marker,
    patterns: String,
    key_type: String,
    blob: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

fn parse_file(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            m if m.starts_with('@') => continue,
            _ => Marker::None,
        };
        if marker != Marker::None {
            match fields.next() {
                Some(f) => first = f,
                None => continue,
            }
        }
        let (Some(key_type), Some(b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        // Lines we cannot decode are skipped, as OpenSSH does, instead of failing the file.
        let Ok(blob) = STANDARD.decode(b64) else {
            continue;
        };
        out.push(Entry {
            line: i + 1,
            marker,
            patterns: first.to_string(),
            key_type: key_type.to_string(),
            blob,
        });
    }
    out
}

/// The key type named inside a public key blob (its first SSH string).
pub fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(sha2::Sha256::digest(blob))
    )
}

/// HMAC-SHA1 (RFC 2104) for hashed host names; written out to avoid a second sha1/hmac
/// version in the build just for 20 bytes of output.
fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// OpenSSH's `match_pattern`: `*` and `?` wildcards, case-insensitive. Matched greedily with one
/// backtrack point (the last `*`), which is linear per star instead of the exponential recursion
/// a pattern like `*a*a*a*a*b` would cost.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last star swallow one more byte and retry from there.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn hashed_match(entry: &str, name: &str) -> bool {
    let mut parts = entry.trim_start_matches("|1|").splitn(2, '|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    match (STANDARD.decode(salt), STANDARD.decode(hash)) {
        (Ok(salt), Ok(hash)) => hmac_sha1(&salt, name.as_bytes()).as_slice() == hash.as_slice(),
        _ => false,
    }
}

/// Whether a comma-separated host pattern list selects `name`: some positive pattern matches and
/// no negated one does.
fn patterns_match(patterns: &str, name: &str) -> bool {
    if patterns.starts_with("|1|") {
        return hashed_match(patterns, name);
    }
    let mut matched = false;
    for pat in patterns.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if glob_match(neg.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob_match(pat.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// Looks `key_blob` up for `name` (see [`lookup_name`]) in `files`, in order. Files that do not
/// exist are skipped. Revocations are looked for first, in every file, as OpenSSH does
/// (`check_key_not_revoked`): a `@revoked` line wins wherever it is, even after a line that
/// records the same key as known.
pub fn lookup(files: &[PathBuf], name: &str, key_blob: &[u8]) -> Lookup {
    let key_type = blob_key_type(key_blob).unwrap_or("");
    let parsed: Vec<(&PathBuf, Vec<Entry>)> = files
        .iter()
        .filter_map(|f| Some((f, parse_file(&std::fs::read_to_string(f).ok()?))))
        .collect();
    for (file, entries) in &parsed {
        if let Some(e) = entries.iter().find(|e| {
            e.marker == Marker::Revoked && e.blob == key_blob && patterns_match(&e.patterns, name)
        }) {
            return Lookup::Revoked(Location {
                file: (*file).clone(),
                line: e.line,
            });
        }
    }
    let mut mismatch = None;
    for (file, entries) in &parsed {
        for e in entries {
            if e.marker != Marker::None || !patterns_match(&e.patterns, name) {
                continue;
            }
            let loc = || Location {
                file: (*file).clone(),
                line: e.line,
            };
            if e.blob == key_blob {
                return Lookup::Known(loc());
            }
            let recorded_type = blob_key_type(&e.blob).unwrap_or(&e.key_type);
            if recorded_type == key_type && mismatch.is_none() {
                mismatch = Some(loc());
            }
        }
    }
    match mismatch {
        Some(loc) => Lookup::Mismatch(loc),
        None => Lookup::Unknown,
    }
}

/// Key types recorded for `name`, in file order, so the client can ask the server for a key type
/// it already knows (as OpenSSH does) instead of being refused for presenting another type.
pub fn known_key_types(files: &[PathBuf], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for e in parse_file(&text) {
            if e.marker == Marker::None && patterns_match(&e.patterns, name) {
                let t = blob_key_type(&e.blob).unwrap_or(&e.key_type).to_string();
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// Serialises appends from many hosts connecting at once.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// Holds an exclusive `flock` on a file until dropped (closing the file releases it).
struct FileLock<'a>(&'a std::fs::File);

impl<'a> FileLock<'a> {
    fn exclusive(f: &'a std::fs::File) -> std::io::Result<FileLock<'a>> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: flock on a descriptor we own for the lifetime of the guard.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A host name hashed as `ssh-keygen -H` / `HashKnownHosts yes` write it:
/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` with a random 20-byte salt.
fn hash_name(name: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut salt = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let mac = hmac_sha1(&salt, name.as_bytes());
    Ok(format!(
        "|1|{}|{}",
        STANDARD.encode(salt),
        STANDARD.encode(mac)
    ))
}

/// Appends `name keytype base64` to `file` (creating it and its directory, mode 0700) and
/// returns its line number. The file is locked (`flock`) from reading to writing, so other
/// mixop processes recording keys at the same time neither interleave nor duplicate lines; a
/// key already recorded for `name` is not written again. When the file already holds hashed
/// host names (`HashKnownHosts`), the new name is hashed too.
pub fn append(file: &Path, name: &str, key_blob: &[u8]) -> std::io::Result<usize> {
    use std::io::Read;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    let _lock = FileLock::exclusive(&f)?;
    let mut existing = Vec::new();
    (&f).read_to_end(&mut existing)?;
    let entries = parse_file(&String::from_utf8_lossy(&existing));
    if let Some(e) = entries.iter().find(|e| {
        e.marker == Marker::None && e.blob == key_blob && patterns_match(&e.patterns, name)
    }) {
        // Recorded meanwhile (another process connecting to the same host).
        return Ok(e.line);
    }
    let host = if entries.iter().any(|e| e.patterns.starts_with("|1|")) {
        hash_name(name)?
    } else {
        name.to_string()
    };
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        line.push('\n');
    }
    let key_type = blob_key_type(key_blob).unwrap_or("ssh-unknown");
    line.push_str(&format!(
        "{host} {key_type} {}\n",
        STANDARD.encode(key_blob)
    ));
    // One write call for the whole line.
    (&f).write_all(line.as_bytes())?;
    let lines = existing.iter().filter(|&&b| b == b'\n').count();
    Ok(lines
        + if existing.ends_with(b"\n") || existing.is_empty() {
            1
        } else {
            2
        })
}

#[cfg(test)]
mod tests {

    #[test]
    fn glob_match_as_openssh_and_in_linear_time() {
        for (pat, name, want) in [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("lab?", "lab1", true),
            ("lab?", "lab12", false),
            ("*.LAB", "win1.lab", true),
            ("w*1*", "win1.lab", true),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xaxxbc", false),
            ("a*", "b", false),
            ("**", "abc", true),
            ("*?", "", false),
        ] {
            assert_eq!(glob_match(pat.as_bytes(), name.as_bytes()), want, "{pat} ~ {name}");
        }
        // Exponential with naive recursion (2^20 paths); instant here.
        let t0 = std::time::Instant::now();
        let pat = format!("{}b", "*a".repeat(20));
        assert!(!glob_match(pat.as_bytes(), "a".repeat(60).as_bytes()));
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    }
    use super::*;

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (kind.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind.as_bytes());
        v.extend_from_slice(body);
        v
    }

    fn line(hosts: &str, b: &[u8]) -> String {
        format!(
            "{hosts} {} {}\n",
            blob_key_type(b).unwrap_or(""),
            STANDARD.encode(b)
        )
    }

    #[test]
    fn hmac_matches_rfc2202() {
        // RFC 2202 test case 2.
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        // Test case 6: key longer than the block size.
        let mac = hmac_sha1(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(hex::encode(mac), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    }

    #[test]
    fn lookup_plain_port_hashed_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        let a = blob("ssh-ed25519", b"AAAA");
        let b = blob("ssh-ed25519", b"BBBB");
        let r = blob("ssh-rsa", b"RRRR");
        // A hashed entry for "[10.0.0.5]:2222", made the way ssh-keygen -H does.
        let salt = [7u8; 20];
        let hash = hmac_sha1(&salt, b"[10.0.0.5]:2222");
        let hashed = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash));
        let text = format!(
            "# comment\n\n{}{}@cert-authority * {}{}{}",
            line("web1,10.0.0.1", &a),
            line("[10.0.0.2]:2200", &b),
            line("", &a).trim_start(),
            line(&hashed, &b),
            line("db\t", &r).replace("db\t ", "db\t"),
        );
        std::fs::write(&f, text).unwrap();
        let files = vec![f.clone()];
        assert_eq!(
            lookup(&files, "10.0.0.1", &a),
            Lookup::Known(Location {
                file: f.clone(),
                line: 3
            })
        );
        // Same type, different key: mismatch names the line to fix.
        assert_eq!(
            lookup(&files, "web1", &b),
            Lookup::Mismatch(Location {
                file: f.clone(),
                line: 3
            })
        );
        // Port 22 entries do not cover other ports.
        assert_eq!(lookup(&files, "[10.0.0.1]:2200", &a), Lookup::Unknown);
        assert!(matches!(
            lookup(&files, "[10.0.0.2]:2200", &b),
            Lookup::Known(_)
        ));
        assert_eq!(
            lookup(&files, "[10.0.0.5]:2222", &b),
            Lookup::Known(Location {
                file: f.clone(),
                line: 6
            })
        );
        assert_eq!(lookup(&files, "[10.0.0.6]:2222", &b), Lookup::Unknown);
        // A key of another type than the recorded one is unknown, not a mismatch.
        assert_eq!(lookup(&files, "web1", &r), Lookup::Unknown);
        assert_eq!(known_key_types(&files, "web1"), vec!["ssh-ed25519"]);
    }

    #[test]
    fn any_matching_line_wins_and_revoked_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kh");
        let a = blob("ecdsa-sha2-nistp256", b"A");
        let b = blob("ecdsa-sha2-nistp256", b"B");
        std::fs::write(&f, format!("{}{}", line("h", &b), line("h", &a))).unwrap();
        assert!(
            matches!(lookup(std::slice::from_ref(&f), "h", &a), Lookup::Known(l) if l.line == 2)
        );
        std::fs::write(&f, format!("@revoked * {}", line("", &a).trim_start())).unwrap();
        assert!(
            matches!(lookup(std::slice::from_ref(&f), "h", &a), Lookup::Revoked(l) if l.line == 1)
        );
        // A revocation after a line that records the key as known still wins.
        std::fs::write(
            &f,
            format!("{}@revoked * {}", line("h", &a), line("", &a).trim_start()),
        )
        .unwrap();
        assert!(
            matches!(lookup(std::slice::from_ref(&f), "h", &a), Lookup::Revoked(l) if l.line == 2)
        );
        // ... and in a later file too; a revocation of another key changes nothing.
        let known = dir.path().join("user");
        let system = dir.path().join("system");
        std::fs::write(&known, line("h", &a)).unwrap();
        std::fs::write(
            &system,
            format!(
                "@revoked * {}@revoked h {}",
                line("", &b).trim_start(),
                line("", &a).trim_start()
            ),
        )
        .unwrap();
        let both = vec![known.clone(), system.clone()];
        assert_eq!(
            lookup(&both, "h", &a),
            Lookup::Revoked(Location {
                file: system.clone(),
                line: 2
            })
        );
        // The revoked line's host patterns apply: for another host it is not revoked.
        assert!(matches!(lookup(&both, "other", &a), Lookup::Unknown));
        assert!(matches!(lookup(&both, "h", &b), Lookup::Revoked(_)));
    }

    #[test]
    fn appends_follow_hashed_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        let a = blob("ssh-ed25519", b"A");
        let b = blob("ssh-ed25519", b"B");
        // A file of plain names gets a plain name.
        std::fs::write(&f, line("plain", &a)).unwrap();
        assert_eq!(append(&f, "[h]:2222", &b).unwrap(), 2);
        assert!(
            std::fs::read_to_string(&f)
                .unwrap()
                .contains("[h]:2222 ssh-ed25519")
        );
        // A hashed file gets a hashed name, which lookups find.
        let salt = [9u8; 20];
        let hashed = format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(hmac_sha1(&salt, b"old"))
        );
        std::fs::write(&f, line(&hashed, &a)).unwrap();
        assert_eq!(append(&f, "[h]:2222", &b).unwrap(), 2);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("[h]:2222"), "{text}");
        let last = text.lines().last().unwrap();
        assert!(last.starts_with("|1|"), "{text}");
        assert!(
            matches!(lookup(std::slice::from_ref(&f), "[h]:2222", &b), Lookup::Known(l) if l.line == 2)
        );
        assert_eq!(
            lookup(std::slice::from_ref(&f), "[h]:2223", &b),
            Lookup::Unknown
        );
        // Recording the same key again does not duplicate it.
        assert_eq!(append(&f, "[h]:2222", &b).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(&f).unwrap().lines().count(), 2);
    }

    #[test]
    fn appends_wait_for_other_processes_lock() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        std::fs::write(&f, "").unwrap();
        // Another process's lock, as far as flock can tell: a separate open file description.
        let held = std::fs::File::open(&f).unwrap();
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let path = f.clone();
        let t = std::thread::spawn(move || append(&path, "h", &blob("ssh-ed25519", b"K")).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "",
            "written while locked"
        );
        drop(held);
        assert_eq!(t.join().unwrap(), 1);
        assert!(
            std::fs::read_to_string(&f)
                .unwrap()
                .starts_with("h ssh-ed25519 ")
        );
    }

    #[test]
    fn wildcards_and_negation() {
        assert!(patterns_match("*.lab,!bad.lab", "good.lab"));
        assert!(!patterns_match("*.lab,!bad.lab", "bad.lab"));
        assert!(patterns_match("10.231.?.10", "10.231.5.10"));
        assert!(!patterns_match("10.231.?.10", "10.231.15.10"));
        assert!(patterns_match("[10.231.*]:2222", "[10.231.1.1]:2222"));
    }

    #[test]
    fn append_then_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/known_hosts");
        let a = blob("ssh-ed25519", b"X");
        assert_eq!(append(&f, "[h]:2222", &a).unwrap(), 1);
        let b = blob("ssh-ed25519", b"Y");
        assert_eq!(append(&f, "g", &b).unwrap(), 2);
        assert!(
            matches!(lookup(std::slice::from_ref(&f), "[h]:2222", &a), Lookup::Known(l) if l.line == 1)
        );
        assert!(matches!(lookup(&[f], "g", &b), Lookup::Known(l) if l.line == 2));
    }

    #[test]
    fn policy_values() {
        assert_eq!(HostKeyPolicy::parse("False"), Some(HostKeyPolicy::Off));
        assert_eq!(HostKeyPolicy::parse("yes"), Some(HostKeyPolicy::Strict));
        assert_eq!(
            HostKeyPolicy::parse("accept-new"),
            Some(HostKeyPolicy::AcceptNew)
        );
        assert_eq!(HostKeyPolicy::parse("maybe"), None);
    }
}
