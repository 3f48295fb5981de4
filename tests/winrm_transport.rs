//! The WinRM transport against the project's WinRM peer (tests/support/winrm_peer/peer.py),
//! through the library API: NTLM + message encryption over HTTP, HTTPS, Basic, the one shell per
//! host, streaming, stdin, file transfer, reconnection and every fault the peer can inject.
//!
//! Benchmark (not a timed test):
//! `cargo test --release --test winrm_transport bench_ -- --ignored --nocapture`

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mixop::connection::winrm::WinrmConnection;
use mixop::connection::{CommandSpec, ConnErrorKind, ConnSpec, Connection, OutputChunk, Transport};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod common;

use common::WinrmPeer;

/// What these tests do with a peer beyond common's `WinrmPeer`: connect through the library.
trait PeerExt {
    fn spec(&self, vars: Value) -> ConnSpec;
    fn is_https(&self) -> bool;
    async fn connect(&self) -> WinrmConnection;
    async fn connect_with(&self, vars: Value) -> WinrmConnection;
    fn wait_up(&self);
    fn wait_started(&self, count: u64);
    fn client_sockets(&self) -> Vec<u64>;
}

impl PeerExt for WinrmPeer {
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

    /// Ends a simulated reboot (started with a downtime longer than any test) and waits until
    /// the host is back.
    fn wait_up(&self) {
        self.op("up", json!({}));
        // The listener is bound (and queues connections) before `up` flips.
        wait_for("the peer to come back up", || {
            self.stats()["up"] == json!(true)
        });
    }

    /// Waits until the peer has started `count` commands in all (stats `commands_started`).
    fn wait_started(&self, count: u64) {
        wait_for(&format!("{count} commands started"), || {
            n(&self.stats()["commands_started"]) >= count
        });
    }

    /// This process's TCP connections to the peer's WinRM port, by socket inode.
    fn client_sockets(&self) -> Vec<u64> {
        let ours = own_socket_inodes();
        let tcp = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
        tcp.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let remote_port = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
                let inode: u64 = f.get(9)?.parse().ok()?;
                (remote_port == self.port && ours.contains(&inode)).then_some(inode)
            })
            .collect()
    }
}

/// The inodes of the sockets this process holds open.
fn own_socket_inodes() -> Vec<u64> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Polls `cond` until it holds; fails after 20 s (every wait here is for an event that comes
/// within milliseconds unless something is broken).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the connection has sent, and had answered, the cleanup it defers (the Signal
/// after each finished command goes out once the connection is idle). A fault injected before
/// that could hit the Signal instead of the request it is meant for.
async fn settle(c: &WinrmConnection) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.deferred_pending() > 0 {
        assert!(
            Instant::now() < deadline,
            "deferred cleanup not sent within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until mixop has closed the given sockets: the peer closed its end (idle time-out,
/// simulated reboot) and mixop's connection task has seen it, so the next request goes on a
/// new connection instead of racing the close on the old one.
fn wait_closed(sockets: &[u64]) {
    assert!(!sockets.is_empty(), "no connection to wait for");
    wait_for("mixop to close its connection to the peer", || {
        let ours = own_socket_inodes();
        sockets.iter().all(|s| !ours.contains(s))
    });
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
    let peer = WinrmPeer::start(&[]);
    let c = peer.connect().await;
    for i in 0..20 {
        let (rc, out, err) =
            run(&c, &format!("echo out{i}; echo err{i} >&2; exit {}", i % 4)).await;
        assert_eq!(
            (rc, out.as_str(), err.as_str()),
            (i % 4, &*format!("out{i}\n"), &*format!("err{i}\n"))
        );
    }
    let s = peer.stats();
    assert_eq!(n(&s["connections_accepted"]), 1, "{s}");
    assert_eq!(n(&s["handshakes"]), 1, "{s}");
    assert_eq!(n(&s["shells_created"]), 1, "{s}");
    assert_eq!(n(&s["commands_started"]), 20, "{s}");
    assert_eq!(
        n(&s["plaintext_refused"]) + n(&s["decrypt_failures"]),
        0,
        "{s}"
    );
    assert_eq!(s["shells"][0]["codepage"], json!(65001), "{s}");
    // The user profile is loaded, as Ansible and pywinrm do (WINRS_NOPROFILE=FALSE).
    assert_eq!(s["shells"][0]["noprofile"], json!(false), "{s}");
    // Receives wait for output rather than timing out in sub-second polls.
    assert_eq!(n(&s["faults"]["TimedOut"]), 0, "{s}");
    let (conns, handshakes, _) = c.counters();
    assert_eq!((conns, handshakes), (1, 1));
    c.close().await;
    c.close().await;
    let s = peer.stats();
    assert_eq!(n(&s["shells_deleted"]), 1, "{s}");
    assert_eq!(n(&s["shells_open"]), 0, "{s}");
    let e = c.exec(CommandSpec::new("true")).await.unwrap_err();
    assert!(e.message.contains("closed"), "{e}");
    // mixop_winrm_noprofile: true asks for WINRS_NOPROFILE=TRUE.
    let c = peer
        .connect_with(json!({"mixop_winrm_noprofile": true}))
        .await;
    assert_eq!(peer.stats()["shells"][0]["noprofile"], json!(true));
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_streamed_while_the_command_runs() {
    let peer = WinrmPeer::start(&[]);
    let c = peer.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The command cannot finish before the gate exists, and the gate is only made once the
    // first chunk arrived: that chunk was streamed while the command ran.
    let mut spec = CommandSpec::new(format!(
        "echo first; until [ -e '{}' ]; do sleep 0.02; done; echo second >&2",
        gate.display()
    ));
    spec.output = Some(tx);
    let task = tokio::spawn(async move { c.exec(spec).await });
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no output while the command runs");
    assert!(
        matches!(&first, Some(OutputChunk::Stdout(d)) if d == b"first\n"),
        "{first:?}"
    );
    assert!(!task.is_finished());
    std::fs::write(&gate, "").unwrap();
    let out = task.await.unwrap().unwrap();
    assert_eq!(out.stdout, b"first\n");
    assert_eq!(out.stderr, b"second\n");
    let second = rx.recv().await;
    assert!(
        matches!(&second, Some(OutputChunk::Stderr(d)) if d == b"second\n"),
        "{second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_output_over_many_receives_and_timed_out_polls() {
    // A 1 s operation timeout makes the silent phase answer w:TimedOut, which means "ask again".
    // (The read timeout leaves a loaded peer plenty of time to send that answer.)
    let peer = WinrmPeer::start(&[]);
    let c = peer
        .connect_with(
            json!({"ansible_winrm_operation_timeout_sec": 1, "ansible_winrm_read_timeout_sec": 10}),
        )
        .await;
    let (rc, out, _) = run(&c, "sleep 2.5; echo late").await;
    assert_eq!((rc, out.as_str()), (0, "late\n"));
    let s = peer.stats();
    assert!(n(&s["faults"]["TimedOut"]) >= 1, "{s}");
    // 10 MiB of output, in envelope-sized Receives.
    settle(&c).await;
    peer.op("big", json!({"mb": 10}));
    let out = c.exec(CommandSpec::new("true")).await.unwrap();
    assert_eq!(out.stdout.len(), 10 * 1024 * 1024);
    assert!(out.stdout.starts_with(b"0123456789abcdef"));
    let s = peer.stats();
    assert!(n(&s["requests_by_action"]["Receive"]) >= 70, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_in_envelope_sized_chunks() {
    let peer = WinrmPeer::start(&[]);
    let c = peer.connect().await;
    let data = random_bytes(1_000_000, 7);
    let mut spec = CommandSpec::new("sha256sum | cut -c1-64");
    spec.stdin = Some(data.clone());
    let out = c.exec(spec).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sha256_hex(&data)
    );
    let s = peer.stats();
    let sends = n(&s["requests_by_action"]["Send"]);
    assert!(
        (9..=12).contains(&sends),
        "1 MB should take ~9 Sends of <153600-byte envelopes: {s}"
    );
    assert_eq!(n(&s["envelope_too_large"]), 0, "{s}");
    // Empty stdin still closes the stream.
    let mut spec = CommandSpec::new("wc -c");
    spec.stdin = Some(vec![]);
    let out = c.exec(spec).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    // Environment variables reach the command.
    let mut spec = CommandSpec::new("echo \"$GREETING\"");
    spec.env = vec![("GREETING".into(), "hello there".into())];
    let _ = c.exec(spec).await; // cmd.exe syntax (`set "K=V"&&`): not meaningful under /bin/sh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_one_connection_and_shell() {
    let peer = WinrmPeer::start(&[]);
    let c = std::sync::Arc::new(peer.connect().await);
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    // A silent long command must not hold the connection while others run: it only ends once
    // the short ones are done.
    let long = {
        let c = c.clone();
        let cmd = format!(
            "until [ -e '{}' ]; do sleep 0.02; done; echo long",
            gate.display()
        );
        tokio::spawn(async move { c.exec(CommandSpec::new(cmd)).await })
    };
    peer.wait_started(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.exec(CommandSpec::new(format!("sleep 0.3; echo {i}")))
                .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.unwrap().unwrap();
        assert_eq!(out.stdout, format!("{i}\n").into_bytes());
    }
    // A Receive held for the whole OperationTimeout (20 s) would show here.
    let short_done = start.elapsed();
    assert!(
        short_done < Duration::from_secs(10),
        "short commands took {short_done:?}"
    );
    std::fs::write(&gate, "").unwrap();
    let out = long.await.unwrap().unwrap();
    assert_eq!(out.stdout, b"long\n");
    let s = peer.stats();
    // The long command's Receive kept a connection to itself; the others used a second one.
    assert_eq!(n(&s["connections_accepted"]), 2, "{s}");
    assert_eq!(n(&s["handshakes"]), 2, "{s}");
    assert_eq!(n(&s["shells_created"]), 1, "{s}");
    assert_eq!(n(&s["commands_started"]), 11, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_peers_in_parallel() {
    let peers: Vec<WinrmPeer> = (0..8).map(|_| WinrmPeer::start(&[])).collect();
    let specs: Vec<ConnSpec> = peers.iter().map(|p| p.spec(json!({}))).collect();
    let tasks: Vec<_> = specs
        .into_iter()
        .map(|spec| {
            tokio::spawn(async move {
                let c = WinrmConnection::connect(&spec).await?;
                let mut outs = Vec::new();
                for i in 0..5 {
                    outs.push(
                        c.exec(CommandSpec::new(format!("echo {} {i}", spec.host)))
                            .await?,
                    );
                }
                c.close().await;
                Ok::<_, mixop::connection::ConnError>((spec.host, outs))
            })
        })
        .collect();
    for t in tasks {
        let (host, outs) = t.await.unwrap().unwrap();
        for (i, o) in outs.iter().enumerate() {
            assert_eq!(o.stdout, format!("{host} {i}\n").into_bytes());
        }
    }
    for p in &peers {
        let s = p.stats();
        assert_eq!(
            (
                n(&s["handshakes"]),
                n(&s["shells_created"]),
                n(&s["shells_deleted"])
            ),
            (1, 1, 1),
            "{s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_cancel_terminate_the_command() {
    let peer = WinrmPeer::start(&[]);
    let c = std::sync::Arc::new(peer.connect().await);
    let mut spec = CommandSpec::new("sleep 30");
    spec.timeout = Some(Duration::from_millis(500));
    let start = Instant::now();
    let e = c.exec(spec).await.unwrap_err();
    assert_eq!(e.kind, ConnErrorKind::Timeout, "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // Cancellation (the future dropped, as on Ctrl-C) also signals terminate. Cancelled once
    // its output arrived, i.e. once mixop knows the command runs.
    let c2 = c.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut spec = CommandSpec::new("echo started; sleep 30");
    spec.output = Some(tx);
    let task = tokio::spawn(async move { c2.exec(spec).await });
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the command did not start");
    task.abort();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = peer.stats();
        if n(&s["signals"]["terminate"]) >= 2 && n(&s["shells"][0]["commands"]) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no terminate for both commands: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The endless-output fault: bounded by the timeout too.
    settle(&c).await;
    peer.op("endless", json!({"n": 1}));
    let mut spec = CommandSpec::new("true");
    spec.timeout = Some(Duration::from_secs(1));
    let start = Instant::now();
    let e = c.exec(spec).await.unwrap_err();
    assert_eq!(e.kind, ConnErrorKind::Timeout, "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(run(&c, "echo still fine").await.1, "still fine\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_idle_drop_and_a_dropped_create() {
    // The peer closes idle keep-alive connections after 1 s (HTTP.sys does after 120 s).
    let peer = WinrmPeer::start(&["--idle-timeout", "1", "--drop-next", "1"]);
    // The first SOAP request (Create) is dropped unanswered: resent on a new connection.
    let c = peer.connect().await;
    let s = peer.stats();
    assert_eq!(
        (n(&s["handshakes"]), n(&s["shells_created"])),
        (2, 1),
        "{s}"
    );
    assert_eq!(run(&c, "echo a").await.1, "a\n");
    // Once the deferred Signal of "echo a" is answered the connection is idle; the peer closes
    // it a second later, and the next command goes on a new connection.
    settle(&c).await;
    let sockets = peer.client_sockets();
    let s = peer.stats();
    let before = (n(&s["handshakes"]), n(&s["connections_accepted"]));
    wait_closed(&sockets);
    assert_eq!(run(&c, "echo b").await.1, "b\n");
    let s = peer.stats();
    assert_eq!(
        (
            n(&s["handshakes"]),
            n(&s["connections_accepted"]),
            n(&s["shells_created"])
        ),
        (before.0 + 1, before.1 + 1, 1),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_command_is_an_error_and_dropped_receive_is_resent() {
    let peer = WinrmPeer::start(&[]);
    // A short OperationTimeout: the Receive already waiting at the peer when the drop is armed
    // returns within a second, so the drop meets the next Receive (with the long default it
    // could wait past this test's 20 s bound).
    let c = std::sync::Arc::new(
        peer.connect_with(
            json!({"ansible_winrm_operation_timeout_sec": 1, "ansible_winrm_read_timeout_sec": 10}),
        )
        .await,
    );
    assert_eq!(run(&c, "echo b").await.1, "b\n");
    // A dropped Command cannot be resent blindly: a clear error, then the next command works.
    // The deferred Signal of "echo b" goes first, so the drop hits the Command.
    settle(&c).await;
    peer.op("drop_next", json!({"n": 1}));
    let e = c.exec(CommandSpec::new("echo c")).await.unwrap_err();
    assert!(e.message.contains("may or may not have started"), "{e}");
    assert_eq!(run(&c, "echo d").await.1, "d\n");
    // A Receive dropped after the command started is resent (Receive is safe to repeat). The
    // command waits for a gate, so the only requests after its first output are its Receives.
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut spec = CommandSpec::new(format!(
        "echo started; until [ -e '{}' ]; do sleep 0.02; done; echo e",
        gate.display()
    ));
    spec.output = Some(tx);
    let c2 = c.clone();
    let t = tokio::spawn(async move { c2.exec(spec).await });
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the command did not start");
    settle(&c).await;
    let handshakes = n(&peer.stats()["handshakes"]);
    peer.op("drop_next", json!({"n": 1}));
    wait_for("the injected drop", || {
        n(&peer.stats()["injected"]["drop"]) == 2
    });
    std::fs::write(&gate, "").unwrap();
    let out = t.await.unwrap().unwrap();
    assert_eq!(out.stdout, b"started\ne\n");
    let s = peer.stats();
    assert_eq!(n(&s["handshakes"]), handshakes + 1, "{s}");
    assert_eq!(n(&s["commands_started"]), 3, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_simulated_reboot() {
    let peer = WinrmPeer::start(&[]);
    let c = peer.connect().await;
    assert_eq!(run(&c, "echo before").await.1, "before\n");
    // The deferred Signal of "echo before" is answered before the reboot; once mixop has seen
    // the reboot close its connection, the next command needs a new one.
    settle(&c).await;
    let sockets = peer.client_sockets();
    // Down until the test brings it back (wait_up), so "while the host is down" holds however
    // slow the machine is.
    peer.op("reboot", json!({"down_seconds": 600}));
    wait_closed(&sockets);
    // While the host is down: unreachable, naming the address, port and scheme.
    let e = c.exec(CommandSpec::new("true")).await.unwrap_err();
    assert_eq!(e.kind, ConnErrorKind::Unreachable, "{e}");
    assert!(
        e.message
            .contains(&format!("127.0.0.1:{} (http)", peer.port)),
        "{e}"
    );
    assert!(e.message.contains("refused"), "{e}");
    peer.wait_up();
    // New connection, new handshake, shell-not-found → new shell, command sent once more.
    assert_eq!(run(&c, "echo after").await.1, "after\n");
    let s = peer.stats();
    assert_eq!(n(&s["reboots"]), 1, "{s}");
    assert_eq!(n(&s["shells_created"]), 2, "{s}");
    // The Command on the lost shell gets ShellNotFound.
    assert_eq!(n(&s["faults"]["ShellNotFound"]), 1, "{s}");
    assert_eq!(n(&s["handshakes"]), 2, "{s}");
    // A command running when the host goes down fails clearly and promptly.
    let c = std::sync::Arc::new(c);
    let c2 = c.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut spec = CommandSpec::new("echo started; sleep 30");
    spec.output = Some(tx);
    let t = tokio::spawn(async move { c2.exec(spec).await });
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the command did not start");
    let start = Instant::now();
    peer.op("reboot", json!({"down_seconds": 600}));
    let e = t.await.unwrap().unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10), "{e}");
    assert!(
        e.message.contains("refused") || e.message.contains("lost"),
        "{e}"
    );
    peer.wait_up();
    assert_eq!(run(&c, "echo again").await.1, "again\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_validation_ca_and_ignore() {
    let peer = WinrmPeer::start(&["--https", "--basic"]);
    // Validation is on by default: the peer's private CA is unknown.
    let e = WinrmConnection::connect(&peer.spec(json!({})))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains("not signed by a trusted CA"), "{e}");
    assert!(e.message.contains("ansible_winrm_ca_trust_path"), "{e}");
    // With the CA: NTLM over TLS, no message encryption.
    let c = peer
        .connect_with(json!({"ansible_winrm_ca_trust_path": peer.ca().display().to_string()}))
        .await;
    assert_eq!(run(&c, "echo tls").await.1, "tls\n");
    c.close().await;
    let c = peer
        .connect_with(json!({"ansible_winrm_server_cert_validation": "ignore"}))
        .await;
    assert_eq!(run(&c, "echo ignored").await.1, "ignored\n");
    c.close().await;
    // Basic over HTTPS.
    let c = peer
        .connect_with(json!({"ansible_winrm_server_cert_validation": "ignore", "ansible_winrm_transport": "basic"}))
        .await;
    assert_eq!(run(&c, "echo basic").await.1, "basic\n");
    let s = peer.stats();
    assert_eq!(n(&s["handshakes"]), 2, "{s}");
    assert!(n(&s["basic_auths"]) >= 2, "{s}");
    assert_eq!(n(&s["tls_handshake_failures"]), 1, "{s}");
}

/// NTLM channel binding over HTTPS (RFC 5929 tls-server-end-point in MsvAvChannelBindings): a
/// host that requires it (CbtHardeningLevel=Strict) accepts mixop; a host whose expected binding
/// is another certificate's — what a TLS-terminating man in the middle with its own certificate
/// looks like to it — refuses mixop even with certificate validation off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_channel_binding_over_https() {
    let strict = WinrmPeer::start(&["--https", "--cbt", "strict"]);
    let c = strict
        .connect_with(json!({"ansible_winrm_ca_trust_path": strict.ca().display().to_string()}))
        .await;
    assert_eq!(run(&c, "echo bound").await.1, "bound\n");
    c.close().await;
    assert_eq!(n(&strict.stats()["auth_failures"]), 0);
    let other_cert = strict.dir.path().join("certs/server.pem");
    let mitm = WinrmPeer::start(&[
        "--https",
        "--cbt",
        "strict",
        "--cbt-cert",
        other_cert.to_str().unwrap(),
    ]);
    let e = WinrmConnection::connect(
        &mitm.spec(json!({"ansible_winrm_server_cert_validation": "ignore"})),
    )
    .await
    .err()
    .expect("a binding to another certificate is refused");
    assert_eq!(e.kind, ConnErrorKind::Unreachable, "{e}");
    assert!(e.message.contains("HTTP 401"), "{e}");
    assert!(e.message.contains("channel binding"), "{e}");
    let s = mitm.stats();
    assert_eq!(n(&s["handshakes"]), 0, "{s}");
    assert!(n(&s["auth_failures"]) >= 1, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_name_mismatch_is_named() {
    // The peer's certificate covers localhost, 127.0.0.1 and ::1, not 127.0.0.2.
    let peer = WinrmPeer::start_on("127.0.0.2", &["--https"]);
    let mut spec =
        peer.spec(json!({"ansible_winrm_ca_trust_path": peer.ca().display().to_string()}));
    spec.address = "127.0.0.2".into();
    let e = WinrmConnection::connect(&spec).await.err().unwrap();
    assert!(
        e.message.contains("not valid for the name \"127.0.0.2\""),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_plaintext_over_http_only_when_allowed() {
    let strict = WinrmPeer::start(&["--basic"]);
    // Refused by mixop itself without the explicit opt-in.
    let e = WinrmConnection::connect(&strict.spec(json!({"ansible_winrm_transport": "basic"})))
        .await
        .err()
        .unwrap();
    assert!(
        e.message
            .contains("ansible_winrm_message_encryption: never"),
        "{e}"
    );
    // With the opt-in but a host that refuses unencrypted traffic: 401, explained.
    let e = WinrmConnection::connect(&strict.spec(json!({
        "ansible_winrm_transport": "basic", "ansible_winrm_message_encryption": "never"
    })))
    .await
    .err()
    .unwrap();
    assert!(
        e.message.contains("HTTP 401") && e.message.contains("AllowUnencrypted"),
        "{e}"
    );
    // NTLM without encryption against AllowUnencrypted=false: the host's 500, explained.
    let e = match WinrmConnection::connect(
        &strict.spec(json!({"ansible_winrm_message_encryption": "never"})),
    )
    .await
    {
        Ok(_) => panic!("plaintext NTLM accepted:\n{}", strict.log()),
        Err(e) => e,
    };
    assert!(e.message.contains("AllowUnencrypted=false"), "{e}");
    assert_eq!(n(&strict.stats()["plaintext_refused"]), 1);
    let open = WinrmPeer::start(&["--basic", "--allow-unencrypted"]);
    let c = open
        .connect_with(json!({"ansible_winrm_transport": "basic", "ansible_winrm_message_encryption": "never"}))
        .await;
    assert_eq!(run(&c, "echo plain").await.1, "plain\n");
    let c = open
        .connect_with(json!({"ansible_winrm_message_encryption": "never"}))
        .await;
    assert_eq!(run(&c, "echo ntlm-plain").await.1, "ntlm-plain\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actionable_connect_errors() {
    let peer = WinrmPeer::start(&["--max-shells", "1"]);
    // Wrong password.
    let mut spec = peer.spec(json!({}));
    spec.password = Some("wrong".into());
    let e = WinrmConnection::connect(&spec).await.err().unwrap();
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains("HTTP 401: credentials rejected"), "{e}");
    assert!(
        e.message.contains("ansible_password") && e.message.contains("ansible_winrm_transport"),
        "{e}"
    );
    // Domain account.
    let mut spec = peer.spec(json!({}));
    spec.user = Some("LAB\\admin".into());
    spec.password = Some("S3cret:x".into());
    let c = WinrmConnection::connect(&spec).await.unwrap();
    // Too many shells (this user already has its one).
    let mut spec2 = spec.clone();
    spec2.host = "second".into();
    let e = WinrmConnection::connect(&spec2).await.err().unwrap();
    assert!(
        e.message.contains("2150859173") && e.message.contains("MaxShellsPerUser"),
        "{e}"
    );
    c.close().await;
    // Connection refused names host, port and scheme.
    let port = peer.port;
    drop(peer);
    let spec = ConnSpec {
        port: Some(port),
        ..spec
    };
    let e = WinrmConnection::connect(&spec).await.err().unwrap();
    assert!(
        e.message.contains(&format!("127.0.0.1:{port} (http)")) && e.message.contains("refused"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_clear_errors_and_the_next_command_works() {
    let peer = WinrmPeer::start(&[]);
    let c = peer.connect().await;
    let cases: [(&str, Value, &str); 5] = [
        (
            "http500",
            json!({"n": 1}),
            "The remote procedure call failed",
        ),
        (
            "garbage",
            json!({"n": 1}),
            "invalid XML in the WinRM response",
        ),
        (
            "truncate",
            json!({"n": 1}),
            "malformed multipart/encrypted body",
        ),
        ("badsig", json!({"n": 1}), "cannot decrypt the response"),
        ("big", json!({"mb": 10, "single": true}), "larger than"),
    ];
    for (op, body, want) in cases {
        settle(&c).await;
        peer.op(op, body);
        let start = Instant::now();
        let e = c.exec(CommandSpec::new("echo x")).await.unwrap_err();
        assert!(e.message.contains(want), "{op}: {e}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{op} took {:?}",
            start.elapsed()
        );
        assert_eq!(run(&c, "echo ok").await.1, "ok\n", "after {op}");
    }
    // A response slower than the read timeout (by far, so a loaded machine cannot blur it).
    settle(&c).await;
    let c = peer
        .connect_with(
            json!({"ansible_winrm_operation_timeout_sec": 1, "ansible_winrm_read_timeout_sec": 2}),
        )
        .await;
    settle(&c).await;
    peer.op("delay_ms", json!({"ms": 30000}));
    let start = Instant::now();
    let e = c.exec(CommandSpec::new("echo slow")).await.unwrap_err();
    assert_eq!(e.kind, ConnErrorKind::Timeout, "{e}");
    assert!(e.message.contains("read timeout"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(20));
    peer.op("delay_ms", json!({"ms": 0}));
    assert_eq!(run(&c, "echo fine").await.1, "fine\n");
}

/// A Receive answered with HTTP 500 (`w:InternalError`) is sent again, up to 3 times in all;
/// then the error names the command and the attempts, and the connection still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_answered_500_is_resent_then_named() {
    let peer = WinrmPeer::start(&[]);
    let c = peer.connect().await;
    peer.op("http500", json!({"n": 2, "action": "Receive"}));
    assert_eq!(run(&c, "echo again").await.1, "again\n");
    peer.op("http500", json!({"n": 3, "action": "Receive"}));
    let e = c.exec(CommandSpec::new("echo never")).await.unwrap_err();
    assert!(
        e.message.contains("cannot read the output of command")
            && e.message.contains("the Receive was sent 3 times")
            && e.message.contains("1726"),
        "{e}"
    );
    assert_eq!(n(&peer.stats()["injected"]["http500"]), 5);
    assert_eq!(run(&c, "echo after").await.1, "after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_too_large_for_the_host() {
    // A host whose MaxEnvelopeSizekb is below the 150 KB our Send chunks fill.
    let peer = WinrmPeer::start(&["--max-envelope-kb", "64"]);
    let c = peer.connect().await;
    let mut spec = CommandSpec::new("wc -c");
    spec.stdin = Some(vec![b'x'; 200_000]);
    let e = c.exec(spec).await.unwrap_err();
    assert!(
        e.message.contains("HTTP 413") && e.message.contains("MaxEnvelopeSize"),
        "{e}"
    );
    assert!(e.message.contains("MaxEnvelopeSizekb"), "{e}");
    assert_eq!(run(&c, "echo fine").await.1, "fine\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_transfer_5mb_with_hash_check() {
    let peer = WinrmPeer::start(&["--mode", "record"]);
    let c = peer.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(5 * 1024 * 1024 + 123, 42);
    let sha = sha256_hex(&data);
    let src = dir.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();

    // Upload: the recorded stdin must decode to exactly the file; the host's hash comes from
    // the rule (record mode runs nothing).
    peer.op(
        "rules",
        json!({"rules": [
            {"match": "OpenStandardInput", "stdout": "sha256={{stdin_b64_sha256}}\r\n", "times": 1},
            {"match": "OpenStandardInput", "stdout": "sha256=00\r\n"}
        ]}),
    );
    c.put_file(&src, "C:\\Temp\\big.bin", None).await.unwrap();
    let recs = peer.control_records();
    let rec = recs.last().unwrap();
    let script = rec["script"].as_str().unwrap();
    assert!(script.contains("$dest = 'C:\\Temp\\big.bin'"), "{script}");
    assert!(
        script.contains(&sha),
        "the expected hash is checked on the host too"
    );
    let mut received = Vec::new();
    for line in rec["stdin"].as_str().unwrap().lines() {
        received.extend(B64.decode(line.trim()).unwrap());
    }
    assert_eq!(received.len(), data.len());
    assert!(received == data, "uploaded bytes differ");
    let s = peer.stats();
    assert!(n(&s["requests_by_action"]["Send"]) >= 60, "{s}");
    assert_eq!(n(&s["envelope_too_large"]), 0, "{s}");
    // The host reporting another hash fails the upload.
    let e = c
        .put_bytes(b"small", "C:\\Temp\\small.txt", None)
        .await
        .unwrap_err();
    assert!(e.message.contains("expected"), "{e}");

    // Download: the rule answers the download script with base64 lines and the hash.
    let mut text = String::new();
    for chunk in data.chunks(49152) {
        text.push_str(&B64.encode(chunk));
        text.push_str("\r\n");
    }
    text.push_str(&format!("sha256={sha}\r\n"));
    peer.op("rules", json!({"rules": [
        {"match": "OpenRead\\(\\$src\\)", "stdout_b64": B64.encode(text.as_bytes()), "times": 1},
        {"match": "OpenRead\\(\\$src\\)", "stdout_b64": B64.encode(format!("{}\r\nsha256={sha}\r\n", B64.encode(b"short")))},
    ]}));
    let dest = dir.path().join("fetched.bin");
    c.get_file("C:\\Temp\\big.bin", &dest).await.unwrap();
    let got = std::fs::read(&dest).unwrap();
    assert!(got == data, "downloaded bytes differ");
    // A hash mismatch leaves no file behind.
    let dest2 = dir.path().join("bad.bin");
    let e = c.get_file("C:\\Temp\\big.bin", &dest2).await.unwrap_err();
    assert!(e.message.contains("SHA-256"), "{e}");
    assert!(!dest2.exists());
    // A missing remote file.
    peer.op(
        "rules",
        json!({"rules": [{"match": "OpenRead", "rc": 2, "stderr": "file not found: C:\\nope"}]}),
    );
    let e = c
        .get_file("C:\\nope", &dir.path().join("nope"))
        .await
        .unwrap_err();
    assert!(e.message.contains("file not found"), "{e}");
    let recs = peer.control_records();
    let script = recs.last().unwrap()["script"].as_str().unwrap();
    assert!(script.contains("$src = 'C:\\nope'"), "{script}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powershell_helper_reaches_the_host_decoded() {
    use mixop::powershell::script as ps;
    let peer = WinrmPeer::start(&["--mode", "record"]);
    let c = peer.connect().await;
    peer.op(
        "rules",
        json!({"rules": [
            // The long script's bootstrap reads the script from stdin: the peer runs that.
            {"match": "Get-Service -Name 'ünïcode'", "stdout": "Running\r\n", "rc": 0},
            {"match": "Get-Service -Name 'k3s'", "stdout": "Running\r\n", "rc": 0},
        ]}),
    );
    let short = "Get-Service -Name 'k3s' | Select-Object -ExpandProperty Status";
    let cmd = ps::command(short);
    let out = c.exec(CommandSpec::new(cmd.cmdline)).await.unwrap();
    assert_eq!(out.stdout, b"Running\r\n");
    let long = format!("$pad = '{}'\nGet-Service -Name 'ünïcode'", "a".repeat(9000));
    let cmd = ps::command(&long);
    assert!(cmd.stdin.is_some());
    let mut spec = CommandSpec::new(cmd.cmdline);
    spec.stdin = cmd.stdin;
    let out = c.exec(spec).await.unwrap();
    assert_eq!(out.stdout, b"Running\r\n");
    let recs = peer.control_records();
    assert_eq!(recs[0]["script"].as_str(), Some(short));
    assert_eq!(recs[0]["script_source"].as_str(), Some("encoded"));
    // The long one: the bootstrap is encoded, the script itself arrives on stdin.
    assert!(
        recs[1]["command_line"]
            .as_str()
            .unwrap()
            .contains("-EncodedCommand")
    );
    assert_eq!(recs[1]["script_source"].as_str(), Some("stdin"));
    assert_eq!(recs[1]["script"].as_str(), Some(long.as_str()));
    assert_eq!(recs[1]["stdin"].as_str(), Some(long.as_str()));
    // A script kept off the command line, however short, goes the same way.
    let cmd = ps::command_hidden(short);
    let mut spec = CommandSpec::new(cmd.cmdline);
    spec.stdin = cmd.stdin;
    let out = c.exec(spec).await.unwrap();
    assert_eq!(out.stdout, b"Running\r\n");
    let recs = peer.control_records();
    assert!(!recs[2]["command_line"].as_str().unwrap().contains("k3s"));
    assert_eq!(recs[2]["script"].as_str(), Some(short));
    assert_eq!(recs[2]["script_source"].as_str(), Some("stdin"));
}

/// A connection with settings adjusted beyond what inventory variables offer.
async fn connect_tuned(
    peer: &WinrmPeer,
    vars: Value,
    tune: impl FnOnce(&mut mixop::connection::winrm::session::Settings),
) -> WinrmConnection {
    let mut settings = mixop::connection::winrm::settings_from_spec(&peer.spec(vars)).unwrap();
    tune(&mut settings);
    match WinrmConnection::with_settings(settings).await {
        Ok(c) => c,
        Err(e) => panic!("connect: {e}\npeer log:\n{}", peer.log()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shells_rotate_before_the_operations_quota() {
    // MaxConcurrentOperationsPerUser 10: every Command counts until its shell is deleted.
    let peer = WinrmPeer::start(&["--max-operations", "10"]);
    let c = peer
        .connect_with(json!({"mixop_winrm_commands_per_shell": 4}))
        .await;
    for i in 0..30 {
        assert_eq!(run(&c, &format!("echo {i}")).await.1, format!("{i}\n"));
    }
    settle(&c).await;
    let s = peer.stats();
    assert_eq!(n(&s["faults"]["QuotaMaxOperations"]), 0, "{s}");
    // 30 commands, 4 per shell: 8 shells, each deleted as soon as the next one took over.
    assert_eq!(n(&s["shells_created"]), 8, "{s}");
    assert_eq!(n(&s["shells_deleted"]), 7, "{s}");
    assert_eq!(n(&s["shells_open"]), 1, "{s}");
    assert_eq!(n(&s["operations"]["vagrant"]), 2, "{s}");
    c.close().await;
    assert_eq!(n(&peer.stats()["shells_open"]), 0);

    // A retired shell stays while a command still runs on it, and goes when that one ends.
    let peer = WinrmPeer::start(&[]);
    let c = std::sync::Arc::new(
        peer.connect_with(json!({"mixop_winrm_commands_per_shell": 3}))
            .await,
    );
    let c2 = c.clone();
    let long = tokio::spawn(async move { c2.exec(CommandSpec::new("sleep 1.5; echo long")).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while n(&peer.stats()["commands_started"]) == 0 {
        assert!(Instant::now() < deadline, "the long command did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..4 {
        assert_eq!(run(&c, &format!("echo {i}")).await.1, format!("{i}\n"));
    }
    let s = peer.stats();
    assert_eq!(
        (n(&s["shells_created"]), n(&s["shells_open"])),
        (2, 2),
        "{s}"
    );
    assert_eq!(long.await.unwrap().unwrap().stdout, b"long\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while n(&peer.stats()["shells_deleted"]) != 1 {
        assert!(
            Instant::now() < deadline,
            "retired shell not deleted: {}",
            peer.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(n(&peer.stats()["shells_open"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_fault_recreates_the_shell_and_retries_once() {
    for form in ["wsman", "wmi"] {
        let peer = WinrmPeer::start(&["--max-operations", "10", "--operations-fault", form]);
        let c = peer.connect().await;
        for i in 0..30 {
            let (rc, out, _) = run(&c, &format!("echo {i}")).await;
            assert_eq!((rc, out), (0, format!("{i}\n")), "{form}");
        }
        settle(&c).await;
        let s = peer.stats();
        // The 11th and 21st Commands hit the quota; each time the idle shell was deleted and
        // the Command sent again on a new one.
        assert_eq!(n(&s["faults"]["QuotaMaxOperations"]), 2, "{form}: {s}");
        assert_eq!(
            (n(&s["shells_created"]), n(&s["shells_deleted"])),
            (3, 2),
            "{form}: {s}"
        );
        assert_eq!(n(&s["commands_started"]), 30, "{form}: {s}");
    }
    // Another session of the same user holding the operations: one retry, then a clear error.
    let peer = WinrmPeer::start(&["--max-operations", "3"]);
    let hog = peer.connect().await;
    for _ in 0..3 {
        run(&hog, "true").await;
    }
    let c = peer.connect().await;
    let e = c.exec(CommandSpec::new("true")).await.unwrap_err();
    assert!(e.message.contains("2150859174"), "{e}");
    assert!(e.message.contains("MaxConcurrentOperationsPerUser"), "{e}");
    assert_eq!(n(&peer.stats()["faults"]["QuotaMaxOperations"]), 2);
    hog.close().await;
    assert_eq!(run(&c, "echo freed").await.1, "freed\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timed_out_carries_on_and_busy_is_retried() {
    let peer = WinrmPeer::start(&[]);
    let c = connect_tuned(&peer, json!({}), |s| {
        s.busy_retry_delay = Duration::from_millis(50)
    })
    .await;
    let data = random_bytes(1_000_000, 11);
    peer.op("send_timeout", json!({"n": 2}));
    peer.op("send_busy", json!({"n": 2}));
    let mut spec = CommandSpec::new("sha256sum | cut -c1-64");
    spec.stdin = Some(data.clone());
    let out = c.exec(spec).await.unwrap();
    // Nothing lost (the timed-out Sends were taken), nothing doubled (the busy ones were not).
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sha256_hex(&data)
    );
    let s = peer.stats();
    assert_eq!(
        (n(&s["faults"]["TimedOut"]), n(&s["faults"]["SendBusy"])),
        (2, 2),
        "{s}"
    );
    // Busy three times in a row: the third refusal is the error.
    peer.op("send_busy", json!({"n": 3}));
    let mut spec = CommandSpec::new("cat");
    spec.stdin = Some(b"x".to_vec());
    let e = c.exec(spec).await.unwrap_err();
    assert!(e.message.contains("cannot send input"), "{e}");
    assert!(e.message.contains("WinRM fault 170"), "{e}");
    assert_eq!(run(&c, "echo next").await.1, "next\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_waits_long_and_always_names_its_command() {
    // The peer answers a Receive without CommandId with InvalidParameter (as Windows does), so
    // every test here also checks that ours always carry it.
    let peer = WinrmPeer::start(&[]);
    let c = peer.connect().await;
    settle(&c).await;
    peer.op("reset_stats", json!({}));
    let start = Instant::now();
    let (_, out, _) = run(&c, "sleep 2.5; echo late").await;
    assert_eq!(out, "late\n");
    assert!(start.elapsed() >= Duration::from_millis(2500));
    let s = peer.stats();
    // One Receive waited for the output (a second one may fetch the exit if the process ended
    // after the peer's 10 ms coalescing window): no sub-second polls timing out.
    assert!(n(&s["requests_by_action"]["Receive"]) <= 2, "{s}");
    assert_eq!(n(&s["faults"]["TimedOut"]), 0, "{s}");
    assert_eq!(n(&s["faults"]["InvalidParameter"]), 0, "{s}");

    // Done without an exit code is not success.
    peer.op("no_exit_code", json!({"n": 1}));
    let e = c
        .exec(CommandSpec::new("echo hi; exit 0"))
        .await
        .unwrap_err();
    assert!(e.message.contains("without an exit code"), "{e}");
    assert_eq!(run(&c, "exit 3").await.0, 3);

    // HTTP.sys answering instead of WinRM: its page is quoted, with what to check.
    settle(&c).await;
    peer.op("http503", json!({"n": 1}));
    let e = c.exec(CommandSpec::new("true")).await.unwrap_err();
    assert!(
        e.message
            .contains("HTTP 503 to Command from the host's HTTP server, not from WinRM"),
        "{e}"
    );
    assert!(
        e.message
            .contains("Service Unavailable HTTP Error 503. The service is unavailable."),
        "{e}"
    );
    assert!(e.message.contains("WinRM service is stopped"), "{e}");
    peer.op("http503", json!({"n": 1, "status": 400}));
    let e = c.exec(CommandSpec::new("true")).await.unwrap_err();
    assert!(
        e.message
            .contains("HTTP Error 400. The request hostname is invalid."),
        "{e}"
    );
    assert_eq!(run(&c, "echo back").await.1, "back\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_run_without_cmd_exe() {
    let peer = WinrmPeer::start(&["--mode", "record"]);
    let c = peer.connect().await;
    let argv = [
        r"C:\Program Files\A\a.exe",
        "x & y",
        "%USERNAME%",
        r#"say "hi" ^ <now>"#,
        r"C:\dir with space\",
    ];
    let line = argv
        .iter()
        .map(|a| mixop::powershell::script::quote_arg(a))
        .collect::<Vec<_>>()
        .join(" ");
    c.exec_program(CommandSpec::new(line.clone()), None)
        .await
        .unwrap();
    let mut spec = CommandSpec::new(line.clone());
    spec.env = vec![("GREETING".into(), "a & b %X%".into())];
    c.exec_program(spec, Some(r"C:\work dir & more"))
        .await
        .unwrap();
    settle(&c).await;
    let recs = peer.control_records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    for r in &recs {
        assert_eq!(r["skip_cmd_shell"], json!(true), "{r}");
        assert_eq!(r["argv"], json!(argv), "{r}");
        assert_eq!(r["command_line"], json!(line), "{r}");
    }
    assert_eq!(recs[0]["working_directory"], Value::Null);
    // chdir and environment: a shell of its own, created with them and deleted afterwards.
    assert_eq!(recs[1]["working_directory"], json!(r"C:\work dir & more"));
    assert_eq!(recs[1]["environment"], json!({"GREETING": "a & b %X%"}));
    assert_ne!(recs[0]["shell_id"], recs[1]["shell_id"]);
    let s = peer.stats();
    assert_eq!(
        (n(&s["shells_created"]), n(&s["shells_deleted"])),
        (2, 1),
        "{s}"
    );
    // Through cmd.exe the same line would not reach the program intact.
    c.exec(CommandSpec::new(line.clone())).await.unwrap();
    let r = peer.control_records().pop().unwrap();
    assert_eq!(r["skip_cmd_shell"], json!(false));
    assert_ne!(r["argv"], json!(argv), "{r}");

    // mixop_winrm_program_exec: powershell, for hosts that ignore WINRS_SKIP_CMD_SHELL.
    let peer = WinrmPeer::start(&["--mode", "record", "--ignore-skip-cmd-shell"]);
    let c = peer
        .connect_with(json!({"mixop_winrm_program_exec": "powershell"}))
        .await;
    c.exec_program(CommandSpec::new(line.clone()), Some(r"C:\work"))
        .await
        .unwrap();
    let r = peer.control_records().pop().unwrap();
    let script = r["script"].as_str().unwrap_or_default();
    assert!(
        script.contains(r"$psi.FileName = 'C:\Program Files\A\a.exe'"),
        "{script}"
    );
    let (_, args) = mixop::powershell::script::split_program(&line);
    assert!(
        script.contains(&format!("$psi.Arguments = '{args}'")),
        "{script}"
    );
    assert!(
        script.contains(r"$psi.WorkingDirectory = 'C:\work'"),
        "{script}"
    );
}

/// Per-command latency on one shell (sh mode, `exit 0`), 1 host and 8 hosts in parallel.
/// Compare with `python bench/winrm_pywinrm.py --count 200`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_one_shell_latency() {
    const COUNT: usize = 200;
    fn report(label: &str, mut times: Vec<Duration>, wall: Duration) {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{label}: n={} median {:.2} ms, p90 {:.2} ms, min {:.2} ms, {:.0} commands/s",
            times.len(),
            ms(times[times.len() / 2]),
            ms(times[times.len() * 9 / 10]),
            ms(times[0]),
            times.len() as f64 / wall.as_secs_f64()
        );
    }
    let peer = WinrmPeer::start(&[]);
    let t = Instant::now();
    let c = peer.connect().await;
    println!(
        "connect + NTLM handshake + Create shell: {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    for _ in 0..10 {
        run(&c, "exit 0").await;
    }
    let mut times = Vec::with_capacity(COUNT);
    let wall = Instant::now();
    for _ in 0..COUNT {
        let t = Instant::now();
        let out = c.exec(CommandSpec::new("exit 0")).await.unwrap();
        assert_eq!(out.rc, 0);
        times.push(t.elapsed());
    }
    report("mixop, 1 host, one shell", times, wall.elapsed());
    let peers: Vec<WinrmPeer> = (0..8).map(|_| WinrmPeer::start(&[])).collect();
    let mut conns = Vec::new();
    for p in &peers {
        conns.push(std::sync::Arc::new(p.connect().await));
    }
    let wall = Instant::now();
    let tasks: Vec<_> = conns
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(COUNT);
                for _ in 0..COUNT {
                    let t = Instant::now();
                    c.exec(CommandSpec::new("exit 0")).await.unwrap();
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    report(
        "mixop, 8 hosts in parallel (all hosts together)",
        all,
        wall.elapsed(),
    );
}
