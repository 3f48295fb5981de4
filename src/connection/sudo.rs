//! `become` with sudo on POSIX hosts (local and SSH): the argv, and the password handshake.
//!
//! The password is never written blindly ahead of the command's input: when sudo does not ask
//! (root, NOPASSWD, a cached timestamp), that line would reach the command itself — and a
//! command that reads a script from stdin (`sh -s`) would run it. Instead, as Ansible does,
//! sudo is given a prompt of our own with a random key (`-p`), the command announces itself
//! with a random marker on stderr before it runs, and the transport watches stderr: the
//! password is written only after sudo's prompt, the command's own input only after the
//! marker. A second prompt means the password was refused: stdin is closed, nothing else is
//! sent.

use super::{CommandSpec, ConnError};

/// A command ready for a POSIX shell: argv, the command's own input, and the sudo handshake to
/// run on stderr before that input may be written.
pub struct PosixCommand {
    pub argv: Vec<String>,
    /// The command's own input, written once the command has started (after the handshake).
    pub stdin: Option<Vec<u8>>,
    /// Present when sudo may ask for a password. Stdin must then be a pipe, even without input.
    pub sudo: Option<SudoHandshake>,
}

impl PosixCommand {
    /// Whether the command needs a stdin pipe.
    pub fn needs_stdin(&self) -> bool {
        self.stdin.is_some() || self.sudo.is_some()
    }
}

/// Builds the argv for a command, wrapped in sudo when `become` is set. The password (if any)
/// is fed to sudo on stdin through the [`SudoHandshake`], never placed on a command line.
pub fn posix_command(spec: &CommandSpec) -> PosixCommand {
    let Some(b) = &spec.become_ else {
        return PosixCommand {
            argv: vec!["/bin/sh".into(), "-c".into(), spec.cmd.clone()],
            stdin: spec.stdin.clone(),
            sudo: None,
        };
    };
    let mut argv: Vec<String> = vec!["sudo".into()];
    let mut cmd = spec.cmd.clone();
    let mut sudo = None;
    match &b.password {
        Some(pw) => {
            let hs = SudoHandshake::new(pw, &b.user);
            argv.extend(["-S".into(), "-p".into(), hs.prompt_text()]);
            cmd = format!("echo {} >&2; {cmd}", hs.marker_text());
            sudo = Some(hs);
        }
        None => argv.push("-n".into()),
    }
    argv.extend([
        "-H".into(),
        "-u".into(),
        b.user.clone(),
        "--".into(),
        "/bin/sh".into(),
        "-c".into(),
        cmd,
    ]);
    PosixCommand {
        argv,
        stdin: spec.stdin.clone(),
        sudo,
    }
}

/// What the transport does next, as told by [`SudoHandshake::feed`].
#[derive(Debug, PartialEq, Eq)]
pub enum SudoStep {
    /// sudo asked for the password: write these bytes (the password line) to stdin.
    Password(Vec<u8>),
    /// sudo asked again after the password was sent: it was refused. Close stdin without
    /// writing anything else, let sudo exit, and report [`SudoHandshake::refused_error`].
    Refused,
    /// The command is running: write its input now. The bytes are stderr to pass on (what sudo
    /// said before, then the command's own first output); stop feeding the handshake.
    Started(Vec<u8>),
}

/// Watches stderr for sudo's prompt and the command's start marker.
pub struct SudoHandshake {
    prompt: Vec<u8>,
    marker: Vec<u8>,
    password: Vec<u8>,
    user: String,
    /// stderr not yet classified.
    buf: Vec<u8>,
    /// sudo's own messages seen so far (prompts removed).
    said: Vec<u8>,
    sent: bool,
    refused: bool,
}

impl std::fmt::Debug for SudoHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SudoHandshake")
            .field("user", &self.user)
            .field("sent", &self.sent)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl SudoHandshake {
    pub fn new(password: &str, user: &str) -> SudoHandshake {
        let key = uuid::Uuid::new_v4().simple().to_string();
        SudoHandshake {
            // No `%`: sudo expands %u, %h... in prompts.
            prompt: format!("[sudo via mixop, key={key}] password:").into_bytes(),
            marker: format!("MIXOP-BECOME-SUCCESS-{key}\n").into_bytes(),
            password: format!("{password}\n").into_bytes(),
            user: user.to_string(),
            buf: Vec::new(),
            said: Vec::new(),
            sent: false,
            refused: false,
        }
    }

    /// The `-p` argument.
    pub fn prompt_text(&self) -> String {
        String::from_utf8_lossy(&self.prompt).into_owned()
    }

    /// The word the command echoes to stderr before it runs.
    fn marker_text(&self) -> String {
        String::from_utf8_lossy(&self.marker[..self.marker.len() - 1]).into_owned()
    }

    /// Whether sudo refused the password.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Takes more stderr and says what to do, if anything. After a step, call again with no
    /// data until it returns `None`: one read may hold more than one event.
    pub fn feed(&mut self, data: &[u8]) -> Option<SudoStep> {
        self.buf.extend_from_slice(data);
        let prompt = find(&self.buf, &self.prompt);
        let marker = find(&self.buf, &self.marker);
        match (prompt, marker) {
            (Some(p), m) if m.is_none_or(|m| p < m) => {
                self.said.extend_from_slice(&self.buf[..p]);
                self.buf.drain(..p + self.prompt.len());
                if self.sent {
                    self.refused = true;
                    Some(SudoStep::Refused)
                } else if self.refused {
                    None
                } else {
                    self.sent = true;
                    Some(SudoStep::Password(self.password.clone()))
                }
            }
            (_, Some(m)) => {
                let mut out = std::mem::take(&mut self.said);
                out.extend_from_slice(&self.buf[..m]);
                out.extend_from_slice(&self.buf[m + self.marker.len()..]);
                self.buf.clear();
                Some(SudoStep::Started(out))
            }
            _ => None,
        }
    }

    /// The command never started: everything sudo said, prompts removed.
    pub fn take_stderr(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.said);
        out.append(&mut self.buf);
        out
    }

    pub fn refused_error(&self) -> ConnError {
        ConnError::failed(format!(
            "sudo: incorrect password for becoming '{}' (check ansible_become_password)",
            self.user
        ))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Become;

    fn spec(pw: Option<&str>) -> CommandSpec {
        let mut s = CommandSpec::new("cat");
        s.stdin = Some(b"data".to_vec());
        s.become_ = Some(Become {
            method: "sudo".into(),
            user: "root".into(),
            password: pw.map(str::to_string),
        });
        s
    }

    #[test]
    fn the_password_is_never_part_of_argv_or_stdin() {
        let pc = posix_command(&spec(Some("pw;touch /tmp/x")));
        assert!(
            !pc.argv.iter().any(|a| a.contains("pw;touch")),
            "{:?}",
            pc.argv
        );
        assert_eq!(pc.stdin.as_deref(), Some(&b"data"[..]));
        assert_eq!(pc.argv[..3], ["sudo", "-S", "-p"]);
        let hs = pc.sudo.as_ref().unwrap();
        assert_eq!(pc.argv[3], hs.prompt_text());
        assert!(
            pc.argv
                .last()
                .unwrap()
                .starts_with("echo MIXOP-BECOME-SUCCESS-")
        );
        assert!(pc.argv.last().unwrap().ends_with(">&2; cat"));
        // A fresh key every time.
        let other = posix_command(&spec(Some("pw")));
        assert_ne!(other.argv[3], pc.argv[3]);
    }

    #[test]
    fn without_a_password_sudo_must_not_ask() {
        let pc = posix_command(&spec(None));
        assert!(pc.sudo.is_none());
        assert!(pc.argv.contains(&"-n".to_string()));
        assert_eq!(pc.argv.last().unwrap(), "cat");
        let plain = posix_command(&CommandSpec::new("true"));
        assert_eq!(plain.argv, ["/bin/sh", "-c", "true"]);
        assert!(!plain.needs_stdin());
    }

    #[test]
    fn no_prompt_means_no_password() {
        let mut hs = SudoHandshake::new("secret", "root");
        let marker = hs.marker.clone();
        assert_eq!(hs.feed(b"sudo: unable to resolve host x\n"), None);
        let mut chunk = marker[..5].to_vec();
        assert_eq!(hs.feed(&chunk), None, "incomplete marker: wait");
        chunk = marker[5..].to_vec();
        chunk.extend_from_slice(b"cmd err");
        assert_eq!(
            hs.feed(&chunk),
            Some(SudoStep::Started(
                b"sudo: unable to resolve host x\ncmd err".to_vec()
            ))
        );
    }

    #[test]
    fn prompt_then_start() {
        let mut hs = SudoHandshake::new("secret", "root");
        let prompt = hs.prompt.clone();
        let marker = hs.marker.clone();
        assert_eq!(hs.feed(&prompt[..4]), None);
        assert_eq!(
            hs.feed(&prompt[4..]),
            Some(SudoStep::Password(b"secret\n".to_vec()))
        );
        assert_eq!(hs.feed(b""), None);
        assert_eq!(hs.feed(&marker), Some(SudoStep::Started(vec![])));
    }

    #[test]
    fn a_second_prompt_is_a_refusal() {
        let mut hs = SudoHandshake::new("bad", "root");
        let mut twice = hs.prompt.clone();
        twice.extend_from_slice(b"Sorry, try again.\n");
        twice.extend_from_slice(&hs.prompt.clone());
        assert!(matches!(hs.feed(&twice), Some(SudoStep::Password(_))));
        assert_eq!(hs.feed(b""), Some(SudoStep::Refused));
        assert!(hs.refused());
        assert!(hs.refused_error().message.contains("incorrect password"));
        assert_eq!(hs.feed(b"sudo: 1 incorrect password attempt\n"), None);
        assert_eq!(
            hs.take_stderr(),
            b"Sorry, try again.\nsudo: 1 incorrect password attempt\n"
        );
    }

    #[test]
    fn a_prompt_in_the_command_output_is_not_sudo() {
        // Once started, the transport stops feeding: only output before the marker counts.
        let mut hs = SudoHandshake::new("pw", "root");
        let mut data = hs.marker.clone();
        data.extend_from_slice(&hs.prompt.clone());
        assert_eq!(hs.feed(&data), Some(SudoStep::Started(hs.prompt.clone())));
    }
}
