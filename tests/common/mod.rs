//! Shared helpers for integration tests: run the built `mixop`, temp workspaces, the venv.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test virtualenv made by scripts/setup.sh. Tests that need it fail (never skip) without it.
pub fn venv() -> PathBuf {
    let v = std::env::var_os("MIXOP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    assert!(
        v.join("bin/python").exists(),
        "the test virtualenv {} is missing: run scripts/setup.sh",
        v.display()
    );
    v
}

pub fn venv_python() -> Command {
    Command::new(venv().join("bin/python"))
}

pub fn mixop_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mixop"))
}

/// A temporary workspace with files written into it.
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Work {
        Work {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text.replace("@OUT@", &self.out().display().to_string())).unwrap();
        p
    }
    /// Where playbooks write results (`@OUT@` in fixture text).
    pub fn out(&self) -> PathBuf {
        let o = self.path().join("out");
        std::fs::create_dir_all(&o).unwrap();
        o
    }
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.out().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }
    /// An inventory of `n` hosts h1..hn, all `ansible_connection: local`.
    pub fn local_inventory(&self, n: usize) -> PathBuf {
        let mut s = String::from("all:\n  hosts:\n");
        for i in 1..=n {
            s.push_str(&format!("    h{i}:\n      ansible_connection: local\n"));
        }
        self.write("inventory.yml", &s)
    }
    pub fn mixop(&self, args: &[&str]) -> Run {
        let out = Command::new(mixop_bin())
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run mixop");
        Run::from(out)
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "mixop failed:\n{}", self.all());
        self
    }
    /// Recap counters for a host from the human output.
    pub fn recap(&self, host: &str) -> Recap {
        parse_recap(&self.stdout, host)
            .unwrap_or_else(|| panic!("no recap line for {host}:\n{}", self.all()))
    }
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct Recap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

/// Parses `host : ok=1 changed=0 ...` lines, as printed by mixop and by ansible-playbook.
pub fn parse_recap(text: &str, host: &str) -> Option<Recap> {
    let line = text.lines().rev().find(|l| {
        let mut parts = l.splitn(2, ':');
        parts.next().map(str::trim) == Some(host) && l.contains("ok=")
    })?;
    let mut r = Recap::default();
    for word in line.split_whitespace() {
        if let Some((k, v)) = word.split_once('=') {
            let v: u32 = v.parse().ok()?;
            match k {
                "ok" => r.ok = v,
                "changed" => r.changed = v,
                "unreachable" => r.unreachable = v,
                "failed" => r.failed = v,
                "skipped" => r.skipped = v,
                "rescued" => r.rescued = v,
                "ignored" => r.ignored = v,
                _ => {}
            }
        }
    }
    Some(r)
}

pub fn recap(ok: u32, changed: u32, failed: u32, skipped: u32) -> Recap {
    Recap {
        ok,
        changed,
        failed,
        skipped,
        ..Default::default()
    }
}
