"""win_powershell: what src/modules/windows/win_powershell.ps1 answers, for scripts written in a small,
modelled subset of PowerShell. PowerShell cannot run here; a statement outside the subset fails the
request with ``mixop.SimNotModelled`` (never a guess).

run  args {"script", "parameters", "arguments", "executable", "error_action": "Stop"|"Continue"|"SilentlyContinue",
     "chdir", "depth", "creates", "removes", "diff"}, secrets {"sensitive": [{"name", "value"} |
     {"name", "username", "password"}]} ->
     {"skipped", "check_mode_skip"?} | {"output", "error", "warning", "verbose", "debug", "information",
      "host_out", "host_err", "result", "changed", "failed", "terminated", "diff"}

The subset (one statement per line or ``;``; ``#`` comments):
* ``[CmdletBinding(SupportsShouldProcess)]`` / ``param([type]$Name = default, ...)``: parameters bound from
  ``parameters`` and the sensitive ones (a SecureString, a PSCredential) case-insensitively; an unknown one is
  PowerShell's ParameterBindingException; with SupportsShouldProcess -WhatIf is bound to check mode
* ``Write-Output``, ``Write-Warning``, ``Write-Verbose``/``Write-Debug`` (recorded when ``$VerbosePreference``/
  ``$DebugPreference`` is ``'Continue'``), ``Write-Information``, ``Write-Host [-NoNewline]`` (an information record
  tagged PSHOST, and host output), ``Write-Error`` (non-terminating unless the error action is Stop; not recorded
  with SilentlyContinue), ``throw``, ``[Console]::WriteLine(x)``, ``[Console]::Error.WriteLine(x)``, ``Get-Location``
* ``$Ansible.Changed|Failed|Result|Diff = x``, ``$ErrorActionPreference|$VerbosePreference|$DebugPreference = x``,
  ``$name = x``; a bare expression is output
* ``if (x) { statements }`` on one line, ``if ($PSCmdlet.ShouldProcess(x)) { ... }`` (false under -WhatIf)
* expressions: 'single' and "double" quoted strings (``$name`` / ``$($name.Prop)`` expanded), integers,
  ``$true``/``$false``/``$null``, ``$name``, ``$name.Prop`` (a SecureString's ``Length``, a PSCredential's
  ``UserName``, ``$Ansible.CheckMode``), ``@{k = x; ...}``, ``@(x, ...)``
"""

from __future__ import annotations

import datetime
import re

from ..errors import CmdletError


class SecureString:
    def __init__(self, text: str):
        self._text = text

    def __repr__(self):
        return "System.Security.SecureString"


class Credential:
    def __init__(self, user: str, password: str):
        self.user = user
        self._password = SecureString(password)


class Halt(Exception):
    """A terminating error inside the script."""

    def __init__(self, record: dict):
        self.record = record


def not_modelled(what: str) -> CmdletError:
    return CmdletError("winrm-peer sim: win_powershell does not model this PowerShell: %s" % what.strip(),
                       "mixop.SimNotModelled", "NotImplemented", "SimNotModelled", None)


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for c in line:
        if quote:
            out.append(c)
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "#":
            break
        else:
            out.append(c)
    return "".join(out)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes, braces, brackets and parentheses."""
    parts, cur, depth, quote = [], [], 0, None
    for c in text:
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _balanced(text: str, start: int) -> int:
    """Index just past the parenthesis group opening at ``start``."""
    depth, quote = 0, None
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise not_modelled("unbalanced parentheses")


class Script:
    def __init__(self, ctx, text: str, params: dict, check_mode: bool, error_action: str):
        self.ctx = ctx
        self.vars: dict = {"true": True, "false": False, "null": None}
        self.ansible = {"CheckMode": check_mode, "Changed": True, "Failed": False, "Result": {}, "Diff": {},
                        "Tmpdir": "C:\\Users\\admin\\AppData\\Local\\Temp", "Verbosity": 0}
        self.error_action = error_action
        self.prefs = {"verbosepreference": "SilentlyContinue", "debugpreference": "SilentlyContinue"}
        self.out: list = []
        self.errors: list[dict] = []
        self.warning: list[str] = []
        self.verbose: list[str] = []
        self.debug: list[str] = []
        self.information: list[dict] = []
        self.host_out: list[str] = []
        self.console_out: list[str] = []
        self.console_err: list[str] = []
        self.location = ctx.arg("chdir") or "C:\\Users\\admin\\Documents"
        text = "\n".join(_strip_comment(line) for line in text.splitlines())
        self.supports_should_process = bool(re.search(
            r"\[CmdletBinding\(\s*[^)]*SupportsShouldProcess(\s*=\s*\$true)?\s*[,)]", text, re.I))
        text = re.sub(r"^\s*\[CmdletBinding\([^)]*\)\]", "", text, flags=re.I)
        self.declared: list[str] = []
        m = re.match(r"\s*param\s*\(", text, re.I)
        if m:
            end = _balanced(text, m.end() - 1)
            self._declare(text[m.end():end - 1])
            text = text[end:]
        self.body = text
        self.whatif = False
        self._bind(params)

    def _declare(self, inner: str) -> None:
        for p in _split_top(inner, ","):
            if not p:
                continue
            m = re.match(r"^(?:\[[^\]]+\]\s*)*\$(\w+)\s*(?:=\s*(.+))?$", p, re.S)
            if not m:
                raise not_modelled("param entry " + p)
            self.declared.append(m.group(1))
            self.vars[m.group(1).lower()] = self.expr(m.group(2)) if m.group(2) else None

    def _bind(self, params: dict) -> None:
        known = {d.lower(): d for d in self.declared}
        if self.supports_should_process:
            known.update({"whatif": "WhatIf", "confirm": "Confirm"})
        for k, v in params.items():
            if k.lower() not in known:
                self.halt_record(self._record(
                    "A parameter cannot be found that matches parameter name '%s'." % k,
                    "System.Management.Automation.ParameterBindingException", "InvalidArgument", "",
                    "ParameterBindingException", "NamedParameterNotFound", target_name=""))
                return
            if k.lower() == "whatif":
                self.whatif = bool(v)
            elif k.lower() != "confirm":
                self.vars[k.lower()] = v

    # ---- records -----------------------------------------------------------------------------
    def _record(self, message: str, exc_type: str, category: str, activity: str, reason: str, fqid: str,
                target_name: str = "") -> dict:
        cats = ["NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected", "InvalidArgument",
                "InvalidData", "InvalidOperation", "InvalidResult", "InvalidType", "MetadataError",
                "NotImplemented", "NotInstalled", "ObjectNotFound", "OperationStopped", "OperationTimeout",
                "SyntaxError", "ParserError", "PermissionDenied", "ResourceBusy", "ResourceExists",
                "ResourceUnavailable", "ReadError", "WriteError", "FromStdErr", "SecurityError",
                "ProtocolError", "ConnectionError", "AuthenticationError", "LimitsExceeded", "QuotaExceeded",
                "NotEnabled"]
        output = "%s\n    + CategoryInfo          : %s: (%s:) [%s], %s\n    + FullyQualifiedErrorId : %s" % (
            message, category, target_name, activity, reason, fqid)
        return {"output": output, "error_details": None,
                "exception": {"message": message, "type": exc_type, "help_link": None, "source": None,
                              "hresult": -2146233087, "inner_exception": None},
                "target_object": None,
                "category_info": {"category": category, "category_id": cats.index(category), "activity": activity,
                                  "reason": reason, "target_name": target_name, "target_type": ""},
                "fully_qualified_error_id": fqid, "script_stack_trace": "at <ScriptBlock>, <No file>: line 1",
                "pipeline_iteration_info": []}

    def halt_record(self, record: dict) -> None:
        self.errors.append(record)
        raise Halt(record)

    def write_error(self, message) -> None:
        rec = self._record(str(message), "Microsoft.PowerShell.Commands.WriteErrorException", "NotSpecified",
                           "Write-Error", "WriteErrorException", "Microsoft.PowerShell.Commands.WriteErrorException")
        action = str(self.vars.get("erroractionpreference", self.error_action))
        if action.lower() == "silentlycontinue":
            return
        self.errors.append(rec)
        if action.lower() == "stop":
            raise Halt(rec)

    # ---- expressions -------------------------------------------------------------------------
    def expand(self, s: str) -> str:
        def sub(m):
            name = m.group(1) or m.group(2)
            v = self.lookup(name)
            return "" if v is None else self.text(v)
        return re.sub(r"\$\(\s*\$([\w.]+)\s*\)|\$([\w]+(?:\.\w+)?)", sub, s.replace("`n", "\n").replace("`t", "\t"))

    def text(self, v) -> str:
        if v is True:
            return "True"
        if v is False:
            return "False"
        if isinstance(v, list):
            return " ".join(self.text(x) for x in v)
        if isinstance(v, Credential):
            return "System.Management.Automation.PSCredential"
        return str(v)

    def lookup(self, dotted: str):
        name, *props = dotted.split(".")
        low = name.lower()
        if low == "ansible":
            v = {k.lower(): val for k, val in self.ansible.items()}
            return v.get(props[0].lower()) if props else self.ansible
        if low == "erroractionpreference":
            return self.vars.get(low, self.error_action)
        if low in self.prefs:
            return self.prefs[low]
        if low not in self.vars:
            return None  # an unset variable is $null
        v = self.vars[low]
        for p in props:
            if isinstance(v, SecureString) and p.lower() == "length":
                v = len(v._text)
            elif isinstance(v, Credential) and p.lower() == "username":
                v = v.user
            elif isinstance(v, dict):
                v = next((val for k, val in v.items() if k.lower() == p.lower()), None)
            else:
                raise not_modelled("property %s of %s" % (p, dotted))
        return v

    def expr(self, e: str):
        e = e.strip()
        if not e:
            raise not_modelled("an empty expression")
        if e.startswith("'") and e.endswith("'") and len(e) >= 2:
            return e[1:-1].replace("''", "'")
        if e.startswith('"') and e.endswith('"') and len(e) >= 2:
            return self.expand(e[1:-1])
        if re.fullmatch(r"-?\d+", e):
            return int(e)
        if re.fullmatch(r"\$[\w.]+", e):
            return self.lookup(e[1:])
        if e.startswith("@{") and e.endswith("}"):
            out = {}
            for item in _split_top(e[2:-1].replace("\n", ";"), ";"):
                if not item:
                    continue
                k, sep, v = item.partition("=")
                if not sep:
                    raise not_modelled(item)
                out[k.strip().strip("'\"")] = self.expr(v)
            return out
        if e.startswith("@(") and e.endswith(")"):
            return [self.expr(x) for x in _split_top(e[2:-1], ",") if x]
        if e.startswith("(") and e.endswith(")"):
            return self.expr(e[1:-1])
        raise not_modelled(e)

    # ---- statements --------------------------------------------------------------------------
    def run_block(self, text: str) -> None:
        for line in text.split("\n"):
            for stmt in _split_top(line, ";"):
                if stmt:
                    self.statement(stmt)

    def statement(self, s: str) -> None:
        m = re.match(r"^if\s*\((.*)\)\s*\{(.*)\}$", s, re.I | re.S)
        if m:
            cond = m.group(1).strip()
            sp = re.fullmatch(r"\$PSCmdlet\.ShouldProcess\((.*)\)", cond, re.I)
            if sp:
                if not self.supports_should_process:
                    raise not_modelled("ShouldProcess without SupportsShouldProcess")
                self.expr(sp.group(1))
                ok = not self.whatif
            else:
                ok = bool(self.expr(cond))
            if ok:
                self.run_block(m.group(2))
            return
        m = re.match(r"^\$([\w.]+)\s*=\s*(.+)$", s, re.S)
        if m:
            target, value = m.group(1), self.expr(m.group(2))
            low = target.lower()
            if low.startswith("ansible."):
                prop = next((k for k in self.ansible if k.lower() == low.split(".", 1)[1]), None)
                if prop is None or prop == "CheckMode":
                    raise not_modelled("$" + target)
                self.ansible[prop] = value
            elif low in self.prefs:
                self.prefs[low] = str(value)
            elif "." in low:
                raise not_modelled("$" + target)
            else:
                self.vars[low] = value
            return
        m = re.match(r"^\[Console\]::(Error\.)?WriteLine\((.*)\)$", s, re.I | re.S)
        if m:
            (self.console_err if m.group(1) else self.console_out).append(self.text(self.expr(m.group(2))) + "\r\n")
            return
        m = re.match(r"^(Write-\w+|throw|Get-Location)\b\s*(.*)$", s, re.I | re.S)
        if m:
            return self.command(m.group(1).lower(), m.group(2).strip())
        self.out.append(self.expr(s))

    def command(self, cmd: str, rest: str) -> None:
        if cmd == "get-location":
            if rest:
                raise not_modelled("Get-Location " + rest)
            self.out.append({"Path": self.location, "Drive": self.location[:1], "Provider": "FileSystem"})
            return
        nonewline = False
        if cmd == "write-host" and re.search(r"\s-NoNewline\s*$", rest, re.I):
            nonewline, rest = True, re.sub(r"\s-NoNewline\s*$", "", rest, flags=re.I)
        value = self.expr(rest) if rest else None
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        if cmd == "write-output":
            self.out.extend(value if isinstance(value, list) else [value])
        elif cmd == "write-warning":
            self.warning.append(self.text(value))
        elif cmd == "write-verbose":
            if self.prefs["verbosepreference"].lower() == "continue":
                self.verbose.append(self.text(value))
        elif cmd == "write-debug":
            if self.prefs["debugpreference"].lower() == "continue":
                self.debug.append(self.text(value))
        elif cmd == "write-information":
            self.information.append({"message_data": value, "source": "Write-Information", "time_generated": now,
                                     "tags": []})
        elif cmd == "write-host":
            msg = self.text(value)
            self.information.append({"message_data": {"Message": msg, "ForegroundColor": None,
                                                      "BackgroundColor": None, "NoNewLine": nonewline},
                                     "source": "Write-Host", "time_generated": now, "tags": ["PSHOST"]})
            self.host_out.append(msg + ("" if nonewline else "\r\n"))
        elif cmd == "write-error":
            self.write_error(self.text(value))
        elif cmd == "throw":
            msg = self.text(value) if value is not None else "ScriptHalted"
            self.halt_record(self._record(msg, "System.Management.Automation.RuntimeException", "OperationStopped",
                                          "", "RuntimeException", msg, target_name=msg))
        else:
            raise not_modelled(cmd)


def run(ctx):
    if ctx.arg("creates") and ctx.ps.test_path(str(ctx.arg("creates"))):
        return {"skipped": "skipped, since %s exists" % ctx.arg("creates")}
    if ctx.arg("removes") and not ctx.ps.test_path(str(ctx.arg("removes"))):
        return {"skipped": "skipped, since %s does not exist" % ctx.arg("removes")}
    if ctx.arg("executable"):
        raise not_modelled("executable (another PowerShell process)")
    params = dict(ctx.arg("parameters") or {})
    for s in (ctx.secrets.get("sensitive") or []):
        if s.get("username") is not None:
            params[s["name"]] = Credential(str(s["username"]), str(s.get("password") or ""))
        else:
            params[s["name"]] = SecureString(str(s.get("value") or ""))
    if ctx.arg("chdir") and not ctx.ps.test_path(str(ctx.arg("chdir"))):
        raise not_modelled("Set-Location to a missing path")
    sc = None
    terminated = False
    try:
        sc = Script(ctx, str(ctx.arg("script", required=True)), {}, ctx.check_mode,
                    str(ctx.arg("error_action", "Continue")))
        if ctx.check_mode and not sc.supports_should_process:
            return {"skipped": "skipped, running in check mode", "check_mode_skip": True}
        if sc.supports_should_process:
            params.setdefault("Confirm", False)
            params["WhatIf"] = ctx.check_mode
        sc._bind(params)
        sc.run_block(sc.body)
    except Halt:
        terminated = True

    def plain(v):
        if isinstance(v, SecureString):
            return "System.Security.SecureString"
        if isinstance(v, Credential):
            return {"UserName": v.user, "Password": "System.Security.SecureString"}
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return {"output": plain(sc.out), "error": sc.errors, "warning": sc.warning, "verbose": sc.verbose,
            "debug": sc.debug, "information": plain(sc.information),
            "host_out": "".join(sc.host_out + sc.console_out), "host_err": "".join(sc.console_err),
            "result": plain(sc.ansible["Result"]), "changed": bool(sc.ansible["Changed"]),
            "failed": bool(sc.ansible["Failed"]), "terminated": terminated, "diff": plain(sc.ansible["Diff"])}
