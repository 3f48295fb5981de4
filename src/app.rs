//! Carries out the CLI commands and maps outcomes to exit codes.

use std::io::IsTerminal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{CommandFactory, Parser};
use serde_json::{Map, Value};

use crate::cli::{
    CheckArgs, Cli, Command, InventoryArgs, OutputFormat, PlanArgs, RunArgs, VaultOpt,
};
use crate::diag::{Diag, DiagKind};
use crate::engine::{Engine, Output, RunOptions, RunSummary};
use crate::inventory::Inventory;
use crate::output::{Human, JsonLines, Tee};
use crate::playbook::{Playbook, load_playbook};
use crate::template::{Templar, TemplarOptions};

/// Prints to stdout, ignoring a closed pipe (`mixop inventory --list | head`), with vault
/// secrets masked (inventory listings and command output may hold them).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let text = format!($($arg)*);
        let _ = writeln!(std::io::stdout().lock(), "{}", crate::secret::mask(&text));
    }};
}
macro_rules! outn {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let text = format!($($arg)*);
        let _ = write!(std::io::stdout().lock(), "{}", crate::secret::mask(&text));
    }};
}

/// Exit codes (documented in README.md).
pub mod exit {
    pub const OK: i32 = 0;
    pub const INTERNAL: i32 = 1;
    pub const HOST_FAILED: i32 = 2;
    pub const INVALID_INPUT: i32 = 3;
    pub const HOST_UNREACHABLE: i32 = 4;
    pub const USAGE: i32 = 5;
    pub const INTERRUPTED: i32 = 130;
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
            let _ = e.print();
            return code;
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(d) => report(&d),
    }
}

/// Prints a diagnostic on stderr and returns its exit code.
pub fn report(d: &Diag) -> i32 {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", crate::secret::mask(&d.render(color)));
    match d.kind {
        DiagKind::Input => exit::INVALID_INPUT,
        DiagKind::Usage => exit::USAGE,
        DiagKind::Internal => exit::INTERNAL,
    }
}

/// Reads the vault passwords the command line names (else those ansible.cfg names), before
/// anything is loaded.
fn vault_setup(opts: &VaultOpt) -> Result<(), Diag> {
    let config = crate::config::get();
    let keyring = if opts.password_files.is_empty() && opts.ids.is_empty() && !opts.ask {
        crate::vault::keyring_from(&VaultOpt {
            password_files: config.vault_password_files.clone(),
            ids: config.vault_identities.clone(),
            ask: false,
        })?
    } else {
        crate::vault::keyring_from(opts)?
    };
    crate::vault::install(keyring);
    Ok(())
}

/// The inventory sources: `-i`, else ansible.cfg's `inventory` (or `$ANSIBLE_INVENTORY`).
fn inventory_sources(opt: &crate::cli::InventoryOpt) -> Vec<PathBuf> {
    if opt.inventory.is_empty() {
        crate::config::get().inventory.clone()
    } else {
        opt.inventory.clone()
    }
}

/// Reads ansible.cfg and the `ANSIBLE_*` environment once, before anything else.
/// The command line's connection and become options are laid over it here.
fn config_setup(command: &Command) -> Result<(), Diag> {
    let mut config = crate::config::discover()?;
    for w in &config.warnings {
        eprintln!("[WARNING]: {w}");
    }
    match command {
        Command::Run(a) if !a.plan_only() => config.apply_cli(&a.conn, Some(&a.become_))?,
        Command::Run(a) => config.apply_cli(
            &crate::cli::ConnOpt {
                ask_pass: false,
                ..a.conn.clone()
            },
            Some(&crate::cli::BecomeOpt {
                ask_become_pass: false,
                ..a.become_.clone()
            }),
        )?,
        Command::Exec(a) => config.apply_cli(&a.conn, None)?,
        Command::Ping(a) => config.apply_cli(&a.conn, None)?,
        _ => {}
    }
    crate::config::install(config);
    Ok(())
}

fn dispatch(cli: Cli) -> Result<i32, Diag> {
    if !matches!(cli.command, Command::Completions { .. }) {
        config_setup(&cli.command)?;
    }
    match cli.command {
        Command::Inventory(args) => {
            vault_setup(&args.vault)?;
            inventory_cmd(args)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mixop", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Run(args) => {
            vault_setup(&args.plan.vault)?;
            run_cmd(args)
        }
        Command::Ping(args) => {
            vault_setup(&args.vault)?;
            let inv = adhoc_inventory(&inventory_sources(&args.inventory))?;
            adhoc_cmd(
                inv,
                &args.pattern,
                &args.extra_vars,
                None,
                args.timeout,
                None,
                args.forks,
            )
        }
        Command::Exec(args) => {
            vault_setup(&args.vault)?;
            let inv = adhoc_inventory(&inventory_sources(&args.inventory))?;
            let command = args.command.join(" ");
            adhoc_cmd(
                inv,
                &args.pattern,
                &args.extra_vars,
                Some(command),
                args.timeout,
                args.command_timeout,
                args.forks,
            )
        }
        Command::Check(args) => {
            vault_setup(&args.plan.vault)?;
            check_cmd(args)
        }
    }
}

/// Everything loaded and validated before any host is contacted.
struct Plan {
    inventory: Inventory,
    playbook: Playbook,
    templar: Arc<Templar>,
    extra_vars: Map<String, Value>,
    playbook_dir: PathBuf,
}

fn load_plan(args: &PlanArgs) -> Result<Plan, Diag> {
    let extra_vars = parse_extra_vars(&args.extra_vars)?;
    if !args.playbook.exists() {
        return Err(Diag::no_such_file("playbook", &args.playbook));
    }
    if !args.playbook.is_file() {
        return Err(Diag::input(format!(
            "playbook `{}` is not a file",
            args.playbook.display()
        )));
    }
    let playbook_dir = args
        .playbook
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let templar = Arc::new(Templar::new(TemplarOptions {
        search_paths: vec![playbook_dir.clone()],
    }));
    let sources = inventory_sources(&args.inventory);
    let mut inventory = if sources.is_empty() {
        let mut empty = Inventory::empty();
        empty.warnings.push(
            "no inventory was given (-i FILE, or `inventory` in ansible.cfg): only the implicit \
             localhost is available, and it is not part of `all`"
                .into(),
        );
        empty
    } else {
        Inventory::load(&sources)?
    };
    // group_vars/ and host_vars/ beside the playbook rank above the inventory's, as in Ansible.
    inventory.load_vars_dirs(&playbook_dir)?;
    inventory.ensure_implicit_localhost();
    for w in &inventory.warnings {
        eprintln!("[WARNING]: {}", crate::secret::mask(w));
    }
    let playbook = load_playbook(&args.playbook, &templar, &extra_vars)?;
    // Patterns are checked now so a typo fails before anything runs.
    if let Some(limit) = &args.limit {
        inventory.select(limit)?;
    }
    Ok(Plan {
        inventory,
        playbook,
        templar,
        extra_vars,
        playbook_dir,
    })
}

/// Resolves every host's connection settings (within `--limit`) as its transport will when it
/// connects (`connection::validate`): a wrong value is an input error naming the host, the
/// variable, the value and what is allowed — before any host is contacted, not at a host's
/// first task. Settings templated from what only a run knows are left to the run. Prints the
/// warnings for settings that are allowed but unsafe.
fn check_connections(plan: &Plan, limit: Option<&str>) -> Result<(), Diag> {
    let hosts = match limit {
        Some(l) => plan.inventory.select(l)?,
        None => plan.inventory.hosts.keys().cloned().collect(),
    };
    let mut errors = Vec::new();
    for host in hosts {
        let Ok(vars) = crate::engine::adhoc::conn_vars(
            &plan.inventory,
            &plan.templar,
            &host,
            &plan.extra_vars,
        ) else {
            continue;
        };
        let in_inventory = plan.inventory.hosts.contains_key(&host);
        let checked = crate::connection::spec_from_vars(&host, vars, None, None, in_inventory)
            .map_err(|e| format!("{host}: {e}"))
            .and_then(|spec| crate::connection::validate(&spec).map_err(|e| e.message));
        match checked {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("[WARNING]: {}", crate::secret::mask(&w));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(Diag::input(format!(
        "wrong connection settings:\n  {}",
        errors.join("\n  ")
    )))
}

fn check_cmd(args: CheckArgs) -> Result<i32, Diag> {
    let plan = load_plan(&args.plan)?;
    check_connections(&plan, args.plan.limit.as_deref())?;
    let tasks: usize = plan
        .playbook
        .plays
        .iter()
        .map(|p| {
            count_tasks(&p.pre_tasks)
                + count_tasks(&p.tasks)
                + count_tasks(&p.post_tasks)
                + count_tasks(&p.handlers)
        })
        .sum();
    // The implicit localhost counts only when a play targets it (as ansible-playbook's
    // `--list-hosts` shows it only then).
    let mut targeted = std::collections::HashSet::new();
    for play in &plan.playbook.plays {
        if let Ok((_, hosts)) = crate::engine::play_hosts(
            &plan.inventory,
            &plan.templar,
            play,
            &plan.extra_vars,
            args.plan.limit.as_deref(),
        ) {
            targeted.extend(hosts);
        }
    }
    let hosts = plan
        .inventory
        .hosts
        .iter()
        .filter(|(name, h)| !h.implicit || targeted.contains(*name))
        .count();
    out!(
        "{}: ok ({} play{}, {} task{}, {} inventory host{})",
        args.plan.playbook.display(),
        plan.playbook.plays.len(),
        if plan.playbook.plays.len() == 1 {
            ""
        } else {
            "s"
        },
        tasks,
        if tasks == 1 { "" } else { "s" },
        hosts,
        if hosts == 1 { "" } else { "s" },
    );
    Ok(exit::OK)
}

fn count_tasks(tasks: &[crate::playbook::Task]) -> usize {
    tasks
        .iter()
        .map(|t| match &t.kind {
            crate::playbook::TaskKind::Block {
                block,
                rescue,
                always,
            } => count_tasks(block) + count_tasks(rescue) + count_tasks(always),
            _ => 1,
        })
        .sum()
}

fn run_cmd(args: RunArgs) -> Result<i32, Diag> {
    let plan = load_plan(&args.plan)?;
    if args.syntax_check {
        // What ansible-playbook --syntax-check prints once every file has loaded.
        out!("\nplaybook: {}", args.plan.playbook.display());
        return Ok(exit::OK);
    }
    if args.list_hosts || args.list_tasks || args.list_tags {
        outn!("{}", listing(&plan, &args)?);
        return Ok(exit::OK);
    }
    check_connections(&plan, args.plan.limit.as_deref())?;
    let log = crate::output::init_log(args.log.as_deref(), args.verbose).map_err(Diag::usage)?;
    let renderer: Box<dyn Output> = match args.output {
        OutputFormat::Human => Box::new(Human::new(args.verbose)),
        OutputFormat::Json => Box::new(JsonLines::new()),
    };
    let out: Arc<dyn Output> = Arc::new(Tee {
        inner: renderer,
        log,
    });
    let opts = RunOptions {
        limit: args.plan.limit.clone(),
        tags: args.plan.tags.clone(),
        skip_tags: args.plan.skip_tags.clone(),
        check: args.check,
        diff: args.diff,
        forks: args.forks.or(crate::config::get().forks),
        start_at_task: args.start_at_task.clone(),
        extra_vars: plan.extra_vars,
        verbosity: args.verbose,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Diag::internal(format!("cannot start the async runtime: {e}")))?;
    let engine = Engine::new(plan.inventory, plan.templar, opts, out, &plan.playbook_dir);
    let playbook = plan.playbook;
    runtime.block_on(async {
        let t0 = Instant::now();
        // On Ctrl-C, select! drops the run's future before `finish` starts: every command in
        // flight is then being stopped (connection::Cleanup), and `finish` waits for that.
        let summary = tokio::select! {
            r = engine.run(&playbook) => r?,
            _ = tokio::signal::ctrl_c() => engine.finish(t0, true).await,
        };
        Ok(exit_code(&summary))
    })
}

/// ansible-playbook's `--list-hosts` / `--list-tasks` / `--list-tags` text for the loaded plan:
/// plays with their hosts (within --limit, in inventory order where Ansible's is arbitrary), the
/// tasks --tags/--skip-tags select (as Ansible, `rescue`/`always` tasks and handlers are not
/// listed, nor the tasks of an `include_tasks`), and the tags.
fn listing(plan: &Plan, args: &RunArgs) -> Result<String, Diag> {
    use std::fmt::Write;
    let opts = &args.plan;
    // As ansible-playbook: --list-tags without tag options lists `never` tasks' tags too.
    let only = if args.list_tags && opts.tags.is_empty() && opts.skip_tags.is_empty() {
        vec!["never".to_string(), "all".to_string()]
    } else {
        opts.tags.clone()
    };
    let select = |tags: &[String]| crate::engine::tags_selected(tags, &only, &opts.skip_tags);
    let mut text = format!("\nplaybook: {}\n", opts.playbook.display());
    for (idx, play) in plan.playbook.plays.iter().enumerate() {
        let (pattern, hosts) = crate::engine::play_hosts(
            &plan.inventory,
            &plan.templar,
            play,
            &plan.extra_vars,
            opts.limit.as_deref(),
        )?;
        let (vars, _) = crate::engine::play_vars(&plan.templar, play, &plan.extra_vars)?;
        let name =
            crate::engine::play_name(&plan.templar, play, &pattern, &vars, &plan.extra_vars)?;
        let _ = write!(
            text,
            "\n  play #{} ({pattern}): {name}\tTAGS: [{}]\n",
            idx + 1,
            play.tags.join(",")
        );
        if args.list_hosts {
            let _ = writeln!(
                text,
                "    pattern: {}\n    hosts ({}):",
                crate::template::py_repr_json(&serde_json::json!([pattern])),
                hosts.len()
            );
            for h in &hosts {
                let _ = writeln!(text, "      {h}");
            }
        }
        if !(args.list_tasks || args.list_tags) {
            continue;
        }
        let mut lines = String::new();
        let mut all_tags: Vec<String> = play.tags.clone();
        let sections = [&play.pre_tasks, &play.tasks, &play.post_tasks];
        for task in sections.into_iter().flatten() {
            list_task(task, &select, &play.tags, &mut all_tags, &mut lines);
        }
        if args.list_tasks {
            let _ = write!(text, "    tasks:\n{lines}");
        }
        if args.list_tags {
            all_tags.sort();
            all_tags.dedup();
            let _ = writeln!(text, "      TASK TAGS: [{}]", all_tags.join(", "));
        }
    }
    Ok(text)
}

/// One task of `listing` (a block: the tasks of its `block:` section), if the tags select it.
fn list_task(
    task: &crate::playbook::Task,
    select: &dyn Fn(&[String]) -> bool,
    play_tags: &[String],
    all_tags: &mut Vec<String>,
    lines: &mut String,
) {
    if let crate::playbook::TaskKind::Block { block, .. } = &task.kind {
        for t in block {
            list_task(t, select, play_tags, all_tags, lines);
        }
        return;
    }
    if !select(&task.tags) {
        return;
    }
    all_tags.extend(task.tags.iter().cloned());
    let mut tags: Vec<&String> = play_tags.iter().chain(&task.tags).collect();
    tags.sort();
    tags.dedup();
    let tags: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
    lines.push_str(&format!(
        "      {}\tTAGS: [{}]\n",
        task.listed_name(),
        tags.join(", ")
    ));
}

fn exit_code(summary: &RunSummary) -> i32 {
    if summary.interrupted {
        return exit::INTERRUPTED;
    }
    let mut code = exit::OK;
    if summary.any_failed() {
        code |= exit::HOST_FAILED;
    }
    if summary.any_unreachable() {
        code |= exit::HOST_UNREACHABLE;
    }
    code
}

/// `-e key=value`, `-e '{"json": 1}'` / YAML text, `-e @file.yml`; later ones win.
fn parse_extra_vars(items: &[String]) -> Result<Map<String, Value>, Diag> {
    let mut vars = Map::new();
    for item in items {
        let item = item.trim();
        let parsed: Value = if let Some(file) = item.strip_prefix('@') {
            let docs = crate::yaml::load_file(Path::new(file))?;
            docs.first().map(|d| d.to_value()).unwrap_or(Value::Null)
        } else if item.starts_with('{') || item.starts_with('[') {
            let docs =
                crate::yaml::load_str(crate::diag::Source::new("<extra vars>", item.to_string()))?;
            docs.first().map(|d| d.to_value()).unwrap_or(Value::Null)
        } else {
            let (pairs, free) = crate::modules::split_kv(item);
            if !free.trim().is_empty() {
                return Err(Diag::usage(format!(
                    "-e `{item}`: expected key=value, JSON/YAML, or @file"
                )));
            }
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
        };
        match parsed {
            Value::Object(m) => crate::value::merge(&mut vars, &m, false),
            Value::Null => {}
            _ => {
                return Err(Diag::usage(format!(
                    "-e `{item}`: extra vars must be a mapping"
                )));
            }
        }
    }
    Ok(vars)
}

fn adhoc_inventory(paths: &[PathBuf]) -> Result<Inventory, Diag> {
    let mut inv = if paths.is_empty() {
        Inventory::empty()
    } else {
        Inventory::load(paths)?
    };
    inv.ensure_implicit_localhost();
    Ok(inv)
}

/// `ping` (no command) and `exec`: results grouped per host, in inventory order.
fn adhoc_cmd(
    inv: Inventory,
    pattern: &str,
    extra: &[String],
    command: Option<String>,
    timeout: u64,
    command_timeout: Option<u64>,
    forks: usize,
) -> Result<i32, Diag> {
    let extra = parse_extra_vars(extra)?;
    let hosts = inv.select(pattern)?;
    if hosts.is_empty() {
        return Err(Diag::usage(format!("no hosts match `{pattern}`")));
    }
    let templar = Templar::new(TemplarOptions::default());
    let specs = hosts
        .iter()
        .map(|h| {
            crate::engine::adhoc::conn_spec(&inv, &templar, h, &extra).map_err(|e| (h.clone(), e))
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Diag::internal(format!("cannot start the async runtime: {e}")))?;
    let is_ping = command.is_none();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let results = runtime.block_on(async {
        let run = crate::engine::adhoc::run(
            specs,
            command,
            std::time::Duration::from_secs(timeout),
            command_timeout.map(std::time::Duration::from_secs),
            forks,
            stop_rx,
        );
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => r,
            _ = tokio::signal::ctrl_c() => {
                // Every host stops what it runs (bounded) and reports.
                let _ = stop_tx.send(true);
                run.await
            }
        }
    });
    let width = results.iter().map(|r| r.host.len()).max().unwrap_or(0);
    let (mut failed, mut unreachable) = (false, false);
    let interrupted = *stop_tx.borrow();
    for r in &results {
        let transport = r.transport.map(|t| t.as_str()).unwrap_or("?");
        if let Some(what) = &r.interrupted {
            out!(
                "{:width$} | INTERRUPTED | {transport} | {what} ({} ms)",
                r.host,
                r.run_ms
            );
            continue;
        }
        match &r.outcome {
            Err(e) => {
                if e.kind == crate::connection::ConnErrorKind::Unreachable {
                    unreachable = true;
                } else {
                    failed = true;
                }
                out!(
                    "{:width$} | UNREACHABLE | {transport} | {}",
                    r.host,
                    e.message
                );
            }
            Ok(o) if is_ping => {
                if o.rc != 0 {
                    failed = true;
                }
                out!(
                    "{:width$} | {} | {transport} | connect {} ms, round trip {} ms",
                    r.host,
                    if o.rc == 0 { "ok" } else { "FAILED" },
                    r.connect_ms,
                    r.run_ms
                );
            }
            Ok(o) => {
                if o.rc != 0 {
                    failed = true;
                }
                out!(
                    "{:width$} | {} | rc={} | {} ms",
                    r.host,
                    if o.rc == 0 { "ok" } else { "FAILED" },
                    o.rc,
                    r.run_ms
                );
                let text = String::from_utf8_lossy(&o.stdout);
                for l in text.trim_end().lines() {
                    out!("  {l}");
                }
                let err = String::from_utf8_lossy(&o.stderr);
                for l in err.trim_end().lines() {
                    out!("  stderr: {l}");
                }
            }
        }
    }
    if interrupted {
        out!("interrupted (SIGINT)");
        return Ok(exit::INTERRUPTED);
    }
    let mut code = exit::OK;
    if failed {
        code |= exit::HOST_FAILED;
    }
    if unreachable {
        code |= exit::HOST_UNREACHABLE;
    }
    Ok(code)
}

fn inventory_cmd(args: InventoryArgs) -> Result<i32, Diag> {
    let inv = Inventory::load(&inventory_sources(&args.inventory))?;
    if let Some(host) = &args.host {
        if !inv.hosts.contains_key(host) {
            return Err(Diag::usage(format!(
                "host `{host}` is not in the inventory"
            )));
        }
        let vars = serde_json::Value::Object(inv.host_vars(host));
        out!(
            "{}",
            serde_json::to_string_pretty(&vars).unwrap_or_default()
        );
    } else if args.graph {
        outn!("{}", inv.graph(args.group.as_deref(), args.vars)?);
    } else if args.list {
        out!(
            "{}",
            serde_json::to_string_pretty(&inv.to_list_json()).unwrap_or_default()
        );
    } else {
        return Err(Diag::usage("choose one of --list, --graph or --host NAME"));
    }
    Ok(exit::OK)
}
