//! Windows modules that need nothing but the transport: `win_command` (an executable with
//! arguments, no shell: not even cmd.exe, so `& | < > ^ %VAR%` and quotes reach the program as
//! given) and `win_shell` (a PowerShell script), with Ansible's return values.
//! PowerShell always goes through `powershell::script`, the one place that builds it.

use async_trait::async_trait;
use serde_json::Value;

use super::WINDOWS;
use crate::connection::CommandSpec;
use crate::modules::ParamType::*;
use crate::modules::builtin::{CommandClock, command_result, finish_rc};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, arg_bool, arg_str,
    outcome, p,
};
use crate::powershell::clixml;
use crate::powershell::script as ps;

static WIN_COMMAND_DEF: ModuleDef = ModuleDef {
    name: "win_command",
    namespaces: WINDOWS,
    params: &[
        p("cmd", Str),
        p("argv", List),
        p("chdir", Str),
        p("creates", Str),
        p("removes", Str),
        p("stdin", Str),
        p("output_encoding_override", Str),
    ],
    free_form: FreeForm::Command,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[&["cmd", "argv"]],
    required_one_of: &[&["cmd", "argv"]],
};

static WIN_SHELL_DEF: ModuleDef = ModuleDef {
    name: "win_shell",
    namespaces: WINDOWS,
    params: &[
        p("cmd", Str),
        p("chdir", Str),
        p("creates", Str),
        p("removes", Str),
        p("stdin", Str),
        p("executable", Str),
        p("no_profile", Bool),
        p("output_encoding_override", Str),
    ],
    free_form: FreeForm::Command,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[&["cmd"]],
};

pub(super) struct WinCommand;
pub(super) struct WinShell;

/// `creates` / `removes`: one small PowerShell probe. Returns the skip message when the task
/// must not run.
async fn creates_removes(ctx: &ModuleCtx<'_>, args: &Args) -> Result<Option<String>, ModError> {
    for (key, want_exists) in [("creates", true), ("removes", false)] {
        let Some(path) = arg_str(args, key) else {
            continue;
        };
        let probe = ps::command(&format!(
            "if (Test-Path -LiteralPath {}) {{ exit 0 }} else {{ exit 1 }}",
            ps::quote(path)
        ));
        let out = ctx.exec(probe.cmdline, probe.stdin).await?;
        if (out.rc == 0) == want_exists {
            let what = if want_exists {
                "exists"
            } else {
                "does not exist"
            };
            return Ok(Some(format!("skipped, since {path} {what}")));
        }
    }
    Ok(None)
}

fn skipped_result(cmd: Value, msg: String) -> ModResult {
    let mut r = outcome(false);
    r.insert("cmd".into(), cmd);
    r.insert("rc".into(), 0.into());
    r.insert("msg".into(), msg.clone().into());
    r.insert("stdout".into(), msg.clone().into());
    r.insert("stdout_lines".into(), Value::Array(vec![msg.into()]));
    r.insert("stderr".into(), "".into());
    r.insert("stderr_lines".into(), Value::Array(vec![]));
    Ok(r)
}

/// How a prepared command line is started.
enum Via<'a> {
    /// cmd.exe (win_shell with `executable: cmd`).
    Cmd,
    /// A powershell.exe command line whose script sets the task's environment itself (cmd.exe's
    /// `set "K=V"&&` would expand `%` in the values).
    PowerShell,
    /// No shell at all (win_command), in this working directory.
    Program { cwd: Option<&'a str> },
}

/// Runs a prepared command line; adds Ansible's timing keys; non-zero rc fails.
async fn run(
    ctx: &ModuleCtx<'_>,
    display: Value,
    cmdline: String,
    stdin: Option<Vec<u8>>,
    via: Via<'_>,
) -> ModResult {
    let clock = CommandClock::start();
    let out = match via {
        Via::Cmd => ctx.exec_live(cmdline, stdin).await?,
        Via::PowerShell => {
            let spec = CommandSpec {
                cmd: cmdline,
                stdin,
                env: Vec::new(),
                timeout: ctx.timeout,
                become_: ctx.become_.clone(),
                output: ctx.output.clone(),
            };
            ctx.connection().await?.exec(spec).await?
        }
        Via::Program { cwd } => ctx.exec_program(cmdline, stdin, cwd).await?,
    };
    // Windows programs end lines with CRLF; results carry LF like Ansible's. PowerShell's
    // error records arrive on stderr as CLIXML: decoded to plain text, as Ansible's win_shell.
    let normalize = |b: &[u8]| String::from_utf8_lossy(b).replace("\r\n", "\n");
    let stderr = clixml::decode_stderr(&normalize(&out.stderr));
    let mut r = command_result(
        out.rc,
        normalize(&out.stdout).as_bytes(),
        stderr.as_bytes(),
        true,
    );
    r.insert("cmd".into(), display);
    clock.stamp(&mut r);
    finish_rc(r)
}

fn stdin_of(args: &Args) -> Option<Vec<u8>> {
    arg_str(args, "stdin").map(|s| format!("{s}\r\n").into_bytes())
}

#[async_trait]
impl Module for WinCommand {
    fn def(&self) -> &'static ModuleDef {
        &WIN_COMMAND_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        // The program gets exactly this command line: no cmd.exe re-parses it (see
        // `Connection::exec_program`). `argv` words are quoted by the CommandLineToArgvW rules;
        // a free-form `cmd` is the command line itself, as Ansible's win_command passes it.
        let (display, line) = match args.get("argv") {
            Some(Value::Array(words)) => {
                let words: Vec<String> = words.iter().map(crate::value::to_text).collect();
                match words.first() {
                    None => return Err(ModError::msg("win_command: argv is empty")),
                    Some(program) if program.is_empty() || program.contains('"') => {
                        return Err(ModError::msg(format!(
                            "win_command: {program:?} is not a program path (empty, or with a \
                             double quote, which Windows paths cannot contain)"
                        )));
                    }
                    Some(_) => {}
                }
                (
                    Value::Array(words.iter().map(|w| Value::String(w.clone())).collect()),
                    words
                        .iter()
                        .map(|w| ps::quote_arg(w))
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }
            _ => {
                let cmd = arg_str(&args, "cmd").unwrap_or_default().to_string();
                (Value::String(cmd.clone()), cmd)
            }
        };
        if let Some(msg) = creates_removes(ctx, &args).await? {
            return skipped_result(display, msg);
        }
        if ctx.check_mode {
            let mut r = outcome(false);
            r.insert("skipped".into(), true.into());
            r.insert(
                "msg".into(),
                "Command would have run if not in check mode".into(),
            );
            return Ok(r);
        }
        let cwd = arg_str(&args, "chdir");
        run(ctx, display, line, stdin_of(&args), Via::Program { cwd }).await
    }
}

#[async_trait]
impl Module for WinShell {
    fn def(&self) -> &'static ModuleDef {
        &WIN_SHELL_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let script = arg_str(&args, "cmd").unwrap_or_default().to_string();
        let display = Value::String(script.clone());
        if let Some(msg) = creates_removes(ctx, &args).await? {
            return skipped_result(display, msg);
        }
        if ctx.check_mode {
            let mut r = outcome(false);
            r.insert("skipped".into(), true.into());
            r.insert(
                "msg".into(),
                "Command would have run if not in check mode".into(),
            );
            return Ok(r);
        }
        let executable = arg_str(&args, "executable").unwrap_or("powershell");
        if matches!(executable.to_ascii_lowercase().as_str(), "cmd" | "cmd.exe") {
            let line = match arg_str(&args, "chdir") {
                Some(dir) => format!("cd /d {} && {script}", ps::quote_arg(dir)),
                None => script,
            };
            return run(ctx, display, line, stdin_of(&args), Via::Cmd).await;
        }
        if !matches!(
            executable.to_ascii_lowercase().as_str(),
            "powershell" | "powershell.exe"
        ) {
            return Err(ModError::msg(format!(
                "win_shell: executable `{executable}` is not supported (use powershell or cmd)"
            )));
        }
        // The script's rc is its last native command's exit code, like Ansible's win_shell.
        // The task's environment is set by the script, each value a quoted literal.
        let mut full = String::new();
        for (k, v) in &ctx.env {
            full.push_str(&format!(
                "[Environment]::SetEnvironmentVariable({}, {}, 'Process')\n",
                ps::quote(k),
                ps::quote(v)
            ));
        }
        if let Some(dir) = arg_str(&args, "chdir") {
            full.push_str(&format!("Set-Location -LiteralPath {}\n", ps::quote(dir)));
        }
        full.push_str(&script);
        full.push_str("\nif ($LASTEXITCODE) { exit $LASTEXITCODE }\n");
        // The script (and the environment values in it) goes on stdin unless the task gives
        // the script its own: a command line is visible to anyone listing the host's processes.
        let own_stdin = stdin_of(&args);
        let command = if own_stdin.is_some() {
            ps::command(&full)
        } else {
            ps::command_hidden(&full)
        };
        let stdin = match (command.stdin, own_stdin) {
            (Some(_), Some(_)) => {
                return Err(ModError::msg(format!(
                    "win_shell: a script longer than cmd.exe's {} character limit is sent over stdin, so it cannot also take `stdin`",
                    ps::CMD_MAX
                )));
            }
            (a, b) => a.or(b),
        };
        let _ = arg_bool(&args, "no_profile", true);
        run(ctx, display, command.cmdline, stdin, Via::PowerShell).await
    }
}
