//! The SSH transport against real OpenSSH servers: a lab of network-namespace hosts brought up
//! by tests/lab/up.sh (root needed) on a free net (`--net auto`) with a state dir of this
//! process's own, shared by the tests running at the same time in this process and torn down
//! when the last of them finishes. Under nextest (one process per test) each test gets its own.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixop::connection::ssh::SshConnection;
use mixop::connection::ssh::options::SshOptions;
use mixop::connection::{
    Become, CommandSpec, ConnErrorKind, ConnSpec, Connection, OutputChunk, Transport,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const HOSTS: usize = 5;
// lab1: general; lab2: ProxyJump target; lab3: no sftp subsystem; lab4: sshd stopped and
// restarted; lab5: connection counting (nothing else connects to it).

mod common;

use common::Lab;

/// The lab these tests share (one per process; under nextest, one per test).
fn lab() -> Arc<Lab> {
    Lab::shared(HOSTS, &["--no-sftp", "lab3"])
}

/// What these tests need of a lab host beyond common's `Lab`.
trait SshLab {
    fn ip(&self, host: &str) -> String;
    fn sh(&self, host: &str, script: &str) -> String;
    fn fingerprint(&self, host: &str) -> String;
    fn host_pub(&self, host: &str) -> String;
    fn spec(&self, host: &str, extra: Value) -> ConnSpec;
}

impl SshLab for Lab {
    fn ip(&self, host: &str) -> String {
        self.addr(host)
    }
    /// Runs a shell command inside a host (as root, outside SSH).
    fn sh(&self, host: &str, script: &str) -> String {
        let out = self.ctl_output(&["exec", host, "--", "sh", "-c", script]);
        assert!(
            out.status.success(),
            "{host}: {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// A host's ed25519 host key fingerprint, as ssh-keygen prints it.
    fn fingerprint(&self, host: &str) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(
                self.state
                    .path()
                    .join("keys")
                    .join(host)
                    .join("ssh_host_ed25519_key.pub"),
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }
    fn host_pub(&self, host: &str) -> String {
        std::fs::read_to_string(
            self.state
                .path()
                .join("keys")
                .join(host)
                .join("ssh_host_ed25519_key.pub"),
        )
        .unwrap()
    }

    /// What the inventory written by up.sh gives a host, plus `extra`.
    fn spec(&self, host: &str, extra: Value) -> ConnSpec {
        let mut vars = json!({
            "ansible_ssh_private_key_file": self.key().to_str().unwrap(),
            "ansible_ssh_common_args": format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                self.known_hosts().display()
            ),
            "ansible_timeout": 10,
        });
        let user = extra
            .get("ansible_user")
            .and_then(Value::as_str)
            .unwrap_or("root")
            .to_string();
        let password = extra
            .get("ansible_password")
            .and_then(Value::as_str)
            .map(str::to_string);
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                vars.as_object_mut().unwrap().remove(k);
            } else {
                vars[k] = v.clone();
            }
        }
        ConnSpec {
            host: host.into(),
            transport: Transport::Ssh,
            address: self.ip(host),
            port: None,
            user: Some(user),
            password,
            vars: vars.as_object().unwrap().clone(),
        }
    }
}

/// Options for a spec, isolated from the machine's own ~/.ssh and ssh-agent.
fn isolated(spec: &ConnSpec) -> SshOptions {
    let mut o = SshOptions::from_spec(spec).expect("options");
    o.home = None;
    o.agent_socket = None;
    o
}

async fn connect(spec: &ConnSpec) -> Result<SshConnection, mixop::connection::ConnError> {
    SshConnection::connect_with(isolated(spec)).await
}

async fn run(c: &SshConnection, cmd: &str) -> (i32, String, String) {
    let out = c.exec(CommandSpec::new(cmd)).await.expect(cmd);
    (
        out.rc,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-C", name, "-f"])
        .arg(&path)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success());
    path
}

fn authorize(lab: &Lab, host: &str, user_home: &str, pubkey: &Path) {
    let line = std::fs::read_to_string(pubkey.with_extension("pub")).unwrap();
    let ak = lab.host_dir(host, user_home).join(".ssh/authorized_keys");
    let mut f = std::fs::OpenOptions::new().append(true).open(&ak).unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

/// The SHA256 fingerprint of a key file, as sshd logs it.
fn key_fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -lf {key:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// Waits (with a deadline) until `host`'s sshd log contains `line`.
fn wait_for_log(lab: &Lab, host: &str, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.sshd_log(host).contains(line) {
        assert!(
            Instant::now() < deadline,
            "{line:?} not in {host}'s sshd log:\n{}",
            lab.sshd_log(host)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_inventory_key_auth_and_basic_exec() {
    let lab = lab();
    // Through the public entry point, exactly as the engine will call it.
    let conn = mixop::connection::connect(&lab.spec("lab1", json!({})))
        .await
        .expect("connect lab1");
    assert_eq!(conn.transport(), Transport::Ssh);
    let out = conn
        .exec(CommandSpec::new("echo hi; hostname; echo oops >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\nlab1\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.rc, 3);
    // A signal is reported like a shell does: 128 + n.
    let out = conn.exec(CommandSpec::new("kill -9 $$")).await.unwrap();
    assert_eq!(out.rc, 137);
    // Environment and quoting survive the trip.
    let mut spec = CommandSpec::new("printf '%s|%s' \"$GREETING\" \"$(pwd)\"");
    spec.env = vec![("GREETING".into(), "it's \"quoted\" $HOME".into())];
    let out = conn.exec(spec).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "it's \"quoted\" $HOME|/root"
    );
    conn.close().await;
    let e = conn.exec(CommandSpec::new("true")).await.unwrap_err();
    assert!(e.message.contains("closed"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_types_rsa_ecdsa_ed25519_and_passphrases() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "id_rsa", &["-t", "rsa", "-b", "2048", "-N", ""]);
    let ecdsa = keygen(dir.path(), "id_ecdsa", &["-t", "ecdsa", "-N", ""]);
    let locked = keygen(
        dir.path(),
        "id_locked",
        &["-t", "ed25519", "-N", "s3cret phrase"],
    );
    for k in [&rsa, &ecdsa, &locked] {
        authorize(&lab, "lab1", "root", k);
    }
    for (key, log_type) in [(&rsa, "RSA"), (&ecdsa, "ECDSA")] {
        let spec = lab.spec(
            "lab1",
            json!({"ansible_ssh_private_key_file": key.to_str().unwrap()}),
        );
        let c = connect(&spec)
            .await
            .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert_eq!(c.auth_method().await, Some("publickey"));
        assert_eq!(run(&c, "whoami").await.1, "root\n");
        // sshd accepted this very key (for RSA that means rsa-sha2: OpenSSH 9 refuses SHA-1).
        wait_for_log(
            &lab,
            "lab1",
            &format!(
                "ssh2: {log_type} {}",
                key_fingerprint(&key.with_extension("pub"))
            ),
        );
        assert!(
            lab.sshd_log("lab1").contains(&format!(
                "Accepted publickey for root from {}.1 ",
                lab.net()
            )),
            "{}",
            lab.sshd_log("lab1")
        );
        c.close().await;
    }

    // Passphrase from the inventory variable.
    let spec = lab.spec(
        "lab1",
        json!({
            "ansible_ssh_private_key_file": locked.to_str().unwrap(),
            "ansible_ssh_private_key_passphrase": "s3cret phrase",
        }),
    );
    let c = connect(&spec).await.expect("passphrase key");
    assert_eq!(run(&c, "echo ok").await.1, "ok\n");

    // No passphrase: one clear line, before any connection is made.
    let spec = lab.spec(
        "lab1",
        json!({"ansible_ssh_private_key_file": locked.to_str().unwrap()}),
    );
    let e = connect(&spec).await.err().unwrap();
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains("encrypted"), "{e}");
    assert!(e.message.contains("MIXOP_SSH_KEY_PASSPHRASE"), "{e}");
    // Wrong passphrase.
    let spec = lab.spec(
        "lab1",
        json!({
            "ansible_ssh_private_key_file": locked.to_str().unwrap(),
            "ansible_ssh_private_key_passphrase": "nope",
        }),
    );
    let e = connect(&spec).await.err().unwrap();
    assert!(e.message.contains("wrong passphrase"), "{e}");

    // Missing file and too-open permissions.
    let missing = dir.path().join("absent");
    let e = connect(&lab.spec(
        "lab1",
        json!({"ansible_ssh_private_key_file": missing.to_str().unwrap()}),
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains("does not exist"), "{e}");
    std::fs::set_permissions(&ecdsa, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = connect(&lab.spec(
        "lab1",
        json!({"ansible_ssh_private_key_file": ecdsa.to_str().unwrap()}),
    ))
    .await
    .err()
    .unwrap();
    assert!(e.message.contains("chmod 600"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_keys_and_ssh_agent() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    // ~/.ssh/id_ed25519 of a home directory of our own.
    std::fs::create_dir_all(dir.path().join("home/.ssh")).unwrap();
    let dflt = keygen(
        &dir.path().join("home/.ssh"),
        "id_ed25519",
        &["-t", "ed25519", "-N", ""],
    );
    authorize(&lab, "lab1", "root", &dflt);
    let spec = lab.spec("lab1", json!({"ansible_ssh_private_key_file": null}));
    let mut o = isolated(&spec);
    o.home = Some(dir.path().join("home"));
    let c = SshConnection::connect_with(o).await.expect("default key");
    assert_eq!(c.auth_method().await, Some("publickey"));

    // An agent holding a key that is nowhere on disk for mixop.
    let agent_key = keygen(dir.path(), "agent_key", &["-t", "ecdsa", "-N", ""]);
    authorize(&lab, "lab1", "root", &agent_key);
    let sock = dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&agent_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    std::fs::remove_file(&agent_key).unwrap();
    let mut o = isolated(&spec);
    o.agent_socket = Some(sock.clone());
    let r = SshConnection::connect_with(o).await;
    let _ = agent.kill();
    let _ = agent.wait();
    let c = r.expect("agent key");
    assert_eq!(c.auth_method().await, Some("publickey"));
    assert_eq!(run(&c, "echo agent").await.1, "agent\n");
    assert!(lab.sshd_log("lab1").contains("ssh2: ECDSA "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_keyboard_interactive() {
    let lab = lab();
    let base = json!({
        "ansible_user": "labuser",
        "ansible_password": "labpass",
        "ansible_ssh_private_key_file": null,
    });
    let c = connect(&lab.spec("lab1", base.clone()))
        .await
        .expect("password");
    assert_eq!(c.auth_method().await, Some("password"));
    assert_eq!(run(&c, "whoami").await.1, "labuser\n");

    // With the password method off, the same password goes through keyboard-interactive (PAM).
    let mut kbd = base.clone();
    kbd["ansible_ssh_extra_args"] = json!("-o PasswordAuthentication=no");
    let c = connect(&lab.spec("lab1", kbd))
        .await
        .expect("kbd-interactive");
    assert_eq!(c.auth_method().await, Some("keyboard-interactive"));
    assert_eq!(run(&c, "whoami").await.1, "labuser\n");
    assert!(
        lab.sshd_log("lab1")
            .contains("Accepted keyboard-interactive/pam for labuser")
    );

    // Wrong password: unreachable, saying what was tried, within the connect timeout. (Each
    // failed PAM attempt costs a yescrypt hash and pam_unix's 2 s delay: the timeout leaves a
    // loaded machine room for both, and the message shows the attempts ended it, not the timer.)
    let mut bad = base.clone();
    bad["ansible_password"] = json!("wrong");
    bad["ansible_timeout"] = json!(60);
    let spec = lab.spec("lab1", bad);
    let t = Instant::now();
    let e = connect(&spec).await.err().unwrap();
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(
        e.message.contains(&format!(
            "authentication failed for labuser@{}:22 (tried: password, keyboard-interactive)",
            lab.ip("lab1")
        )),
        "{e}"
    );
    // No password at all for a user without keys.
    let mut none = base;
    none["ansible_password"] = Value::Null;
    let mut spec = lab.spec("lab1", none);
    spec.password = None;
    let e = connect(&spec).await.err().unwrap();
    assert!(e.message.contains("no password given"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_policies() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let ip = lab.ip("lab1");
    let with_kh = |file: &Path, policy: &str| {
        lab.spec(
            "lab1",
            json!({
                "ansible_ssh_common_args": format!(
                    "-o UserKnownHostsFile={} -o StrictHostKeyChecking={policy}",
                    file.display()
                ),
            }),
        )
    };

    // strict + unknown host: refused, naming the fingerprint and the file.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let e = connect(&with_kh(&empty, "yes")).await.err().unwrap();
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains(&lab.fingerprint("lab1")), "{e}");
    assert!(e.message.contains(empty.to_str().unwrap()), "{e}");
    assert!(e.message.contains("not in"), "{e}");

    // accept-new: recorded, and then known under strict.
    let fresh = dir.path().join("sub/known_hosts");
    let c = connect(&with_kh(&fresh, "accept-new"))
        .await
        .expect("accept-new");
    assert_eq!(run(&c, "hostname").await.1, "lab1\n");
    let recorded = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        recorded.starts_with(&format!("{ip} ssh-ed25519 ")),
        "{recorded}"
    );
    assert_eq!(recorded.lines().count(), 1);
    connect(&with_kh(&fresh, "yes"))
        .await
        .expect("strict after accept-new");
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), recorded);

    // Mismatch: lab2's key recorded for lab1's address at line 3.
    let wrong = dir.path().join("wrong_known_hosts");
    let lab2_pub = lab.host_pub("lab2");
    let lab2_key = lab2_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(&wrong, format!("# lab\n\nlab1,{ip} {lab2_key}\n")).unwrap();
    for policy in ["yes", "accept-new"] {
        let e = connect(&with_kh(&wrong, policy)).await.err().unwrap();
        assert_eq!(e.kind, ConnErrorKind::Unreachable);
        assert!(
            e.message.contains(&format!("{}:3", wrong.display())),
            "{policy}: {e}"
        );
        assert!(e.message.contains(&lab.fingerprint("lab1")), "{e}");
        assert!(e.message.contains(&ip), "{e}");
        assert!(e.message.contains("ssh-keygen -R"), "{e}");
    }
    // off: connects whatever the file says.
    let c = connect(&with_kh(&wrong, "no")).await.expect("policy off");
    assert_eq!(run(&c, "hostname").await.1, "lab1\n");
    let mut spec = with_kh(&wrong, "yes");
    spec.vars
        .insert("ansible_host_key_checking".into(), json!(false));
    connect(&spec)
        .await
        .expect("ansible_host_key_checking=false");

    // Hashed entries (ssh-keygen -H), including the ECDSA line, which is then preferred.
    let hashed = dir.path().join("hashed_known_hosts");
    std::fs::copy(lab.known_hosts(), &hashed).unwrap();
    let st = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(st.status.success());
    let text = std::fs::read_to_string(&hashed).unwrap();
    assert!(text.starts_with("|1|") && !text.contains("lab1"), "{text}");
    let c = connect(&with_kh(&hashed, "yes")).await.expect("hashed");
    assert_eq!(run(&c, "hostname").await.1, "lab1\n");

    // accept-new into a hashed file records a hashed name, which OpenSSH itself finds.
    let hashed_one = dir.path().join("hashed_one");
    std::fs::write(&hashed_one, text.lines().next().unwrap().to_string() + "\n").unwrap();
    let spec2 = lab.spec(
        "lab2",
        json!({
            "ansible_ssh_common_args": format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new",
                hashed_one.display()
            ),
        }),
    );
    connect(&spec2).await.expect("accept-new, hashed file");
    let after = std::fs::read_to_string(&hashed_one).unwrap();
    assert_eq!(after.lines().count(), 2, "{after}");
    assert!(after.lines().all(|l| l.starts_with("|1|")), "{after}");
    let found = Command::new("ssh-keygen")
        .arg("-F")
        .arg(lab.ip("lab2"))
        .arg("-f")
        .arg(&hashed_one)
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "ssh-keygen -F does not find the hashed entry"
    );

    // @revoked counts wherever it is: here after the line that knows the key.
    let revoked = dir.path().join("revoked_known_hosts");
    let lab1_key = lab
        .host_pub("lab1")
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        &revoked,
        format!("{ip} {lab1_key}\n@revoked * {lab1_key}\n"),
    )
    .unwrap();
    let e = connect(&with_kh(&revoked, "yes")).await.err().unwrap();
    assert!(e.message.contains("@revoked"), "{e}");
    assert!(
        e.message.contains(&format!("{}:2", revoked.display())),
        "{e}"
    );

    // A host known only by its ECDSA key is asked for that key type.
    let ecdsa_only = dir.path().join("ecdsa_known_hosts");
    let ecdsa_pub =
        std::fs::read_to_string(lab.state.path().join("keys/lab1/ssh_host_ecdsa_key.pub")).unwrap();
    let k: Vec<&str> = ecdsa_pub.split_whitespace().take(2).collect();
    std::fs::write(&ecdsa_only, format!("{ip} {}\n", k.join(" "))).unwrap();
    connect(&with_kh(&ecdsa_only, "yes"))
        .await
        .expect("ecdsa-only known_hosts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_execs_share_one_connection() {
    let lab = lab();
    let before = count(&lab.sshd_log("lab5"), "Accepted publickey");
    let c = Arc::new(connect(&lab.spec("lab5", json!({}))).await.unwrap());
    // Each command waits until 9 of them run at once (the channels one session carries): they
    // can only finish if the channels overlap on the one connection.
    lab.sh("lab5", "rm -rf /tmp/overlap && mkdir /tmp/overlap");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let cmd = format!(
                "touch /tmp/overlap/{i}; until [ $(ls /tmp/overlap | wc -l) -ge 9 ]; do sleep 0.02; done; echo {i}"
            );
            let out = c.exec(CommandSpec::new(cmd)).await.unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("the commands never ran 9 at a time");
        assert_eq!(out.unwrap(), i.to_string());
    }
    assert_eq!(c.sessions_opened(), 1);
    let after = count(&lab.sshd_log("lab5"), "Accepted publickey");
    assert_eq!(
        after - before,
        1,
        "one TCP connection and one authentication"
    );
    // And the server side sees one established connection from us.
    let ss = lab.sh(
        "lab5",
        "ss -Htn state established '( sport = :22 )' | wc -l",
    );
    assert_eq!(ss.trim(), "1", "established connections on lab5:22");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_large_output_streaming_and_timeout() {
    let lab = lab();
    let c = connect(&lab.spec("lab1", json!({}))).await.unwrap();

    // Binary stdin comes back byte for byte.
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut spec = CommandSpec::new("cat");
    spec.stdin = Some(input.clone());
    let out = c.exec(spec).await.unwrap();
    assert_eq!(out.rc, 0);
    assert!(out.stdout == input, "stdin echo differs");
    // A command that ignores its stdin does not hang the call.
    let mut spec = CommandSpec::new("echo ignored");
    spec.stdin = Some(vec![b'x'; 5_000_000]);
    let out = tokio::time::timeout(Duration::from_secs(20), c.exec(spec))
        .await
        .expect("no hang")
        .unwrap();
    assert_eq!(out.stdout, b"ignored\n");

    // 10 MB of output, also streamed chunk by chunk.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut spec = CommandSpec::new("head -c 10485760 /dev/zero | tr '\\0' x; echo done >&2");
    spec.output = Some(tx);
    let out = c.exec(spec).await.unwrap();
    assert_eq!(out.stdout.len(), 10_485_760);
    assert!(out.stdout.iter().all(|&b| b == b'x'));
    assert_eq!(out.stderr, b"done\n");
    let (mut so, mut se) = (0, 0);
    while let Ok(ch) = rx.try_recv() {
        match ch {
            OutputChunk::Stdout(b) => so += b.len(),
            OutputChunk::Stderr(b) => se += b.len(),
        }
    }
    assert_eq!((so, se), (10_485_760, 5));

    // Timeout: the call returns promptly, the remote command is stopped, the session lives on.
    let mut spec = CommandSpec::new("echo $$ > /tmp/sleeper.pid; exec sleep 60");
    spec.timeout = Some(Duration::from_secs(1));
    let t = Instant::now();
    let e = c.exec(spec).await.unwrap_err();
    assert_eq!(e.kind, ConnErrorKind::Timeout);
    assert!(e.message.contains("timed out after 1s"), "{e}");
    // Promptly: long before the command's own 60 s.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // The group was signalled before the call returned; sshd reaps it right after.
    let deadline = Instant::now() + Duration::from_secs(20);
    while run(&c, "kill -0 $(cat /tmp/sleeper.pid) 2>/dev/null")
        .await
        .0
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the timed-out command is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(run(&c, "echo alive").await.1, "alive\n");
    assert_eq!(c.sessions_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_output_is_capped_and_the_command_stopped() {
    let lab = lab();
    let c = connect(&lab.spec("lab1", json!({}))).await.unwrap();
    let t = Instant::now();
    let e = c
        .exec(CommandSpec::new(
            "echo $$ > /tmp/spew.pid; exec cat /dev/zero",
        ))
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("more than 64 MiB of output on one stream; it was stopped"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rc, _, _) = run(&c, "kill -0 $(cat /tmp/spew.pid) 2>/dev/null").await;
    assert_ne!(rc, 0, "the command still runs");
    // stderr too, and the session lives on.
    let e = c
        .exec(CommandSpec::new("cat /dev/zero >&2"))
        .await
        .unwrap_err();
    assert!(e.message.contains("more than 64 MiB"), "{e}");
    assert_eq!(run(&c, "echo alive").await.1, "alive\n");
    assert_eq!(c.sessions_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn become_with_sudo() {
    let lab = lab();
    let sudo = |password: Option<&str>| Become {
        method: "sudo".into(),
        user: "root".into(),
        password: password.map(str::to_string),
    };
    let as_user = |user: &str| lab.spec("lab1", json!({"ansible_user": user}));

    let c = connect(&as_user("labuser")).await.unwrap();
    let mut spec = CommandSpec::new("id -u; cat");
    spec.stdin = Some(b"payload".to_vec());
    spec.become_ = Some(sudo(Some("labpass")));
    let out = c.exec(spec).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\npayload");
    assert_eq!(out.rc, 0);

    // Wrong password: a clear error, not a hang (sudo stops at the end of its input).
    let mut spec = CommandSpec::new("id -u");
    spec.become_ = Some(sudo(Some("not-it")));
    let t = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(20), c.exec(spec))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(e.message.contains("sudo: incorrect password"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(15));

    // No password where one is required.
    let mut spec = CommandSpec::new("id -u");
    spec.become_ = Some(sudo(None));
    let e = c.exec(spec).await.unwrap_err();
    assert!(e.message.contains("a password is required"), "{e}");

    // NOPASSWD user: sudo -n.
    let c = connect(&as_user("nopass")).await.unwrap();
    // A password given where sudo does not ask is never written: not to `cat`, and not to a
    // script read from stdin, which would run it as shell code.
    let mut spec = CommandSpec::new("cat");
    spec.stdin = Some(b"payload".to_vec());
    spec.become_ = Some(sudo(Some("pw;touch /tmp/sudo-pwned")));
    let out = c.exec(spec).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "payload");
    let mut spec = CommandSpec::new("/bin/sh -s");
    spec.stdin = Some(b"echo script ran\n".to_vec());
    spec.become_ = Some(sudo(Some("pw;touch /tmp/sudo-pwned")));
    spec.timeout = Some(Duration::from_secs(20));
    let out = c.exec(spec).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "script ran\n");
    assert_eq!(out.stderr, b"", "markers are not output");
    let (rc, _, _) = run(&c, "test -e /tmp/sudo-pwned").await;
    assert_ne!(rc, 0, "the password ran as shell code");
    let mut spec = CommandSpec::new("id -un");
    spec.become_ = Some(sudo(None));
    let out = c.exec(spec).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "root\n");
    // become_user other than root.
    let mut spec = CommandSpec::new("id -un");
    spec.become_ = Some(Become {
        method: "sudo".into(),
        user: "labuser".into(),
        password: None,
    });
    let out = c.exec(spec).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "labuser\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_jump_through_a_lab_host() {
    let lab = lab();
    let bastion = lab.ip("lab1");
    let spec = lab.spec(
        "lab2",
        json!({
            "ansible_ssh_common_args": format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o ProxyJump=root@{bastion}:22",
                lab.known_hosts().display()
            ),
        }),
    );
    let c = connect(&spec).await.expect("via ProxyJump");
    assert_eq!(run(&c, "hostname").await.1, "lab2\n");
    // lab2 saw the connection come from the bastion, not from the controller.
    assert!(
        lab.sshd_log("lab2")
            .contains(&format!("Accepted publickey for root from {bastion} port")),
        "{}",
        lab.sshd_log("lab2")
    );
    // Files work over the forwarded session too.
    c.put_bytes(b"through the bastion\n", "/tmp/pj.txt", Some(0o640))
        .await
        .unwrap();
    assert_eq!(run(&c, "cat /tmp/pj.txt").await.1, "through the bastion\n");

    // mixop_proxy_jump to a bastion port nothing listens on.
    let mut spec = lab.spec("lab2", json!({"ansible_timeout": 3}));
    spec.vars.insert(
        "mixop_proxy_jump".into(),
        json!(format!("root@{bastion}:2999")),
    );
    let e = connect(&spec).await.err().unwrap();
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains("ProxyJump"), "{e}");
    assert!(e.message.contains("refused"), "{e}");
}

fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

fn peak_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs in a child process (so other tests' memory does not count): 50 MB put and get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by sftp_large_files_in_bounded_memory in a child process"]
async fn child_large_transfer() {
    let host = std::env::var("MIXOP_TEST_HOST").unwrap_or_else(|_| "lab1".into());
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..50u32 {
            for (j, b) in block.iter_mut().enumerate() {
                *b = ((j as u32).wrapping_mul(31) ^ i) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    let want = sha256_file(&src);
    let c = connect(&lab.spec(&host, json!({}))).await.unwrap();
    let base = peak_rss_kb();
    let t = Instant::now();
    c.put_file(&src, "/tmp/big.bin", Some(0o600)).await.unwrap();
    let put = t.elapsed();
    let remote = run(&c, "sha256sum /tmp/big.bin; stat -c %a /tmp/big.bin")
        .await
        .1;
    assert!(remote.starts_with(&want), "{remote} vs {want}");
    assert!(remote.ends_with("\n600\n"), "{remote}");
    let back = dir.path().join("back.bin");
    let t = Instant::now();
    c.get_file("/tmp/big.bin", &back).await.unwrap();
    let get = t.elapsed();
    assert_eq!(sha256_file(&back), want);
    run(&c, "rm -f /tmp/big.bin").await;
    println!(
        "RSS_BASE_KB={base} RSS_PEAK_KB={} PUT_MS={} GET_MS={}",
        peak_rss_kb(),
        put.as_millis(),
        get.as_millis()
    );
}

fn child_transfer(lab: &Lab, host: &str) -> (u64, u64, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_large_transfer",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(common::ATTACH_LAB_ENV, lab.state.path())
        .env("MIXOP_TEST_HOST", host)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("RSS_BASE_KB="))
        .unwrap_or_else(|| panic!("no RSS line in:\n{text}"))
        .to_string();
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("RSS_BASE_KB="), field("RSS_PEAK_KB="), line)
}

#[test]
fn sftp_large_files_in_bounded_memory() {
    let lab = lab();
    for host in ["lab1", "lab3"] {
        let (base, peak, line) = child_transfer(&lab, host);
        eprintln!("{host}: {line}");
        // 50 MB went each way; only the requests in flight may be buffered.
        assert!(
            peak.saturating_sub(base) < 20 * 1024,
            "{host}: peak RSS grew by {} kB: {line}",
            peak - base
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_put_modes_and_no_sftp_fallback() {
    let lab = lab();
    for host in ["lab1", "lab3"] {
        let c = connect(&lab.spec(host, json!({}))).await.unwrap();
        run(&c, "rm -rf /tmp/put && mkdir /tmp/put && echo old > /tmp/put/f && chmod 604 /tmp/put/f && ln /tmp/put/f /tmp/put/hardlink").await;
        // No mode: the replaced file's mode is kept; the old inode is untouched (atomic rename,
        // not an in-place rewrite).
        c.put_bytes(b"new\n", "/tmp/put/f", None).await.unwrap();
        let (_, out, _) = run(
            &c,
            "cat /tmp/put/f; stat -c %a /tmp/put/f; cat /tmp/put/hardlink; ls -A /tmp/put | wc -l",
        )
        .await;
        assert_eq!(out, "new\n604\nold\n2\n", "{host}");
        c.put_bytes(b"#!/bin/sh\necho run\n", "/tmp/put/s", Some(0o750))
            .await
            .unwrap();
        assert_eq!(
            run(&c, "/tmp/put/s; stat -c %a /tmp/put/s").await.1,
            "run\n750\n"
        );
        // New file, no mode: 0644.
        c.put_bytes(b"", "/tmp/put/empty", None).await.unwrap();
        assert_eq!(
            run(&c, "stat -c '%a %s' /tmp/put/empty").await.1,
            "644 0\n",
            "{host}"
        );
        // get_file, then errors that say which path.
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("f.txt");
        c.get_file("/tmp/put/f", &local).await.unwrap();
        assert_eq!(std::fs::read(&local).unwrap(), b"new\n");
        let e = c
            .get_file("/tmp/put/missing", &dir.path().join("m"))
            .await
            .unwrap_err();
        assert!(e.message.contains("/tmp/put/missing"), "{host}: {e}");
        assert!(!dir.path().join("m").exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no partial files left"
        );
        let e = c
            .put_bytes(b"x", "/nonexistent-dir/f", None)
            .await
            .unwrap_err();
        assert!(e.message.contains("/nonexistent-dir"), "{host}: {e}");
        assert_eq!(
            run(&c, "ls -A /tmp/put | wc -l").await.1,
            "4\n",
            "{host}: temp files left"
        );
    }
    // lab3 really has no sftp (the fallback did the work above).
    assert!(lab.sshd_log("lab3").contains("subsystem request for sftp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_fast_and_clear() {
    let lab = lab();
    let timeout = json!({"ansible_timeout": 2});

    // Refused port: the refusal ends the attempt, not the 2 s timer (that would say "timed out").
    let mut spec = lab.spec("lab1", timeout.clone());
    spec.port = Some(2222);
    let t = Instant::now();
    let e = connect(&spec).await.err().unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains("connection refused"), "{e}");
    assert!(e.message.contains(":2222"), "{e}");

    // A lab address nobody answers on (no host: ARP never resolves).
    let mut spec = lab.spec("lab1", timeout.clone());
    spec.address = format!("{}.250", lab.net());
    let t = Instant::now();
    let e = connect(&spec).await.err().unwrap();
    // Ended by the 2 s timer or by ARP giving up (3 s): either way not a hang.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(
        e.message.contains("timed out after 2s") || e.message.contains("No route"),
        "{e}"
    );

    // Accepts TCP, never speaks SSH (the socket is held until the attempt is over).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, held) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let _ = held.recv();
        drop(s);
    });
    let mut spec = lab.spec("lab1", timeout.clone());
    spec.address = "127.0.0.1".into();
    spec.port = Some(port);
    let t = Instant::now();
    let e = connect(&spec).await.err().unwrap();
    let took = t.elapsed();
    // The message says the timer ended it; the bounds that it ran its 2 s and did not hang.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert!(
        e.message
            .contains("timed out after 2s during the SSH handshake"),
        "{e}"
    );
    done.send(()).unwrap();
    holder.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_fails_clearly_then_reconnects() {
    let lab = lab();
    let c = connect(&lab.spec("lab4", json!({"ansible_timeout": 3})))
        .await
        .unwrap();
    assert_eq!(run(&c, "echo up").await.1, "up\n");

    // sshd and its sessions killed while a command runs.
    let c = Arc::new(c);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut spec = CommandSpec::new("echo started; sleep 20");
    spec.output = Some(tx);
    let running = {
        let c = c.clone();
        tokio::spawn(async move { c.exec(spec).await })
    };
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the command did not start");
    let out = lab.ctl_output(&["stop", "lab4", "--kill-sessions"]);
    assert!(out.status.success(), "{out:?}");
    let e = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the running command notices")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ConnErrorKind::Failed);
    assert!(e.message.contains("lost"), "{e}");

    // While sshd is down: the one reconnect attempt is refused, the host is unreachable.
    let e = c.exec(CommandSpec::new("true")).await.unwrap_err();
    assert_eq!(e.kind, ConnErrorKind::Unreachable);
    assert!(e.message.contains("refused"), "{e}");

    let out = lab.ctl_output(&["start", "lab4"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(run(&c, "echo back").await.1, "back\n");
    assert_eq!(c.sessions_opened(), 2);
}

/// Not a test: timings for the report. `cargo test --release --test ssh_transport measure --
/// --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn measure_connect_and_exec_latency() {
    let lab = lab();
    let spec = lab.spec("lab5", json!({}));
    let mut connects = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let c = connect(&spec).await.unwrap();
        connects.push(t.elapsed());
        c.close().await;
    }
    let c = connect(&spec).await.unwrap();
    let mut execs = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        c.exec(CommandSpec::new("true")).await.unwrap();
        execs.push(t.elapsed());
    }
    connects.sort();
    execs.sort();
    println!(
        "connect+auth median {:.1} ms (min {:.1}); exec round trip median {:.2} ms (min {:.2})",
        connects[25].as_secs_f64() * 1e3,
        connects[0].as_secs_f64() * 1e3,
        execs[25].as_secs_f64() * 1e3,
        execs[0].as_secs_f64() * 1e3
    );
}
