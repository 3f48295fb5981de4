//! PowerShell as mixop speaks it to Windows hosts: the module wrapper and its host process, the
//! request/response frames (docs/windows-protocol.md), and decoding of what PowerShell writes on
//! stderr (CLIXML). Used by the WinRM transport (which runs the host process) and by the Windows
//! modules (which build requests).

pub mod clixml;
pub mod frame;
pub mod script;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use script::{encode, quote, quote_arg};

/// The first line of the long-lived host's launcher (the simulator recognises it).
pub const HOST_MARKER: &str = "# mixop-pshost v1";
/// The first line of the one-process-per-request launcher.
pub const ONESHOT_MARKER: &str = "# mixop-psoneshot v1";

const LOADER: &str = include_str!("loader.ps1");
const WRAPPER: &str = include_str!("wrapper.ps1");
const HOST_LOOP: &str = include_str!("host.ps1");
const ONESHOT_TAIL: &str = include_str!("oneshot.ps1");

/// Command-line prefix of every powershell.exe mixop starts.
pub const POWERSHELL: &str =
    "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ";

/// Which wrapper process to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// One process for the whole run, answering requests until stdin ends.
    Host,
    /// One process per request (fallback).
    OneShot,
}

/// The command line that starts a wrapper process, and the first stdin line it needs (the
/// wrapper script itself, base64 UTF-8: the command line holds only a short loader, so the
/// wrapper may be any size without meeting cmd.exe's 8191-character limit).
pub fn launch(kind: Launch) -> (String, Vec<u8>) {
    let (marker, tail) = match kind {
        Launch::Host => (HOST_MARKER, HOST_LOOP),
        Launch::OneShot => (ONESHOT_MARKER, ONESHOT_TAIL),
    };
    let loader = LOADER.replacen("# MARKER", marker, 1);
    let script = format!("{WRAPPER}\n{tail}");
    let mut first = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        script.as_bytes(),
    )
    .into_bytes();
    first.push(b'\n');
    (format!("{POWERSHELL}{}", encode(&loader)), first)
}

/// Every PowerShell script mixop ships, by name (for the grammar test and the docs).
pub fn shipped_scripts() -> Vec<(&'static str, String)> {
    let mut v = vec![
        (
            "powershell/loader.ps1",
            LOADER.replacen("# MARKER", HOST_MARKER, 1),
        ),
        (
            "powershell/wrapper+host.ps1",
            format!("{WRAPPER}\n{HOST_LOOP}"),
        ),
        (
            "powershell/wrapper+oneshot.ps1",
            format!("{WRAPPER}\n{ONESHOT_TAIL}"),
        ),
    ];
    for (name, text) in crate::modules::windows::scripts() {
        v.push((name, text.to_string()));
    }
    v.extend(crate::modules::windows::generated_scripts());
    v
}

/// One request to the host process (the REQ payload).
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: u64,
    pub module: String,
    pub phase: String,
    pub script: String,
    pub script_sha256: String,
    pub args: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
    pub check_mode: bool,
    pub env: Map<String, Value>,
    /// Values the script needs but nobody may see (passwords): beside `args`, so a log of the
    /// arguments (the simulator's scripts.jsonl) never holds them; the script reads
    /// `$Mixop.secrets`.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub secrets: Map<String, Value>,
}

/// What the host answered (the RES payload).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Reply {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub result: Value,
    #[serde(default, deserialize_with = "lenient_strings")]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default)]
    pub exception: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub line: Option<i64>,
    #[serde(default)]
    pub column: Option<i64>,
    #[serde(default)]
    pub script_line: Option<String>,
    #[serde(default)]
    pub error_id: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// PowerShell 5.1's ConvertTo-Json writes a one-element array as the element itself, and an
/// empty one as `null` in places: accept a string, a list or null.
fn lenient_strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(crate::value::to_text).collect(),
        other => vec![crate::value::to_text(&other)],
    })
}

impl Reply {
    /// The error as a user reads it: PowerShell's message, where in the script, the type.
    pub fn error_text(&self, module: &str) -> String {
        let mut s = self
            .msg
            .clone()
            .unwrap_or_else(|| "the PowerShell script failed without a message".into());
        let mut at = Vec::new();
        if let (Some(l), Some(c)) = (self.line, self.column)
            && l > 0
        {
            at.push(format!("{module}.ps1 line {l}, column {c}"));
        }
        if let Some(e) = &self.exception {
            at.push(e.clone());
        }
        if !at.is_empty() {
            s.push_str(&format!(" ({})", at.join(": ")));
        }
        s
    }
}

/// What a request produced: the reply, plus warnings about the host process itself.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub warnings: Vec<String>,
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_fits_a_command_line_and_carries_the_marker() {
        let (cmd, first) = launch(Launch::Host);
        assert!(cmd.len() < 2000, "{}", cmd.len());
        assert!(cmd.starts_with("powershell.exe -NoProfile"));
        let b64 = cmd.rsplit(' ').next().unwrap();
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
        let utf16: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let loader = String::from_utf16(&utf16).unwrap();
        assert!(loader.starts_with(HOST_MARKER));
        assert_eq!(*first.last().unwrap(), b'\n');
        let script = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            &first[..first.len() - 1],
        )
        .unwrap();
        let script = String::from_utf8(script).unwrap();
        assert!(script.contains("Write-MixopFrame 'READY'"));
        let (cmd, _) = launch(Launch::OneShot);
        assert_ne!(cmd, launch(Launch::Host).0);
    }

    #[test]
    fn replies_from_powershell_51_json() {
        let r: Reply = serde_json::from_str(
            r#"{"id":3,"ok":false,"failed":true,"msg":"Cannot find path","exception":"System.Management.Automation.ItemNotFoundException","line":4,"column":9,"warnings":"one"}"#,
        )
        .unwrap();
        assert_eq!(r.warnings, vec!["one".to_string()]);
        assert_eq!(
            r.error_text("win_file"),
            "Cannot find path (win_file.ps1 line 4, column 9: System.Management.Automation.ItemNotFoundException)"
        );
        let r: Reply =
            serde_json::from_str(r#"{"id":3,"ok":true,"result":null,"warnings":null}"#).unwrap();
        assert!(r.ok && r.warnings.is_empty());
    }
}
