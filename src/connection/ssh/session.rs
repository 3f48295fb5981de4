//! Opening an authenticated SSH session: TCP (or a ProxyJump channel), handshake with host key
//! verification, authentication — all under one connect timeout.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKeyOrCertificate};
use russh::{Preferred, kex};
use tokio::net::TcpStream;

use super::auth::{self, LoadedKey};
use super::known_hosts::{self, HostKeyPolicy, Lookup};
use super::options::SshOptions;
use crate::connection::ConnError;

/// Errors the russh event loop hands back to us. Host key refusals carry our own message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("{0}")]
    HostKey(String),
}

/// Checks the server's host key against known_hosts with the host's policy.
pub struct ClientHandler {
    /// Host name for messages (inventory name and address).
    display: String,
    /// The name looked up in known_hosts (`addr` or `[addr]:port`).
    lookup: String,
    address: String,
    port: u16,
    files: Vec<std::path::PathBuf>,
    policy: HostKeyPolicy,
}

impl ClientHandler {
    fn new(opts: &SshOptions) -> ClientHandler {
        ClientHandler {
            display: if opts.host == opts.address {
                format!("{}:{}", opts.address, opts.port)
            } else {
                format!("{} ({}:{})", opts.host, opts.address, opts.port)
            },
            lookup: known_hosts::lookup_name(&opts.address, opts.port),
            address: opts.address.clone(),
            port: opts.port,
            files: opts.known_hosts.clone(),
            policy: opts.host_key_policy,
        }
    }

    fn files_display(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn verify(&self, blob: &[u8]) -> Result<(), String> {
        let fp = known_hosts::fingerprint(blob);
        let kind = known_hosts::blob_key_type(blob).unwrap_or("unknown");
        match known_hosts::lookup(&self.files, &self.lookup, blob) {
            Lookup::Known(loc) => {
                tracing::debug!(host = %self.display, at = %loc, "host key known");
                Ok(())
            }
            Lookup::Revoked(loc) => Err(format!(
                "host key verification failed for {}: its {kind} key {fp} is marked @revoked at {loc}",
                self.display
            )),
            Lookup::Mismatch(loc) => Err(format!(
                "host key verification failed for {}: the server presented {kind} key {fp}, \
                 but {loc} records a different {kind} key for '{}'. If the host was reinstalled, \
                 remove that line (ssh-keygen -R '{}' -f {}) and connect again; otherwise the \
                 connection may be intercepted",
                self.display,
                self.lookup,
                self.lookup,
                loc.file.display()
            )),
            Lookup::Unknown => match self.policy {
                HostKeyPolicy::AcceptNew => {
                    let Some(file) = self.files.first() else {
                        return Err("no known_hosts file to record a new host key in".into());
                    };
                    match known_hosts::append(file, &self.lookup, blob) {
                        Ok(line) => {
                            tracing::info!(host = %self.display, key = %fp, at = %format!("{}:{line}", file.display()), "new host key recorded (accept-new)");
                            Ok(())
                        }
                        Err(e) => Err(format!(
                            "cannot record the host key of {} in {}: {e}",
                            self.display,
                            file.display()
                        )),
                    }
                }
                _ => Err(format!(
                    "host key verification failed for {}: its {kind} key {fp} is not in {} \
                     (policy strict). Check the fingerprint and add it (ssh-keyscan -p {} {} >> {}), \
                     or set ansible_ssh_host_key_checking: accept-new",
                    self.display,
                    self.files_display(),
                    self.port,
                    self.address,
                    self.files
                        .first()
                        .map(|f| f.display().to_string())
                        .unwrap_or_else(|| "~/.ssh/known_hosts".into()),
                )),
            },
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if self.policy == HostKeyPolicy::Off {
            return Ok(true);
        }
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(HandlerError::HostKey(format!(
                    "{} presented a host certificate; mixop checks plain host keys only",
                    self.display
                )));
            }
        };
        let blob = key
            .to_bytes()
            .map_err(|e| HandlerError::HostKey(format!("unreadable host key: {e}")))?;
        self.verify(&blob).map_err(HandlerError::HostKey)?;
        Ok(true)
    }
}

/// Where a connection attempt is, so a timeout can say which step hung.
#[derive(Default)]
struct Phase(AtomicU8);

impl Phase {
    fn set(&self, p: u8) {
        self.0.store(p, Ordering::Relaxed)
    }
    fn describe(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            0 => "while opening the TCP connection",
            1 => "during the SSH handshake (the port accepts TCP but no SSH server answered)",
            2 => "during authentication",
            3 => "while connecting through the ProxyJump host",
            _ => "",
        }
    }
}

/// An authenticated session, plus the bastion sessions its transport runs through.
pub struct Established {
    pub handle: Handle<ClientHandler>,
    pub jumps: Vec<Handle<ClientHandler>>,
    pub auth_method: &'static str,
}

fn client_config(opts: &SshOptions) -> Arc<client::Config> {
    // curve25519 first: the cheapest key exchange that every current OpenSSH offers (the
    // post-quantum hybrid costs a few ms more per connection, which parallel runs pay N times).
    let kex: Vec<kex::Name> = vec![
        kex::CURVE25519,
        kex::CURVE25519_PRE_RFC_8731,
        kex::MLKEM768X25519_SHA256,
        kex::DH_GEX_SHA256,
        kex::DH_G16_SHA512,
        kex::DH_G14_SHA256,
        kex::EXTENSION_SUPPORT_AS_CLIENT,
        kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    ];
    let known = known_hosts::known_key_types(
        &opts.known_hosts,
        &known_hosts::lookup_name(&opts.address, opts.port),
    );
    let preferred = Preferred {
        kex: Cow::Owned(kex),
        key: Cow::Owned(host_key_order(&known)),
        ..Preferred::default()
    };
    Arc::new(client::Config {
        preferred,
        nodelay: true,
        keepalive_interval: Some(opts.keepalive),
        keepalive_max: opts.keepalive_max,
        inactivity_timeout: None,
        ..Default::default()
    })
}

/// Host key algorithms, those already recorded for the host first (as OpenSSH orders them), so
/// a host known by its ECDSA key is not refused for presenting its Ed25519 key.
fn host_key_order(known: &[String]) -> Vec<Algorithm> {
    let all = vec![
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
        Algorithm::Rsa { hash: None },
    ];
    let is_known = |a: &Algorithm| {
        known.iter().any(|k| match a {
            Algorithm::Rsa { .. } => k == "ssh-rsa",
            other => other.as_str() == k,
        })
    };
    let (mut first, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(is_known);
    first.extend(rest);
    first
}

async fn tcp_connect(opts: &SshOptions) -> Result<TcpStream, ConnError> {
    let target = format!("{}:{}", opts.address, opts.port);
    let addrs: Vec<_> = tokio::net::lookup_host((opts.address.as_str(), opts.port))
        .await
        .map_err(|e| {
            ConnError::unreachable(format!(
                "cannot resolve {} ({}): {e}",
                opts.address,
                opts.target()
            ))
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                // Every round trip of the handshake would otherwise wait on Nagle.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    let why = match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is sshd running and listening on that port?)".to_string()
        }
        Some(e) => e.to_string(),
        None => "the name resolved to no address".to_string(),
    };
    Err(ConnError::unreachable(format!(
        "cannot connect to {target} ({}): {why}",
        opts.target()
    )))
}

fn handshake_error(opts: &SshOptions, e: HandlerError) -> ConnError {
    match e {
        HandlerError::HostKey(msg) => ConnError::unreachable(msg),
        HandlerError::Ssh(e) => {
            ConnError::unreachable(format!("SSH handshake with {} failed: {e}", opts.target()))
        }
    }
}

/// Handshake and authentication over an already open byte stream.
async fn session_over<S>(
    opts: &SshOptions,
    keys: &[LoadedKey],
    stream: S,
    phase: &Phase,
) -> Result<(Handle<ClientHandler>, &'static str), ConnError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    phase.set(1);
    let mut handle = client::connect_stream(client_config(opts), stream, ClientHandler::new(opts))
        .await
        .map_err(|e| handshake_error(opts, e))?;
    phase.set(2);
    let method = auth::authenticate(&mut handle, opts, keys).await?;
    Ok((handle, method))
}

/// Opens an authenticated session to `opts` (through its ProxyJump chain, if any), all within
/// `opts.connect_timeout`.
pub async fn establish(opts: &SshOptions, keys: &[LoadedKey]) -> Result<Established, ConnError> {
    let phase = Phase::default();
    let work = async {
        let mut jumps: Vec<Handle<ClientHandler>> = Vec::new();
        if opts.proxy_jump.is_empty() {
            let tcp = tcp_connect(opts).await?;
            let (handle, method) = session_over(opts, keys, tcp, &phase).await?;
            return Ok(Established {
                handle,
                jumps,
                auth_method: method,
            });
        }
        // Hop by hop: TCP to the first bastion, then a direct-tcpip channel from each hop to
        // the next; the last channel carries the target's session.
        let hops: Vec<SshOptions> = opts.proxy_jump.iter().map(|j| opts.for_jump(j)).collect();
        for (i, hop) in hops.iter().enumerate() {
            phase.set(3);
            let (handle, _) = match jumps.last() {
                None => {
                    let tcp = tcp_connect(hop).await.map_err(|e| jump_err(opts, e))?;
                    session_over(hop, keys, tcp, &phase)
                        .await
                        .map_err(|e| jump_err(opts, e))?
                }
                Some(prev) => {
                    let ch = open_forward(prev, &hops[i - 1], hop).await?;
                    session_over(hop, keys, ch.into_stream(), &phase)
                        .await
                        .map_err(|e| jump_err(opts, e))?
                }
            };
            jumps.push(handle);
        }
        let (last, last_opts) = match (jumps.last(), hops.last()) {
            (Some(j), Some(o)) => (j, o),
            _ => return Err(ConnError::unreachable("empty ProxyJump chain")),
        };
        let fwd = open_forward(last, last_opts, opts).await?;
        let (handle, method) = session_over(opts, keys, fwd.into_stream(), &phase).await?;
        Ok(Established {
            handle,
            jumps,
            auth_method: method,
        })
    };
    match tokio::time::timeout(opts.connect_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ConnError::unreachable(format!(
            "cannot connect to {}: timed out after {}s {}",
            opts.target(),
            fmt_secs(opts.connect_timeout),
            phase.describe()
        ))),
    }
}

fn jump_err(opts: &SshOptions, e: ConnError) -> ConnError {
    ConnError::unreachable(format!(
        "via ProxyJump for {}: {}",
        opts.target(),
        e.message
    ))
}

async fn open_forward(
    via: &Handle<ClientHandler>,
    via_opts: &SshOptions,
    to: &SshOptions,
) -> Result<russh::Channel<client::Msg>, ConnError> {
    via.channel_open_direct_tcpip(to.address.as_str(), to.port as u32, "127.0.0.1", 0)
        .await
        .map_err(|e| {
            ConnError::unreachable(format!(
                "ProxyJump host {} could not open a connection to {}:{}: {e}",
                via_opts.target(),
                to.address,
                to.port
            ))
        })
}

pub fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_key_types_come_first() {
        let order = host_key_order(&["ecdsa-sha2-nistp256".to_string()]);
        assert_eq!(
            order[0],
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
        );
        assert_eq!(order[1], Algorithm::Ed25519);
        let order = host_key_order(&["ssh-rsa".to_string()]);
        assert!(matches!(order[0], Algorithm::Rsa { .. }));
        assert_eq!(order.len(), 7);
    }
}
