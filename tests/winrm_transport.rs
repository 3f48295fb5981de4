//! The WinRM transport against the project's WinRM peer (tests/support/winrm_peer/peer.py),
//! through the library API: NTLM + message encryption over HTTP, HTTPS, Basic, the one shell per
//! host, streaming, stdin, file transfer, reconnection and every fault the peer can inject.
//!
//! Benchmark (not a timed test):
//! `cargo test --release --test winrm_transport bench_ -- --ignored --nocapture`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mixop::connection::winrm::WinrmConnection;
use mixop::connection::{
    CommandSpec, ConnErrorKind, ConnSpec, Connection, OutputChunk, Transport,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test virtualenv's python: `$MIXOP_VENV`, `./.venv`, or the main checkout's beside a
/// worktree. Missing is a failure, not a skip.
fn python() -> PathBuf {
    let mut candidates = vec![];
    if let Some(v) = std::env::var_os("MIXOP_VENV") {
        candidates.push(PathBuf::from(v));
    }
    candidates.push(root().join(".venv"));
    candidates.push(root().join("../main/.venv"));
    for c in &candidates {
        let p = c.join("bin/python");
        if p.exists() {
            return p;
        }
    }
    panic!("no test virtualenv in {candidates:?}: run scripts/setup.sh");
}

/// One running peer process, killed on drop.
struct Peer {
    child: Child,
    port: u16,
    control: u16,
    dir: tempfile::TempDir,
}

impl Peer {
    fn start(extra: &[&str]) -> Peer {
        Self::start_on("127.0.0.1", extra)
    }

    fn start_on(host: &str, extra: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let cport_file = dir.path().join("cport");
        let log = std::fs::File::create(dir.path().join("peer.log")).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/support/winrm_peer/peer.py"))
            .args(["--listen", &format!("{host}:0")])
            .arg("--port-file")
            .arg(&port_file)
            .args(["--users", "vagrant:vagrant", "--users", "LAB\\admin:S3cret:x"])
            .args(["--control", "--control-port-file"])
            .arg(&cport_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if extra.contains(&"--https") {
            cmd.arg("--cert-dir").arg(dir.path().join("certs"));
        }
        let mut child = cmd.spawn().expect("start the WinRM peer");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let read = |p: &Path| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse().ok());
            if let (Some(port), Some(control)) = (read(&port_file), read(&cport_file)) {
                return Peer {
                    child,
                    port,
                    control,
                    dir,
                };
            }
            if let Ok(Some(st)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("peer.log")).unwrap_or_default();
                panic!("peer exited ({st}):\n{log}");
            }
            assert!(Instant::now() < deadline, "peer did not start");
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    fn http(&self, method: &str, path: &str, body: &str) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.control)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let text = String::from_utf8_lossy(&resp);
        let json = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        serde_json::from_str(json).unwrap_or_else(|e| panic!("control answer {text:?}: {e}"))
    }

    fn op(&self, op: &str, body: Value) -> Value {
        let r = self.http("POST", &format!("/{op}"), &body.to_string());
        assert_eq!(r["ok"], json!(true), "control op {op}: {r}");
        r
    }

    fn stats(&self) -> Value {
        self.http("GET", "/stats", "")
    }

    fn records(&self) -> Vec<Value> {
        match self.http("GET", "/records", "") {
            Value::Array(a) => a,
            other => panic!("records: {other}"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("peer.log")).unwrap_or_default()
    }

    fn spec(&self, vars: Value) -> ConnSpec {
        let mut vars = vars.as_object().cloned().unwrap_or_default();
        if self.is_https() && !vars.contains_key("ansible_winrm_scheme") {
            vars.insert("ansible_winrm_scheme".into(), json!("https"));
        }
        ConnSpec {
            host: format!("peer{}", self.port),
            transport: Transport::Winrm,
            address: "127.0.0.1".into(),
            port: Some(self.port),
            user: Some("vagrant".into()),
            password: Some("vagrant".into()),
            vars,
        }
    }

    fn is_https(&self) -> bool {
        self.stats()["https"] == json!(true)
    }

    async fn connect(&self) -> WinrmConnection {
        self.connect_with(json!({})).await
    }

    async fn connect_with(&self, vars: Value) -> WinrmConnection {
        match WinrmConnection::connect(&self.spec(vars)).await {
            Ok(c) => c,
            Err(e) => panic!("connect: {e}\npeer log:\n{}", self.log()),
        }
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.stats()["up"] != json!(true) {
            assert!(Instant::now() < deadline, "peer did not come back");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The listener is rebound just before `up` flips.
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

async fn run(c: &WinrmConnection, cmd: &str) -> (i32, String, String) {
    let out = c
        .exec(CommandSpec::new(cmd))
        .await
        .unwrap_or_else(|e| panic!("exec {cmd:?}: {e}"));
    (
        out.rc,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: deterministic, incompressible enough for transfer tests.
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_encrypted_one_handshake_one_shell_for_20_commands() {
    let peer = Peer::start(&[]);
    let c = peer.connect().await;
    for i in 0..20 {
        let (rc, out, err) = run(&c, &format!("echo out{i}; echo err{i} >&2; exit {}", i % 4)).await;
        assert_eq!((rc, out.as_str(), err.as_str()), (i % 4, &*format!("out{i}\n"), &*format!("err{i}\n")));
    }
    let s = peer.stats();
    assert_eq!(n(&s["connections_accepted"]), 1, "{s}");
    assert_eq!(n(&s["handshakes"]), 1, "{s}");
    assert_eq!(n(&s["shells_created"]), 1, "{s}");
    assert_eq!(n(&s["commands_started"]), 20, "{s}");
    assert_eq!(n(&s["plaintext_refused"]) + n(&s["decrypt_failures"]), 0, "{s}");
    assert_eq!(s["shells"][0]["codepage"], json!(65001), "{s}");
    assert_eq!(s["shells"][0]["noprofile"], json!(true), "{s}");
    let (conns, handshakes, _) = c.counters();
    assert_eq!((conns, handshakes), (1, 1));
    c.close().await;
    c.close().await;
    let s = peer.stats();
    assert_eq!(n(&s["shells_deleted"]), 1, "{s}");
    assert_eq!(n(&s["shells_open"]), 0, "{s}");
    let e = c.exec(CommandSpec::new("true")).await.unwrap_err();
    assert!(e.message.contains("closed"), "{e}");
}
