//! `ansible_connection: ssh` on russh: one authenticated session per host for the whole run,
//! one channel per command (several at once), SFTP for files with an exec-channel fallback.
//!
//! Settings come from the host's variables (see [`options`]); host keys are checked against
//! known_hosts with the `strict` / `accept-new` / `off` policies (see [`known_hosts`]).

pub mod auth;
mod files;
pub mod known_hosts;
pub mod options;
pub mod session;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use russh::client::{Handle, Msg};
use russh::{Channel, ChannelMsg, ChannelOpenFailure, Sig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use self::auth::LoadedKey;
use self::options::SshOptions;
use self::session::ClientHandler;
use super::sudo::{SudoHandshake, SudoStep, posix_command};
use super::{
    Become, CLEANUP_LIMIT, Cleanup, CommandOutput, CommandSpec, ConnError, Connection, MAX_CAPTURE,
    OutputChunk, Transport, output_too_large, stop_group_command,
};

/// Channels we run at once on one session. OpenSSH's sshd allows 10 sessions per connection
/// (`MaxSessions`); one is kept for the SFTP channel.
const MAX_CHANNELS: usize = 9;

/// Size of one file transfer request / stdin write.
pub(crate) const CHUNK: usize = 64 * 1024;

/// An SSH connection to one host. Clones share everything (a stop running in the background
/// holds one).
#[derive(Clone)]
pub struct SshConnection {
    opts: Arc<SshOptions>,
    keys: Arc<Vec<LoadedKey>>,
    state: Arc<Mutex<State>>,
    /// TCP connections (sessions) opened so far, reconnects included.
    sessions_opened: Arc<AtomicU64>,
    /// Stops of commands whose `exec` was dropped, waited for by `close`.
    cleanup: Cleanup,
}

struct State {
    session: Option<Arc<Session>>,
    closed: bool,
}

pub(crate) struct Session {
    handle: Handle<ClientHandler>,
    /// Bastion sessions the transport runs through; kept alive with the session.
    _jumps: Vec<Handle<ClientHandler>>,
    auth_method: &'static str,
    slots: Arc<Semaphore>,
    sftp: Mutex<files::SftpSlot>,
}

/// Where command input comes from.
pub(crate) enum Input {
    None,
    Bytes(Vec<u8>),
    File(tokio::fs::File),
}

/// Where stdout goes.
pub(crate) enum Sink {
    Collect,
    File(tokio::fs::File),
}

pub(crate) struct RunResult {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl SshConnection {
    /// Resolves the host's settings, loads its key files and opens the session. Every failure
    /// is [`crate::connection::ConnErrorKind::Unreachable`] with a message naming the host and the reason.
    pub async fn connect(spec: &super::ConnSpec) -> Result<SshConnection, ConnError> {
        let opts = SshOptions::from_spec(spec)?;
        Self::connect_with(opts).await
    }

    pub async fn connect_with(opts: SshOptions) -> Result<SshConnection, ConnError> {
        let keys = auth::load_explicit_keys(&opts).await?;
        let conn = SshConnection {
            opts: Arc::new(opts),
            keys: Arc::new(keys),
            state: Arc::new(Mutex::new(State {
                session: None,
                closed: false,
            })),
            sessions_opened: Arc::new(AtomicU64::new(0)),
            cleanup: Cleanup::default(),
        };
        conn.session().await?;
        Ok(conn)
    }

    pub fn options(&self) -> &SshOptions {
        &self.opts
    }

    /// The method that authenticated the current session (`publickey`, `password`, ...).
    pub async fn auth_method(&self) -> Option<&'static str> {
        let st = self.state.lock().await;
        st.session.as_ref().map(|s| s.auth_method)
    }

    /// How many sessions (TCP connections + handshakes) this connection has opened.
    pub fn sessions_opened(&self) -> u64 {
        self.sessions_opened.load(Ordering::Relaxed)
    }

    /// The live session, reconnecting once if the previous one dropped.
    async fn session(&self) -> Result<Arc<Session>, ConnError> {
        let mut st = self.state.lock().await;
        if st.closed {
            return Err(ConnError::failed(format!(
                "the connection to {} was closed",
                self.opts.target()
            )));
        }
        if let Some(s) = &st.session {
            if !s.handle.is_closed() {
                return Ok(s.clone());
            }
            tracing::info!(host = %self.opts.host, "ssh session dropped; reconnecting");
        }
        st.session = None;
        let est = session::establish(&self.opts, &self.keys).await?;
        self.sessions_opened.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(Session {
            handle: est.handle,
            _jumps: est.jumps,
            auth_method: est.auth_method,
            slots: Arc::new(Semaphore::new(MAX_CHANNELS)),
            sftp: Mutex::new(files::SftpSlot::Untried),
        });
        st.session = Some(s.clone());
        Ok(s)
    }

    /// The error for an operation that broke because the session went away.
    fn lost(&self, sess: &Session, what: &str, e: impl std::fmt::Display) -> ConnError {
        if sess.handle.is_closed() {
            ConnError::failed(format!(
                "connection to {} lost {what}: {e}",
                self.opts.target()
            ))
        } else {
            ConnError::failed(format!("{} {what}: {e}", self.opts.target()))
        }
    }

    fn timed_out(&self, after: Duration) -> ConnError {
        ConnError::timeout(format!(
            "command timed out after {}s on {}",
            session::fmt_secs(after),
            self.opts.target()
        ))
    }

    /// Opens a session channel, waiting briefly when the server is at its channel limit.
    async fn open_channel(&self, sess: &Session) -> Result<Channel<Msg>, ConnError> {
        let mut delay = Duration::from_millis(5);
        for attempt in 0.. {
            match sess.handle.channel_open_session().await {
                Ok(ch) => return Ok(ch),
                Err(russh::Error::ChannelOpenFailure(
                    ChannelOpenFailure::AdministrativelyProhibited
                    | ChannelOpenFailure::ResourceShortage,
                )) if attempt < 10 => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(self.lost(sess, "opening a channel", e)),
            }
        }
        Err(ConnError::failed("unreachable"))
    }

    async fn permit(&self, sess: &Session) -> Result<OwnedSemaphorePermit, ConnError> {
        sess.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ConnError::failed("session closed"))
    }

    /// Runs `cmdline` (already a complete command line for the remote shell) on a new channel.
    /// With `sudo`, stderr goes through the handshake first: the password is written only when
    /// sudo asks, `input` only once the command has started. With `group`, the command line
    /// starts with PGID_PROLOGUE: its process group is recorded there, and stopped when the
    /// deadline passes or the output is too large.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run(
        &self,
        sess: &Session,
        cmdline: &str,
        input: Input,
        mut sink: Sink,
        output: Option<tokio::sync::mpsc::UnboundedSender<OutputChunk>>,
        deadline: Option<Duration>,
        mut sudo: Option<SudoHandshake>,
        group: Option<&Group>,
    ) -> Result<RunResult, ConnError> {
        // The deadline covers waiting for a channel too (a server at its session limit, or a
        // link that went silent), not just the command itself.
        let deadline_at = deadline.map(deadline_after);
        let start = async {
            let permit = self.permit(sess).await?;
            let ch = self.open_channel(sess).await?;
            ch.exec(true, cmdline)
                .await
                .map_err(|e| self.lost(sess, "starting a command", e))?;
            Ok::<_, ConnError>((permit, ch))
        };
        let started = match (deadline_at, deadline) {
            (Some(at), Some(after)) => tokio::time::timeout_at(at, start)
                .await
                .map_err(|_| self.timed_out(after))?,
            _ => start.await,
        };
        let (_permit, ch) = started?;
        let (mut rx, tx) = ch.split();

        // Released when the command has started (at once without a sudo handshake).
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let mut go_tx = Some(go_tx);
        if sudo.is_none()
            && let Some(go) = go_tx.take()
        {
            let _ = go.send(());
        }
        let mut overflow = false;
        let writer = async {
            if go_rx.await.is_err() {
                // sudo refused the password: stdin was closed, nothing else is sent.
                return Ok(());
            }
            match input {
                Input::None => {}
                Input::Bytes(b) => tx.data_bytes(b).await?,
                Input::File(mut f) => loop {
                    let mut buf = vec![0u8; CHUNK];
                    let n = f.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    buf.truncate(n);
                    tx.data_bytes(buf).await?;
                },
            }
            tx.eof().await?;
            Ok::<(), russh::Error>(())
        };

        // A stoppable command announces its process group first (see PGID_PROLOGUE).
        let mut marker = group.map(|_| Vec::new());
        let reader = async {
            tokio::pin!(writer);
            let mut writer_done = false;
            let mut res = RunResult {
                rc: -1,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            let mut status = None;
            let mut closed = false;
            loop {
                tokio::select! {
                    w = &mut writer, if !writer_done => {
                        writer_done = true;
                        // The command may exit without reading its input; that is its business.
                        if let Err(e) = w {
                            tracing::debug!(error = %e, "stdin not fully delivered");
                        }
                    }
                    msg = rx.wait() => match msg {
                        Some(ChannelMsg::Data { data }) => {
                            if matches!(sink, Sink::Collect)
                                && res.stdout.len() + data.len() > MAX_CAPTURE
                            {
                                overflow = true;
                                break;
                            }
                            if let Some(o) = &output {
                                let _ = o.send(OutputChunk::Stdout(data.to_vec()));
                            }
                            match &mut sink {
                                Sink::Collect => res.stdout.extend_from_slice(&data),
                                Sink::File(f) => f.write_all(&data).await.map_err(|e| {
                                    ConnError::failed(format!("writing the local file: {e}"))
                                })?,
                            }
                        }
                        Some(ChannelMsg::ExtendedData { data, .. }) => {
                            let mut data = data.to_vec();
                            if let Some(hs) = sudo.as_mut() {
                                let mut chunk: &[u8] = &data;
                                let mut started = None;
                                while let Some(step) = hs.feed(chunk) {
                                    chunk = &[];
                                    match step {
                                        SudoStep::Password(pw) => {
                                            if let Err(e) = tx.data_bytes(pw).await {
                                                tracing::debug!(error = %e, "sudo password not delivered");
                                            }
                                        }
                                        SudoStep::Refused => {
                                            go_tx = None;
                                            let _ = tx.eof().await;
                                        }
                                        SudoStep::Started(rest) => {
                                            started = Some(rest);
                                            break;
                                        }
                                    }
                                }
                                match started {
                                    None => continue,
                                    Some(rest) => {
                                        sudo = None;
                                        if let Some(go) = go_tx.take() {
                                            let _ = go.send(());
                                        }
                                        data = rest;
                                    }
                                }
                            }
                            if res.stderr.len() + data.len() > MAX_CAPTURE {
                                overflow = true;
                                break;
                            }
                            let data = match marker.as_mut() {
                                None => data,
                                Some(buf) => {
                                    buf.extend_from_slice(&data);
                                    match take_pgid_marker(buf) {
                                        None => continue,
                                        Some((id, rest)) => {
                                            if let Some(g) = group {
                                                g.pgid.store(id.unwrap_or(0), Ordering::SeqCst);
                                            }
                                            marker = None;
                                            rest
                                        }
                                    }
                                }
                            };
                            if let Some(o) = &output {
                                let _ = o.send(OutputChunk::Stderr(data.clone()));
                            }
                            res.stderr.extend_from_slice(&data);
                        }
                        Some(ChannelMsg::ExitStatus { exit_status }) => {
                            Group::ended(group);
                            status = Some(exit_status as i32)
                        }
                        Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                            Group::ended(group);
                            status = Some(128 + signal_number(&signal_name))
                        }
                        Some(ChannelMsg::Failure) => {
                            return Err(ConnError::failed(format!(
                                "{} refused to run the command (exec request failed)",
                                self.opts.target()
                            )));
                        }
                        Some(ChannelMsg::Close) => {
                            closed = true;
                            break;
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            if overflow {
                return Err(output_too_large(Some(&self.opts.target())));
            }
            if let Some(hs) = sudo.as_mut() {
                // The command never started: what sudo said is all there is.
                if hs.refused() {
                    return Err(hs.refused_error());
                }
                res.stderr.extend_from_slice(&hs.take_stderr());
            }
            if let Some(buf) = marker.take() {
                res.stderr.extend_from_slice(&buf);
            }
            match status {
                Some(rc) => {
                    res.rc = rc;
                    Ok(res)
                }
                None if !closed || sess.handle.is_closed() => {
                    Err(self.lost(sess, "while a command was running", "the session ended"))
                }
                None => Err(ConnError::failed(format!(
                    "{}: the command ended without an exit status",
                    self.opts.target()
                ))),
            }
        };

        let out = match (deadline_at, deadline) {
            (Some(at), Some(after)) => match tokio::time::timeout_at(at, reader).await {
                Ok(r) => r,
                Err(_) => {
                    // sshd refuses `signal` requests in many setups (root sessions, OpenSSH
                    // before 7.9), so the process group the command announced is stopped from
                    // a second channel, with the same privileges, after the signal and close.
                    let _ = tx.signal(Sig::KILL).await;
                    let _ = tx.close().await;
                    self.stop_group(sess, group).await;
                    return Err(self.timed_out(after));
                }
            },
            _ => reader.await,
        };
        if overflow {
            // Too much output: stop the command rather than wait for it.
            let _ = tx.signal(Sig::KILL).await;
            let _ = tx.close().await;
            self.stop_group(sess, group).await;
        }
        if let Sink::File(f) = &mut sink {
            f.flush()
                .await
                .map_err(|e| ConnError::failed(format!("writing the local file: {e}")))?;
        }
        out
    }
}

/// `now + after`, saturating: a timeout too large for the clock never panics (callers bound
/// timeouts; this is the last line).
fn deadline_after(after: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(Duration::from_secs(crate::value::MAX_SECONDS)))
        .unwrap_or(now)
}

/// A command's process group, as its PGID_PROLOGUE announced it, and the privileges needed to
/// stop it (a become'd command runs as another user).
pub(crate) struct Group {
    /// 0 until announced, and again once the command ended or was stopped.
    pgid: AtomicU32,
    kill_as: Option<Become>,
}

impl Group {
    fn new(kill_as: Option<Become>) -> Group {
        Group {
            pgid: AtomicU32::new(0),
            kill_as,
        }
    }

    /// The command ended: there is nothing left to stop (its number may be reused).
    fn ended(group: Option<&Group>) {
        if let Some(g) = group {
            g.pgid.store(0, Ordering::SeqCst);
        }
    }

    /// The group to stop, once: later callers get `None`.
    fn take(&self) -> Option<u32> {
        Some(self.pgid.swap(0, Ordering::SeqCst)).filter(|id| *id > 1)
    }
}

/// Stops the command's process group when `exec` is dropped while it runs (Ctrl-C, a caller's
/// timeout): from a new channel of the same session, in the background; `close` waits for it.
struct StopOnDrop {
    conn: SshConnection,
    sess: Arc<Session>,
    group: Arc<Group>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.group.take() {
            let (conn, sess) = (self.conn.clone(), self.sess.clone());
            let kill_as = self.group.kill_as.clone();
            self.conn.cleanup.spawn(async move {
                conn.kill_group(&sess, id, kill_as).await;
            });
        }
    }
}

/// Prepended to every command: prints the command's process group on stderr (read from /proc
/// on Linux, else the shell's pid), which `run` strips from the output. A non-pty command
/// outlives its channel, so this is how mixop can stop it (see `Group`).
const PGID_PROLOGUE: &str = "read -r _ _ _ _ __mixop_pg _ < /proc/$$/stat 2>/dev/null || __mixop_pg=$$; printf '\\001mixop-pgid:%s\\n' \"$__mixop_pg\" >&2; unset __mixop_pg; ";
const PGID_MARK: &[u8] = b"\x01mixop-pgid:";

/// Takes the marker line off the front of stderr: `None` while it may still be incomplete,
/// else the process group (if the line was ours) and the bytes that follow it.
fn take_pgid_marker(buf: &mut Vec<u8>) -> Option<(Option<u32>, Vec<u8>)> {
    let n = buf.len().min(PGID_MARK.len());
    if buf[..n] != PGID_MARK[..n] {
        return Some((None, std::mem::take(buf)));
    }
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let id = std::str::from_utf8(&buf[PGID_MARK.len().min(nl)..nl])
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let rest = buf.split_off(nl + 1);
    buf.clear();
    Some((id, rest))
}

impl SshConnection {
    /// Stops the command's group, if it announced one and it is still running.
    async fn stop_group(&self, sess: &Session, group: Option<&Group>) {
        if let Some(g) = group
            && let Some(id) = g.take()
        {
            self.kill_group(sess, id, g.kill_as.clone()).await;
        }
    }

    /// Stops a process group (`stop_group_command`) from a new channel.
    async fn kill_group(&self, sess: &Session, pgid: u32, kill_as: Option<Become>) {
        let Ok(line) = command_line(&stop_group_command(pgid, kill_as)) else {
            return;
        };
        let input = line.stdin.map_or(Input::None, Input::Bytes);
        // Boxed: `run` calls this function.
        let run = Box::pin(self.run(
            sess,
            &line.cmdline,
            input,
            Sink::Collect,
            None,
            None,
            line.sudo,
            None,
        ));
        match tokio::time::timeout(Duration::from_secs(5), run).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, pgid, "could not stop a command"),
            Err(_) => tracing::debug!(pgid, "stopping a command took too long"),
        }
    }
}

fn signal_number(sig: &Sig) -> i32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(name) => match name.as_str() {
            "BUS" => 7,
            "USR2" => 12,
            "STKFLT" => 16,
            "CHLD" => 17,
            "CONT" => 18,
            "STOP" => 19,
            "TSTP" => 20,
            "TTIN" => 21,
            "TTOU" => 22,
            "URG" => 23,
            "XCPU" => 24,
            "XFSZ" => 25,
            "VTALRM" => 26,
            "PROF" => 27,
            "WINCH" => 28,
            "IO" => 29,
            "PWR" => 30,
            "SYS" => 31,
            _ => 0,
        },
    }
}

fn is_shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// What goes into an exec request: the command line, the command's input, and the sudo
/// handshake to run before that input is sent.
struct CommandLine {
    cmdline: String,
    stdin: Option<Vec<u8>>,
    sudo: Option<SudoHandshake>,
}

/// The exec request's command line only reads the script from stdin and runs it: sshd logs
/// that line (LogLevel DEBUG3) and every user sees it in `ps`, and the script may hold a secret
/// (an environment value, a templated command). `head -c` reads exactly the script's bytes, so
/// the command's own input follows intact; without `head` the command fails rather than run
/// nothing.
fn script_reader(len: usize) -> String {
    format!("__mixop_script=$(head -c {len}) || exit 127; eval \"$__mixop_script\"")
}

/// The command line sent in the exec request: `posix_command`'s `sh -c` (with the sudo wrapper
/// for `become`), quoted for the login shell sshd runs it with, running [`script_reader`]; the
/// script goes first on stdin, then the command's input. `env` becomes `export` statements in
/// the script, since sshd drops most `env` requests (AcceptEnv).
fn command_line(spec: &CommandSpec) -> Result<CommandLine, ConnError> {
    let mut s = spec.clone();
    s.output = None;
    if !spec.env.is_empty() {
        let mut prefix = String::from("export");
        for (k, v) in &spec.env {
            if !is_shell_name(k) {
                return Err(ConnError::failed(format!(
                    "environment variable name '{k}' is not a valid shell name"
                )));
            }
            prefix.push_str(&format!(" {k}={}", shell_words::quote(v)));
        }
        s.cmd = format!("{prefix}; {}", spec.cmd);
    }
    let mut input = std::mem::take(&mut s.cmd).into_bytes();
    s.cmd = script_reader(input.len());
    input.extend_from_slice(spec.stdin.as_deref().unwrap_or_default());
    s.stdin = Some(input);
    let pc = posix_command(&s);
    Ok(CommandLine {
        cmdline: shell_words::join(&pc.argv),
        stdin: pc.stdin,
        sudo: pc.sudo,
    })
}

/// sudo's own refusals, turned into errors that say what to fix. The command never ran in these
/// cases, so its stderr is sudo's alone.
fn sudo_failure(spec: &CommandSpec, out: &RunResult) -> Option<ConnError> {
    let b = spec.become_.as_ref()?;
    if out.rc != 1 {
        return None;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if b.password.is_some()
        && (err.starts_with("Sorry, try again") || err.contains("incorrect password attempt"))
    {
        return Some(ConnError::failed(format!(
            "sudo: incorrect password for becoming '{}' (check ansible_become_password)",
            b.user
        )));
    }
    if b.password.is_none() && err.contains("a password is required") {
        return Some(ConnError::failed(format!(
            "sudo: a password is required to become '{}' and none was given (set ansible_become_password)",
            b.user
        )));
    }
    None
}

#[async_trait]
impl Connection for SshConnection {
    fn transport(&self) -> Transport {
        Transport::Ssh
    }

    async fn exec(&self, spec: CommandSpec) -> Result<CommandOutput, ConnError> {
        let mut s = spec.clone();
        s.cmd = format!("{PGID_PROLOGUE}{}", spec.cmd);
        let line = command_line(&s)?;
        let input = match line.stdin {
            Some(b) => Input::Bytes(b),
            None => Input::None,
        };
        // A session found dead is replaced here (one reconnect); a command that was running
        // when the session broke fails and is never re-run.
        let sess = self.session().await?;
        let stop = StopOnDrop {
            conn: self.clone(),
            sess: sess.clone(),
            group: Arc::new(Group::new(spec.become_.clone())),
        };
        let out = self
            .run(
                &sess,
                &line.cmdline,
                input,
                Sink::Collect,
                spec.output.clone(),
                spec.timeout,
                line.sudo,
                Some(&stop.group),
            )
            .await;
        // Finished (or stopped already): nothing for the guard to do.
        Group::ended(Some(&stop.group));
        let out = out?;
        if let Some(e) = sudo_failure(&spec, &out) {
            return Err(e);
        }
        Ok(CommandOutput {
            rc: out.rc,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn put_bytes(&self, data: &[u8], dest: &str, mode: Option<u32>) -> Result<(), ConnError> {
        let sess = self.session().await?;
        files::put(self, &sess, files::Source::Bytes(data), dest, mode).await
    }

    async fn put_file(&self, src: &Path, dest: &str, mode: Option<u32>) -> Result<(), ConnError> {
        let f = tokio::fs::File::open(src)
            .await
            .map_err(|e| ConnError::failed(format!("{}: {e}", src.display())))?;
        let sess = self.session().await?;
        files::put(self, &sess, files::Source::File(f), dest, mode).await
    }

    async fn get_file(&self, src: &str, dest: &Path) -> Result<(), ConnError> {
        let sess = self.session().await?;
        files::get(self, &sess, src, dest).await
    }

    async fn remote_fs(&self) -> Result<Option<Arc<dyn super::RemoteFs>>, ConnError> {
        let sess = self.session().await?;
        files::remote_fs(self, sess).await
    }

    async fn close(&self) {
        // Commands being stopped need the session for that.
        self.cleanup.settle(CLEANUP_LIMIT).await;
        let mut st = self.state.lock().await;
        st.closed = true;
        if let Some(s) = st.session.take() {
            let _ = s
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_for_the_login_shell() {
        let mut spec = CommandSpec::new("echo \"$HOME\" 'x'");
        spec.env = vec![("A_B".into(), "it's".into())];
        let CommandLine {
            cmdline: line,
            stdin,
            sudo,
        } = command_line(&spec).unwrap();
        assert!(sudo.is_none());
        let script = "export A_B='it'\\''s'; echo \"$HOME\" 'x'";
        assert_eq!(
            shell_words::split(&line).unwrap(),
            vec!["/bin/sh", "-c", &script_reader(script.len())]
        );
        assert_eq!(stdin.unwrap(), script.as_bytes());
        spec.env = vec![("1A".into(), "x".into())];
        assert!(command_line(&spec).is_err());
    }

    #[test]
    fn become_goes_through_posix_argv() {
        let mut spec = CommandSpec::new("id -u");
        spec.stdin = Some(b"data".to_vec());
        spec.become_ = Some(Become {
            method: "sudo".into(),
            user: "root".into(),
            password: Some("pw".into()),
        });
        let line = command_line(&spec).unwrap();
        let words = shell_words::split(&line.cmdline).unwrap();
        assert_eq!(words[0], "sudo");
        assert!(words.contains(&"-S".to_string()));
        assert!(!line.cmdline.contains("pw\n"));
        // The password waits for sudo's prompt: it is never queued ahead of the input, which
        // is the script, then the command's own input.
        assert_eq!(line.stdin.unwrap(), b"id -udata");
        assert!(!line.cmdline.contains("id -u"));
        let hs = line.sudo.unwrap();
        assert_eq!(words[3], hs.prompt_text());
    }

    #[test]
    fn sudo_refusals_become_errors() {
        let mut spec = CommandSpec::new("true");
        spec.become_ = Some(Become {
            method: "sudo".into(),
            user: "root".into(),
            password: Some("bad".into()),
        });
        let out = RunResult {
            rc: 1,
            stdout: vec![],
            stderr: b"Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n".to_vec(),
        };
        let e = sudo_failure(&spec, &out).unwrap();
        assert!(e.message.contains("incorrect password"), "{e}");
        let ok = RunResult {
            rc: 1,
            stdout: vec![],
            stderr: b"grep: nothing\n".to_vec(),
        };
        assert!(sudo_failure(&spec, &ok).is_none());
    }

    #[test]
    fn pgid_marker_is_stripped_from_stderr() {
        let mut buf = b"\x01mixop-pg".to_vec();
        assert!(take_pgid_marker(&mut buf).is_none(), "incomplete: wait");
        buf.extend_from_slice(b"id:4242\nreal stderr");
        assert_eq!(
            take_pgid_marker(&mut buf),
            Some((Some(4242), b"real stderr".to_vec()))
        );
        let mut other = b"plain".to_vec();
        assert_eq!(
            take_pgid_marker(&mut other),
            Some((None, b"plain".to_vec()))
        );
    }

    #[test]
    fn signals_map_to_shell_codes() {
        assert_eq!(128 + signal_number(&Sig::KILL), 137);
        assert_eq!(128 + signal_number(&Sig::Custom("USR2".into())), 140);
    }
}
