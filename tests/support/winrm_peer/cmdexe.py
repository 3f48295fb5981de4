"""What a Windows program receives from a WinRS command line (record mode of peer.py).

WinRS runs every command line through ``cmd.exe /c`` unless the Command carries
``WINRS_SKIP_CMD_SHELL=TRUE``; the program then splits what it got with CommandLineToArgvW.
This module models both steps from their documentation, so tests can check the exact argv a
program would see:

* ``cmd /?`` ("If /C or /K is specified ...", quoted in ansible.windows#513): when the line
  starts with a quote, the quotes are kept only if there are exactly two, with whitespace and no
  special character (``&<>()@^|``) between them, and the text between them names an executable
  file; otherwise the first character and the last quote of the line are removed.
* cmd.exe's parser (command-line context, as described in SS64's and dbenham's notes on
  "How does the Windows Command Interpreter parse scripts"): ``%NAME%`` is replaced by the
  variable's value (an undefined variable is left as written), then outside double quotes ``^``
  escapes the next character, ``&``, ``&&``, ``|``, ``||`` separate commands and ``<``, ``>``,
  ``>>``, ``2>``, ``2>&1`` are redirections; inside quotes everything is literal.
* CommandLineToArgvW (Microsoft's documentation of the function and of "Parsing C++ command-line
  arguments"): the program name ends at the closing quote (no escapes) or the first space or
  tab; in the arguments, ``2n`` backslashes before a quote give ``n`` backslashes and the quote
  toggles quoting, ``2n+1`` give ``n`` backslashes and a literal quote, other backslashes are
  literal, and ``""`` inside quotes gives a literal quote (and ends the quoted part, as
  CommandLineToArgvW does; the 2008+ C runtime stays inside it).

Not modelled: ``(`` blocks, ``!VAR!`` (delayed expansion is off by default), ``%VAR:~n,m%``
substitutions, ``call``/``start``, and whether a path really names an executable (a quoted
text ending in .exe, .com, .bat or .cmd counts as one).
"""

from __future__ import annotations

import re

SPECIAL_IN_QUOTES = set("&<>()@^|")
EXECUTABLE_EXTS = (".exe", ".com", ".bat", ".cmd")
# cmd.exe internal commands whose "arguments" are not a program's argv.
BUILTINS = {
    "assoc", "break", "call", "cd", "chdir", "cls", "color", "copy", "date", "del", "dir", "echo",
    "endlocal", "erase", "exit", "for", "ftype", "goto", "if", "md", "mkdir", "mklink", "move",
    "path", "pause", "popd", "prompt", "pushd", "rd", "rem", "ren", "rename", "rmdir", "set",
    "setlocal", "shift", "start", "time", "title", "type", "ver", "verify", "vol",
}
# Builtins that only prepare the command after them (`set "K=V"&& prog`, `cd /d X && prog`).
PREPARING = {"set", "cd", "chdir", "pushd", "popd", "rem", "title", "setlocal", "endlocal", "cls"}


def default_env(user: str) -> dict[str, str]:
    """The environment a WinRS process of `user` sees on a default Windows Server 2022."""
    profile = "C:\\Users\\%s" % user
    return {
        "ALLUSERSPROFILE": "C:\\ProgramData", "APPDATA": profile + "\\AppData\\Roaming",
        "COMPUTERNAME": "WIN-PEER", "ComSpec": "C:\\Windows\\system32\\cmd.exe",
        "LOCALAPPDATA": profile + "\\AppData\\Local", "OS": "Windows_NT",
        "PATH": "C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem;"
                "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\",
        "PATHEXT": ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC",
        "ProgramData": "C:\\ProgramData", "ProgramFiles": "C:\\Program Files",
        "ProgramFiles(x86)": "C:\\Program Files (x86)", "PUBLIC": "C:\\Users\\Public",
        "SystemDrive": "C:", "SystemRoot": "C:\\Windows", "TEMP": profile + "\\AppData\\Local\\Temp",
        "TMP": profile + "\\AppData\\Local\\Temp", "USERNAME": user, "USERPROFILE": profile,
        "windir": "C:\\Windows",
    }


def command_line_to_argv(line: str) -> list[str]:
    """CommandLineToArgvW."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n and line[i] in " \t":
        i += 1
    if i >= n:
        return out
    # argv[0]: a quote only groups, backslashes are literal.
    if line[i] == '"':
        j = line.find('"', i + 1)
        if j < 0:
            return [line[i + 1:]]
        out.append(line[i + 1:j])
        i = j + 1
    else:
        j = i
        while j < n and line[j] not in " \t":
            j += 1
        out.append(line[i:j])
        i = j
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return out
        cur: list[str] = []
        in_q = False
        while i < n:
            c = line[i]
            if c == "\\":
                j = i
                while j < n and line[j] == "\\":
                    j += 1
                k = j - i
                if j < n and line[j] == '"':
                    cur.append("\\" * (k // 2))
                    if k % 2:
                        cur.append('"')
                        j += 1
                else:
                    cur.append("\\" * k)
                i = j
                continue
            if c == '"':
                if in_q and i + 1 < n and line[i + 1] == '"':
                    cur.append('"')
                    i += 2
                    in_q = False
                    continue
                in_q = not in_q
                i += 1
                continue
            if c in " \t" and not in_q:
                break
            cur.append(c)
            i += 1
        out.append("".join(cur))


def strip_cmd_c_quotes(line: str) -> tuple[str, bool]:
    """cmd /c's rule for a line that starts with a quote: (line, quotes were stripped)."""
    s = line.lstrip(" \t")
    if not s.startswith('"'):
        return line, False
    if s.count('"') == 2:
        inner = s[1:s.index('"', 1)]
        if (not (set(inner) & SPECIAL_IN_QUOTES) and re.search(r"\s", inner)
                and inner.lower().endswith(EXECUTABLE_EXTS)):
            return s, False
    last = s.rindex('"')
    return s[1:last] + s[last + 1:], True


def expand_percent(line: str, env: dict[str, str]) -> str:
    """Phase 1: %NAME% -> value (case-insensitive names); undefined stays as written."""
    lower = {k.lower(): v for k, v in env.items()}
    out: list[str] = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "%":
            j = line.find("%", i + 1)
            if j > i + 1:
                name = line[i + 1:j]
                if name.lower() in lower:
                    out.append(lower[name.lower()])
                    i = j + 1
                    continue
                out.append(line[i:j + 1])
                i = j + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def split_commands(line: str) -> list[dict]:
    """Phase 2: carets, command separators and redirections, honouring double quotes."""
    segments: list[dict] = []
    cur: list[str] = []
    redirects: list[str] = []
    in_q = False
    i, n = 0, len(line)

    def flush(op):
        segments.append({"text": "".join(cur).strip(" \t"), "op": op, "redirects": list(redirects)})
        cur.clear()
        redirects.clear()

    while i < n:
        c = line[i]
        if c == '"':
            in_q = not in_q
            cur.append(c)
            i += 1
        elif in_q:
            cur.append(c)
            i += 1
        elif c == "^":
            if i + 1 < n:
                cur.append(line[i + 1])
            i += 2
        elif c in "&|":
            op = c
            if i + 1 < n and line[i + 1] == c:
                op = c * 2
            flush(op)
            i += len(op)
        elif c in "<>" or (c.isdigit() and i + 1 < n and line[i + 1] in "<>"
                           and (i == 0 or line[i - 1] in " \t")):
            j = i
            if c.isdigit():
                j += 1
            op = line[j]
            j += 1
            if op == ">" and j < n and line[j] == ">":
                op, j = ">>", j + 1
            if j < n and line[j] == "&" and j + 1 < n and line[j + 1].isdigit():
                target, j = line[j:j + 2], j + 2
            else:
                while j < n and line[j] in " \t":
                    j += 1
                k = j
                q = False
                while k < n and (q or line[k] not in " \t&|<>"):
                    if line[k] == '"':
                        q = not q
                    k += 1
                target, j = line[j:k], k
            redirects.append(line[i:i + (1 if c.isdigit() else 0)] + op + target)
            i = j
        else:
            cur.append(c)
            i += 1
    flush(None)
    return [s for s in segments if s["text"] or s["op"]]


def first_word(text: str) -> str:
    """The command name as cmd.exe reads it (quotes group; `echo.` style ends at a dot too)."""
    m = re.match(r'\s*("([^"]*)"?|[^\s"/;,=]+)', text)
    if not m:
        return ""
    return m.group(2) if m.group(2) is not None else m.group(1)


def run_cmd_c(line: str, env: dict[str, str], depth: int = 0) -> dict:
    """`cmd.exe /c <line>`: what each command of the line gets."""
    stripped, did_strip = strip_cmd_c_quotes(line)
    expanded = expand_percent(stripped, env)
    out = {"line": expanded, "quotes_stripped": did_strip, "segments": []}
    for seg in split_commands(expanded):
        name = first_word(seg["text"])
        base = re.split(r"[\\/]", name)[-1].lower()
        entry = dict(seg)
        if base in BUILTINS and not name.lower().endswith(EXECUTABLE_EXTS):
            entry["builtin"] = base
            entry["argv"] = None
            if base == "echo":
                rest = seg["text"].lstrip(" \t")[len(name):]
                entry["echo"] = rest[1:] if rest[:1] in (" ", "\t", ".", "/") else rest
        else:
            entry["builtin"] = None
            entry["argv"] = command_line_to_argv(seg["text"])
            entry["cmd"] = nested_cmd(seg["text"], entry["argv"], env, depth)
        out["segments"].append(entry)
    return out


def nested_cmd(text: str, argv: list[str], env: dict[str, str], depth: int) -> dict | None:
    """A segment that starts cmd.exe /c or /k again: the inner cmd's view of the rest."""
    if depth > 4 or not argv:
        return None
    if re.split(r"[\\/]", argv[0])[-1].lower() not in ("cmd", "cmd.exe"):
        return None
    m = re.search(r"(?i)(?:^|\s)/[ck]\b\s?", text)
    if not m:
        return None
    return run_cmd_c(text[m.end():], env, depth + 1)


def effective(result: dict) -> dict | None:
    """The command that does the work: past `set`/`cd` preparations and nested cmd.exe."""
    for seg in result["segments"]:
        if seg.get("builtin") in PREPARING:
            continue
        inner = seg.get("cmd")
        if inner is not None:
            return effective(inner) or seg
        return seg
    return None


def describe(command_line: str, skip_cmd_shell: bool, env: dict[str, str]) -> dict:
    """{"argv", "cmd", "echo"} for a WinRS command line."""
    if skip_cmd_shell:
        argv = command_line_to_argv(command_line)
        inner = nested_cmd(command_line, argv, env, 0)
        if inner is not None:
            eff = effective(inner)
            return {"argv": eff.get("argv") if eff else None, "cmd": inner,
                    "echo": eff.get("echo") if eff else None}
        return {"argv": argv, "cmd": None, "echo": None}
    result = run_cmd_c(command_line, env)
    eff = effective(result)
    return {"argv": eff.get("argv") if eff else None, "cmd": result,
            "echo": eff.get("echo") if eff else None}
