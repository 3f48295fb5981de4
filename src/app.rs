//! Carries out the CLI commands and maps outcomes to exit codes.

use std::io::IsTerminal;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, InventoryArgs};
use crate::diag::{Diag, DiagKind};
use crate::inventory::Inventory;

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
    eprint!("{}", d.render(color));
    match d.kind {
        DiagKind::Input => exit::INVALID_INPUT,
        DiagKind::Usage => exit::USAGE,
        DiagKind::Internal => exit::INTERNAL,
    }
}

fn dispatch(cli: Cli) -> Result<i32, Diag> {
    match cli.command {
        Command::Inventory(args) => inventory_cmd(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mixop", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Run(_) | Command::Check(_) => Err(Diag::internal("not implemented yet")),
    }
}

fn inventory_cmd(args: InventoryArgs) -> Result<i32, Diag> {
    let inv = Inventory::load(&args.inventory.inventory)?;
    if let Some(host) = &args.host {
        if !inv.hosts.contains_key(host) {
            return Err(Diag::usage(format!(
                "host `{host}` is not in the inventory"
            )));
        }
        let vars = serde_json::Value::Object(inv.host_vars(host));
        println!(
            "{}",
            serde_json::to_string_pretty(&vars).unwrap_or_default()
        );
    } else if args.graph {
        print!("{}", inv.graph(args.group.as_deref(), args.vars)?);
    } else if args.list {
        println!(
            "{}",
            serde_json::to_string_pretty(&inv.to_list_json()).unwrap_or_default()
        );
    } else {
        return Err(Diag::usage("choose one of --list, --graph or --host NAME"));
    }
    Ok(exit::OK)
}
