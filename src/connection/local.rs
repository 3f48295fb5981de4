//! `ansible_connection: local`: commands run through `/bin/sh -c` on the controller.

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::sudo::{SudoHandshake, SudoStep, posix_command};
use super::{
    Become, CLEANUP_LIMIT, Cleanup, CommandOutput, CommandSpec, ConnError, Connection, MAX_CAPTURE,
    OutputChunk, Transport, output_too_large, stop_group_command,
};

pub struct LocalConnection {
    /// Stops of commands whose `exec` was dropped, waited for by `close`.
    cleanup: Cleanup,
}

impl LocalConnection {
    pub fn new() -> Self {
        LocalConnection {
            cleanup: Cleanup::default(),
        }
    }
}

/// Stops a command's process group (see `stop_group_command`), with the command's `become`,
/// and reaps its leader, our child: the stop waits for the group to be gone, and an unreaped
/// leader would keep it there.
async fn stop_group(pgid: u32, become_: Option<Become>, leader: &mut Child) {
    let conn = LocalConnection::new();
    let stop = async {
        // Boxed: `run` calls this function.
        let run = Box::pin(conn.run(stop_group_command(pgid, become_), false));
        match tokio::time::timeout(CLEANUP_LIMIT, run).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, pgid, "could not stop a command"),
            Err(_) => tracing::debug!(pgid, "stopping a command took too long"),
        }
    };
    let reap = tokio::time::timeout(CLEANUP_LIMIT, leader.wait());
    let _ = tokio::join!(stop, reap);
}

/// Owns the command's process; stops its process group when `exec` is dropped before the
/// command ended (Ctrl-C, a caller's timeout). `close` waits for that.
struct StopOnDrop {
    cleanup: Cleanup,
    child: Option<Child>,
    pgid: Option<u32>,
    become_: Option<Become>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let (Some(pgid), Some(mut child)) = (self.pgid.take(), self.child.take()) {
            let b = self.become_.take();
            self.cleanup
                .spawn(async move { stop_group(pgid, b, &mut child).await });
        }
    }
}

impl Default for LocalConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalConnection {
    /// Runs a command in a session of its own. `stoppable`: its process group is stopped if
    /// this future is dropped before it ended (not for the stop commands themselves).
    async fn run(&self, spec: CommandSpec, stoppable: bool) -> Result<CommandOutput, ConnError> {
        let mut pc = posix_command(&spec);
        let argv = &pc.argv;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(if pc.needs_stdin() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A stoppable command is stopped as a whole group (below), TERM first; killing
            // just the shell or sudo at drop would orphan what they started.
            .kill_on_drop(!stoppable);
        // A session of its own, as sshd gives a command: its process group holds everything
        // it starts (so all of it can be stopped), and it has no controlling terminal, so a
        // Ctrl-C on mixop's terminal reaches mixop, which stops it and reports.
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| ConnError::failed(format!("cannot start {}: {e}", argv[0])))?;
        let mut stop = StopOnDrop {
            cleanup: self.cleanup.clone(),
            pgid: child.id().filter(|_| stoppable),
            child: Some(child),
            become_: spec.become_.clone(),
        };
        let child = stop.child.as_mut().expect("just set");
        let mut pipe = child.stdin.take();
        let mut input = pc.stdin.take();
        let mut sudo = pc.sudo.take();
        if sudo.is_none() {
            write_input(pipe.take(), input.take());
        }
        let out = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");
        let sink = spec.output.clone();
        let read_out = read_stream(out, Vec::new(), sink.clone(), OutputChunk::Stdout);
        let read_err = async {
            // With a sudo password, the command's input waits for its start (connection::sudo).
            let mut first = Vec::new();
            if let Some(hs) = sudo.as_mut() {
                let started;
                (first, started) = sudo_handshake(&mut err, hs, &mut pipe).await;
                if started {
                    write_input(pipe.take(), input.take());
                } else {
                    pipe = None;
                }
            }
            read_stream(err, first, sink, OutputChunk::Stderr).await
        };
        let wait = async {
            child
                .wait()
                .await
                .map_err(|e| ConnError::failed(format!("wait: {e}")))
        };
        let run = async {
            let (stdout, stderr, status) = tokio::try_join!(read_out, read_err, wait)?;
            Ok::<_, ConnError>(CommandOutput {
                rc: exit_code(status),
                stdout,
                stderr,
            })
        };
        let result = match spec.timeout {
            Some(t) => tokio::time::timeout(t, run).await.unwrap_or_else(|_| {
                Err(ConnError::timeout(format!(
                    "command timed out after {}s",
                    t.as_secs()
                )))
            }),
            None => run.await,
        };
        let pgid = stop.pgid.take();
        if result.is_err()
            && let Some(child) = stop.child.as_mut()
        {
            // Output over the limit or a timeout: stop the command now, not at drop.
            match pgid {
                Some(pgid) => stop_group(pgid, spec.become_.clone(), child).await,
                None => {
                    let _ = child.start_kill();
                }
            }
        }
        if let Some(hs) = &sudo
            && hs.refused()
        {
            return Err(hs.refused_error());
        }
        result
    }
}

#[async_trait]
impl Connection for LocalConnection {
    fn transport(&self) -> Transport {
        Transport::Local
    }

    async fn exec(&self, spec: CommandSpec) -> Result<CommandOutput, ConnError> {
        self.run(spec, true).await
    }

    async fn put_bytes(&self, data: &[u8], dest: &str, mode: Option<u32>) -> Result<(), ConnError> {
        let dest = Path::new(dest);
        let data = data.to_vec();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || atomic_write(&dest, &data, mode))
            .await
            .map_err(|e| ConnError::failed(e.to_string()))?
    }

    async fn put_file(&self, src: &Path, dest: &str, mode: Option<u32>) -> Result<(), ConnError> {
        let src = src.to_path_buf();
        let dest = Path::new(dest).to_path_buf();
        tokio::task::spawn_blocking(move || {
            let dir = parent_dir(&dest);
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| ConnError::failed(format!("{}: {e}", dir.display())))?;
            let mut f = std::fs::File::open(&src)
                .map_err(|e| ConnError::failed(format!("{}: {e}", src.display())))?;
            std::io::copy(&mut f, tmp.as_file_mut())
                .map_err(|e| ConnError::failed(format!("{}: {e}", dest.display())))?;
            finish_tmp(tmp, &dest, mode)
        })
        .await
        .map_err(|e| ConnError::failed(e.to_string()))?
    }

    async fn get_file(&self, src: &str, dest: &Path) -> Result<(), ConnError> {
        let data = tokio::fs::read(src)
            .await
            .map_err(|e| ConnError::failed(format!("{src}: {e}")))?;
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || atomic_write(&dest, &data, None))
            .await
            .map_err(|e| ConnError::failed(e.to_string()))?
    }

    async fn close(&self) {
        self.cleanup.settle(CLEANUP_LIMIT).await;
    }
}

/// Writes the command's input (if any) and closes its stdin.
fn write_input(pipe: Option<tokio::process::ChildStdin>, input: Option<Vec<u8>>) {
    if let Some(mut pipe) = pipe {
        tokio::spawn(async move {
            if let Some(input) = input {
                let _ = pipe.write_all(&input).await;
            }
            let _ = pipe.shutdown().await;
        });
    }
}

/// Feeds sudo's stderr to the handshake until the command starts (or sudo exits). Returns the
/// stderr to pass on and whether the command started.
async fn sudo_handshake<R: tokio::io::AsyncRead + Unpin>(
    err: &mut R,
    hs: &mut SudoHandshake,
    pipe: &mut Option<tokio::process::ChildStdin>,
) -> (Vec<u8>, bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match err.read(&mut buf).await {
            Ok(0) | Err(_) => return (hs.take_stderr(), false),
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        while let Some(step) = hs.feed(data) {
            data = &[];
            match step {
                SudoStep::Password(pw) => {
                    if let Some(p) = pipe.as_mut() {
                        let _ = p.write_all(&pw).await;
                        let _ = p.flush().await;
                    }
                }
                // Closing stdin makes sudo give up; nothing else is written.
                SudoStep::Refused => *pipe = None,
                SudoStep::Started(rest) => return (rest, true),
            }
        }
    }
}

/// Reads a stream to its end, starting with `first`, up to [`MAX_CAPTURE`] bytes.
async fn read_stream<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    first: Vec<u8>,
    sink: Option<tokio::sync::mpsc::UnboundedSender<OutputChunk>>,
    wrap: fn(Vec<u8>) -> OutputChunk,
) -> Result<Vec<u8>, ConnError> {
    if let Some(s) = &sink
        && !first.is_empty()
    {
        let _ = s.send(wrap(first.clone()));
    }
    let mut all = first;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if all.len() + n > MAX_CAPTURE {
                    return Err(output_too_large(None));
                }
                if let Some(s) = &sink {
                    let _ = s.send(wrap(buf[..n].to_vec()));
                }
                all.extend_from_slice(&buf[..n]);
            }
        }
    }
    Ok(all)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes through a temporary file in the destination's directory and renames it into place.
pub fn atomic_write(dest: &Path, data: &[u8], mode: Option<u32>) -> Result<(), ConnError> {
    use std::io::Write;
    let dir = parent_dir(dest);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| ConnError::failed(format!("{}: {e}", dir.display())))?;
    tmp.write_all(data)
        .map_err(|e| ConnError::failed(format!("{}: {e}", dest.display())))?;
    finish_tmp(tmp, dest, mode)
}

fn finish_tmp(
    tmp: tempfile::NamedTempFile,
    dest: &Path,
    mode: Option<u32>,
) -> Result<(), ConnError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e: std::io::Error| ConnError::failed(format!("{}: {e}", dest.display()));
    tmp.as_file().sync_all().map_err(err)?;
    // Keep the existing file's mode when none is asked for, like Ansible's atomic_move.
    let mode = mode.or_else(|| {
        std::fs::metadata(dest)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    });
    let mode = mode.unwrap_or_else(|| 0o666 & !umask());
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).map_err(err)?;
    tmp.persist(dest).map_err(|e| err(e.error))?;
    Ok(())
}

/// The process's umask, read from `/proc/self/status` (setting it to read it would race with
/// the other threads creating files). Where it cannot be read, 077: new files are private.
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_umask(&s))
        .unwrap_or(0o077)
}

fn parse_umask(status: &str) -> Option<u32> {
    let v = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(v.trim(), 8).ok().map(|m| m & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn umask_comes_from_the_process() {
        assert_eq!(
            parse_umask("Name:\tx\nUmask:\t0027\nState:\tR\n"),
            Some(0o027)
        );
        assert_eq!(parse_umask("Name:\tx\n"), None);
        // The real one: set it in a child shell and ask.
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", "umask 0037; grep ^Umask: /proc/self/status"])
            .output()
            .unwrap();
        assert_eq!(
            parse_umask(&String::from_utf8_lossy(&out.stdout)),
            Some(0o037)
        );
    }

    #[test]
    fn new_files_follow_the_umask_and_existing_ones_keep_their_mode() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("new");
        atomic_write(&f, b"x", None).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        atomic_write(&f, b"y", None).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
