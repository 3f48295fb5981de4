//! The request queue of one host: a task that owns the HTTP connections and their NTLM
//! contexts and runs SOAP requests.
//!
//! On one connection requests go strictly one after another: NTLM sequence numbers are per
//! direction and sspi rejects a message out of order. A Receive may wait for output for the whole
//! OperationTimeout (20 s by default, like pywinrm and Ansible, rather than flooding the host
//! with sub-second polls that time out), so the first Receive in flight gets a connection of its
//! own (a second "lane", opened with its own handshake only when something else needs to go out
//! meanwhile): a new command, input, or cleanup never waits behind a silent command. Receives
//! that find that lane taken (several commands running at once) use a short OperationTimeout on
//! the shared connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::auth::{self, NtlmSession};
use super::encryption;
use super::http::{Endpoint, HttpConn, HttpError, Response, Scheme};
use super::soap::{self, Action};
use crate::connection::ConnError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Ntlm,
    Basic,
}

/// How `win_command` starts a program (`mixop_winrm_program_exec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramExec {
    /// `WINRS_SKIP_CMD_SHELL=TRUE`: WinRS hands the command line to CreateProcess, no cmd.exe.
    Winrs,
    /// A small PowerShell wrapper starts the program with `System.Diagnostics.Process`, for
    /// hosts that do not honour `WINRS_SKIP_CMD_SHELL` (pypsrp documents it as working only
    /// before Server 2012 R2): slower (a powershell.exe per command), but no cmd.exe either.
    PowerShell,
}

/// Everything the session needs, resolved from the inventory.
#[derive(Clone)]
pub struct Settings {
    /// The inventory name, for messages.
    pub host: String,
    pub endpoint: Endpoint,
    pub auth: AuthKind,
    pub user: String,
    pub password: String,
    /// Seal bodies with NTLM (HTTP default).
    pub encrypt: bool,
    pub operation_timeout: Duration,
    pub read_timeout: Duration,
    /// Our MaxEnvelopeSize: the largest answer we ask for, and the limit for Send chunks.
    pub max_envelope: usize,
    /// OperationTimeout of a Receive that has a connection to itself: the host answers as soon
    /// as there is output, so waiting long costs nothing (default: the operation timeout).
    pub receive_poll: Duration,
    /// OperationTimeout of Receives that share a connection with other requests (several
    /// commands running at once): short, so a silent command delays the others little.
    pub shared_receive_poll: Duration,
    /// Create shells with `WINRS_NOPROFILE=TRUE` (default false: the user profile is loaded,
    /// as Ansible and pywinrm do).
    pub noprofile: bool,
    /// Commands started on one shell before new commands go to a fresh one (the old one is
    /// deleted once its commands have finished): Windows counts every Command against
    /// MaxConcurrentOperationsPerUser (1500) until the shell is deleted.
    pub commands_per_shell: u64,
    /// Wait before re-sending input the host refused as busy (ERROR_BUSY, 170); doubled for
    /// the next attempt (3 attempts in all, as Ansible).
    pub busy_retry_delay: Duration,
    /// How `win_command` starts programs.
    pub program_exec: ProgramExec,
}

impl Settings {
    /// `host:port (scheme)` for messages.
    pub fn target(&self) -> String {
        format!(
            "{} ({})",
            self.endpoint.authority(),
            self.endpoint.scheme.as_str()
        )
    }
    /// The largest response body accepted: an answer within our MaxEnvelopeSize, sealed and
    /// framed, is well below this; anything bigger is refused without buffering it.
    fn response_limit(&self) -> usize {
        self.max_envelope * 2 + 64 * 1024
    }
}

/// Counters for tests and `-vvv`.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub handshakes: AtomicU64,
    pub requests: AtomicU64,
    /// Cleanup requests queued with `defer` and not answered yet.
    pub deferred: AtomicU64,
}

pub type Reply = Result<soap::Response, soap::Fault>;

type ReplyTx = oneshot::Sender<Result<Reply, ConnError>>;

struct Job {
    req: soap::Request,
    /// None for deferred cleanup that nobody waits for.
    reply: Option<ReplyTx>,
}

/// A cheap handle to the queue.
#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Job>,
    /// Commands in flight on this host.
    pub active: Arc<AtomicUsize>,
    pub stats: Arc<Stats>,
    pub settings: Arc<Settings>,
    /// Requests nobody waits for (the Signal for a cancelled command, the Delete of its own
    /// shell); `WinrmConnection::close` waits for them before it deletes the shell.
    pub cleanup: crate::connection::Cleanup,
}

impl SessionHandle {
    pub fn start(settings: Settings) -> SessionHandle {
        let (tx, rx) = mpsc::channel(256);
        let settings = Arc::new(settings);
        let handle = SessionHandle {
            tx,
            active: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(Stats::default()),
            settings: settings.clone(),
            cleanup: Default::default(),
        };
        let ctx = Ctx {
            settings,
            stats: handle.stats.clone(),
        };
        tokio::spawn(run(ctx, rx));
        handle
    }

    /// Runs one request (queued behind the others) and returns the answer or the fault.
    pub async fn call(&self, req: soap::Request) -> Result<Reply, ConnError> {
        let (reply, rx) = oneshot::channel();
        let closed = || {
            ConnError::failed(format!(
                "{}: the WinRM connection is closed",
                self.settings.host
            ))
        };
        self.tx
            .send(Job {
                req,
                reply: Some(reply),
            })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// A Receive, sent again when the host answers it with an internal error (HTTP 500): a
    /// Receive only reads, so asking again is harmless (a Command or Send is never resent: it
    /// may have taken effect). After `RECEIVE_ATTEMPTS` the fault is an error naming them.
    pub async fn receive(&self, req: soap::Request) -> Result<Reply, ConnError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match self.call(req.clone()).await? {
                Err(f) if f.is_internal_error() && attempt < RECEIVE_ATTEMPTS => {
                    tracing::warn!(
                        host = %self.settings.host,
                        command = req.command_id.as_deref().unwrap_or("?"),
                        "WinRM Receive answered with {}; sending it again (attempt {} of {RECEIVE_ATTEMPTS})",
                        f.describe(),
                        attempt + 1
                    );
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(f) if f.is_internal_error() => {
                    return Err(ConnError::failed(format!(
                        "{}: cannot read the output of command {}: {} (the Receive was sent \
                         {RECEIVE_ATTEMPTS} times)",
                        self.settings.host,
                        req.command_id.as_deref().unwrap_or("?"),
                        f.describe()
                    )));
                }
                other => return Ok(other),
            }
        }
    }

    /// Queues cleanup (the Signal after a command finished) to be sent when the connection
    /// has nothing else to do, e.g. while the next command's process starts on the host.
    pub fn defer(&self, req: soap::Request) {
        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(Job { req, reply: None }).is_err() {
            self.stats.deferred.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Sends a Command on `shell`. The host may start the command whatever happens to the
    /// caller, so the answer always comes with a `Terminate` armed for the command it names:
    /// whoever ends up holding it — the caller, or nobody because the caller went away (Ctrl-C)
    /// before the answer came or after it was sent but before it was read — either disarms it or
    /// has the command signalled when it drops. In flight, it counts as cleanup, so `close`
    /// waits for it before deleting the shell.
    pub async fn call_command(
        &self,
        shell: &str,
        req: soap::Request,
    ) -> Result<(Reply, Option<Terminate>), ConnError> {
        let (tx, rx) = oneshot::channel();
        let h = self.clone();
        let shell = shell.to_string();
        self.cleanup.spawn(async move {
            let answer = h.call(req).await.map(|reply| {
                let guard = match &reply {
                    Ok(r) => r
                        .command_id
                        .clone()
                        .filter(|c| !c.is_empty())
                        .map(|id| Terminate::armed(h.clone(), shell, id)),
                    Err(_) => None,
                };
                (reply, guard)
            });
            // Not taken: dropping it here (or with the channel) signals the command.
            let _ = tx.send(answer);
        });
        rx.await.map_err(|_| {
            ConnError::failed(format!(
                "{}: the WinRM connection is closed",
                self.settings.host
            ))
        })?
    }

    /// Sends a request without waiting for it (cleanup that nobody awaits), tracked in
    /// `cleanup`.
    pub fn call_detached(&self, req: soap::Request) {
        let h = self.clone();
        self.cleanup.spawn(async move {
            let _ = h.call(req).await;
        });
    }
}

/// Signals `terminate` for a command unless disarmed: on timeout, on cancellation (the exec
/// future dropped) and on errors, so the host does not keep running an orphan.
pub struct Terminate {
    session: SessionHandle,
    shell: String,
    command: String,
    armed: bool,
}

impl Terminate {
    pub fn armed(session: SessionHandle, shell: String, command: String) -> Terminate {
        Terminate {
            session,
            shell,
            command,
            armed: true,
        }
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    /// The command ended (or another owner signals it): no Signal from this guard.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Terminate {
    fn drop(&mut self) {
        if self.armed {
            self.session
                .call_detached(soap::signal_terminate(&self.shell, &self.command));
        }
    }
}

struct Live {
    http: HttpConn,
    ntlm: Option<NtlmSession>,
}

/// Connections at most: one for a long Receive, one for everything else.
const LANES: usize = 2;
/// Times a Receive is sent when the host answers it with an internal error.
const RECEIVE_ATTEMPTS: u32 = 3;
/// Deferred cleanup requests kept before one is sent even though nothing is idle.
const MAX_DEFERRED: usize = 32;

/// The Receive that has a connection to itself: resolves to that connection when done (None
/// when it was abandoned, its answer still due on the wire).
type Parked = Pin<Box<dyn Future<Output = Option<Live>> + Send>>;

/// Puts a connection back for reuse, unless it broke or there are enough already.
fn give_back(idle: &mut Vec<Live>, parked: bool, lane: Option<Live>) {
    if let Some(l) = lane
        && !l.http.is_closed()
        && idle.len() + usize::from(parked) < LANES
    {
        idle.push(l);
    }
}

/// Waits for `fut` while also finishing the parked Receive if its answer comes first (its
/// connection is then free again).
async fn drive<F: Future>(fut: F, parked: &mut Option<Parked>, idle: &mut Vec<Live>) -> F::Output {
    tokio::pin!(fut);
    loop {
        match parked.as_mut() {
            Some(p) => tokio::select! {
                r = &mut fut => return r,
                back = p => {
                    *parked = None;
                    give_back(idle, false, back);
                }
            },
            None => return fut.await,
        }
    }
}

async fn run(ctx: Ctx, mut rx: mpsc::Receiver<Job>) {
    let mut idle: Vec<Live> = Vec::new();
    let mut parked: Option<Parked> = None;
    let mut later: std::collections::VecDeque<soap::Request> = Default::default();
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Idle: send deferred cleanup, but without opening a connection just for it
                // while the only one is held by a Receive.
                if !later.is_empty() && (!idle.is_empty() || parked.is_none()) {
                    if let Some(req) = later.pop_front() {
                        let mut lane = idle.pop();
                        let _ = drive(ctx.roundtrip(&mut lane, req), &mut parked, &mut idle).await;
                        ctx.stats.deferred.fetch_sub(1, Ordering::Relaxed);
                        give_back(&mut idle, parked.is_some(), lane);
                    }
                    continue;
                }
                let next = match parked.as_mut() {
                    Some(p) => tokio::select! {
                        back = p => {
                            parked = None;
                            give_back(&mut idle, false, back);
                            continue;
                        }
                        j = rx.recv() => j,
                    },
                    None => rx.recv().await,
                };
                match next {
                    Some(job) => job,
                    None => break,
                }
            }
        };
        let Job { mut req, reply } = job;
        let Some(mut reply) = reply else {
            later.push_back(req);
            if later.len() > MAX_DEFERRED {
                // A connection that is never idle still gets its cleanup done.
                if let Some(req) = later.pop_front() {
                    let mut lane = idle.pop();
                    let _ = drive(ctx.roundtrip(&mut lane, req), &mut parked, &mut idle).await;
                    ctx.stats.deferred.fetch_sub(1, Ordering::Relaxed);
                    give_back(&mut idle, parked.is_some(), lane);
                }
            }
            continue;
        };
        if reply.is_closed() {
            // Its command was cancelled while this waited in the queue.
            continue;
        }
        if req.action == Action::Delete {
            // Deleting a shell ends its commands: their deferred Signals would only meet
            // "shell not found".
            let before = later.len();
            later.retain(|r| r.shell_id != req.shell_id);
            let dropped = (before - later.len()) as u64;
            ctx.stats.deferred.fetch_sub(dropped, Ordering::Relaxed);
        }
        let s = &ctx.settings;
        if req.action == Action::Receive {
            if req.timeout.is_none() && parked.is_none() {
                req.timeout = Some(s.receive_poll.min(s.operation_timeout));
                parked = Some(ctx.park(idle.pop(), req, reply));
                continue;
            }
            if req.timeout.is_none() {
                req.timeout = Some(s.shared_receive_poll.min(s.operation_timeout));
            }
            // A cancelled or timed-out command must not keep the connection for a whole poll:
            // abandon the Receive (its output is not wanted) and the connection with it, since
            // its answer is still due on the wire.
            let mut lane = idle.pop();
            let done = {
                let exchange = async {
                    tokio::select! {
                        r = ctx.roundtrip(&mut lane, req) => Some(r),
                        _ = reply.closed() => None,
                    }
                };
                drive(exchange, &mut parked, &mut idle).await
            };
            match done {
                Some(r) => {
                    let _ = reply.send(r);
                    give_back(&mut idle, parked.is_some(), lane);
                }
                None => drop(lane),
            }
        } else {
            let mut lane = idle.pop();
            let r = drive(ctx.roundtrip(&mut lane, req), &mut parked, &mut idle).await;
            let _ = reply.send(r);
            give_back(&mut idle, parked.is_some(), lane);
        }
    }
}

/// What every lane shares: settings and counters.
#[derive(Clone)]
struct Ctx {
    settings: Arc<Settings>,
    stats: Arc<Stats>,
}

impl Ctx {
    /// The Receive gets `lane` to itself until its answer comes.
    fn park(&self, lane: Option<Live>, req: soap::Request, mut reply: ReplyTx) -> Parked {
        let ctx = self.clone();
        Box::pin(async move {
            let mut lane = lane;
            tokio::select! {
                r = ctx.roundtrip(&mut lane, req) => {
                    let _ = reply.send(r);
                    lane
                }
                _ = reply.closed() => None,
            }
        })
    }

    fn err_prefix(&self) -> String {
        format!("{}: {}", self.settings.host, self.settings.target())
    }

    async fn roundtrip(
        &self,
        lane: &mut Option<Live>,
        req: soap::Request,
    ) -> Result<Reply, ConnError> {
        let s = self.settings.clone();
        let op_timeout = req.timeout.unwrap_or(s.operation_timeout);
        let xml = soap::render(&req, &s.endpoint.url(), s.max_envelope, s.operation_timeout);
        // The server may hold a Receive for the whole OperationTimeout.
        let read_timeout = s.read_timeout.max(op_timeout + Duration::from_secs(1));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let fresh = lane.is_none() || lane.as_ref().is_some_and(|l| l.http.is_closed());
            if fresh {
                *lane = None;
                *lane = Some(self.open().await?);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            match self.exchange(lane, xml.as_bytes(), read_timeout).await {
                Ok(resp) => match self.interpret(lane, resp, req.action, xml.len()) {
                    Ok(reply) => return Ok(reply),
                    Err(Interpreted::Reauth) if attempt == 1 && !fresh => {
                        // The host forgot our context (e.g. the service restarted): the request
                        // was not processed, so authenticate again and resend.
                        *lane = None;
                        continue;
                    }
                    Err(Interpreted::Reauth) => {
                        *lane = None;
                        return Err(self.unauthorized());
                    }
                    Err(Interpreted::Fatal(e)) => {
                        *lane = None;
                        return Err(e);
                    }
                },
                Err(HttpError::NotSent(_)) if attempt <= 2 => {
                    *lane = None;
                    continue;
                }
                Err(HttpError::Broken(why)) => {
                    *lane = None;
                    if req.action.resendable() && attempt == 1 {
                        continue;
                    }
                    let may = if req.action.resendable() {
                        ""
                    } else {
                        " (the command may or may not have started)"
                    };
                    return Err(ConnError::failed(format!(
                        "{}: connection lost during {}{may}: {why}",
                        self.err_prefix(),
                        req.action.name()
                    )));
                }
                Err(HttpError::Timeout) => {
                    *lane = None;
                    return Err(ConnError::timeout(format!(
                        "{}: no answer to {} within the read timeout of {}s \
                         (ansible_winrm_read_timeout_sec)",
                        self.err_prefix(),
                        req.action.name(),
                        read_timeout.as_secs()
                    )));
                }
                Err(HttpError::TooLarge(n)) => {
                    *lane = None;
                    return Err(ConnError::failed(format!(
                        "{}: the answer to {} is larger than {} bytes ({n}); refusing to \
                         buffer it (our MaxEnvelopeSize is {})",
                        self.err_prefix(),
                        req.action.name(),
                        s.response_limit(),
                        s.max_envelope
                    )));
                }
                Err(HttpError::Connect(m)) | Err(HttpError::NotSent(m)) => {
                    *lane = None;
                    return Err(ConnError::unreachable(format!("{}: {m}", s.host)));
                }
            }
        }
    }

    /// Connects and, for NTLM, authenticates the new connection.
    async fn open(&self) -> Result<Live, ConnError> {
        let s = self.settings.clone();
        let mut http = HttpConn::connect(&s.endpoint).await.map_err(|e| match e {
            HttpError::Connect(m) => ConnError::unreachable(format!("{}: {m}", s.host)),
            other => ConnError::unreachable(format!("{}: {other:?}", s.host)),
        })?;
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        if s.auth == AuthKind::Basic {
            return Ok(Live { http, ntlm: None });
        }
        let timeout = s.read_timeout;
        let unreachable =
            |m: String| ConnError::unreachable(format!("{}: {}: {m}", s.host, s.target()));
        let host = s.endpoint.address.trim_matches(['[', ']']).to_string();
        let mut ntlm = NtlmSession::with_channel_binding(
            &s.user,
            &s.password,
            &host,
            http.channel_binding.as_deref(),
        )
        .map_err(|e| unreachable(e.to_string()))?;
        let negotiate = ntlm.negotiate().map_err(|e| unreachable(e.to_string()))?;
        // An empty POST carries the handshake; bodies come after, sealed.
        let r = http
            .post(
                &s.endpoint,
                &[(
                    "Authorization",
                    format!("Negotiate {}", B64.encode(negotiate)),
                )],
                Bytes::new(),
                64 * 1024,
                timeout,
            )
            .await
            .map_err(|e| unreachable(http_err_text(e, "the NTLM handshake")))?;
        if r.status != 401 {
            return Err(unreachable(format!(
                "expected an NTLM challenge (HTTP 401), got HTTP {}{}",
                r.status,
                http_sys_text(&r)
                    .map(|t| format!(": {t}{}", http_sys_hint(r.status)))
                    .unwrap_or_default()
            )));
        }
        let Some(challenge) = auth::challenge_token(r.header_values("www-authenticate")) else {
            let offered: Vec<&str> = r.header_values("www-authenticate").collect();
            return Err(unreachable(format!(
                "the host does not offer NTLM (WWW-Authenticate: {}); check \
                 ansible_winrm_transport",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        };
        let authenticate = ntlm
            .authenticate(&challenge)
            .map_err(|e| unreachable(e.to_string()))?;
        let r = http
            .post(
                &s.endpoint,
                &[(
                    "Authorization",
                    format!("Negotiate {}", B64.encode(authenticate)),
                )],
                Bytes::new(),
                64 * 1024,
                timeout,
            )
            .await
            .map_err(|e| unreachable(http_err_text(e, "the NTLM handshake")))?;
        match r.status {
            200..=299 => {}
            401 => return Err(self.unauthorized()),
            other => {
                return Err(unreachable(format!(
                    "NTLM handshake answered with HTTP {other}{}",
                    http_sys_text(&r)
                        .map(|t| format!(": {t}{}", http_sys_hint(other)))
                        .unwrap_or_default()
                )));
            }
        }
        self.stats.handshakes.fetch_add(1, Ordering::Relaxed);
        Ok(Live {
            http,
            ntlm: Some(ntlm),
        })
    }

    fn unauthorized(&self) -> ConnError {
        let s = &self.settings;
        let scheme_hint = match (s.auth, s.endpoint.scheme) {
            (AuthKind::Basic, Scheme::Http) => {
                " Basic over HTTP also needs AllowUnencrypted=true and AllowBasic=true on the host."
            }
            (AuthKind::Basic, Scheme::Https) => " Basic needs AllowBasic=true on the host.",
            (AuthKind::Ntlm, Scheme::Https) => {
                " Over HTTPS the host may also check NTLM channel binding (the certificate mixop \
                 sees): a TLS-intercepting proxy between mixop and the host makes it fail."
            }
            (AuthKind::Ntlm, Scheme::Http) => "",
        };
        ConnError::unreachable(format!(
            "{}: {}: HTTP 401: credentials rejected, or a transport/encryption mismatch. Check \
             ansible_user ({}; use DOMAIN\\user or user@domain for domain accounts) and \
             ansible_password, ansible_winrm_transport ({}) against the auth methods the host \
             allows, and ansible_winrm_scheme/ansible_port ({}) and \
             ansible_winrm_message_encryption ({}).{scheme_hint}",
            s.host,
            s.target(),
            s.user,
            match s.auth {
                AuthKind::Ntlm => "ntlm",
                AuthKind::Basic => "basic",
            },
            s.endpoint.scheme.as_str(),
            if s.encrypt { "on" } else { "off" },
        ))
    }

    async fn exchange(
        &self,
        lane: &mut Option<Live>,
        xml: &[u8],
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let s = self.settings.clone();
        let Some(live) = lane.as_mut() else {
            return Err(HttpError::NotSent("not connected".into()));
        };
        let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(2);
        let body = if s.encrypt {
            let Some(ntlm) = live.ntlm.as_mut() else {
                return Err(HttpError::NotSent("message encryption needs NTLM".into()));
            };
            headers.push(("Content-Type", encryption::CONTENT_TYPE.to_string()));
            encryption::encrypt(ntlm, xml).map_err(|e| HttpError::NotSent(e.to_string()))?
        } else {
            headers.push((
                "Content-Type",
                "application/soap+xml;charset=UTF-8".to_string(),
            ));
            xml.to_vec()
        };
        if s.auth == AuthKind::Basic {
            headers.push(("Authorization", auth::basic_header(&s.user, &s.password)));
        }
        live.http
            .post(
                &s.endpoint,
                &headers,
                Bytes::from(body),
                s.response_limit(),
                timeout,
            )
            .await
    }

    fn interpret(
        &self,
        lane: &mut Option<Live>,
        resp: Response,
        action: Action,
        sent_len: usize,
    ) -> Result<Reply, Interpreted> {
        let s = self.settings.clone();
        let prefix = self.err_prefix();
        let fatal = |m: String| Interpreted::Fatal(ConnError::failed(format!("{prefix}: {m}")));
        if resp.status != 401
            && let Some(text) = http_sys_text(&resp)
        {
            // Not WinRM answering but HTTP.sys in front of it (service stopped or starting, a
            // bad Host header, a wrong path): its HTML page says why.
            return Err(fatal(format!(
                "HTTP {} to {} from the host's HTTP server, not from WinRM: {text}{}",
                resp.status,
                action.name(),
                http_sys_hint(resp.status)
            )));
        }
        match resp.status {
            401 => return Err(Interpreted::Reauth),
            413 => {
                return Err(fatal(format!(
                    "HTTP 413: the {} request ({sent_len} bytes) exceeds the host's \
                     MaxEnvelopeSize (0x80338111). Raise it on the host with `winrm set \
                     winrm/config @{{MaxEnvelopeSizekb=\"8192\"}}`",
                    action.name()
                )));
            }
            200 | 400 | 500 => {}
            other => {
                return Err(fatal(format!(
                    "unexpected HTTP {other} to {}",
                    action.name()
                )));
            }
        }
        if resp.body.is_empty() {
            let m = match resp.status {
                500 if !s.encrypt && s.endpoint.scheme == Scheme::Http => format!(
                    "HTTP 500 with an empty body to an unencrypted {}: the host refuses \
                     unencrypted messages (AllowUnencrypted=false). Remove \
                     ansible_winrm_message_encryption: never, or use https",
                    action.name()
                ),
                st => format!("HTTP {st} with an empty body to {}", action.name()),
            };
            return Err(fatal(m));
        }
        let ctype = resp.content_type().to_string();
        let encrypted_answer = ctype.to_ascii_lowercase().starts_with("multipart/");
        let xml = if s.encrypt || encrypted_answer {
            let Some(ntlm) = lane.as_mut().and_then(|l| l.ntlm.as_mut()) else {
                return Err(fatal(
                    "encrypted answer on a connection without NTLM".into(),
                ));
            };
            encryption::decrypt(ntlm, &ctype, &resp.body)
                .map_err(|e| fatal(format!("HTTP {}: {e}", resp.status)))?
        } else {
            resp.body.to_vec()
        };
        match soap::parse(&xml) {
            Ok(Ok(r)) if resp.status == 200 => Ok(Ok(r)),
            Ok(Ok(_)) => Err(fatal(format!(
                "HTTP {} without a SOAP fault to {}",
                resp.status,
                action.name()
            ))),
            Ok(Err(fault)) => Ok(Err(fault)),
            Err(e) => Err(fatal(format!(
                "{e} (HTTP {}, {})",
                resp.status,
                action.name()
            ))),
        }
    }
}

enum Interpreted {
    /// 401: the connection lost its authentication.
    Reauth,
    Fatal(ConnError),
}

/// The text of an HTML error page (HTTP.sys answers 400, 404 and 503 itself, with a short HTML
/// page such as `<h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service is
/// unavailable.</p>`), or None when the body is not HTML.
fn http_sys_text(resp: &Response) -> Option<String> {
    let ctype = resp.content_type().to_ascii_lowercase();
    let head: String = String::from_utf8_lossy(&resp.body[..resp.body.len().min(64)])
        .trim_start()
        .to_ascii_lowercase();
    let html = ctype.starts_with("text/html")
        || head.starts_with("<!doctype html")
        || head.starts_with("<html");
    if !html || resp.body.is_empty() {
        return None;
    }
    let body = String::from_utf8_lossy(&resp.body[..resp.body.len().min(16 * 1024)]);
    let head_re = regex::Regex::new(r"(?is)<head\b.*?</head\s*>").ok()?;
    let tag_re = regex::Regex::new(r"(?s)<[^>]*>").ok()?;
    let no_head = head_re.replace_all(&body, " ");
    let text = tag_re.replace_all(&no_head, " ");
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let mut words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.is_empty() {
        return None;
    }
    if words.len() > 300 {
        let mut cut = 300;
        while !words.is_char_boundary(cut) {
            cut -= 1;
        }
        words.truncate(cut);
        words.push('…');
    }
    Some(format!("\"{words}\""))
}

fn http_sys_hint(status: u16) -> &'static str {
    match status {
        503 => {
            " (nothing serves this URL: the WinRM service is stopped or still starting, e.g. \
             after a reboot, or the listener has another path; check `winrm enumerate \
             winrm/config/listener` and ansible_winrm_path)"
        }
        404 => " (check ansible_winrm_path; WinRM listens on /wsman)",
        400 => " (HTTP.sys refused the request itself, e.g. a Host header it does not accept)",
        _ => "",
    }
}

fn http_err_text(e: HttpError, during: &str) -> String {
    match e {
        HttpError::Connect(m) | HttpError::NotSent(m) => m,
        HttpError::Broken(m) => format!("connection lost during {during}: {m}"),
        HttpError::Timeout => format!("no answer during {during}"),
        HttpError::TooLarge(n) => format!("oversized answer ({n} bytes) during {during}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{CONTENT_TYPE, HeaderValue};

    fn resp(status: u16, ctype: &str, body: &str) -> Response {
        let mut headers = hyper::HeaderMap::new();
        if !ctype.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(ctype).unwrap());
        }
        Response {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn http_sys_pages_are_read() {
        let page = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>Service Unavailable</h2>\r\n<hr><p>HTTP Error 503. The service is unavailable.</p>\r\n</BODY></HTML>\r\n";
        assert_eq!(
            http_sys_text(&resp(503, "text/html; charset=us-ascii", page)).as_deref(),
            Some("\"Service Unavailable HTTP Error 503. The service is unavailable.\"")
        );
        // Recognised by its start even without a content type; SOAP and empty bodies are not.
        assert!(http_sys_text(&resp(400, "", page)).is_some());
        assert!(http_sys_text(&resp(500, "application/soap+xml", "<s:Envelope/>")).is_none());
        assert!(http_sys_text(&resp(503, "text/html", "")).is_none());
        let long = format!("<html><body>{}</body></html>", "é".repeat(400));
        let t = http_sys_text(&resp(503, "text/html", &long)).unwrap();
        assert!(t.chars().count() < 320 && t.ends_with("…\""), "{t}");
    }
}
