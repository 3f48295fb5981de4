//! Ansible Vault: encrypted values (`!vault` in YAML) and encrypted files (vars files,
//! group_vars/host_vars, inventories, `copy`/`template` sources, `lookup('file')`), decrypted on
//! the controller with the passwords of `--vault-password-file`, `--vault-id` and
//! `--ask-vault-pass`. Everything decrypted is registered with [`crate::secret`], so it is
//! masked wherever mixop prints.

mod envelope;
mod password;

use std::path::Path;
use std::sync::OnceLock;

pub use envelope::{Envelope, VaultError, is_vault};
pub use password::{Keyring, keyring_from};

use crate::diag::Diag;

static KEYRING: OnceLock<Keyring> = OnceLock::new();

/// Makes the passwords of the command line available to every loader (once, before loading).
pub fn install(keyring: Keyring) {
    let _ = KEYRING.set(keyring);
}

fn keyring() -> &'static Keyring {
    static EMPTY: OnceLock<Keyring> = OnceLock::new();
    KEYRING
        .get()
        .unwrap_or_else(|| EMPTY.get_or_init(Keyring::default))
}

/// Decrypts vault data (`what` names it in errors: a file, or a file:line:col). The password
/// labelled with the envelope's vault id (`default` for format 1.1) is tried first, then the
/// others, as Ansible does.
pub fn decrypt(data: &[u8], what: &str) -> Result<Vec<u8>, Diag> {
    decrypt_with(keyring(), data, what)
}

fn decrypt_with(keyring: &Keyring, data: &[u8], what: &str) -> Result<Vec<u8>, Diag> {
    let env = Envelope::parse(data).map_err(|e| Diag::input(format!("{what}: {e}")))?;
    let id_note = env
        .vault_id
        .as_deref()
        .map(|id| format!(" (vault id `{id}`)"))
        .unwrap_or_default();
    if keyring.is_empty() {
        return Err(Diag::input(format!(
            "{what} is encrypted with Ansible Vault{id_note}, and no vault password was given"
        ))
        .hint(
            "give one with --vault-password-file FILE, --vault-id LABEL@FILE or --ask-vault-pass",
        ));
    }
    let first = env.vault_id.as_deref().unwrap_or("default");
    for (_, password) in keyring.ordered_for(Some(first)) {
        match env.decrypt(password) {
            Ok(plain) => return Ok(plain),
            Err(VaultError::NoPasswordFits) => continue,
            Err(e) => return Err(Diag::input(format!("{what}: {e}"))),
        }
    }
    Err(Diag::input(format!(
        "cannot decrypt {what}{id_note}: no vault password given fits (tried {})",
        keyring.labels()
    ))
    .hint("the password is wrong, or the encrypted text was altered (its HMAC does not match)"))
}

/// A file's content, decrypted when it is a vault; `true` with it when it was (the text is then
/// registered as a secret, and diagnostics must not quote it).
pub fn read(path: &Path) -> Result<(Vec<u8>, bool), Diag> {
    let data = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Diag::no_such_file("file", path),
        _ => Diag::input(format!("cannot read {}: {e}", path.display())),
    })?;
    if !is_vault(&data) {
        return Ok((data, false));
    }
    let plain = decrypt(&data, &path.display().to_string())?;
    // Text up to the size a diff may show is what can reach the output whole.
    if plain.len() <= crate::modules::source::MAX_DIFF_BYTES as usize
        && let Ok(text) = std::str::from_utf8(&plain)
    {
        crate::secret::register(text);
    }
    Ok((plain, true))
}

/// As [`read`], for files that must be UTF-8 text.
pub fn read_text(path: &Path) -> Result<(String, bool), Diag> {
    let (data, secret) = read(path)?;
    let text = String::from_utf8(data)
        .map_err(|_| Diag::input(format!("{}: not UTF-8 text", path.display())))?;
    Ok((text, secret))
}

/// Is this file a vault? (Reads only the header.)
pub fn is_vault_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; envelope::HEADER.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| is_vault(&head))
}

/// An inline `!vault` value: its plaintext (a string, as in Ansible), registered as a secret.
pub fn decrypt_value(ciphertext: &str, what: &str) -> Result<String, Diag> {
    let plain = decrypt(ciphertext.trim_start().as_bytes(), what)?;
    let text = String::from_utf8(plain)
        .map_err(|_| Diag::input(format!("{what}: the decrypted value is not UTF-8 text")))?;
    crate::secret::register(&text);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: &str = include_str!("../../tests/fixtures/vault/prod-1.2.txt");

    #[test]
    fn the_matching_id_first_then_the_others() {
        let ring = Keyring::from_pairs(&[("dev", "nope"), ("prod", "correct horse")]);
        assert_eq!(
            decrypt_with(&ring, PROD.as_bytes(), "x").unwrap(),
            b"s3cr3t-token"
        );
        // A label is only a hint: a password under another label still opens it.
        let ring = Keyring::from_pairs(&[("default", "correct horse")]);
        assert!(decrypt_with(&ring, PROD.as_bytes(), "x").is_ok());
    }

    #[test]
    fn errors_name_the_file_and_the_vault_id() {
        let ring = Keyring::from_pairs(&[("default", "wrong"), ("dev", "also wrong")]);
        let e = decrypt_with(&ring, PROD.as_bytes(), "group_vars/all.yml").unwrap_err();
        assert_eq!(e.kind, crate::diag::DiagKind::Input);
        assert_eq!(
            e.message,
            "cannot decrypt group_vars/all.yml (vault id `prod`): no vault password given fits (tried `default`, `dev`)"
        );
        let e = decrypt_with(&Keyring::default(), PROD.as_bytes(), "f.yml").unwrap_err();
        assert!(e.message.contains("no vault password was given"), "{e}");
    }
}
