//! A command kept alive on the host's WinRS shell for many exchanges (the PowerShell host):
//! input goes out with Send when there is something to say, output is fetched with Receive only
//! while an answer is due. Dropping it terminates the command on the host.

use std::time::Duration;

use super::session::{Reply, SessionHandle};
use super::soap::{self, StreamKind};
use crate::connection::ConnError;

pub struct Process {
    session: SessionHandle,
    shell: String,
    command: String,
    /// The exit code once the host said Done.
    exit: Option<i32>,
}

/// One Receive's worth of output.
#[derive(Debug, Default)]
pub struct Received {
    pub streams: Vec<(StreamKind, Vec<u8>)>,
    /// `Some(rc)` when the command has ended.
    pub exit: Option<i32>,
}

impl Process {
    pub(super) fn new(session: SessionHandle, shell: String, command: String) -> Process {
        Process {
            session,
            shell,
            command,
            exit: None,
        }
    }

    fn host(&self) -> &str {
        &self.session.settings.host
    }

    pub fn exited(&self) -> Option<i32> {
        self.exit
    }

    /// Sends input, in envelopes within MaxEnvelopeSize. `end` closes stdin.
    pub async fn send(&self, data: &[u8], end: bool) -> Result<(), ConnError> {
        let chunk = soap::send_chunk_size(self.session.settings.max_envelope);
        let mut pieces: Vec<&[u8]> = data.chunks(chunk).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        let last = pieces.len() - 1;
        for (i, p) in pieces.into_iter().enumerate() {
            let r = self
                .session
                .call(soap::send(&self.shell, &self.command, p, end && i == last))
                .await?;
            if let Err(f) = r {
                return Err(ConnError::failed(format!(
                    "{}: cannot send input to the PowerShell host: {}",
                    self.host(),
                    f.describe()
                )));
            }
        }
        Ok(())
    }

    /// One Receive, waiting up to `wait` on the host for output. `Ok` with no streams and no
    /// exit means nothing came in time.
    pub async fn receive(&mut self, wait: Duration) -> Result<Received, ConnError> {
        let mut req = soap::receive(&self.shell, &self.command);
        req.timeout = Some(wait.max(Duration::from_secs(1)));
        let r: Reply = self.session.receive(req).await?;
        match r {
            Ok(r) => {
                let exit = if r.done {
                    // Windows exit codes are u32: keep the bits.
                    Some(r.exit_code.unwrap_or(-1) as i32)
                } else {
                    None
                };
                self.exit = exit.or(self.exit);
                Ok(Received {
                    streams: r.streams,
                    exit,
                })
            }
            Err(f) if f.is_timed_out() => Ok(Received::default()),
            Err(f) if f.is_not_found() => {
                self.exit = Some(-1);
                Err(ConnError::failed(format!(
                    "{}: the PowerShell host process is gone: the host restarted or the WinRM \
                     service was restarted ({})",
                    self.host(),
                    f.describe()
                )))
            }
            Err(f) => Err(ConnError::failed(format!(
                "{}: cannot read from the PowerShell host: {}",
                self.host(),
                f.describe()
            ))),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Terminating frees nothing on the operations quota but stops the process; a finished
        // command still wants its Signal so the host forgets it.
        let req = soap::signal_terminate(&self.shell, &self.command);
        if self.exit.is_some() {
            self.session.defer(req);
        } else {
            self.session.call_detached(req);
        }
    }
}
