"""win_ping: phase run. Like ansible.windows.win_ping: returns {"ping": data} (data defaults to
"pong"); data "crash" throws "boom" (a RuntimeException from `throw "boom"`)."""

from ..errors import CmdletError


def run(ctx):
    data = ctx.arg("data", "pong")
    if data == "crash":
        raise CmdletError("boom", "System.Management.Automation.RuntimeException", "OperationStopped", "boom", "throw")
    return {"ping": data}
