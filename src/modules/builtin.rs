//! Modules that run commands or act on the controller: command, shell, raw, debug, set_fact,
//! assert, fail, pause, meta, wait_for.

use crate::modules::Target;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::ParamType::*;
use super::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, alias, arg_bool, arg_str,
    choice, outcome, p, posix, wait,
};
use crate::connection::Transport;
use crate::value::to_text;

pub static MODULES: &[&dyn Module] = &[
    &Command,
    &Shell,
    &Raw,
    &Script,
    &Debug,
    &SetFact,
    &Assert,
    &Fail,
    &Pause,
    &Meta,
    &WaitFor,
    &Setup,
    &Ping,
    &super::include_vars::IncludeVars,
];

const BUILTIN: &[&str] = &["ansible.builtin"];

const COMMAND_PARAMS: &[super::Param] = &[
    p("cmd", Str),
    p("argv", List),
    p("chdir", Str),
    p("creates", Str),
    p("removes", Str),
    p("stdin", Str),
    p("stdin_add_newline", Bool),
    p("strip_empty_ends", Bool),
    p("executable", Str),
    p("expand_argument_vars", Bool),
];

static COMMAND_DEF: ModuleDef = ModuleDef {
    name: "command",
    namespaces: BUILTIN,
    params: COMMAND_PARAMS,
    free_form: FreeForm::Command,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["cmd", "argv"]],
    required_one_of: &[&["cmd", "argv"]],
};
static SHELL_DEF: ModuleDef = ModuleDef {
    name: "shell",
    mutually_exclusive: &[],
    required_one_of: &[&["cmd"]],
    ..COMMAND_DEF
};

struct Command;
struct Shell;
struct Script;

static SCRIPT_DEF: ModuleDef = ModuleDef {
    name: "script",
    namespaces: BUILTIN,
    params: &[
        p("cmd", Str),
        p("chdir", Str),
        p("creates", Str),
        p("removes", Str),
        p("executable", Str),
        p("decrypt", Bool),
    ],
    free_form: FreeForm::Command,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[&["cmd"]],
};

#[async_trait]
impl Module for Command {
    fn def(&self) -> &'static ModuleDef {
        &COMMAND_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        // The program's words: `argv` as given (each item one argument), or `cmd` split like
        // Python's shlex; Ansible returns these as `cmd`.
        let words: Vec<String> = match args.get("argv") {
            Some(Value::Array(words)) => words.iter().map(crate::value::arg_text).collect(),
            _ => {
                let cmd = arg_str(&args, "cmd").unwrap_or_default();
                shell_words::split(cmd)
                    .map_err(|e| ModError::msg(format!("cannot parse command `{cmd}`: {e}")))?
            }
        };
        if words.is_empty() {
            return Err(ModError::msg("no command given"));
        }
        // Never through a shell's syntax: each word is one argument, with only `~` and `$VAR`
        // expanded on the host as Ansible's run_command does (`expand_argument_vars`). `exec`
        // makes the first word a program, as subprocess runs it: never a shell builtin or a
        // `NAME=value` assignment.
        let expand = arg_bool(&args, "expand_argument_vars", true);
        let line = words
            .iter()
            .map(|w| {
                if expand {
                    posix::expand_word(w, false)
                } else {
                    posix::quote(w)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let cmd = Value::Array(words.into_iter().map(Value::String).collect());
        run_command(ctx, &args, format!("exec {line}"), cmd).await
    }
}

#[async_trait]
impl Module for Shell {
    fn def(&self) -> &'static ModuleDef {
        &SHELL_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let cmd = arg_str(&args, "cmd").unwrap_or_default().to_string();
        let line = match arg_str(&args, "executable") {
            Some(exe) => format!("{} -c {}", posix::quote(exe), posix::quote(&cmd)),
            None => cmd.clone(),
        };
        run_command(ctx, &args, line, Value::String(cmd)).await
    }
}

/// `script: files/setup.sh --flag value`: the controller's script is copied to a temporary
/// file on the host, run with its arguments (through `executable` when given), then removed.
/// creates/removes/chdir/check mode as `shell`.
#[async_trait]
impl Module for Script {
    fn def(&self) -> &'static ModuleDef {
        &SCRIPT_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let text = arg_str(&args, "cmd").unwrap_or_default().trim().to_string();
        let words = shell_words::split(&text)
            .map_err(|e| ModError::msg(format!("script: cannot split `{text}`: {e}")))?;
        let Some(name) = words.first() else {
            return Err(ModError::msg("script needs the path of a script"));
        };
        // The arguments as written (quoting kept): everything after the script's own word.
        let rest = super::split_raw_words(&text)
            .into_iter()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ");
        let local = ctx.find_local(name, "files")?;
        if ctx.check_mode {
            return run_command(ctx, &args, String::new(), Value::String(text)).await;
        }
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let remote = format!(
            "/tmp/.mixop-script-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            local
                .file_name()
                .map(|f| f
                    .to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "_"))
                .unwrap_or_default()
        );
        // Readable by a become user other than the connecting one, as Ansible makes it.
        let mode = match &ctx.become_ {
            Some(b) if b.user != "root" => 0o755,
            _ => 0o700,
        };
        // A vault-encrypted script runs as its plaintext unless `decrypt: false`, as in Ansible.
        let conn = ctx.connection().await?;
        if arg_bool(&args, "decrypt", true) && crate::vault::is_vault_file(&local) {
            let (plain, _) = crate::vault::read(&local).map_err(|d| ModError::msg(d.message))?;
            conn.put_bytes(&plain, &remote, Some(mode)).await?;
        } else {
            conn.put_file(&local, &remote, Some(mode)).await?;
        }
        let program = posix::quote(&remote);
        let line = match arg_str(&args, "executable") {
            Some(exe) => format!("{} {program} {rest}", posix::quote(exe)),
            None => format!("{program} {rest}"),
        };
        let result =
            run_command(ctx, &args, line.trim_end().to_string(), Value::String(text)).await;
        let _ = ctx.exec(format!("rm -f {program}"), None).await;
        result
    }
}

/// Shared by command and shell: chdir, creates/removes, check mode, stdin, Ansible's return
/// values (`cmd` is what Ansible reports: the words for command, the text for shell).
async fn run_command(ctx: &ModuleCtx<'_>, args: &Args, line: String, cmd: Value) -> ModResult {
    // `chdir`, `creates` and `removes` are Ansible `path` arguments: `~` and `$VAR` expand on
    // the host.
    let chdir = arg_str(args, "chdir").map(|d| posix::expand_word(d, false));
    let creates = arg_str(args, "creates");
    let removes = arg_str(args, "removes");
    if creates.is_some() || removes.is_some() {
        let probe = ctx
            .exec(paths_probe(chdir.as_deref(), creates, removes), None)
            .await?;
        if probe.rc == CHDIR_FAILED {
            let mut r = outcome(false);
            r.insert("cmd".into(), cmd);
            r.insert("rc".into(), Value::Null);
            r.insert(
                "stderr".into(),
                String::from_utf8_lossy(&probe.stderr).trim_end().into(),
            );
            return Err(ModError::Failed {
                msg: "Unable to change directory before execution.".into(),
                result: r,
            });
        }
        if probe.rc != 0 {
            return Err(ModError::msg(format!(
                "cannot check creates/removes: {}",
                String::from_utf8_lossy(&probe.stderr).trim_end()
            )));
        }
        let (msg, stdout) = paths_verdict(
            &probe.stdout,
            [creates.is_some(), removes.is_some()],
            ctx.check_mode,
        )?;
        if let Some(msg) = msg {
            return Ok(not_run(cmd, false, &msg, &stdout));
        }
    }
    if ctx.check_mode {
        // Ansible's partial check mode: with creates/removes the command "would have run"
        // (changed); without them it is skipped.
        let guarded = creates.is_some() || removes.is_some();
        let mut r = not_run(
            cmd,
            guarded,
            "Command would have run if not in check mode",
            "",
        );
        if !guarded {
            r.insert("skipped".into(), true.into());
        }
        return Ok(r);
    }
    let line = match &chdir {
        Some(dir) => format!("cd {dir} && {line}"),
        None => line,
    };
    let stdin = arg_str(args, "stdin").map(|s| {
        let mut data = s.as_bytes().to_vec();
        if arg_bool(args, "stdin_add_newline", true) {
            data.push(b'\n');
        }
        data
    });
    let strip = arg_bool(args, "strip_empty_ends", true);
    let clock = CommandClock::start();
    let out = ctx.exec_live(line, stdin).await?;
    let mut r = command_result(out.rc, &out.stdout, &out.stderr, strip);
    r.insert("cmd".into(), cmd);
    r.insert("msg".into(), "".into());
    clock.stamp(&mut r);
    finish_rc(r)
}

/// The result of a command that did not run (creates/removes, check mode), with the keys
/// Ansible always returns.
fn not_run(cmd: Value, changed: bool, msg: &str, stdout: &str) -> Map<String, Value> {
    let mut r = outcome(changed);
    r.insert("cmd".into(), cmd);
    r.insert("rc".into(), 0.into());
    r.insert("msg".into(), msg.into());
    r.insert("stdout".into(), stdout.into());
    r.insert(
        "stdout_lines".into(),
        stdout.lines().map(|l| Value::String(l.into())).collect(),
    );
    r.insert("stderr".into(), "".into());
    r.insert("stderr_lines".into(), Value::Array(vec![]));
    for k in ["start", "end", "delta"] {
        r.insert(k.into(), Value::Null);
    }
    r
}

/// Exit status of the paths probe when `chdir` fails.
const CHDIR_FAILED: i32 = 97;

/// One round trip for `creates`/`removes`, as Ansible's command module checks them: after
/// `chdir`, each path expanded (`~`, `$VAR`) and matched with Python's `glob.glob` rules
/// (`*` skips dot files, `.` and `..` are never matches, a dangling symlink counts). Prints, per
/// path given, `1` or `0` and the expanded path, NUL-terminated.
fn paths_probe(chdir: Option<&str>, creates: Option<&str>, removes: Option<&str>) -> String {
    // e LITERAL BRACKET MATCHES...: sh keeps an unmatched pattern as written (LITERAL); that is
    // a match only when it names an existing file and has no `[...]` class.
    let mut script = String::from(
        "e() { l=$1; b=$2; shift 2; for f; do \
         if [ \"$f\" = \"$l\" ]; then [ \"$b\" = 1 ] && continue; \
         else case $f in .|..|*/.|*/..) continue;; esac; fi; \
         if [ -e \"$f\" ] || [ -L \"$f\" ]; then printf '1\\0%s\\0' \"$l\"; return; fi; done; \
         printf '0\\0%s\\0' \"$l\"; }\n",
    );
    if let Some(dir) = chdir {
        script.push_str(&format!("cd {dir} || exit {CHDIR_FAILED}\n"));
    }
    for path in [creates, removes].into_iter().flatten() {
        let (pattern, bracket) = posix::glob_word(path);
        script.push_str(&format!(
            "e {} {} {pattern}\n",
            posix::expand_word(path, false),
            u8::from(bracket)
        ));
    }
    script
}

/// Ansible's decision from the probe's answer: `creates` matching, or else `removes` not
/// matching, skips the command with Ansible's `msg` and `stdout` (naming the expanded path).
fn paths_verdict(
    out: &[u8],
    [has_creates, has_removes]: [bool; 2],
    check_mode: bool,
) -> Result<(Option<String>, String), ModError> {
    let text = String::from_utf8_lossy(out);
    let fields: Vec<&str> = text.split('\0').collect();
    let answer = |i: usize| -> Result<(bool, &str), ModError> {
        match (fields.get(2 * i), fields.get(2 * i + 1)) {
            (Some(hit), Some(path)) if *hit == "0" || *hit == "1" => Ok((*hit == "1", path)),
            _ => Err(ModError::msg(format!(
                "unexpected answer checking creates/removes: {text:?}"
            ))),
        }
    };
    let shoulda = if check_mode { "Would" } else { "Did" };
    if has_creates {
        let (hit, path) = answer(0)?;
        if hit {
            return Ok((
                Some(format!("{shoulda} not run command since '{path}' exists")),
                format!("skipped, since {path} exists"),
            ));
        }
    }
    if has_removes {
        let (hit, path) = answer(usize::from(has_creates))?;
        if !hit {
            return Ok((
                Some(format!(
                    "{shoulda} not run command since '{path}' does not exist"
                )),
                format!("skipped, since {path} does not exist"),
            ));
        }
    }
    Ok((None, String::new()))
}

/// Ansible's `start`, `end` and `delta` of a command result (POSIX and Windows commands).
pub struct CommandClock {
    start: chrono::DateTime<chrono::Local>,
    t0: Instant,
}

impl CommandClock {
    pub fn start() -> CommandClock {
        CommandClock {
            start: chrono::Local::now(),
            t0: Instant::now(),
        }
    }

    pub fn stamp(&self, r: &mut Map<String, Value>) {
        const FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";
        r.insert("start".into(), self.start.format(FORMAT).to_string().into());
        r.insert(
            "end".into(),
            chrono::Local::now().format(FORMAT).to_string().into(),
        );
        r.insert("delta".into(), format_delta(self.t0.elapsed()).into());
    }
}

/// Ansible's `stdout`, `stdout_lines`, `stderr`, `stderr_lines`, `rc`, `changed: true`.
pub fn command_result(rc: i32, stdout: &[u8], stderr: &[u8], strip: bool) -> Map<String, Value> {
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).into_owned();
        if strip {
            s.trim_end_matches(['\n', '\r']).to_string()
        } else {
            s
        }
    };
    let (so, se) = (text(stdout), text(stderr));
    let mut r = outcome(true);
    r.insert("rc".into(), rc.into());
    r.insert(
        "stdout_lines".into(),
        so.lines().map(|l| Value::String(l.to_string())).collect(),
    );
    r.insert(
        "stderr_lines".into(),
        se.lines().map(|l| Value::String(l.to_string())).collect(),
    );
    r.insert("stdout".into(), so.into());
    r.insert("stderr".into(), se.into());
    r
}

/// A non-zero rc fails the task, keeping the output in the result.
pub fn finish_rc(r: Map<String, Value>) -> ModResult {
    let rc = r.get("rc").and_then(Value::as_i64).unwrap_or(0);
    if rc != 0 {
        return Err(ModError::Failed {
            msg: "non-zero return code".into(),
            result: r,
        });
    }
    Ok(r)
}

fn format_delta(d: Duration) -> String {
    let s = d.as_secs();
    format!(
        "{}:{:02}:{:02}.{:06}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        d.subsec_micros()
    )
}

static RAW_DEF: ModuleDef = ModuleDef {
    name: "raw",
    namespaces: BUILTIN,
    params: &[p("cmd", Str), p("executable", Str)],
    free_form: FreeForm::Command,
    open_args: false,
    target: Target::Any,
    mutually_exclusive: &[],
    required_one_of: &[&["cmd"]],
};

struct Raw;

#[async_trait]
impl Module for Raw {
    fn def(&self) -> &'static ModuleDef {
        &RAW_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        if ctx.check_mode {
            let mut r = outcome(false);
            r.insert("skipped".into(), true.into());
            r.insert("msg".into(), "raw commands do not run in check mode".into());
            return Ok(r);
        }
        let cmd = arg_str(&args, "cmd").unwrap_or_default().to_string();
        let line = match arg_str(&args, "executable") {
            Some(exe) if ctx.conn.transport != Transport::Winrm => {
                format!("{} -c {}", posix::quote(exe), posix::quote(&cmd))
            }
            _ => cmd,
        };
        let out = ctx.exec_live(line, None).await?;
        // raw keeps output exactly as received (no stripping), like Ansible.
        finish_rc(command_result(out.rc, &out.stdout, &out.stderr, false))
    }
}

static DEBUG_DEF: ModuleDef = ModuleDef {
    name: "debug",
    namespaces: BUILTIN,
    params: &[p("msg", Any), p("var", Str), p("verbosity", Int)],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[&["msg", "var"]],
    required_one_of: &[],
};

struct Debug;

#[async_trait]
impl Module for Debug {
    fn def(&self) -> &'static ModuleDef {
        &DEBUG_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let mut r = outcome(false);
        if let Some(var) = arg_str(&args, "var") {
            let value = match ctx.templar.eval(var, ctx.vars) {
                Ok(v) => v,
                Err(e) if e.undefined.is_some() => Value::String("VARIABLE IS NOT DEFINED!".into()),
                Err(e) => return Err(ModError::msg(e.message)),
            };
            r.insert(var.to_string(), value);
        } else {
            r.insert(
                "msg".into(),
                args.get("msg")
                    .cloned()
                    .unwrap_or_else(|| "Hello world!".into()),
            );
        }
        Ok(r)
    }
}

static SET_FACT_DEF: ModuleDef = ModuleDef {
    name: "set_fact",
    namespaces: BUILTIN,
    params: &[],
    free_form: FreeForm::KeyValue,
    open_args: true,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[],
};

struct SetFact;

#[async_trait]
impl Module for SetFact {
    fn def(&self) -> &'static ModuleDef {
        &SET_FACT_DEF
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, mut args: Args) -> ModResult {
        args.remove("cacheable");
        for k in args.keys() {
            if !is_identifier(k) {
                return Err(ModError::msg(format!("`{k}` is not a valid variable name")));
            }
        }
        let mut r = outcome(false);
        r.insert("ansible_facts".into(), Value::Object(args));
        Ok(r)
    }
}

pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

static ASSERT_DEF: ModuleDef = ModuleDef {
    name: "assert",
    namespaces: BUILTIN,
    params: &[
        super::req("that", Any),
        alias(p("fail_msg", Any), &["msg"]),
        p("success_msg", Any),
        p("quiet", Bool),
    ],
    free_form: FreeForm::No,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[],
};

struct Assert;

#[async_trait]
impl Module for Assert {
    fn def(&self) -> &'static ModuleDef {
        &ASSERT_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let conds: Vec<Value> = match args.get("that") {
            Some(Value::Array(a)) => a.clone(),
            Some(v) => vec![v.clone()],
            None => vec![],
        };
        for cond in conds {
            let ok = ctx
                .templar
                .eval_bool(&cond, ctx.vars)
                .map_err(|e| ModError::msg(e.message))?;
            if !ok {
                let mut result = outcome(false);
                result.insert("assertion".into(), cond.clone());
                result.insert("evaluated_to".into(), false.into());
                let msg = args
                    .get("fail_msg")
                    .map(to_text)
                    .unwrap_or_else(|| "Assertion failed".into());
                return Err(ModError::Failed { msg, result });
            }
        }
        let mut r = outcome(false);
        r.insert(
            "msg".into(),
            args.get("success_msg")
                .cloned()
                .unwrap_or_else(|| "All assertions passed".into()),
        );
        Ok(r)
    }
}

static FAIL_DEF: ModuleDef = ModuleDef {
    name: "fail",
    namespaces: BUILTIN,
    params: &[p("msg", Any)],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[],
};

struct Fail;

#[async_trait]
impl Module for Fail {
    fn def(&self) -> &'static ModuleDef {
        &FAIL_DEF
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let msg = args
            .get("msg")
            .map(to_text)
            .unwrap_or_else(|| "Failed as requested from task".into());
        Err(ModError::msg(msg))
    }
}

static PAUSE_DEF: ModuleDef = ModuleDef {
    name: "pause",
    namespaces: BUILTIN,
    params: &[
        p("seconds", Float),
        p("minutes", Float),
        p("prompt", Str),
        p("echo", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[&["seconds", "minutes"]],
    required_one_of: &[],
};

struct Pause;

#[async_trait]
impl Module for Pause {
    fn def(&self) -> &'static ModuleDef {
        &PAUSE_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        if !args.contains_key("seconds") && !args.contains_key("minutes") {
            return pause_for_enter(ctx, &args).await;
        }
        let secs = args
            .get("seconds")
            .and_then(Value::as_f64)
            .or_else(|| {
                args.get("minutes")
                    .and_then(Value::as_f64)
                    .map(|m| m * 60.0)
            })
            .unwrap_or(0.0)
            .max(0.0);
        let what = if args.contains_key("minutes") {
            "minutes"
        } else {
            "seconds"
        };
        let pause = crate::value::seconds(secs, what).map_err(ModError::msg)?;
        let t0 = Instant::now();
        tokio::time::sleep(pause).await;
        let mut r = outcome(false);
        r.insert(
            "delta".into(),
            (t0.elapsed().as_secs_f64().round() as i64).into(),
        );
        r.insert("echo".into(), true.into());
        // ansible-core: `Paused for <round(elapsed, 2)> seconds` (minutes for `minutes`).
        let elapsed = t0.elapsed().as_secs_f64();
        let shown = if what == "minutes" {
            elapsed / 60.0
        } else {
            elapsed
        };
        r.insert(
            "stdout".into(),
            format!(
                "Paused for {} {what}",
                crate::template::pyfmt::py_float((shown * 100.0).round() / 100.0)
            )
            .into(),
        );
        Ok(r)
    }
}

/// `pause` without a duration: waits for Enter on an interactive stdin and returns the line as
/// `user_input`; without one it goes on at once with a warning, as ansible-core does.
async fn pause_for_enter(ctx: &ModuleCtx<'_>, args: &Args) -> ModResult {
    use std::io::IsTerminal;
    let echo = arg_bool(args, "echo", true);
    let text = arg_str(args, "prompt").unwrap_or("Press enter to continue, Ctrl+C to interrupt");
    let hidden = if echo { "" } else { " (output is hidden)" };
    let prompt = format!("[{}]\n{text}{hidden}:", ctx.task);
    let t0 = Instant::now();
    let mut r = outcome(false);
    let user_input = if std::io::stdin().is_terminal() {
        let line = tokio::task::spawn_blocking(move || {
            if echo {
                eprint!("{prompt}");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            } else {
                crate::secret::ask(&prompt, "the pause prompt's answer", "")
                    .map_err(|d| std::io::Error::other(d.message))
            }
        })
        .await
        .map_err(|e| ModError::msg(e.to_string()))?
        .map_err(|e| ModError::msg(format!("could not read the answer: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        r.insert(
            "warnings".into(),
            serde_json::json!(["Not waiting for response to prompt as stdin is not interactive"]),
        );
        String::new()
    };
    r.insert("delta".into(), (t0.elapsed().as_secs() as i64).into());
    r.insert("echo".into(), echo.into());
    r.insert("user_input".into(), user_input.into());
    r.insert(
        "stdout".into(),
        format!("Paused for {:.2} seconds", t0.elapsed().as_secs_f64()).into(),
    );
    Ok(r)
}

pub const META_ACTIONS: &[&str] = &[
    "flush_handlers",
    "noop",
    "end_play",
    "end_host",
    "end_batch",
    "clear_facts",
    "clear_host_errors",
    "reset_connection",
];

static META_DEF: ModuleDef = ModuleDef {
    name: "meta",
    namespaces: BUILTIN,
    params: &[p("cmd", Str)],
    free_form: FreeForm::Command,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[&["cmd"]],
};

/// `meta` is carried out by the engine; this only exists for validation.
struct Meta;

#[async_trait]
impl Module for Meta {
    fn def(&self) -> &'static ModuleDef {
        &META_DEF
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, _args: Args) -> ModResult {
        Ok(outcome(false))
    }
}

static WAIT_FOR_DEF: ModuleDef = ModuleDef {
    name: "wait_for",
    namespaces: BUILTIN,
    params: &[
        p("host", Str),
        p("port", Int),
        p("path", Str),
        choice(
            "state",
            &["started", "stopped", "present", "absent", "drained"],
        ),
        p("timeout", Int),
        p("delay", Int),
        p("sleep", Int),
        p("connect_timeout", Int),
        p("search_regex", Str),
        p("exclude_hosts", List),
        p("msg", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[&["port", "path"]],
    required_one_of: &[],
};

struct WaitFor;

#[async_trait]
impl Module for WaitFor {
    fn def(&self) -> &'static ModuleDef {
        &WAIT_FOR_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let w = wait::Wait::from_args(&args).map_err(ModError::msg)?;
        let script = posix_wait_probe(&w)?;
        wait::run(&w, wait::Family::Posix, || {
            let script = script.clone();
            async move {
                let out = ctx.exec(script, None).await?;
                Ok(parse_observation(&String::from_utf8_lossy(&out.stdout)))
            }
        })
        .await
    }
}

/// One look at the condition, as a `sh` script printing `exists=`, `matched=` and `conn=`
/// lines: a TCP connection with bash's /dev/tcp (no extra tools on the target), established
/// connections to the port with `ss`, the path with `test -e`, its text with `grep -E`.
fn posix_wait_probe(w: &wait::Wait) -> Result<String, ModError> {
    if let Some(port) = w.port {
        if w.state == wait::State::Drained {
            return Ok(format!(
                "ss -Htn state established {} 2>/dev/null | awk '{{print \"conn=\" $4}}'",
                posix::quote(&format!("( sport = :{port} )"))
            ));
        }
        // Host and port are bash's positional parameters, never script text: a host name
        // from facts or another host's variables cannot run commands here.
        return Ok(format!(
            "if timeout {} {}; then echo exists=1; else echo exists=0; fi",
            w.connect_timeout,
            tcp_probe(&w.host, u64::from(port))?
        ));
    }
    let path = posix::quote(w.path.as_deref().unwrap_or_default());
    let grep = match &w.search_regex {
        Some(re) => format!(
            "if grep -Eq -- {} {path} 2>/dev/null; then echo matched=1; else echo matched=0; fi; ",
            posix::quote(re)
        ),
        None => String::new(),
    };
    Ok(format!(
        "if [ -e {path} ]; then echo exists=1; {grep}else echo exists=0; fi"
    ))
}

/// The probe's lines as an observation; `conn=` addresses lose their port.
fn parse_observation(out: &str) -> wait::Observation {
    let mut o = wait::Observation::default();
    for line in out.lines() {
        match line.trim().split_once('=') {
            Some(("exists", v)) => o.exists = v == "1",
            Some(("matched", v)) => o.matched = Some(v == "1"),
            Some(("conn", v)) if !v.is_empty() => {
                let addr = v.rsplit_once(':').map(|(a, _)| a).unwrap_or(v);
                let addr = addr.trim_start_matches('[').trim_end_matches(']');
                let addr = addr.strip_prefix("::ffff:").unwrap_or(addr);
                o.connections.push(addr.to_string());
            }
            _ => {}
        }
    }
    o
}

/// The command that tries a TCP connection: bash's /dev/tcp needs no extra tools on the
/// target. Host and port are bash's positional parameters, never part of its script, and the
/// host must look like a host name or an address.
fn tcp_probe(host: &str, port: u64) -> Result<String, ModError> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'));
    if !valid {
        return Err(ModError::msg(format!(
            "host `{host}` is not a host name or an IP address"
        )));
    }
    Ok(format!(
        "bash -c {} wait_for {} {port} 2>/dev/null",
        posix::quote("exec 3<>\"/dev/tcp/$1/$2\""),
        posix::quote(host)
    ))
}

static PING_DEF: ModuleDef = ModuleDef {
    name: "ping",
    namespaces: BUILTIN,
    params: &[p("data", Str)],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// `ping`: the host runs a command through its connection (and become); `data` comes back.
/// `data=crash` fails, as Ansible's ping raises.
struct Ping;

#[async_trait]
impl Module for Ping {
    fn def(&self) -> &'static ModuleDef {
        &PING_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let data = args
            .get("data")
            .map(to_text)
            .unwrap_or_else(|| "pong".into());
        let out = ctx.exec("echo pong", None).await?;
        if out.rc != 0 || String::from_utf8_lossy(&out.stdout).trim() != "pong" {
            return Err(ModError::msg(format!(
                "ping: the host did not answer `echo pong` (rc {}): {}",
                out.rc,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        if data == "crash" {
            return Err(ModError::msg("boom"));
        }
        let mut r = outcome(false);
        r.insert("ping".into(), Value::from(data));
        Ok(r)
    }
}

static SETUP_DEF: ModuleDef = ModuleDef {
    name: "setup",
    namespaces: BUILTIN,
    params: &[
        p("gather_subset", Any),
        p("filter", Any),
        p("gather_timeout", Int),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Any,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Prints `pkg_mgr=NAME`: the first package manager found, named as Ansible's `pkg_mgr` fact;
/// `pacman` first on the Arch family (Ansible's last-match-wins list puts it after apt, dnf,
/// yum and zypper, and only Debian/RedHat families override that), last elsewhere (so a Debian
/// host with pacman installed stays `apt`, as in Ansible).
macro_rules! pkg_mgr_probe {
    () => {
        "pm=; case \" $(. /etc/os-release 2>/dev/null; echo \"$ID $ID_LIKE\") \" in *' arch '*|*' archlinux '*) [ -e /usr/bin/pacman ] && pm=pacman;; esac; [ -n \"$pm\" ] || for c in apt-get:apt dnf5:dnf5 dnf:dnf yum:yum zypper:zypper apk:apk pacman:pacman; do command -v ${c%%:*} >/dev/null 2>&1 && { pm=${c#*:}; break; }; done; echo \"pkg_mgr=$pm\"\n"
    };
}
/// Facts in one round trip: the script prints `key=value` lines.
const POSIX_FACTS: &str = concat!(
    r#"
h=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)
echo "hostname=${h%%.*}"
echo "fqdn=$(hostname -f 2>/dev/null || echo "$h")"
echo "system=$(uname -s)"
echo "kernel=$(uname -r)"
echo "architecture=$(uname -m)"
echo "vcpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)"
awk '/^MemTotal:/ {print "memtotal_kb=" $2}' /proc/meminfo 2>/dev/null
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os_id=$ID"; echo "os_name=$NAME"; echo "os_version=$VERSION_ID"; echo "os_like=$ID_LIKE"; fi
r=$(ip -4 route get 1.0.0.0 2>/dev/null | head -n1)
[ -n "$r" ] || r=$(ip -4 route show default 2>/dev/null | head -n1)
echo "route=$r"
echo "ipv4=$(ip -4 -o addr show 2>/dev/null | awk '{print $2 "/" $4}' | tr '\n' ' ')"
echo "user=$(id -un)"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
"#,
    pkg_mgr_probe!()
);

pub const PKG_MGR_PROBE: &str = pkg_mgr_probe!();

struct Setup;

#[async_trait]
impl Module for Setup {
    fn def(&self) -> &'static ModuleDef {
        &SETUP_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        if ctx.conn.transport == Transport::Winrm {
            return super::windows::gather_facts(ctx, &args).await;
        }
        let out = ctx.exec(POSIX_FACTS, None).await?;
        if out.rc != 0 {
            return Err(ModError::msg(format!(
                "fact gathering failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut raw = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                raw.insert(k.to_string(), v.trim().to_string());
            }
        }
        Ok(facts_from_raw(&raw))
    }
}

fn facts_from_raw(raw: &std::collections::HashMap<String, String>) -> Map<String, Value> {
    let get = |k: &str| raw.get(k).cloned().unwrap_or_default();
    let mut f = Map::new();
    f.insert("ansible_hostname".into(), get("hostname").into());
    f.insert("ansible_nodename".into(), get("hostname").into());
    f.insert("ansible_fqdn".into(), get("fqdn").into());
    f.insert("ansible_system".into(), get("system").into());
    f.insert("ansible_kernel".into(), get("kernel").into());
    f.insert("ansible_architecture".into(), get("architecture").into());
    f.insert("ansible_user_id".into(), get("user").into());
    f.insert(
        "ansible_processor_vcpus".into(),
        get("vcpus").parse::<u64>().unwrap_or(0).into(),
    );
    f.insert(
        "ansible_memtotal_mb".into(),
        (get("memtotal_kb").parse::<u64>().unwrap_or(0) / 1024).into(),
    );
    let id = get("os_id");
    let like = get("os_like");
    let family = match id.as_str() {
        "debian" | "ubuntu" | "linuxmint" | "raspbian" => "Debian",
        "rhel" | "centos" | "fedora" | "rocky" | "almalinux" | "amzn" | "ol" => "RedHat",
        "sles" | "opensuse-leap" | "opensuse-tumbleweed" => "Suse",
        "alpine" => "Alpine",
        "arch" => "Archlinux",
        _ if like.contains("debian") => "Debian",
        _ if like.contains("rhel") || like.contains("fedora") => "RedHat",
        _ => "",
    };
    let distribution = match id.as_str() {
        "debian" => "Debian".to_string(),
        "ubuntu" => "Ubuntu".to_string(),
        "rhel" => "RedHat".to_string(),
        "centos" => "CentOS".to_string(),
        "rocky" => "Rocky".to_string(),
        "almalinux" => "AlmaLinux".to_string(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    };
    f.insert("ansible_os_family".into(), family.into());
    f.insert("ansible_distribution".into(), distribution.into());
    let version = get("os_version");
    f.insert(
        "ansible_distribution_major_version".into(),
        version.split('.').next().unwrap_or("").into(),
    );
    f.insert("ansible_distribution_version".into(), version.into());
    f.insert("ansible_boot_id".into(), get("boot_id").into());
    let pkg_mgr = get("pkg_mgr");
    f.insert(
        "ansible_pkg_mgr".into(),
        if pkg_mgr.is_empty() {
            "unknown".into()
        } else {
            pkg_mgr
        }
        .into(),
    );
    // `1.0.0.0 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0`
    let route = get("route");
    let words: Vec<&str> = route.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
            .map(|s| s.to_string())
    };
    let mut v4 = Map::new();
    if let Some(dev) = after("dev") {
        v4.insert("interface".into(), dev.into());
    }
    if let Some(src) = after("src") {
        v4.insert("address".into(), src.into());
    }
    if let Some(gw) = after("via") {
        v4.insert("gateway".into(), gw.into());
    }
    let mut all = Vec::new();
    let mut ifaces = Vec::new();
    for entry in get("ipv4").split_whitespace() {
        if let Some((dev, cidr)) = entry.split_once('/') {
            let addr = cidr.split('/').next().unwrap_or("");
            if v4.get("interface").and_then(Value::as_str) == Some(dev)
                && !v4.contains_key("address")
            {
                v4.insert("address".into(), addr.into());
            }
            if !addr.starts_with("127.") {
                all.push(Value::String(addr.to_string()));
            }
            if !ifaces.contains(&Value::String(dev.to_string())) {
                ifaces.push(Value::String(dev.to_string()));
            }
        }
    }
    f.insert("ansible_default_ipv4".into(), Value::Object(v4));
    f.insert("ansible_all_ipv4_addresses".into(), Value::Array(all));
    f.insert("ansible_interfaces".into(), Value::Array(ifaces));
    let mut r = outcome(false);
    r.insert("ansible_facts".into(), Value::Object(f));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The creates/removes probe run by /bin/sh in `dir`, and Ansible's verdict.
    fn verdict(
        dir: &std::path::Path,
        chdir: Option<&str>,
        creates: Option<&str>,
        removes: Option<&str>,
    ) -> (i32, Option<String>) {
        let chdir = chdir.map(|d| posix::expand_word(d, false));
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(paths_probe(chdir.as_deref(), creates, removes))
            .current_dir(dir)
            .env("HOME", dir)
            .output()
            .unwrap();
        let rc = out.status.code().unwrap();
        if rc != 0 {
            return (rc, None);
        }
        let (msg, _) =
            paths_verdict(&out.stdout, [creates.is_some(), removes.is_some()], false).unwrap();
        (rc, msg)
    }

    #[test]
    fn creates_and_removes_glob_after_chdir_like_ansible() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        for f in ["sub/a1.done", "sub/.hidden", "sub/x[1]", "top"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink("/nonexistent-mixop", d.join("sub/dangling")).unwrap();
        let skip = |path: &str| Some(format!("Did not run command since '{path}' exists"));
        let run = None;
        // Relative patterns are taken after chdir.
        assert_eq!(
            verdict(d, Some("sub"), Some("*.done"), None),
            (0, skip("*.done"))
        );
        assert_eq!(verdict(d, None, Some("*.done"), None), (0, run.clone()));
        assert_eq!(
            verdict(d, Some("sub"), Some("a?.done"), None).1,
            skip("a?.done")
        );
        // `*` skips dot files; `.*` never matches `.` or `..`; a dangling symlink counts.
        assert_eq!(verdict(d, None, Some("sub/*hidden"), None).1, run);
        assert_eq!(verdict(d, None, Some("sub/.h*"), None).1, skip("sub/.h*"));
        assert_eq!(verdict(d, None, Some("top/.*"), None).1, run);
        assert_eq!(verdict(d, Some("sub"), Some(".*"), None).1, skip(".*"));
        assert_eq!(
            verdict(d, Some("sub"), Some("dangling"), None).1,
            skip("dangling")
        );
        // A `[...]` class does not match a file named like the pattern itself.
        assert_eq!(verdict(d, Some("sub"), Some("x[1]"), None).1, run);
        assert_eq!(
            verdict(d, Some("sub"), Some("x[[]1]"), None).1,
            skip("x[[]1]")
        );
        // `~` and `$VAR` expand on the host; the message names the expanded path.
        let home = d.display().to_string();
        assert_eq!(
            verdict(d, None, Some("~/sub/a*"), None).1,
            skip(&format!("{home}/sub/a*"))
        );
        assert_eq!(
            verdict(d, Some("$HOME"), None, Some("nothing*")).1,
            Some("Did not run command since 'nothing*' does not exist".into())
        );
        assert_eq!(verdict(d, None, Some("none"), Some("top")).1, run);
        assert_eq!(verdict(d, Some("missing"), Some("x"), None).0, CHDIR_FAILED);
    }

    fn w(v: Value) -> wait::Wait {
        wait::Wait::from_args(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn posix_wait_probes() {
        let s = posix_wait_probe(&w(
            serde_json::json!({"path": "/o'x", "search_regex": "a b"}),
        ))
        .unwrap();
        assert!(s.contains("[ -e '/o'\\''x' ]"), "{s}");
        assert!(s.contains("grep -Eq -- 'a b' '/o'\\''x'"), "{s}");
        let s = posix_wait_probe(&w(
            serde_json::json!({"port": 22, "host": "h", "connect_timeout": 2}),
        ))
        .unwrap();
        assert!(
            s.contains("timeout 2 bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' wait_for h 22"),
            "{s}"
        );
        let s = posix_wait_probe(&w(serde_json::json!({"port": 22, "state": "drained"}))).unwrap();
        assert!(
            s.starts_with("ss -Htn state established '( sport = :22 )'"),
            "{s}"
        );
    }

    #[test]
    fn wait_for_host_is_a_parameter_not_script() {
        let cmd = tcp_probe("db.example-1.local", 5432).unwrap();
        assert_eq!(
            shell_words::split(&cmd).unwrap()[..6],
            [
                "bash",
                "-c",
                "exec 3<>\"/dev/tcp/$1/$2\"",
                "wait_for",
                "db.example-1.local",
                "5432"
            ]
        );
        assert!(tcp_probe("fe80::1%eth0", 22).is_ok());
        for bad in [
            "127.0.0.1/1; touch /tmp/y; exit 0; #",
            "a b",
            "$(id)",
            "",
            "x'y",
        ] {
            assert!(tcp_probe(bad, 1).is_err(), "{bad}");
            let probe = serde_json::json!({"port": 1, "host": bad});
            if let Ok(wait) = wait::Wait::from_args(probe.as_object().unwrap()) {
                assert!(posix_wait_probe(&wait).is_err(), "{bad}");
            }
        }
    }

    #[test]
    fn observations() {
        let o = parse_observation("exists=1\nmatched=0\n");
        assert!(o.exists && o.matched == Some(false));
        let o =
            parse_observation("conn=10.0.0.1:5555\nconn=[::ffff:10.0.0.2]:1\nconn=[fe80::1]:22\n");
        assert_eq!(o.connections, vec!["10.0.0.1", "10.0.0.2", "fe80::1"]);
    }
}
