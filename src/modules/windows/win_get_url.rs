//! `win_get_url` (ansible.windows): download a file on the Windows host.
//!
//! The probe reads the destination and its checksum; the plan skips the download when the file
//! already matches the given `checksum`, or exists and `force: no` (without Ansible's
//! Last-Modified request); otherwise apply downloads into a temporary file beside it, checks the
//! checksum and replaces the file only when the content differs. In check mode a download that
//! would only be compared is made to a temporary file and deleted (as Ansible does), so `--check`
//! tells the truth. `url_password` and `headers` travel only in the request document (stdin),
//! never on a command line; results show the URL without credentials.

use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::winpath::{has_trailing_sep, join, parent};
use super::{WINDOWS, finish, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::url::{mask_url, normalize_hex, win_url_filename};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, p,
    req,
};

pub static SCRIPT: super::Script = script!("win_get_url");

static DEF: ModuleDef = ModuleDef {
    name: "win_get_url",
    namespaces: WINDOWS,
    params: &[
        req("url", Str),
        req("dest", Str),
        p("force", Bool),
        p("checksum", Str),
        choice(
            "checksum_algorithm",
            &["md5", "sha1", "sha256", "sha384", "sha512"],
        ),
        alias(p("url_username", Str), &["user", "username"]),
        alias(p("url_password", Str), &["password"]),
        p("force_basic_auth", Bool),
        p("headers", Dict),
        p("validate_certs", Bool),
        p("http_agent", Str),
        alias(p("url_timeout", Int), &["timeout"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Deserialize)]
pub struct GetUrlArgs {
    pub url: String,
    pub dest: String,
    #[serde(default = "yes")]
    pub force: bool,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default = "sha1")]
    pub checksum_algorithm: String,
    #[serde(default)]
    pub url_username: Option<String>,
    #[serde(default)]
    pub url_password: Option<String>,
    #[serde(default)]
    pub force_basic_auth: bool,
    #[serde(default)]
    pub headers: Option<Map<String, Value>>,
    #[serde(default = "yes")]
    pub validate_certs: bool,
    #[serde(default = "agent")]
    pub http_agent: String,
    #[serde(default = "thirty")]
    pub url_timeout: u64,
}

fn yes() -> bool {
    true
}
fn sha1() -> String {
    "sha1".into()
}
fn agent() -> String {
    "ansible-httpget".into()
}
fn thirty() -> u64 {
    30
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// How the host makes the request (only in the request document).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Web {
    pub url: String,
    /// The URL without credentials, for messages.
    pub shown_url: String,
    pub timeout: u64,
    pub headers: Vec<Header>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_password: Option<String>,
    pub force_basic_auth: bool,
    pub validate_certs: bool,
    pub http_agent: String,
}

impl Web {
    pub fn from_args(a: &GetUrlArgs) -> Web {
        Web {
            url: a.url.clone(),
            shown_url: mask_url(&a.url),
            timeout: a.url_timeout.max(1),
            headers: a
                .headers
                .iter()
                .flatten()
                .map(|(k, v)| Header {
                    name: k.clone(),
                    value: crate::value::arg_text(v),
                })
                .collect(),
            url_username: a.url_username.clone().filter(|u| !u.is_empty()),
            url_password: a.url_password.clone(),
            force_basic_auth: a.force_basic_auth,
            validate_certs: a.validate_certs,
            http_agent: a.http_agent.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct ProbeArgs<'a> {
    dest: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    joined: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    algorithm: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch: Option<Web>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct Entry {
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Fetched {
    #[serde(default)]
    pub checksum: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub status_code: u16,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Probe {
    #[serde(default)]
    pub dest: Entry,
    #[serde(default)]
    pub joined: Option<Entry>,
    #[serde(default)]
    pub parent: Option<Entry>,
    #[serde(default)]
    pub fetched: Option<Fetched>,
}

/// What to do about the download.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The file is already right: (path, why, its entry).
    Keep(String, &'static str, Entry),
    /// Download to `path`; `existing` is what is there now.
    Download { path: String, existing: Entry },
}

/// The plan, from the probe. `want` is the normalized `checksum`, if any.
pub fn plan(probe: &Probe, a: &GetUrlArgs, want: Option<&str>) -> Result<Plan, String> {
    let (path, e) = if probe.dest.exists && probe.dest.is_dir {
        (
            join(&a.dest, &win_url_filename(&a.url)),
            probe.joined.clone().unwrap_or_default(),
        )
    } else if has_trailing_sep(&a.dest) {
        return Err(format!(
            "The destination path '{}' does not exist, or is not visible to the current user. \
             Ensure download destination folder exists (perhaps using win_file \
             state=directory) before win_get_url runs.",
            a.dest
        ));
    } else {
        if let (Some(par), Some(pe)) = (parent(&a.dest), &probe.parent)
            && !(pe.exists && pe.is_dir)
        {
            return Err(format!(
                "The path '{par}' does not exist for destination '{}', or is not visible to \
                 the current user. Ensure download destination folder exists (perhaps using \
                 win_file state=directory) before win_get_url runs.",
                a.dest
            ));
        }
        (a.dest.clone(), probe.dest.clone())
    };
    if e.exists && e.is_dir {
        return Err(format!("{path} is a directory; cannot download over it"));
    }
    if e.exists {
        match want {
            Some(w) if e.checksum.as_deref() == Some(w) => {
                return Ok(Plan::Keep(
                    path,
                    "file already exists and matches the checksum",
                    e,
                ));
            }
            Some(_) => {}
            None if !a.force => return Ok(Plan::Keep(path, "file already exists", e)),
            None => {}
        }
    }
    Ok(Plan::Download { path, existing: e })
}

/// The apply request.
#[derive(Debug, Clone, Serialize)]
struct Apply<'a> {
    path: &'a str,
    checksum: Option<&'a str>,
    web: Web,
}

#[derive(Debug, Clone, Deserialize, Default)]
struct Applied {
    #[serde(default)]
    changed: bool,
    #[serde(default)]
    status_code: Option<u16>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    checksum_src: Option<String>,
    #[serde(default)]
    checksum_dest: Option<String>,
}

pub(super) struct WinGetUrl;

#[async_trait]
impl Module for WinGetUrl {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: GetUrlArgs = typed_args(DEF.name, &args)?;
        let alg = a.checksum_algorithm.to_ascii_lowercase();
        let want = match a
            .checksum
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => Some(normalize_hex(c)?),
            None => None,
        };
        let shown = mask_url(&a.url);
        let mut query = ProbeArgs {
            dest: &a.dest,
            joined: Some(join(&a.dest, &win_url_filename(&a.url))),
            parent: parent(&a.dest),
            algorithm: &alg,
            fetch: None,
        };
        let t0 = Instant::now();
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &query).await?;
        let plan = plan(&probe, &a, want.as_deref()).map_err(ModError::msg)?;
        let base = |path: &str| {
            json!({ "url": shown, "dest": path, "checksum_src": Value::Null,
                    "checksum_dest": Value::Null, "elapsed": 0, "status_code": Value::Null })
        };
        let (path, existing) = match plan {
            Plan::Keep(path, why, e) => {
                let mut r = base(&path);
                r["checksum_dest"] = e.checksum.clone().into();
                r["size"] = e.size.into();
                r["msg"] = why.into();
                return Ok(finish(false, warnings, r));
            }
            Plan::Download { path, existing } => (path, existing),
        };
        if ctx.check_mode {
            let mut r = base(&path);
            let mut changed = true;
            // Only a download can tell whether existing content would change.
            if existing.exists && want.is_none() {
                query.fetch = Some(Web::from_args(&a));
                let (probe, w) = SCRIPT.probe::<Probe>(ctx, &query).await?;
                warnings.extend(w);
                if let Some(f) = probe.fetched {
                    changed = existing.checksum.as_deref() != Some(f.checksum.as_str());
                    r["checksum_src"] = f.checksum.into();
                    r["status_code"] = f.status_code.into();
                    r["size"] = f.size.into();
                }
                r["checksum_dest"] = existing.checksum.clone().into();
            }
            r["msg"] = "not downloaded in check mode".into();
            return Ok(finish(changed, warnings, r));
        }
        let req = Apply {
            path: &path,
            checksum: want.as_deref(),
            web: Web::from_args(&a),
        };
        let (applied, w) = SCRIPT.apply::<Applied>(ctx, &query, &req).await?;
        warnings.extend(w);
        let mut r = base(&path);
        r["elapsed"] = t0.elapsed().as_secs_f64().into();
        r["status_code"] = applied.status_code.into();
        r["checksum_src"] = applied.checksum_src.into();
        r["checksum_dest"] = applied.checksum_dest.into();
        r["size"] = applied.size.into();
        r["msg"] = format!("OK ({} bytes)", applied.size.unwrap_or(0)).into();
        Ok(finish(applied.changed, warnings, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, dest: &str) -> GetUrlArgs {
        serde_json::from_value(json!({ "url": url, "dest": dest })).unwrap()
    }

    fn file(sum: &str) -> Entry {
        Entry {
            exists: true,
            is_dir: false,
            size: Some(4),
            checksum: Some(sum.into()),
        }
    }
    fn dir() -> Entry {
        Entry {
            exists: true,
            is_dir: true,
            ..Default::default()
        }
    }

    #[test]
    fn skips_a_file_that_matches_the_checksum_or_exists_without_force() {
        let a = args("http://h/k.zip", "C:\\d\\k.zip");
        let probe = Probe {
            dest: file("abc"),
            parent: Some(dir()),
            ..Default::default()
        };
        assert!(matches!(
            plan(&probe, &a, Some("abc")).unwrap(),
            Plan::Keep(..)
        ));
        assert!(matches!(
            plan(&probe, &a, Some("def")).unwrap(),
            Plan::Download { .. }
        ));
        // force (the default) without a checksum: download and compare.
        assert!(matches!(
            plan(&probe, &a, None).unwrap(),
            Plan::Download { .. }
        ));
        let mut a2 = a.clone();
        a2.force = false;
        assert!(matches!(
            plan(&probe, &a2, None).unwrap(),
            Plan::Keep(_, "file already exists", _)
        ));
        // A missing file is downloaded whatever force says.
        let probe = Probe {
            dest: Entry::default(),
            parent: Some(dir()),
            ..Default::default()
        };
        assert!(matches!(
            plan(&probe, &a2, None).unwrap(),
            Plan::Download { .. }
        ));
    }

    #[test]
    fn destination_rules() {
        // Into a directory: the URL's file name.
        let a = args("http://h/x/My%20Tool.exe?v=1", "C:\\tools");
        let probe = Probe {
            dest: dir(),
            joined: Some(Entry::default()),
            ..Default::default()
        };
        match plan(&probe, &a, None).unwrap() {
            Plan::Download { path, .. } => assert_eq!(path, "C:\\tools\\My Tool.exe"),
            other => panic!("{other:?}"),
        }
        // A trailing separator that is not a directory, a missing parent: refused.
        let a = args("http://h/x", "C:\\nope\\");
        assert!(
            plan(&Probe::default(), &a, None)
                .unwrap_err()
                .contains("does not exist")
        );
        let a = args("http://h/x", "C:\\nope\\f");
        let probe = Probe {
            parent: Some(Entry::default()),
            ..Default::default()
        };
        let e = plan(&probe, &a, None).unwrap_err();
        assert!(e.contains("The path 'C:\\nope' does not exist"), "{e}");
    }

    #[test]
    fn credentials_and_odd_headers_travel_as_data() {
        let odd = "it's \"q\" $x `b` \u{e9}\u{540d}";
        let a: GetUrlArgs = serde_json::from_value(json!({
            "url": "https://user:secret@h/f", "dest": "C:\\f", "url_username": "u",
            "url_password": odd, "headers": {"X-Odd": odd, "Accept": "*/*"}
        }))
        .unwrap();
        let w = Web::from_args(&a);
        assert_eq!(w.shown_url, "https://h/f");
        assert_eq!(w.url_password.as_deref(), Some(odd));
        assert_eq!(
            w.headers[0],
            Header {
                name: "X-Odd".into(),
                value: odd.into()
            }
        );
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["url_password"], odd);
        // No credentials: none sent.
        let w = Web::from_args(&args("http://h/f", "C:\\f"));
        let v = serde_json::to_value(&w).unwrap();
        assert!(v.get("url_password").is_none() && v.get("url_username").is_none());
    }
}
