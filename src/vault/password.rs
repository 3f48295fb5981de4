//! Where vault passwords come from, by Ansible's rules: `--vault-id LABEL@SOURCE` (in order),
//! then `--vault-password-file FILE` (label `default`), then `--ask-vault-pass`. A SOURCE is
//! `prompt` (asked on the terminal) or a file: an executable file is run and its output is the
//! password (a script named `*-client` is given `--vault-id LABEL`, exit 2 meaning "no such
//! id"); any other file holds the password. Surrounding whitespace is not part of it.

use std::path::Path;

use crate::cli::VaultOpt;
use crate::diag::Diag;

/// The passwords given, each with its vault id label, in the order they were given.
#[derive(Default)]
pub struct Keyring {
    entries: Vec<(String, Vec<u8>)>,
}

/// Labels only: a password never reaches a debug print.
impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({})", self.labels())
    }
}

impl Keyring {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Keyring {
        Keyring {
            entries: pairs
                .iter()
                .map(|(l, p)| (l.to_string(), p.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// Passwords labelled `id` first, then the rest (a label is a hint, not a restriction:
    /// ansible-core's default, `vault_id_match = False`).
    pub(super) fn ordered_for(&self, id: Option<&str>) -> Vec<(&str, &[u8])> {
        let (mut first, rest): (Vec<_>, Vec<_>) = self
            .entries
            .iter()
            .map(|(l, p)| (l.as_str(), p.as_slice()))
            .partition(|(l, _)| Some(*l) == id);
        first.extend(rest);
        first
    }

    /// The labels, for messages: "`default`, `prod`".
    pub(super) fn labels(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for (l, _) in &self.entries {
            if !seen.contains(&l.as_str()) {
                seen.push(l);
            }
        }
        seen.iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads every password the command line names (running scripts and prompting now, before
/// anything is loaded).
pub fn keyring_from(opts: &VaultOpt) -> Result<Keyring, Diag> {
    let mut slugs: Vec<(String, String)> = opts
        .ids
        .iter()
        .map(|id| match id.split_once('@') {
            Some((label, source)) => (label.to_string(), source.to_string()),
            None => ("default".to_string(), id.clone()),
        })
        .collect();
    for f in &opts.password_files {
        slugs.push(("default".into(), f.display().to_string()));
    }
    if opts.ask {
        slugs.push(("default".into(), String::new()));
    }
    let mut entries = Vec::new();
    for (label, source) in slugs {
        let label = if label.is_empty() {
            "default".to_string()
        } else {
            label
        };
        let password = match source.as_str() {
            // `--ask-vault-pass` keeps Ansible's plain prompt (tools match on it).
            "" => prompt("Vault password: ")?,
            "prompt" => prompt(&format!("Vault password ({label}): "))?,
            file => from_file(Path::new(file), &label)?,
        };
        if password.is_empty() {
            return Err(Diag::usage(format!(
                "the vault password for `{label}` is empty"
            )));
        }
        entries.push((label, password));
    }
    Ok(Keyring { entries })
}

fn prompt(text: &str) -> Result<Vec<u8>, Diag> {
    let line = crate::secret::ask(
        text,
        "the vault password",
        "give it with --vault-password-file FILE (a file, or a script that prints it)",
    )?;
    Ok(line.trim().as_bytes().to_vec())
}

fn from_file(path: &Path, label: &str) -> Result<Vec<u8>, Diag> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        Diag::usage(format!(
            "the vault password file {} cannot be read: {e}",
            path.display()
        ))
    })?;
    if meta.is_dir() {
        return Err(Diag::usage(format!(
            "the vault password file {} is a directory",
            path.display()
        )));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        let data = std::fs::read(path).map_err(|e| {
            Diag::usage(format!(
                "the vault password file {} cannot be read: {e}",
                path.display()
            ))
        })?;
        return Ok(data.trim_ascii().to_vec());
    }
    run_script(path, label)
}

/// Runs a password script: its stdout is the password; stdin and (for plain scripts) stderr
/// stay the user's, so a script may ask for something itself.
fn run_script(path: &Path, label: &str) -> Result<Vec<u8>, Diag> {
    use std::process::{Command, Stdio};
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let client = stem.is_some_and(|s| s.ends_with("-client"));
    let mut cmd = Command::new(path);
    cmd.stdout(Stdio::piped());
    if client {
        cmd.args(["--vault-id", label]).stderr(Stdio::piped());
    }
    let out = cmd.output().map_err(|e| {
        Diag::usage(format!(
            "cannot run the vault password script {}: {e}",
            path.display()
        ))
        .hint("a password file that is not a script must not be executable")
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    match out.status.code() {
        // Ansible strips only line ends from a script's output.
        Some(0) => Ok(strip_line_ends(&out.stdout).to_vec()),
        Some(2) if client => Err(Diag::usage(format!(
            "the vault password client script {} has no password for vault id `{label}`: {stderr}",
            path.display()
        ))),
        _ => Err(Diag::usage(format!(
            "the vault password script {} failed ({}){}",
            path.display(),
            out.status,
            if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            }
        ))),
    }
}

fn strip_line_ends(b: &[u8]) -> &[u8] {
    let is_end = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = b.iter().position(|c| !is_end(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_end(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn opts(ids: &[&str], files: &[&Path]) -> VaultOpt {
        VaultOpt {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            password_files: files.iter().map(|p| p.to_path_buf()).collect(),
            ask: false,
        }
    }

    #[test]
    fn files_scripts_and_client_scripts() {
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("pw");
        std::fs::write(&plain, "  hunter2 \n\n").unwrap();
        let script = d.path().join("pw.sh");
        std::fs::write(&script, "#!/bin/sh\necho from-script\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let client = d.path().join("vault-client.sh");
        std::fs::write(
            &client,
            "#!/bin/sh\n[ \"$2\" = prod ] && { echo \"pw-for-$2\"; exit 0; }\necho \"unknown $2\" >&2; exit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o700)).unwrap();
        let id = format!("prod@{}", client.display());
        let ring = keyring_from(&opts(&[&id], &[&plain, &script])).unwrap();
        let got: Vec<(&str, &[u8])> = ring.ordered_for(None);
        assert_eq!(
            got,
            vec![
                ("prod", &b"pw-for-prod"[..]),
                ("default", &b"hunter2"[..]),
                ("default", &b"from-script"[..])
            ]
        );
        assert_eq!(ring.labels(), "`prod`, `default`");
        let id = format!("dev@{}", client.display());
        let e = keyring_from(&opts(&[&id], &[])).unwrap_err();
        assert!(
            e.message
                .contains("no password for vault id `dev`: unknown dev"),
            "{e}"
        );
    }

    #[test]
    fn bad_sources_are_usage_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = keyring_from(&opts(&[], &[&d.path().join("missing")])).unwrap_err();
        assert_eq!(e.kind, crate::diag::DiagKind::Usage);
        let empty = d.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = keyring_from(&opts(&[], &[&empty])).unwrap_err();
        assert!(e.message.contains("is empty"), "{e}");
        let failing = d.path().join("fail.sh");
        std::fs::write(&failing, "#!/bin/sh\nexit 3\n").unwrap();
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = keyring_from(&opts(&[], &[&failing])).unwrap_err();
        assert!(e.message.contains("failed"), "{e}");
    }
}
