//! The WinRS shell of one host: created once, reused by every command, recreated after the host
//! lost it (reboot, service restart).

use std::sync::atomic::Ordering;

use tokio::sync::{Mutex, mpsc};

use super::session::{Reply, SessionHandle};
use super::soap::{self, StreamKind};
use crate::connection::ConnError;

/// Input for a command.
pub enum Stdin {
    None,
    Bytes(Vec<u8>),
    /// Produced while the command runs (file uploads), in bounded memory.
    Stream(mpsc::Receiver<Result<Vec<u8>, ConnError>>),
}

/// Receives output as it arrives; an error stops (and terminates) the command.
pub type Sink<'a> = dyn FnMut(StreamKind, &[u8]) -> Result<(), ConnError> + Send + 'a;

pub struct Shell {
    session: SessionHandle,
    id: Mutex<Option<String>>,
}

/// Signals `terminate` for a command unless disarmed: on timeout, on cancellation (the exec
/// future dropped) and on errors, so the host does not keep running an orphan.
struct Terminate {
    session: SessionHandle,
    shell: String,
    command: String,
    armed: bool,
}

impl Drop for Terminate {
    fn drop(&mut self) {
        if self.armed {
            self.session
                .call_detached(soap::signal_terminate(&self.shell, &self.command));
        }
    }
}

struct Active<'a>(&'a SessionHandle);
impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shell {
    pub fn new(session: SessionHandle) -> Shell {
        Shell {
            session,
            id: Mutex::new(None),
        }
    }

    fn host(&self) -> &str {
        &self.session.settings.host
    }

    fn fault(&self, op: &str, f: &soap::Fault) -> ConnError {
        ConnError::failed(format!("{}: {op}: {}", self.host(), f.describe()))
    }

    /// The shell id, creating the shell if there is none.
    pub async fn ensure(&self) -> Result<String, ConnError> {
        let mut id = self.id.lock().await;
        if let Some(id) = id.as_ref() {
            return Ok(id.clone());
        }
        let r = self.session.call(soap::create_shell()).await?;
        let created = match r {
            Ok(r) => r.shell_id.filter(|s| !s.is_empty()).ok_or_else(|| {
                ConnError::failed(format!(
                    "{}: the Create answer carries no ShellId",
                    self.host()
                ))
            })?,
            Err(f) => return Err(self.fault("cannot create a WinRS shell", &f)),
        };
        *id = Some(created.clone());
        Ok(created)
    }

    async fn forget(&self, stale: &str) {
        let mut id = self.id.lock().await;
        if id.as_deref() == Some(stale) {
            *id = None;
        }
    }

    /// Deletes the shell (at the end of the run).
    pub async fn delete(&self) {
        let id = self.id.lock().await.take();
        if let Some(id) = id {
            let _ = self.session.call(soap::delete_shell(&id)).await;
        }
    }

    /// Runs `cmdline` through cmd.exe, feeding `stdin` and handing output to `sink` as it comes.
    /// Returns the exit code.
    pub async fn run(
        &self,
        cmdline: &str,
        stdin: Stdin,
        sink: &mut Sink<'_>,
    ) -> Result<i32, ConnError> {
        self.session.active.fetch_add(1, Ordering::Relaxed);
        let _active = Active(&self.session);
        let console = matches!(stdin, Stdin::None);
        // A shell lost to a reboot is only noticed here; the command had not started, so it
        // is safe to create a new shell and send it once more.
        let mut retried = false;
        let (shell, command) = loop {
            let shell = self.ensure().await?;
            match self
                .session
                .call(soap::command(&shell, cmdline, console))
                .await?
            {
                Ok(r) => match r.command_id {
                    Some(c) if !c.is_empty() => break (shell, c),
                    _ => {
                        return Err(ConnError::failed(format!(
                            "{}: the Command answer carries no CommandId",
                            self.host()
                        )));
                    }
                },
                Err(f) if f.is_shell_not_found() && !retried => {
                    retried = true;
                    self.forget(&shell).await;
                }
                Err(f) if f.is_shell_not_found() => {
                    self.forget(&shell).await;
                    return Err(self.fault("the shell vanished again", &f));
                }
                Err(f) => return Err(self.fault("cannot start the command", &f)),
            }
        };
        let mut guard = Terminate {
            session: self.session.clone(),
            shell: shell.clone(),
            command: command.clone(),
            armed: true,
        };
        self.feed(&shell, &command, stdin).await?;
        let rc = loop {
            let r: Reply = self.session.call(soap::receive(&shell, &command)).await?;
            match r {
                Ok(r) => {
                    for (kind, data) in &r.streams {
                        sink(*kind, data)?;
                    }
                    if r.done {
                        break r.exit_code.unwrap_or(0);
                    }
                }
                Err(f) if f.is_timed_out() => continue,
                Err(f) if f.is_not_found() => {
                    guard.armed = false;
                    if f.is_shell_not_found() {
                        self.forget(&shell).await;
                    }
                    return Err(ConnError::failed(format!(
                        "{}: the command was lost while running: the host restarted or the \
                         WinRM service was restarted ({})",
                        self.host(),
                        f.describe()
                    )));
                }
                Err(f) => return Err(self.fault("cannot read command output", &f)),
            }
        };
        // Windows keeps a finished command until it is signalled (pywinrm's cleanup_command);
        // nobody needs to wait for that answer, so it goes when the connection is idle.
        guard.armed = false;
        self.session.defer(soap::signal_terminate(&shell, &command));
        // Windows exit codes are u32 (e.g. 0xC000013A after Ctrl-C): keep the bits.
        Ok(rc as i32)
    }

    async fn feed(&self, shell: &str, command: &str, stdin: Stdin) -> Result<(), ConnError> {
        let chunk = soap::send_chunk_size(self.session.settings.max_envelope);
        match stdin {
            Stdin::None => Ok(()),
            Stdin::Bytes(data) => {
                if data.is_empty() {
                    return self.send(shell, command, &[], true).await;
                }
                let mut pieces = data.chunks(chunk).peekable();
                while let Some(p) = pieces.next() {
                    self.send(shell, command, p, pieces.peek().is_none())
                        .await?;
                }
                Ok(())
            }
            Stdin::Stream(mut rx) => {
                let mut pending: Vec<u8> = Vec::with_capacity(chunk);
                while let Some(item) = rx.recv().await {
                    let mut data = item?;
                    let mut off = 0;
                    while off < data.len() {
                        let take = (chunk - pending.len()).min(data.len() - off);
                        pending.extend_from_slice(&data[off..off + take]);
                        off += take;
                        if pending.len() == chunk {
                            self.send(shell, command, &pending, false).await?;
                            pending.clear();
                        }
                    }
                    data.clear();
                }
                self.send(shell, command, &pending, true).await
            }
        }
    }

    async fn send(
        &self,
        shell: &str,
        command: &str,
        data: &[u8],
        end: bool,
    ) -> Result<(), ConnError> {
        match self
            .session
            .call(soap::send(shell, command, data, end))
            .await?
        {
            Ok(_) => Ok(()),
            Err(f) => Err(self.fault("cannot send input to the command", &f)),
        }
    }

    /// Starts a command that stays alive for several exchanges (the PowerShell host process):
    /// stdin is a pipe fed with `Process::send`, output is read with `Process::receive` only
    /// when an answer is expected, so no Receive holds the connection while the host is idle.
    pub async fn start_process(&self, cmdline: &str) -> Result<super::process::Process, ConnError> {
        let mut retried = false;
        loop {
            let shell = self.ensure().await?;
            match self
                .session
                .call(soap::command(&shell, cmdline, false))
                .await?
            {
                Ok(r) => match r.command_id {
                    Some(c) if !c.is_empty() => {
                        return Ok(super::process::Process::new(self.session.clone(), shell, c));
                    }
                    _ => {
                        return Err(ConnError::failed(format!(
                            "{}: the Command answer carries no CommandId",
                            self.host()
                        )));
                    }
                },
                Err(f) if f.is_shell_not_found() && !retried => {
                    retried = true;
                    self.forget(&shell).await;
                }
                Err(f) => {
                    if f.is_shell_not_found() {
                        self.forget(&shell).await;
                    }
                    return Err(self.fault("cannot start the command", &f));
                }
            }
        }
    }
}
