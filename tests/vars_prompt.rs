//! `vars_prompt` on a terminal (a pty made by util-linux `script`), answered as a user types.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Work;

/// mixop on a terminal of its own, `input` typed into it; returns the exit code and everything
/// the terminal showed. `script -E never` adds no echo of its own: typed text appears only
/// where the terminal's echo is on.
fn mixop_on_tty(w: &Work, args: &[&str], input: &str) -> (i32, String) {
    let line = std::iter::once(common::mixop_bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-q", "-E", "never", "-e", "-c", &line, "/dev/null"])
        .current_dir(w.path())
        .env("NO_COLOR", "1")
        .env("HOME", w.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1) from util-linux");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    (out.status.code().unwrap_or(-1), text)
}

const PLAYBOOK: &str = "\
- hosts: all
  gather_facts: false
  vars: {who: world}
  vars_prompt:
    - name: secret
      prompt: Secret for {{ who }}
      confirm: true
    - name: visible
      prompt: Visible
      private: false
      default: dv
    - name: empty
      prompt: Empty
      default: \"{{ who }}-default\"
    - name: raw
      prompt: Raw
      private: false
      unsafe: true
    - name: skipped
      prompt: Never asked
  tasks:
    - copy:
        dest: \"@OUT@/answers\"
        content: \"{{ secret }}|{{ visible }}|{{ empty }}|{{ raw }}|{{ skipped }}\"
    - debug: msg=\"secret has {{ secret | length }} characters\"
";

#[test]
fn a_private_answer_is_never_echoed_or_printed_and_confirm_asks_again() {
    let w = Work::new();
    w.local_inventory(1);
    w.write("pb.yml", PLAYBOOK);
    // The secret twice, mistyped the second time, then twice alike; Enter for `visible` keeps
    // nothing typed (its default), `empty` too; `raw` holds a template that stays text.
    let typed = "s3cr3t-one\ns3cr3t-two\nhunter2-ok\nhunter2-ok\nshown-text\n\n{{ who }}\n";
    let (code, text) = mixop_on_tty(
        &w,
        &[
            "run",
            "pb.yml",
            "-i",
            "inventory.yml",
            "-e",
            "skipped=from-e",
        ],
        typed,
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        w.read("answers"),
        "hunter2-ok|shown-text|world-default|{{ who }}|from-e"
    );
    for prompt in [
        "Secret for world: ",
        "confirm Secret for world: ",
        "***** VALUES ENTERED DO NOT MATCH ****",
        "Visible [dv]: ",
        "Empty [world-default]: ",
        "Raw: ",
    ] {
        assert!(text.contains(prompt), "no `{prompt}` in:\n{text}");
    }
    assert!(!text.contains("Never asked"), "{text}");
    assert!(text.contains("secret has 10 characters"), "{text}");
    // The secret never shown (what is typed ahead of a prompt is not echoed either way, so
    // the visible answer's echo is not checked here).
    for s in ["s3cr3t-one", "s3cr3t-two", "hunter2-ok"] {
        assert!(!text.contains(s), "`{s}` was shown:\n{text}");
    }
}
