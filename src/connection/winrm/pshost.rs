//! One PowerShell process per Windows host for the whole run (docs/windows-protocol.md).
//!
//! Ansible starts a powershell.exe for every task; that start-up is its main cost on Windows.
//! mixop starts one host process on first use, in the host's WinRS shell, and sends it framed
//! requests over stdin. A request that times out or is cancelled takes the process down with
//! it (the next request starts a new one); a process found dead before a request is restarted
//! and the request sent again, since it had not started; a host whose process cannot start
//! falls back to one process per request, with a warning.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;

use super::process::Process;
use super::shell::{Shell, Stdin};
use super::soap::StreamKind;
use crate::connection::ConnError;
use crate::powershell::frame::{self, Item};
use crate::powershell::{self, Answer, Launch, Reply, Request, clixml};

/// How long a new host process may take to say READY (a first start on a fresh profile can
/// take 20–30 s: ansible.windows#644).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// stderr kept from the host process (CLIXML progress records, errors outside requests).
const MAX_STDERR: usize = 64 * 1024;

enum Mode {
    /// No process yet (or the last one was stopped): start one on the next request.
    Idle,
    /// Boxed: the process is large beside the other states.
    Running(Box<Running>),
    /// The host process could not start: one powershell.exe per request.
    PerRequest,
}

struct Running {
    proc: Process,
    reader: frame::Reader,
    stderr: Vec<u8>,
}

pub struct PsHost {
    host: String,
    mode: Mutex<Mode>,
    next_id: AtomicU64,
    /// Host processes started so far (for tests and `-vvv`).
    pub starts: AtomicU64,
    start_timeout: Duration,
}

impl PsHost {
    pub fn new(host: &str, start_timeout: Duration) -> PsHost {
        PsHost {
            host: host.to_string(),
            mode: Mutex::new(Mode::Idle),
            next_id: AtomicU64::new(1),
            starts: AtomicU64::new(0),
            start_timeout,
        }
    }

    /// Runs one request. `timeout` bounds the whole exchange; when it passes, the host process
    /// is terminated and the error says so.
    pub async fn request(
        &self,
        shell: &Shell,
        mut req: Request,
        timeout: Option<Duration>,
    ) -> Result<Answer, ConnError> {
        req.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let payload = serde_json::to_value(&req).unwrap_or_default();
        let bytes = frame::encode("REQ", req.id, &payload);
        let work = self.exchange(shell, req.id, &bytes);
        match timeout {
            Some(t) => tokio::time::timeout(t, work).await.map_err(|_| {
                ConnError::timeout(format!(
                    "{}: the PowerShell request timed out after {}s; its process was stopped",
                    self.host,
                    t.as_secs_f32()
                ))
            })?,
            None => work.await,
        }
    }

    async fn exchange(&self, shell: &Shell, id: u64, bytes: &[u8]) -> Result<Answer, ConnError> {
        let mut mode = self.mode.lock().await;
        let mut warnings = Vec::new();
        // Take the process out while it works: if this future is dropped (timeout, Ctrl-C),
        // the process is dropped with it (terminated) and the next request starts afresh.
        let current = std::mem::replace(&mut *mode, Mode::Idle);
        let mut running = match current {
            Mode::PerRequest => {
                *mode = Mode::PerRequest;
                return self.one_shot(shell, id, bytes).await;
            }
            Mode::Running(r) if r.proc.exited().is_none() => r,
            Mode::Running(_) | Mode::Idle => match self.start(shell).await {
                Ok(r) => Box::new(r),
                Err(e) => {
                    warnings.push(format!(
                        "the PowerShell host process could not start ({e}); falling back to one \
                         powershell.exe per task, which is slower"
                    ));
                    *mode = Mode::PerRequest;
                    let mut a = self.one_shot(shell, id, bytes).await?;
                    warnings.append(&mut a.warnings);
                    a.warnings = warnings;
                    return Ok(a);
                }
            },
        };
        if let Err(e) = running.proc.send(bytes, false).await {
            // The process died between requests: this request never started, so it is safe
            // to send it to a new one, once.
            drop(running);
            running = Box::new(self.start(shell).await.map_err(|e2| {
                ConnError::failed(format!("{e}; restarting the PowerShell host failed: {e2}"))
            })?);
            warnings.push(format!(
                "the PowerShell host process had stopped ({e}); a new one was started"
            ));
            running.proc.send(bytes, false).await?;
        }
        let reply = self.read_reply(&mut running, id).await?;
        warnings.extend(
            running
                .reader
                .stray
                .drain(..)
                .map(|l| format!("host output: {l}")),
        );
        *mode = Mode::Running(running);
        Ok(Answer { reply, warnings })
    }

    async fn start(&self, shell: &Shell) -> Result<Running, ConnError> {
        let (cmdline, first) = powershell::launch(Launch::Host);
        let proc = shell.start_process(&cmdline).await?;
        self.starts.fetch_add(1, Ordering::Relaxed);
        let mut running = Running {
            proc,
            reader: frame::Reader::default(),
            stderr: Vec::new(),
        };
        running.proc.send(&first, false).await?;
        let ready = tokio::time::timeout(self.start_timeout, async {
            loop {
                for item in self.pump(&mut running).await? {
                    match item {
                        Item::Frame(f) if f.kind == "READY" => return Ok(()),
                        _ => {}
                    }
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok(running),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnError::timeout(format!(
                "no READY within {}s",
                self.start_timeout.as_secs()
            ))),
        }
    }

    /// One Receive: decoded frames, stderr kept, an error when the process ended.
    async fn pump(&self, running: &mut Running) -> Result<Vec<Item>, ConnError> {
        let got = running.proc.receive(Duration::from_secs(20)).await?;
        let mut items = Vec::new();
        for (kind, data) in &got.streams {
            match kind {
                StreamKind::Stdout => items.extend(running.reader.push(data)),
                StreamKind::Stderr => {
                    let room = MAX_STDERR.saturating_sub(running.stderr.len());
                    running
                        .stderr
                        .extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
        if let Some(rc) = got.exit
            && !items.iter().any(|i| matches!(i, Item::Frame(_)))
        {
            let stderr = clixml::decode_stderr(&String::from_utf8_lossy(&running.stderr));
            return Err(ConnError::failed(format!(
                "{}: the PowerShell host process exited with rc {rc}{}",
                self.host,
                match stderr.trim() {
                    "" => String::new(),
                    s => format!(": {s}"),
                }
            )));
        }
        Ok(items)
    }

    async fn read_reply(&self, running: &mut Running, id: u64) -> Result<Reply, ConnError> {
        loop {
            for item in self.pump(running).await? {
                match item {
                    Item::Frame(f) if f.kind == "RES" && f.id == id => {
                        return serde_json::from_value(f.payload).map_err(|e| {
                            ConnError::failed(format!(
                                "{}: the PowerShell host answered an unreadable result: {e}",
                                self.host
                            ))
                        });
                    }
                    Item::Bad(m) => {
                        return Err(ConnError::failed(format!(
                            "{}: the PowerShell host's answer was damaged: {m}",
                            self.host
                        )));
                    }
                    // Answers to requests abandoned earlier, READY: not ours.
                    Item::Frame(_) => {}
                }
            }
        }
    }

    /// One powershell.exe for this request (Ansible's pattern; the fallback).
    async fn one_shot(&self, shell: &Shell, id: u64, bytes: &[u8]) -> Result<Answer, ConnError> {
        let (cmdline, mut input) = powershell::launch(Launch::OneShot);
        input.extend_from_slice(bytes);
        let mut reader = frame::Reader::default();
        let mut items = Vec::new();
        let mut stderr = Vec::new();
        let rc = {
            let mut sink = |kind: StreamKind, data: &[u8]| -> Result<(), ConnError> {
                match kind {
                    StreamKind::Stdout => items.extend(reader.push(data)),
                    StreamKind::Stderr if stderr.len() < MAX_STDERR => {
                        stderr.extend_from_slice(data)
                    }
                    StreamKind::Stderr => {}
                }
                Ok(())
            };
            shell.run(&cmdline, Stdin::Bytes(input), &mut sink).await?
        };
        for item in items {
            if let Item::Frame(f) = item
                && f.kind == "RES"
                && f.id == id
            {
                let reply = serde_json::from_value(f.payload).map_err(|e| {
                    ConnError::failed(format!("{}: unreadable result: {e}", self.host))
                })?;
                let warnings = reader
                    .stray
                    .iter()
                    .map(|l| format!("host output: {l}"))
                    .collect();
                return Ok(Answer { reply, warnings });
            }
        }
        Err(ConnError::failed(format!(
            "{}: powershell.exe (rc {rc}) gave no answer: {}",
            self.host,
            clixml::decode_stderr(&String::from_utf8_lossy(&stderr)).trim()
        )))
    }
}
