//! `ansible.cfg`, found and read as Ansible does: the settings that change what a playbook means or
//! where its files are. Environment variables (`ANSIBLE_*`) rank above the file; command-line
//! options and inventory/play variables rank above both (they are applied where they are used).
//!
//! Found as the first of `$ANSIBLE_CONFIG`, `./ansible.cfg` (not in a world-writable directory),
//! `~/.ansible.cfg`, `/etc/ansible/ansible.cfg`. Relative paths in it are taken from its own
//! directory. Every other setting it holds is named in one warning: mixop does not act on it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use std::sync::Arc;

use crate::diag::{Diag, Loc, Source};

/// When play-level fact gathering happens without a `gather_facts` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gathering {
    /// Gather unless the play says `gather_facts: false` (Ansible's default).
    #[default]
    Implicit,
    /// Gather only when the play says `gather_facts: true`.
    Explicit,
    /// As implicit, but a host whose facts were gathered earlier in the run is not asked again.
    Smart,
}

/// What mixop takes from `ansible.cfg` and the `ANSIBLE_*` environment.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Inventory sources used when no `-i` is given.
    pub inventory: Vec<PathBuf>,
    /// Where roles are searched after `roles/` beside the playbook.
    pub roles_path: Vec<PathBuf>,
    pub forks: Option<usize>,
    pub gathering: Gathering,
    /// Vault password files used when the command line names none.
    pub vault_password_files: Vec<PathBuf>,
    /// `LABEL@SOURCE` vault identities used when the command line names none.
    pub vault_identities: Vec<String>,
    /// Connection defaults as the host variables they stand for (`remote_user` is
    /// `ansible_user`): a host's own variables win over them.
    pub connection: Map<String, Value>,
    /// `become` / `become_method` / `become_user` from `[privilege_escalation]`.
    pub become_: Option<bool>,
    pub become_method: Option<String>,
    pub become_user: Option<String>,
    /// The privilege escalation password asked for with `-K` (a host's variables win over it).
    pub become_password: Option<String>,
    /// Warnings to print once (ignored settings, an ignored world-writable ansible.cfg).
    pub warnings: Vec<String>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The configuration in effect (empty until `install`; tests of library code see the defaults).
pub fn get() -> &'static Config {
    CONFIG.get_or_init(Config::default)
}

/// Makes `config` the one in effect (once per process; later calls are ignored).
pub fn install(config: Config) {
    let _ = CONFIG.set(config);
}

/// The settings mixop acts on: (section, key). A key may appear in more than one section.
const KNOWN: &[(&str, &str)] = &[
    ("defaults", "inventory"),
    ("defaults", "hostfile"),
    ("defaults", "roles_path"),
    ("defaults", "remote_user"),
    ("defaults", "remote_port"),
    ("defaults", "private_key_file"),
    ("defaults", "host_key_checking"),
    ("defaults", "forks"),
    ("defaults", "timeout"),
    ("defaults", "gathering"),
    ("defaults", "vault_password_file"),
    ("defaults", "vault_identity_list"),
    ("ssh_connection", "host_key_checking"),
    ("ssh_connection", "timeout"),
    ("privilege_escalation", "become"),
    ("privilege_escalation", "become_method"),
    ("privilege_escalation", "become_user"),
];

/// A parsed INI file as Python's configparser reads ansible.cfg: `[section]`, `key = value` or
/// `key: value`, comments on their own line with `#` or `;`, inline comments only after ` ;`,
/// indented lines continue the previous value. Keys are case-insensitive.
pub fn parse_ini(src: &Arc<Source>) -> Result<Vec<(String, String, String, Loc)>, Diag> {
    let mut out: Vec<(String, String, String, Loc)> = Vec::new();
    let mut section: Option<String> = None;
    let mut offset = 0;
    for (i, raw_nl) in src.text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw_nl.len();
        let raw = raw_nl.trim_end_matches(['\n', '\r']);
        let lead = raw.len() - raw.trim_start().len();
        let loc = Loc {
            src: src.clone(),
            offset: start + lead,
            len: raw.trim().len(),
            line: i + 1,
            col: lead + 1,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let line = match raw.find(" ;").or_else(|| raw.find("\t;")) {
            Some(at) => &raw[..at],
            None => raw,
        };
        if raw.starts_with([' ', '\t']) {
            // A continuation of the previous value.
            match out.last_mut() {
                Some(last) if section.is_some() => {
                    last.2.push('\n');
                    last.2.push_str(line.trim());
                    continue;
                }
                _ => {}
            }
        }
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(
                    Diag::input(format!("a section header must end with `]`: {line}")).at(&loc),
                );
            };
            section = Some(name.trim().to_string());
            continue;
        }
        let Some(sec) = &section else {
            return Err(Diag::input(
                "a setting before any [section] (ansible.cfg starts with a section such as [defaults])",
            )
            .at(&loc));
        };
        let at = line.find(['=', ':']);
        let (key, value) = match at {
            Some(at) => (line[..at].trim(), line[at + 1..].trim()),
            None => (line, ""),
        };
        if key.is_empty() {
            return Err(Diag::input(format!("a setting without a name: {line}")).at(&loc));
        }
        let key = key.to_ascii_lowercase();
        out.retain(|(s, k, _, _)| !(s == sec && *k == key));
        out.push((sec.clone(), key, value.to_string(), loc));
    }
    Ok(out)
}

/// Finds the file Ansible would read (`cwd` and `home` given for testing).
fn find(cwd: &Path, home: Option<&Path>, warnings: &mut Vec<String>) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ANSIBLE_CONFIG").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        // Ansible accepts a directory holding ansible.cfg too.
        let p = if p.is_dir() { p.join("ansible.cfg") } else { p };
        if p.is_file() {
            return Some(p);
        }
    }
    let local = cwd.join("ansible.cfg");
    if local.is_file() {
        if world_writable(cwd) {
            warnings.push(format!(
                "mixop is being run in a world writable directory ({}), ignoring it as an \
                 ansible.cfg source (as Ansible does)",
                cwd.display()
            ));
        } else {
            return Some(local);
        }
    }
    if let Some(home) = home {
        let p = home.join(".ansible.cfg");
        if p.is_file() {
            return Some(p);
        }
    }
    let p = PathBuf::from("/etc/ansible/ansible.cfg");
    p.is_file().then_some(p)
}

fn world_writable(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o002 != 0)
}

/// Reads the configuration in effect for this process.
pub fn discover() -> Result<Config, Diag> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut warnings = Vec::new();
    let file = find(&cwd, home.as_deref(), &mut warnings);
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut config = load(file.as_deref(), &env)?;
    config.warnings.splice(0..0, warnings);
    Ok(config)
}

/// Builds the configuration from a file (if any) and an environment lookup.
pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Diag> {
    let mut settings = Vec::new();
    let mut cfg = Config::default();
    let base = file
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diag::input(format!("cannot read {}: {e}", path.display())))?;
        settings = parse_ini(&Source::new(path, text))?;
        cfg.file = Some(path.to_path_buf());
        let ignored: Vec<String> = settings
            .iter()
            .filter(|(s, k, _, _)| !KNOWN.contains(&(s.as_str(), k.as_str())))
            .map(|(s, k, _, _)| format!("[{s}] {k}"))
            .collect();
        if !ignored.is_empty() {
            cfg.warnings.push(format!(
                "{}: mixop ignores these settings: {}",
                path.display(),
                ignored.join(", ")
            ));
        }
    }
    // A setting: the environment variable, else the first section that has it.
    let setting = |env_name: &str, keys: &[(&str, &str)]| -> Option<(String, Option<Loc>)> {
        if let Some(v) = env(env_name) {
            return Some((v, None));
        }
        keys.iter().find_map(|(sec, key)| {
            settings
                .iter()
                .find(|(s, k, _, _)| s == sec && k == key)
                .map(|(_, _, v, loc)| (v.clone(), Some(loc.clone())))
        })
    };
    let bad = |what: &str, value: &str, loc: Option<Loc>, want: &str| {
        let d = Diag::input(format!("{what} `{value}`: {want}"));
        match loc {
            Some(loc) => d.at(&loc),
            None => d.hint(format!("from the environment variable for `{what}`")),
        }
    };
    // Paths from the file are relative to it; from the environment, to the working directory.
    let path_of = |v: &str, line: &Option<Loc>| -> PathBuf {
        let expanded = expand_home(v.trim());
        if line.is_some() && expanded.is_relative() {
            base.join(expanded)
        } else {
            expanded
        }
    };
    if let Some((v, line)) = setting(
        "ANSIBLE_INVENTORY",
        &[("defaults", "inventory"), ("defaults", "hostfile")],
    ) {
        cfg.inventory = v
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| path_of(s, &line))
            .collect();
    }
    // Ansible's default: ~/.ansible/roles, /usr/share/ansible/roles, /etc/ansible/roles.
    let roles = setting("ANSIBLE_ROLES_PATH", &[("defaults", "roles_path")]).unwrap_or_else(|| {
        (
            "~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles".into(),
            None,
        )
    });
    cfg.roles_path = roles
        .0
        .split(':')
        .filter(|s| !s.trim().is_empty())
        .map(|s| path_of(s, &roles.1))
        .collect();
    if let Some((v, line)) = setting("ANSIBLE_FORKS", &[("defaults", "forks")]) {
        cfg.forks = Some(
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("forks", &v, line, "not a positive whole number"))?,
        );
    }
    if let Some((v, line)) = setting("ANSIBLE_GATHERING", &[("defaults", "gathering")]) {
        cfg.gathering = match v.trim().to_ascii_lowercase().as_str() {
            "implicit" => Gathering::Implicit,
            "explicit" => Gathering::Explicit,
            "smart" => Gathering::Smart,
            _ => {
                return Err(bad(
                    "gathering",
                    &v,
                    line,
                    "use implicit, explicit or smart",
                ));
            }
        };
    }
    if let Some((v, line)) = setting(
        "ANSIBLE_VAULT_PASSWORD_FILE",
        &[("defaults", "vault_password_file")],
    ) {
        cfg.vault_password_files = vec![path_of(&v, &line)];
    }
    if let Some((v, _)) = setting(
        "ANSIBLE_VAULT_IDENTITY_LIST",
        &[("defaults", "vault_identity_list")],
    ) {
        cfg.vault_identities = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    let mut conn = Map::new();
    if let Some((v, _)) = setting("ANSIBLE_REMOTE_USER", &[("defaults", "remote_user")]) {
        conn.insert("ansible_user".into(), Value::from(v.trim()));
    }
    if let Some((v, line)) = setting("ANSIBLE_REMOTE_PORT", &[("defaults", "remote_port")]) {
        let port = v
            .trim()
            .parse::<u16>()
            .map_err(|_| bad("remote_port", &v, line, "not a port number"))?;
        conn.insert("ansible_port".into(), Value::from(port));
    }
    if let Some((v, line)) = setting(
        "ANSIBLE_PRIVATE_KEY_FILE",
        &[("defaults", "private_key_file")],
    ) {
        conn.insert(
            "ansible_private_key_file".into(),
            Value::from(path_of(&v, &line).display().to_string()),
        );
    }
    if let Some((v, line)) = setting(
        "ANSIBLE_HOST_KEY_CHECKING",
        &[
            ("ssh_connection", "host_key_checking"),
            ("defaults", "host_key_checking"),
        ],
    ) {
        let b = crate::value::parse_bool(&v)
            .ok_or_else(|| bad("host_key_checking", &v, line, "use true or false"))?;
        conn.insert("ansible_host_key_checking".into(), Value::from(b));
    }
    if let Some((v, line)) = setting(
        "ANSIBLE_TIMEOUT",
        &[("ssh_connection", "timeout"), ("defaults", "timeout")],
    ) {
        let n = v
            .trim()
            .parse::<u64>()
            .map_err(|_| bad("timeout", &v, line.clone(), "not a whole number of seconds"))?;
        crate::value::whole_seconds(n, "timeout").map_err(|e| bad("timeout", &v, line, &e))?;
        conn.insert("ansible_timeout".into(), Value::from(n));
    }
    cfg.connection = conn;
    if let Some((v, line)) = setting("ANSIBLE_BECOME", &[("privilege_escalation", "become")]) {
        cfg.become_ = Some(
            crate::value::parse_bool(&v)
                .ok_or_else(|| bad("become", &v, line, "use true or false"))?,
        );
    }
    if let Some((v, line)) = setting(
        "ANSIBLE_BECOME_METHOD",
        &[("privilege_escalation", "become_method")],
    ) {
        if v.trim() != "sudo" {
            return Err(bad(
                "become_method",
                &v,
                line,
                "mixop becomes another user with sudo only",
            ));
        }
        cfg.become_method = Some(v.trim().to_string());
    }
    if let Some((v, _)) = setting(
        "ANSIBLE_BECOME_USER",
        &[("privilege_escalation", "become_user")],
    ) {
        cfg.become_user = Some(v.trim().to_string());
    }
    Ok(cfg)
}

impl Config {
    /// Lays the command line's connection and become options over ansible.cfg's, asking on the
    /// terminal for the passwords `-k`/`-K` ask for (as ansible-playbook: the become password
    /// defaults to the connection password when both are asked and the answer is empty).
    pub fn apply_cli(
        &mut self,
        conn: &crate::cli::ConnOpt,
        become_: Option<&crate::cli::BecomeOpt>,
    ) -> Result<(), crate::diag::Diag> {
        if let Some(u) = &conn.user {
            self.connection
                .insert("ansible_user".into(), Value::from(u.as_str()));
        }
        if let Some(k) = &conn.private_key {
            self.connection.insert(
                "ansible_private_key_file".into(),
                Value::from(k.display().to_string()),
            );
        }
        let mut conn_password = None;
        if conn.ask_pass {
            let p = crate::secret::ask(
                "SSH password: ",
                "the connection password (-k)",
                "set ansible_password for the hosts (in a vault-encrypted vars file), or use a key",
            )?;
            self.connection
                .insert("ansible_password".into(), Value::from(p.as_str()));
            conn_password = Some(p);
        }
        let Some(b) = become_ else { return Ok(()) };
        if b.become_ {
            self.become_ = Some(true);
        }
        if let Some(m) = &b.become_method {
            if m != "sudo" {
                return Err(crate::diag::Diag::usage(format!(
                    "--become-method: {}",
                    crate::connection::bad_choice("become method", m, &["sudo"])
                )));
            }
            self.become_method = Some(m.clone());
        }
        if let Some(u) = &b.become_user {
            self.become_user = Some(u.clone());
        }
        if b.ask_become_pass {
            let prompt = if conn_password.is_some() {
                "BECOME password[defaults to SSH password]: "
            } else {
                "BECOME password: "
            };
            let p = crate::secret::ask(
                prompt,
                "the become password (-K)",
                "set ansible_become_password for the hosts (in a vault-encrypted vars file)",
            )?;
            self.become_password = match (p.is_empty(), conn_password) {
                (true, Some(c)) => Some(c),
                _ => Some(p),
            };
        }
        Ok(())
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if p == "~" => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default(),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, Diag> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ansible.cfg");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(Some(&path), &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .map(|mut c| {
            // Paths are judged relative to the temporary directory.
            c.inventory = c
                .inventory
                .iter()
                .map(|p| p.strip_prefix(dir.path()).unwrap_or(p).to_path_buf())
                .collect();
            c.roles_path = c
                .roles_path
                .iter()
                .map(|p| p.strip_prefix(dir.path()).unwrap_or(p).to_path_buf())
                .collect();
            c
        })
    }

    #[test]
    fn settings_ansible_reads_and_warns_for_the_rest() {
        let c = load_text(
            "# comment\n; also a comment\n[defaults]\ninventory = hosts.ini, /abs/inv.yml ; inline\n\
             roles_path = roles:/opt/roles\nREMOTE_USER: deploy\nforks=7\ngathering = explicit\n\
             host_key_checking = False\nstdout_callback = yaml\ntimeout = 30\n\
             [privilege_escalation]\nbecome = True\nbecome_user = admin\n\
             [ssh_connection]\npipelining = True\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.inventory,
            vec![PathBuf::from("hosts.ini"), PathBuf::from("/abs/inv.yml")]
        );
        assert_eq!(
            c.roles_path,
            vec![PathBuf::from("roles"), PathBuf::from("/opt/roles")]
        );
        assert_eq!(c.forks, Some(7));
        assert_eq!(c.gathering, Gathering::Explicit);
        assert_eq!(c.connection["ansible_user"], "deploy");
        assert_eq!(c.connection["ansible_host_key_checking"], false);
        assert_eq!(c.connection["ansible_timeout"], 30);
        assert_eq!(c.become_, Some(true));
        assert_eq!(c.become_user.as_deref(), Some("admin"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].ends_with(
                "mixop ignores these settings: [defaults] stdout_callback, [ssh_connection] pipelining"
            ),
            "{}",
            c.warnings[0]
        );
    }

    #[test]
    fn environment_ranks_above_the_file() {
        let c = load_text(
            "[defaults]\nforks = 7\nremote_user = a\n",
            &[("ANSIBLE_FORKS", "3"), ("ANSIBLE_REMOTE_USER", "b")],
        )
        .unwrap();
        assert_eq!(c.forks, Some(3));
        assert_eq!(c.connection["ansible_user"], "b");
    }

    #[test]
    fn bad_values_are_input_errors_with_the_line() {
        let e = load_text("[defaults]\n\nforks = many\n", &[]).unwrap_err();
        assert!(e.message.contains("forks `many`"), "{}", e.message);
        assert_eq!(e.loc.as_ref().map(|l| l.line), Some(3));
        let e = load_text("forks = 3\n", &[]).unwrap_err();
        assert!(e.message.contains("before any [section]"), "{}", e.message);
        let e = load_text("[defaults]\ngathering = sometimes\n", &[]).unwrap_err();
        assert!(
            e.message.contains("implicit, explicit or smart"),
            "{}",
            e.message
        );
    }

    #[test]
    fn continuation_lines_and_repeated_keys() {
        let s = parse_ini(&Source::new(
            "x",
            "[defaults]\nroles_path = a\n  :b\nforks = 1\nforks = 2\n",
        ))
        .unwrap();
        assert_eq!(s[0].2, "a\n:b");
        assert_eq!(s.iter().filter(|e| e.1 == "forks").count(), 1);
        assert_eq!(s.last().unwrap().2, "2");
    }
}
