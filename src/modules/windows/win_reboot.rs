//! `win_reboot`: reboot a Windows host and wait until it is back and ready
//! (ansible.windows.win_reboot's arguments and return values).
//!
//! 1. The boot time before: `(Get-CimInstance Win32_OperatingSystem).LastBootUpTime.ToFileTime()`
//!    (or `boot_time_command`), run as its own powershell.exe like Ansible does.
//! 2. `shutdown.exe /r /t N /c MSG`. Exit code 1190 ("a system shutdown has already been
//!    scheduled"): `shutdown.exe /a`, then once more (ansible.windows does the same); 1115 ("a
//!    system shutdown is in progress"): someone else is rebooting the host, wait for it with a
//!    warning. A connection that breaks while the command runs is the reboot happening.
//! 3. The connection is dropped and the shared two-phase wait (`modules/reboot_wait.rs`) polls
//!    with backoff until a fresh connection reports another boot time, then until the host is
//!    ready: by default through the PowerShell host process (`win_reboot.ps1`: the LogonUI key
//!    the reboot command removed is back, as in ansible.windows ≥ 1.6), which also proves the
//!    next module task can run; or until `test_command` exits 0.
//!
//! Known ansible.windows problems avoided: WinRM slow to start after a boot (ansible#47216) —
//! `connect_timeout` bounds only the connection, never the command, and an attempt that fails
//! is simply retried until `reboot_timeout`; completion is validated (ansible.windows#27); a host
//! that is back before the first poll (ansible#28134) is fine because only the boot time is
//! compared, never "went down".

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::{WINDOWS, finish, script, typed_args};
use crate::connection::ConnError;
use crate::modules::ParamType::*;
use crate::modules::reboot_wait::{Check, RebootProbe, WaitSpec, wait_for_reboot};
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, outcome, p,
};
use crate::powershell::script as ps;

pub static SCRIPT: super::Script = script!("win_reboot");

static DEF: ModuleDef = ModuleDef {
    name: "win_reboot",
    namespaces: WINDOWS,
    params: &[
        alias(p("pre_reboot_delay", Float), &["pre_reboot_delay_sec"]),
        alias(p("post_reboot_delay", Float), &["post_reboot_delay_sec"]),
        alias(p("reboot_timeout", Float), &["reboot_timeout_sec"]),
        alias(p("connect_timeout", Float), &["connect_timeout_sec"]),
        p("test_command", Str),
        p("msg", Str),
        p("boot_time_command", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub const DEFAULT_BOOT_TIME_COMMAND: &str = "(Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime).LastBootUpTime.ToFileTime()";
/// LogonUI creates this volatile key when it is about to show the logon prompt.
const LOGON_UI_KEY: &str =
    r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\AutoLogonChecked";
/// `shutdown.exe /c` takes at most 512 characters.
const MAX_MSG: usize = 512;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebootArgs {
    #[serde(default = "two")]
    pub pre_reboot_delay: f64,
    #[serde(default)]
    pub post_reboot_delay: f64,
    #[serde(default = "six_hundred")]
    pub reboot_timeout: f64,
    #[serde(default = "five")]
    pub connect_timeout: f64,
    #[serde(default)]
    pub test_command: Option<String>,
    #[serde(default = "default_msg")]
    pub msg: String,
    #[serde(default)]
    pub boot_time_command: Option<String>,
}

fn two() -> f64 {
    2.0
}
fn five() -> f64 {
    5.0
}
fn six_hundred() -> f64 {
    600.0
}
fn default_msg() -> String {
    "Reboot initiated by Ansible".into()
}

fn duration(name: &str, v: f64) -> Result<Duration, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{name}` must be a number of seconds ≥ 0, got {v}"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Checked settings for one reboot.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `/t`: whole seconds, at least 2 (ansible.windows' minimum: a host going down at once may
    /// not deliver the command's result).
    pub delay: u64,
    pub msg: String,
    pub boot_time_command: String,
    pub test_command: Option<String>,
    pub connect_timeout: Duration,
    pub spec: WaitSpec,
}

pub fn settings(a: &RebootArgs) -> Result<Settings, String> {
    let pre = duration("pre_reboot_delay", a.pre_reboot_delay)?;
    let connect_timeout = duration("connect_timeout", a.connect_timeout)?;
    if a.msg.chars().count() > MAX_MSG {
        return Err(format!(
            "`msg` is {} characters; shutdown.exe /c takes at most {MAX_MSG}",
            a.msg.chars().count()
        ));
    }
    Ok(Settings {
        delay: pre.as_secs().max(2),
        msg: a.msg.clone(),
        boot_time_command: a
            .boot_time_command
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BOOT_TIME_COMMAND.into()),
        test_command: a.test_command.clone().filter(|c| !c.trim().is_empty()),
        connect_timeout: if connect_timeout.is_zero() {
            Duration::from_secs(5)
        } else {
            connect_timeout
        },
        spec: WaitSpec {
            reboot_timeout: duration("reboot_timeout", a.reboot_timeout)?,
            post_reboot_delay: duration("post_reboot_delay", a.post_reboot_delay)?,
            // Bounded by the deadline and the transport's own timeouts only: a boot-time check
            // on a host whose WinRM is still slow must not time out (ansible#47216).
            boot_attempt: None,
            ready_attempt: None,
        },
    })
}

/// A PowerShell one-liner as Ansible's reboot plugin wraps it: the exit code of a failed
/// native command (or 1) becomes the process's.
pub fn wrap_command(command: &str) -> String {
    format!(
        "{command}; If (-not $?) {{ If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) {{ exit $LASTEXITCODE }} Else {{ exit 1 }} }}"
    )
}

/// The reboot command: `shutdown.exe /r /t N /c MSG`, reporting its stdout, stderr and exit
/// code as one JSON line (so a wrapper shell cannot hide them). Removes the LogonUI key first
/// when the default readiness test will wait for it.
pub fn reboot_script(s: &Settings) -> String {
    let clear = if s.test_command.is_none() {
        format!(
            "Remove-Item -LiteralPath {} -Force -ErrorAction SilentlyContinue\n",
            ps::quote(LOGON_UI_KEY)
        )
    } else {
        String::new()
    };
    format!(
        "$ErrorActionPreference = 'Continue'\n\
         {clear}\
         $stdout = $null\n\
         $stderr = . {{ shutdown.exe /r /t {delay} /c {msg} | Set-Variable stdout }} 2>&1 | ForEach-Object ToString\n\
         If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) {{ $rc = $LASTEXITCODE }} Else {{ $rc = 1 }}\n\
         ConvertTo-Json -Compress -InputObject @{{ stdout = (@($stdout) -join \"`n\"); stderr = (@($stderr) -join \"`n\"); rc = $rc }}\n",
        delay = s.delay,
        msg = ps::quote(&s.msg),
    )
}

/// What the reboot command reported: the JSON line when there is one, else the process's own
/// exit code and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    pub rc: i64,
    pub stdout: String,
    pub stderr: String,
}

pub fn parse_shutdown(rc: i32, stdout: &str, stderr: &str) -> Shutdown {
    #[derive(Deserialize)]
    struct J {
        #[serde(default)]
        stdout: Option<String>,
        #[serde(default)]
        stderr: Option<String>,
        rc: i64,
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    if let Some(j) = line.and_then(|l| serde_json::from_str::<J>(l.trim()).ok()) {
        return Shutdown {
            rc: j.rc,
            stdout: j.stdout.unwrap_or_default().trim().to_string(),
            stderr: j.stderr.unwrap_or_default().trim().to_string(),
        };
    }
    Shutdown {
        rc: rc as i64,
        stdout: stdout.trim().to_string(),
        stderr: stderr.trim().to_string(),
    }
}

/// What to do after the reboot command answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Wait,
    /// 1190: abort the scheduled shutdown and run the command again.
    AbortAndRetry,
    /// 1115: a shutdown someone else started is under way; wait for it.
    WaitForOthers,
    Fail(String),
}

pub fn next_step(r: &Shutdown, retried: bool) -> Next {
    let says = |code: &str| r.stderr.contains(code) || r.stdout.contains(code);
    match r.rc {
        0 => Next::Wait,
        1190 if !retried => Next::AbortAndRetry,
        _ if !retried && says("(1190)") => Next::AbortAndRetry,
        1115 => Next::WaitForOthers,
        rc => Next::Fail(format!(
            "Reboot command failed (rc={rc}): {}",
            [r.stdout.as_str(), r.stderr.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ")
        )),
    }
}

/// Runs a PowerShell script as its own powershell.exe (not in the host process, which the reboot
/// takes down): exit code, stdout, stderr (CLIXML decoded).
async fn powershell(ctx: &ModuleCtx<'_>, script: &str) -> Result<(i32, String, String), ConnError> {
    let cmd = ps::command(script);
    let out = ctx.exec(cmd.cmdline, cmd.stdin).await?;
    Ok((
        out.rc,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        crate::powershell::clixml::decode_stderr(&String::from_utf8_lossy(&out.stderr)),
    ))
}

#[derive(Debug, Deserialize)]
struct Ready {
    #[serde(default)]
    ready: bool,
}

/// The Windows half of the shared reboot wait.
struct WindowsProbe<'a> {
    ctx: &'a ModuleCtx<'a>,
    s: &'a Settings,
}

impl WindowsProbe<'_> {
    /// A connection within `connect_timeout` (the command that follows is not bounded by it).
    async fn connect(&self) -> Result<(), ConnError> {
        tokio::time::timeout(self.s.connect_timeout, self.ctx.connection())
            .await
            .map_err(|_| {
                ConnError::timeout(format!(
                    "no WinRM connection within connect_timeout ({}s)",
                    self.s.connect_timeout.as_secs_f64()
                ))
            })??;
        Ok(())
    }
}

#[async_trait]
impl RebootProbe for WindowsProbe<'_> {
    async fn boot_id(&self) -> Result<Result<String, String>, ConnError> {
        self.connect().await?;
        let (rc, out, err) = powershell(self.ctx, &wrap_command(&self.s.boot_time_command)).await?;
        let id = out.trim().to_string();
        Ok(if rc != 0 {
            Err(format!(
                "boot time command failed (rc={rc}): {}",
                err.trim()
            ))
        } else if id.is_empty() {
            Err("boot time command printed nothing".into())
        } else {
            Ok(id)
        })
    }

    async fn ready(&self) -> Result<Check, ConnError> {
        self.connect().await?;
        if let Some(test) = &self.s.test_command {
            let (rc, _out, err) = powershell(self.ctx, &wrap_command(test)).await?;
            return Ok(if rc == 0 {
                Check::Done
            } else {
                Check::NotYet(format!("test command failed (rc={rc}): {}", err.trim()))
            });
        }
        match SCRIPT.run::<Ready>(self.ctx, &json!({})).await {
            Ok((r, _)) if r.ready => Ok(Check::Done),
            Ok(_) => Ok(Check::NotYet(
                "the logon screen is not up yet (LogonUI has not recreated its AutoLogonChecked key)"
                    .into(),
            )),
            Err(ModError::Conn(e)) => Err(e),
            Err(ModError::Failed { msg, .. }) => Ok(Check::NotYet(msg)),
        }
    }

    async fn reset(&self) {
        // Bounded: closing deletes the shell, and a host going down may not answer.
        let _ = tokio::time::timeout(self.s.connect_timeout, self.ctx.conn.close()).await;
    }
}

pub(super) struct WinReboot;

#[async_trait]
impl Module for WinReboot {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: RebootArgs = typed_args(DEF.name, &args)?;
        let s = settings(&a).map_err(ModError::msg)?;
        if ctx.check_mode {
            return Ok(finish(
                true,
                Vec::new(),
                json!({"rebooted": true, "elapsed": 0}),
            ));
        }
        let not_rebooted = |msg: String| {
            let mut r = outcome(false);
            r.insert("rebooted".into(), false.into());
            ModError::Failed { msg, result: r }
        };
        let (rc, out, err) = powershell(ctx, &wrap_command(&s.boot_time_command)).await?;
        let before = out.trim().to_string();
        if rc != 0 || before.is_empty() {
            return Err(not_rebooted(format!(
                "failed to get host boot time info (rc={rc}): {}",
                err.trim()
            )));
        }

        let mut warnings = Vec::new();
        let script = reboot_script(&s);
        let mut retried = false;
        let start = loop {
            let start = Instant::now();
            let answer = match powershell(ctx, &script).await {
                Ok((rc, out, err)) => parse_shutdown(rc, &out, &err),
                // The connection may drop while the command runs: that is the reboot happening.
                Err(_) => break start,
            };
            match next_step(&answer, retried) {
                Next::Wait => break start,
                Next::WaitForOthers => {
                    warnings.push(
                        "The host reports that a reboot or shutdown is already in progress, \
                         started by something other than mixop; waiting for the host to come back \
                         (if it is shutting down rather than rebooting, this times out)"
                            .to_string(),
                    );
                    break start;
                }
                Next::AbortAndRetry => {
                    warnings.push("A scheduled reboot was pre-empted by mixop.".to_string());
                    // This may fail if the scheduled shutdown is already gone: retry anyway.
                    let _ = powershell(ctx, &wrap_command("shutdown.exe /a")).await?;
                    retried = true;
                }
                Next::Fail(msg) => return Err(not_rebooted(msg)),
            }
        };
        // Forget the old session (and the PowerShell host process in it): every later request
        // opens a new one.
        let probe = WindowsProbe { ctx, s: &s };
        probe.reset().await;
        wait_for_reboot(&probe, &before, &s.spec, start)
            .await
            .map_err(|e| with_warnings(e.into_error(), &warnings))?;
        Ok(finish(
            true,
            warnings,
            json!({"rebooted": true, "elapsed": start.elapsed().as_secs()}),
        ))
    }
}

fn with_warnings(e: ModError, warnings: &[String]) -> ModError {
    match e {
        ModError::Failed { msg, mut result } if !warnings.is_empty() => {
            result.insert("warnings".into(), warnings.to_vec().into());
            ModError::Failed { msg, result }
        }
        other => other,
    }
}

/// Generated scripts, for the grammar test.
pub fn generated_scripts() -> Vec<(&'static str, String)> {
    let a: RebootArgs =
        serde_json::from_value(json!({"msg": "it's $a `b \"c\"\nnew line é"})).expect("defaults");
    let mut s = settings(&a).expect("settings");
    let default = reboot_script(&s);
    s.test_command = Some("exit 0".into());
    vec![
        ("win_reboot reboot command", default),
        (
            "win_reboot reboot command (test_command)",
            reboot_script(&s),
        ),
        (
            "win_reboot boot time command",
            wrap_command(DEFAULT_BOOT_TIME_COMMAND),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: serde_json::Value) -> RebootArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_ansible_windows_defaults() {
        let s = settings(&args(json!({}))).unwrap();
        assert_eq!(s.delay, 2);
        assert_eq!(s.msg, "Reboot initiated by Ansible");
        assert_eq!(s.boot_time_command, DEFAULT_BOOT_TIME_COMMAND);
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.spec.reboot_timeout, Duration::from_secs(600));
        assert!(s.spec.boot_attempt.is_none(), "ansible#47216");
        let s = settings(&args(json!({"pre_reboot_delay": 0, "reboot_timeout": 2.5}))).unwrap();
        assert_eq!(s.delay, 2, "at least 2 s, as ansible.windows");
        assert_eq!(s.spec.reboot_timeout, Duration::from_millis(2500));
        assert!(settings(&args(json!({"reboot_timeout": -1}))).is_err());
        let long = "x".repeat(513);
        assert!(
            settings(&args(json!({ "msg": long })))
                .unwrap_err()
                .contains("at most 512")
        );
    }

    #[test]
    fn the_message_is_one_powershell_literal_whatever_it_holds() {
        for msg in [
            "it's",
            "say \"hi\"",
            "$env:COMPUTERNAME `n",
            "two\nlines",
            "päivitys ‘quoted’",
            "a & b | c %PATH%",
        ] {
            let s = settings(&args(json!({ "msg": msg }))).unwrap();
            let script = reboot_script(&s);
            let lit = ps::quote(msg);
            assert!(
                script.contains(&format!("shutdown.exe /r /t 2 /c {lit} |")),
                "{script}"
            );
            // The literal is single-quoted: nothing in it is expanded.
            assert!(lit.starts_with('\'') && lit.ends_with('\''));
        }
        let s = settings(&args(json!({"test_command": "exit 0"}))).unwrap();
        assert!(!reboot_script(&s).contains("AutoLogonChecked"));
        let s = settings(&args(json!({}))).unwrap();
        assert!(reboot_script(&s).contains("Remove-Item -LiteralPath 'HKLM:"));
    }

    #[test]
    fn shutdown_answers() {
        let r = parse_shutdown(0, "{\"stdout\":\"\",\"stderr\":\"\",\"rc\":0}\r\n", "");
        assert_eq!(next_step(&r, false), Next::Wait);
        // The JSON line carries shutdown.exe's own exit code.
        let r = parse_shutdown(
            0,
            "{\"stdout\":\"\",\"stderr\":\"A system shutdown has already been scheduled.(1190)\",\"rc\":1190}",
            "",
        );
        assert_eq!(next_step(&r, false), Next::AbortAndRetry);
        assert!(matches!(next_step(&r, true), Next::Fail(m) if m.contains("(1190)")));
        // No JSON (a peer or wrapper that answers for shutdown.exe directly).
        let r = parse_shutdown(
            1190,
            "",
            "A system shutdown has already been scheduled.(1190)",
        );
        assert_eq!(next_step(&r, false), Next::AbortAndRetry);
        let r = parse_shutdown(1115, "", "A system shutdown is in progress.(1115)");
        assert_eq!(next_step(&r, false), Next::WaitForOthers);
        let r = parse_shutdown(
            0,
            "{\"stdout\":\"\",\"stderr\":\"Access is denied.(5)\",\"rc\":5}",
            "",
        );
        assert_eq!(
            next_step(&r, false),
            Next::Fail("Reboot command failed (rc=5): Access is denied.(5)".into())
        );
    }

    #[test]
    fn commands_keep_the_exit_code() {
        assert_eq!(
            wrap_command("exit 3"),
            "exit 3; If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) { exit $LASTEXITCODE } Else { exit 1 } }"
        );
        assert!(wrap_command(DEFAULT_BOOT_TIME_COMMAND).contains("ToFileTime()"));
    }
}
