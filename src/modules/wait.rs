//! The wait loop of `wait_for` and `win_wait_for`: one loop on the controller (delay, poll
//! every `sleep`, give up after `timeout`), two probes — a `sh` script on POSIX hosts, a
//! PowerShell request on Windows hosts — that each report one `Observation`. Whether an
//! observation satisfies the wait is decided here, once.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Args, ModError, ModResult, arg_str, outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Posix,
    Windows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Started,
    Stopped,
    Present,
    Absent,
    Drained,
}

impl State {
    fn parse(s: &str) -> Result<State, String> {
        Ok(match s {
            "started" => State::Started,
            "stopped" => State::Stopped,
            "present" => State::Present,
            "absent" => State::Absent,
            "drained" => State::Drained,
            other => return Err(format!("unknown state {other:?}")),
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            State::Started => "started",
            State::Stopped => "stopped",
            State::Present => "present",
            State::Absent => "absent",
            State::Drained => "drained",
        }
    }
}

/// What to wait for.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub host: String,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub search_regex: Option<String>,
    pub state: State,
    pub timeout: Duration,
    pub delay: Duration,
    pub sleep: Duration,
    /// Seconds one connection attempt may take.
    pub connect_timeout: u64,
    pub exclude_hosts: Vec<String>,
    pub msg: Option<String>,
}

impl Wait {
    /// The task's arguments, with the combinations Ansible refuses refused.
    pub fn from_args(args: &Args) -> Result<Wait, String> {
        let int = |k: &str, d: i64| args.get(k).and_then(Value::as_i64).unwrap_or(d).max(0) as u64;
        let port = match args.get("port").filter(|v| !v.is_null()) {
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("port {v} is not a port number"))?,
            ),
            None => None,
        };
        let path = arg_str(args, "path").map(str::to_string);
        let state = State::parse(arg_str(args, "state").unwrap_or("started"))?;
        let search_regex = arg_str(args, "search_regex").map(str::to_string);
        let exclude_hosts: Vec<String> = match args.get("exclude_hosts") {
            Some(Value::Array(a)) => a.iter().map(crate::value::to_text).collect(),
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
            _ => vec![],
        };
        if port.is_some() && path.is_some() {
            return Err("port and path parameter can not both be passed".into());
        }
        if !exclude_hosts.is_empty() && state != State::Drained {
            return Err("exclude_hosts should only be with state=drained".into());
        }
        if path.is_some() && matches!(state, State::Stopped | State::Drained) {
            return Err(format!(
                "state={} should only be used for checking a port",
                state.as_str()
            ));
        }
        if port.is_some() && search_regex.is_some() {
            return Err("search_regex should be used when checking a string in a file".into());
        }
        if state == State::Drained && port.is_none() {
            return Err("state=drained needs a port".into());
        }
        Ok(Wait {
            host: arg_str(args, "host").unwrap_or("127.0.0.1").to_string(),
            port,
            path,
            search_regex,
            state,
            timeout: crate::value::whole_seconds(int("timeout", 300), "timeout")?,
            delay: crate::value::whole_seconds(int("delay", 0), "delay")?,
            sleep: crate::value::whole_seconds(int("sleep", 1), "sleep")?
                .max(Duration::from_millis(100)),
            connect_timeout: int("connect_timeout", 5).max(1),
            exclude_hosts,
            msg: arg_str(args, "msg").map(str::to_string),
        })
    }

    /// Anything to look at (a wait with neither port nor path just sleeps for `timeout`).
    pub fn has_target(&self) -> bool {
        self.port.is_some() || self.path.is_some()
    }
}

/// One look at the host.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Observation {
    /// The path exists / a connection to the port succeeded.
    #[serde(default)]
    pub exists: bool,
    /// `search_regex` matched the file's text (None: not asked or no file).
    #[serde(default)]
    pub matched: Option<bool>,
    /// Remote addresses of the connections to the port (for `drained`).
    #[serde(default, deserialize_with = "crate::modules::windows::list")]
    pub connections: Vec<String>,
}

/// Is the wait over?
pub fn satisfied(w: &Wait, o: &Observation) -> bool {
    if w.path.is_some() {
        return match w.state {
            State::Absent => !o.exists || (w.search_regex.is_some() && o.matched == Some(false)),
            _ => o.exists && (w.search_regex.is_none() || o.matched == Some(true)),
        };
    }
    match w.state {
        State::Started | State::Present => o.exists,
        State::Stopped | State::Absent => !o.exists,
        State::Drained => o
            .connections
            .iter()
            .all(|c| w.exclude_hosts.iter().any(|x| x == c)),
    }
}

/// The message for a wait that timed out.
pub fn timeout_message(w: &Wait, family: Family) -> String {
    if let Some(m) = &w.msg {
        return m.clone();
    }
    let secs = w.timeout.as_secs();
    match family {
        Family::Windows => match (&w.path, w.port) {
            (Some(p), _) => match (&w.search_regex, w.state) {
                (None, State::Absent) => format!("timeout while waiting for file {p} to be absent"),
                (None, _) => format!("timeout while waiting for file {p} to be present"),
                (Some(r), State::Absent) => {
                    format!("timeout while waiting for string regex {r} in file {p} to not match")
                }
                (Some(r), _) => {
                    format!("timeout while waiting for string regex {r} in file {p} to match")
                }
            },
            (None, Some(port)) => match w.state {
                State::Started | State::Present => {
                    format!(
                        "timeout while waiting for {}:{port} to start listening",
                        w.host
                    )
                }
                State::Drained => format!("timeout while waiting for {}:{port} to drain", w.host),
                _ => format!(
                    "timeout while waiting for {}:{port} to stop listening",
                    w.host
                ),
            },
            (None, None) => format!("timeout after {secs}s"),
        },
        Family::Posix => {
            let what = match (&w.path, w.port) {
                (Some(p), _) => match &w.search_regex {
                    Some(r) => format!("search string {r} in {p}"),
                    None => p.clone(),
                },
                (None, Some(port)) => format!("{}:{port}", w.host),
                (None, None) => String::new(),
            };
            format!(
                "Timeout when waiting for {what} to be {} ({secs}s)",
                w.state.as_str()
            )
        }
    }
}

fn elapsed(t0: Instant, family: Family) -> Value {
    match family {
        Family::Posix => t0.elapsed().as_secs().into(),
        Family::Windows => json!((t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
    }
}

/// The loop: waits `delay`, then calls `probe` every `sleep` until the observation satisfies
/// the wait or `timeout` passes.
pub async fn run<F, Fut>(w: &Wait, family: Family, mut probe: F) -> ModResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Observation, ModError>>,
{
    let t0 = Instant::now();
    tokio::time::sleep(w.delay).await;
    let mut attempts = 0u64;
    let finish = |attempts: u64| {
        let mut r = outcome(false);
        r.insert("elapsed".into(), elapsed(t0, family));
        r.insert("state".into(), w.state.as_str().into());
        if let Some(p) = &w.path {
            r.insert("path".into(), p.clone().into());
        }
        if let Some(p) = w.port {
            r.insert("port".into(), p.into());
        }
        if let Some(s) = &w.search_regex {
            r.insert("search_regex".into(), s.clone().into());
        }
        if family == Family::Windows {
            r.insert("wait_attempts".into(), attempts.into());
        }
        r
    };
    if !w.has_target() {
        tokio::time::sleep(w.timeout).await;
        return Ok(finish(0));
    }
    let start = Instant::now();
    loop {
        attempts += 1;
        let o = probe().await?;
        if satisfied(w, &o) {
            return Ok(finish(attempts));
        }
        if start.elapsed() >= w.timeout {
            return Err(ModError::Failed {
                msg: timeout_message(w, family),
                result: finish(attempts),
            });
        }
        let left = w.timeout.saturating_sub(start.elapsed());
        tokio::time::sleep(w.sleep.min(left.max(Duration::from_millis(10)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(v: Value) -> Result<Wait, String> {
        Wait::from_args(v.as_object().unwrap())
    }

    fn obs(exists: bool, matched: Option<bool>, conns: &[&str]) -> Observation {
        Observation {
            exists,
            matched,
            connections: conns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn arguments_like_ansible() {
        let w = wait(json!({"port": 8080})).unwrap();
        assert_eq!(
            (w.state, w.host.as_str(), w.timeout.as_secs()),
            (State::Started, "127.0.0.1", 300)
        );
        assert!(wait(json!({"port": 1, "path": "x"})).is_err());
        assert!(wait(json!({"path": "x", "state": "stopped"})).is_err());
        assert!(wait(json!({"path": "x", "state": "drained"})).is_err());
        assert!(wait(json!({"port": 1, "search_regex": "x"})).is_err());
        assert!(wait(json!({"port": 1, "exclude_hosts": ["a"]})).is_err());
        assert!(wait(json!({"port": 70000})).is_err());
        assert!(
            wait(json!({"port": 1, "state": "drained", "exclude_hosts": "10.0.0.1, 10.0.0.2"}))
                .is_ok()
        );
    }

    #[test]
    fn conditions() {
        let started = wait(json!({"port": 1})).unwrap();
        assert!(satisfied(&started, &obs(true, None, &[])));
        assert!(!satisfied(&started, &obs(false, None, &[])));
        let stopped = wait(json!({"port": 1, "state": "stopped"})).unwrap();
        assert!(satisfied(&stopped, &obs(false, None, &[])));
        let drained =
            wait(json!({"port": 1, "state": "drained", "exclude_hosts": ["10.0.0.9"]})).unwrap();
        assert!(satisfied(&drained, &obs(true, None, &["10.0.0.9"])));
        assert!(!satisfied(
            &drained,
            &obs(true, None, &["10.0.0.9", "10.0.0.1"])
        ));
        let file = wait(json!({"path": "C:\\x"})).unwrap();
        assert!(satisfied(&file, &obs(true, None, &[])));
        let re = wait(json!({"path": "C:\\x", "search_regex": "ready"})).unwrap();
        assert!(!satisfied(&re, &obs(true, Some(false), &[])));
        assert!(satisfied(&re, &obs(true, Some(true), &[])));
        let gone = wait(json!({"path": "C:\\x", "state": "absent"})).unwrap();
        assert!(satisfied(&gone, &obs(false, None, &[])));
        assert!(!satisfied(&gone, &obs(true, None, &[])));
        let no_match =
            wait(json!({"path": "C:\\x", "state": "absent", "search_regex": "x"})).unwrap();
        assert!(satisfied(&no_match, &obs(true, Some(false), &[])));
    }

    #[test]
    fn messages() {
        let w = wait(json!({"path": "C:\\it's $x", "search_regex": "a\"b"})).unwrap();
        assert_eq!(
            timeout_message(&w, Family::Windows),
            "timeout while waiting for string regex a\"b in file C:\\it's $x to match"
        );
        let w = wait(json!({"port": 22, "host": "h", "timeout": 3})).unwrap();
        assert_eq!(
            timeout_message(&w, Family::Posix),
            "Timeout when waiting for h:22 to be started (3s)"
        );
        assert_eq!(
            timeout_message(&w, Family::Windows),
            "timeout while waiting for h:22 to start listening"
        );
    }

    #[tokio::test]
    async fn the_loop_polls_until_satisfied_or_timeout() {
        let mut w = wait(json!({"path": "p"})).unwrap();
        w.sleep = Duration::from_millis(10);
        w.timeout = Duration::from_millis(300);
        let mut n = 0;
        let r = run(&w, Family::Windows, || {
            n += 1;
            let o = obs(n >= 3, None, &[]);
            async move { Ok(o) }
        })
        .await
        .unwrap();
        assert_eq!(r["wait_attempts"], 3);
        let t0 = Instant::now();
        let e = run(&w, Family::Posix, || async { Ok(obs(false, None, &[])) })
            .await
            .unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(300));
        match e {
            ModError::Failed { msg, result } => {
                assert!(msg.starts_with("Timeout when waiting for p"), "{msg}");
                assert_eq!(result["elapsed"], 0);
            }
            other => panic!("{other:?}"),
        }
    }
}
