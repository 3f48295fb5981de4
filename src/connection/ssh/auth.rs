//! Client authentication: explicit key files, ssh-agent, default keys, password,
//! keyboard-interactive — in that order, within what the server says it accepts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::MethodKind;
use russh::client::{AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::options::SshOptions;
use super::session::ClientHandler;
use crate::connection::ConnError;

/// A decoded private key and where it came from.
#[derive(Clone)]
pub struct LoadedKey {
    pub path: PathBuf,
    pub key: Arc<PrivateKey>,
    blob: Vec<u8>,
}

/// Why a key file cannot be used; each variant's message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("private key file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read private key file {0}: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error(
        "private key file {0} is accessible by others (mode {1:04o}); OpenSSH refuses such keys: run chmod 600 {0}"
    )]
    TooOpen(PathBuf, u32),
    #[error(
        "private key file {0} is encrypted and no passphrase was given: set ansible_ssh_private_key_passphrase or the MIXOP_SSH_KEY_PASSPHRASE environment variable"
    )]
    NeedsPassphrase(PathBuf),
    #[error("cannot decrypt private key file {0}: wrong passphrase?")]
    BadPassphrase(PathBuf),
    #[error("{0} is not a private key mixop can use: {1}")]
    Invalid(PathBuf, String),
}

fn load_key_sync(path: &Path, passphrase: Option<&str>) -> Result<LoadedKey, KeyError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(path.into()));
        }
        Err(e) => return Err(KeyError::Unreadable(path.into(), e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen(path.into(), mode));
    }
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable(path.into(), e))?;
    let key = match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => k,
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let Some(pass) = passphrase else {
                return Err(KeyError::NeedsPassphrase(path.into()));
            };
            russh::keys::decode_secret_key(&text, Some(pass))
                .map_err(|_| KeyError::BadPassphrase(path.into()))?
        }
        Err(e) => return Err(KeyError::Invalid(path.into(), e.to_string())),
    };
    let blob = key
        .public_key()
        .to_bytes()
        .map_err(|e| KeyError::Invalid(path.into(), e.to_string()))?;
    Ok(LoadedKey {
        path: path.into(),
        key: Arc::new(key),
        blob,
    })
}

/// Loads a key file off the async threads (decrypting with bcrypt-pbkdf is deliberately slow).
pub async fn load_key(path: &Path, passphrase: Option<&str>) -> Result<LoadedKey, KeyError> {
    let path = path.to_path_buf();
    let pass = passphrase.map(str::to_string);
    tokio::task::spawn_blocking(move || load_key_sync(&path, pass.as_deref()))
        .await
        .unwrap_or_else(|e| {
            Err(KeyError::Invalid(
                PathBuf::from("?"),
                format!("key loader failed: {e}"),
            ))
        })
}

/// Loads the explicitly configured keys. Any problem is fatal for the host: a user who named a
/// key file wants to hear that it is unusable, not a vague authentication failure later.
pub async fn load_explicit_keys(opts: &SshOptions) -> Result<Vec<LoadedKey>, ConnError> {
    let mut keys = Vec::new();
    for path in &opts.key_files {
        let k = load_key(path, opts.key_passphrase.as_deref())
            .await
            .map_err(|e| ConnError::unreachable(format!("{}: {e}", opts.target())))?;
        keys.push(k);
    }
    Ok(keys)
}

const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// What authentication tried, for the final message.
struct Attempts {
    tried: Vec<&'static str>,
    notes: Vec<String>,
    offered: Vec<Vec<u8>>,
    methods: Vec<MethodKind>,
}

impl Attempts {
    fn note_tried(&mut self, m: &'static str) {
        if !self.tried.contains(&m) {
            self.tried.push(m);
        }
    }
    fn allows(&self, m: MethodKind) -> bool {
        self.methods.contains(&m)
    }
    fn update(&mut self, r: &AuthResult) {
        if let AuthResult::Failure {
            remaining_methods, ..
        } = r
            && !remaining_methods.is_empty()
        {
            self.methods = remaining_methods.to_vec();
        }
    }
}

fn method_name(m: &MethodKind) -> &'static str {
    m.into()
}

/// Runs the authentication sequence; returns the method that succeeded.
pub async fn authenticate(
    h: &mut Handle<ClientHandler>,
    opts: &SshOptions,
    explicit: &[LoadedKey],
) -> Result<&'static str, ConnError> {
    let user = opts.user.as_str();
    let lost = |e: russh::Error| {
        ConnError::unreachable(format!(
            "{}: connection lost during authentication: {e}",
            opts.target()
        ))
    };
    // "none" first: it tells which methods the server accepts, and does not count as a try.
    let first = h.authenticate_none(user).await.map_err(lost)?;
    let mut a = Attempts {
        tried: Vec::new(),
        notes: Vec::new(),
        offered: Vec::new(),
        methods: Vec::new(),
    };
    match &first {
        AuthResult::Success => return Ok("none"),
        AuthResult::Failure {
            remaining_methods, ..
        } => a.methods = remaining_methods.to_vec(),
    }

    // Leave room for the password under sshd's MaxAuthTries (6 by default).
    let key_budget = if opts.password.is_some() { 4 } else { 6 };
    let mut rsa_hash: Option<Option<HashAlg>> = None;

    if !opts.allow_publickey {
        a.methods.retain(|m| *m != MethodKind::PublicKey);
    }
    if a.allows(MethodKind::PublicKey) {
        for k in explicit {
            if try_key(h, user, k, &mut a, &mut rsa_hash)
                .await
                .map_err(lost)?
            {
                return Ok("publickey");
            }
        }
        if !opts.identities_only {
            if let Some(sock) = &opts.agent_socket
                && let Some(ok) = try_agent(h, user, sock, &mut a, &mut rsa_hash, key_budget).await
            {
                return ok.map_err(lost);
            }
            if let Some(home) = &opts.home {
                for name in DEFAULT_KEYS {
                    if a.offered.len() >= key_budget || !a.allows(MethodKind::PublicKey) {
                        break;
                    }
                    let path = home.join(".ssh").join(name);
                    if !path.exists() {
                        continue;
                    }
                    match load_key(&path, opts.key_passphrase.as_deref()).await {
                        Ok(k) => {
                            if try_key(h, user, &k, &mut a, &mut rsa_hash)
                                .await
                                .map_err(lost)?
                            {
                                return Ok("publickey");
                            }
                        }
                        Err(e) => a.notes.push(format!("skipped {e}")),
                    }
                }
            }
        }
    }

    if let Some(pw) = &opts.password {
        if opts.allow_password && a.allows(MethodKind::Password) {
            a.note_tried("password");
            let r = h
                .authenticate_password(user, pw.as_str())
                .await
                .map_err(lost)?;
            if r.success() {
                return Ok("password");
            }
            a.update(&r);
        }
        if opts.allow_keyboard_interactive && a.allows(MethodKind::KeyboardInteractive) {
            a.note_tried("keyboard-interactive");
            if keyboard_interactive(h, user, pw, &mut a)
                .await
                .map_err(lost)?
            {
                return Ok("keyboard-interactive");
            }
        }
    } else if a.allows(MethodKind::Password) || a.allows(MethodKind::KeyboardInteractive) {
        a.notes
            .push("no password given (set ansible_password or ansible_ssh_pass)".into());
    }

    if a.tried.is_empty() {
        a.tried.push("none");
    }
    let accepts: Vec<&str> = a
        .methods
        .iter()
        .filter(|m| **m != MethodKind::None)
        .map(method_name)
        .collect();
    let mut msg = format!(
        "authentication failed for {} (tried: {})",
        opts.target(),
        a.tried.join(", ")
    );
    if !accepts.is_empty() {
        msg.push_str(&format!("; the server accepts: {}", accepts.join(", ")));
    }
    for n in &a.notes {
        msg.push_str("; ");
        msg.push_str(n);
    }
    Err(ConnError::unreachable(msg))
}

async fn rsa_hash_for(
    h: &Handle<ClientHandler>,
    cache: &mut Option<Option<HashAlg>>,
) -> Option<HashAlg> {
    if let Some(c) = cache {
        return *c;
    }
    // No server-sig-algs extension: modern servers still take rsa-sha2-512 (ssh-rsa/SHA-1 is
    // disabled since OpenSSH 8.8), so that is the better guess.
    let hash = match h.best_supported_rsa_hash().await {
        Ok(Some(alg)) => alg,
        _ => Some(HashAlg::Sha512),
    };
    *cache = Some(hash);
    hash
}

async fn try_key(
    h: &mut Handle<ClientHandler>,
    user: &str,
    k: &LoadedKey,
    a: &mut Attempts,
    rsa_hash: &mut Option<Option<HashAlg>>,
) -> Result<bool, russh::Error> {
    if a.offered.contains(&k.blob) || !a.allows(MethodKind::PublicKey) {
        return Ok(false);
    }
    a.offered.push(k.blob.clone());
    a.note_tried("publickey");
    let hash = if k.key.algorithm().is_rsa() {
        rsa_hash_for(h, rsa_hash).await
    } else {
        None
    };
    let r = h
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(k.key.clone(), hash))
        .await?;
    tracing::debug!(key = %k.path.display(), ok = r.success(), "publickey attempt");
    a.update(&r);
    Ok(r.success())
}

/// Tries the agent's keys. `None` when nothing succeeded (and the sequence goes on).
async fn try_agent(
    h: &mut Handle<ClientHandler>,
    user: &str,
    sock: &Path,
    a: &mut Attempts,
    rsa_hash: &mut Option<Option<HashAlg>>,
    budget: usize,
) -> Option<Result<&'static str, russh::Error>> {
    let mut agent = match AgentClient::connect_uds(sock).await {
        Ok(ag) => ag,
        Err(e) => {
            a.notes
                .push(format!("ssh-agent at {} not usable: {e}", sock.display()));
            return None;
        }
    };
    if let Some(binding) = h.agent_session_binding() {
        // Only needed for destination-constrained keys; older agents refuse the extension.
        let _ = agent.bind_session(binding, false).await;
    }
    let ids = match agent.request_identities().await {
        Ok(ids) => ids,
        Err(e) => {
            a.notes
                .push(format!("ssh-agent did not list its keys: {e}"));
            return None;
        }
    };
    for id in ids {
        let AgentIdentity::PublicKey { key, .. } = id else {
            continue;
        };
        let Ok(blob) = key.to_bytes() else { continue };
        if a.offered.contains(&blob) {
            continue;
        }
        if a.offered.len() >= budget || !a.allows(MethodKind::PublicKey) {
            break;
        }
        a.offered.push(blob);
        a.note_tried("publickey");
        let hash = if key.algorithm().is_rsa() {
            rsa_hash_for(h, rsa_hash).await
        } else {
            None
        };
        match h
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(r) if r.success() => return Some(Ok("publickey")),
            Ok(r) => a.update(&r),
            Err(e) => a.notes.push(format!("ssh-agent could not sign: {e}")),
        }
    }
    None
}

/// Answers the server's prompts: hidden prompts (and any that ask for a password) get the
/// password, visible ones an empty line.
async fn keyboard_interactive(
    h: &mut Handle<ClientHandler>,
    user: &str,
    pw: &str,
    a: &mut Attempts,
) -> Result<bool, russh::Error> {
    let mut resp = h
        .authenticate_keyboard_interactive_start(user, None)
        .await?;
    // PAM may send informational rounds with no prompts; a few rounds is plenty.
    for _ in 0..8 {
        match resp {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure {
                remaining_methods, ..
            } => {
                if !remaining_methods.is_empty() {
                    a.methods = remaining_methods.to_vec();
                }
                return Ok(false);
            }
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if !p.echo || p.prompt.to_ascii_lowercase().contains("password") {
                            pw.to_string()
                        } else {
                            String::new()
                        }
                    })
                    .collect();
                resp = h.authenticate_keyboard_interactive_respond(answers).await?;
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_problems_have_actionable_messages() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = load_key_sync(&missing, None).err().unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");

        let open = dir.path().join("open");
        std::fs::write(&open, "x").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_key_sync(&open, None).err().unwrap();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(e.to_string().contains("0644"), "{e}");

        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_key_sync(&open, None).err().unwrap();
        assert!(matches!(e, KeyError::Invalid(..)), "{e}");
    }
}
