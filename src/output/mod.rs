//! Renders engine events: human (live per-host lines, results, recap), JSON lines, and the
//! tracing log. Results of `no_log` tasks arrive here already censored; vault secrets are
//! masked here (`Tee`), before any renderer sees an event, and in the log file's writer.

mod human;

use std::io::Write;
use std::sync::Mutex;

pub use human::Human;

use crate::engine::{Event, Output};

/// One JSON object per line on stdout (schema in README.md).
pub struct JsonLines {
    out: Mutex<std::io::Stdout>,
}

impl JsonLines {
    pub fn new() -> JsonLines {
        JsonLines {
            out: Mutex::new(std::io::stdout()),
        }
    }
}

impl Default for JsonLines {
    fn default() -> Self {
        Self::new()
    }
}

impl Output for JsonLines {
    fn emit(&self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Sends every event, with vault secrets masked, to the tracing log (when `--log` is set) and
/// on to the renderer.
pub struct Tee {
    pub inner: Box<dyn Output>,
    pub log: bool,
}

impl Output for Tee {
    fn emit(&self, event: &Event) {
        let masked;
        let event = if crate::secret::active() {
            let mut e = event.clone();
            e.mask_secrets();
            masked = e;
            &masked
        } else {
            event
        };
        if self.log {
            match serde_json::to_string(event) {
                Ok(json) => tracing::info!(target: "mixop::event", "{json}"),
                Err(e) => tracing::warn!("unserializable event: {e}"),
            }
        }
        self.inner.emit(event);
    }
}

/// Sets up the `--log FILE` tracing subscriber. Returns false when there is nothing to log to.
pub fn init_log(path: Option<&std::path::Path>, verbosity: u8) -> Result<bool, String> {
    let Some(path) = path else {
        return Ok(false);
    };
    let file = open_log(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            format!(
                "cannot open log file {}: it is a symbolic link (refused)",
                path.display()
            )
        } else {
            format!("cannot open log file {}: {e}", path.display())
        }
    })?;
    let level = match verbosity {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIXOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("mixop={level}")));
    tracing_subscriber::fmt()
        .with_writer(Mutex::new(MaskedFile(file)))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// The log file's writer: every line is masked (transport detail may quote a command that
/// holds a vault secret). The formatter hands over one whole event per write.
struct MaskedFile(std::fs::File);

impl Write for MaskedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(crate::secret::mask(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The log holds task results and transport detail: a new file is private (0600), and a
/// symbolic link at the path is refused rather than followed (O_NOFOLLOW), so nobody can point
/// it at a file of their choosing.
fn open_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn log_files_are_private_and_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("run.log");
        open_log(&log).unwrap();
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let target = d.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let link = d.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_log(&link).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
