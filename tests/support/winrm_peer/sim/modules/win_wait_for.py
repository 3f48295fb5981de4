"""win_wait_for: one look per request (the controller loops).

probe  args {"host", "port"?, "path"?, "search_regex"?, "state", "connect_timeout"} ->
       port: {"exists": <a TCP connection to host:port succeeded within connect_timeout>}
             (TcpClient.BeginConnect), or for state=drained {"exists": true, "connections": [remote addresses of
             the non-listening TCP connections whose local port is `port` (and local address `host` unless
             0.0.0.0)]} (IPGlobalProperties.GetActiveTcpConnections);
       path: {"exists"} (Test-Path -LiteralPath), plus {"matched"} when search_regex is given
             (Get-Content -Raw, then -match: a .NET regular expression, case-insensitive).
The simulated host shares the test machine's loopback, so ports are real sockets.
"""

import re

from .. import fileops
from ..errors import CmdletError


def probe(ctx):
    port = ctx.arg("port")
    host = str(ctx.arg("host", "127.0.0.1"))
    if port is not None:
        if str(ctx.arg("state")) == "drained":
            conns = [c["remote_address"] for c in fileops.active_tcp_connections()
                     if c["local_port"] == int(port) and (host == "0.0.0.0" or c["local_address"] == host)]
            return {"exists": True, "connections": conns}
        return {"exists": fileops.tcp_connect(host, int(port), float(ctx.arg("connect_timeout", 5)))}
    path = str(ctx.arg("path", required=True))
    try:
        exists = ctx.ps.test_path(path)
    except CmdletError:
        exists = False
    if not exists:
        return {"exists": False}
    regex = ctx.arg("search_regex")
    if regex is None:
        return {"exists": True}
    data = ctx.ps.get_content_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", "replace")
    elif data.startswith(b"\xff\xfe"):
        text = data[2:].decode("utf-16-le", "replace")
    else:
        # Windows PowerShell 5.1 reads a file without a BOM as the ANSI code page... unless it is valid UTF-8
        # text it only detects with a BOM; UTF-8 here keeps non-ASCII test data readable.
        text = data.decode("utf-8", "replace")
    return {"exists": True, "matched": re.search(str(regex), text, re.IGNORECASE) is not None}
