//! Modules: Rust on the controller that drives the target through its connection.
//!
//! Each module declares its argument schema (`ModuleDef`), which the playbook validator checks
//! before any host is contacted and `normalize_args` applies again after templating.

pub mod builtin;
mod dyninv;
mod files;
mod include_vars;
pub mod k8s;
mod linux;
mod posix;
pub mod reboot_wait;
pub mod source;
mod url;
pub mod wait;
mod wait_conn;
pub mod windows;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub use crate::connection::ConnSlot;
use crate::connection::{
    Become, CommandOutput, CommandSpec, ConnError, Connection, OutputChunk, Transport,
};
use crate::template::{Templar, Vars};

pub type Args = Map<String, Value>;
/// A module's result, Ansible-shaped (`changed`, `msg`, `rc`, `stdout`, ...).
pub type Outcome = Map<String, Value>;

#[derive(Debug)]
pub enum ModError {
    /// The module failed; `result` carries what it had (rc, stdout, ...).
    Failed { msg: String, result: Outcome },
    /// The transport failed (unreachable host, broken connection, timeout).
    Conn(ConnError),
}

impl ModError {
    pub fn msg(msg: impl Into<String>) -> ModError {
        ModError::Failed {
            msg: msg.into(),
            result: Map::new(),
        }
    }
}

impl std::fmt::Display for ModError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModError::Failed { msg, .. } => f.write_str(msg),
            ModError::Conn(e) => e.fmt(f),
        }
    }
}

impl From<ConnError> for ModError {
    fn from(e: ConnError) -> Self {
        ModError::Conn(e)
    }
}

pub type ModResult = Result<Outcome, ModError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Str,
    Bool,
    Int,
    Float,
    List,
    Dict,
    Any,
}

impl ParamType {
    fn describe(self) -> &'static str {
        match self {
            ParamType::Str => "a string",
            ParamType::Bool => "a boolean",
            ParamType::Int => "an integer",
            ParamType::Float => "a number",
            ParamType::List => "a list",
            ParamType::Dict => "a mapping",
            ParamType::Any => "any value",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub aliases: &'static [&'static str],
    pub choices: &'static [&'static str],
}

pub const fn p(name: &'static str, ty: ParamType) -> Param {
    Param {
        name,
        ty,
        required: false,
        aliases: &[],
        choices: &[],
    }
}
pub const fn req(name: &'static str, ty: ParamType) -> Param {
    Param {
        required: true,
        ..p(name, ty)
    }
}
pub const fn choice(name: &'static str, choices: &'static [&'static str]) -> Param {
    Param {
        choices,
        ..p(name, ParamType::Str)
    }
}
pub const fn alias(param: Param, aliases: &'static [&'static str]) -> Param {
    Param { aliases, ..param }
}

/// How a module accepts a string instead of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeForm {
    /// Only mappings (or `k=v` strings).
    No,
    /// `command: ls -l chdir=/tmp`: the text goes to `cmd`; `chdir=`/`creates=`/`removes=` words
    /// are parameters.
    Command,
    /// `debug: msg=hi` / `copy: src=a dest=b`.
    KeyValue,
}

/// What a module targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// POSIX shell hosts (ssh, local).
    Posix,
    /// Windows hosts (winrm): PowerShell modules.
    Windows,
    /// Either family (`raw`, `setup`).
    Any,
    /// Runs on the controller without touching the target (debug, set_fact, k8s, ...).
    Controller,
}

impl ModuleDef {
    pub fn controller_only(&self) -> bool {
        self.target == Target::Controller
    }

    /// The one message for a module used on the wrong family of host, or `None` when it fits.
    pub fn refuses(&self, transport: Transport) -> Option<String> {
        let windows = transport == Transport::Winrm;
        match self.target {
            Target::Posix if windows => Some(match counterpart(self.name) {
                Some(w) => format!(
                    "`{}` works on POSIX hosts only; this host uses winrm: use `{w}` for Windows hosts",
                    self.name
                ),
                None => format!(
                    "`{}` works on POSIX hosts only; this host uses winrm",
                    self.name
                ),
            }),
            Target::Windows if !windows => Some(format!(
                "`{}` runs on Windows hosts (ansible_connection: winrm); this host uses {}",
                self.name,
                transport.as_str()
            )),
            _ => None,
        }
    }
}

/// The Windows module that does what a POSIX one does, for hints.
fn counterpart(posix: &str) -> Option<&'static str> {
    Some(match posix {
        "command" => "win_command",
        "shell" => "win_shell",
        "copy" => "win_copy",
        "template" => "win_template",
        "file" => "win_file",
        "stat" => "win_stat",
        "slurp" => "slurp (not yet on Windows)",
        "fetch" => "fetch (not yet on Windows)",
        "lineinfile" => "win_lineinfile (not yet available)",
        "get_url" => "win_get_url",
        "unarchive" => "win_unarchive",
        "reboot" => "win_reboot",
        "service" | "systemd" | "systemd_service" => "win_service",
        "wait_for" => "win_wait_for",
        "ping" => "win_ping",
        _ => return None,
    })
}

pub struct ModuleDef {
    pub name: &'static str,
    /// The FQCN namespaces it also answers to (`ansible.builtin`, `ansible.windows`, ...).
    pub namespaces: &'static [&'static str],
    pub params: &'static [Param],
    pub free_form: FreeForm,
    /// Accept any arguments (set_fact).
    pub open_args: bool,
    /// What the module runs against; the engine refuses a mismatch before running it.
    pub target: Target,
    pub mutually_exclusive: &'static [&'static [&'static str]],
    pub required_one_of: &'static [&'static [&'static str]],
}

/// What a module can use while it runs on one host.
pub struct ModuleCtx<'a> {
    pub host: &'a str,
    pub conn: &'a ConnSlot,
    pub check_mode: bool,
    pub diff: bool,
    pub templar: &'a Templar,
    pub vars: &'a Vars,
    /// Where relative `src` paths are looked up: the task file's directory and the playbook's,
    /// with their `files/` and `templates/` subfolders.
    pub search_dirs: &'a [PathBuf],
    pub become_: Option<Become>,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// Where the user's command streams its output while it runs (set at `-v` and above,
    /// never under `no_log`). Only modules that run the user's own command use it
    /// (`exec_live`, `exec_program`); the scripts modules run for themselves do not.
    pub output: Option<mpsc::UnboundedSender<OutputChunk>>,
    /// The task as error messages name it: `task 'NAME' at FILE:LINE`.
    pub task: String,
}

impl ModuleCtx<'_> {
    pub async fn connection(&self) -> Result<Arc<dyn Connection>, ConnError> {
        self.conn.get().await
    }

    pub async fn transport(&self) -> Transport {
        self.conn.transport
    }

    /// Runs a command with the task's become, environment and timeout.
    pub async fn exec(
        &self,
        cmd: impl Into<String>,
        stdin: Option<Vec<u8>>,
    ) -> Result<CommandOutput, ConnError> {
        self.exec_with(cmd.into(), stdin, None).await
    }

    /// `exec` for the user's own command: its output also streams live (see `output`).
    pub async fn exec_live(
        &self,
        cmd: impl Into<String>,
        stdin: Option<Vec<u8>>,
    ) -> Result<CommandOutput, ConnError> {
        self.exec_with(cmd.into(), stdin, self.output.clone()).await
    }

    async fn exec_with(
        &self,
        cmd: String,
        stdin: Option<Vec<u8>>,
        output: Option<mpsc::UnboundedSender<OutputChunk>>,
    ) -> Result<CommandOutput, ConnError> {
        let spec = self.command(cmd, stdin, output);
        self.connection().await?.exec(spec).await
    }

    /// The one place a module's command gets the task's become, environment and timeout.
    fn command(
        &self,
        cmd: String,
        stdin: Option<Vec<u8>>,
        output: Option<mpsc::UnboundedSender<OutputChunk>>,
    ) -> CommandSpec {
        CommandSpec {
            cmd,
            stdin,
            env: self.env.clone(),
            timeout: self.timeout,
            become_: self.become_.clone(),
            output,
        }
    }

    /// Starts a Windows program without cmd.exe (see `Connection::exec_program`), with the
    /// task's environment, timeout and output streaming; `cwd` is its working directory.
    pub async fn exec_program(
        &self,
        cmdline: impl Into<String>,
        stdin: Option<Vec<u8>>,
        cwd: Option<&str>,
    ) -> Result<CommandOutput, ConnError> {
        let spec = self.command(cmdline.into(), stdin, self.output.clone());
        self.connection().await?.exec_program(spec, cwd).await
    }

    /// Finds a controller-side file given relative to the playbook (`files/`, `templates/`).
    pub fn find_local(&self, name: &str, subdir: &str) -> Result<PathBuf, ModError> {
        let path = Path::new(name);
        if path.is_absolute() {
            return if path.exists() {
                Ok(path.to_path_buf())
            } else {
                Err(ModError::msg(format!("could not find `{name}`")))
            };
        }
        let mut tried = Vec::new();
        for dir in self.search_dirs {
            for cand in [dir.join(subdir).join(path), dir.join(path)] {
                if cand.exists() {
                    return Ok(cand);
                }
                tried.push(cand.display().to_string());
            }
        }
        Err(ModError::msg(format!(
            "could not find `{name}` (looked in: {})",
            tried.join(", ")
        )))
    }
}

#[async_trait]
pub trait Module: Send + Sync {
    fn def(&self) -> &'static ModuleDef;
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult;
}

static REGISTRY: LazyLock<HashMap<&'static str, &'static dyn Module>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for m in builtin::MODULES
        .iter()
        .chain(files::MODULES.iter())
        .chain(windows::MODULES.iter())
        .chain(linux::MODULES.iter())
        .chain(k8s::MODULES.iter())
        .chain(ENGINE_MODULES.iter())
    {
        map.insert(m.def().name, *m);
    }
    map
});

/// Modules that change the run itself or talk to services (inventory changes, waiting for a
/// host, HTTP, git, text replacement).
static ENGINE_MODULES: &[&dyn Module] = &[
    &dyninv::AddHost,
    &dyninv::GroupBy,
    &wait_conn::WaitForConnection,
];

/// Resolves a task's module name (`copy`, `ansible.builtin.copy`, `ansible.legacy.copy`).
pub fn lookup(name: &str) -> Option<&'static dyn Module> {
    if let Some(m) = REGISTRY.get(name) {
        return Some(*m);
    }
    let (ns, short) = name.rsplit_once('.')?;
    let m = REGISTRY.get(short)?;
    (ns == "ansible.legacy" || m.def().namespaces.contains(&ns)).then_some(*m)
}

/// Every module name mixop knows, for "did you mean" hints and the README.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<_> = REGISTRY.keys().copied().collect();
    v.sort_unstable();
    v
}

/// Splits Ansible `k=v` text (`src=a dest="b c"`) into pairs; words without `=` are returned as
/// free text in order, as written.
pub fn split_kv(text: &str) -> (Vec<(String, String)>, String) {
    let mut pairs = Vec::new();
    let mut free = Vec::new();
    for (raw, cooked) in split_words(text) {
        match cooked.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                pairs.push((k.to_string(), v.to_string()));
            }
            _ => free.push(raw),
        }
    }
    (pairs, free.join(" "))
}

/// Splits on whitespace outside quotes and Jinja blocks, keeping quotes (for free-form command
/// text).
pub(crate) fn split_raw_words(text: &str) -> Vec<String> {
    split_words(text).into_iter().map(|(raw, _)| raw).collect()
}

/// Ansible's `split_args`: words separated by whitespace outside quotes and outside Jinja blocks
/// (`{{ }}`, `{% %}`, `{# #}`, so `src={{ item }}` is one word), each as written and "cooked":
/// quotes and backslash escapes outside Jinja removed as `sh` would, Jinja kept verbatim.
fn split_words(text: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut raw, mut cooked) = (String::new(), String::new());
    let mut quote: Option<char> = None;
    // The character that, followed by `}`, closes the open Jinja block.
    let mut jinja: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let mut take = 1;
        if let Some(close) = jinja {
            raw.push(c);
            cooked.push(c);
            if c == close && next == Some('}') {
                raw.push('}');
                cooked.push('}');
                jinja = None;
                take = 2;
            }
        } else if c == '{' && matches!(next, Some('{' | '%' | '#')) {
            let open = next.unwrap_or('{');
            jinja = Some(if open == '{' { '}' } else { open });
            raw.extend([c, open]);
            cooked.extend([c, open]);
            take = 2;
        } else if let Some(q) = quote {
            raw.push(c);
            if c == q {
                quote = None;
            } else if q == '"' && c == '\\' && matches!(next, Some('"' | '\\' | '$' | '`')) {
                raw.push(next.unwrap_or_default());
                cooked.push(next.unwrap_or_default());
                take = 2;
            } else {
                cooked.push(c);
            }
        } else if c.is_whitespace() {
            if !raw.is_empty() {
                out.push((std::mem::take(&mut raw), std::mem::take(&mut cooked)));
            }
        } else if c == '\'' || c == '"' {
            quote = Some(c);
            raw.push(c);
        } else if c == '\\' && next.is_some() {
            raw.extend([c, next.unwrap_or_default()]);
            cooked.push(next.unwrap_or_default());
            take = 2;
        } else {
            raw.push(c);
            cooked.push(c);
        }
        i += take;
    }
    if !raw.is_empty() {
        out.push((raw, cooked));
    }
    out
}

/// Turns the value written after a module name into an argument mapping.
pub fn args_from_value(def: &ModuleDef, v: &Value) -> Result<Args, String> {
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m.clone()),
        Value::String(s) => match def.free_form {
            FreeForm::Command => {
                let (pairs, free) = split_kv(s);
                let mut m = Map::new();
                let mut rest = Vec::new();
                for (k, val) in pairs {
                    if def.params.iter().any(|p| p.name == k) && k != "cmd" {
                        m.insert(k, Value::String(val));
                    } else {
                        rest.push(format!("{k}={val}"));
                    }
                }
                let mut cmd = free;
                if !rest.is_empty() {
                    cmd = format!("{cmd} {}", rest.join(" ")).trim().to_string();
                }
                // Keep the free text exactly as written when no parameters were split off.
                if m.is_empty() {
                    cmd = s.trim().to_string();
                }
                m.insert("_raw_params".into(), Value::String(cmd));
                Ok(m)
            }
            FreeForm::KeyValue | FreeForm::No => {
                let (pairs, free) = split_kv(s);
                if !free.trim().is_empty() {
                    return Err(format!(
                        "`{}` takes `key=value` arguments; cannot understand `{}`",
                        def.name,
                        free.trim()
                    ));
                }
                Ok(pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect())
            }
        },
        other => Err(format!(
            "arguments of `{}` must be a mapping, found {}",
            def.name,
            match other {
                Value::Array(_) => "a list",
                Value::Bool(_) => "a boolean",
                _ => "a number",
            }
        )),
    }
}

/// What is wrong with a task's arguments: the module, the argument as written (when one is
/// to blame, so the loader can point at it) and what is wrong. `Display` is the message.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgError {
    pub module: &'static str,
    pub param: Option<String>,
    /// Boxed: errors are rare and `Result<_, ArgError>` stays small on the happy path.
    pub kind: Box<ArgErrorKind>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArgErrorKind {
    /// Free text given to a module that takes only `key=value` arguments.
    FreeForm,
    /// No such argument; `known` lists the module's, `suggestion` the closest.
    Unknown {
        known: Vec<&'static str>,
        suggestion: Option<&'static str>,
    },
    /// An argument the Ansible module has and mixop does not implement.
    NotImplemented,
    /// A required argument is missing (`param` is None: nothing to point at).
    Missing { name: &'static str },
    /// A value of the wrong type (`name` is the argument's canonical name).
    Type {
        name: &'static str,
        expected: &'static str,
        got: Value,
    },
    /// A value outside the argument's `choices`.
    Choice {
        name: &'static str,
        choices: &'static [&'static str],
        got: String,
    },
    /// Arguments that cannot be given together.
    MutuallyExclusive { present: Vec<&'static str> },
    /// None of a group of which one is needed.
    OneOf { group: &'static [&'static str] },
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.module;
        let ticked = |names: &[&str], sep: &str| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(sep)
        };
        match &*self.kind {
            ArgErrorKind::FreeForm => write!(f, "`{m}` does not take free-form text"),
            ArgErrorKind::Unknown { known, suggestion } => {
                let k = self.param.as_deref().unwrap_or_default();
                write!(f, "`{m}` has no argument `{k}`")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean `{s}`?)")?;
                }
                write!(f, "; it takes: {}", known.join(", "))
            }
            ArgErrorKind::NotImplemented => {
                let k = self.param.as_deref().unwrap_or_default();
                write!(
                    f,
                    "`{m}`: argument `{k}` exists in Ansible's module but mixop does not implement it"
                )
            }
            ArgErrorKind::Missing { name } => write!(f, "`{m}` needs the argument `{name}`"),
            ArgErrorKind::Type {
                name,
                expected,
                got,
            } => write!(f, "`{m}`: argument `{name}` must be {expected}, got {got}"),
            ArgErrorKind::Choice { name, choices, got } => write!(
                f,
                "`{m}`: argument `{name}` must be one of {}, got `{got}`",
                choices.join(", ")
            ),
            ArgErrorKind::MutuallyExclusive { present } => write!(
                f,
                "`{m}`: the arguments {} are mutually exclusive",
                ticked(present, " and ")
            ),
            ArgErrorKind::OneOf { group } => {
                write!(f, "`{m}` needs one of: {}", ticked(group, ", "))
            }
        }
    }
}

/// Checks arguments before templating: unknown names, missing required ones, literal values of
/// the wrong type or outside `choices`. Values that contain templates are checked at run time.
pub fn validate_args(def: &ModuleDef, args: &Args) -> Result<(), ArgError> {
    if def.open_args {
        return Ok(());
    }
    let err = |param: Option<&str>, kind| ArgError {
        module: def.name,
        param: param.map(str::to_string),
        kind: Box::new(kind),
    };
    for (k, v) in args {
        if k == "_raw_params" {
            if def.free_form != FreeForm::Command {
                return Err(err(None, ArgErrorKind::FreeForm));
            }
            continue;
        }
        let Some(param) = find_param(def, k) else {
            if not_implemented(def, k) {
                return Err(err(Some(k), ArgErrorKind::NotImplemented));
            }
            let known: Vec<&'static str> = def.params.iter().map(|p| p.name).collect();
            let suggestion = did_you_mean(k, &known);
            return Err(err(Some(k), ArgErrorKind::Unknown { known, suggestion }));
        };
        if !contains_template(v) {
            coerce(param, v.clone()).map_err(|kind| err(Some(k), kind))?;
        }
    }
    // Whether an argument was given, by its name or one of its aliases.
    let given = |name: &str| {
        args.contains_key(name)
            || find_param(def, name)
                .is_some_and(|p| p.aliases.iter().any(|a| args.contains_key(*a)))
            || (name == "cmd" && args.contains_key("_raw_params"))
    };
    for param in def.params.iter().filter(|p| p.required) {
        if !given(param.name) {
            return Err(err(None, ArgErrorKind::Missing { name: param.name }));
        }
    }
    for group in def.mutually_exclusive {
        let present: Vec<&'static str> = group.iter().copied().filter(|n| given(n)).collect();
        if present.len() > 1 {
            // Point at the first of them as written.
            let first = args
                .keys()
                .find(|k| find_param(def, k).is_some_and(|p| present.contains(&p.name)));
            return Err(err(
                first.map(String::as_str),
                ArgErrorKind::MutuallyExclusive { present },
            ));
        }
    }
    for group in def.required_one_of {
        if !group.iter().any(|n| given(n)) {
            return Err(err(None, ArgErrorKind::OneOf { group }));
        }
    }
    Ok(())
}

/// After templating: resolves aliases, drops `omit`, coerces types, checks everything again.
pub fn normalize_args(def: &ModuleDef, mut args: Args) -> Result<Args, ArgError> {
    args.retain(|_, v| v.as_str() != Some(crate::template::OMIT));
    if def.open_args {
        return Ok(args);
    }
    if let Some(raw) = args.remove("_raw_params") {
        args.entry("cmd").or_insert(raw);
    }
    let mut out = Map::new();
    for (k, v) in args {
        let err = |kind| ArgError {
            module: def.name,
            param: Some(k.clone()),
            kind: Box::new(kind),
        };
        let Some(param) = find_param(def, &k) else {
            if not_implemented(def, &k) {
                return Err(err(ArgErrorKind::NotImplemented));
            }
            let known: Vec<&'static str> = def.params.iter().map(|p| p.name).collect();
            let suggestion = did_you_mean(&k, &known);
            return Err(err(ArgErrorKind::Unknown { known, suggestion }));
        };
        let v = coerce(param, v).map_err(err)?;
        out.insert(param.name.to_string(), v);
    }
    validate_args(def, &out)?;
    Ok(out)
}

/// Arguments of Ansible's modules that mixop knows of but does not implement: refused with
/// that reason rather than as unknown.
const NOT_IMPLEMENTED: &[(&str, &[&str])] = &[
    ("dnf", linux::DNF_NOT_IMPLEMENTED),
    ("yum", linux::DNF_NOT_IMPLEMENTED),
];

fn not_implemented(def: &ModuleDef, name: &str) -> bool {
    NOT_IMPLEMENTED
        .iter()
        .any(|(m, params)| *m == def.name && params.contains(&name))
}

fn find_param<'d>(def: &'d ModuleDef, name: &str) -> Option<&'d Param> {
    def.params
        .iter()
        .find(|p| p.name == name || p.aliases.contains(&name))
}

fn contains_template(v: &Value) -> bool {
    match v {
        Value::String(s) => crate::template::is_template(s),
        Value::Array(a) => a.iter().any(contains_template),
        Value::Object(m) => m.values().any(contains_template),
        _ => false,
    }
}

fn coerce(param: &Param, v: Value) -> Result<Value, ArgErrorKind> {
    let bad = |v: &Value| ArgErrorKind::Type {
        name: param.name,
        expected: param.ty.describe(),
        got: v.clone(),
    };
    if v.is_null() && !param.required {
        return Ok(v);
    }
    let v = match param.ty {
        ParamType::Any => v,
        // Like Ansible's str conversion: `True`, not `true`; structures as JSON (what `copy`
        // does with a mapping as `content`).
        ParamType::Str => match v {
            Value::String(_) => v,
            Value::Null => return Err(bad(&v)),
            other => Value::String(crate::value::arg_text(&other)),
        },
        ParamType::Bool => match crate::value::as_bool(&v) {
            Some(b) if !matches!(v, Value::Null) => Value::Bool(b),
            _ => return Err(bad(&v)),
        },
        ParamType::Int => match &v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v,
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad(&v))?,
            _ => return Err(bad(&v)),
        },
        ParamType::Float => match &v {
            Value::Number(_) => v,
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| bad(&v))?,
            _ => return Err(bad(&v)),
        },
        ParamType::List => match v {
            Value::Array(_) => v,
            Value::String(s) => Value::Array(
                s.split(',')
                    .map(|x| Value::String(x.trim().to_string()))
                    .filter(|x| x.as_str() != Some(""))
                    .collect(),
            ),
            // Ansible's check_type_list: one number (or boolean, a Python int) is a list of
            // its text.
            Value::Number(_) | Value::Bool(_) => {
                Value::Array(vec![Value::String(crate::value::arg_text(&v))])
            }
            _ => return Err(bad(&v)),
        },
        ParamType::Dict => match v {
            Value::Object(_) => v,
            _ => return Err(bad(&v)),
        },
    };
    if !param.choices.is_empty()
        && let Some(s) = v.as_str()
        && !param.choices.contains(&s)
    {
        return Err(ArgErrorKind::Choice {
            name: param.name,
            choices: param.choices,
            got: s.to_string(),
        });
    }
    Ok(v)
}

/// Parses a file mode like Ansible: strings are octal (`"0644"`, `"644"`), numbers are taken as
/// the mode's value (so an unquoted YAML `0644` — the number 420 — is right, and `644` is not).
pub fn parse_mode(v: &Value) -> Result<u32, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .filter(|m| *m <= 0o7777)
            .map(|m| m as u32)
            .ok_or_else(|| format!("invalid mode {n}")),
        Value::String(s) => {
            let t = s.trim().trim_start_matches("0o");
            u32::from_str_radix(t, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("invalid mode `{s}` (use an octal string such as \"0644\"; symbolic modes are not supported)"))
        }
        other => Err(format!("invalid mode {other}")),
    }
}

/// The closest known name within a small edit distance.
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Helpers for building results.
pub fn outcome(changed: bool) -> Outcome {
    let mut m = Map::new();
    m.insert("changed".into(), Value::Bool(changed));
    m
}

/// A module's arguments as its typed struct, after `normalize_args` (canonical names, coerced
/// types): an argument given as null is absent, so the struct's defaults apply to it.
pub fn typed<T: serde::de::DeserializeOwned>(args: &Args) -> Result<T, ModError> {
    let given: Map<String, Value> = args
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Value::Object(given))
        .map_err(|e| ModError::msg(format!("invalid arguments: {e}")))
}

/// `true`, for `#[serde(default = "yes")]`.
pub fn yes() -> bool {
    true
}

pub fn arg_str<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

pub fn arg_bool(args: &Args, name: &str, default: bool) -> bool {
    args.get(name)
        .and_then(crate::value::as_bool)
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_splitting_keeps_quoted_values() {
        let (pairs, free) = split_kv(r#"src=a dest="b c" mode=0644"#);
        assert_eq!(pairs[1], ("dest".into(), "b c".into()));
        assert_eq!(free, "");
        let (pairs, free) = split_kv(r#"echo "a b" chdir=/tmp"#);
        assert_eq!(pairs, vec![("chdir".to_string(), "/tmp".to_string())]);
        assert_eq!(free, r#"echo "a b""#);
        // Jinja blocks are one word with their spaces and quotes, as in Ansible's split_args.
        let (pairs, free) = split_kv(r#"src={{ item }} dest="/etc/{{ 'a b' }}" mode=600"#);
        assert_eq!(
            pairs,
            vec![
                ("src".to_string(), "{{ item }}".to_string()),
                ("dest".to_string(), "/etc/{{ 'a b' }}".to_string()),
                ("mode".to_string(), "600".to_string()),
            ]
        );
        assert_eq!(free, "");
        let (pairs, free) = split_kv(r#"echo {%  if x %}y{% endif %} a\ b 'c d' chdir=/t"#);
        assert_eq!(pairs, vec![("chdir".to_string(), "/t".to_string())]);
        assert_eq!(free, r#"echo {%  if x %}y{% endif %} a\ b 'c d'"#);
        let cooked: Vec<String> = split_words(r#"a\ b "x\"y" 'p\q'"#)
            .into_iter()
            .map(|w| w.1)
            .collect();
        assert_eq!(cooked, ["a b", "x\"y", "p\\q"]);
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode(&Value::from("0644")), Ok(0o644));
        assert_eq!(parse_mode(&Value::from(420)), Ok(0o644));
        assert!(parse_mode(&Value::from("u+x")).is_err());
    }

    fn args(v: Value) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn argument_errors_name_the_argument_as_written() {
        let file = lookup("file").unwrap().def();
        let e = validate_args(
            file,
            &args(serde_json::json!({"dest": "/a", "force": "maybe"})),
        )
        .unwrap_err();
        // `dest` is an alias of `path`: the error points at `force` as written.
        assert_eq!(e.param.as_deref(), Some("force"));
        assert!(matches!(*e.kind, ArgErrorKind::Type { name: "force", .. }));
        assert_eq!(
            e.to_string(),
            "`file`: argument `force` must be a boolean, got \"maybe\""
        );
        let e = validate_args(file, &args(serde_json::json!({"pth": "/a"}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("pth"));
        assert!(
            e.to_string()
                .starts_with("`file` has no argument `pth` (did you mean `path`?)")
        );
        let e = validate_args(file, &args(serde_json::json!({"state": "gone"}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("state"));
        assert!(matches!(
            *e.kind,
            ArgErrorKind::Choice { name: "state", .. }
        ));
        let e = validate_args(file, &args(serde_json::json!({"mode": "0644"}))).unwrap_err();
        assert_eq!(e.param, None);
        assert_eq!(*e.kind, ArgErrorKind::Missing { name: "path" });
        assert_eq!(e.to_string(), "`file` needs the argument `path`");
        let copy = lookup("copy").unwrap().def();
        let e = validate_args(
            copy,
            &args(serde_json::json!({"dest": "/a", "content": "x", "src": "y"})),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("content"));
        assert_eq!(
            e.to_string(),
            "`copy`: the arguments `src` and `content` are mutually exclusive"
        );
        let e = validate_args(copy, &args(serde_json::json!({"dest": "/a"}))).unwrap_err();
        assert_eq!(e.to_string(), "`copy` needs one of: `src`, `content`");
    }

    #[test]
    fn aliases_count_for_required_one_of_and_mutually_exclusive() {
        let dnf = lookup("dnf").unwrap().def();
        validate_args(
            dnf,
            &args(serde_json::json!({"pkg": "a", "state": "present"})),
        )
        .unwrap();
        let copy = lookup("copy").unwrap().def();
        let e = validate_args(
            copy,
            &args(serde_json::json!({"dest": "/a", "content": "x", "src": "y"})),
        )
        .unwrap_err();
        assert!(matches!(*e.kind, ArgErrorKind::MutuallyExclusive { .. }));
    }

    #[test]
    fn a_scalar_for_a_list_argument_is_a_list_of_its_text_as_in_ansible() {
        let apt = lookup("apt").unwrap().def();
        let norm = |v: Value| normalize_args(apt, args(v)).unwrap()["name"].clone();
        assert_eq!(
            norm(serde_json::json!({"name": 7})),
            serde_json::json!(["7"])
        );
        assert_eq!(
            norm(serde_json::json!({"name": true})),
            serde_json::json!(["True"])
        );
        assert_eq!(
            norm(serde_json::json!({"name": "a,b"})),
            serde_json::json!(["a", "b"])
        );
        assert!(normalize_args(apt, args(serde_json::json!({"name": {"a": 1}}))).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("dset", &["dest", "src", "mode"]), Some("dest"));
        assert_eq!(did_you_mean("zzzzzz", &["dest", "src"]), None);
    }
}
