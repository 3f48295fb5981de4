//! The request queue of one host: a task that owns the HTTP connection and its NTLM context and
//! runs SOAP requests strictly one after another.
//!
//! Serialising is required, not just convenient: NTLM sequence numbers are per direction and
//! sspi rejects a message out of order. Commands still interleave: each of them queues its own
//! Command/Send/Receive requests, and Receive polls use a short OperationTimeout while several
//! commands share the connection so a silent command cannot hold it for long.

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
    /// OperationTimeout of Receive polls. A Receive holds the one connection until output
    /// comes or this passes, so it is kept short: a newly started command waits at most this
    /// long behind a silent one (a silent command costs one small request per poll).
    pub receive_poll: Duration,
    /// The same while several commands share the connection.
    pub shared_receive_poll: Duration,
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

struct Job {
    req: soap::Request,
    /// None for deferred cleanup that nobody waits for.
    reply: Option<oneshot::Sender<Result<Reply, ConnError>>>,
}

/// A cheap handle to the queue.
#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Job>,
    /// Commands in flight on this host (decides the Receive poll timeout).
    pub active: Arc<AtomicUsize>,
    pub stats: Arc<Stats>,
    pub settings: Arc<Settings>,
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
        };
        let session = Session {
            settings,
            live: None,
            active: handle.active.clone(),
            stats: handle.stats.clone(),
        };
        tokio::spawn(session.run(rx));
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

    /// Queues cleanup (the Signal after a command finished) to be sent when the connection
    /// has nothing else to do, e.g. while the next command's process starts on the host.
    pub fn defer(&self, req: soap::Request) {
        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(Job { req, reply: None }).is_err() {
            self.stats.deferred.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Queues a request without waiting for it (cleanup that nobody awaits).
    pub fn call_detached(&self, req: soap::Request) {
        let h = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = h.call(req).await;
            });
        }
    }
}

struct Live {
    http: HttpConn,
    ntlm: Option<NtlmSession>,
}

struct Session {
    settings: Arc<Settings>,
    live: Option<Live>,
    active: Arc<AtomicUsize>,
    stats: Arc<Stats>,
}

impl Session {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut later: std::collections::VecDeque<soap::Request> = Default::default();
        loop {
            let job = match rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if let Some(req) = later.pop_front() {
                        let _ = self.roundtrip(req).await;
                        self.stats.deferred.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                    match rx.recv().await {
                        Some(job) => job,
                        None => break,
                    }
                }
            };
            let Job { req, reply } = job;
            let Some(mut reply) = reply else {
                later.push_back(req);
                if later.len() > 32 {
                    // A connection that is never idle still gets its cleanup done.
                    if let Some(req) = later.pop_front() {
                        let _ = self.roundtrip(req).await;
                        self.stats.deferred.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                continue;
            };
            if reply.is_closed() {
                // Its command was cancelled while this waited in the queue.
                continue;
            }
            if req.action == Action::Receive {
                // A cancelled or timed-out command must not keep the connection for a whole
                // poll: abandon the Receive (its output is not wanted) and the connection with
                // it, since its answer is still due on the wire.
                tokio::select! {
                    r = self.roundtrip(req) => {
                        let _ = reply.send(r);
                    }
                    _ = reply.closed() => {
                        self.live = None;
                    }
                }
            } else {
                let r = self.roundtrip(req).await;
                let _ = reply.send(r);
            }
        }
    }

    fn err_prefix(&self) -> String {
        format!("{}: {}", self.settings.host, self.settings.target())
    }

    async fn roundtrip(&mut self, mut req: soap::Request) -> Result<Reply, ConnError> {
        let s = self.settings.clone();
        if req.action == Action::Receive && req.timeout.is_none() {
            let poll = if self.active.load(Ordering::Relaxed) > 1 {
                s.shared_receive_poll
            } else {
                s.receive_poll
            };
            req.timeout = Some(poll.min(s.operation_timeout));
        }
        let op_timeout = req.timeout.unwrap_or(s.operation_timeout);
        let xml = soap::render(&req, &s.endpoint.url(), s.max_envelope, s.operation_timeout);
        // The server may hold a Receive for the whole OperationTimeout.
        let read_timeout = s.read_timeout.max(op_timeout + Duration::from_secs(1));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let fresh =
                self.live.is_none() || self.live.as_ref().is_some_and(|l| l.http.is_closed());
            if fresh {
                self.live = None;
                self.live = Some(self.open().await?);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            match self.exchange(xml.as_bytes(), read_timeout).await {
                Ok(resp) => match self.interpret(resp, req.action, xml.len()) {
                    Ok(reply) => return Ok(reply),
                    Err(Interpreted::Reauth) if attempt == 1 && !fresh => {
                        // The host forgot our context (e.g. the service restarted): the request
                        // was not processed, so authenticate again and resend.
                        self.live = None;
                        continue;
                    }
                    Err(Interpreted::Reauth) => {
                        self.live = None;
                        return Err(self.unauthorized());
                    }
                    Err(Interpreted::Fatal(e)) => {
                        self.live = None;
                        return Err(e);
                    }
                },
                Err(HttpError::NotSent(_)) if attempt <= 2 => {
                    self.live = None;
                    continue;
                }
                Err(HttpError::Broken(why)) => {
                    self.live = None;
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
                    self.live = None;
                    return Err(ConnError::timeout(format!(
                        "{}: no answer to {} within the read timeout of {}s \
                         (ansible_winrm_read_timeout_sec)",
                        self.err_prefix(),
                        req.action.name(),
                        read_timeout.as_secs()
                    )));
                }
                Err(HttpError::TooLarge(n)) => {
                    self.live = None;
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
                    self.live = None;
                    return Err(ConnError::unreachable(format!("{}: {m}", s.host)));
                }
            }
        }
    }

    /// Connects and, for NTLM, authenticates the new connection.
    async fn open(&mut self) -> Result<Live, ConnError> {
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
        let mut ntlm = NtlmSession::new(&s.user, &s.password, &host)
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
                "expected an NTLM challenge (HTTP 401), got HTTP {}",
                r.status
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
                    "NTLM handshake answered with HTTP {other}"
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
            (AuthKind::Ntlm, _) => "",
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

    async fn exchange(&mut self, xml: &[u8], timeout: Duration) -> Result<Response, HttpError> {
        let s = self.settings.clone();
        let Some(live) = self.live.as_mut() else {
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
        &mut self,
        resp: Response,
        action: Action,
        sent_len: usize,
    ) -> Result<Reply, Interpreted> {
        let s = self.settings.clone();
        let prefix = self.err_prefix();
        let fatal = |m: String| Interpreted::Fatal(ConnError::failed(format!("{prefix}: {m}")));
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
            let Some(ntlm) = self.live.as_mut().and_then(|l| l.ntlm.as_mut()) else {
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

fn http_err_text(e: HttpError, during: &str) -> String {
    match e {
        HttpError::Connect(m) | HttpError::NotSent(m) => m,
        HttpError::Broken(m) => format!("connection lost during {during}: {m}"),
        HttpError::Timeout => format!("no answer during {during}"),
        HttpError::TooLarge(n) => format!("oversized answer ({n} bytes) during {during}"),
    }
}
