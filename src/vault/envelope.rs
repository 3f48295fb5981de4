//! The Vault format itself, as ansible-core's `parsing/vault` writes it (format 1.1, and 1.2
//! which adds a vault id to the header):
//!
//! ```text
//! $ANSIBLE_VAULT;1.2;AES256;prod          header (the id is a label, not authenticated)
//! 3635633465...                           hex, in lines of 80: hex(salt) \n hex(hmac) \n hex(ct)
//! ```
//!
//! Keys come from PBKDF2-HMAC-SHA256 (10000 rounds, 80 bytes: AES key, HMAC key, counter
//! block); the HMAC-SHA256 of the ciphertext is checked (in constant time) before AES-256-CTR
//! decrypts it, then the PKCS#7 padding is removed. Pure functions: no files, no passwords
//! from anywhere but the caller.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use pbkdf2::sha2::Sha256;

pub const HEADER: &[u8] = b"$ANSIBLE_VAULT";
const ROUNDS: u32 = 10_000;

/// Why a vault could not be read. Messages never contain plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// Not a well-formed envelope (damaged, truncated, or not vault data at all).
    Format(String),
    /// A cipher other than AES256 (format 1.0's `AES` is long gone from Ansible too).
    Cipher(String),
    /// No password given decrypts it: a wrong password, or a file altered after encryption.
    NoPasswordFits,
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::Format(m) => write!(f, "not a valid Ansible Vault envelope: {m}"),
            VaultError::Cipher(c) => write!(f, "unsupported vault cipher `{c}` (only AES256)"),
            VaultError::NoPasswordFits => f.write_str("the HMAC check failed"),
        }
    }
}

/// A parsed envelope.
#[derive(Debug)]
pub struct Envelope {
    pub version: String,
    /// The 1.2 header's vault id, if any.
    pub vault_id: Option<String>,
    salt: Vec<u8>,
    hmac: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// Does this data start like a vault (the test Ansible applies to files and strings)?
pub fn is_vault(data: &[u8]) -> bool {
    data.starts_with(HEADER)
}

fn unhex(what: &str, text: &[u8]) -> Result<Vec<u8>, VaultError> {
    hex::decode(text).map_err(|e| VaultError::Format(format!("{what}: {e}")))
}

impl Envelope {
    pub fn parse(data: &[u8]) -> Result<Envelope, VaultError> {
        if !is_vault(data) {
            return Err(VaultError::Format("no `$ANSIBLE_VAULT` header".into()));
        }
        let mut lines = data.split(|b| *b == b'\n');
        let header = lines.next().unwrap_or_default();
        let header = std::str::from_utf8(header)
            .map_err(|_| VaultError::Format("the header is not text".into()))?;
        let fields: Vec<&str> = header.trim().split(';').map(str::trim).collect();
        if fields.len() < 3 {
            return Err(VaultError::Format(
                "the header needs `$ANSIBLE_VAULT;VERSION;CIPHER`".into(),
            ));
        }
        if fields[2] != "AES256" {
            return Err(VaultError::Cipher(fields[2].to_string()));
        }
        let vault_id = fields
            .get(3)
            .filter(|id| !id.is_empty())
            .map(|id| id.to_string());
        // The body is hex in lines of 80; YAML block scalars may leave indentation or `\r`.
        let body: Vec<u8> = lines
            .flat_map(|l| l.iter().copied())
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let inner = unhex("the body", &body)?;
        let mut parts = inner.splitn(3, |b| *b == b'\n');
        let (Some(salt), Some(hmac), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(VaultError::Format(
                "the body needs a salt, an HMAC and the ciphertext".into(),
            ));
        };
        let env = Envelope {
            version: fields[1].to_string(),
            vault_id,
            salt: unhex("the salt", salt)?,
            hmac: unhex("the HMAC", hmac)?,
            ciphertext: unhex("the ciphertext", ct)?,
        };
        if env.salt.is_empty()
            || env.ciphertext.is_empty()
            || !env.ciphertext.len().is_multiple_of(16)
        {
            return Err(VaultError::Format(
                "the ciphertext is not whole AES blocks".into(),
            ));
        }
        Ok(env)
    }

    /// Decrypts with one password: `NoPasswordFits` when the HMAC does not match.
    pub fn decrypt(&self, password: &[u8]) -> Result<Vec<u8>, VaultError> {
        let keys = derive_keys(password, &self.salt);
        let (aes_key, rest) = keys.split_at(32);
        let (hmac_key, counter) = rest.split_at(32);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(hmac_key)
            .map_err(|_| VaultError::Format("HMAC key".into()))?;
        mac.update(&self.ciphertext);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&self.hmac)
            .map_err(|_| VaultError::NoPasswordFits)?;
        let mut data = self.ciphertext.clone();
        // Python's cryptography CTR mode counts with the whole 16-byte block, big-endian.
        let mut cipher = ctr::Ctr128BE::<Aes256>::new_from_slices(aes_key, counter)
            .map_err(|_| VaultError::Format("AES key".into()))?;
        cipher.apply_keystream(&mut data);
        let pad = usize::from(*data.last().unwrap_or(&0));
        if pad == 0
            || pad > 16
            || pad > data.len()
            || !data[data.len() - pad..]
                .iter()
                .all(|b| usize::from(*b) == pad)
        {
            return Err(VaultError::Format("bad padding after decryption".into()));
        }
        data.truncate(data.len() - pad);
        Ok(data)
    }
}

/// PBKDF2 output by (password, salt), as ansible-core caches it: a file read again (for each
/// host, at load and at run time) costs no second 10000 rounds.
fn derive_keys(password: &[u8], salt: &[u8]) -> [u8; 80] {
    type Cache = Mutex<HashMap<(Vec<u8>, Vec<u8>), [u8; 80]>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let key = (password.to_vec(), salt.to_vec());
    if let Some(k) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return *k;
    }
    let mut keys = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ROUNDS, &mut keys);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, keys);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by `ansible-vault encrypt_string --vault-id prod@FILE` (ansible-core 2.19) with the
    /// password `correct horse`: the plaintext is `s3cr3t-token`.
    const PROD: &str = include_str!("../../tests/fixtures/vault/prod-1.2.txt");
    /// `ansible-vault encrypt` of tests/fixtures/vault/plain.yml, password `hunter2`, format 1.1.
    const FILE_11: &str = include_str!("../../tests/fixtures/vault/vars-1.1.yml");
    const PLAIN: &str = include_str!("../../tests/fixtures/vault/plain.yml");

    #[test]
    fn decrypts_what_ansible_vault_wrote() {
        let env = Envelope::parse(PROD.as_bytes()).unwrap();
        assert_eq!(env.version, "1.2");
        assert_eq!(env.vault_id.as_deref(), Some("prod"));
        assert_eq!(env.decrypt(b"correct horse").unwrap(), b"s3cr3t-token");
        let env = Envelope::parse(FILE_11.as_bytes()).unwrap();
        assert_eq!(env.version, "1.1");
        assert_eq!(env.vault_id, None);
        assert_eq!(env.decrypt(b"hunter2").unwrap(), PLAIN.as_bytes());
    }

    #[test]
    fn a_wrong_password_or_an_altered_byte_fails_the_hmac() {
        let env = Envelope::parse(FILE_11.as_bytes()).unwrap();
        assert_eq!(env.decrypt(b"hunter3"), Err(VaultError::NoPasswordFits));
        // One altered ciphertext byte: the HMAC no longer matches, with the right password.
        let mut env = Envelope::parse(FILE_11.as_bytes()).unwrap();
        env.ciphertext[0] ^= 1;
        assert_eq!(env.decrypt(b"hunter2"), Err(VaultError::NoPasswordFits));
    }

    #[test]
    fn envelope_errors() {
        assert!(matches!(
            Envelope::parse(b"$ANSIBLE_VAULT;1.1;AES\n00"),
            Err(VaultError::Cipher(c)) if c == "AES"
        ));
        assert!(matches!(
            Envelope::parse(b"$ANSIBLE_VAULT;1.1;AES256\nzz"),
            Err(VaultError::Format(_))
        ));
        assert!(matches!(
            Envelope::parse(b"$ANSIBLE_VAULT;1.1"),
            Err(VaultError::Format(_))
        ));
        // Indentation and CRLF line ends, as a YAML block may leave them, are fine.
        let indented: String = PROD.lines().map(|l| format!("  {l}\r\n")).collect();
        let env = Envelope::parse(indented.trim_start().as_bytes()).unwrap();
        assert_eq!(env.decrypt(b"correct horse").unwrap(), b"s3cr3t-token");
    }
}
