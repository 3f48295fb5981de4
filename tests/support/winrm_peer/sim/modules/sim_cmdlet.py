"""sim_cmdlet: a diagnostic module of the simulator (not a mixop module) that calls the simulated
cmdlet layer directly, so tests (and engineers writing handlers) can set up or inspect the host over
the real wire.

phase run, args {"calls": [{"cmdlet": "New-Service", "params": {"Name": "x", "BinaryPathName": "..."}}, ...]}
-> {"results": [<output of each call>]}. Cmdlet names map to sim/cmdlets.py methods (New-Service ->
new_service, Get-NetIPAddress -> get_net_ip_address, sc.exe -> sc_exe, SetEnvironmentVariable ->
set_environment_variable), parameter names likewise (BinaryPathName -> binary_path_name). The first
failing call's CmdletError is the request's error, as in a script running with
$ErrorActionPreference = 'Stop'.
"""

import inspect
import re

from ..errors import CmdletError

_DENY = {"boot", "fresh_process_env"}


def snake(name: str) -> str:
    name = name.replace("-", "_").replace(".", "_").replace("[Environment]::", "")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"_+", "_", name).lower().strip("_")


def run(ctx):
    out = []
    for call in ctx.arg("calls", []):
        cmdlet = str(call.get("cmdlet", ""))
        meth = snake(cmdlet)
        fn = getattr(ctx.ps, meth, None)
        if meth.startswith("_") or meth in _DENY or not callable(fn):
            raise CmdletError("The term '%s' is not recognized as the name of a cmdlet, function, script file, or "
                              "operable program." % cmdlet, "System.Management.Automation.CommandNotFoundException",
                              "ObjectNotFound", "CommandNotFoundException", cmdlet)
        params = call.get("params") or {}
        if isinstance(params, list):
            res = fn(*params)
        else:
            accepted = inspect.signature(fn).parameters
            for k in params:
                if snake(k) not in accepted:
                    raise CmdletError("A parameter cannot be found that matches parameter name '%s'." % k,
                                      "System.Management.Automation.ParameterBindingException", "InvalidArgument",
                                      "NamedParameterNotFound,%s" % cmdlet, cmdlet)
            res = fn(**{snake(k): v for k, v in params.items()})
        out.append(list(res) if isinstance(res, tuple) else res)
    return {"results": out}
