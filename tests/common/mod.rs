//! Shared helpers for integration tests: run the built `mixop`, temp workspaces, the venv.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test virtualenv made by scripts/setup.sh. Tests that need it fail (never skip) without it.
pub fn venv() -> PathBuf {
    let v = std::env::var_os("MIXOP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    assert!(
        v.join("bin/python").exists(),
        "the test virtualenv {} is missing: run scripts/setup.sh",
        v.display()
    );
    v
}

pub fn venv_python() -> Command {
    Command::new(venv().join("bin/python"))
}

/// Runs `cmd` with `sh -c` in `dir` on the controller; panics with its output unless it succeeds.
pub fn sh(cmd: &str, dir: &Path) {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("sh -c {cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} (in {}) failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn mixop_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mixop"))
}

/// A temporary workspace with files written into it.
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Work {
        Work {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text.replace("@OUT@", &self.out().display().to_string())).unwrap();
        p
    }
    /// Where playbooks write results (`@OUT@` in fixture text).
    pub fn out(&self) -> PathBuf {
        let o = self.path().join("out");
        std::fs::create_dir_all(&o).unwrap();
        o
    }
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.out().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }
    /// An inventory of `n` hosts h1..hn, all `ansible_connection: local`.
    pub fn local_inventory(&self, n: usize) -> PathBuf {
        let mut s = String::from("all:\n  hosts:\n");
        for i in 1..=n {
            s.push_str(&format!("    h{i}:\n      ansible_connection: local\n"));
        }
        self.write("inventory.yml", &s)
    }
    pub fn mixop(&self, args: &[&str]) -> Run {
        self.mixop_in(args, &[], None)
    }
    /// `mixop ARGS` with more environment variables and, when given, `stdin` as its input.
    pub fn mixop_in(&self, args: &[&str], env: &[(String, String)], stdin: Option<&str>) -> Run {
        use std::io::Write;
        let mut cmd = Command::new(mixop_bin());
        cmd.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(match stdin {
                Some(_) => std::process::Stdio::piped(),
                None => std::process::Stdio::null(),
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run mixop");
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input
                .write_all(text.as_bytes())
                .expect("write mixop's stdin");
        }
        Run::from(child.wait_with_output().expect("run mixop"))
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "mixop failed:\n{}", self.all());
        self
    }
    /// Asserts the exit code (0 ok, 2 a host failed, 3 invalid input, 4 unreachable, ...).
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code:\n{}", self.all());
        self
    }
    /// Asserts that stdout or stderr contains `text`.
    #[track_caller]
    pub fn says(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text) || self.stderr.contains(text),
            "expected {text:?} in the output:\n{}",
            self.all()
        );
        self
    }
    /// Asserts that stdout contains `text`.
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "expected {text:?} on stdout:\n{}",
            self.all()
        );
        self
    }
    /// Asserts that stderr contains `text`.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "expected {text:?} on stderr:\n{}",
            self.all()
        );
        self
    }
    /// Asserts that neither stdout nor stderr contains `text`.
    #[track_caller]
    pub fn never_says(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text) && !self.stderr.contains(text),
            "{text:?} must not be in the output:\n{}",
            self.all()
        );
        self
    }
    /// Asserts a host's recap line.
    #[track_caller]
    pub fn recap_is(&self, host: &str, expected: Recap) -> &Self {
        assert_eq!(
            self.recap(host),
            expected,
            "recap of {host}:\n{}",
            self.all()
        );
        self
    }
    /// The JSON events of an `--output json` run.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
    /// Recap counters for a host from the human output.
    pub fn recap(&self, host: &str) -> Recap {
        parse_recap(&self.stdout, host)
            .unwrap_or_else(|| panic!("no recap line for {host}:\n{}", self.all()))
    }
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct Recap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

/// Parses `host : ok=1 changed=0 ...` lines, as printed by mixop and by ansible-playbook.
pub fn parse_recap(text: &str, host: &str) -> Option<Recap> {
    let line = text.lines().rev().find(|l| {
        let mut parts = l.splitn(2, ':');
        parts.next().map(str::trim) == Some(host) && l.contains("ok=")
    })?;
    let mut r = Recap::default();
    for word in line.split_whitespace() {
        if let Some((k, v)) = word.split_once('=') {
            let v: u32 = v.parse().ok()?;
            match k {
                "ok" => r.ok = v,
                "changed" => r.changed = v,
                "unreachable" => r.unreachable = v,
                "failed" => r.failed = v,
                "skipped" => r.skipped = v,
                "rescued" => r.rescued = v,
                "ignored" => r.ignored = v,
                _ => {}
            }
        }
    }
    Some(r)
}

pub fn recap(ok: u32, changed: u32, failed: u32, skipped: u32) -> Recap {
    Recap {
        ok,
        changed,
        failed,
        skipped,
        ..Default::default()
    }
}

/// Set (to a lab's state dir) for a child test process that uses its parent's lab.
pub const ATTACH_LAB_ENV: &str = "MIXOP_TEST_ATTACH_LAB";

/// A lab's state directory: its own temporary one, or a parent test process's (attached).
pub struct LabState {
    dir: PathBuf,
    _owned: Option<tempfile::TempDir>,
}

impl LabState {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// A lab of `n` network-namespace hosts with real sshd (tests/lab/up.sh) on a free net of its
/// own, torn down on drop (unless attached to). Needs root and the packages from scripts/setup.sh.
pub struct Lab {
    pub state: LabState,
    pub inventory: PathBuf,
    pub hosts: Vec<(String, String)>,
}

/// The lab `Lab::shared` hands out while some test of this process holds it.
static SHARED_LAB: std::sync::Mutex<std::sync::Weak<Lab>> =
    std::sync::Mutex::new(std::sync::Weak::new());

impl Lab {
    pub fn up(n: usize, extra: &[&str]) -> Lab {
        let state = tempfile::Builder::new()
            .prefix("mixop-lab-")
            .tempdir()
            .unwrap();
        let out = Command::new("bash")
            .arg(root().join("tests/lab/up.sh"))
            .arg(n.to_string())
            .args(["--net", "auto", "-q", "--state"])
            .arg(state.path())
            .args(["--owner", &std::process::id().to_string()])
            .args(extra)
            .output()
            .expect("run tests/lab/up.sh");
        assert!(
            out.status.success(),
            "tests/lab/up.sh failed (needs root; run scripts/setup.sh):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let inventory = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Lab::at(
            LabState {
                dir: state.path().to_path_buf(),
                _owned: Some(state),
            },
            inventory,
        )
    }

    fn at(state: LabState, inventory: PathBuf) -> Lab {
        let hosts = std::fs::read_to_string(state.path().join("hosts.tsv"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_string(), f.next()?.to_string()))
            })
            .collect();
        Lab {
            state,
            inventory,
            hosts,
        }
    }

    /// The lab another process brought up in `dir`; never torn down from here.
    pub fn attach(dir: &Path) -> Lab {
        Lab::at(
            LabState {
                dir: dir.to_path_buf(),
                _owned: None,
            },
            dir.join("inventory.yml"),
        )
    }

    /// One lab for the tests of this process that run at the same time (`Lab::up(n, extra)`),
    /// torn down when the last of them lets go; in a child test process started with
    /// `ATTACH_LAB_ENV`, its parent's lab.
    pub fn shared(n: usize, extra: &[&str]) -> std::sync::Arc<Lab> {
        if let Some(dir) = std::env::var_os(ATTACH_LAB_ENV) {
            return std::sync::Arc::new(Lab::attach(Path::new(&dir)));
        }
        let mut g = SHARED_LAB.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = g.upgrade() {
            return l;
        }
        let l = std::sync::Arc::new(Lab::up(n, extra));
        *g = std::sync::Arc::downgrade(&l);
        l
    }

    /// `10.231.X`, as up.sh chose it.
    pub fn net(&self) -> String {
        let env = std::fs::read_to_string(self.state.path().join("lab.env"))
            .expect("lab.env written by up.sh");
        env.lines()
            .find_map(|l| l.strip_prefix("LAB_NET="))
            .expect("LAB_NET in lab.env")
            .trim()
            .to_string()
    }

    /// A host's sshd log (as the controller sees it).
    pub fn sshd_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.host_dir(host, "var/log/sshd.log")).unwrap_or_default()
    }

    /// `tests/lab/ctl.sh ARGS` on this lab, whatever its outcome.
    pub fn ctl_output(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(root().join("tests/lab/ctl.sh"))
            .arg("--state")
            .arg(self.state.path())
            .args(args)
            .output()
            .expect("run tests/lab/ctl.sh")
    }

    pub fn addr(&self, host: &str) -> String {
        self.hosts
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, a)| a.clone())
            .expect("lab host")
    }

    /// Runs a command inside a lab host's namespaces (sees that host's files).
    pub fn exec(&self, host: &str, cmd: &str) -> String {
        let out = Command::new("bash")
            .arg(root().join("tests/lab/ctl.sh"))
            .arg("--state")
            .arg(self.state.path())
            .args(["exec", host, "--", "sh", "-c", cmd])
            .output()
            .expect("ctl.sh exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ctl(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(root().join("tests/lab/ctl.sh"))
            .arg("--state")
            .arg(self.state.path())
            .args(args)
            .output()
            .expect("ctl.sh");
        assert!(
            out.status.success(),
            "ctl.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `mixop run PLAYBOOK -i <this lab's inventory> EXTRA...` from the workspace.
    pub fn run(&self, w: &Work, pb: &Path, extra: &[&str]) -> Run {
        let mut args = vec![
            "run",
            pb.to_str().unwrap(),
            "-i",
            self.inventory.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        w.mixop(&args)
    }

    /// Gives every host a package repository of its own: `build` writes the packages and their
    /// index under the host's /opt (the directory given, as the controller sees it), then
    /// `configure` runs on the host to make it the only source — in the host's /etc overlay, so
    /// the machine's own package sources are hidden from the host and never changed.
    pub fn local_repos(self, build: impl Fn(&Path), configure: &str) -> Lab {
        for (host, _) in self.hosts.clone() {
            build(&self.host_dir(&host, "opt"));
            self.exec(&host, configure);
        }
        self
    }

    /// The oracle: `ansible-playbook -i <this lab's inventory> PLAYBOOK EXTRA...` from the venv,
    /// run in the workspace with its own ANSIBLE_HOME and pipelining on (as mixop runs its
    /// scripts); the exit code and stdout+stderr.
    pub fn ansible(&self, w: &Work, pb: &str, extra: &[&str]) -> (i32, String) {
        let home = w.path().join("ansible-home");
        let out = Command::new(venv().join("bin/ansible-playbook"))
            .args(["-i", self.inventory.to_str().unwrap(), pb])
            .args(extra)
            .current_dir(w.path())
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_PIPELINING", "1")
            .env("ANSIBLE_FORKS", "10")
            .output()
            .expect("run ansible-playbook");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    }

    /// A host's private directory as the controller sees it (`usr-local-bin`, `run`, `opt`, ...).
    pub fn host_dir(&self, host: &str, sub: &str) -> PathBuf {
        self.state.path().join("hosts").join(host).join(sub)
    }

    pub fn key(&self) -> PathBuf {
        self.state.path().join("id_ed25519")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.state.path().join("known_hosts")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.state._owned.is_none() {
            return;
        }
        let _ = Command::new("bash")
            .arg(root().join("tests/lab/down.sh"))
            .arg("--state")
            .arg(self.state.path())
            .arg("-q")
            .status();
    }
}

/// The project's WinRM peer (tests/support/winrm_peer/peer.py) on a loopback port, standing in
/// for a default Windows host (NTLM + message encryption). Killed on drop.
pub struct WinrmPeer {
    child: std::process::Child,
    pub port: u16,
    pub control: u16,
    pub dir: tempfile::TempDir,
}

impl WinrmPeer {
    pub fn start(extra: &[&str]) -> WinrmPeer {
        WinrmPeer::start_on("127.0.0.1", extra)
    }

    /// A peer listening on `host` (any loopback address), with users `vagrant:vagrant` and
    /// `LAB\admin:S3cret` (a domain account), its control port, a record log, and with
    /// `--https` a certificate of its own (`ca()`).
    pub fn start_on(host: &str, extra: &[&str]) -> WinrmPeer {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("peer.log")).unwrap();
        let mut cmd = venv_python();
        cmd.arg(root().join("tests/support/winrm_peer/peer.py"))
            .args(["--listen", &format!("{host}:0")])
            .args([
                "--users",
                "vagrant:vagrant",
                "--users",
                "LAB\\admin:S3cret:x",
            ])
            .arg("--control")
            .arg("--port-file")
            .arg(dir.path().join("port"))
            .arg("--control-port-file")
            .arg(dir.path().join("cport"))
            .arg("--record-log")
            .arg(dir.path().join("records.jsonl"))
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        if extra.contains(&"--https") {
            cmd.arg("--cert-dir").arg(dir.path().join("certs"));
        }
        let child = cmd.spawn().expect("start the WinRM peer");
        // Built before the wait so that a peer which never starts is still killed on drop.
        let mut peer = WinrmPeer {
            child,
            port: 0,
            control: 0,
            dir,
        };
        let read = |dir: &Path, name: &str| -> Option<u16> {
            std::fs::read_to_string(dir.join(name))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let t0 = std::time::Instant::now();
        loop {
            if let (Some(port), Some(control)) = (
                read(peer.dir.path(), "port"),
                read(peer.dir.path(), "cport"),
            ) {
                peer.port = port;
                peer.control = control;
                return peer;
            }
            if let Ok(Some(st)) = peer.child.try_wait() {
                panic!("the WinRM peer exited ({st}):\n{}", peer.log());
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "the WinRM peer did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
    }

    /// The peer's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("peer.log")).unwrap_or_default()
    }

    /// The CA of a `--https` peer's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    /// The commands this peer received in record mode (decoded PowerShell in `script`), from
    /// its record log.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("records.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The records as the control port gives them (`GET /records`).
    pub fn control_records(&self) -> Vec<serde_json::Value> {
        match self.http("GET", "/records", "") {
            serde_json::Value::Array(a) => a,
            other => panic!("records: {other}"),
        }
    }

    /// A request to the control port; its JSON answer.
    pub fn http(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.control)).unwrap();
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

    /// A control operation (`POST /<op>`), which must succeed.
    pub fn op(&self, op: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.http("POST", &format!("/{op}"), &body.to_string());
        assert_eq!(r["ok"], serde_json::json!(true), "control op {op}: {r}");
        r
    }

    /// `GET /stats` from the control port.
    pub fn stats(&self) -> serde_json::Value {
        self.http("GET", "/stats", "")
    }

    /// Inventory lines for this peer as a Windows host.
    pub fn inventory_host(&self, name: &str) -> String {
        self.inventory_host_with(name, "")
    }

    /// `inventory_host` with more host variables (`k: v, ...`, or empty).
    pub fn inventory_host_with(&self, name: &str, vars: &str) -> String {
        let more = if vars.is_empty() {
            String::new()
        } else {
            format!(", {vars}")
        };
        format!(
            "        {name}: {{ansible_host: 127.0.0.1, ansible_port: {}, ansible_connection: winrm, ansible_user: vagrant, ansible_password: vagrant, ansible_winrm_transport: ntlm, ansible_winrm_scheme: http{more}}}\n",
            self.port
        )
    }
}

impl Drop for WinrmPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes whose command line contains `needle`, as (pid, command line). The lab hosts and
/// the WinRM peer share the controller's pid namespace, so this sees their processes too.
pub fn procs_with(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Zombies (and processes gone meanwhile) have no command line.
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(needle) {
            found.push((pid, line.trim_end().to_string()));
        }
    }
    found
}

/// Polls `cond` until it holds; panics with `what` (and the last state `cond` reports) after
/// `limit`.
pub fn wait_until(
    limit: std::time::Duration,
    what: &str,
    mut cond: impl FnMut() -> Result<(), String>,
) {
    let t0 = std::time::Instant::now();
    loop {
        match cond() {
            Ok(()) => return,
            Err(state) if t0.elapsed() > limit => {
                panic!("{what}: not within {limit:?}: {state}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// A `mixop` running in the background (to be interrupted), its output collected.
pub struct Background {
    child: std::process::Child,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
}

impl Work {
    pub fn spawn_mixop(&self, args: &[&str]) -> Background {
        let mut child = Command::new(mixop_bin())
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start mixop");
        let drain = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                let _ = r.read_to_end(&mut s);
                String::from_utf8_lossy(&s).into_owned()
            })
        };
        let out = drain(Box::new(child.stdout.take().unwrap()));
        let err = drain(Box::new(child.stderr.take().unwrap()));
        Background {
            child,
            out: Some(out),
            err: Some(err),
        }
    }
}

impl Background {
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGINT, as Ctrl-C does (to mixop alone, as `kill -INT` does: nothing else gets it).
    pub fn interrupt(&self) {
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        assert_eq!(rc, 0, "kill -INT {}", self.child.id());
    }

    /// Waits for mixop to exit, at most `limit` (then kills it and fails): its output and how
    /// long it took.
    pub fn wait(mut self, limit: std::time::Duration) -> (Run, std::time::Duration) {
        let t0 = std::time::Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for mixop") {
                break s;
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let out = self.out.take().unwrap().join().unwrap_or_default();
                panic!("mixop did not exit within {limit:?}; stdout:\n{out}");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let took = t0.elapsed();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: self.out.take().unwrap().join().unwrap_or_default(),
            stderr: self.err.take().unwrap().join().unwrap_or_default(),
        };
        (run, took)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The project's Kubernetes API test double (tests/support/kube_double/server.py) on a free
/// loopback port with its own state dir (port, CA, token, kubeconfig, audit log), optionally
/// with a scenario (YAML: nodes, distribution, faults). Stopped on drop.
pub struct KubeDouble {
    child: std::process::Child,
    pub dir: tempfile::TempDir,
}

impl KubeDouble {
    pub fn start(scenario: Option<&str>) -> KubeDouble {
        let dir = tempfile::tempdir().expect("state dir");
        let mut cmd = venv_python();
        cmd.arg(root().join("tests/support/kube_double/server.py"))
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(text) = scenario {
            let p = dir.path().join("scenario.yml");
            std::fs::write(&p, text).expect("write scenario");
            cmd.arg("--scenario").arg(&p);
        }
        let child = cmd.spawn().expect("start kube_double");
        let d = KubeDouble { child, dir };
        wait_until(
            std::time::Duration::from_secs(20),
            "kube_double starts",
            || {
                d.file("port")
                    .exists()
                    .then_some(())
                    .ok_or_else(|| "no port file yet".into())
            },
        );
        d
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A state file's text, trimmed (`port`, `token`).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.read("port"))
    }

    pub fn kubeconfig(&self) -> String {
        self.file("kubeconfig").display().to_string()
    }

    /// The requests the double received, as JSON lines.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.file("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Kills the server (the API going away); the state dir stays.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KubeDouble {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One integration test's world, fluently: hosts (local, lab, WinRM peers), files, a playbook,
/// and `mixop` run against them.
///
/// ```ignore
/// Session::local(3)
///     .playbook(r#"
/// - hosts: all
///   tasks:
///     - command: /bin/false
/// "#)
///     .run()
///     .exits(2)
///     .says("pb.yml:4");
/// ```
pub struct Session {
    pub work: Work,
    inventory: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    /// Placeholders replaced in every file the session writes (besides `@OUT@`).
    subs: Vec<(String, String)>,
    pub lab: Option<Lab>,
    pub peers: Vec<WinrmPeer>,
    pub kube: Option<KubeDouble>,
    pub sim: Option<Sim>,
}

impl Session {
    fn with_inventory(work: Work, inventory: PathBuf) -> Session {
        Session {
            work,
            inventory,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            subs: Vec::new(),
            lab: None,
            peers: Vec::new(),
            kube: None,
            sim: None,
        }
    }

    /// A workspace whose inventory is `inventory.yml`, written by the test (`.inventory(...)`).
    pub fn empty() -> Session {
        let work = Work::new();
        let inventory = work.path().join("inventory.yml");
        Session::with_inventory(work, inventory)
    }

    /// `n` hosts h1..hn on the local connection.
    pub fn local(n: usize) -> Session {
        let work = Work::new();
        let inventory = work.local_inventory(n);
        Session::with_inventory(work, inventory)
    }

    /// `n` lab hosts lab1..labn over SSH (tests/lab; root needed).
    pub fn lab(n: usize) -> Session {
        Session::lab_with(n, &[])
    }

    /// A lab started with more `tests/lab/up.sh` options.
    pub fn lab_with(n: usize, up_args: &[&str]) -> Session {
        let lab = Lab::up(n, up_args);
        let mut s = Session::with_inventory(Work::new(), lab.inventory.clone());
        s.lab = Some(lab);
        s
    }

    /// `n` Windows hosts win1..winn, each the WinRM peer started with `peer_args` (e.g.
    /// `["--mode", "sim"]`), in group `windows`.
    pub fn windows(n: usize, peer_args: &[&str]) -> Session {
        let mut s = Session::empty();
        s.add_peers(n, peer_args);
        let inv = format!("all:\n  children:\n{}", s.windows_group());
        s.write("inventory.yml", &inv);
        s
    }

    /// Starts `n` more WinRM peers (hosts win<k> in `windows_group()`).
    pub fn add_peers(&mut self, n: usize, peer_args: &[&str]) {
        self.peers
            .extend((0..n).map(|_| WinrmPeer::start(peer_args)));
    }

    /// Inventory text for the session's peers as group `windows` (indented under `children:`).
    pub fn windows_group(&self) -> String {
        self.windows_group_with(|_, _| String::new())
    }

    /// `windows_group` with more variables for each host (`k: v, ...`; from its index and peer).
    pub fn windows_group_with(&self, vars: impl Fn(usize, &WinrmPeer) -> String) -> String {
        let mut inv = String::from("    windows:\n      hosts:\n");
        for (i, p) in self.peers.iter().enumerate() {
            inv.push_str(&p.inventory_host_with(&format!("win{}", i + 1), &vars(i, p)));
        }
        inv
    }

    /// Rewrites the inventory of a `windows` session with more variables for each host.
    pub fn windows_vars(self, vars: impl Fn(usize, &WinrmPeer) -> String) -> Session {
        let inv = format!("all:\n  children:\n{}", self.windows_group_with(vars));
        self.inventory(&inv)
    }

    /// Host `localhost` on the local connection, beside the Kubernetes API double (started with
    /// the scenario, if any). In files, `@KUBECONFIG@` becomes the double's admin kubeconfig and
    /// `@KUBE_STATE@` its state directory (other kubeconfigs, CA, token).
    pub fn kube(scenario: Option<&str>) -> Session {
        let mut s = Session::empty()
            .inventory("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n");
        let d = KubeDouble::start(scenario);
        s.subs.push(("@KUBECONFIG@".into(), d.kubeconfig()));
        s.subs
            .push(("@KUBE_STATE@".into(), d.dir.path().display().to_string()));
        s.kube = Some(d);
        s
    }

    /// Host win1, a simulated Windows Server 2022 (`Sim::start_with(peer_args, init)`).
    pub fn win_sim(peer_args: &[&str], init: Option<serde_json::Value>) -> Session {
        let sim = Sim::start_with(peer_args, init);
        let mut s = Session::empty().inventory(&sim.inventory());
        s.sim = Some(sim);
        s
    }

    /// The session's simulated Windows host.
    pub fn sim(&self) -> &Sim {
        self.sim.as_ref().expect("a simulated Windows session")
    }

    /// Runs `tasks` (task lines indented under `tasks:`) as a play on `windows`, no facts,
    /// with `--output json` and `more` arguments (playbook `play.yml`).
    pub fn play(&self, tasks: &str, more: &[&str]) -> Played {
        self.write(
            "play.yml",
            &format!("- hosts: windows\n  gather_facts: false\n  tasks:\n{tasks}"),
        );
        let mut args = vec!["--output", "json"];
        args.extend_from_slice(more);
        Played::from_json_run(&self.run_file("play.yml", &args))
    }

    /// Writes the inventory (`inventory.yml`) and runs against it.
    pub fn inventory(mut self, text: &str) -> Session {
        self.inventory = self.write("inventory.yml", text);
        self
    }

    /// Writes a file into the workspace (`@OUT@` becomes the output folder).
    pub fn file(self, rel: &str, text: &str) -> Session {
        self.write(rel, text);
        self
    }

    /// Writes a file into the workspace now, with the session's placeholders replaced.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let mut text = text.to_string();
        for (from, to) in &self.subs {
            text = text.replace(from, to);
        }
        self.work.write(rel, &text)
    }

    /// Replaces `from` with `to` in every file written from now on.
    pub fn sub(mut self, from: &str, to: &str) -> Session {
        self.subs.push((from.into(), to.into()));
        self
    }

    /// The playbook, as `pb.yml`.
    pub fn playbook(self, text: &str) -> Session {
        self.file("pb.yml", text)
    }

    /// Extra command-line arguments for every run.
    pub fn args(mut self, args: &[&str]) -> Session {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An environment variable for every run.
    pub fn env(mut self, key: &str, value: &str) -> Session {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Text on mixop's standard input for every run (none: standard input is empty).
    pub fn stdin(mut self, text: &str) -> Session {
        self.stdin = Some(text.into());
        self
    }

    /// The inventory the session runs against.
    pub fn inventory_path(&self) -> &Path {
        &self.inventory
    }

    /// `mixop ARGS` in the workspace, with the session's environment and input (no inventory
    /// or session arguments added).
    pub fn mixop(&self, args: &[&str]) -> Run {
        self.work.mixop_in(args, &self.env, self.stdin.as_deref())
    }

    fn mixop_on(&self, command: &str, playbook: &str, more: &[&str]) -> Run {
        let inv = self.inventory.display().to_string();
        let mut args = vec![command, playbook, "-i", inv.as_str()];
        args.extend(self.args.iter().map(String::as_str));
        args.extend(more);
        self.mixop(&args)
    }

    /// `mixop run pb.yml -i INVENTORY ARGS...`
    pub fn run(&self) -> Run {
        self.mixop_on("run", "pb.yml", &[])
    }

    /// `run` with more arguments for this run only.
    pub fn run_with(&self, more: &[&str]) -> Run {
        self.mixop_on("run", "pb.yml", more)
    }

    /// `mixop run PLAYBOOK -i INVENTORY ARGS... MORE...` for another playbook file.
    pub fn run_file(&self, playbook: impl AsRef<Path>, more: &[&str]) -> Run {
        let pb = playbook.as_ref().to_str().expect("a UTF-8 playbook path");
        self.mixop_on("run", pb, more)
    }

    /// `mixop check pb.yml -i INVENTORY ARGS...`
    pub fn check(&self) -> Run {
        self.mixop_on("check", "pb.yml", &[])
    }

    /// `mixop check PLAYBOOK -i INVENTORY ARGS... MORE...`
    pub fn check_file(&self, playbook: &str, more: &[&str]) -> Run {
        self.mixop_on("check", playbook, more)
    }

    /// `mixop run pb.yml -i INVENTORY ARGS... MORE...` in the background.
    pub fn spawn(&self, more: &[&str]) -> Background {
        let inv = self.inventory.display().to_string();
        let mut args = vec!["run", "pb.yml", "-i", inv.as_str()];
        args.extend(self.args.iter().map(String::as_str));
        args.extend(more);
        self.work.spawn_mixop(&args)
    }

    /// A file the playbook wrote under `@OUT@`.
    pub fn out(&self, rel: &str) -> String {
        self.work.read(rel)
    }

    /// Whether the playbook wrote `rel` under `@OUT@`.
    pub fn out_exists(&self, rel: &str) -> bool {
        self.work.out().join(rel).exists()
    }

    /// A file the playbook wrote under `@OUT@`, parsed as JSON.
    pub fn out_json(&self, rel: &str) -> serde_json::Value {
        let text = self.out(rel);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON ({e}): {text}"))
    }

    /// The session's lab.
    pub fn the_lab(&self) -> &Lab {
        self.lab.as_ref().expect("a lab session")
    }

    /// The session's Kubernetes API double.
    pub fn double(&self) -> &KubeDouble {
        self.kube.as_ref().expect("a Kubernetes session")
    }

    /// A file on a lab host, as that host sees it.
    pub fn host_file(&self, host: &str, path: &str) -> String {
        self.the_lab().exec(host, &format!("cat {path}"))
    }
}

/// A simulated Windows Server 2022 host: the WinRM peer in `--mode sim` with a state directory
/// of its own (`host.json`, the disk under `fs/`, the module requests in `scripts.jsonl`).
/// Reboots are fast (down 1 s, delays capped at 0.3 s) unless `extra` says otherwise.
pub struct Sim {
    /// `None` once stopped (a host that never comes back).
    pub peer: Option<WinrmPeer>,
    pub state: tempfile::TempDir,
    pub port: u16,
}

impl Sim {
    pub fn start(extra: &[&str]) -> Sim {
        Sim::start_with(extra, None)
    }

    /// `init`: JSON merged into the new host.json (e.g. files on its disk).
    pub fn start_with(extra: &[&str], init: Option<serde_json::Value>) -> Sim {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("host").display().to_string();
        let mut args: Vec<String> = [
            "--mode",
            "sim",
            "--state-dir",
            &dir,
            "--reboot-down",
            "1",
            "--reboot-delay-cap",
            "0.3",
        ]
        .map(String::from)
        .to_vec();
        if let Some(init) = init {
            let p = state.path().join("init.json");
            std::fs::write(&p, init.to_string()).unwrap();
            args.push("--sim-init".into());
            args.push(p.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let peer = WinrmPeer::start(&refs);
        let port = peer.port;
        Sim {
            peer: Some(peer),
            state,
            port,
        }
    }

    pub fn peer(&self) -> &WinrmPeer {
        self.peer.as_ref().expect("the simulated host was stopped")
    }

    pub fn dir(&self) -> PathBuf {
        self.state.path().join("host")
    }

    pub fn host(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir().join("host.json")).expect("host.json");
        serde_json::from_str(&text).unwrap()
    }

    pub fn scripts_text(&self) -> String {
        std::fs::read_to_string(self.dir().join("scripts.jsonl")).unwrap_or_default()
    }

    /// The module requests the host answered, in order.
    pub fn scripts(&self) -> Vec<serde_json::Value> {
        self.scripts_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn requests(&self, module: &str, phase: &str) -> Vec<serde_json::Value> {
        self.scripts()
            .into_iter()
            .filter(|s| s["module"] == module && s["phase"] == phase)
            .collect()
    }

    /// Raw commands the peer answered (record-mode style records).
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.peer.as_ref().map(|p| p.records()).unwrap_or_default()
    }

    pub fn reboots(&self) -> usize {
        self.records()
            .iter()
            .filter(|r| r["builtin"] == "reboot" && r["rc"] == 0)
            .count()
    }

    /// `POST /<op>` with a JSON body to the peer's control port; the JSON answer.
    pub fn control(&self, op: &str, body: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let port = self.peer().control;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /{op} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap()
    }

    /// Where `C:\Foo\Bar` lives on the simulated disk (case-folded).
    pub fn fs_path(&self, win: &str) -> PathBuf {
        let (drive, rest) = win.split_once(':').unwrap();
        let mut p = self.dir().join("fs").join(drive.to_lowercase());
        for c in rest.split(['\\', '/']).filter(|c| !c.is_empty()) {
            p.push(c.to_lowercase());
        }
        p
    }

    /// Inventory of this host as win1 in group `windows`.
    pub fn inventory(&self) -> String {
        format!(
            "all:\n  children:\n    windows:\n      hosts:\n{}",
            self.peer().inventory_host("win1")
        )
    }
}

/// One `mixop run --output json` on a single host win1: exit code, every host result, the recap.
pub struct Played {
    pub code: i32,
    pub results: Vec<serde_json::Value>,
    pub stats: serde_json::Value,
    pub all: String,
}

impl Played {
    pub fn from_json_run(run: &Run) -> Played {
        let mut results = Vec::new();
        let mut stats = serde_json::Value::Null;
        for line in run.stdout.lines() {
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            match ev["event"].as_str() {
                Some("host_result") => results.push(ev),
                Some("recap") => stats = ev["hosts"]["win1"].clone(),
                _ => {}
            }
        }
        assert!(!stats.is_null(), "no recap:\n{}", run.all());
        Played {
            code: run.code,
            results,
            stats,
            all: run.all(),
        }
    }
    #[track_caller]
    pub fn task(&self, name: &str) -> &serde_json::Value {
        self.results
            .iter()
            .find(|r| r["task"] == name)
            .unwrap_or_else(|| panic!("no result for task {name:?}:\n{}", self.all))
    }
    #[track_caller]
    pub fn result(&self, name: &str) -> &serde_json::Value {
        &self.task(name)["result"]
    }
    pub fn changed(&self) -> u64 {
        self.stats["changed"].as_u64().unwrap()
    }
    pub fn failed(&self) -> u64 {
        self.stats["failed"].as_u64().unwrap()
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "mixop failed:\n{}", self.all);
        self
    }
}

/// Runs modules directly through the library, without the engine, on the controller
/// (connection local), with the engine's defaults (no become, environment, timeout or live
/// output): for module tests that compare case by case with ansible-playbook's modules.
pub struct Direct {
    slot: mixop::modules::ConnSlot,
    templar: mixop::template::Templar,
    vars: mixop::template::Vars,
    search: Vec<PathBuf>,
}

impl Direct {
    /// Relative `src` paths are looked up in `search` (as a playbook's directory).
    pub fn new(search: &Path) -> Direct {
        use mixop::connection::{ConnSpec, Transport};
        Direct {
            slot: mixop::modules::ConnSlot::new(ConnSpec {
                host: "localhost".into(),
                transport: Transport::Local,
                address: "localhost".into(),
                port: None,
                user: None,
                password: None,
                vars: Default::default(),
            }),
            templar: mixop::template::Templar::new(Default::default()),
            vars: Default::default(),
            search: vec![search.to_path_buf()],
        }
    }

    /// A template file rendered as modules render it (no variables).
    pub fn render_file(&self, path: &Path) -> String {
        self.templar.render_file(path, &self.vars).unwrap()
    }

    /// Runs `module` with `args` (checked and normalized as the loader would; a refusal panics).
    pub async fn run(
        &self,
        module: &str,
        args: serde_json::Value,
        check: bool,
        diff: bool,
    ) -> mixop::modules::ModResult {
        use mixop::modules;
        let m = modules::lookup(module).unwrap_or_else(|| panic!("no module {module}"));
        let args = args.as_object().expect("arguments are a mapping").clone();
        let args = modules::normalize_args(m.def(), args).unwrap_or_else(|e| panic!("{e}"));
        let ctx = modules::ModuleCtx {
            host: "localhost",
            conn: &self.slot,
            check_mode: check,
            diff,
            templar: &self.templar,
            vars: &self.vars,
            search_dirs: &self.search,
            become_: None,
            env: vec![],
            timeout: None,
            output: None,
            task: format!("task '{module}' at test"),
        };
        m.run(&ctx, args).await
    }
}
