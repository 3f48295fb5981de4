//! What the fuzz targets (fuzz/fuzz_targets, run by `scripts/fuzz.sh`) feed to mixop, in one
//! place, so that tests/fuzz_regressions.rs replays every kept crashing input through exactly
//! the code the fuzzer found it with. Each function takes arbitrary bytes and must return
//! without panicking, hanging or allocating without bound; errors are fine (and are rendered, as
//! the CLI would).
#![doc(hidden)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value, json};

use crate::connection::winrm::{auth, encryption, soap};
use crate::template::{Templar, TemplarOptions, Vars};

/// The playbook loader on a file holding `data` (YAML syntax, structure, keywords, templates
/// judged at load time).
pub fn playbook(data: &[u8]) {
    let path = scratch_file("pb.yml", data);
    let templar = Templar::new(TemplarOptions::default());
    if let Err(d) = crate::playbook::load_playbook(&path, &templar, &Default::default()) {
        let _ = d.render(false);
    }
}

/// The inventory loader on a file holding `data`: YAML or INI, as the loader detects it.
pub fn inventory(data: &[u8]) {
    let path = scratch_file("hosts", data);
    match crate::inventory::Inventory::load(&[path]) {
        Ok(inv) => {
            let _ = inv.to_list_json();
            let _ = inv.graph(None, true);
            let _ = inv.select("all:!web:&db");
        }
        Err(d) => {
            let _ = d.render(false);
        }
    }
}

/// A template rendered with a few variables of every kind.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars: Map<String, Value> = json!({
        "s": "text", "n": 3, "f": 1.5, "b": true, "l": [1, "two", null], "d": {"k": "v"},
        "path": "C:\\Windows\\x", "empty": ""
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    let ctx = Vars {
        vars: Arc::new(vars),
        hostvars: Arc::new(BTreeMap::new()),
        data_vars: Arc::default(),
    };
    let templar = Templar::new(TemplarOptions::default());
    let _ = templar.render_str(text, &ctx);
}

/// A WS-Management response body (SOAP envelope or fault) as a WinRM peer sends it.
pub fn winrm_soap(data: &[u8]) {
    if let Ok(Err(fault)) = soap::parse(data) {
        let _ = fault.describe();
    }
}

/// A sealed (message-encrypted) response: the first line is the Content-Type, the rest the
/// multipart body; unsealed with a fixed toy sealer so the framing itself is what is exercised.
pub fn winrm_frames(data: &[u8]) {
    let (ct, body) = split_first_line(data);
    let Ok(ct) = std::str::from_utf8(ct) else {
        return;
    };
    let _ = encryption::decrypt(&mut XorSealer, ct, body);
}

/// The NTLM handshake answering `data` as the server's CHALLENGE, then, when that is accepted,
/// the same bytes unsealed as a response with the session's keys.
pub fn ntlm(data: &[u8]) {
    let Ok(mut session) = auth::NtlmSession::new("WIN\\user", "password", "win1") else {
        return;
    };
    if session.negotiate().is_err() {
        return;
    }
    let header = format!(
        "Negotiate {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data)
    );
    let challenge = auth::challenge_token([header.as_str()].into_iter()).unwrap_or_default();
    if session.authenticate(&challenge).is_ok() && data.len() > 16 {
        let _ = encryption::decrypt(
            &mut session,
            "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"",
            data,
        );
    }
}

/// A known_hosts file (`data` after its first line) looked up for the host named on the first
/// line, with an ed25519 key.
pub fn known_hosts(data: &[u8]) {
    use crate::connection::ssh::known_hosts::lookup;
    let (name, file) = split_first_line(data);
    let name = String::from_utf8_lossy(name);
    let path = scratch_file("known_hosts", file);
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &[7u8; 32][..]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    let _ = lookup(&[path], &name, &blob);
}

/// What a Windows module writes to stdout (the framed results mixop's PowerShell wrapper emits),
/// fed in two chunks split where the first byte says, plus the CLIXML decoder for its stderr.
pub fn module_frames(data: &[u8]) {
    let split = data
        .first()
        .map(|&b| b as usize)
        .unwrap_or(0)
        .min(data.len());
    let mut reader = crate::powershell::frame::Reader::default();
    let _ = reader.push(&data[..split]);
    let _ = reader.push(&data[split..]);
    let _ = crate::powershell::clixml::decode_stderr(&String::from_utf8_lossy(data));
}

/// `data` written to `name` in one scratch folder per process: a fuzzer runs thousands of inputs a
/// second, and a fresh temporary folder for each would be most of the work.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let path = DIR
        .get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
        .join(name);
    std::fs::write(&path, data).expect("write");
    path
}

fn split_first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// XOR "encryption" with a checksum signature: lets the framing parser reach the unseal step.
#[derive(Default)]
struct XorSealer;

impl encryption::Sealer for XorSealer {
    fn seal(
        &mut self,
        data: &mut [u8],
    ) -> Result<[u8; encryption::SIGNATURE_LEN], encryption::SealError> {
        data.iter_mut().for_each(|b| *b ^= 0x5a);
        Ok([0; encryption::SIGNATURE_LEN])
    }
    fn unseal(&mut self, _sig: &[u8], data: &mut [u8]) -> Result<(), encryption::SealError> {
        data.iter_mut().for_each(|b| *b ^= 0x5a);
        Ok(())
    }
}
