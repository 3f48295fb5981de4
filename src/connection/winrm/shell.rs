//! The WinRS shell of one host: created once, reused by every command, recreated after the host
//! lost it (reboot, service restart), and replaced before the per-user operations quota.
//!
//! Windows counts every Command against MaxConcurrentOperationsPerUser (1500 by default) until
//! the shell is deleted; a Signal terminate does not give the operation back (MS-WSMV note <118>,
//! ansible/ansible#83656). So commands are counted per shell: after `commands_per_shell` new
//! commands go to a fresh shell and the old one is deleted once its commands have finished; and a
//! Command refused with the quota fault (2150859174) is sent once more on a fresh shell, as
//! Ansible does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{Mutex, mpsc};

use super::session::{Reply, SessionHandle, Terminate};
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
    /// Commands per live shell (the current one and retired ones still running commands).
    book: SharedBook,
}

struct Active<'a>(&'a SessionHandle);
impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a command is started (`Shell::run_with`).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `WINRS_SKIP_CMD_SHELL=TRUE`: the command line goes to CreateProcess, not to cmd.exe.
    pub skip_cmd_shell: bool,
    /// Run in a shell of its own, created with these options (working directory, environment)
    /// and deleted afterwards, instead of the host's shared shell.
    pub own_shell: Option<soap::ShellOptions>,
}

#[derive(Default)]
struct Book {
    shells: HashMap<String, Usage>,
    /// Shells created for one command (working directory, environment) and not deleted yet.
    own: std::collections::HashSet<String>,
}

#[derive(Default)]
struct Usage {
    /// Commands started on the shell.
    started: u64,
    /// Commands started and not finished.
    running: u64,
    /// No new commands go there; delete it when `running` drops to 0.
    retiring: bool,
}

impl Book {
    /// Marks `shell` as retired; true when nothing runs there any more, so it must be deleted
    /// now (it is then forgotten).
    fn retire(&mut self, shell: &str) -> bool {
        match self.shells.get_mut(shell) {
            Some(u) if u.running == 0 => {
                self.shells.remove(shell);
                true
            }
            Some(u) => {
                u.retiring = true;
                false
            }
            None => false,
        }
    }

    /// One command of `shell` ended; true when that leaves a retired shell with nothing to
    /// run, which must then be deleted (`forget`: drop it from the book now).
    fn ended(&mut self, shell: &str, forget: bool) -> bool {
        let Some(u) = self.shells.get_mut(shell) else {
            return false;
        };
        u.running = u.running.saturating_sub(1);
        let gone = u.retiring && u.running == 0;
        if gone && forget {
            self.shells.remove(shell);
        }
        gone
    }
}

type SharedBook = Arc<std::sync::Mutex<Book>>;

fn lock(book: &SharedBook) -> std::sync::MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deletes `shell` in the background (a command cancelled or failed): the shell stays in the
/// book until the Delete has been answered, so `Shell::delete` at the end of the run still
/// deletes it should this not get through first.
fn delete_detached(session: &SessionHandle, book: &SharedBook, shell: String) {
    let (s, book) = (session.clone(), book.clone());
    session.cleanup.spawn(async move {
        let _ = s.call(soap::delete_shell(&shell)).await;
        let mut b = lock(&book);
        b.shells.remove(&shell);
        b.own.remove(&shell);
    });
}

/// A started command's claim on its shell: a retired shell is deleted when its last claim ends.
struct Lease {
    book: SharedBook,
    session: SessionHandle,
    shell: String,
    done: bool,
}

impl Lease {
    /// Ends the claim of a command that finished; deletes the shell (and waits for that) if it
    /// was retired and this was its last command. True when the shell was deleted, so the
    /// command needs no cleanup Signal.
    async fn finish(mut self) -> bool {
        self.done = true;
        let delete = lock(&self.book).ended(&self.shell, true);
        if delete {
            let _ = self.session.call(soap::delete_shell(&self.shell)).await;
        }
        delete
    }
}

impl Drop for Lease {
    /// A command that did not finish normally (error, cancellation).
    fn drop(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if lock(&self.book).ended(&self.shell, false) {
            delete_detached(&self.session, &self.book, self.shell.clone());
        }
    }
}

/// A command's own shell: deleted when the command ends, however it ends.
struct OwnShell {
    session: SessionHandle,
    book: SharedBook,
    shell: Option<String>,
}

impl OwnShell {
    /// The command finished: delete the shell and wait for that.
    async fn delete(mut self) {
        if let Some(shell) = self.shell.take() {
            let _ = self.session.call(soap::delete_shell(&shell)).await;
            lock(&self.book).own.remove(&shell);
        }
    }
}

impl Drop for OwnShell {
    fn drop(&mut self) {
        if let Some(shell) = self.shell.take() {
            delete_detached(&self.session, &self.book, shell);
        }
    }
}

/// Attempts for input the host refuses as busy (ERROR_BUSY), as Ansible.
const SEND_ATTEMPTS: u32 = 3;

impl Shell {
    pub fn new(session: SessionHandle) -> Shell {
        Shell {
            session,
            id: Mutex::new(None),
            book: Arc::default(),
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
        let created = self.create(&self.shell_options()).await?;
        self.book().shells.insert(created.clone(), Usage::default());
        *id = Some(created.clone());
        Ok(created)
    }

    async fn forget(&self, stale: &str) {
        let mut id = self.id.lock().await;
        if id.as_deref() == Some(stale) {
            *id = None;
        }
        self.book().shells.remove(stale);
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// The options of the shared shell.
    fn shell_options(&self) -> soap::ShellOptions {
        soap::ShellOptions {
            noprofile: self.session.settings.noprofile,
            ..Default::default()
        }
    }

    /// Creates a shell and returns its id.
    async fn create(&self, opts: &soap::ShellOptions) -> Result<String, ConnError> {
        match self.session.call(soap::create_shell_with(opts)).await? {
            Ok(r) => r.shell_id.filter(|s| !s.is_empty()).ok_or_else(|| {
                ConnError::failed(format!(
                    "{}: the Create answer carries no ShellId",
                    self.host()
                ))
            }),
            Err(f) => Err(self.fault("cannot create a WinRS shell", &f)),
        }
    }

    /// The shared shell for one more command: rotated first when it has had its share of
    /// commands (the old one is deleted now if idle, else when its last command ends).
    async fn lease(&self) -> Result<Lease, ConnError> {
        let mut id = self.id.lock().await;
        if let Some(current) = id.clone() {
            let limit = self.session.settings.commands_per_shell;
            let full = self
                .book()
                .shells
                .get(&current)
                .is_some_and(|u| u.started >= limit);
            if full {
                *id = None;
                let idle = self.book().retire(&current);
                if idle {
                    // Deleted before the next Create, so its operations are free again.
                    let _ = self.session.call(soap::delete_shell(&current)).await;
                }
            }
        }
        let shell = match id.as_ref() {
            Some(s) => s.clone(),
            None => {
                let created = self.create(&self.shell_options()).await?;
                self.book().shells.insert(created.clone(), Usage::default());
                *id = Some(created.clone());
                created
            }
        };
        let mut book = self.book();
        let usage = book.shells.entry(shell.clone()).or_default();
        usage.started += 1;
        usage.running += 1;
        Ok(Lease {
            book: self.book.clone(),
            session: self.session.clone(),
            shell,
            done: false,
        })
    }

    /// The host refused a Command on `shell` for the operations quota: no new commands go
    /// there; it is deleted now if nothing else runs on it, which gives its operations back.
    async fn retire_for_quota(&self, shell: &str) {
        let mut id = self.id.lock().await;
        if id.as_deref() == Some(shell) {
            *id = None;
        }
        let idle = self.book().retire(shell);
        if idle {
            let _ = self.session.call(soap::delete_shell(shell)).await;
        }
        drop(id);
    }

    /// Deletes the shell (at the end of the run), shells retired before it, and any shell of a
    /// single command whose deletion may not have got through.
    pub async fn delete(&self) {
        let mut id = self.id.lock().await;
        let current = id.take();
        let others: Vec<String> = {
            let mut book = self.book();
            let mut v: Vec<String> = book.shells.drain().map(|(k, _)| k).collect();
            v.extend(book.own.drain());
            v
        };
        let current_first = current
            .iter()
            .chain(others.iter().filter(|s| Some(*s) != current.as_ref()));
        for shell in current_first {
            let _ = self.session.call(soap::delete_shell(shell)).await;
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
        self.run_with(cmdline, &RunOptions::default(), stdin, sink)
            .await
    }

    /// `run` with options: without cmd.exe, or in a shell of its own.
    pub async fn run_with(
        &self,
        cmdline: &str,
        opts: &RunOptions,
        stdin: Stdin,
        sink: &mut Sink<'_>,
    ) -> Result<i32, ConnError> {
        self.session.active.fetch_add(1, Ordering::Relaxed);
        let _active = Active(&self.session);
        let console = matches!(stdin, Stdin::None);
        let mut own = OwnShell {
            session: self.session.clone(),
            book: self.book.clone(),
            shell: None,
        };
        let (shell, command, lease, mut guard) = match &opts.own_shell {
            Some(shell_opts) => {
                let shell = self.create(shell_opts).await?;
                self.book().own.insert(shell.clone());
                own.shell = Some(shell.clone());
                let req = soap::command_with(&shell, cmdline, console, opts.skip_cmd_shell);
                match self.session.call_command(&shell, req).await? {
                    (Ok(_), guard) => {
                        let (command, guard) = self.started(guard)?;
                        (shell, command, None, guard)
                    }
                    (Err(f), _) => return Err(self.fault("cannot start the command", &f)),
                }
            }
            None => {
                let (shell, command, lease, guard) = self.start(cmdline, console, opts).await?;
                (shell, command, Some(lease), guard)
            }
        };
        self.feed(&shell, &command, stdin).await?;
        let rc = loop {
            let r: Reply = self
                .session
                .receive(soap::receive(&shell, &command))
                .await?;
            match r {
                Ok(r) => {
                    for (kind, data) in &r.streams {
                        sink(*kind, data)?;
                    }
                    if r.done {
                        break r.exit_code;
                    }
                }
                Err(f) if f.is_timed_out() => continue,
                Err(f) if f.is_not_found() => {
                    guard.disarm();
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
        // nobody needs to wait for that answer, so it goes when the connection is idle. A shell
        // deleted now (retired, or the command's own) needs no Signal.
        guard.disarm();
        let deleted = match lease {
            Some(lease) => lease.finish().await,
            None => {
                own.delete().await;
                true
            }
        };
        if !deleted {
            self.session.defer(soap::signal_terminate(&shell, &command));
        }
        match rc {
            // Windows exit codes are u32 (e.g. 0xC000013A after Ctrl-C): keep the bits.
            Some(rc) => Ok(rc as i32),
            None => Err(ConnError::failed(format!(
                "{}: the host reported the command done without an exit code (CommandState \
                 Done without rsp:ExitCode), so whether it succeeded is unknown",
                self.host()
            ))),
        }
    }

    /// The command id of a started command, from the guard that answers for it (there is none
    /// when the Command answer named no command).
    fn started(&self, guard: Option<Terminate>) -> Result<(String, Terminate), ConnError> {
        match guard {
            Some(g) => Ok((g.command().to_string(), g)),
            None => Err(ConnError::failed(format!(
                "{}: the Command answer carries no CommandId",
                self.host()
            ))),
        }
    }

    /// Starts a command on the shared shell: (shell, command id, its lease, its armed
    /// `Terminate`).
    async fn start(
        &self,
        cmdline: &str,
        console: bool,
        opts: &RunOptions,
    ) -> Result<(String, String, Lease, Terminate), ConnError> {
        // A shell lost to a reboot is only noticed here; the command had not started, so it
        // is safe to create a new shell and send it once more. So is a Command refused for the
        // operations quota, on a fresh shell (Ansible does the same).
        let mut retried_lost = false;
        let mut retried_quota = false;
        loop {
            let lease = self.lease().await?;
            let shell = lease.shell.clone();
            let req = soap::command_with(&shell, cmdline, console, opts.skip_cmd_shell);
            match self.session.call_command(&shell, req).await? {
                (Ok(_), guard) => {
                    let (command, guard) = self.started(guard)?;
                    return Ok((shell, command, lease, guard));
                }
                (Err(f), _) if f.is_shell_not_found() && !retried_lost => {
                    retried_lost = true;
                    drop(lease);
                    self.forget(&shell).await;
                }
                (Err(f), _) if f.is_shell_not_found() => {
                    drop(lease);
                    self.forget(&shell).await;
                    return Err(self.fault("the shell vanished again", &f));
                }
                (Err(f), _) if f.is_quota_exceeded() && !retried_quota => {
                    retried_quota = true;
                    tracing::debug!(
                        host = self.host(),
                        "operations quota reached: replacing the shell"
                    );
                    drop(lease);
                    self.retire_for_quota(&shell).await;
                }
                (Err(f), _) if f.is_internal_error() => {
                    return Err(self.fault(
                        "cannot start the command (not sent again: the host may have started it)",
                        &f,
                    ));
                }
                (Err(f), _) => return Err(self.fault("cannot start the command", &f)),
            }
        }
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
        let mut delay = self.session.settings.busy_retry_delay;
        let mut attempt = 1;
        loop {
            match self
                .session
                .call(soap::send(shell, command, data, end))
                .await?
            {
                Ok(_) => return Ok(()),
                // The host took the input but did not finish handing it to the process within
                // the OperationTimeout: it is still being processed, so carry on (Ansible does;
                // sending it again would duplicate it).
                Err(f) if f.is_timed_out() => {
                    tracing::warn!(
                        host = self.host(),
                        "WinRM Send timed out; the input is still being processed, continuing"
                    );
                    return Ok(());
                }
                // ERROR_BUSY: earlier input still being processed; this chunk was not taken.
                Err(f) if f.is_busy() && attempt < SEND_ATTEMPTS => {
                    tracing::warn!(
                        host = self.host(),
                        attempt,
                        "WinRM Send refused as busy (170); sending again"
                    );
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(f) => return Err(self.fault("cannot send input to the command", &f)),
            }
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
                .call_command(&shell, soap::command(&shell, cmdline, false))
                .await?
            {
                (Ok(_), guard) => {
                    let (command, mut guard) = self.started(guard)?;
                    // The process signals its command when dropped, from now on.
                    guard.disarm();
                    return Ok(super::process::Process::new(
                        self.session.clone(),
                        shell,
                        command,
                    ));
                }
                (Err(f), _) if f.is_shell_not_found() && !retried => {
                    retried = true;
                    self.forget(&shell).await;
                }
                (Err(f), _) => {
                    if f.is_shell_not_found() {
                        self.forget(&shell).await;
                    }
                    return Err(self.fault("cannot start the command", &f));
                }
            }
        }
    }
}
