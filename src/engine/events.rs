//! What the engine reports. The engine never formats text for humans: `output` renders these.
//! The JSON output writes them one per line, so the field names are a stable schema
//! (documented in README.md).

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Unreachable,
    Skipped,
}

/// Per-host counters, as in ansible-playbook's recap (`ok` includes `changed`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PlaybookStart {
        playbook: String,
        check_mode: bool,
    },
    PlayStart {
        name: String,
        hosts: Vec<String>,
    },
    TaskStart {
        name: String,
        /// `file:line` of the task.
        location: String,
        hosts: Vec<String>,
        handler: bool,
    },
    /// A host began working on the current task (for live progress).
    HostTaskStart {
        host: String,
        task: String,
    },
    HostResult {
        host: String,
        task: String,
        /// The module that ran (its registry name, e.g. `debug`); none for includes and meta.
        #[serde(skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        status: Status,
        changed: bool,
        /// The failure was ignored (`ignore_errors`).
        ignored: bool,
        duration_ms: u64,
        /// Set for one item of a loop (its label).
        #[serde(skip_serializing_if = "Option::is_none")]
        item: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        delegated_to: Option<String>,
        /// The module's result, with `no_log` results censored.
        result: Value,
    },
    /// A line a host's command printed while it runs (at `-v` and above, never for `no_log`).
    HostOutput {
        host: String,
        task: String,
        stream: Stream,
        line: String,
    },
    /// An `until` condition did not hold: the task runs again on this host after its delay.
    Retry {
        host: String,
        task: String,
        attempt: u64,
        retries_left: u64,
    },
    /// The playbook stops for every host (`any_errors_fatal`, `max_fail_percentage`).
    PlayEnded {
        reason: PlayEndReason,
    },
    Warning {
        message: String,
    },
    /// The run was interrupted (SIGINT): what was running where. Emitted when the interrupt
    /// arrives; what was running is being stopped, then the recap follows.
    Interrupted {
        running: Vec<RunningTask>,
    },
    Recap {
        hosts: IndexMap<String, Stats>,
        elapsed_ms: u64,
        interrupted: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Cuts a command's streamed output into lines for `HostOutput` events: a line is emitted
/// when its newline arrives (a very long one in pieces), the rest when the command ends.
#[derive(Default)]
pub struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LineSplitter {
    /// Longest line held back waiting for its newline.
    const MAX_LINE: usize = 16 * 1024;

    pub fn push(
        &mut self,
        chunk: crate::connection::OutputChunk,
        mut emit: impl FnMut(Stream, String),
    ) {
        use crate::connection::OutputChunk;
        let (stream, buf, data) = match chunk {
            OutputChunk::Stdout(d) => (Stream::Stdout, &mut self.stdout, d),
            OutputChunk::Stderr(d) => (Stream::Stderr, &mut self.stderr, d),
        };
        buf.extend_from_slice(&data);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            emit(stream, text(&line[..line.len() - 1]));
        }
        if buf.len() > Self::MAX_LINE {
            emit(stream, text(&std::mem::take(buf)));
        }
    }

    pub fn finish(&mut self, mut emit: impl FnMut(Stream, String)) {
        for (stream, buf) in [
            (Stream::Stdout, &mut self.stdout),
            (Stream::Stderr, &mut self.stderr),
        ] {
            if !buf.is_empty() {
                emit(stream, text(&std::mem::take(buf)));
            }
        }
    }
}

fn text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// Why a play (and the playbook) ended early for every host.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlayEndReason {
    /// A task failed on some host with `any_errors_fatal` set.
    AnyErrorsFatal { task: String },
    /// More hosts than `max_fail_percentage` allows have failed.
    MaxFailPercentage {
        percent: f64,
        failed: usize,
        hosts: usize,
    },
}

/// A task a host was working on.
#[derive(Debug, Clone, Serialize)]
pub struct RunningTask {
    pub host: String,
    pub task: String,
    /// `file:line` of the task.
    pub location: String,
}

impl Event {
    /// Replaces vault secrets in every text the event carries (see `crate::secret`).
    pub fn mask_secrets(&mut self) {
        use crate::secret::{mask_string, mask_value};
        match self {
            Event::PlaybookStart { playbook, .. } => mask_string(playbook),
            Event::PlayStart { name, hosts } => {
                mask_string(name);
                hosts.iter_mut().for_each(mask_string);
            }
            Event::TaskStart {
                name,
                location,
                hosts,
                ..
            } => {
                mask_string(name);
                mask_string(location);
                hosts.iter_mut().for_each(mask_string);
            }
            Event::HostTaskStart { host, task } => {
                mask_string(host);
                mask_string(task);
            }
            Event::HostResult {
                host,
                task,
                item,
                delegated_to,
                result,
                ..
            } => {
                mask_string(host);
                mask_string(task);
                item.iter_mut().for_each(mask_value);
                delegated_to.iter_mut().for_each(mask_string);
                mask_value(result);
            }
            Event::HostOutput {
                host, task, line, ..
            } => {
                mask_string(host);
                mask_string(task);
                mask_string(line);
            }
            Event::Retry { host, task, .. } => {
                mask_string(host);
                mask_string(task);
            }
            Event::PlayEnded { reason } => match reason {
                PlayEndReason::AnyErrorsFatal { task } => mask_string(task),
                PlayEndReason::MaxFailPercentage { .. } => {}
            },
            Event::Warning { message } => mask_string(message),
            Event::Interrupted { running } => running.iter_mut().for_each(|r| {
                mask_string(&mut r.host);
                mask_string(&mut r.task);
            }),
            Event::Recap { hosts, .. } => {
                *hosts = std::mem::take(hosts)
                    .into_iter()
                    .map(|(mut h, s)| {
                        mask_string(&mut h);
                        (h, s)
                    })
                    .collect();
            }
        }
    }
}

/// Receives events; implementations must be cheap (they run on the engine's tasks).
pub trait Output: Send + Sync {
    fn emit(&self, event: &Event);
}

/// What a censored result says instead of the output (Ansible's words).
pub const CENSORED: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

/// Censors a result for `no_log` tasks, keeping only what cannot hold a secret: the status
/// flags, the return code, the module's name and its `msg` with every registered secret masked
/// (the task's own values are registered before: `secret::register_values`).
pub fn censor(result: &Value, module: Option<&str>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("censored".into(), CENSORED.into());
    if let Value::Object(r) = result {
        for k in ["changed", "failed", "skipped", "unreachable"] {
            if let Some(v) = r.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        if let Some(rc) = r.get("rc").filter(|v| v.is_i64() || v.is_u64()) {
            m.insert("rc".into(), rc.clone());
        }
        if let Some(Value::String(msg)) = r.get("msg") {
            m.insert("msg".into(), crate::secret::mask(msg).into_owned().into());
        }
    }
    if let Some(name) = module {
        m.insert("module".into(), name.into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn censor_keeps_only_flags_rc_module_and_masked_msg() {
        crate::secret::register("censor-secret-3");
        let r = json!({"failed": true, "changed": false, "rc": 3,
            "msg": "no such file /x (censor-secret-3)", "stdout": "secret",
            "cmd": ["echo", "secret"], "item": "secret"});
        let c = censor(&r, Some("command"));
        assert!(!c.to_string().contains("secret"), "{c}");
        assert_eq!(c["msg"], "no such file /x (********)");
        assert_eq!(c["rc"], 3);
        assert_eq!(c["module"], "command");
        assert_eq!(c["failed"], true);
        assert_eq!(c["censored"], CENSORED);
        // An rc that is not a number is not kept.
        assert!(censor(&json!({"rc": "secret"}), None).get("rc").is_none());
    }

    #[test]
    fn streamed_output_is_cut_into_lines() {
        use crate::connection::OutputChunk;
        let mut got = Vec::new();
        let mut sp = LineSplitter::default();
        sp.push(OutputChunk::Stdout(b"one\ntw".to_vec()), |s, l| {
            got.push((s, l))
        });
        sp.push(OutputChunk::Stderr(b"err\r\n".to_vec()), |s, l| {
            got.push((s, l))
        });
        sp.push(OutputChunk::Stdout(b"o\nthree".to_vec()), |s, l| {
            got.push((s, l))
        });
        sp.finish(|s, l| got.push((s, l)));
        assert_eq!(
            got,
            [
                (Stream::Stdout, "one".to_string()),
                (Stream::Stderr, "err".to_string()),
                (Stream::Stdout, "two".to_string()),
                (Stream::Stdout, "three".to_string()),
            ]
        );
        let mut long = Vec::new();
        sp.push(OutputChunk::Stdout(vec![b'x'; 40_000]), |_, l| {
            long.push(l.len())
        });
        assert_eq!(long, [40_000]);
    }

    #[test]
    fn masking_reaches_every_text_of_an_event() {
        crate::secret::register("ev-secret-42");
        let mut e = Event::HostResult {
            host: "h1".into(),
            task: "say ev-secret-42".into(),
            module: Some("debug".into()),
            status: Status::Ok,
            changed: false,
            ignored: false,
            duration_ms: 1,
            item: Some(json!({"pw": "ev-secret-42"})),
            delegated_to: None,
            result: json!({"msg": "the token is ev-secret-42", "ev-secret-42": 1}),
        };
        e.mask_secrets();
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("ev-secret-42"), "{text}");
        assert!(text.contains("the token is ********"), "{text}");
    }
}
