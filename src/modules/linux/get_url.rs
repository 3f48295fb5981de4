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
use crate::modules::files::remote::{self, Install, Kind, Probe, ProbeOpts, Staged};
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

#[async_trait]
impl Module for GetUrl {
    fn def(&self) -> &'static ModuleDef {
        &GET_URL_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: GetUrlArgs = typed(&args)?;
        let (url, dest) = (a.url.clone(), a.dest.clone());
        if url.is_empty() || dest.is_empty() {
            return Err(ModError::msg("get_url needs `url` and `dest`"));
        }
        if url.contains(['\n', '\r']) {
            return Err(ModError::msg("`url` must be a single line"));
        }
        let shown_url = mask_url(&url);
        let checksum = match a.checksum.as_deref().filter(|s| !s.is_empty()) {
            Some(c) => Some(Checksum::parse(c)?),
            None => None,
        };
        let force = a.force;
        let wanted = Wanted::from_attrs(&a.attrs, false)?;
        let headers = a
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), crate::value::to_text(v)))
            .collect();
        let fetch = Fetch {
            timeout: u64::try_from(a.timeout)
                .ok()
                .filter(|t| *t > 0)
                .unwrap_or(default_timeout() as u64),
            validate_certs: a.validate_certs,
            headers,
            user: a.url_username.clone().filter(|s| !s.is_empty()),
            password: a.url_password.clone(),
            agent: a.http_agent.clone(),
        };
        let name = url_filename(&url);
        let mut base = outcome(false);
        base.insert("url".into(), shown_url.clone().into());

        // Round trip 1.
        let sum_url = match &checksum {
            Some(Checksum::Url { url, .. }) => Some(url.clone()),
            _ => None,
        };
        let alg = checksum.as_ref().map(|c| c.alg().to_string());
        let mut vars = fetch.vars(sum_url.as_deref().unwrap_or(""));
        vars.push((
            "gu_curl",
            if sum_url.is_some() {
                "1".into()
            } else {
                String::new()
            },
        ));
        vars.push(("gu_dest", remote::sh_path(&dest)));
        vars.push(("gu_name", quote(&name)));
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
            checksum: alg.clone(),
            ..Default::default()
        };
        script.push_str(&remote::probe_script("\"$p\"".into(), &opts));
        script.push_str(PROBE_SUFFIX);
        let reply = remote::run_stdin(ctx, script).await?;
        let is_dir = reply.flag("is_dir");
        let tool = reply.get("tool").unwrap_or_default().to_string();
        let sha1_dest = reply.get("sha1").map(str::to_string);
        let sum_error = reply.get("sum_error").map(str::to_string);
        let sum_text = reply.data.clone();
        let probe = Probe::from_reply(remote::Reply {
            pairs: reply.pairs,
            data: None,
        })?;
        let path = probe.path.clone();
        base.insert("dest".into(), path.clone().into());

        let want_hex = match &checksum {
            None => None,
            Some(Checksum::Value { hex, .. }) => Some(hex.clone()),
            Some(Checksum::Url { url: su, .. }) => {
                if tool.is_empty() {
                    return Err(no_tool());
                }
                if let Some(e) = sum_error {
                    return Err(ModError::msg(format!(
                        "cannot download the checksum file {}: {e}",
                        mask_url(su)
                    )));
                }
                let text =
                    String::from_utf8_lossy(sum_text.as_deref().unwrap_or_default()).into_owned();
                let d = digest_for(&name, &text).ok_or_else(|| {
                    ModError::msg(format!(
                        "Unable to find a checksum for file '{name}' in '{}'",
                        mask_url(su)
                    ))
                })?;
                Some(normalize_hex(&d)?)
            }
        };

        let current = probe.effective(true).cloned();
        if current.as_ref().is_some_and(|s| s.kind() == Kind::Dir) {
            return Err(ModError::msg(format!(
                "{path} is a directory; cannot download over it"
            )));
        }
        if !probe.parent_exists {
            let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
            return Err(ModError::msg(format!("Destination {dir} does not exist")));
        }
        base.insert(
            "checksum_dest".into(),
            sha1_dest.clone().map(Value::String).unwrap_or(Value::Null),
        );
        base.insert("checksum_src".into(), Value::Null);

        // Is the file already right?
        let keep = match (&current, &want_hex) {
            (None, _) => None,
            (Some(_), Some(h)) if !force => {
                (probe.checksum.as_deref() == Some(h.as_str())).then_some("file already exists")
            }
            (Some(_), None) if !force && !is_dir => Some("file already exists"),
            _ => None,
        };
        if let (Some(msg), Some(st)) = (keep, &current) {
            let ch = wanted.change_for(st, probe.umask)?;
            let mut r = base;
            let changed = !ch.is_empty();
            let st = if changed && !ctx.check_mode {
                remote::apply_attrs(ctx, &path, &ch, false).await?.0
            } else {
                st.clone()
            };
            r.insert("changed".into(), changed.into());
            r.insert(
                "msg".into(),
                if changed {
                    "file already exists but file attributes changed"
                } else {
                    msg
                }
                .into(),
            );
            add_path_info(&mut r, &st);
            return Ok(r);
        }
        if ctx.check_mode {
            let mut r = base;
            // A directory dest whose file exists can only be compared by downloading it.
            r.insert(
                "changed".into(),
                (current.is_none() || force || want_hex.is_some()).into(),
            );
            r.insert("msg".into(), "not downloaded in check mode".into());
            return Ok(r);
        }
        if tool.is_empty() {
            return Err(no_tool());
        }

        // Round trip 2: download, verify, install.
        let tmp = remote::tmp_beside(&path);
        let attrs = wanted.for_new(
            current
                .as_ref()
                .map(|s| s.perm())
                .unwrap_or(0o666 & !probe.umask),
            probe.umask,
        )?;
        let install = Install {
            dest: path.clone(),
            tmp: tmp.clone(),
            staged: Staged::InPlace,
            base_mode: current.as_ref().map(|s| s.perm()),
            keep_owner: current.as_ref().map(|s| format!("{}:{}", s.uid, s.gid)),
            attrs,
            backup: a.backup,
            validate: None,
            make_parents: false,
            dir_mode: None,
        };
        let mut vars = remote::install_vars(&install);
        vars.extend(fetch.vars(&url));
        vars.push((
            "gu_want",
            want_hex.as_deref().map(quote).unwrap_or_default(),
        ));
        vars.push(("gu_alg", quote(alg.as_deref().unwrap_or("sha1"))));
        vars.push(("gu_shown", quote(&shown_url)));
        let body = format!("{DL_FN}{DOWNLOAD_BODY}{}", remote::INSTALL);
        let t0 = Instant::now();
        let reply = match remote::run_stdin(ctx, remote::script(&vars, &body)).await {
            Ok(r) => r,
            Err(ModError::Failed { msg, result }) => {
                let mut r = base;
                r.remove("changed");
                r.extend(result);
                return Err(ModError::Failed { msg, result: r });
            }
            Err(e) => return Err(e),
        };
        let mut r = base;
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
        if reply.flag("same") {
            // Same content: only attributes can change.
            if let Some(st) = &current {
                let ch = wanted.change_for(st, probe.umask)?;
                let st = if ch.is_empty() {
                    st.clone()
                } else {
                    r.insert("changed".into(), true.into());
                    remote::apply_attrs(ctx, &path, &ch, false).await?.0
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
