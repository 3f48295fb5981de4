//! Command-line definitions (clap). Nothing else lives here: `app` carries the commands out.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mixop",
    version,
    about = "Bring up, verify, tear down and rebuild mixed Linux + Windows Kubernetes labs",
    long_about = "mixop runs Ansible-style playbooks against an Ansible inventory, in parallel, \
                  over SSH (Linux) and WinRM (Windows), and verifies the result with a Kubernetes client."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a playbook.
    Run(RunArgs),
    /// Load and validate a playbook and its inventory; connect to nothing.
    Check(CheckArgs),
    /// Show the inventory (like ansible-inventory).
    Inventory(InventoryArgs),
    /// Reach every host: transport, connect time and a command round trip, or why not.
    Ping(PingArgs),
    /// Run one command on every matching host, in parallel (like `ansible HOSTS -a CMD`).
    Exec(ExecArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct InventoryOpt {
    /// Inventory file or directory (may be given several times).
    #[arg(short = 'i', long = "inventory", value_name = "INVENTORY")]
    pub inventory: Vec<PathBuf>,
}

/// Ansible Vault passwords (see `vault::keyring_from` for the order they are tried in).
#[derive(Debug, Args, Default)]
pub struct VaultOpt {
    /// A file holding the vault password, or an executable that prints it (may repeat).
    #[arg(
        long = "vault-password-file",
        visible_alias = "vault-pass-file",
        value_name = "FILE",
        env = "ANSIBLE_VAULT_PASSWORD_FILE"
    )]
    pub password_files: Vec<PathBuf>,
    /// A vault identity: `LABEL@FILE`, `LABEL@prompt`, or `FILE` (label `default`); may repeat.
    #[arg(long = "vault-id", value_name = "ID")]
    pub ids: Vec<String>,
    /// Ask for the vault password on the terminal.
    #[arg(
        short = 'J',
        long = "ask-vault-pass",
        visible_alias = "ask-vault-password"
    )]
    pub ask: bool,
}

/// How to log in, as ansible-playbook's connection options. They rank as ansible.cfg's settings
/// do (above them): a play's `remote_user` and a host's `ansible_*` variables win.
#[derive(Debug, Args, Default, Clone)]
pub struct ConnOpt {
    /// Log in as this user (as ansible.cfg's `remote_user`).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Log in with this private key file.
    #[arg(long = "private-key", visible_alias = "key-file", value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Ask for the connection password (SSH or WinRM) on the terminal.
    #[arg(short = 'k', long = "ask-pass")]
    pub ask_pass: bool,
}

/// Privilege escalation, as ansible-playbook's options: defaults that a play's or task's
/// `become*` keywords and a host's `ansible_become*` variables override.
#[derive(Debug, Args, Default, Clone)]
pub struct BecomeOpt {
    /// Run tasks with privilege escalation (`become: true`).
    #[arg(short = 'b', long = "become")]
    pub become_: bool,
    /// The escalation method (sudo, su).
    #[arg(long = "become-method", value_name = "METHOD")]
    pub become_method: Option<String>,
    /// The user to become (default root).
    #[arg(long = "become-user", value_name = "USER")]
    pub become_user: Option<String>,
    /// Ask for the privilege escalation password on the terminal.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The playbook to run.
    pub playbook: PathBuf,
    #[command(flatten)]
    pub inventory: InventoryOpt,
    #[command(flatten)]
    pub vault: VaultOpt,
    /// Limit the run to hosts matching this pattern.
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Only run tasks tagged with these tags (comma separated, may repeat).
    #[arg(short = 't', long = "tags", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks tagged with these tags.
    #[arg(long = "skip-tags", value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Extra variables: `key=value`, YAML/JSON text, or `@file.yml` (highest precedence).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub conn: ConnOpt,
    #[command(flatten)]
    pub become_: BecomeOpt,
    /// Report what would change without changing anything.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show differences for files and templates that change.
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Hosts handled at once (default: every host of the batch).
    #[arg(short = 'f', long)]
    pub forks: Option<usize>,
    /// Start the playbook at the task with this name.
    #[arg(long, value_name = "NAME")]
    pub start_at_task: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
    /// More detail (-v task results, -vv module arguments, -vvv transport).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write a detailed log (tracing) to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Only load and validate everything (as `mixop check`), print `playbook: PATH`; run nothing.
    #[arg(long, conflicts_with_all = ["list_hosts", "list_tasks", "list_tags"])]
    pub syntax_check: bool,
    /// List each play's hosts (within --limit) instead of running, as ansible-playbook does.
    #[arg(long)]
    pub list_hosts: bool,
    /// List each play's tasks (as selected by --tags/--skip-tags) instead of running.
    #[arg(long)]
    pub list_tasks: bool,
    /// List the tags of each play's tasks instead of running.
    #[arg(long)]
    pub list_tags: bool,
}

impl RunArgs {
    /// Loads and lists or validates only: nothing connects, so no password is asked for.
    pub fn plan_only(&self) -> bool {
        self.syntax_check || self.list_hosts || self.list_tasks || self.list_tags
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub inventory: InventoryOpt,
    #[command(flatten)]
    pub vault: VaultOpt,
    /// All hosts and groups as JSON (ansible-inventory --list).
    #[arg(long, conflicts_with_all = ["graph", "host"])]
    pub list: bool,
    /// The group tree.
    #[arg(long, conflicts_with_all = ["list", "host"])]
    pub graph: bool,
    /// One host's variables as JSON.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Show variables in the graph.
    #[arg(long)]
    pub vars: bool,
    /// Group to start the graph from.
    #[arg(value_name = "GROUP")]
    pub group: Option<String>,
}

#[derive(Debug, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub inventory: InventoryOpt,
    #[command(flatten)]
    pub vault: VaultOpt,
    #[command(flatten)]
    pub conn: ConnOpt,
    /// Hosts to reach (an Ansible host pattern).
    #[arg(default_value = "all")]
    pub pattern: String,
    /// Extra variables (as for `run`).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Hosts handled at once.
    #[arg(short = 'f', long, default_value_t = 64)]
    pub forks: usize,
    /// Seconds to wait for each connection.
    #[arg(long, default_value_t = 10, value_parser = seconds_arg)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub inventory: InventoryOpt,
    #[command(flatten)]
    pub vault: VaultOpt,
    #[command(flatten)]
    pub conn: ConnOpt,
    /// Hosts to run on (an Ansible host pattern).
    pub pattern: String,
    /// The command (a `sh -c` line on Linux hosts, a cmd.exe line on Windows hosts).
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
    /// Extra variables (as for `run`).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Hosts handled at once.
    #[arg(short = 'f', long, default_value_t = 64)]
    pub forks: usize,
    /// Seconds to wait for each connection.
    #[arg(long, default_value_t = 10, value_parser = seconds_arg)]
    pub timeout: u64,
    /// Seconds the command may run (default: no limit).
    #[arg(long, value_parser = seconds_arg)]
    pub command_timeout: Option<u64>,
}

/// A whole number of seconds within what the clocks can hold (see `value::MAX_SECONDS`).
fn seconds_arg(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of seconds"))?;
    crate::value::whole_seconds(n, "timeout")?;
    Ok(n)
}
