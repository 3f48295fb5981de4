//! Kubeconfig loading, one cached client per kubeconfig + context, discovery, and errors that say
//! what to fix (which credentials were rejected, which server did not answer).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{ApiCapabilities, Discovery, Scope};
use kube::{Client, Config};
use serde_json::Value;

use crate::modules::{Args, ModError, arg_str};

/// Errors of the Kubernetes modules. Each message names what to check.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("cannot use kubeconfig {source_name}: {msg}")]
    Kubeconfig { source_name: String, msg: String },
    #[error(
        "the Kubernetes API server at {server} rejected the credentials (401 Unauthorized) of user `{user}` ({creds}) from {source_name} while {doing}; the {creds} is wrong, expired, or from another cluster (was the cluster reinstalled? fetch its kubeconfig again)"
    )]
    Unauthorized {
        server: String,
        user: String,
        creds: String,
        source_name: String,
        doing: String,
    },
    #[error(
        "forbidden (403) while {doing}: user `{user}` ({creds}) from {source_name} may not do this: {message}"
    )]
    Forbidden {
        user: String,
        creds: String,
        source_name: String,
        doing: String,
        message: String,
    },
    #[error(
        "conflict (409) while {doing}: {message}; set `force: true` to take over the fields another field manager owns"
    )]
    Conflict { doing: String, message: String },
    #[error("not found (404) while {doing}: {message}")]
    NotFound { doing: String, message: String },
    #[error("the API server refused the request ({code} {reason}) while {doing}: {message}")]
    Api {
        code: u16,
        reason: String,
        doing: String,
        message: String,
    },
    #[error(
        "cannot connect to the Kubernetes API server at {server} while {doing}: {detail} (is the server running, and does {source_name} point at its address rather than 127.0.0.1?)"
    )]
    Unreachable {
        server: String,
        source_name: String,
        doing: String,
        detail: String,
    },
    #[error("the Kubernetes API server at {server} did not answer within {secs} s while {doing}")]
    Timeout {
        server: String,
        secs: u64,
        doing: String,
    },
    #[error("{0}")]
    Other(String),
}

impl From<K8sError> for ModError {
    fn from(e: K8sError) -> Self {
        ModError::msg(e.to_string())
    }
}

impl K8sError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, K8sError::NotFound { .. })
    }
}

/// A connected cluster: the client plus what error messages need to say about it.
pub struct Kube {
    pub client: Client,
    pub server: String,
    pub user: String,
    /// "client certificate", "bearer token", ...
    pub creds: String,
    /// The kubeconfig it came from, for messages.
    pub source_name: String,
    pub default_namespace: String,
    /// Upper bound for one API request (the client has no read timeout of its own).
    pub request_timeout: Duration,
    discovery: tokio::sync::Mutex<Option<Arc<Discovery>>>,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kube")
            .field("server", &self.server)
            .finish()
    }
}

/// A resolved kind: where its objects live and whether they are namespaced.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub ar: ApiResource,
    pub namespaced: bool,
}

/// Clients are expensive (TLS, discovery): one per kubeconfig content + context for the whole run.
type CacheKey = (String, Option<String>, u64);
static CLIENTS: LazyLock<Mutex<HashMap<CacheKey, Arc<Kube>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Kube {
    /// Wraps an existing client (tests use a mocked service).
    pub fn from_client(client: Client, server: &str, request_timeout: Duration) -> Kube {
        Kube {
            default_namespace: client.default_namespace().to_string(),
            client,
            server: server.to_string(),
            user: "test".into(),
            creds: "test credentials".into(),
            source_name: "the test kubeconfig".into(),
            request_timeout,
            discovery: tokio::sync::Mutex::new(None),
        }
    }

    /// The client for the module's `kubeconfig` / `context` arguments, from the cache when the
    /// same kubeconfig (same content) and context were used before in this run.
    pub async fn for_args(args: &Args) -> Result<Arc<Kube>, K8sError> {
        let context = arg_str(args, "context").map(str::to_string);
        let (source_name, kubeconfig, fingerprint) = load_kubeconfig(args.get("kubeconfig"))?;
        let validate_certs = crate::modules::arg_bool(args, "validate_certs", true);
        trust(
            &kubeconfig,
            context.as_deref(),
            validate_certs,
            crate::modules::arg_bool(args, "allow_exec_plugins", false),
        )
        .map_err(|msg| K8sError::Kubeconfig {
            source_name: source_name.clone(),
            msg,
        })?;
        let key = (source_name.clone(), context.clone(), fingerprint);
        if let Ok(cache) = CLIENTS.lock()
            && let Some(k) = cache.get(&key)
        {
            return Ok(k.clone());
        }
        let kube = Arc::new(Kube::connect(source_name, kubeconfig, context, validate_certs).await?);
        if let Ok(mut cache) = CLIENTS.lock() {
            cache.insert(key, kube.clone());
        }
        Ok(kube)
    }

    async fn connect(
        source_name: String,
        kubeconfig: Kubeconfig,
        context: Option<String>,
        validate_certs: bool,
    ) -> Result<Kube, K8sError> {
        let bad = |msg: String| K8sError::Kubeconfig {
            source_name: source_name.clone(),
            msg,
        };
        if let Some(c) = &context
            && !kubeconfig.contexts.iter().any(|n| &n.name == c)
        {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|n| n.name.as_str())
                .collect();
            return Err(bad(format!(
                "it has no context `{c}` (it has: {})",
                known.join(", ")
            )));
        }
        let ctx_name = context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
            .unwrap_or_default();
        let user = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.user.clone().unwrap_or_default())
            .unwrap_or_default();
        let creds = kubeconfig
            .auth_infos
            .iter()
            .find(|a| a.name == user)
            .and_then(|a| a.auth_info.as_ref())
            .map_or_else(|| "no credentials".to_string(), describe_creds);
        let opts = KubeConfigOptions {
            context,
            ..Default::default()
        };
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &opts)
            .await
            .map_err(|e| bad(error_chain(&e)))?;
        config.connect_timeout = Some(Duration::from_secs(10));
        if !validate_certs {
            config.accept_invalid_certs = true;
        }
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| bad(error_chain(&e)))?;
        Ok(Kube {
            client,
            server,
            user,
            creds,
            source_name,
            default_namespace,
            request_timeout: Duration::from_secs(60),
            discovery: tokio::sync::Mutex::new(None),
        })
    }

    /// Runs one API call with the request timeout, turning failures into `K8sError`s.
    pub async fn call<T>(
        &self,
        doing: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, K8sError> {
        match tokio::time::timeout(self.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.explain(e, doing)),
            Err(_) => Err(K8sError::Timeout {
                server: self.server.clone(),
                secs: self.request_timeout.as_secs(),
                doing: doing.to_string(),
            }),
        }
    }

    /// Maps a kube error to what the user should check.
    pub fn explain(&self, e: kube::Error, doing: &str) -> K8sError {
        let doing = doing.to_string();
        match e {
            kube::Error::Api(status) => {
                let message = status.message.clone();
                match status.code {
                    401 => K8sError::Unauthorized {
                        server: self.server.clone(),
                        user: self.user.clone(),
                        creds: self.creds.clone(),
                        source_name: self.source_name.clone(),
                        doing,
                    },
                    403 => K8sError::Forbidden {
                        user: self.user.clone(),
                        creds: self.creds.clone(),
                        source_name: self.source_name.clone(),
                        doing,
                        message,
                    },
                    404 => K8sError::NotFound { doing, message },
                    409 if status.reason == "Conflict" || message.contains("Apply failed") => {
                        K8sError::Conflict { doing, message }
                    }
                    code => K8sError::Api {
                        code,
                        reason: status.reason.clone(),
                        doing,
                        message,
                    },
                }
            }
            other => {
                let detail = error_chain(&other);
                if let Some(kind) = io_kind(&other)
                    && kind == std::io::ErrorKind::TimedOut
                {
                    return K8sError::Timeout {
                        server: self.server.clone(),
                        secs: self.request_timeout.as_secs(),
                        doing,
                    };
                }
                let transport = matches!(
                    other,
                    kube::Error::HyperError(_)
                        | kube::Error::Service(_)
                        | kube::Error::RustlsTls(_)
                );
                if transport {
                    K8sError::Unreachable {
                        server: self.server.clone(),
                        source_name: self.source_name.clone(),
                        doing,
                        detail,
                    }
                } else {
                    K8sError::Other(format!("error while {doing}: {detail}"))
                }
            }
        }
    }

    /// The server's discovery documents, fetched once per client (again with `refresh`, after a
    /// kind was not found: a CRD may have been created since).
    pub async fn discovery(&self, refresh: bool) -> Result<Arc<Discovery>, K8sError> {
        let mut slot = self.discovery.lock().await;
        if !refresh && let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let d = self
            .call(
                "reading the API discovery documents",
                Discovery::new(self.client.clone()).run(),
            )
            .await?;
        let d = Arc::new(d);
        *slot = Some(d.clone());
        Ok(d)
    }

    /// Finds `kind` in `api_version`, or, when no apiVersion was given, in `v1` and then in any
    /// group's preferred version (`kind: Deployment` alone finds apps/v1 instead of silently
    /// matching nothing).
    pub async fn resolve_kind(
        &self,
        api_version: Option<&str>,
        kind: &str,
    ) -> Result<Resolved, K8sError> {
        let core = self.resolve(api_version.unwrap_or("v1"), kind).await;
        match (api_version, core) {
            (None, Err(K8sError::Other(msg))) if msg.starts_with("unknown kind") => {
                let d = self.discovery(false).await?;
                let lower = kind.to_ascii_lowercase();
                for g in d.groups() {
                    let found = g.recommended_resources().into_iter().find(|(ar, _)| {
                        ar.kind == kind
                            || ar.kind.to_ascii_lowercase() == lower
                            || ar.plural == lower
                    });
                    if let Some((ar, caps)) = found {
                        return Ok(Resolved {
                            ar,
                            namespaced: caps.scope == Scope::Namespaced,
                        });
                    }
                }
                Err(K8sError::Other(msg))
            }
            (_, r) => r,
        }
    }

    /// Finds the resource for `api_version` + `kind` (kind may also be given lower-case or as
    /// its plural, like kubectl accepts).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Resolved, K8sError> {
        let gv: GroupVersion = api_version
            .parse()
            .map_err(|_| K8sError::Other(format!("invalid apiVersion `{api_version}`")))?;
        for refresh in [false, true] {
            let d = self.discovery(refresh).await?;
            if let Some(found) = find_kind(&d, &gv, kind) {
                return Ok(found);
            }
        }
        let d = self.discovery(false).await?;
        let known: Vec<String> = d
            .get(&gv.group)
            .map(|g| {
                g.versioned_resources(&gv.version)
                    .into_iter()
                    .map(|(ar, _)| ar.kind)
                    .collect()
            })
            .unwrap_or_default();
        Err(K8sError::Other(if known.is_empty() {
            format!(
                "unknown kind `{kind}`: the server at {} serves no API `{api_version}`",
                self.server
            )
        } else {
            format!(
                "unknown kind `{kind}` in `{api_version}` on the server at {} (it serves: {})",
                self.server,
                known.join(", ")
            )
        }))
    }
}

fn find_kind(d: &Discovery, gv: &GroupVersion, kind: &str) -> Option<Resolved> {
    let group = d.get(&gv.group)?;
    let resources = group.versioned_resources(&gv.version);
    let lower = kind.to_ascii_lowercase();
    let pick = |pred: &dyn Fn(&ApiResource) -> bool| {
        resources.iter().find(|(ar, _)| pred(ar)).map(
            |(ar, caps): &(ApiResource, ApiCapabilities)| Resolved {
                ar: ar.clone(),
                namespaced: caps.scope == Scope::Namespaced,
            },
        )
    };
    pick(&|ar| ar.kind == kind)
        .or_else(|| pick(&|ar| ar.kind.to_ascii_lowercase() == lower || ar.plural == lower))
}

/// Refuses what a kubeconfig may ask for that gives it more than a cluster and credentials: an
/// `exec` credential plugin runs a program of the kubeconfig's choosing on the controller, and
/// `insecure-skip-tls-verify: true` talks to whoever answers. Each is allowed by a module
/// argument that says so deliberately.
fn trust(
    kubeconfig: &Kubeconfig,
    context: Option<&str>,
    validate_certs: bool,
    allow_exec_plugins: bool,
) -> Result<(), String> {
    let ctx_name = context
        .map(str::to_string)
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    let Some(ctx) = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.as_ref())
    else {
        return Ok(());
    };
    let user = ctx.user.clone().unwrap_or_default();
    if let Some(exec) = kubeconfig
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.exec.as_ref())
        && !allow_exec_plugins
    {
        return Err(format!(
            "user `{user}` has an exec credential plugin (`{}`), which would run a program on \
             the controller; mixop does not run it unless the task says \
             `allow_exec_plugins: true`",
            exec.command.as_deref().unwrap_or("?")
        ));
    }
    if kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.insecure_skip_tls_verify)
        == Some(true)
        && validate_certs
    {
        return Err(format!(
            "cluster `{}` has `insecure-skip-tls-verify: true`, which would accept any server; \
             put its CA in the kubeconfig (certificate-authority-data), or say \
             `validate_certs: false` in the task to skip verification deliberately",
            ctx.cluster
        ));
    }
    Ok(())
}

/// What kind of credentials a kubeconfig user has, for messages (never the secret itself).
fn describe_creds(a: &AuthInfo) -> String {
    if a.client_certificate_data.is_some() || a.client_certificate.is_some() {
        "client certificate".into()
    } else if a.token.is_some() || a.token_file.is_some() {
        "bearer token".into()
    } else if a.username.is_some() {
        "username and password".into()
    } else if a.exec.is_some() {
        "exec credential plugin".into()
    } else if a.auth_provider.is_some() {
        "auth provider".into()
    } else {
        "no credentials".into()
    }
}

/// The kubeconfig from the `kubeconfig` argument (a path, or the kubeconfig itself as a mapping),
/// else `$KUBECONFIG`, else `~/.kube/config`. Also returns a fingerprint of its text, so a
/// kubeconfig rewritten during the run (a reinstalled cluster) gets a new client.
fn load_kubeconfig(arg: Option<&Value>) -> Result<(String, Kubeconfig, u64), K8sError> {
    let fingerprint = |text: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    };
    let from_path = |path: PathBuf| {
        let name = path.display().to_string();
        if !path.exists() {
            return Err(K8sError::Kubeconfig {
                source_name: name,
                msg: "the file does not exist".into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| K8sError::Kubeconfig {
            source_name: name.clone(),
            msg: e.to_string(),
        })?;
        Kubeconfig::read_from(&path)
            .map(|k| (name.clone(), k, fingerprint(&text)))
            .map_err(|e| K8sError::Kubeconfig {
                source_name: name,
                msg: error_chain(&e),
            })
    };
    match arg {
        Some(Value::Object(m)) => {
            let k: Kubeconfig = serde_json::from_value(Value::Object(m.clone())).map_err(|e| {
                K8sError::Kubeconfig {
                    source_name: "the `kubeconfig` mapping".into(),
                    msg: e.to_string(),
                }
            })?;
            Ok((
                "the `kubeconfig` mapping".into(),
                k,
                fingerprint(&Value::Object(m.clone()).to_string()),
            ))
        }
        Some(Value::String(p)) => from_path(expand_home(p)),
        Some(Value::Null) | None => {
            if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
                let paths: Vec<PathBuf> = std::env::split_paths(&env).collect();
                if paths.len() == 1 {
                    return from_path(paths[0].clone());
                }
                // Several files: let kube merge them like kubectl does.
                let mut text = String::new();
                for p in &paths {
                    text.push_str(&std::fs::read_to_string(p).unwrap_or_default());
                }
                return Kubeconfig::read()
                    .map(|k| ("$KUBECONFIG".to_string(), k, fingerprint(&text)))
                    .map_err(|e| K8sError::Kubeconfig {
                        source_name: "$KUBECONFIG".into(),
                        msg: error_chain(&e),
                    });
            }
            match std::env::var_os("HOME") {
                Some(home) => from_path(PathBuf::from(home).join(".kube/config")),
                None => Err(K8sError::Kubeconfig {
                    source_name: "~/.kube/config".into(),
                    msg: "no `kubeconfig` argument, $KUBECONFIG is unset and $HOME is unknown"
                        .into(),
                }),
            }
        }
        Some(other) => Err(K8sError::Kubeconfig {
            source_name: other.to_string(),
            msg: "`kubeconfig` must be a path or a mapping".into(),
        }),
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// "outer: inner: innermost", skipping repeats (kube and hyper often repeat their source).
pub fn error_chain(e: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn StdError> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn io_kind(e: &(dyn StdError + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}
