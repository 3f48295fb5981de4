//! `ansible_connection: local`: commands run through `/bin/sh -c` on the controller.

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{CommandOutput, CommandSpec, ConnError, Connection, OutputChunk, Transport};

pub struct LocalConnection;

impl LocalConnection {
    pub fn new() -> Self {
        LocalConnection
    }
}

impl Default for LocalConnection {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds the argv for a command, wrapped in sudo when `become` is set. The password (if any)
/// is written to sudo's stdin ahead of the command's own input, never placed on a command line.
pub fn posix_argv(spec: &CommandSpec) -> (Vec<String>, Option<Vec<u8>>) {
    let mut stdin = spec.stdin.clone();
    let argv = match &spec.become_ {
        None => vec!["/bin/sh".into(), "-c".into(), spec.cmd.clone()],
        Some(b) => {
            let mut v: Vec<String> = vec!["sudo".into()];
            if let Some(pw) = &b.password {
                v.extend(["-S".into(), "-p".into(), String::new()]);
                let mut input = format!("{pw}\n").into_bytes();
                input.extend(stdin.take().unwrap_or_default());
                stdin = Some(input);
            } else {
                v.push("-n".into());
            }
            v.extend([
                "-H".into(),
                "-u".into(),
                b.user.clone(),
                "--".into(),
                "/bin/sh".into(),
                "-c".into(),
                spec.cmd.clone(),
            ]);
            v
        }
    };
    (argv, stdin)
}

#[async_trait]
impl Connection for LocalConnection {
    fn transport(&self) -> Transport {
        Transport::Local
    }

    async fn exec(&self, spec: CommandSpec) -> Result<CommandOutput, ConnError> {
        let (argv, stdin) = posix_argv(&spec);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| ConnError::failed(format!("cannot start {}: {e}", argv[0])))?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin piped");
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
                let _ = pipe.shutdown().await;
            });
        }
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        let sink = spec.output.clone();
        let read_out = read_stream(out, sink.clone(), OutputChunk::Stdout);
        let read_err = read_stream(err, sink, OutputChunk::Stderr);
        let run = async {
            let (stdout, stderr, status) = tokio::join!(read_out, read_err, child.wait());
            let status = status.map_err(|e| ConnError::failed(format!("wait: {e}")))?;
            Ok::<_, ConnError>(CommandOutput {
                rc: exit_code(status),
                stdout,
                stderr,
            })
        };
        match spec.timeout {
            Some(t) => tokio::time::timeout(t, run).await.map_err(|_| {
                ConnError::timeout(format!("command timed out after {}s", t.as_secs()))
            })?,
            None => run.await,
        }
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

    async fn close(&self) {}
}

async fn read_stream<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    sink: Option<tokio::sync::mpsc::UnboundedSender<OutputChunk>>,
    wrap: fn(Vec<u8>) -> OutputChunk,
) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(s) = &sink {
                    let _ = s.send(wrap(buf[..n].to_vec()));
                }
                all.extend_from_slice(&buf[..n]);
            }
        }
    }
    all
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
    let mode = mode.unwrap_or_else(|| 0o666 & !current_umask());
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).map_err(err)?;
    tmp.persist(dest).map_err(|e| err(e.error))?;
    Ok(())
}

fn current_umask() -> u32 {
    // There is no way to read the umask without setting it; 022 is what hosts use by default.
    0o022
}
