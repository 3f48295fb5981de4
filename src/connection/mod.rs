//! Transports: one trait, one live connection per host for the whole run.
//!
//! A connection is opened lazily by the engine the first time a task needs the host and reused by
//! every later task; implementations must allow several `exec` calls at once (SSH channels,
//! WinRM commands on one shell) and must never open a new handshake per task.

pub mod local;
pub mod ssh;
pub mod sudo;
pub mod winrm;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Output kept per stream of one `exec` on every transport; more fails the command (which is
/// stopped) rather than growing the controller's memory without bound.
pub const MAX_CAPTURE: usize = 64 * 1024 * 1024;

/// The error for a command whose output went over [`MAX_CAPTURE`].
pub fn output_too_large(target: Option<&str>) -> ConnError {
    let on = target.map(|t| format!("{t}: ")).unwrap_or_default();
    ConnError::failed(format!(
        "{on}the command produced more than {} MiB of output on one stream; it was stopped",
        MAX_CAPTURE >> 20
    ))
}

/// Background work that stops commands whose caller went away (the `exec` future was dropped:
/// Ctrl-C, a caller's own timeout). A dropped future cannot wait, so the stop runs here, and
/// `Connection::close` waits for it: the connection is not torn down, nor mixop gone, before
/// the kill has been delivered.
#[derive(Clone, Default)]
pub struct Cleanup {
    inner: Arc<CleanupInner>,
}

#[derive(Default)]
struct CleanupInner {
    pending: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Counts one piece of work as done, also when its task is cancelled.
struct CleanupDone(Cleanup);

impl Drop for CleanupDone {
    fn drop(&mut self) {
        if self.0.inner.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.inner.idle.notify_waiters();
        }
    }
}

impl Cleanup {
    /// Runs `work` in the background (outside a runtime there is nothing to run it on).
    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.inner.pending.fetch_add(1, Ordering::SeqCst);
        let done = CleanupDone(self.clone());
        rt.spawn(async move {
            let _done = done;
            work.await;
        });
    }

    /// Waits until the work started so far is done, at most `limit`. False when some is left.
    pub async fn settle(&self, limit: Duration) -> bool {
        let all_done = async {
            loop {
                let idle = self.inner.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.inner.pending.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, all_done).await.is_ok()
    }
}

/// How long `close` waits for commands being stopped (each stop is bounded on its own too).
pub const CLEANUP_LIMIT: Duration = Duration::from_secs(10);

/// The POSIX command that stops a command's process group (local and SSH hosts, run with the
/// command's own `become`, since a become'd command runs as another user): TERM, which lets the
/// command clean up, up to half a second for the group to go (zombies count as members until
/// their new parent reaps them, which some init processes do lazily: so the grace is short),
/// then KILL. A group that is already gone is left alone (its number may be reused soon). `kill -s SIG -- -PGID` is the form
/// dash's builtin accepts too (it refuses `kill -TERM -- -PGID`).
pub fn stop_group_command(pgid: u32, become_: Option<Become>) -> CommandSpec {
    CommandSpec {
        cmd: format!(
            "kill -s TERM -- -{pgid} 2>/dev/null || exit 0; i=0; \
             while [ $i -lt 10 ] && kill -s 0 -- -{pgid} 2>/dev/null; do sleep 0.05; i=$((i+1)); done; \
             kill -s KILL -- -{pgid} 2>/dev/null; true"
        ),
        become_,
        ..Default::default()
    }
}

/// Which transport a host uses (`ansible_connection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Local,
    Ssh,
    Winrm,
}

impl Transport {
    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "local" => Some(Transport::Local),
            "ssh" | "smart" | "paramiko" | "ansible.builtin.ssh" | "ansible.builtin.local" => {
                if s.ends_with("local") {
                    Some(Transport::Local)
                } else {
                    Some(Transport::Ssh)
                }
            }
            "winrm" | "ansible.builtin.winrm" => Some(Transport::Winrm),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Local => "local",
            Transport::Ssh => "ssh",
            Transport::Winrm => "winrm",
        }
    }
}

/// Everything a transport needs to reach one host, resolved from the host's variables
/// (`ansible_host`, `ansible_port`, `ansible_user`, `ansible_password`, and the transport's own
/// `ansible_*` settings, which each implementation reads from `vars`).
#[derive(Debug, Clone)]
pub struct ConnSpec {
    /// The inventory name (for messages).
    pub host: String,
    pub transport: Transport,
    /// Address to connect to (`ansible_host`, defaulting to the inventory name).
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// All of the host's variables whose name starts with `ansible_` or `mixop_`, templated.
    pub vars: Map<String, Value>,
}

impl ConnSpec {
    pub fn var_str(&self, name: &str) -> Option<String> {
        match self.vars.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
    pub fn var_bool(&self, name: &str) -> Option<bool> {
        match self.vars.get(name)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => crate::value::parse_bool(s),
            Value::Number(n) => Some(n.as_f64() != Some(0.0)),
            _ => None,
        }
    }
    pub fn var_u64(&self, name: &str) -> Option<u64> {
        match self.vars.get(name)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl ConnSpec {
    /// What makes this connection: two specs with the same identity may share one connection,
    /// any difference (address, port, user, password, key, transport options) needs its own.
    /// Become settings are per command, facts and other variables do not count. Hashed, so the
    /// key held for the run carries no password.
    pub fn identity(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |k: &str, v: &str| {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        };
        field("transport", self.transport.as_str());
        field("address", &self.address);
        field(
            "port",
            &self.port.map(|p| p.to_string()).unwrap_or_default(),
        );
        field("user", self.user.as_deref().unwrap_or_default());
        field("password", self.password.as_deref().unwrap_or_default());
        let mut names: Vec<&String> = self.vars.keys().filter(|k| defines_connection(k)).collect();
        names.sort();
        for k in names {
            field(k, &crate::value::to_text(&self.vars[k]));
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Variables the transports read when they connect (see `ssh::options`, `winrm`).
fn defines_connection(name: &str) -> bool {
    const PREFIXES: &[&str] = &["ansible_ssh_", "ansible_winrm_", "mixop_winrm_"];
    const NAMES: &[&str] = &[
        "ansible_timeout",
        "ansible_host_key_checking",
        "ansible_private_key_file",
        "ansible_private_key_passphrase",
        "mixop_proxy_jump",
        "mixop_known_hosts_file",
        "mixop_host_key_checking",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// A host's connection, opened on first use and shared by every later task with the same
/// settings.
pub struct ConnSlot {
    pub transport: Transport,
    spec: ConnSpec,
    cell: tokio::sync::Mutex<Option<Arc<dyn Connection>>>,
}

impl ConnSlot {
    pub fn new(spec: ConnSpec) -> ConnSlot {
        ConnSlot {
            transport: spec.transport,
            spec,
            cell: tokio::sync::Mutex::new(None),
        }
    }
    pub async fn get(&self) -> Result<Arc<dyn Connection>, ConnError> {
        let mut cell = self.cell.lock().await;
        if let Some(c) = cell.as_ref() {
            return Ok(c.clone());
        }
        let conn: Arc<dyn Connection> = Arc::from(connect(&self.spec).await?);
        *cell = Some(conn.clone());
        Ok(conn)
    }
    pub async fn close(&self) {
        let conn = self.cell.lock().await.take();
        if let Some(c) = conn {
            c.close().await;
        }
    }
}

/// A host's connections for the run, one per distinct [`ConnSpec::identity`]: a task with
/// another `remote_user`, port or `connection:` gets its own, a task with the same settings
/// reuses the open one.
#[derive(Default)]
pub struct ConnPool {
    slots: tokio::sync::Mutex<std::collections::HashMap<String, Arc<ConnSlot>>>,
}

impl ConnPool {
    /// The slot for these settings, created (not yet connected) on first use.
    pub async fn slot(&self, spec: ConnSpec) -> Arc<ConnSlot> {
        let mut slots = self.slots.lock().await;
        slots
            .entry(spec.identity())
            .or_insert_with(|| Arc::new(ConnSlot::new(spec)))
            .clone()
    }

    /// Closes every connection; the next task reconnects (`meta: reset_connection`, end of run).
    pub async fn close(&self) {
        let slots: Vec<Arc<ConnSlot>> = self.slots.lock().await.drain().map(|(_, s)| s).collect();
        for s in slots {
            s.close().await;
        }
    }
}

/// Connection variables that hold a secret: masked in every output once a host's connection is
/// resolved (a `-vvv` dump of variables, an error quoting a command line).
pub const SECRET_VARS: &[&str] = &[
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_sudo_pass",
    "ansible_ssh_private_key_passphrase",
    "ansible_private_key_passphrase",
];

/// Builds a host's connection settings from its (already rendered) `ansible_*` variables.
/// `connection`/`remote_user` are a play's or task's overrides. A host named `localhost` (or
/// `127.0.0.1`) that is not in the inventory connects locally, like Ansible's implicit localhost.
pub fn spec_from_vars(
    target: &str,
    vars: Map<String, Value>,
    connection: Option<&str>,
    remote_user: Option<&str>,
    in_inventory: bool,
) -> Result<ConnSpec, String> {
    let mut vars = vars;
    // ansible.cfg's connection defaults (and the command line's -u, --private-key, -k) rank
    // below every variable, aliases included.
    for (k, v) in &crate::config::get().connection {
        let aliases: &[&str] = match k.as_str() {
            "ansible_user" => &["ansible_user", "ansible_ssh_user"],
            "ansible_port" => &["ansible_port", "ansible_ssh_port"],
            "ansible_private_key_file" => {
                &["ansible_private_key_file", "ansible_ssh_private_key_file"]
            }
            "ansible_timeout" => &["ansible_timeout", "ansible_ssh_timeout"],
            "ansible_password" => &[
                "ansible_password",
                "ansible_ssh_pass",
                "ansible_ssh_password",
            ],
            "ansible_host_key_checking" => {
                &["ansible_host_key_checking", "ansible_ssh_host_key_checking"]
            }
            _ => &[],
        };
        if !aliases
            .iter()
            .any(|a| vars.get(*a).is_some_and(|v| !v.is_null()))
        {
            vars.insert(k.clone(), v.clone());
        }
    }
    let get = |k: &str| {
        vars.get(k)
            .filter(|v| !v.is_null())
            .map(crate::value::to_text)
    };
    for name in SECRET_VARS {
        if let Some(v) = get(name) {
            crate::secret::register(&v);
        }
    }
    let implicit_local = matches!(target, "localhost" | "127.0.0.1" | "::1") && !in_inventory;
    let transport_name = connection
        .map(str::to_string)
        .or_else(|| get("ansible_connection"))
        .unwrap_or_else(|| {
            if implicit_local {
                "local".into()
            } else {
                "ssh".into()
            }
        });
    let transport = Transport::parse(&transport_name).ok_or_else(|| {
        let hint = crate::modules::did_you_mean(&transport_name, &["ssh", "winrm", "local"])
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        format!("unknown connection `{transport_name}` (ansible_connection: use ssh, winrm or local{hint})")
    })?;
    let port = match get("ansible_port") {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("ansible_port `{p}` is not a port number"))?,
        ),
        None => None,
    };
    Ok(ConnSpec {
        host: target.to_string(),
        transport,
        address: get("ansible_host").unwrap_or_else(|| target.to_string()),
        port,
        user: remote_user
            .map(str::to_string)
            .or_else(|| get("ansible_user")),
        password: get("ansible_password").or_else(|| get("ansible_ssh_pass")),
        vars,
    })
}

/// The one wording for a connection variable outside its fixed set of values: the variable,
/// the value, what is allowed, and the closest allowed value when there is one.
pub fn bad_choice(var: &str, value: &str, allowed: &[&str]) -> String {
    let mut m = format!("{var}: `{value}` is not one of {}", allowed.join(", "));
    if let Some(s) = crate::modules::did_you_mean(&value.to_ascii_lowercase(), allowed) {
        m.push_str(&format!(" (did you mean `{s}`?)"));
    }
    m
}

/// Resolves a host's connection settings exactly as its transport does when it connects, but
/// without connecting: `mixop check` and the start of a run refuse a wrong value here, before
/// any host is contacted, instead of at the host's first task. Returns warnings for settings
/// that are allowed but unsafe.
pub fn validate(spec: &ConnSpec) -> Result<Vec<String>, ConnError> {
    if let Some(m) = spec.var_str("ansible_become_method")
        && m != "sudo"
    {
        return Err(ConnError::failed(format!(
            "{}: {}",
            spec.host,
            bad_choice("ansible_become_method", &m, &["sudo"])
        )));
    }
    match spec.transport {
        Transport::Local => Ok(Vec::new()),
        Transport::Ssh => ssh::options::SshOptions::from_spec(spec).map(|_| Vec::new()),
        Transport::Winrm => winrm::settings_from_spec(spec).map(|s| winrm::warnings(&s)),
    }
}

/// Privilege escalation for one command (`become`).
#[derive(Debug, Clone)]
pub struct Become {
    /// `sudo` (only method supported on POSIX hosts for now).
    pub method: String,
    pub user: String,
    /// Fed to sudo on stdin, never on a command line.
    pub password: Option<String>,
}

/// A chunk of output as it arrives, for live progress.
#[derive(Debug, Clone)]
pub enum OutputChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// One command to run on the target.
#[derive(Debug, Clone, Default)]
pub struct CommandSpec {
    /// A command line for the target's shell: `sh -c` on POSIX hosts, a cmd.exe command line on
    /// WinRM hosts (Windows modules build it with the PowerShell helper).
    pub cmd: String,
    pub stdin: Option<Vec<u8>>,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub become_: Option<Become>,
    /// Receives output as it is produced; the full output is still returned.
    pub output: Option<mpsc::UnboundedSender<OutputChunk>>,
}

impl CommandSpec {
    pub fn new(cmd: impl Into<String>) -> Self {
        CommandSpec {
            cmd: cmd.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CommandOutput {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnErrorKind {
    /// Could not connect or authenticate: the host is UNREACHABLE.
    Unreachable,
    /// The command or transfer did not finish within its timeout.
    Timeout,
    /// The connection broke or the peer misbehaved during an operation.
    Failed,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnError {
    pub kind: ConnErrorKind,
    pub message: String,
}

impl ConnError {
    pub fn unreachable(message: impl Into<String>) -> Self {
        ConnError {
            kind: ConnErrorKind::Unreachable,
            message: message.into(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        ConnError {
            kind: ConnErrorKind::Failed,
            message: message.into(),
        }
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        ConnError {
            kind: ConnErrorKind::Timeout,
            message: message.into(),
        }
    }
}

/// What a direct file-system call reports about a path: SFTP's attributes (no link count,
/// inode or names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsAttrs {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: u32,
    pub mtime: u32,
}

/// New content for [`RemoteFs::create`].
pub enum FsContent<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FsError {
    /// The target refused this one call (no such file, permission denied, ...); the call
    /// changed nothing, and the connection is fine.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// File-system calls made on the target as the login user without starting a process there
/// (SFTP), for the file modules' common cases; offered only when every call can be made so.
#[async_trait]
pub trait RemoteFs: Send + Sync {
    /// `None`: no such file.
    async fn lstat(&self, path: &str) -> Result<Option<FsAttrs>, FsError>;
    /// Follows symlinks; `None`: no such file (or a dangling link).
    async fn stat(&self, path: &str) -> Result<Option<FsAttrs>, FsError>;
    /// The content of a regular file if it has at most `max` bytes (`None`: more).
    async fn read(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError>;
    /// An entry's link count, from its directory's listing (`ls -l`'s second column); `None`
    /// when the listing does not show it.
    async fn nlink(&self, path: &str) -> Result<Option<u64>, FsError>;
    /// Creates `path`, which must not exist, with `perm` less the target's umask.
    async fn create(&self, path: &str, content: FsContent<'_>, perm: u32) -> Result<(), FsError>;
    async fn chown(&self, path: &str, uid: u32, gid: u32) -> Result<(), FsError>;
    async fn chmod(&self, path: &str, mode: u32) -> Result<(), FsError>;
    /// rename(2): replaces `to` atomically.
    async fn rename(&self, from: &str, to: &str) -> Result<(), FsError>;
    async fn remove(&self, path: &str) -> Result<(), FsError>;
    /// The target's names for a user and a group id (`None`: the id has no name).
    async fn id_names(
        &self,
        uid: u32,
        gid: u32,
    ) -> Result<(Option<String>, Option<String>), FsError>;
}

/// The one interface every transport implements.
#[async_trait]
pub trait Connection: Send + Sync {
    fn transport(&self) -> Transport;

    /// Runs one command. Several calls may be in flight at once on one connection. Dropping
    /// the future before it is done stops the command on the target, with everything it
    /// started (its process group; WinRM: Signal terminate).
    async fn exec(&self, spec: CommandSpec) -> Result<CommandOutput, ConnError>;

    /// Writes `data` to `dest` on the target atomically (temporary file in the same directory,
    /// then rename), so an interrupted transfer never leaves a truncated file. `mode` is applied
    /// before the rename.
    async fn put_bytes(&self, data: &[u8], dest: &str, mode: Option<u32>) -> Result<(), ConnError>;

    /// Like `put_bytes` for a local file, streamed in bounded memory.
    async fn put_file(&self, src: &Path, dest: &str, mode: Option<u32>) -> Result<(), ConnError>;

    /// Copies `src` from the target to the local path `dest` (atomically on the controller).
    async fn get_file(&self, src: &str, dest: &Path) -> Result<(), ConnError>;

    /// Direct file-system calls on the target, when the transport has them (SSH with SFTP).
    /// They run as the login user: never for a `become` task.
    async fn remote_fs(&self) -> Result<Option<Arc<dyn RemoteFs>>, ConnError> {
        Ok(None)
    }

    /// Runs one Windows module request (docs/windows-protocol.md) in the host's long-lived
    /// PowerShell process. Only Windows transports have one.
    async fn powershell(
        &self,
        _req: crate::powershell::Request,
        _timeout: Option<Duration>,
    ) -> Result<crate::powershell::Answer, ConnError> {
        Err(ConnError::failed(format!(
            "PowerShell modules need a Windows host (ansible_connection: winrm); this host uses {}",
            self.transport().as_str()
        )))
    }

    /// Closes the connection (deletes shells, ends sessions). Idempotent. Waits first for the
    /// commands being stopped because their `exec` was dropped (see [`Cleanup`]).
    async fn close(&self);

    /// Windows hosts: starts a program without cmd.exe. `spec.cmd` is the command line as the
    /// program receives it (the program path then its arguments, quoted by the
    /// CommandLineToArgvW rules, see `powershell::script::quote_arg`); `cwd` is its working directory.
    /// Other transports have no such thing.
    async fn exec_program(
        &self,
        spec: CommandSpec,
        cwd: Option<&str>,
    ) -> Result<CommandOutput, ConnError> {
        let _ = (spec, cwd);
        Err(ConnError::failed(format!(
            "starting a program without a shell is only for Windows hosts (this one uses {})",
            self.transport().as_str()
        )))
    }
}

/// Opens a connection for a host. Transports not built yet fail with a clear message.
pub async fn connect(spec: &ConnSpec) -> Result<Box<dyn Connection>, ConnError> {
    match spec.transport {
        Transport::Local => Ok(Box::new(local::LocalConnection::new())),
        Transport::Ssh => Ok(Box::new(ssh::SshConnection::connect(spec).await?)),
        Transport::Winrm => Ok(Box::new(winrm::WinrmConnection::connect(spec).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: Value, user: Option<&str>) -> ConnSpec {
        let mut vars = serde_json::json!({"ansible_host": "10.0.0.1", "ansible_port": 22});
        for (k, v) in extra.as_object().unwrap() {
            vars[k] = v.clone();
        }
        spec_from_vars("h", vars.as_object().unwrap().clone(), None, user, true).unwrap()
    }

    #[test]
    fn identity_counts_connection_settings_only() {
        let base = spec(serde_json::json!({}), None).identity();
        // Facts, become settings and other variables share the connection.
        for same in [
            serde_json::json!({"ansible_distribution": "Debian", "app_version": 3}),
            serde_json::json!({"ansible_become_password": "x", "ansible_become_user": "u"}),
        ] {
            assert_eq!(spec(same.clone(), None).identity(), base, "{same}");
        }
        // Anything that makes another connection does not.
        for other in [
            serde_json::json!({"ansible_port": 2222}),
            serde_json::json!({"ansible_user": "nopass"}),
            serde_json::json!({"ansible_password": "pw"}),
            serde_json::json!({"ansible_ssh_private_key_file": "/k"}),
            serde_json::json!({"ansible_ssh_common_args": "-o X=y"}),
            serde_json::json!({"ansible_connection": "winrm"}),
            serde_json::json!({"ansible_winrm_transport": "basic"}),
            serde_json::json!({"ansible_timeout": 5}),
        ] {
            assert_ne!(spec(other.clone(), None).identity(), base, "{other}");
        }
        assert_ne!(spec(serde_json::json!({}), Some("root")).identity(), base);
        assert!(!base.contains("10.0.0.1"));
    }
}
