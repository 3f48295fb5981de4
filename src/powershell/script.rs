//! PowerShell text helpers shared by the WinRM transport and the Windows modules: the one place
//! that turns PowerShell into a command line (`-EncodedCommand`), quoting (PowerShell literals,
//! Windows argv), and the transport's file-transfer scripts.
//!
//! Short scripts go as `-EncodedCommand` (UTF-16LE, base64); a script whose command line would
//! pass cmd.exe's 8191-character limit is sent over stdin to a small bootstrap instead.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// cmd.exe's command-line limit.
pub const CMD_MAX: usize = 8191;

const PS_PREFIX: &str =
    "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ";

/// Reads the whole script from stdin (UTF-8) and runs it: used for long scripts.
const STDIN_BOOTSTRAP: &str = "$ErrorActionPreference = 'Stop'\n\
$r = New-Object System.IO.StreamReader([Console]::OpenStandardInput(), (New-Object System.Text.UTF8Encoding $false))\n\
$s = $r.ReadToEnd()\n\
& ([ScriptBlock]::Create($s))\n\
exit $LASTEXITCODE\n";

/// A PowerShell script ready to run: the command line and what to feed on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsCommand {
    pub cmdline: String,
    pub stdin: Option<Vec<u8>>,
}

/// `-EncodedCommand` argument: the script as UTF-16LE, base64.
pub fn encode(script: &str) -> String {
    let utf16: Vec<u8> = script
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    B64.encode(utf16)
}

/// Builds the command line for `script`. A script that needs its own stdin must be short
/// (`stdin_needed`): it is an error for it to exceed the command-line limit.
pub fn command(script: &str) -> PsCommand {
    let cmdline = format!("{PS_PREFIX}{}", encode(script));
    if cmdline.len() <= CMD_MAX {
        return PsCommand {
            cmdline,
            stdin: None,
        };
    }
    PsCommand {
        cmdline: format!("{PS_PREFIX}{}", encode(STDIN_BOOTSTRAP)),
        stdin: Some(script.as_bytes().to_vec()),
    }
}

/// Builds a command line that never holds the script: the script goes on stdin to the
/// bootstrap whatever its length. For scripts that may hold a secret (a task's own script, its
/// environment values): a command line is seen by every process listing and audit log on the
/// host. The caller cannot feed the command its own stdin then.
pub fn command_hidden(script: &str) -> PsCommand {
    PsCommand {
        cmdline: format!("{PS_PREFIX}{}", encode(STDIN_BOOTSTRAP)),
        stdin: Some(script.as_bytes().to_vec()),
    }
}

/// A PowerShell single-quoted string literal. PowerShell also treats the typographic quotes
/// U+2018..U+201B as single quotes, so they are doubled too.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Quotes one argument for a Windows program's command line (the CommandLineToArgvW rules:
/// backslashes are literal unless they precede a quote).
pub fn quote_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\u{b}', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

/// Splits a command line into the program and the rest, as CreateProcess and
/// CommandLineToArgvW read the first word: up to the closing quote when it starts with one
/// (no escapes inside), else up to the first space or tab.
pub fn split_program(cmdline: &str) -> (String, &str) {
    let line = cmdline.trim_start_matches([' ', '\t']);
    let (program, rest) = if let Some(quoted) = line.strip_prefix('"') {
        match quoted.find('"') {
            Some(i) => (quoted[..i].to_string(), &quoted[i + 1..]),
            None => (quoted.to_string(), ""),
        }
    } else {
        match line.find([' ', '\t']) {
            Some(i) => (line[..i].to_string(), &line[i..]),
            None => (line.to_string(), ""),
        }
    };
    (program, rest.trim_start_matches([' ', '\t']))
}

/// A PowerShell script that starts the program of `cmdline` with exactly that command line,
/// without cmd.exe: `System.Diagnostics.Process` with `UseShellExecute = $false` (so the
/// program inherits the shell's stdin, stdout and stderr and its output streams as it comes),
/// in `cwd`, with `env` added; it exits with the program's exit code. For hosts where
/// `WINRS_SKIP_CMD_SHELL` is not honoured.
pub fn program_script(cmdline: &str, cwd: Option<&str>, env: &[(String, String)]) -> String {
    let (program, args) = split_program(cmdline);
    let mut s = String::from(
        "$ErrorActionPreference = 'Stop'\n\
         $psi = New-Object System.Diagnostics.ProcessStartInfo\n",
    );
    s.push_str(&format!("$psi.FileName = {}\n", quote(&program)));
    s.push_str(&format!("$psi.Arguments = {}\n", quote(args)));
    s.push_str("$psi.UseShellExecute = $false\n");
    if let Some(dir) = cwd {
        s.push_str(&format!("$psi.WorkingDirectory = {}\n", quote(dir)));
    }
    for (k, v) in env {
        s.push_str(&format!(
            "$psi.EnvironmentVariables[{}] = {}\n",
            quote(k),
            quote(v)
        ));
    }
    s.push_str(
        "$p = [System.Diagnostics.Process]::Start($psi)\n\
         $p.WaitForExit()\n\
         exit $p.ExitCode\n",
    );
    s
}

/// Upload: reads base64 lines from stdin into a temporary file beside `dest`, checks the
/// SHA-256 against `expected`, then moves it into place; prints `sha256=<hex>`.
pub fn put_script(dest: &str, expected_sha256: &str) -> String {
    format!(
        r#"$ErrorActionPreference = 'Stop'
$dest = {dest}
$tmp = $dest + '.mixop-' + [Guid]::NewGuid().ToString('N') + '.tmp'
$sha = [System.Security.Cryptography.SHA256]::Create()
$in = New-Object System.IO.StreamReader([Console]::OpenStandardInput(), [System.Text.Encoding]::ASCII)
$fs = [System.IO.File]::Create($tmp)
try {{
    while ($null -ne ($line = $in.ReadLine())) {{
        if ($line.Length -eq 0) {{ continue }}
        $b = [Convert]::FromBase64String($line)
        [void]$sha.TransformBlock($b, 0, $b.Length, $null, 0)
        $fs.Write($b, 0, $b.Length)
    }}
    [void]$sha.TransformFinalBlock((New-Object byte[] 0), 0, 0)
    $fs.Close()
    $hash = [BitConverter]::ToString($sha.Hash).Replace('-', '').ToLowerInvariant()
    if ($hash -ne {expected}) {{
        Remove-Item -LiteralPath $tmp -Force
        [Console]::Error.WriteLine("hash mismatch: received $hash")
        exit 3
    }}
    Move-Item -LiteralPath $tmp -Destination $dest -Force
    [Console]::Out.WriteLine('sha256=' + $hash)
}} catch {{
    $fs.Dispose()
    Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue
    throw
}}
"#,
        dest = quote(dest),
        expected = quote(expected_sha256)
    )
}

/// Download: writes the file as base64 lines (48 KiB of data each), then `sha256=<hex>`.
/// A missing file exits 2 with a message on stderr.
pub fn get_script(src: &str) -> String {
    format!(
        r#"$ErrorActionPreference = 'Stop'
$src = {src}
if (-not (Test-Path -LiteralPath $src -PathType Leaf)) {{
    [Console]::Error.WriteLine("file not found: $src")
    exit 2
}}
$sha = [System.Security.Cryptography.SHA256]::Create()
$fs = [System.IO.File]::OpenRead($src)
$buf = New-Object byte[] 49152
$out = [Console]::Out
try {{
    while (($n = $fs.Read($buf, 0, $buf.Length)) -gt 0) {{
        [void]$sha.TransformBlock($buf, 0, $n, $null, 0)
        $out.WriteLine([Convert]::ToBase64String($buf, 0, $n))
    }}
    [void]$sha.TransformFinalBlock($buf, 0, 0)
    $out.WriteLine('sha256=' + [BitConverter]::ToString($sha.Hash).Replace('-', '').ToLowerInvariant())
}} finally {{
    $fs.Dispose()
}}
"#,
        src = quote(src)
    )
}

/// Raw bytes per base64 line of an upload (the line is 64 KiB of text).
pub const LINE_BYTES: usize = 49152;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_powershell() {
        // `[Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes('Write-Output hi'))`
        assert_eq!(
            encode("Write-Output hi"),
            "VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIABoAGkA"
        );
    }

    #[test]
    fn short_scripts_are_encoded_long_ones_go_over_stdin() {
        let c = command("exit 3");
        assert!(
            c.cmdline
                .starts_with("powershell.exe -NoProfile -NonInteractive")
        );
        assert!(c.cmdline.ends_with(&encode("exit 3")));
        assert_eq!(c.stdin, None);
        let long = format!("$x = '{}'", "a".repeat(5000));
        let c = command(&long);
        assert!(c.cmdline.len() <= CMD_MAX);
        assert_eq!(c.stdin.as_deref(), Some(long.as_bytes()));
        assert!(c.cmdline.ends_with(&encode(STDIN_BOOTSTRAP)));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("C:\\it's"), "'C:\\it''s'");
        assert_eq!(quote("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(quote_arg("plain"), "plain");
        assert_eq!(quote_arg(""), "\"\"");
        assert_eq!(quote_arg("a b"), "\"a b\"");
        assert_eq!(quote_arg("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(
            quote_arg("C:\\dir with space\\"),
            "\"C:\\dir with space\\\\\""
        );
        assert_eq!(quote_arg("a\\\\\"b"), "\"a\\\\\\\\\\\"b\"");
    }

    #[test]
    fn program_and_arguments() {
        let line = [
            r"C:\Program Files\A\a.exe",
            "x & y",
            "say \"hi\"",
            r"C:\dir with space\",
        ]
        .iter()
        .map(|a| quote_arg(a))
        .collect::<Vec<_>>()
        .join(" ");
        assert_eq!(
            line,
            r#""C:\Program Files\A\a.exe" "x & y" "say \"hi\"" "C:\dir with space\\""#
        );
        let (program, rest) = split_program(&line);
        assert_eq!(program, r"C:\Program Files\A\a.exe");
        assert_eq!(rest, r#""x & y" "say \"hi\"" "C:\dir with space\\""#);
        assert_eq!(split_program("whoami /all"), ("whoami".to_string(), "/all"));
        assert_eq!(split_program("  ping"), ("ping".to_string(), ""));
        let script = program_script(&line, Some(r"C:\it's here"), &[("A".into(), "1".into())]);
        assert!(
            script.contains(r"$psi.FileName = 'C:\Program Files\A\a.exe'"),
            "{script}"
        );
        assert!(
            script.contains(r#"$psi.Arguments = '"x & y" "say \"hi\"" "C:\dir with space\\"'"#),
            "{script}"
        );
        assert!(
            script.contains(r"$psi.WorkingDirectory = 'C:\it''s here'"),
            "{script}"
        );
        assert!(
            script.contains("$psi.EnvironmentVariables['A'] = '1'"),
            "{script}"
        );
        assert!(script.ends_with("exit $p.ExitCode\n"));
        // The wrapper goes as -EncodedCommand: nothing in it for cmd.exe to re-parse.
        let c = command(&script);
        assert!(c.stdin.is_none());
        assert!(!c.cmdline.contains(['&', '"', '%', '^']));
    }

    #[test]
    fn scripts_quote_paths() {
        let s = put_script("C:\\Temp\\o'brien.txt", "ab12");
        assert!(s.contains("$dest = 'C:\\Temp\\o''brien.txt'"));
        assert!(s.contains("if ($hash -ne 'ab12')"));
        let g = get_script("C:\\x.bin");
        assert!(g.contains("$src = 'C:\\x.bin'"));
        // Both fit on a command line with room to spare.
        assert!(command(&s).stdin.is_none());
        assert!(command(&g).stdin.is_none());
    }
}
