//! `uri`: an HTTP request made **by the target** (with its `curl`), as Ansible's module makes it
//! from the host it runs on.
//!
//! One round trip: the script checks `creates`/`removes`, writes the body to a private temporary
//! directory, runs curl with its configuration on stdin (URL, method, headers and credentials
//! never on a command line), writes `dest` when asked, and prints the status, the last response's
//! headers and (when the controller needs it) the content. The controller builds Ansible's
//! result: `status`, `url`, `redirected`, `msg`, the headers as lowercase `snake_case` keys,
//! `cookies`, `json`/`content`, and fails when the status is not in `status_code`.

use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::files::add_path_info;
use crate::modules::files::remote;
use crate::modules::files::remote::run_stdin;
use crate::modules::posix::quote;
use crate::modules::url::{mask_url, url_filename};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, Target, alias,
    choice, outcome, p, req, typed,
};
use crate::template::pyfmt::json_dumps;

static URI_DEF: ModuleDef = ModuleDef {
    name: "uri",
    namespaces: BUILTIN,
    params: &[
        req("url", Str),
        p("method", Str),
        p("body", Any),
        choice(
            "body_format",
            &["form-urlencoded", "json", "raw", "form-multipart"],
        ),
        p("headers", Dict),
        // A list, one code, or "200,201" as Ansible accepts; checked by `status_codes`.
        p("status_code", Any),
        p("return_content", Bool),
        p("dest", Str),
        alias(p("url_username", Str), &["user"]),
        alias(p("url_password", Str), &["password"]),
        p("force_basic_auth", Bool),
        p("validate_certs", Bool),
        p("timeout", Int),
        choice(
            "follow_redirects",
            &["all", "no", "none", "safe", "urllib2", "yes"],
        ),
        p("creates", Str),
        p("removes", Str),
        p("http_agent", Str),
        p("force", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Uri;

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

/// Python's `urllib.parse.quote_plus` (what `urlencode` applies to keys and values).
fn quote_plus(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// `body_format: form-urlencoded` with a mapping or list of pairs: Ansible's `form_urlencoded`
/// (list values repeat the key, `None` values are dropped).
fn form_urlencode(body: &Value) -> Result<String, ModError> {
    let pairs: Vec<(String, Value)> = match body {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Value::Array(items) => items
            .iter()
            .map(|it| match it {
                Value::Array(kv) if kv.len() == 2 => {
                    Ok((crate::value::to_text(&kv[0]), kv[1].clone()))
                }
                _ => Err(ModError::msg(
                    "failed to parse body as form_urlencoded: a list body must hold [key, value] pairs",
                )),
            })
            .collect::<Result<_, _>>()?,
        other => return Ok(crate::value::to_text(other)),
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let values = match v {
            Value::Array(vs) => vs,
            v => vec![v],
        };
        for v in values.iter().filter(|v| !v.is_null()) {
            out.push(format!(
                "{}={}",
                quote_plus(&k),
                quote_plus(&crate::value::to_text(v))
            ));
        }
    }
    Ok(out.join("&"))
}

/// The request body as sent, and the Content-Type it implies (unless the user gave one).
fn encode_body(
    body: Option<&Value>,
    format: &str,
) -> Result<(Option<String>, Option<&'static str>), ModError> {
    let Some(body) = body.filter(|b| !b.is_null()) else {
        let ct = match format {
            "json" => Some("application/json"),
            "form-urlencoded" => Some("application/x-www-form-urlencoded"),
            _ => None,
        };
        return Ok((None, ct));
    };
    Ok(match format {
        "json" => (
            Some(match body {
                Value::String(s) => s.clone(),
                v => json_dumps(v, None, false, true),
            }),
            Some("application/json"),
        ),
        "form-urlencoded" => (
            Some(form_urlencode(body)?),
            Some("application/x-www-form-urlencoded"),
        ),
        "form-multipart" => {
            return Err(ModError::msg(
                "body_format: form-multipart is not supported by mixop's uri yet (use raw with your own Content-Type)",
            ));
        }
        _ => (Some(crate::value::to_text(body)), None),
    })
}

/// The `status_code` argument: a list of integers (or one, or a comma-separated string).
fn status_codes(v: Option<&Value>) -> Result<Vec<i64>, ModError> {
    let bad = |x: &Value| {
        ModError::msg(format!(
            "status_code must be a list of integers, got {}",
            crate::value::to_text(x)
        ))
    };
    let one = |x: &Value| -> Result<i64, ModError> {
        match x {
            Value::Number(n) => n.as_i64().ok_or_else(|| bad(x)),
            Value::String(s) => s.trim().parse().map_err(|_| bad(x)),
            _ => Err(bad(x)),
        }
    };
    match v {
        None | Some(Value::Null) => Ok(vec![200]),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| one(&Value::String(p.to_string())))
            .collect(),
        Some(x) => Ok(vec![one(x)?]),
    }
}

/// Python's repr of the status list, as in Ansible's "Status code was 404 and not [200]".
fn codes_repr(codes: &[i64]) -> String {
    format!(
        "[{}]",
        codes
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

const BODY: &str = r#"
if [ -n "$u_creates" ] && [ -e "$u_creates" ]; then echo skip=creates; exit 0; fi
if [ -n "$u_removes" ] && [ ! -e "$u_removes" ]; then echo skip=removes; exit 0; fi
command -v curl >/dev/null 2>&1 || { _err "uri makes its request from the target and needs curl there; it was not found in PATH (install it, e.g. \`apt-get install curl\`)"; exit 0; }
d=$(umask 077 && mktemp -d) || { _err "cannot create a temporary directory"; exit 0; }
trap 'rm -rf -- "$d"' EXIT
trap 'exit 1' HUP INT TERM
set -- -sS -K - -o "$d/out" -D "$d/hdr" -w '%{http_code} %{num_redirects} %{url_effective}' --max-time "$u_to"
if [ -n "$u_hasbody" ]; then printf '%s' "$u_body" > "$d/body"; set -- "$@" --data-binary "@$d/body"; fi
if [ -n "$u_follow" ]; then set -- "$@" -L; fi
if [ -n "$u_dest" ]; then
  if [ -d "$u_dest" ]; then u_dest=${u_dest%/}/$u_name; fi
  printf 'path=%s\n' "$u_dest"
  if [ -f "$u_dest" ] && [ -z "$u_force" ]; then set -- "$@" -z "$u_dest"; fi
fi
w=$(printf '%s' "$u_cfg" | curl "$@" 2>"$d/err"); rc=$?
printf 'curl_rc=%s\n' "$rc"
printf 'curl_err=%s\n' "$(tail -n 2 "$d/err" | tr '\n' ' ')"
printf 'w=%s\n' "$w"
if [ -s "$d/hdr" ]; then
  start=$(grep -n '^HTTP/' "$d/hdr" | tail -n 1 | cut -d: -f1)
  tail -n +"${start:-1}" "$d/hdr" | tr -d '\r' | sed -n '1s/^/statusline=/p; 2,$s/^\(.\)/hdr=\1/p'
fi
code=${w%% *}
written=
if [ -n "$u_dest" ] && [ -f "$d/out" ] && [ "$code" != 304 ]; then
  case " $u_ok " in *" $code "*)
    t=$u_dest.mixop-uri.tmp
    if e=$(cp -- "$d/out" "$t" 2>&1 && mv -f -- "$t" "$u_dest" 2>&1); then written=1; echo written=1
    else rm -f -- "$t"; _err "failed to write $u_dest: $e"; exit 0; fi ;;
  esac
fi
if [ -n "$u_dest" ] && [ -e "$u_dest" ]; then printf 'lstat=%s\n' "$(_st "$u_dest")"; fi
if [ -f "$d/out" ] && { [ -z "$written" ] || [ -n "$u_content" ]; }; then echo '::data::'; cat -- "$d/out"; fi
"#;

/// `uri`'s arguments (see `URI_DEF`), with Ansible's defaults.
#[derive(Debug, serde::Deserialize)]
struct UriArgs {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    body: Option<Value>,
    #[serde(default = "default_body_format")]
    body_format: String,
    #[serde(default)]
    headers: Map<String, Value>,
    status_code: Option<Value>,
    #[serde(default)]
    return_content: bool,
    dest: Option<String>,
    url_username: Option<String>,
    url_password: Option<String>,
    #[serde(default)]
    force_basic_auth: bool,
    #[serde(default = "crate::modules::yes")]
    validate_certs: bool,
    /// Seconds; 0 or less means the default (30).
    timeout: Option<i64>,
    #[serde(default = "default_follow")]
    follow_redirects: String,
    creates: Option<String>,
    removes: Option<String>,
    #[serde(default = "default_agent")]
    http_agent: String,
    #[serde(default)]
    force: bool,
}

fn default_method() -> String {
    "GET".into()
}

fn default_body_format() -> String {
    "raw".into()
}

fn default_follow() -> String {
    "safe".into()
}

fn default_agent() -> String {
    "ansible-httpget".into()
}

/// The request, checked and encoded before the target is asked. Pure.
struct Request {
    url: String,
    /// The URL with any password masked: what results and messages show.
    masked: String,
    /// curl's configuration (URL, method, headers, credentials): sent on stdin.
    curl_config: String,
    body: Option<String>,
    follow: bool,
    timeout: u64,
    codes: Vec<i64>,
    return_content: bool,
    dest: Option<String>,
    force: bool,
    creates: Option<String>,
    removes: Option<String>,
}

impl Request {
    fn new(a: UriArgs) -> Result<Request, ModError> {
        let url = a.url;
        if url.is_empty() {
            return Err(ModError::msg("uri needs `url`"));
        }
        if url.contains(['\n', '\r']) {
            return Err(ModError::msg("`url` must be a single line"));
        }
        let method = a.method.to_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ModError::msg(
                "Parameter 'method' needs to be a single word in uppercase, like GET or POST.",
            ));
        }
        let codes = status_codes(a.status_code.as_ref())?;
        let mut headers: Vec<(String, String)> = a
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), crate::value::to_text(v)))
            .collect();
        let (body, implied_type) =
            encode_body(a.body.as_ref(), &a.body_format.to_ascii_lowercase())?;
        if let Some(ct) = implied_type
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), ct.into()));
        }
        let mut cfg = format!("url = {}\n", curl_q(&url));
        cfg.push_str(&format!("request = {}\n", curl_q(&method)));
        cfg.push_str(&format!("user-agent = {}\n", curl_q(&a.http_agent)));
        // Ansible sends credentials only when challenged unless force_basic_auth is set.
        if let Some(u) = a.url_username.filter(|s| !s.is_empty()) {
            let pw = a.url_password.unwrap_or_default();
            cfg.push_str(&format!("user = {}\n", curl_q(&format!("{u}:{pw}"))));
            if !a.force_basic_auth {
                cfg.push_str("anyauth\n");
            }
        }
        // curl's own "Expect: 100-continue" would change what servers see from Ansible's request.
        cfg.push_str("header = \"Expect:\"\n");
        for (k, v) in &headers {
            cfg.push_str(&format!("header = {}\n", curl_q(&format!("{k}: {v}"))));
        }
        if !a.validate_certs {
            cfg.push_str("insecure\n");
        }
        // "safe" (the default) follows redirects only for GET and HEAD, as urllib2 did.
        let follow = match a.follow_redirects.as_str() {
            "all" | "yes" => true,
            "safe" | "urllib2" => method == "GET" || method == "HEAD",
            _ => false,
        };
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(Request {
            masked: mask_url(&url),
            url,
            curl_config: cfg,
            body,
            follow,
            timeout: a
                .timeout
                .and_then(|t| u64::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(30),
            codes,
            return_content: a.return_content,
            dest: nonempty(a.dest),
            force: a.force,
            creates: nonempty(a.creates),
            removes: nonempty(a.removes),
        })
    }

    /// The variables `BODY` runs with.
    fn vars(&self) -> Vec<(&'static str, String)> {
        let flag = |b: bool| if b { "1".to_string() } else { String::new() };
        let path = |p: &Option<String>| p.as_deref().map(remote::sh_path).unwrap_or_default();
        let ok = self.codes.iter().map(i64::to_string).collect::<Vec<_>>();
        vec![
            ("u_cfg", quote(&self.curl_config)),
            ("u_hasbody", flag(self.body.is_some())),
            ("u_body", quote(self.body.as_deref().unwrap_or(""))),
            ("u_to", self.timeout.to_string()),
            ("u_follow", flag(self.follow)),
            ("u_dest", path(&self.dest)),
            ("u_name", quote(&url_filename(&self.url))),
            ("u_force", flag(self.force)),
            ("u_ok", quote(&ok.join(" "))),
            ("u_content", flag(self.return_content)),
            ("u_creates", path(&self.creates)),
            ("u_removes", path(&self.removes)),
        ]
    }
}

/// The response's headers as Ansible's result keys: lowercase, `-` → `_`, repeated headers
/// joined with ", " (as http.client's message does), in first-seen order.
fn header_keys(headers: &[(String, String)], r: &mut Outcome) {
    let mut names: Vec<String> = vec![];
    let mut joined: Map<String, Value> = Map::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        match joined.get_mut(&k) {
            Some(Value::String(s)) => *s = format!("{s}, {v}"),
            _ => {
                names.push(k.clone());
                joined.insert(k, v.clone().into());
            }
        }
    }
    for k in names {
        let v = joined.remove(&k).unwrap_or(Value::Null);
        r.insert(k.replace('-', "_"), v);
    }
}

/// `cookies` and `cookies_string` from the Set-Cookie headers.
fn cookies(headers: &[(String, String)], r: &mut Outcome) {
    let cookies: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| {
            let (nv, _) = v.split_once(';').unwrap_or((v, ""));
            nv.split_once('=')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let text = cookies.iter().map(|(n, v)| format!("{n}={v}"));
    r.insert(
        "cookies_string".into(),
        text.collect::<Vec<_>>().join("; ").into(),
    );
    let map = cookies.into_iter().map(|(n, v)| (n, Value::String(v)));
    r.insert("cookies".into(), Value::Object(map.collect()));
}

/// Ansible's result from what the script reported; Err when the status is not one of
/// `status_code`. A pure function.
fn result(req: &Request, reply: &remote::Reply, elapsed: u64) -> ModResult {
    if let Some(why) = reply.get("skip") {
        let mut r = outcome(false);
        let stdout = if why == "creates" {
            format!(
                "skipped, since '{}' exists",
                req.creates.as_deref().unwrap_or_default()
            )
        } else {
            let removes = req.removes.as_deref().unwrap_or_default();
            format!("skipped, since '{removes}' does not exist")
        };
        r.insert("stdout".into(), stdout.into());
        return Ok(with_lines(r));
    }
    let response = Response::from_reply(reply);
    let masked = &req.masked;
    let mut r = Outcome::new();
    let mut status: i64 = -1;
    let mut effective = masked.clone();
    let msg = match response.code.clone().filter(|(c, _)| *c != 0) {
        Some((code, final_url)) => {
            status = code;
            if !final_url.is_empty() {
                effective = mask_url(&final_url);
            }
            header_keys(&response.headers, &mut r);
            if (200..300).contains(&code) {
                // urllib treats 2xx as success: cookies and the byte count.
                cookies(&response.headers, &mut r);
                let len = response
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| "unknown".into());
                format!("OK ({len} bytes)")
            } else {
                // What urllib calls the error's URL is the one it was asked for.
                effective = masked.clone();
                format!("HTTP Error {code}: {}", response.reason)
            }
        }
        None => format!("Request failed: {}", response.curl_err.trim()),
    };
    r.insert("redirected".into(), (&effective != masked).into());
    r.insert("url".into(), effective.into());
    r.insert("msg".into(), msg.into());
    r.insert("status".into(), status.into());
    r.insert("elapsed".into(), elapsed.into());
    r.insert("changed".into(), reply.flag("written").into());
    if req.dest.is_some()
        && let Some(p) = reply.get("path")
    {
        r.insert("path".into(), p.into());
        // Ansible adds the file's attributes to any result naming an existing `path`.
        if let Some(st) = reply.stat("lstat")? {
            add_path_info(&mut r, &st);
        }
    }
    if let Some(loc) = r.get("location").and_then(Value::as_str) {
        let joined = join_url(r["url"].as_str().unwrap_or(masked), loc);
        r.insert("location".into(), joined.into());
    }
    let content_text = reply
        .data
        .as_deref()
        .map(|c| String::from_utf8_lossy(c).into_owned());
    let ctype = r
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if let Some(text) = &content_text
        && is_json_type(&ctype)
        && let Ok(js) = serde_json::from_str::<Value>(text)
    {
        r.insert("json".into(), js);
    }
    let codes = &req.codes;
    // urllib raises HTTPError for any non-2xx answer; its body stays in the result as `body`
    // unless Ansible read it as content (JSON, return_content, or a failing status).
    let http_error = response
        .code
        .as_ref()
        .is_some_and(|(c, _)| *c != 0 && !(200..300).contains(c));
    let read_as_content = is_json_type(&ctype) || req.return_content || !codes.contains(&status);
    if http_error && !read_as_content {
        r.insert(
            "body".into(),
            content_text.clone().unwrap_or_default().into(),
        );
    }
    if req.return_content {
        r.insert("content".into(), content_text.unwrap_or_default().into());
    }
    if !codes.contains(&status) {
        let msg = format!(
            "Status code was {status} and not {}: {}",
            codes_repr(codes),
            r["msg"].as_str().unwrap_or("")
        );
        r.remove("msg");
        r.remove("changed");
        return Err(ModError::Failed { msg, result: r });
    }
    Ok(r)
}

#[async_trait]
impl Module for Uri {
    fn def(&self) -> &'static ModuleDef {
        &URI_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let req = Request::new(typed(&args)?)?;
        if ctx.check_mode {
            // ansible-core's uri does not support check mode: the task is skipped.
            let mut r = outcome(false);
            r.insert("skipped".into(), true.into());
            r.insert(
                "msg".into(),
                "remote module (ansible.builtin.uri) does not support check mode".into(),
            );
            return Ok(r);
        }
        let t0 = Instant::now();
        let reply = run_stdin(ctx, remote::script(&req.vars(), BODY)).await?;
        result(&req, &reply, t0.elapsed().as_secs())
    }
}

/// `stdout_lines` beside `stdout`, as Ansible's results have them.
fn with_lines(mut r: Outcome) -> Outcome {
    if let Some(s) = r.get("stdout").and_then(Value::as_str) {
        let lines: Vec<Value> = s.lines().map(Value::from).collect();
        r.insert("stdout_lines".into(), lines.into());
    }
    r
}

/// What the script saw of the response.
#[derive(Debug, Default)]
struct Response {
    /// (HTTP status, final URL); status 0 when there was no response.
    code: Option<(i64, String)>,
    reason: String,
    headers: Vec<(String, String)>,
    curl_err: String,
}

impl Response {
    fn from_reply(reply: &remote::Reply) -> Response {
        let mut resp = Response {
            curl_err: reply.get("curl_err").unwrap_or_default().to_string(),
            ..Default::default()
        };
        if let Some(w) = reply.get("w") {
            let mut it = w.splitn(3, ' ');
            let code = it.next().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
            let _redirects = it.next();
            resp.code = Some((code, it.next().unwrap_or("").to_string()));
        }
        if let Some(line) = reply.get("statusline") {
            resp.reason = line.splitn(3, ' ').nth(2).unwrap_or("").trim().to_string();
        }
        for h in reply.all("hdr") {
            if let Some((k, v)) = h.split_once(':') {
                resp.headers
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        resp
    }
}

/// Ansible's JSON detection: the subtype (or its `+suffix`) is `json` or `javascript`.
fn is_json_type(ctype: &str) -> bool {
    let main = ctype.split(';').next().unwrap_or("").trim();
    let sub = main.split_once('/').map(|(_, s)| s).unwrap_or("");
    let sub = sub.rsplit_once('+').map(|(_, s)| s).unwrap_or(sub);
    sub == "json" || sub == "javascript"
}

/// `urljoin(base, location)` for the forms servers send: absolute URLs, absolute paths and
/// paths relative to the base's directory.
fn join_url(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let host_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..host_end]);
    if let Some(p) = loc.strip_prefix("//") {
        return format!("{scheme}://{p}");
    }
    if loc.starts_with('/') {
        return format!("{origin}{loc}");
    }
    let path = rest[host_end..].split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{origin}{dir}/{loc}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> Request {
        let args: Args = v.as_object().unwrap().clone();
        Request::new(typed(&args).unwrap()).unwrap()
    }

    #[test]
    fn the_request_travels_in_curls_config_with_ansibles_defaults() {
        let r = request(json!({"url": "https://u:pw@h/x", "method": "post",
            "body": {"a": 1}, "body_format": "json", "url_username": "u", "url_password": "pw"}));
        assert_eq!(r.masked, "https://h/x");
        assert!(
            r.curl_config.contains("request = \"POST\"\n"),
            "{}",
            r.curl_config
        );
        assert!(r.curl_config.contains("user = \"u:pw\"\nanyauth\n"));
        assert!(
            r.curl_config
                .contains("header = \"Content-Type: application/json\"\n")
        );
        assert!(r.curl_config.contains("user-agent = \"ansible-httpget\"\n"));
        assert!(
            !r.follow,
            "safe redirects are followed for GET and HEAD only"
        );
        assert_eq!((r.timeout, r.codes.as_slice()), (30, &[200][..]));
        let vars = r.vars();
        let var = |k: &str| vars.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert!(!var("u_body").is_empty() && var("u_hasbody") == "1");
        assert!(var("u_cfg").contains("url = \"https://u:pw@h/x\""));
        let get = request(
            json!({"url": "http://h/", "headers": {"content-type": "text/x"},
            "body": "x", "body_format": "json", "timeout": 0, "status_code": "200, 201"}),
        );
        assert!(get.follow);
        assert_eq!((get.timeout, get.codes.as_slice()), (30, &[200, 201][..]));
        assert!(
            !get.curl_config.contains("application/json"),
            "the user's type wins"
        );
        for bad in ["GET /", "g3t"] {
            let args: Args = json!({"url": "http://h/", "method": bad})
                .as_object()
                .unwrap()
                .clone();
            assert!(Request::new(typed(&args).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn results_read_as_ansible_reports_them() {
        let req = request(json!({"url": "http://h/a/b", "return_content": true}));
        let ok = remote::Reply::parse(
            b"curl_rc=0\nw=200 1 http://h/c/d\nstatusline=HTTP/1.1 200 OK\n\
              hdr=Content-Type: application/json\nhdr=Set-Cookie: s=1; Path=/\n\
              hdr=X-A: 1\nhdr=x-a: 2\nhdr=Location: e\n::data::\n{\"k\": 1}",
        );
        let r = result(&req, &ok, 3).unwrap();
        assert_eq!(r["status"], 200);
        assert_eq!(r["redirected"], true);
        assert_eq!(r["url"], "http://h/c/d");
        assert_eq!(r["x_a"], "1, 2");
        assert_eq!(r["cookies"], json!({"s": "1"}));
        assert_eq!(r["json"], json!({"k": 1}));
        assert_eq!(r["content"], "{\"k\": 1}");
        assert_eq!(r["location"], "http://h/c/e");
        assert_eq!(r["msg"], "OK (unknown bytes)");
        assert_eq!(r["changed"], false);
        let missing = remote::Reply::parse(
            b"w=404 0 http://h/a/b\nstatusline=HTTP/1.1 404 Not Found\n::data::\ngone",
        );
        match result(&req, &missing, 0) {
            Err(ModError::Failed { msg, result }) => {
                assert_eq!(
                    msg,
                    "Status code was 404 and not [200]: HTTP Error 404: Not Found"
                );
                assert_eq!(result["status"], 404);
                assert!(!result.contains_key("changed"));
            }
            other => panic!("{other:?}"),
        }
        let refused = remote::Reply::parse(b"curl_rc=7\ncurl_err=Connection refused \nw=000 0 \n");
        let e = result(&req, &refused, 0).unwrap_err().to_string();
        assert_eq!(
            e,
            "Status code was -1 and not [200]: Request failed: Connection refused"
        );
        let skipped = request(json!({"url": "http://h/", "creates": "/x"}));
        let r = result(&skipped, &remote::Reply::parse(b"skip=creates\n"), 0).unwrap();
        assert_eq!(r["stdout_lines"], json!(["skipped, since '/x' exists"]));
    }

    #[test]
    fn bodies_are_encoded_as_ansible_does() {
        // json.dumps separators, ensure_ascii.
        let (b, ct) = encode_body(Some(&json!({"a": [1, "é"], "b": null})), "json").unwrap();
        assert_eq!(b.as_deref(), Some(r#"{"a": [1, "\u00e9"], "b": null}"#));
        assert_eq!(ct, Some("application/json"));
        // A string is sent as written.
        let (b, _) = encode_body(Some(&json!("{\"x\":1}")), "json").unwrap();
        assert_eq!(b.as_deref(), Some("{\"x\":1}"));
        // urlencode(doseq=True) with quote_plus; None dropped.
        let (b, ct) = encode_body(
            Some(&json!({"q": "a b&c", "tag": ["x", "y/z"], "n": null})),
            "form-urlencoded",
        )
        .unwrap();
        assert_eq!(b.as_deref(), Some("q=a+b%26c&tag=x&tag=y%2Fz"));
        assert_eq!(ct, Some("application/x-www-form-urlencoded"));
        let (b, ct) = encode_body(Some(&json!([["k", "v 1"]])), "form-urlencoded").unwrap();
        assert_eq!(b.as_deref(), Some("k=v+1"));
        assert!(ct.is_some());
        let (b, ct) = encode_body(Some(&json!("raw text")), "raw").unwrap();
        assert_eq!((b.as_deref(), ct), (Some("raw text"), None));
        assert_eq!(encode_body(None, "raw").unwrap(), (None, None));
    }

    #[test]
    fn status_code_lists() {
        assert_eq!(status_codes(None).unwrap(), vec![200]);
        assert_eq!(
            status_codes(Some(&json!([200, "201"]))).unwrap(),
            vec![200, 201]
        );
        assert_eq!(
            status_codes(Some(&json!("200, 204"))).unwrap(),
            vec![200, 204]
        );
        assert_eq!(status_codes(Some(&json!(404))).unwrap(), vec![404]);
        assert!(status_codes(Some(&json!(["x"]))).is_err());
        assert_eq!(codes_repr(&[200, 201]), "[200, 201]");
    }

    #[test]
    fn json_types_and_locations() {
        assert!(is_json_type("application/json; charset=utf-8"));
        assert!(is_json_type("application/problem+json"));
        assert!(is_json_type("text/javascript"));
        assert!(!is_json_type("text/html"));
        assert_eq!(join_url("http://h:1/a/b?x", "/c"), "http://h:1/c");
        assert_eq!(join_url("http://h:1/a/b", "c"), "http://h:1/a/c");
        assert_eq!(join_url("http://h/a", "https://o/x"), "https://o/x");
    }
}
