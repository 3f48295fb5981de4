//! WinRM transport: the WS-Management WinRS cmd shell over HTTP with NTLM message encryption
//! (what a default Windows host accepts on 5985), or over HTTPS.
//!
//! Layers, bottom up: `http` owns one TCP/TLS connection; `auth` does NTLM (sspi) and Basic;
//! `encryption` frames sealed bodies; `soap` renders and parses envelopes; `session` is the
//! per-host request queue that owns the authenticated connections and reconnects; `shell` runs
//! commands on the host's WinRS shell (rotated before the operations quota) or, for a working
//! directory or environment of their own, in a shell created for them; `ps` builds PowerShell
//! command lines and quotes program arguments.

pub mod auth;
pub mod encryption;
pub mod http;
pub mod process;
pub mod pshost;
pub mod session;
pub mod shell;
pub mod soap;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use self::http::{Endpoint, Scheme};
use self::session::{AuthKind, ProgramExec, SessionHandle, Settings};
use self::shell::{RunOptions, Shell, Stdin};
use self::soap::StreamKind;
use super::{CommandOutput, CommandSpec, ConnError, ConnSpec, Connection, OutputChunk, Transport};
use crate::powershell::script as ps;

/// Default MaxEnvelopeSize, as pywinrm and Ansible use.
pub const MAX_ENVELOPE: usize = 153_600;
/// Commands per shell before it is rotated: below MaxConcurrentOperationsPerUser (1500 by
/// default), with room for another session of the same user (WinRb/WinRM rotates at 1498).
pub const COMMANDS_PER_SHELL: u64 = 1400;
/// Output kept per stream of one `exec`; more fails the command (and terminates it) rather
/// than growing without bound.
pub const MAX_CAPTURE: usize = 64 * 1024 * 1024;

/// `ansible_winrm_message_encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    Auto,
    Always,
    Never,
}

/// Resolves the host's `ansible_winrm_*` variables into session settings.
pub fn settings_from_spec(spec: &ConnSpec) -> Result<Settings, ConnError> {
    let bad = |m: String| ConnError::unreachable(format!("{}: {m}", spec.host));
    let transport = match spec.vars.get("ansible_winrm_transport") {
        Some(Value::Array(items)) => items.first().map(crate::value::to_text),
        Some(v) => Some(crate::value::to_text(v)),
        None => None,
    }
    .map(|t| t.trim().to_ascii_lowercase())
    .unwrap_or_else(|| "ntlm".into());
    let auth = match transport.as_str() {
        "ntlm" | "negotiate" => AuthKind::Ntlm,
        "basic" | "plaintext" | "ssl" => AuthKind::Basic,
        "kerberos" | "credssp" | "certificate" => {
            return Err(bad(format!(
                "ansible_winrm_transport: {transport} is not supported yet; use ntlm (with \
                 message encryption over http) or basic over https"
            )));
        }
        other => {
            return Err(bad(super::bad_choice(
                "ansible_winrm_transport",
                other,
                &[
                    "ntlm",
                    "negotiate",
                    "basic",
                    "kerberos",
                    "credssp",
                    "certificate",
                ],
            )));
        }
    };
    let port = match spec.vars.get("ansible_winrm_port").filter(|v| !v.is_null()) {
        Some(v) => Some(
            spec.var_u64("ansible_winrm_port")
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "ansible_winrm_port: `{}` is not a port number",
                        crate::value::to_text(v)
                    ))
                })?,
        ),
        None => spec.port,
    };
    let scheme = match spec
        .var_str("ansible_winrm_scheme")
        .map(|s| s.to_ascii_lowercase())
    {
        Some(s) if s == "http" => Scheme::Http,
        Some(s) if s == "https" => Scheme::Https,
        Some(s) => {
            return Err(bad(super::bad_choice(
                "ansible_winrm_scheme",
                &s,
                &["http", "https"],
            )));
        }
        // A default Windows host only has the HTTP listener; 5986 is the HTTPS convention.
        None if port == Some(5986) => Scheme::Https,
        None => Scheme::Http,
    };
    let port = port.unwrap_or(match scheme {
        Scheme::Http => 5985,
        Scheme::Https => 5986,
    });
    let encryption = match spec
        .var_str("ansible_winrm_message_encryption")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("auto") => Encryption::Auto,
        Some("always") => Encryption::Always,
        Some("never") => Encryption::Never,
        Some(other) => {
            return Err(bad(super::bad_choice(
                "ansible_winrm_message_encryption",
                other,
                &["auto", "always", "never"],
            )));
        }
    };
    let encrypt = match (encryption, auth) {
        (Encryption::Never, _) => false,
        (Encryption::Always, AuthKind::Basic) => {
            return Err(bad(
                "ansible_winrm_message_encryption: always needs ansible_winrm_transport: ntlm \
                 (Basic has no session key to encrypt with)"
                    .into(),
            ));
        }
        (Encryption::Always, AuthKind::Ntlm) => true,
        (Encryption::Auto, AuthKind::Ntlm) => scheme == Scheme::Http,
        (Encryption::Auto, AuthKind::Basic) => false,
    };
    if auth == AuthKind::Basic && scheme == Scheme::Http && encryption != Encryption::Never {
        return Err(bad(
            "Basic auth over plain http would send the password and every message \
             unencrypted: use ansible_winrm_scheme: https, or set \
             ansible_winrm_message_encryption: never to allow it explicitly (the host also \
             needs AllowUnencrypted=true)"
                .into(),
        ));
    }
    let user = spec.user.clone().ok_or_else(|| {
        bad("no ansible_user set: WinRM needs a user name and ansible_password".into())
    })?;
    let password = spec.password.clone().unwrap_or_default();
    let validate = match spec
        .var_str("ansible_winrm_server_cert_validation")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("validate") => true,
        Some("ignore") => false,
        Some(other) => {
            return Err(bad(super::bad_choice(
                "ansible_winrm_server_cert_validation",
                other,
                &["validate", "ignore"],
            )));
        }
    };
    let tls = match scheme {
        Scheme::Http => None,
        Scheme::Https => {
            let ca = spec
                .var_str("ansible_winrm_ca_trust_path")
                .map(PathBuf::from);
            Some(http::tls_config(validate, ca.as_deref()).map_err(bad)?)
        }
    };
    let secs = |name: &str, default: u64| -> Result<Duration, ConnError> {
        let s = match spec.vars.get(name).filter(|v| !v.is_null()) {
            None => default,
            Some(v) => spec.var_u64(name).ok_or_else(|| {
                bad(format!(
                    "{name}: `{}` is not a whole number of seconds",
                    crate::value::to_text(v)
                ))
            })?,
        };
        let s = if s == 0 { default } else { s };
        crate::value::whole_seconds(s, name).map_err(bad)
    };
    let operation_timeout = secs("ansible_winrm_operation_timeout_sec", 20)?;
    // The host may hold a Receive for the whole operation timeout before answering.
    let read_timeout =
        secs("ansible_winrm_read_timeout_sec", 30)?.max(operation_timeout + Duration::from_secs(1));
    let path = spec
        .var_str("ansible_winrm_path")
        .unwrap_or_else(|| "/wsman".into());
    let noprofile = match spec.vars.get("mixop_winrm_noprofile") {
        None | Some(Value::Null) => false,
        Some(v) => crate::value::as_bool(v).ok_or_else(|| {
            bad(format!(
                "mixop_winrm_noprofile: {} is not a boolean",
                crate::value::to_text(v)
            ))
        })?,
    };
    let commands_per_shell = spec
        .var_u64("mixop_winrm_commands_per_shell")
        .filter(|n| *n > 0)
        .unwrap_or(COMMANDS_PER_SHELL);
    let program_exec = match spec
        .var_str("mixop_winrm_program_exec")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("winrs") => ProgramExec::Winrs,
        Some("powershell") => ProgramExec::PowerShell,
        Some(other) => {
            return Err(bad(super::bad_choice(
                "mixop_winrm_program_exec",
                other,
                &["winrs", "powershell"],
            )));
        }
    };
    Ok(Settings {
        host: spec.host.clone(),
        endpoint: Endpoint {
            scheme,
            address: spec.address.clone(),
            port,
            path,
            tls,
            connect_timeout: secs("ansible_winrm_connection_timeout", 0)?
                .max(secs("ansible_timeout", 10)?),
        },
        auth,
        user,
        password,
        encrypt,
        operation_timeout,
        read_timeout,
        max_envelope: MAX_ENVELOPE,
        receive_poll: operation_timeout,
        shared_receive_poll: Duration::from_secs(1),
        noprofile,
        commands_per_shell,
        busy_retry_delay: Duration::from_secs(2),
        program_exec,
    })
}

/// What is allowed but unsafe in a host's settings: NTLM over plain HTTP without message
/// encryption sends every command and its output readable on the network.
pub fn warnings(s: &Settings) -> Vec<String> {
    let mut w = Vec::new();
    if s.endpoint.scheme == Scheme::Http && !s.encrypt {
        w.push(format!(
            "{}: WinRM over plain http with ansible_winrm_message_encryption: never: every \
             command and its output cross the network unencrypted",
            s.host
        ));
    }
    w
}

/// One host's WinRM connection: one authenticated TCP connection and one WinRS shell, shared by
/// every task.
pub struct WinrmConnection {
    host: String,
    session: SessionHandle,
    shell: Shell,
    pshost: pshost::PsHost,
    closed: AtomicBool,
}

impl WinrmConnection {
    /// Connects, authenticates and creates the shell, so that a bad host shows up here as
    /// unreachable rather than in the middle of a task.
    pub async fn connect(spec: &ConnSpec) -> Result<WinrmConnection, ConnError> {
        let settings = settings_from_spec(spec)?;
        Self::with_settings(settings).await
    }

    pub async fn with_settings(settings: Settings) -> Result<WinrmConnection, ConnError> {
        let host = settings.host.clone();
        let session = SessionHandle::start(settings);
        let shell = Shell::new(session.clone());
        shell
            .ensure()
            .await
            .map_err(|e| ConnError::unreachable(e.message))?;
        Ok(WinrmConnection {
            pshost: pshost::PsHost::new(&host, pshost::START_TIMEOUT),
            host,
            session,
            shell,
            closed: AtomicBool::new(false),
        })
    }

    /// (TCP connections opened, NTLM handshakes done, SOAP requests sent) so far.
    pub fn counters(&self) -> (u64, u64, u64) {
        let s = &self.session.stats;
        (
            s.connections.load(Ordering::Relaxed),
            s.handshakes.load(Ordering::Relaxed),
            s.requests.load(Ordering::Relaxed),
        )
    }

    /// Cleanup requests (the Signal after each finished command) still queued or in flight;
    /// they are sent when the connection is idle. Tests wait for 0 before injecting faults.
    pub fn deferred_pending(&self) -> u64 {
        self.session.stats.deferred.load(Ordering::Relaxed)
    }

    fn check_open(&self) -> Result<(), ConnError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(ConnError::failed(format!(
                "{}: the WinRM connection was closed",
                self.host
            )));
        }
        Ok(())
    }

    /// Runs a command and collects its output, up to `MAX_CAPTURE` per stream.
    async fn run_collect(
        &self,
        cmdline: &str,
        opts: &RunOptions,
        stdin: Stdin,
        live: Option<mpsc::UnboundedSender<OutputChunk>>,
    ) -> Result<CommandOutput, ConnError> {
        let mut out = CommandOutput::default();
        let host = self.host.clone();
        let rc = {
            let mut sink = |kind: StreamKind, data: &[u8]| -> Result<(), ConnError> {
                type Wrap = fn(Vec<u8>) -> OutputChunk;
                let (buf, wrap): (&mut Vec<u8>, Wrap) = match kind {
                    StreamKind::Stdout => (&mut out.stdout, OutputChunk::Stdout),
                    StreamKind::Stderr => (&mut out.stderr, OutputChunk::Stderr),
                };
                if buf.len() + data.len() > MAX_CAPTURE {
                    return Err(ConnError::failed(format!(
                        "{host}: the command produced more than {} MiB of output on one \
                         stream; it was stopped",
                        MAX_CAPTURE >> 20
                    )));
                }
                buf.extend_from_slice(data);
                if let Some(tx) = &live {
                    let _ = tx.send(wrap(data.to_vec()));
                }
                Ok(())
            };
            self.shell.run_with(cmdline, opts, stdin, &mut sink).await?
        };
        out.rc = rc;
        Ok(out)
    }

    /// Bounds a command by the task's timeout. Dropping the command's future signals terminate
    /// for it on the host (and deletes a shell of its own).
    async fn with_timeout(
        &self,
        timeout: Option<Duration>,
        run: impl std::future::Future<Output = Result<CommandOutput, ConnError>>,
    ) -> Result<CommandOutput, ConnError> {
        match timeout {
            Some(t) => tokio::time::timeout(t, run).await.map_err(|_| {
                ConnError::timeout(format!(
                    "{}: command timed out after {}s and was terminated",
                    self.host,
                    t.as_secs_f32()
                ))
            })?,
            None => run.await,
        }
    }

    /// Uploads through the put script, with `stdin` carrying base64 lines of the content.
    async fn put_stream(&self, dest: &str, sha: &str, stdin: Stdin) -> Result<(), ConnError> {
        let cmd = ps::command(&ps::put_script(dest, sha));
        if cmd.stdin.is_some() {
            return Err(ConnError::failed(format!(
                "{}: destination path too long for the upload script: {dest}",
                self.host
            )));
        }
        let out = self
            .run_collect(&cmd.cmdline, &RunOptions::default(), stdin, None)
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let reported = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("sha256="))
            .map(|h| h.trim().to_ascii_lowercase());
        if out.rc != 0 {
            return Err(ConnError::failed(format!(
                "{}: upload to {dest} failed (rc {}): {}",
                self.host,
                out.rc,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        match reported {
            Some(h) if h == sha => Ok(()),
            Some(h) => Err(ConnError::failed(format!(
                "{}: upload to {dest}: the host computed SHA-256 {h}, expected {sha}",
                self.host
            ))),
            None => Err(ConnError::failed(format!(
                "{}: upload to {dest}: the host did not report a hash (stdout: {:?})",
                self.host,
                stdout.chars().take(200).collect::<String>()
            ))),
        }
    }
}

fn b64_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 * 4 + data.len() / ps::LINE_BYTES * 2 + 8);
    for chunk in data.chunks(ps::LINE_BYTES) {
        out.extend_from_slice(B64.encode(chunk).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `set "K=V"&& ` prefixes: WinRS has no per-command environment.
fn env_prefix(env: &[(String, String)]) -> Result<String, ConnError> {
    let mut s = String::new();
    for (k, v) in env {
        if k.is_empty() || k.contains(['=', '"', '\r', '\n']) || v.contains(['"', '\r', '\n']) {
            return Err(ConnError::failed(format!(
                "environment variable {k:?} cannot be passed through cmd.exe"
            )));
        }
        s.push_str(&format!("set \"{k}={v}\"&& "));
    }
    Ok(s)
}

/// Splits a byte stream into `\r\n`/`\n` lines, in bounded memory.
struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    fn push(
        &mut self,
        data: &[u8],
        mut f: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        for &b in data {
            if b == b'\n' {
                let line = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
                f(line)?;
                self.buf.clear();
            } else {
                if self.buf.len() >= self.max {
                    return Err(format!("output line longer than {} bytes", self.max));
                }
                self.buf.push(b);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Connection for WinrmConnection {
    fn transport(&self) -> Transport {
        Transport::Winrm
    }

    async fn exec(&self, spec: CommandSpec) -> Result<CommandOutput, ConnError> {
        self.check_open()?;
        if spec.become_.is_some() {
            return Err(ConnError::failed(format!(
                "{}: become is not supported on WinRM hosts",
                self.host
            )));
        }
        let cmdline = format!("{}{}", env_prefix(&spec.env)?, spec.cmd);
        let stdin = spec.stdin.map(Stdin::Bytes).unwrap_or(Stdin::None);
        let opts = RunOptions::default();
        let run = self.run_collect(&cmdline, &opts, stdin, spec.output);
        self.with_timeout(spec.timeout, run).await
    }

    async fn exec_program(
        &self,
        spec: CommandSpec,
        cwd: Option<&str>,
    ) -> Result<CommandOutput, ConnError> {
        self.check_open()?;
        if spec.become_.is_some() {
            return Err(ConnError::failed(format!(
                "{}: become is not supported on WinRM hosts",
                self.host
            )));
        }
        let settings = &self.session.settings;
        let stdin = spec.stdin.map(Stdin::Bytes).unwrap_or(Stdin::None);
        match settings.program_exec {
            ProgramExec::Winrs => {
                // No cmd.exe: the line goes to CreateProcess as it is. WinRS has no
                // per-command working directory or environment, so a command that needs them
                // gets a shell of its own created with them (rsp:WorkingDirectory,
                // rsp:Environment) and deleted afterwards: two cheap requests, and nothing
                // goes through cmd.exe's parsing (`cd /d … &&` would).
                let own_shell =
                    (cwd.is_some() || !spec.env.is_empty()).then(|| soap::ShellOptions {
                        noprofile: settings.noprofile,
                        working_directory: cwd.map(str::to_string),
                        environment: spec.env.clone(),
                    });
                let opts = RunOptions {
                    skip_cmd_shell: true,
                    own_shell,
                };
                let run = self.run_collect(&spec.cmd, &opts, stdin, spec.output);
                self.with_timeout(spec.timeout, run).await
            }
            ProgramExec::PowerShell => {
                let script = ps::program_script(&spec.cmd, cwd, &spec.env);
                // The wrapper holds the environment values: on stdin when the program has none.
                let (cmd, stdin) = match stdin {
                    Stdin::None if !spec.env.is_empty() => {
                        let c = ps::command_hidden(&script);
                        let input = Stdin::Bytes(c.stdin.clone().unwrap_or_default());
                        (ps::PsCommand { stdin: None, ..c }, input)
                    }
                    other => (ps::command(&script), other),
                };
                if cmd.stdin.is_some() {
                    return Err(ConnError::failed(format!(
                        "{}: the command line is too long to start through PowerShell \
                         (mixop_winrm_program_exec: powershell)",
                        self.host
                    )));
                }
                let opts = RunOptions::default();
                let run = self.run_collect(&cmd.cmdline, &opts, stdin, spec.output);
                self.with_timeout(spec.timeout, run).await
            }
        }
    }

    async fn put_bytes(
        &self,
        data: &[u8],
        dest: &str,
        _mode: Option<u32>,
    ) -> Result<(), ConnError> {
        self.check_open()?;
        let sha = hex::encode(Sha256::digest(data));
        self.put_stream(dest, &sha, Stdin::Bytes(b64_lines(data)))
            .await
    }

    async fn put_file(&self, src: &Path, dest: &str, _mode: Option<u32>) -> Result<(), ConnError> {
        self.check_open()?;
        let open = |e: std::io::Error| ConnError::failed(format!("{}: {e}", src.display()));
        // Hash first so the host can refuse a corrupted copy before it replaces `dest`.
        let mut f = tokio::fs::File::open(src).await.map_err(open)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).await.map_err(open)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let sha = hex::encode(hasher.finalize());
        let (tx, rx) = mpsc::channel::<Result<Vec<u8>, ConnError>>(4);
        let path = src.to_path_buf();
        let producer = tokio::spawn(async move {
            let fail = |e: std::io::Error| ConnError::failed(format!("{}: {e}", path.display()));
            let mut f = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Err(fail(e))).await;
                    return;
                }
            };
            let mut buf = vec![0u8; ps::LINE_BYTES];
            loop {
                // Fill a whole line's worth so every line but the last has LINE_BYTES.
                let mut filled = 0;
                while filled < buf.len() {
                    match f.read(&mut buf[filled..]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => {
                            let _ = tx.send(Err(fail(e))).await;
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                let mut line = B64.encode(&buf[..filled]).into_bytes();
                line.extend_from_slice(b"\r\n");
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
                if filled < buf.len() {
                    return;
                }
            }
        });
        let r = self.put_stream(dest, &sha, Stdin::Stream(rx)).await;
        producer.abort();
        r
    }

    async fn get_file(&self, src: &str, dest: &Path) -> Result<(), ConnError> {
        self.check_open()?;
        let host = self.host.clone();
        let local = |e: std::io::Error| ConnError::failed(format!("{}: {e}", dest.display()));
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(local)?;
        let mut file = std::io::BufWriter::with_capacity(
            256 * 1024,
            tmp.as_file().try_clone().map_err(local)?,
        );
        let mut hasher = Sha256::new();
        let mut reported: Option<String> = None;
        let mut stderr = Vec::new();
        let mut lines = LineSplitter {
            buf: Vec::new(),
            max: 1024 * 1024,
        };
        let cmd = ps::command(&ps::get_script(src));
        if cmd.stdin.is_some() {
            return Err(ConnError::failed(format!(
                "{host}: source path too long for the download script: {src}"
            )));
        }
        let rc = {
            let mut sink = |kind: StreamKind, data: &[u8]| -> Result<(), ConnError> {
                match kind {
                    StreamKind::Stderr => {
                        if stderr.len() < 64 * 1024 {
                            stderr.extend_from_slice(data);
                        }
                        Ok(())
                    }
                    StreamKind::Stdout => lines
                        .push(data, |line| {
                            let line = line.trim_ascii();
                            if line.is_empty() {
                                return Ok(());
                            }
                            if let Some(h) = line.strip_prefix(b"sha256=") {
                                reported = Some(String::from_utf8_lossy(h).to_ascii_lowercase());
                                return Ok(());
                            }
                            if reported.is_some() {
                                return Err("data after the final hash line".into());
                            }
                            let bytes = B64
                                .decode(line)
                                .map_err(|e| format!("invalid base64 from the host: {e}"))?;
                            hasher.update(&bytes);
                            file.write_all(&bytes)
                                .map_err(|e| format!("{}: {e}", dest.display()))
                        })
                        .map_err(|m| ConnError::failed(format!("{host}: download of {src}: {m}"))),
                }
            };
            self.shell.run(&cmd.cmdline, Stdin::None, &mut sink).await?
        };
        if rc != 0 {
            return Err(ConnError::failed(format!(
                "{host}: download of {src} failed (rc {rc}): {}",
                String::from_utf8_lossy(&stderr).trim()
            )));
        }
        if !lines.buf.is_empty() {
            return Err(ConnError::failed(format!(
                "{host}: download of {src}: output ended in the middle of a line"
            )));
        }
        let local_sha = hex::encode(hasher.finalize());
        match reported {
            Some(h) if h == local_sha => {}
            Some(h) => {
                return Err(ConnError::failed(format!(
                    "{host}: download of {src}: received data has SHA-256 {local_sha}, the \
                     host reported {h}"
                )));
            }
            None => {
                return Err(ConnError::failed(format!(
                    "{host}: download of {src}: the host did not report a hash (truncated?)"
                )));
            }
        }
        file.flush().map_err(local)?;
        drop(file);
        tmp.persist(dest).map_err(|e| local(e.error))?;
        Ok(())
    }

    async fn powershell(
        &self,
        req: crate::powershell::Request,
        timeout: Option<Duration>,
    ) -> Result<crate::powershell::Answer, ConnError> {
        self.check_open()?;
        self.pshost.request(&self.shell, req, timeout).await
    }

    async fn close(&self) {
        if !self.closed.swap(true, Ordering::Relaxed) {
            // Commands that were cancelled (Ctrl-C) get their Signal terminate first: Delete
            // ends a shell's processes too, but the host is told to stop each command.
            self.session
                .cleanup
                .settle(crate::connection::CLEANUP_LIMIT)
                .await;
            self.shell.delete().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(vars: Value) -> ConnSpec {
        ConnSpec {
            host: "win1".into(),
            transport: Transport::Winrm,
            address: "10.0.0.5".into(),
            port: None,
            user: Some("LAB\\admin".into()),
            password: Some("pw".into()),
            vars: vars.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn defaults_are_a_default_windows_host() {
        let s = settings_from_spec(&spec(json!({}))).unwrap();
        assert_eq!(s.endpoint.scheme, Scheme::Http);
        assert_eq!(s.endpoint.port, 5985);
        assert_eq!(s.auth, AuthKind::Ntlm);
        assert!(s.encrypt);
        assert_eq!(s.endpoint.url(), "http://10.0.0.5:5985/wsman");
        assert_eq!(s.operation_timeout, Duration::from_secs(20));
        assert_eq!(s.read_timeout, Duration::from_secs(30));
    }

    #[test]
    fn https_and_port_rules() {
        let s = settings_from_spec(&spec(json!({"ansible_port": 5986})))
            .unwrap_or_else(|e| panic!("{e}"));
        // `ansible_port` reaches ConnSpec.port in the engine; here only vars are set.
        assert_eq!(s.endpoint.port, 5985);
        let mut sp = spec(json!({"ansible_winrm_server_cert_validation": "ignore"}));
        sp.port = Some(5986);
        let s = settings_from_spec(&sp).unwrap();
        assert_eq!(s.endpoint.scheme, Scheme::Https);
        assert!(!s.encrypt, "no message encryption over https");
        let s = settings_from_spec(&spec(json!({
            "ansible_winrm_scheme": "https", "ansible_winrm_server_cert_validation": "ignore",
            "ansible_winrm_transport": ["basic", "ntlm"]
        })))
        .unwrap();
        assert_eq!((s.endpoint.port, s.auth), (5986, AuthKind::Basic));
    }

    #[test]
    fn refuses_unsafe_or_unknown_settings() {
        let e = settings_from_spec(&spec(json!({"ansible_winrm_transport": "basic"})))
            .err()
            .unwrap();
        assert!(
            e.message
                .contains("ansible_winrm_message_encryption: never"),
            "{e}"
        );
        let s = settings_from_spec(&spec(json!({
            "ansible_winrm_transport": "basic", "ansible_winrm_message_encryption": "never"
        })))
        .unwrap();
        assert!(!s.encrypt);
        let e = settings_from_spec(&spec(json!({"ansible_winrm_transport": "kerberos"})))
            .err()
            .unwrap();
        assert!(e.message.contains("not supported yet"), "{e}");
        let e = settings_from_spec(&spec(json!({"ansible_winrm_scheme": "ftp"})))
            .err()
            .unwrap();
        assert!(e.message.contains("ansible_winrm_scheme"), "{e}");
        let mut no_user = spec(json!({}));
        no_user.user = None;
        assert!(settings_from_spec(&no_user).is_err());
        let e = settings_from_spec(&spec(json!({
            "ansible_winrm_scheme": "https", "ansible_winrm_ca_trust_path": "/nonexistent/ca.pem"
        })))
        .err()
        .unwrap();
        assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn timeouts_from_vars() {
        let s = settings_from_spec(&spec(json!({
            "ansible_winrm_operation_timeout_sec": 40, "ansible_winrm_read_timeout_sec": "30"
        })))
        .unwrap();
        assert_eq!(s.operation_timeout, Duration::from_secs(40));
        assert_eq!(
            s.read_timeout,
            Duration::from_secs(41),
            "read timeout must exceed the operation timeout"
        );
    }

    #[test]
    fn shell_and_program_settings() {
        let s = settings_from_spec(&spec(json!({}))).unwrap();
        assert!(
            !s.noprofile,
            "the user profile is loaded by default, as Ansible does"
        );
        assert_eq!(s.commands_per_shell, COMMANDS_PER_SHELL);
        assert_eq!(s.program_exec, ProgramExec::Winrs);
        assert_eq!(s.receive_poll, s.operation_timeout);
        assert!(s.shared_receive_poll >= Duration::from_secs(1));
        let s = settings_from_spec(&spec(json!({
            "mixop_winrm_noprofile": "yes", "mixop_winrm_commands_per_shell": 8,
            "mixop_winrm_program_exec": "PowerShell", "ansible_winrm_operation_timeout_sec": 5
        })))
        .unwrap();
        assert!(s.noprofile);
        assert_eq!(s.commands_per_shell, 8);
        assert_eq!(s.program_exec, ProgramExec::PowerShell);
        assert_eq!(s.receive_poll, Duration::from_secs(5));
        for bad in [
            json!({"mixop_winrm_noprofile": "maybe"}),
            json!({"mixop_winrm_program_exec": "cmd"}),
        ] {
            assert!(settings_from_spec(&spec(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_and_lines() {
        assert_eq!(
            env_prefix(&[("A".into(), "1 2".into())]).unwrap(),
            "set \"A=1 2\"&& "
        );
        assert!(env_prefix(&[("A\"".into(), "x".into())]).is_err());
        let mut got = Vec::new();
        let mut s = LineSplitter {
            buf: Vec::new(),
            max: 8,
        };
        s.push(b"ab\r\ncd", |l| {
            got.push(l.to_vec());
            Ok(())
        })
        .unwrap();
        s.push(b"e\n", |l| {
            got.push(l.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![b"ab".to_vec(), b"cde".to_vec()]);
        assert!(s.push(b"123456789", |_| Ok(())).is_err());
        assert_eq!(b64_lines(b"hi"), b"aGk=\r\n");
        assert_eq!(
            b64_lines(&vec![0u8; ps::LINE_BYTES + 1])
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            2
        );
    }
}
