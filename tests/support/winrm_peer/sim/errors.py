"""Errors of the simulated cmdlet layer, shaped like PowerShell ErrorRecords.

A real cmdlet failure under ``$ErrorActionPreference = 'Stop'`` surfaces as an ErrorRecord:
``$_.Exception.GetType().FullName`` (``exception``), ``$_.CategoryInfo.Category`` (``category``),
``$_.FullyQualifiedErrorId`` (``error_id``: "<ErrorId>,<command's .NET type or name>") and
``$_.Exception.Message`` (``msg``); the host wrapper adds the position in the module script.
See https://learn.microsoft.com/dotnet/api/system.management.automation.errorrecord and
https://learn.microsoft.com/dotnet/api/system.management.automation.errorcategory .
"""

from __future__ import annotations

import re


class CmdletError(Exception):
    """A terminating error as PowerShell would report it."""

    def __init__(self, msg: str, exception: str, category: str, error_id: str, command: str | None = None,
                 target: object = None, inner: list[str] | None = None):
        super().__init__(msg)
        # The messages of $_.Exception.InnerException, .InnerException.InnerException ... (outermost first):
        # what a script that walks the chain sees (e.g. the Win32 error behind a failed Start-Service).
        self.inner = list(inner or [])
        self.msg = msg
        self.exception = exception
        self.category = category
        self.error_id = error_id
        self.command = command  # the cmdlet (or .NET method) that failed: used to find the script line
        self.target = target

    def as_result(self, script: str | None = None) -> dict:
        line, column, text = locate(script or "", self.command)
        return {"ok": False, "failed": True, "msg": self.msg, "exception": self.exception,
                "category": self.category, "line": line, "column": column, "script_line": text,
                "error_id": self.error_id}


def locate(script: str, command: str | None) -> tuple[int, int, str]:
    """Where ``command`` first appears in the module script (1-based line/column), else 0, 0, ''.

    The simulator does not run the script, so the position of the failing statement is taken to be
    the first mention of the cmdlet (or method) that failed - the same statement in thin probe/apply
    scripts that call each cmdlet once.
    """
    if not script or not command:
        return 0, 0, ""
    pat = re.compile(r"(?<![\w-])" + re.escape(command) + r"(?![\w-])", re.I)
    for i, text in enumerate(script.splitlines(), 1):
        m = pat.search(text)
        if m:
            return i, m.start() + 1, text.strip()
    return 0, 0, ""


# ---- constructors for errors several cmdlets share --------------------------------------------

def parameter_null(param: str, command: str, cmd_type: str | None = None) -> CmdletError:
    # ParameterBinderStrings.ParameterArgumentValidationErrorNullNotAllowed
    return CmdletError(
        "Cannot bind argument to parameter '%s' because it is null." % param,
        "System.Management.Automation.ParameterBindingValidationException", "InvalidData",
        "ParameterArgumentValidationErrorNullNotAllowed,%s" % (cmd_type or command), command)


def enum_binding(param: str, value: str, enum_type: str, names: list[str], command: str,
                 cmd_type: str) -> CmdletError:
    # What PowerShell says when a string does not convert to the parameter's enum type.
    return CmdletError(
        "Cannot bind parameter '%s'. Cannot convert value \"%s\" to type \"%s\". Error: \"Unable to match the "
        "identifier name %s to a valid enumerator name. Specify one of the following enumerator names and try "
        "again:\r\n%s\"" % (param, value, enum_type, value, ", ".join(names)),
        "System.Management.Automation.ParameterBindingException", "InvalidArgument",
        "CannotConvertArgumentNoMessage,%s" % cmd_type, command)


def validate_set(param: str, value: str, allowed: list[str], command: str, cmd_type: str) -> CmdletError:
    return CmdletError(
        "Cannot validate argument on parameter '%s'. The argument \"%s\" does not belong to the set \"%s\" "
        "specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command "
        "again." % (param, value, ",".join(allowed)),
        "System.Management.Automation.ParameterBindingValidationException", "InvalidData",
        "ParameterArgumentValidationError,%s" % cmd_type, command)


def cim_not_found(cim_class: str, prop: str, value: str, command: str) -> CmdletError:
    # CDXML ("cmdletization") cmdlets such as Get-NetFirewallRule and Get-ScheduledTask:
    # CmdletizationResources.CimJob_NotFound_... / FullyQualifiedErrorId CmdletizationQuery_NotFound_<Prop>.
    return CmdletError(
        "No %s objects found with property '%s' equal to '%s'.  Verify the value of the property and retry."
        % (cim_class, prop, value),
        "Microsoft.PowerShell.Cmdletization.Cim.CimJobException", "ObjectNotFound",
        "CmdletizationQuery_NotFound_%s,%s" % (prop, command), command, value)


def cim_already_exists(error_id: str, command: str) -> CmdletError:
    # Win32 ERROR_ALREADY_EXISTS (183) reported through CIM.
    return CmdletError("Cannot create a file when that file already exists.",
                       "Microsoft.Management.Infrastructure.CimException", "ResourceExists",
                       "%s,%s" % (error_id, command), command)


def path_not_found(path: str, command: str, cmd_type: str) -> CmdletError:
    # Microsoft.PowerShell.Commands file system provider: PathNotFound (ItemNotFoundException).
    return CmdletError("Cannot find path '%s' because it does not exist." % path,
                       "System.Management.Automation.ItemNotFoundException", "ObjectNotFound",
                       "PathNotFound,%s" % cmd_type, command, path)


def dotnet_method(method: str, nargs: int, inner_type: str, message: str) -> CmdletError:
    # A .NET method throwing inside a script: PowerShell wraps the exception in a
    # MethodInvocationException ('Exception calling "X" with "N" argument(s): "..."') whose
    # FullyQualifiedErrorId is the inner exception's type name (e.g. DirectoryNotFoundException).
    return CmdletError('Exception calling "%s" with "%d" argument(s): "%s"' % (method, nargs, message),
                       "System.Management.Automation.MethodInvocationException", "NotSpecified",
                       inner_type.rsplit(".", 1)[-1], method)
