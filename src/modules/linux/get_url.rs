//! `get_url`: download a file **on the target** (with its `curl` or `wget`), as Ansible does.
//!
//! Round trip 1 reads the destination (type, attributes, checksums), finds the downloader, and
//! fetches a remote checksum file when `checksum` names one. Round trip 2, only when a download
//! is needed, fetches into a temporary file beside the destination, checks the HTTP status and
//! the checksum, and installs it with `files::remote`'s install script (mode/owner/group,
//! backup, atomic rename); identical content is dropped, so a re-download changes nothing.
//! Scripts travel on stdin and credentials go to the downloader through its config on stdin
//! (curl) or a private temporary rc file (wget), and the URL (which may hold `user:password@`)
//! through curl's config or wget's `-i -` on stdin: never on a command line, never in a result.

use crate::modules::Target;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::files::file_params;
use crate::modules::files::remote::{
    self, AttrChange, FileStat, Install, Kind, Probe, ProbeOpts, Staged,
};
use crate::modules::files::{AttrArgs, Wanted, add_path_info};
use crate::modules::posix::quote;
use crate::modules::url::{mask_url, normalize_hex, url_filename};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, alias, outcome, p,
    req, typed,
};

static GET_URL_DEF: ModuleDef = ModuleDef {
    name: "get_url",
    namespaces: BUILTIN,
    params: file_params![
        req("url", Str),
        req("dest", Str),
        p("checksum", Str),
        p("force", Bool),
        p("backup", Bool),
        p("timeout", Int),
        p("headers", Dict),
        alias(p("url_username", Str), &["username"]),
        alias(p("url_password", Str), &["password"]),
        p("force_basic_auth", Bool),
        p("validate_certs", Bool),
        p("http_agent", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct GetUrl;

/// `get_url`'s arguments (see `GET_URL_DEF`), with Ansible's defaults.
#[derive(Debug, serde::Deserialize)]
struct GetUrlArgs {
    url: String,
    dest: String,
    checksum: Option<String>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    backup: bool,
    /// Seconds; 0 or less means the default.
    #[serde(default = "default_timeout")]
    timeout: i64,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    url_username: Option<String>,
    url_password: Option<String>,
    #[serde(default = "crate::modules::yes")]
    validate_certs: bool,
    #[serde(default = "default_agent")]
    http_agent: String,
    #[serde(flatten)]
    attrs: AttrArgs,
}

fn default_timeout() -> i64 {
    10
}

fn default_agent() -> String {
    "ansible-httpget".into()
}

const ALGORITHMS: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

/// The `checksum` argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Checksum {
    /// `sha256:abc...` (normalized: lowercase hex).
    Value { alg: String, hex: String },
    /// `sha256:https://host/SHA256SUMS`: looked up by the file name in that file.
    Url { alg: String, url: String },
}

impl Checksum {
    pub fn parse(arg: &str) -> Result<Checksum, ModError> {
        let (alg, value) = arg.split_once(':').ok_or_else(|| {
            ModError::msg("The checksum parameter has to be in format <algorithm>:<checksum>")
        })?;
        let alg = alg.trim().to_ascii_lowercase();
        if !ALGORITHMS.contains(&alg.as_str()) {
            return Err(ModError::msg(format!(
                "unsupported checksum algorithm `{alg}` (use one of {})",
                ALGORITHMS.join(", ")
            )));
        }
        let value = value.trim();
        if ["http://", "https://", "ftp://", "file://"]
            .iter()
            .any(|s| value.starts_with(s))
        {
            return Ok(Checksum::Url {
                alg,
                url: value.to_string(),
            });
        }
        Ok(Checksum::Value {
            hex: normalize_hex(value)?,
            alg,
        })
    }
    fn alg(&self) -> &str {
        match self {
            Checksum::Value { alg, .. } | Checksum::Url { alg, .. } => alg,
        }
    }
}

/// Finds `filename`'s digest in a checksum file (GNU `HASH  name` / `HASH *name`, BSD
/// `ALG (name) = HASH`, or a file holding just one hash).
pub fn digest_for(filename: &str, text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let nonempty: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if nonempty.len() == 1 && nonempty[0].split_whitespace().count() == 1 {
        return Some(nonempty[0].trim().to_string());
    }
    let same = |path: &str| {
        let path = path.trim_start_matches("./");
        path == filename || path.rsplit('/').next() == Some(filename)
    };
    for line in lines {
        // BSD: `SHA256 (name) = hash`
        if let Some((head, digest)) = line.rsplit_once(") = ")
            && let Some((_, path)) = head.split_once(" (")
        {
            if same(path) {
                return Some(digest.trim().to_string());
            }
            continue;
        }
        // GNU: `hash  name` or `hash *name`
        if let Some((digest, rest)) = line.split_once(' ') {
            let path = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'));
            if let Some(path) = path
                && same(path)
                && !digest.is_empty()
            {
                return Some(digest.to_string());
            }
        }
    }
    None
}

/// How to call the downloader.
struct Fetch {
    timeout: u64,
    validate_certs: bool,
    headers: Vec<(String, String)>,
    user: Option<String>,
    password: Option<String>,
    agent: String,
}

/// A double-quoted value for curl's config file.
fn curl_q(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Fetch {
    /// curl's config (`-K -`) for one URL: everything secret or user-given is here.
    fn curl_config(&self, url: &str) -> String {
        let mut c = format!("url = {}\n", curl_q(url));
        c.push_str(&format!("user-agent = {}\n", curl_q(&self.agent)));
        if let Some(u) = &self.user {
            let up = format!("{u}:{}", self.password.as_deref().unwrap_or(""));
            c.push_str(&format!("user = {}\n", curl_q(&up)));
        }
        for (k, v) in &self.headers {
            c.push_str(&format!("header = {}\n", curl_q(&format!("{k}: {v}"))));
        }
        c
    }
    /// wget's rc file (`WGETRC`): credentials and headers.
    fn wgetrc(&self) -> String {
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        let mut c = format!("user_agent = {}\n", one_line(&self.agent));
        if let Some(u) = &self.user {
            c.push_str(&format!("user = {}\n", one_line(u)));
            c.push_str(&format!(
                "password = {}\n",
                one_line(self.password.as_deref().unwrap_or(""))
            ));
            c.push_str("auth_no_challenge = on\n");
        }
        for (k, v) in &self.headers {
            c.push_str(&format!("header = {}: {}\n", one_line(k), one_line(v)));
        }
        if !self.validate_certs {
            c.push_str("check_certificate = off\n");
        }
        c
    }
    /// Shell variables for `DL_FN`.
    fn vars(&self, url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("gu_cfg", quote(&self.curl_config(url))),
            ("gu_wrc", quote(&self.wgetrc())),
            ("gu_url", quote(url)),
            ("gu_to", self.timeout.to_string()),
            (
                "gu_k",
                if self.validate_certs {
                    String::new()
                } else {
                    "-k".into()
                },
            ),
        ]
    }
}

/// `_gu_tool` picks curl or wget; `_gu_dl OUT` downloads `$gu_url` into OUT and sets `gu_code`
/// (HTTP status, `000` when there was none) and `gu_msg` (the downloader's complaint).
const DL_FN: &str = r#"
_gu_tool() { if command -v curl >/dev/null 2>&1; then gu_tool=curl; elif command -v wget >/dev/null 2>&1; then gu_tool=wget; else gu_tool=; fi; }
_gu_dl() {
  gu_e=$(mktemp) || return 1
  if [ "$gu_tool" = curl ]; then
    gu_code=$(printf '%s' "$gu_cfg" | curl -sS -L $gu_k -K - -o "$1" -w '%{http_code}' --connect-timeout "$gu_to" --speed-limit 1 --speed-time "$gu_to" 2>"$gu_e"); gu_rc=$?
  else
    gu_r=$(umask 077 && mktemp) && printf '%s' "$gu_wrc" > "$gu_r"
    # The URL (which may carry user:password@) goes on stdin (-i -), never on the command line.
    printf '%s\n' "$gu_url" | WGETRC=$gu_r wget -S -O "$1" -T "$gu_to" -t 1 -i - 2>"$gu_e"; gu_rc=$?
    rm -f -- "$gu_r"
    gu_code=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$gu_e" | tail -n 1)
    [ -n "$gu_code" ] || gu_code=000
  fi
  gu_msg=$(grep -v '^ ' "$gu_e" | grep -iv '^--\|^resolving\|^connecting\|^http request\|^length\|^saving\|^$' | tail -n 3 | tr '\n' ' ')
  rm -f -- "$gu_e"
  return $gu_rc
}
"#;

/// Round trip 1: what is at dest, which downloader exists, and the checksum file if any.
const PROBE_SUFFIX: &str = r#"
_gu_tool
printf 'tool=%s\n' "$gu_tool"
if [ -f "$p" ] && [ -r "$p" ]; then printf 'sha1=%s\n' "$(sha1sum < "$p" | cut -d' ' -f1)"; fi
if [ -n "$gu_curl" ] && [ -n "$gu_tool" ]; then
  gu_t=$(mktemp) || { _err "cannot create a temporary file"; exit 0; }
  if _gu_dl "$gu_t" && case $gu_code in 2*|000) true ;; *) false ;; esac; then
    echo '::data::'; cat -- "$gu_t"; rm -f -- "$gu_t"
  else
    rm -f -- "$gu_t"; printf 'sum_error=%s (HTTP status %s)\n' "$gu_msg" "$gu_code"
  fi
fi
"#;

/// Round trip 2, before the install script: download to `$tmp`, check status and checksum,
/// drop it when the content is what dest already has.
const DOWNLOAD_BODY: &str = r#"
trap 'rm -f -- "$tmp"' HUP INT TERM
_gu_tool
[ -n "$gu_tool" ] || { _err "get_url needs curl or wget on the target; neither was found in PATH"; exit 0; }
if ! ( umask 077 && : > "$tmp" ) 2>/dev/null; then _err "Destination $(dirname -- "$dest") is not writable"; exit 0; fi
_gu_dl "$tmp"; rc=$?
printf 'status_code=%s\n' "$gu_code"
case $gu_code in
  2*) ;;
  000) if [ $rc -ne 0 ]; then rm -f -- "$tmp"; _err "Request failed: $gu_msg"; exit 0; fi ;;
  *) rm -f -- "$tmp"; printf 'response=HTTP Error %s\n' "$gu_code"; _err "Request failed"; exit 0 ;;
esac
if [ $rc -ne 0 ]; then rm -f -- "$tmp"; _err "Request failed: $gu_msg"; exit 0; fi
printf 'size=%s\n' "$(stat -c %s -- "$tmp")"
printf 'checksum_src=%s\n' "$(sha1sum < "$tmp" | cut -d' ' -f1)"
if [ -n "$gu_want" ]; then
  got=$("${gu_alg}sum" < "$tmp" | cut -d' ' -f1)
  if [ "$got" != "$gu_want" ]; then
    rm -f -- "$tmp"; _err "The checksum for $gu_shown did not match $gu_want; it was $got."; exit 0
  fi
fi
if [ -f "$dest" ]; then
  printf 'checksum_dest=%s\n' "$(sha1sum < "$dest" | cut -d' ' -f1)"
  if cmp -s -- "$tmp" "$dest"; then rm -f -- "$tmp"; echo same=1; exit 0; fi
fi
"#;

/// The request, from checked arguments: everything decided before the target is asked.
struct Request {
    url: String,
    shown_url: String,
    dest: String,
    /// The file name taken from the URL (used when `dest` is a directory).
    name: String,
    checksum: Option<Checksum>,
    force: bool,
    backup: bool,
    wanted: Wanted,
    fetch: Fetch,
}

impl Request {
    fn new(a: GetUrlArgs) -> Result<Request, ModError> {
        if a.url.is_empty() || a.dest.is_empty() {
            return Err(ModError::msg("get_url needs `url` and `dest`"));
        }
        if a.url.contains(['\n', '\r']) {
            return Err(ModError::msg("`url` must be a single line"));
        }
        let checksum = match a.checksum.as_deref().filter(|s| !s.is_empty()) {
            Some(c) => Some(Checksum::parse(c)?),
            None => None,
        };
        let fetch = Fetch {
            timeout: u64::try_from(a.timeout)
                .ok()
                .filter(|t| *t > 0)
                .unwrap_or(default_timeout() as u64),
            validate_certs: a.validate_certs,
            headers: a
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), crate::value::to_text(v)))
                .collect(),
            user: a.url_username.filter(|s| !s.is_empty()),
            password: a.url_password,
            agent: a.http_agent,
        };
        Ok(Request {
            shown_url: mask_url(&a.url),
            name: url_filename(&a.url),
            url: a.url,
            dest: a.dest,
            checksum,
            force: a.force,
            backup: a.backup,
            wanted: Wanted::from_attrs(&a.attrs, false)?,
            fetch,
        })
    }

    fn alg(&self) -> Option<&str> {
        self.checksum.as_ref().map(Checksum::alg)
    }

    fn sum_url(&self) -> Option<&str> {
        match &self.checksum {
            Some(Checksum::Url { url, .. }) => Some(url),
            _ => None,
        }
    }
}

/// What round trip 1 found on the target.
#[derive(Debug, Default)]
struct Found {
    /// `dest` is a directory (the file is `dest/<name from the URL>`).
    is_dir: bool,
    /// `curl`, `wget`, or empty when the target has neither.
    tool: String,
    sha1_dest: Option<String>,
    /// The checksum file's download failed: why.
    sum_error: Option<String>,
    sum_text: Option<Vec<u8>>,
    probe: Probe,
}

/// Round trip 1: what is at dest, which downloader exists, and the checksum file if any.
async fn probe_dest(ctx: &ModuleCtx<'_>, req: &Request) -> Result<Found, ModError> {
    let mut vars = req.fetch.vars(req.sum_url().unwrap_or(""));
    let fetch_sum = if req.sum_url().is_some() { "1" } else { "" };
    vars.push(("gu_curl", fetch_sum.into()));
    vars.push(("gu_dest", remote::sh_path(&req.dest)));
    vars.push(("gu_name", quote(&req.name)));
    let mut script = String::new();
    for (k, v) in &vars {
        script.push_str(&format!("{k}={}\n", if v.is_empty() { "''" } else { v }));
    }
    script.push_str(DL_FN);
    script.push_str(
        "if [ -d \"$gu_dest\" ]; then echo is_dir=1; p=${gu_dest%/}/$gu_name; else p=$gu_dest; fi\n",
    );
    let opts = ProbeOpts {
        follow: true,
        checksum: req.alg().map(str::to_string),
        ..Default::default()
    };
    script.push_str(&remote::probe_script("\"$p\"".into(), &opts));
    script.push_str(PROBE_SUFFIX);
    let reply = remote::run_stdin(ctx, script).await?;
    Ok(Found {
        is_dir: reply.flag("is_dir"),
        tool: reply.get("tool").unwrap_or_default().to_string(),
        sha1_dest: reply.get("sha1").map(str::to_string),
        sum_error: reply.get("sum_error").map(str::to_string),
        sum_text: reply.data.clone(),
        probe: Probe::from_reply(remote::Reply {
            pairs: reply.pairs,
            data: None,
        })?,
    })
}

/// What to do about dest.
#[derive(Debug)]
enum Plan {
    /// dest already has the right content; only these attributes change (maybe none).
    Keep {
        msg: &'static str,
        stat: FileStat,
        attrs: AttrChange,
    },
    /// Check mode: whether a download would change dest.
    WouldDownload { changed: bool },
    /// Download, verify against `want_hex` (hex digest, if any) and install.
    Download {
        install: Install,
        want_hex: Option<String>,
    },
}

/// The expected digest: the `checksum` argument's, or the one found for our file in the
/// downloaded checksum file.
fn expected_digest(req: &Request, found: &Found) -> Result<Option<String>, ModError> {
    match &req.checksum {
        None => Ok(None),
        Some(Checksum::Value { hex, .. }) => Ok(Some(hex.clone())),
        Some(Checksum::Url { url, .. }) => {
            if found.tool.is_empty() {
                return Err(no_tool());
            }
            if let Some(e) = &found.sum_error {
                return Err(ModError::msg(format!(
                    "cannot download the checksum file {}: {e}",
                    mask_url(url)
                )));
            }
            let text = String::from_utf8_lossy(found.sum_text.as_deref().unwrap_or_default());
            let d = digest_for(&req.name, &text).ok_or_else(|| {
                ModError::msg(format!(
                    "Unable to find a checksum for file '{}' in '{}'",
                    req.name,
                    mask_url(url)
                ))
            })?;
            Ok(Some(normalize_hex(&d)?))
        }
    }
}

/// Decide from the request and what the target has. A pure function.
fn plan(req: &Request, found: &Found, check_mode: bool) -> Result<Plan, ModError> {
    let want_hex = expected_digest(req, found)?;
    let probe = &found.probe;
    let path = &probe.path;
    let current = probe.effective(true);
    if current.is_some_and(|s| s.kind() == Kind::Dir) {
        return Err(ModError::msg(format!(
            "{path} is a directory; cannot download over it"
        )));
    }
    if !probe.parent_exists {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
        return Err(ModError::msg(format!("Destination {dir} does not exist")));
    }
    let keep = match (current, &want_hex) {
        (None, _) => None,
        (Some(_), Some(h)) if !req.force => {
            (probe.checksum.as_deref() == Some(h.as_str())).then_some("file already exists")
        }
        (Some(_), None) if !req.force && !found.is_dir => Some("file already exists"),
        _ => None,
    };
    if let (Some(msg), Some(st)) = (keep, current) {
        return Ok(Plan::Keep {
            msg,
            stat: st.clone(),
            attrs: req.wanted.change_for(st, probe.umask)?,
        });
    }
    if check_mode {
        // A directory dest whose file exists can only be compared by downloading it.
        let changed = current.is_none() || req.force || want_hex.is_some();
        return Ok(Plan::WouldDownload { changed });
    }
    if found.tool.is_empty() {
        return Err(no_tool());
    }
    let attrs = req.wanted.for_new(
        current.map(|s| s.perm()).unwrap_or(0o666 & !probe.umask),
        probe.umask,
    )?;
    Ok(Plan::Download {
        install: Install {
            dest: path.clone(),
            tmp: remote::tmp_beside(path),
            staged: Staged::InPlace,
            base_mode: current.map(|s| s.perm()),
            keep_owner: current.map(|s| format!("{}:{}", s.uid, s.gid)),
            attrs,
            backup: req.backup,
            validate: None,
            make_parents: false,
            dir_mode: None,
        },
        want_hex,
    })
}

/// Round trip 2: download, verify, install; the result as Ansible reports it.
async fn download(
    ctx: &ModuleCtx<'_>,
    req: &Request,
    found: &Found,
    install: &Install,
    want_hex: Option<&str>,
    mut r: Outcome,
) -> ModResult {
    let mut vars = remote::install_vars(install);
    vars.extend(req.fetch.vars(&req.url));
    vars.push(("gu_want", want_hex.map(quote).unwrap_or_default()));
    vars.push(("gu_alg", quote(req.alg().unwrap_or("sha1"))));
    vars.push(("gu_shown", quote(&req.shown_url)));
    let body = format!("{DL_FN}{DOWNLOAD_BODY}{}", remote::INSTALL);
    let t0 = Instant::now();
    let reply = match remote::run_stdin(ctx, remote::script(&vars, &body)).await {
        Ok(reply) => reply,
        Err(ModError::Failed { msg, result }) => {
            r.remove("changed");
            r.extend(result);
            return Err(ModError::Failed { msg, result: r });
        }
        Err(e) => return Err(e),
    };
    r.insert("elapsed".into(), t0.elapsed().as_secs().into());
    for k in ["checksum_src", "checksum_dest"] {
        if let Some(v) = reply.get(k) {
            r.insert(k.into(), v.into());
        }
    }
    let code: Value = reply
        .get("status_code")
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| *c != 0)
        .map(Value::from)
        .unwrap_or(Value::Null);
    r.insert("status_code".into(), code);
    let size: u64 = reply.get("size").and_then(|s| s.parse().ok()).unwrap_or(0);
    r.insert("msg".into(), format!("OK ({size} bytes)").into());
    let path = &install.dest;
    if reply.flag("same") {
        // Same content: only attributes can change.
        if let Some(st) = found.probe.effective(true) {
            let ch = req.wanted.change_for(st, found.probe.umask)?;
            let st = if ch.is_empty() {
                st.clone()
            } else {
                r.insert("changed".into(), true.into());
                remote::apply_attrs(ctx, path, &ch, false).await?.0
            };
            add_path_info(&mut r, &st);
        }
        r.insert("size".into(), size.into());
        return Ok(r);
    }
    let st = reply
        .stat("lstat")?
        .ok_or_else(|| ModError::msg(format!("{path}: no status after writing it")))?;
    r.insert("changed".into(), true.into());
    if let Some(b) = reply.get("backup_file") {
        r.insert("backup_file".into(), b.into());
    }
    add_path_info(&mut r, &st);
    Ok(r)
}

#[async_trait]
impl Module for GetUrl {
    fn def(&self) -> &'static ModuleDef {
        &GET_URL_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let req = Request::new(typed(&args)?)?;
        let found = probe_dest(ctx, &req).await?;
        let mut r = outcome(false);
        r.insert("url".into(), req.shown_url.clone().into());
        r.insert("dest".into(), found.probe.path.clone().into());
        let sha1_dest = found.sha1_dest.clone().map(Value::String);
        r.insert("checksum_dest".into(), sha1_dest.unwrap_or(Value::Null));
        r.insert("checksum_src".into(), Value::Null);
        match plan(&req, &found, ctx.check_mode)? {
            Plan::Keep { msg, stat, attrs } => {
                let changed = !attrs.is_empty();
                let stat = if changed && !ctx.check_mode {
                    remote::apply_attrs(ctx, &found.probe.path, &attrs, false)
                        .await?
                        .0
                } else {
                    stat
                };
                let msg = if changed {
                    "file already exists but file attributes changed"
                } else {
                    msg
                };
                r.insert("changed".into(), changed.into());
                r.insert("msg".into(), msg.into());
                add_path_info(&mut r, &stat);
                Ok(r)
            }
            Plan::WouldDownload { changed } => {
                r.insert("changed".into(), changed.into());
                r.insert("msg".into(), "not downloaded in check mode".into());
                Ok(r)
            }
            Plan::Download { install, want_hex } => {
                download(ctx, &req, &found, &install, want_hex.as_deref(), r).await
            }
        }
    }
}

fn no_tool() -> ModError {
    ModError::Failed {
        msg: "get_url downloads on the target and needs curl or wget there; neither was found in PATH (install one, e.g. `apt-get install curl`)".into(),
        result: Outcome::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(yaml: &str) -> Request {
        let args: Args = serde_yaml_ng::from_str(yaml).unwrap();
        Request::new(typed(&args).unwrap()).unwrap()
    }

    fn found(file: Option<(u32, &str)>) -> Found {
        Found {
            tool: "curl".into(),
            probe: Probe {
                path: "/srv/app.tgz".into(),
                lstat: file.map(|(mode, _)| FileStat::for_test(0o100000 | mode, 1)),
                checksum: file.map(|(_, sum)| sum.to_string()),
                parent_exists: true,
                umask: 0o022,
                ..Probe::default()
            },
            ..Found::default()
        }
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced_or_its_checksum_differs() {
        let plain = request("{url: 'https://h/app.tgz', dest: /srv/app.tgz}");
        let there = found(Some((0o644, "aa")));
        assert!(matches!(
            plan(&plain, &there, false).unwrap(),
            Plan::Keep { msg: "file already exists", ref attrs, .. } if attrs.is_empty()
        ));
        let moded = request("{url: 'https://h/app.tgz', dest: /srv/app.tgz, mode: '0600'}");
        match plan(&moded, &there, false).unwrap() {
            Plan::Keep { attrs, .. } => assert_eq!(attrs.mode, Some(0o600)),
            other => panic!("{other:?}"),
        }
        let forced = request("{url: 'https://h/app.tgz', dest: /srv/app.tgz, force: true}");
        match plan(&forced, &there, false).unwrap() {
            Plan::Download { install, want_hex } => {
                assert_eq!(install.dest, "/srv/app.tgz");
                assert_eq!(install.base_mode, Some(0o644));
                assert_eq!(install.keep_owner.as_deref(), Some("0:0"));
                assert_eq!(want_hex, None);
            }
            other => panic!("{other:?}"),
        }
        let same_sum =
            request("{url: 'https://h/app.tgz', dest: /srv/app.tgz, checksum: 'sha256:AA'}");
        assert!(matches!(
            plan(&same_sum, &there, false).unwrap(),
            Plan::Keep { .. }
        ));
        let other_sum =
            request("{url: 'https://h/app.tgz', dest: /srv/app.tgz, checksum: 'sha256:bb'}");
        assert!(matches!(
            plan(&other_sum, &there, false).unwrap(),
            Plan::Download { want_hex: Some(ref h), .. } if h == "bb"
        ));
        assert!(matches!(
            plan(&other_sum, &there, true).unwrap(),
            Plan::WouldDownload { changed: true }
        ));
    }

    #[test]
    fn a_new_file_needs_a_downloader_and_an_existing_parent() {
        let req = request("{url: 'https://h/app.tgz', dest: /srv/app.tgz}");
        let mut none = found(None);
        assert!(matches!(
            plan(&req, &none, true).unwrap(),
            Plan::WouldDownload { changed: true }
        ));
        match plan(&req, &none, false).unwrap() {
            Plan::Download { install, .. } => {
                assert_eq!(install.base_mode, None);
                assert_eq!(install.attrs.mode, None);
            }
            other => panic!("{other:?}"),
        }
        none.tool.clear();
        let e = plan(&req, &none, false).unwrap_err().to_string();
        assert!(e.contains("needs curl or wget"), "{e}");
        none.probe.parent_exists = false;
        let e = plan(&req, &none, false).unwrap_err().to_string();
        assert_eq!(e, "Destination /srv does not exist");
        let mut dir = found(None);
        dir.probe.lstat = Some(FileStat::for_test(0o040755, 2));
        let e = plan(&req, &dir, false).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn a_checksum_url_is_looked_up_for_the_file_name() {
        let req = request(
            "{url: 'https://h/app.tgz', dest: /srv/app.tgz, checksum: 'sha256:https://h/SUMS'}",
        );
        let mut f = found(Some((0o644, "2222")));
        f.sum_text = Some(b"1111  other.tgz\n2222 *app.tgz\n".to_vec());
        assert!(matches!(plan(&req, &f, false).unwrap(), Plan::Keep { .. }));
        f.sum_text = Some(b"1111  other.tgz\n".to_vec());
        let e = plan(&req, &f, false).unwrap_err().to_string();
        assert!(
            e.contains("Unable to find a checksum for file 'app.tgz'"),
            "{e}"
        );
        f.sum_error = Some("404".into());
        let e = plan(&req, &f, false).unwrap_err().to_string();
        assert!(e.contains("cannot download the checksum file"), "{e}");
    }

    #[test]
    fn checksum_arguments() {
        assert_eq!(
            Checksum::parse("sha256:AB:cd-EF").unwrap(),
            Checksum::Value {
                alg: "sha256".into(),
                hex: "abcdef".into()
            }
        );
        assert_eq!(
            Checksum::parse("sha1:https://h/SUMS").unwrap(),
            Checksum::Url {
                alg: "sha1".into(),
                url: "https://h/SUMS".into()
            }
        );
        assert!(Checksum::parse("abcdef").is_err());
        assert!(Checksum::parse("sha256:xyz").is_err());
        assert!(Checksum::parse("crc32:abcd").is_err());
    }

    #[test]
    fn checksum_files() {
        let gnu = "1111  other.tgz\n2222 *app.tgz\n3333  ./sub/app.tgz\n";
        assert_eq!(digest_for("app.tgz", gnu).as_deref(), Some("2222"));
        assert_eq!(digest_for("other.tgz", gnu).as_deref(), Some("1111"));
        assert_eq!(digest_for("none.tgz", gnu), None);
        let bsd = "SHA256 (x.tar) = 4444\nSHA256 (app.tgz) = 5555\n";
        assert_eq!(digest_for("app.tgz", bsd).as_deref(), Some("5555"));
        assert_eq!(digest_for("app.tgz", "6666\n").as_deref(), Some("6666"));
    }

    #[test]
    fn url_names_and_masking() {
        assert_eq!(url_filename("http://h/a/b.tgz?x=1"), "b.tgz");
        assert_eq!(url_filename("http://h/"), "index.html");
        assert_eq!(url_filename("http://h"), "index.html");
        assert_eq!(url_filename("http://h/my%20file"), "my file");
        assert_eq!(mask_url("https://u:p@h:8/x@y"), "https://h:8/x@y");
        assert_eq!(mask_url("https://h/x"), "https://h/x");
    }

    #[test]
    fn secrets_stay_in_config_text() {
        let f = Fetch {
            timeout: 10,
            validate_certs: true,
            headers: vec![("X-A".into(), "b\"c".into())],
            user: Some("u".into()),
            password: Some("p\"w".into()),
            agent: "a".into(),
        };
        let c = f.curl_config("http://h/x");
        assert!(c.contains("user = \"u:p\\\"w\""), "{c}");
        assert!(c.contains("header = \"X-A: b\\\"c\""), "{c}");
        let vars = f.vars("http://h/x");
        // The shell words hold the secrets only inside quoted variable values.
        assert!(
            vars.iter()
                .any(|(k, v)| *k == "gu_cfg" && v.starts_with('\''))
        );
    }
}
