# Run by preflight.yml on the server as `python3 - mixop-preflight-listener PORT...` (this text on
# stdin). For each port nothing listens on yet, it listens on all addresses for a short while so
# that the workers can prove the port reaches the server through every firewall on the way,
# before anything is installed. Prints {"listening": [ports], "served": [ports], "pid": N} and
# leaves a detached child that accepts and closes connections until it is killed or DEADLINE
# seconds pass. A listener left by an earlier, failed preflight is stopped first, so the port it
# held is free for the real server.
import errno, json, os, select, signal, socket, sys, time

MARKER = sys.argv[1]
DEADLINE = 60


def stop_stale():
    # Only listeners in this network namespace can hold these ports: another namespace on the
    # same kernel (a container, a lab host sharing the process table) has ports of its own, and
    # its listener may be another preflight's at work.
    me, stopped, my_net = os.getpid(), [], os.readlink("/proc/self/ns/net")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            same_net = os.readlink(f"/proc/{pid}/ns/net") == my_net
        except OSError:
            continue
        if int(pid) != me and same_net and len(argv) > 2 and argv[1] == b"-" and argv[2] == MARKER.encode():
            try:
                os.kill(int(pid), signal.SIGTERM)
                stopped.append(pid)
            except OSError:
                pass
    end = time.monotonic() + 3
    while any(os.path.exists(f"/proc/{p}") for p in stopped) and time.monotonic() < end:
        time.sleep(0.05)


stop_stale()
listening, served, socks = [], [], []
for port in map(int, sys.argv[2:]):
    s = socket.socket(socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET)
    if s.family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("", port))
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        served.append(port)  # something real already serves it (the server on a later run)
        s.close()
        continue
    s.listen(16)
    s.setblocking(False)
    listening.append(port)
    socks.append(s)

if not socks:
    print(json.dumps({"listening": [], "served": served, "pid": None}))
    sys.exit(0)
pid = os.fork()
if pid:
    print(json.dumps({"listening": listening, "served": served, "pid": pid}))
    sys.exit(0)
os.setsid()
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)
end = time.monotonic() + DEADLINE
while time.monotonic() < end:
    ready, _, _ = select.select(socks, [], [], 1.0)
    for s in ready:
        try:
            conn, _ = s.accept()
            conn.close()
        except OSError:
            pass
