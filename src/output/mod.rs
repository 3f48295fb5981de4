//! Renders engine events: human (live per-host lines, results, recap), JSON lines, and the
//! tracing log. Results of `no_log` tasks arrive here already censored.

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

/// Sends every event to the tracing log (when `--log` is set) and on to the renderer.
pub struct Tee {
    pub inner: Box<dyn Output>,
    pub log: bool,
}

impl Output for Tee {
    fn emit(&self, event: &Event) {
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
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
    let level = match verbosity {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIXOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("mixop={level}")));
    tracing_subscriber::fmt()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(true)
}
