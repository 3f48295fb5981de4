//! SSH settings for one host, resolved from the host's `ansible_*` variables and the OpenSSH
//! options Ansible users put in `ansible_ssh_common_args` / `ansible_ssh_extra_args`.

use std::path::PathBuf;
use std::time::Duration;

use super::known_hosts::HostKeyPolicy;
use crate::connection::{ConnError, ConnSpec};

/// One `[user@]host[:port]` hop of a ProxyJump chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl JumpHost {
    /// Parses `[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://[user@]host[:port]`.
    pub fn parse(s: &str) -> Result<JumpHost, String> {
        let s = s.trim().trim_start_matches("ssh://");
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("bad ProxyJump host '{s}': unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("bad ProxyJump host '{s}'")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                _ => (rest.to_string(), None),
            }
        };
        let port = match port {
            None => 22,
            Some(p) => p
                .parse()
                .map_err(|_| format!("bad ProxyJump port '{p}' in '{s}'"))?,
        };
        if host.is_empty() {
            return Err(format!("bad ProxyJump host '{s}': no host name"));
        }
        Ok(JumpHost { user, host, port })
    }
}

/// Everything the SSH transport needs for one host.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Inventory name, for messages.
    pub host: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// Explicit private keys (`ansible_ssh_private_key_file`, `-i`, `IdentityFile`).
    pub key_files: Vec<PathBuf>,
    pub key_passphrase: Option<String>,
    /// `IdentitiesOnly=yes`: only the explicit keys, no agent or default keys.
    pub identities_only: bool,
    /// The ssh-agent socket (`IdentityAgent`, else `SSH_AUTH_SOCK`); `None` for no agent.
    pub agent_socket: Option<PathBuf>,
    /// `PubkeyAuthentication`, `PasswordAuthentication`, `KbdInteractiveAuthentication`.
    pub allow_publickey: bool,
    pub allow_password: bool,
    pub allow_keyboard_interactive: bool,
    pub known_hosts: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub keepalive_max: usize,
    pub proxy_jump: Vec<JumpHost>,
    /// Home directory of the controller user (`~` in paths, default keys, known_hosts).
    pub home: Option<PathBuf>,
}

impl SshOptions {
    /// `user@address:port`, the form used in messages.
    pub fn target(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }

    /// Options for a ProxyJump hop: the target's keys and host key settings, never its password
    /// (a bastion has its own credentials; sending the target's password there would leak it).
    pub fn for_jump(&self, j: &JumpHost) -> SshOptions {
        SshOptions {
            host: format!("{} (ProxyJump for {})", j.host, self.host),
            address: j.host.clone(),
            port: j.port,
            user: j.user.clone().unwrap_or_else(local_user),
            password: None,
            proxy_jump: Vec::new(),
            ..self.clone()
        }
    }

    pub fn from_spec(spec: &ConnSpec) -> Result<SshOptions, ConnError> {
        let bad = |msg: String| ConnError::unreachable(format!("{}: {msg}", spec.host));
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let expand = |p: &str| expand_tilde(p, home.as_deref());
        let first = |names: &[&str]| names.iter().find_map(|n| spec.var_str(n));

        let mut args = SshArgs::default();
        // Ansible's order on the ssh command line; like ssh, the first value of an option wins.
        for name in [
            "ansible_ssh_args",
            "ansible_ssh_common_args",
            "ansible_ssh_extra_args",
        ] {
            if let Some(a) = spec.var_str(name) {
                args.parse(&a).map_err(|e| bad(format!("{name}: {e}")))?;
            }
        }

        let port = match spec.port {
            Some(p) => p,
            None => match first(&["ansible_ssh_port", "ansible_port"]) {
                Some(p) => p
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("ansible_port '{p}' is not a port number")))?,
                None => args.port.unwrap_or(22),
            },
        };
        let user = spec
            .user
            .clone()
            .or_else(|| first(&["ansible_ssh_user", "ansible_user"]))
            .or_else(|| args.user.clone())
            .unwrap_or_else(local_user);
        let password = spec.password.clone().or_else(|| {
            first(&[
                "ansible_ssh_pass",
                "ansible_ssh_password",
                "ansible_password",
            ])
        });

        let mut key_files: Vec<PathBuf> =
            first(&["ansible_ssh_private_key_file", "ansible_private_key_file"])
                .map(|p| vec![expand(&p)])
                .unwrap_or_default();
        for k in &args.identity_files {
            let p = expand(k);
            if !key_files.contains(&p) {
                key_files.push(p);
            }
        }
        let key_passphrase = first(&[
            "ansible_ssh_private_key_passphrase",
            "ansible_private_key_passphrase",
        ])
        .or_else(|| std::env::var("MIXOP_SSH_KEY_PASSPHRASE").ok());

        let known_hosts = match first(&["ansible_ssh_known_hosts_file", "mixop_known_hosts_file"]) {
            Some(f) => vec![expand(&f)],
            None if !args.known_hosts.is_empty() => {
                args.known_hosts.iter().map(|f| expand(f)).collect()
            }
            None => match &home {
                Some(h) => vec![h.join(".ssh/known_hosts")],
                None => {
                    return Err(bad(
                        "cannot locate known_hosts: HOME is not set (set ansible_ssh_known_hosts_file)"
                            .into(),
                    ));
                }
            },
        };

        let policy_var = [
            "ansible_ssh_host_key_checking",
            "ansible_host_key_checking",
            "mixop_host_key_checking",
        ]
        .into_iter()
        .find_map(|n| Some((n, spec.var_str(n)?)));
        let host_key_policy = match policy_var {
            Some((name, v)) => HostKeyPolicy::parse(&v).ok_or_else(|| {
                bad(crate::connection::bad_choice(
                    name,
                    &v,
                    &["strict", "accept-new", "off", "true", "false"],
                ))
            })?,
            None => match &args.strict_host_key_checking {
                Some(v) => HostKeyPolicy::parse(v).ok_or_else(|| {
                    bad(format!(
                        "StrictHostKeyChecking={v} is not one of yes, accept-new, no"
                    ))
                })?,
                // Ansible users turn checking off with this environment variable.
                None => std::env::var("ANSIBLE_HOST_KEY_CHECKING")
                    .ok()
                    .and_then(|v| HostKeyPolicy::parse(&v))
                    .unwrap_or(HostKeyPolicy::Strict),
            },
        };

        let secs = |v: &str, what: &str| -> Result<Duration, ConnError> {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && s.is_finite())
                .ok_or_else(|| bad(format!("{what} '{v}' is not a positive number of seconds")))
                .and_then(|s| {
                    crate::value::seconds(s, what).map_err(|e| bad(format!("{e} ('{v}')")))
                })
        };
        let connect_timeout = match first(&["ansible_ssh_timeout", "ansible_timeout"]) {
            Some(v) => secs(&v, "ansible_timeout")?,
            None => match &args.connect_timeout {
                Some(v) => secs(v, "ConnectTimeout")?,
                None => Duration::from_secs(10),
            },
        };
        let keepalive = match &args.server_alive_interval {
            Some(v) => secs(v, "ServerAliveInterval")?,
            None => Duration::from_secs(15),
        };
        let keepalive_max = match &args.server_alive_count_max {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| bad(format!("ServerAliveCountMax '{v}' is not a number")))?,
            None => 3,
        };

        let jump_spec = first(&["mixop_proxy_jump", "ansible_ssh_proxy_jump"]).or(args.proxy_jump);
        let mut proxy_jump = Vec::new();
        if let Some(j) = jump_spec.filter(|j| !j.eq_ignore_ascii_case("none")) {
            for hop in j.split(',') {
                proxy_jump.push(JumpHost::parse(hop).map_err(bad)?);
            }
        }
        if let Some(pc) = &args.proxy_command {
            return Err(bad(format!(
                "ProxyCommand ({pc}) is not supported: mixop never spawns ssh; use -o ProxyJump=user@bastion:port"
            )));
        }

        let agent_socket = match args.identity_agent.as_deref() {
            Some(a) if a.eq_ignore_ascii_case("none") => None,
            Some("SSH_AUTH_SOCK") | None => std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            Some(a) => Some(expand(a.trim_start_matches('$'))),
        };

        Ok(SshOptions {
            host: spec.host.clone(),
            address: spec.address.clone(),
            port,
            user,
            password,
            key_files,
            key_passphrase,
            identities_only: args.identities_only,
            agent_socket,
            allow_publickey: args.publickey.unwrap_or(true),
            allow_password: args.password.unwrap_or(true),
            allow_keyboard_interactive: args.kbd_interactive.unwrap_or(true),
            known_hosts,
            host_key_policy,
            connect_timeout,
            keepalive,
            keepalive_max,
            proxy_jump,
            home,
        })
    }
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

fn expand_tilde(p: &str, home: Option<&std::path::Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ if p == "~" => home.map(PathBuf::from).unwrap_or_else(|| PathBuf::from(p)),
        _ => PathBuf::from(p),
    }
}

/// The subset of OpenSSH client options we honour. Like ssh, the first value given wins.
#[derive(Debug, Default)]
struct SshArgs {
    known_hosts: Vec<String>,
    strict_host_key_checking: Option<String>,
    proxy_jump: Option<String>,
    proxy_command: Option<String>,
    identity_files: Vec<String>,
    identities_only: bool,
    connect_timeout: Option<String>,
    server_alive_interval: Option<String>,
    server_alive_count_max: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity_agent: Option<String>,
    publickey: Option<bool>,
    password: Option<bool>,
    kbd_interactive: Option<bool>,
}

impl SshArgs {
    fn parse(&mut self, args: &str) -> Result<(), String> {
        let words = shell_words::split(args).map_err(|e| format!("cannot split '{args}': {e}"))?;
        let mut it = words.into_iter();
        while let Some(w) = it.next() {
            // Flags that take a value, written either as `-o X` or `-oX`.
            let (flag, inline) = match w.as_str() {
                f if f.len() > 2
                    && f.starts_with('-')
                    && matches!(f.as_bytes().get(1), Some(b'o' | b'J' | b'i' | b'l' | b'p')) =>
                {
                    (f[..2].to_string(), Some(f[2..].to_string()))
                }
                f => (f.to_string(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "-o" => self.option(&value()?)?,
                "-J" => set_once(&mut self.proxy_jump, value()?),
                "-i" => self.identity_files.push(value()?),
                "-l" => set_once(&mut self.user, value()?),
                "-p" => {
                    let v = value()?;
                    let p = v.parse().map_err(|_| format!("-p {v}: not a port"))?;
                    self.port.get_or_insert(p);
                }
                // Other flags (-C, -q, -4, -T, -A ...) change nothing mixop does.
                _ => tracing::debug!(flag = %w, "ssh argument ignored"),
            }
        }
        Ok(())
    }

    fn option(&mut self, opt: &str) -> Result<(), String> {
        let (key, val) = match opt.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => opt
                .trim()
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .ok_or_else(|| format!("-o {opt}: expected Key=Value"))?,
        };
        let val = val.trim_matches('"').to_string();
        match key.to_ascii_lowercase().as_str() {
            "userknownhostsfile" => {
                if self.known_hosts.is_empty() {
                    self.known_hosts = val.split_whitespace().map(str::to_string).collect();
                }
            }
            "stricthostkeychecking" => set_once(&mut self.strict_host_key_checking, val),
            "proxyjump" => set_once(&mut self.proxy_jump, val),
            "proxycommand" if !val.eq_ignore_ascii_case("none") => {
                set_once(&mut self.proxy_command, val)
            }
            "identityfile" => self.identity_files.push(val),
            "identitiesonly" => self.identities_only = yes_no(&val)?,
            "connecttimeout" => set_once(&mut self.connect_timeout, val),
            "serveraliveinterval" => set_once(&mut self.server_alive_interval, val),
            "serveralivecountmax" => set_once(&mut self.server_alive_count_max, val),
            "port" => {
                let p = val.parse().map_err(|_| format!("Port={val}: not a port"))?;
                self.port.get_or_insert(p);
            }
            "user" => set_once(&mut self.user, val),
            "identityagent" => set_once(&mut self.identity_agent, val),
            "pubkeyauthentication" => {
                self.publickey.get_or_insert(yes_no(&val)?);
            }
            "passwordauthentication" => {
                self.password.get_or_insert(yes_no(&val)?);
            }
            "kbdinteractiveauthentication" | "challengeresponseauthentication" => {
                self.kbd_interactive.get_or_insert(yes_no(&val)?);
            }
            other => tracing::debug!(option = other, "ssh option ignored"),
        }
        Ok(())
    }
}

fn yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        other => Err(format!("expected yes or no, got '{other}'")),
    }
}

fn set_once(slot: &mut Option<String>, v: String) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Transport;
    use serde_json::json;

    fn spec(vars: serde_json::Value) -> ConnSpec {
        ConnSpec {
            host: "web1".into(),
            transport: Transport::Ssh,
            address: "10.231.5.10".into(),
            port: None,
            user: Some("root".into()),
            password: None,
            vars: vars.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn jump_host_forms() {
        assert_eq!(
            JumpHost::parse("admin@bastion:2222").unwrap(),
            JumpHost {
                user: Some("admin".into()),
                host: "bastion".into(),
                port: 2222
            }
        );
        assert_eq!(JumpHost::parse("10.0.0.1").unwrap().port, 22);
        let v6 = JumpHost::parse("u@[fe80::1]:2200").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("fe80::1", 2200));
        assert!(JumpHost::parse("b:notaport").is_err());
    }

    #[test]
    fn lab_style_common_args() {
        let o = SshOptions::from_spec(&spec(json!({
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/tmp/lab/known_hosts -o StrictHostKeyChecking=accept-new -oProxyJump=root@10.231.5.10:22 -o 'ConnectTimeout 3'",
            "ansible_ssh_private_key_file": "/tmp/lab/id_ed25519",
        })))
        .unwrap();
        assert_eq!(o.known_hosts, vec![PathBuf::from("/tmp/lab/known_hosts")]);
        assert_eq!(o.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(o.proxy_jump.len(), 1);
        assert_eq!(o.proxy_jump[0].host, "10.231.5.10");
        assert_eq!(o.connect_timeout, Duration::from_secs(3));
        assert_eq!(o.key_files, vec![PathBuf::from("/tmp/lab/id_ed25519")]);
        assert_eq!(o.port, 22);
        assert_eq!(o.target(), "root@10.231.5.10:22");
    }

    #[test]
    fn explicit_vars_beat_args_and_bad_values_are_reported() {
        let o = SshOptions::from_spec(&spec(json!({
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes",
            "ansible_host_key_checking": false,
            "ansible_timeout": 2,
            "ansible_port": "2222",
        })))
        .unwrap();
        assert_eq!(o.host_key_policy, HostKeyPolicy::Off);
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!(o.port, 2222);

        let e = SshOptions::from_spec(&spec(json!({"ansible_host_key_checking": "sometimes"})))
            .unwrap_err();
        assert!(
            e.message.contains("web1") && e.message.contains("sometimes"),
            "{e}"
        );
        let e = SshOptions::from_spec(&spec(json!({
            "ansible_ssh_extra_args": "-o ProxyCommand='ssh -W %h:%p bastion'"
        })))
        .unwrap_err();
        assert!(e.message.contains("ProxyJump"), "{e}");
    }
}
