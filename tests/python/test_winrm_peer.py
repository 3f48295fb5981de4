"""The project's WinRM peer, checked with the reference clients pywinrm and pypsrp.

Every test starts its own peers (tests/support/winrm_peer/peer.py) on port 0 and
talks to them only over loopback. A small raw client (socket + pyspnego) checks
the wire details the reference clients hide (401 shape, the empty final leg,
connection-bound NTLM, plaintext refusal, per-direction sequence numbers).
"""

from __future__ import annotations

import base64
import json
import os
import re
import hashlib
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# WINRM_PEER lets a mutated copy of the peer be checked against this suite without touching the tree.
PEER = os.environ.get("WINRM_PEER") or os.path.join(ROOT, "tests", "support", "winrm_peer", "peer.py")

import pypsrp.client as pypsrp_client  # noqa: E402
import spnego  # noqa: E402
import spnego.channel_bindings  # noqa: E402
import winrm  # noqa: E402
from pypsrp.exceptions import AuthenticationError, WSManFaultError as PsrpFault  # noqa: E402
from pypsrp.shell import Process, SignalCode, WinRS  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402
from winrm.exceptions import (  # noqa: E402
    InvalidCredentialsError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)

USER = "vagrant"
PASSWORD = "Pa55:w0rd!"  # a colon in the password on purpose
SHELL_NOT_FOUND = 2150858843
TIMED_OUT = 2150858793
MAX_SHELLS = 2150859173


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

class PeerProc:
    def __init__(self, tmp, *extra: str, users=("%s:%s" % (USER, PASSWORD), "LAB\\admin:Adm1n-pw")):
        os.makedirs(tmp, exist_ok=True)
        self.tmp = str(tmp)
        self.port_file = os.path.join(self.tmp, "port")
        self.cport_file = os.path.join(self.tmp, "cport")
        self.log_path = os.path.join(self.tmp, "peer.log")
        self.https = "--https" in extra
        self.cert_dir = os.path.join(self.tmp, "certs")
        args = [sys.executable, PEER, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
                "--control", "--control-port-file", self.cport_file, "-v"]
        for u in users:
            args += ["--users", u]
        if self.https:
            args += ["--cert-dir", self.cert_dir]
        args += list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "wb"))
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(self.port_file) and os.path.exists(self.cport_file):
                self.port = int(open(self.port_file).read())
                self.cport = int(open(self.cport_file).read())
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("peer did not start:\n" + open(self.log_path).read())

    @property
    def url(self) -> str:
        return "%s://127.0.0.1:%d/wsman" % ("https" if self.https else "http", self.port)

    @property
    def ca(self) -> str:
        return os.path.join(self.cert_dir, "ca.pem")

    def control(self, op: str, body=None) -> dict:
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/%s" % (self.cport, op), data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            res = json.load(r)
        assert res["ok"], res
        return res

    def stats(self) -> dict:
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % self.cport, timeout=10) as r:
            return json.load(r)

    def records(self) -> list:
        with urllib.request.urlopen("http://127.0.0.1:%d/records" % self.cport, timeout=10) as r:
            return json.load(r)

    def log(self) -> str:
        return open(self.log_path, errors="replace").read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def protocol(peer: PeerProc, **kw) -> "winrm.Protocol":
    opts = dict(transport="ntlm", username=USER, password=PASSWORD, server_cert_validation="ignore",
                read_timeout_sec=30, operation_timeout_sec=20)
    opts.update(kw)
    return winrm.Protocol(peer.url, **opts)


def wait_until(cond, what: str, timeout: float = 20.0):
    """Polls cond() until it is true; fails after `timeout` s (the events waited for come within
    milliseconds unless something is broken)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.01)


def gone_or_zombie(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True  # reaped (the check and the read race the peer's wait(), so no exists())
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def run(p, shell, command, args=(), stdin: bytes | None = None):
    cid = p.run_command(shell, command, list(args))
    if stdin is not None:
        p.send_command_input(shell, cid, stdin, end=True)
    out, err, rc = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    return out, err, rc


NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}


def envelope(action: str, body: str = "", shell_id: str | None = None, timeout: str = "PT20S",
             max_env: int = 153600) -> bytes:
    sel = ('<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet>' % shell_id) if shell_id else ""
    return ('<s:Envelope xmlns:s="{s}" xmlns:a="{a}" xmlns:w="{w}" xmlns:rsp="{rsp}"><s:Header>'
            "<a:To>http://127.0.0.1/wsman</a:To><a:ReplyTo><a:Address s:mustUnderstand=\"true\">"
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"
            '<w:MaxEnvelopeSize s:mustUnderstand="true">{me}</w:MaxEnvelopeSize>'
            "<a:MessageID>uuid:{mid}</a:MessageID><w:OperationTimeout>{to}</w:OperationTimeout>"
            '<w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>'
            '<a:Action s:mustUnderstand="true">{act}</a:Action>{sel}</s:Header><s:Body>{body}</s:Body></s:Envelope>'
            ).format(me=max_env, mid=str(uuid.uuid4()).upper(), to=timeout, act=action, sel=sel, body=body,
                     **NS).encode()


ACT_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
CREATE = ("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
          "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>")


class RawClient:
    """Minimal WinRM-over-HTTP client: one TCP connection, NTLM via pyspnego, sealing by hand."""

    BOUNDARY = b"--Encrypted Boundary"

    def __init__(self, port: int, user=USER, password=PASSWORD, tls: bool = False, cbt: bytes | None = None):
        self.port = port
        self.user, self.password = user, password
        self.cbt = cbt
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
            self.server_cert = self.sock.getpeercert(binary_form=True)
        self.rf = self.sock.makefile("rb")
        self.ctx = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def request(self, body: bytes = b"", headers: dict | None = None):
        h = {"Host": "127.0.0.1:%d" % self.port, "Content-Length": str(len(body)), "Connection": "Keep-Alive"}
        h.update(headers or {})
        head = "POST /wsman HTTP/1.1\r\n" + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.sock.sendall(head.encode() + body)
        line = self.rf.readline()
        if not line:
            return None, {}, b""
        status = int(line.split()[1])
        hdrs: dict = {}
        while True:
            ln = self.rf.readline().decode("latin-1")
            if ln in ("\r\n", "\n", ""):
                break
            k, _, v = ln.partition(":")
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        n = int(hdrs.get("content-length", ["0"])[0])
        data = self.rf.read(n) if n else b""
        return status, hdrs, data

    def handshake(self):
        bindings = None
        if self.cbt is not None:
            bindings = spnego.channel_bindings.GssChannelBindings(application_data=b"tls-server-end-point:" + self.cbt)
        self.ctx = spnego.client(self.user, self.password, hostname="127.0.0.1", service="http", protocol="ntlm",
                                 options=spnego.NegotiateOptions.use_ntlm, channel_bindings=bindings)
        st, hd, body = self.request(b"", {"Authorization": "Negotiate " + base64.b64encode(self.ctx.step()).decode()})
        assert st == 401 and body == b""
        chal = hd["www-authenticate"][0].split(" ", 1)[1]
        auth = self.ctx.step(base64.b64decode(chal))
        return self.request(b"", {"Authorization": "Negotiate " + base64.b64encode(auth).decode()})

    def seal(self, xml: bytes) -> bytes:
        hdr, data, _ = self.ctx.wrap_winrm(xml)
        return (self.BOUNDARY + b"\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
                b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(xml)).encode() +
                b"\r\n" + self.BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n" +
                struct.pack("<I", len(hdr)) + hdr + data + self.BOUNDARY + b"--\r\n")

    def unseal(self, body: bytes) -> bytes:
        parts = [p for p in body.split(self.BOUNDARY + b"\r\n") if p]
        length = int(re.search(rb"Length=(\d+)", parts[0]).group(1))
        payload = parts[1][len(b"\tContent-Type: application/octet-stream\r\n"):]
        assert payload.endswith(self.BOUNDARY + b"--\r\n")
        payload = payload[: -len(self.BOUNDARY + b"--\r\n")]
        siglen = struct.unpack("<I", payload[:4])[0]
        msg = self.ctx.unwrap_winrm(payload[4:4 + siglen], payload[4 + siglen:])
        assert len(msg) == length
        return msg

    def soap(self, xml: bytes, encrypt: bool = True):
        if encrypt:
            st, hd, body = self.request(self.seal(xml), {
                "Content-Type": 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";'
                                'boundary="Encrypted Boundary"'})
            if body and hd.get("content-type", [""])[0].startswith("multipart/encrypted"):
                body = self.unseal(body)
            return st, hd, body
        return self.request(xml, {"Content-Type": "application/soap+xml;charset=UTF-8"})


def shell_id_of(xml: bytes) -> str:
    return re.search(rb'<w:Selector Name="ShellId">([^<]+)<', xml).group(1).decode()


def wsman_code(xml: bytes) -> int:
    return int(re.search(rb'WSManFault[^>]*Code="(\d+)"', xml).group(1))


# --------------------------------------------------------------------------------------------
# fixtures: peers shared per module where tests do not disturb each other
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def http_peer(tmp_path_factory):
    p = PeerProc(tmp_path_factory.mktemp("http"))
    yield p
    p.stop()
    assert "crashed" not in p.log()


@pytest.fixture(scope="module")
def https_peer(tmp_path_factory):
    p = PeerProc(tmp_path_factory.mktemp("https"), "--https", "--basic")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def record_peer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("record")
    rules = tmp / "replies.yml"
    rules.write_text(
        "- match: 'Get-Service\\s+k3s'\n"
        "  stdout: \"Running\\r\\n\"\n"
        "  rc: 0\n"
        "- match: 'exit 7'\n"
        "  stderr: 'boom'\n"
        "  rc: 7\n")
    p = PeerProc(tmp, "--mode", "record", "--record-log", str(tmp / "record.jsonl"), "--replies", str(rules),
                 "--reboot-down", "1", "--reboot-delay-cap", "3600")
    p.record_log = str(tmp / "record.jsonl")
    yield p
    p.stop()


@pytest.fixture
def fresh_peer(tmp_path):
    peers = []

    def make(*extra, **kw):
        p = PeerProc(tmp_path / ("p%d" % len(peers)), *extra, **kw)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.stop()


# --------------------------------------------------------------------------------------------
# HTTP + NTLM + message encryption
# --------------------------------------------------------------------------------------------

def test_pywinrm_session_ntlm_http_encrypted(http_peer):
    before = http_peer.stats()
    s = winrm.Session(http_peer.url, auth=(USER, PASSWORD), transport="ntlm")
    r = s.run_cmd("printf", ["'%s|'", "a", "b"])
    assert (r.status_code, r.std_out, r.std_err) == (0, b"a|b|", b"")
    after = http_peer.stats()
    assert after["handshakes"] == before["handshakes"] + 1
    assert after["plaintext_refused"] == before["plaintext_refused"]
    assert after["decrypt_failures"] == before["decrypt_failures"]
    for action in ("Create", "Command", "Receive", "Signal", "Delete"):
        assert after["requests_by_action"].get(action, 0) > before["requests_by_action"].get(action, 0)


def test_protocol_reuses_one_connection_handshake_and_shell(http_peer):
    http_peer.control("reset_stats")
    p = protocol(http_peer)
    shell = p.open_shell(codepage=65001)
    outs = [run(p, shell, "echo", ["n%d" % i]) for i in range(5)]
    p.close_shell(shell)
    assert [o[0] for o in outs] == [b"n%d\n" % i for i in range(5)]
    st = http_peer.stats()
    # pywinrm's first request is anonymous and gets a 401 that closes its connection.
    assert st["connections_accepted"] == 2
    assert st["handshakes"] == 1
    assert st["shells_created"] == 1
    assert st["requests_by_action"]["Command"] == 5
    assert st["shells_open"] == 0


def test_exit_codes_and_stderr(http_peer):
    p = protocol(http_peer)
    shell = p.open_shell()
    assert run(p, shell, "exit 42") == (b"", b"", 42)
    assert run(p, shell, "echo oops >&2; exit 3") == (b"", b"oops\n", 3)
    assert run(p, shell, "true") == (b"", b"", 0)
    p.close_shell(shell)


def test_stdin_via_send_pywinrm_and_pypsrp(http_peer):
    p = protocol(http_peer)
    shell = p.open_shell()
    cid = p.run_command(shell, "tr a-z A-Z")
    p.send_command_input(shell, cid, b"hello ", end=False)
    p.send_command_input(shell, cid, b"world\n", end=True)
    out, err, rc = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    p.close_shell(shell)
    assert (out, rc) == (b"HELLO WORLD\n", 0)

    wsman = WSMan("127.0.0.1", port=http_peer.port, username=USER, password=PASSWORD, ssl=False,
                  auth="negotiate", cert_validation=False)
    with WinRS(wsman, codepage=65001, no_profile=True) as ws:
        proc = Process(ws, "wc", ["-c"])  # pypsrp sends one rsp:Arguments per argument
        proc.begin_invoke()
        proc.send(b"x" * 300000, end=True)  # several Send messages are not needed: one big chunk
        proc.end_invoke()
        proc.signal(SignalCode.TERMINATE)
    assert proc.rc == 0
    assert proc.stdout.strip() == b"300000"


def test_pypsrp_client_negotiate(http_peer):
    before = http_peer.stats()["handshakes"]
    c = pypsrp_client.Client("127.0.0.1", port=http_peer.port, username=USER, password=PASSWORD, ssl=False,
                             auth="negotiate", cert_validation=False)
    out, err, rc = c.execute_cmd("echo from-pypsrp; echo e >&2; exit 5")
    assert (out, err, rc) == ("from-pypsrp\n", "e\n", 5)
    assert http_peer.stats()["handshakes"] == before + 1
    # pypsrp wraps NTLM in SPNEGO; a domain account works too.
    c2 = pypsrp_client.Client("127.0.0.1", port=http_peer.port, username="LAB\\admin", password="Adm1n-pw",
                              ssl=False, auth="negotiate")
    assert c2.execute_cmd("echo ok")[0] == "ok\n"


def test_long_streamed_output_over_several_receives(http_peer, tmp_path):
    http_peer.control("reset_stats")
    p = protocol(http_peer)
    shell = p.open_shell()
    out, err, rc = run(p, shell, "head -c 3000000 /dev/zero | tr '\\0' 'z'")
    assert rc == 0 and len(out) == 3000000 and set(out) == {ord("z")}
    # 153600-byte envelopes hold ~113 KB of output: many Receives for 3 MB.
    assert http_peer.stats()["requests_by_action"]["Receive"] >= 20

    # Output that trickles out arrives as it is produced, over several Receives: line2 is only
    # written once line1 has reached the client.
    gate = tmp_path / "gate"
    cid = p.run_command(shell, "echo line1; until [ -e %s ]; do sleep 0.02; done; echo line2" % gate)
    chunks = []
    done = False
    while not done:
        o, e, rc, done = p.get_command_output_raw(shell, cid)
        chunks.append(o)
        if b"line1" in b"".join(chunks):
            gate.touch()
    p.cleanup_command(shell, cid)
    p.close_shell(shell)
    assert b"".join(chunks) == b"line1\nline2\n"
    assert len([c for c in chunks if c]) == 2


def test_wrong_password_gets_401(http_peer):
    s = winrm.Session(http_peer.url, auth=(USER, "wrong"), transport="ntlm")
    with pytest.raises(InvalidCredentialsError):
        s.run_cmd("true")
    with pytest.raises(AuthenticationError):
        pypsrp_client.Client("127.0.0.1", port=http_peer.port, username="nobody", password="x", ssl=False,
                             auth="negotiate").execute_cmd("true")
    # Raw: the 401 carries no body, closes the connection and offers only Negotiate.
    raw = RawClient(http_peer.port, password="wrong")
    st, hd, body = raw.handshake()
    assert st == 401 and body == b""
    assert hd["www-authenticate"] == ["Negotiate"]
    assert hd["content-length"] == ["0"] and hd["connection"] == ["close"]
    assert raw.rf.read(1) == b""  # server closed
    raw.close()


def test_raw_wire_handshake_sealing_and_connection_binding(http_peer):
    raw = RawClient(http_peer.port)
    st, hd, body = raw.request(b"")
    assert (st, body) == (401, b"") and hd["connection"] == ["close"]
    raw.close()

    raw = RawClient(http_peer.port)
    st, hd, body = raw.handshake()
    assert (st, body, hd["content-length"]) == (200, b"", ["0"])  # final leg: 200, empty body
    st, hd, body = raw.soap(envelope(*CREATE))
    assert st == 200
    assert hd["content-type"][0] == ('multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";'
                                     'boundary="Encrypted Boundary"')
    sid = shell_id_of(body)
    # sequence numbers advance per direction: several messages in a row all verify
    for _ in range(3):
        st, _, body = raw.soap(envelope("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
                                        "<rsp:CommandLine><rsp:Command>true</rsp:Command></rsp:CommandLine>", sid))
        assert st == 200 and b"CommandId" in body
    # plaintext SOAP on the NTLM connection: refused with 500 (AllowUnencrypted=false)
    st, hd, body = raw.soap(envelope(*CREATE), encrypt=False)
    assert st == 500
    assert http_peer.stats()["plaintext_refused"] >= 1
    # a message sealed out of order (sequence number N+1 while N is expected) is rejected
    raw.seal(envelope(*CREATE))  # seq N, never sent
    later = raw.seal(envelope(*CREATE))  # seq N+1
    st, hd, _ = raw.request(later, {"Content-Type": 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'})
    assert st == 400 and hd["connection"] == ["close"]
    raw.close()

    # The context is bound to the TCP connection: a new connection with no handshake gets 401.
    raw2 = RawClient(http_peer.port)
    st, _, _ = raw2.request(b"<x/>", {"Content-Type": "application/soap+xml;charset=UTF-8"})
    assert st == 401
    raw2.close()


def test_plaintext_body_refused_unless_allow_unencrypted(http_peer, fresh_peer):
    s = winrm.Session(http_peer.url, auth=(USER, PASSWORD), transport="ntlm", message_encryption="never")
    with pytest.raises(WinRMTransportError) as ei:
        s.run_cmd("true")
    assert ei.value.code == 500

    open_peer = fresh_peer("--allow-unencrypted", "--basic")
    s = winrm.Session(open_peer.url, auth=(USER, PASSWORD), transport="ntlm", message_encryption="never")
    assert s.run_cmd("echo plain").std_out == b"plain\n"
    # Basic over HTTP is accepted only with AllowUnencrypted
    s = winrm.Session(open_peer.url, auth=(USER, PASSWORD), transport="basic")
    assert s.run_cmd("echo basic").std_out == b"basic\n"
    assert open_peer.stats()["basic_auths"] >= 1


def test_malformed_xml_and_identify(http_peer):
    raw = RawClient(http_peer.port)
    assert raw.handshake()[0] == 200
    st, _, body = raw.soap(b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><oops></s:Body>")
    assert st == 500 and b"<s:Fault>" in body and b"syntax error" in body and wsman_code(body) == 2150858819
    ident = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
             'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
             '<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>').encode()
    st, _, body = raw.soap(ident)
    assert st == 200 and b"<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>" in body
    raw.close()
    anon = RawClient(http_peer.port)
    st, _, body = anon.request(ident, {"Content-Type": "application/soap+xml;charset=UTF-8", "WSMANIDENTIFY": "unauthenticated"})
    assert st == 200 and b"IdentifyResponse" in body and b"Stack: 3.0" in body
    anon.close()
    assert http_peer.alive()


# --------------------------------------------------------------------------------------------
# HTTPS and Basic
# --------------------------------------------------------------------------------------------

def test_https_ntlm_without_validation_and_with_generated_ca(https_peer):
    s = winrm.Session(https_peer.url, auth=(USER, PASSWORD), transport="ntlm", server_cert_validation="ignore")
    assert s.run_cmd("echo tls").std_out == b"tls\n"
    s = winrm.Session(https_peer.url, auth=(USER, PASSWORD), transport="ntlm", ca_trust_path=https_peer.ca)
    assert s.run_cmd("echo validated").std_out == b"validated\n"
    # pypsrp sends a channel binding token over HTTPS: the peer checks it
    c = pypsrp_client.Client("127.0.0.1", port=https_peer.port, username=USER, password=PASSWORD, ssl=True,
                             auth="negotiate", cert_validation=https_peer.ca)
    assert c.execute_cmd("echo cbt")[0] == "cbt\n"
    st = https_peer.stats()
    assert st["decrypt_failures"] == 0 and st["handshakes"] >= 3
    # validation against the system store must fail: the CA is private
    s = winrm.Session(https_peer.url, auth=(USER, PASSWORD), transport="ntlm", ca_trust_path=None)
    with pytest.raises(Exception) as ei:
        s.run_cmd("true")
    assert "CERTIFICATE_VERIFY_FAILED" in repr(ei.value) or "certificate verify failed" in repr(ei.value)


def test_https_channel_binding_checked_when_sent(https_peer):
    probe = RawClient(https_peer.port, tls=True)
    good = hashlib.sha256(probe.server_cert).digest()
    probe.close()
    for cbt, want in ((good, 200), (b"\x01" * 32, 401), (None, 200)):  # Relaxed: no CBT is accepted too
        raw = RawClient(https_peer.port, tls=True, cbt=cbt)
        assert raw.handshake()[0] == want, cbt
        if want == 200:
            st, hd, body = raw.soap(envelope(*CREATE), encrypt=False)  # no message encryption over TLS
            assert st == 200 and hd["content-type"] == ["application/soap+xml;charset=UTF-8"]
            assert raw.soap(envelope(ACT_DELETE, "", shell_id_of(body)), encrypt=False)[0] == 200
        raw.close()


def test_https_channel_binding_required_when_strict(tmp_path):
    """CbtHardeningLevel=Strict: the reference clients, which send a tls-server-end-point binding
    over HTTPS, get in; no binding or a wrong one is refused; and a host expecting another
    certificate's binding (a TLS-terminating man in the middle) refuses the reference client."""
    p = PeerProc(tmp_path / "strict", "--https", "--cbt", "strict")
    try:
        c = pypsrp_client.Client("127.0.0.1", port=p.port, username=USER, password=PASSWORD, ssl=True,
                                 auth="negotiate", cert_validation=p.ca)
        assert c.execute_cmd("echo strict")[0] == "strict\n"
        s = winrm.Session(p.url, auth=(USER, PASSWORD), transport="ntlm", server_cert_validation="ignore")
        assert s.run_cmd("echo pywinrm").std_out == b"pywinrm\n"
        probe = RawClient(p.port, tls=True)
        good = hashlib.sha256(probe.server_cert).digest()
        probe.close()
        for cbt, want in ((good, 200), (b"\x01" * 32, 401), (None, 401)):
            raw = RawClient(p.port, tls=True, cbt=cbt)
            assert raw.handshake()[0] == want, cbt
            raw.close()
        assert "client sent no channel binding and --cbt strict is set" in open(p.log_path).read()
        mitm = PeerProc(tmp_path / "mitm", "--https", "--cbt", "strict",
                        "--cbt-cert", os.path.join(p.cert_dir, "server.pem"))
        try:
            c = pypsrp_client.Client("127.0.0.1", port=mitm.port, username=USER, password=PASSWORD, ssl=True,
                                     auth="negotiate", cert_validation=False)
            with pytest.raises(Exception):
                c.execute_cmd("echo never")
            assert mitm.stats()["handshakes"] == 0
        finally:
            mitm.stop()
    finally:
        p.stop()


def test_basic_over_https(https_peer):
    s = winrm.Session(https_peer.url, auth=(USER, PASSWORD), transport="basic", server_cert_validation="ignore")
    assert s.run_cmd("echo basic-tls").std_out == b"basic-tls\n"
    s = winrm.Session(https_peer.url, auth=(USER, "nope"), transport="basic", server_cert_validation="ignore")
    with pytest.raises(InvalidCredentialsError):
        s.run_cmd("true")


def test_basic_refused_over_http_without_allow_unencrypted(fresh_peer):
    peer = fresh_peer("--basic")
    s = winrm.Session(peer.url, auth=(USER, PASSWORD), transport="basic")
    with pytest.raises(InvalidCredentialsError):
        s.run_cmd("true")
    raw = RawClient(peer.port)
    st, hd, _ = raw.request(b"")
    assert st == 401 and hd["www-authenticate"] == ["Negotiate", 'Basic realm="WSMAN"']
    raw.close()
    # NTLM with encryption still works on the same listener
    assert winrm.Session(peer.url, auth=(USER, PASSWORD), transport="ntlm").run_cmd("echo x").std_out == b"x\n"


# --------------------------------------------------------------------------------------------
# faults, timeouts, signals
# --------------------------------------------------------------------------------------------

def test_timed_out_fault_then_success(http_peer, tmp_path):
    p = protocol(http_peer, operation_timeout_sec=1, read_timeout_sec=5)
    shell = p.open_shell()
    gate = tmp_path / "gate"
    cid = p.run_command(shell, "until [ -e %s ]; do sleep 0.02; done; echo finally" % gate)
    t = time.monotonic()
    with pytest.raises(WinRMOperationTimeoutError):
        p.get_command_output_raw(shell, cid)
    assert 0.9 <= time.monotonic() - t  # the fault comes after OperationTimeout, not at once
    gate.touch()
    out, err, rc = p.get_command_output(shell, cid)  # retries through TimedOut until Done
    assert (out, rc) == (b"finally\n", 0)
    p.cleanup_command(shell, cid)
    p.close_shell(shell)
    assert http_peer.stats()["faults"].get("TimedOut", 0) >= 1


def test_signal_terminate_running_command(http_peer, tmp_path):
    pidfile = tmp_path / "pid"
    p = protocol(http_peer)
    shell = p.open_shell()
    cid = p.run_command(shell, "echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 30" % (pidfile, pidfile, pidfile))
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the command's pid file"))
    assert not gone_or_zombie(pid)
    p.cleanup_command(shell, cid)  # Signal .../signal/terminate
    wait_until(lambda: gone_or_zombie(pid), "the terminated command to exit")
    with pytest.raises(WSManFaultError) as ei:
        p.get_command_output_raw(shell, cid)
    assert ei.value.wsman_fault_code == SHELL_NOT_FOUND
    assert "command identifier that does not exist" in ei.value.response
    p.close_shell(shell)

    # pypsrp: ctrl_c interrupts a running command (sh exits 130), "Terminate" (its spelling) kills one
    wsman = WSMan("127.0.0.1", port=http_peer.port, username=USER, password=PASSWORD, ssl=False,
                  auth="negotiate", cert_validation=False)
    with WinRS(wsman) as ws:
        proc = Process(ws, "sleep 30; echo not-reached")
        proc.begin_invoke()
        t = time.monotonic()
        proc.signal(SignalCode.CTRL_C)
        proc.end_invoke()
        assert proc.rc == 130 and proc.stdout == b"" and time.monotonic() - t < 5
        proc = Process(ws, "sleep 30")
        proc.begin_invoke()
        proc.signal(SignalCode.TERMINATE)
        with pytest.raises(PsrpFault) as ei:
            proc.poll_invoke()
        assert ei.value.code == SHELL_NOT_FOUND
    assert http_peer.stats()["signals"].get("terminate", 0) >= 2


def test_unknown_shell_and_too_many_shells(fresh_peer):
    peer = fresh_peer("--max-shells", "2")
    p = protocol(peer)
    with pytest.raises(WSManFaultError) as ei:
        p.run_command("0B0B0B0B-0000-0000-0000-000000000000", "true")
    assert ei.value.wsman_fault_code == SHELL_NOT_FOUND
    assert ei.value.fault_subcode == "w:InvalidSelectors"
    assert "shell was not found" in ei.value.response
    a, b = p.open_shell(), p.open_shell()
    with pytest.raises(WSManFaultError) as ei:
        p.open_shell()
    assert ei.value.wsman_fault_code == MAX_SHELLS
    assert "maximum number of concurrent shells" in ei.value.reason
    # another user has a quota of their own
    q = winrm.Protocol(peer.url, transport="ntlm", username="LAB\\admin", password="Adm1n-pw")
    q.close_shell(q.open_shell())
    p.close_shell(a)
    p.close_shell(p.open_shell())
    p.close_shell(b)
    assert peer.stats()["shells_open"] == 0


def test_envelope_larger_than_max_gets_413(fresh_peer):
    peer = fresh_peer("--max-envelope-kb", "64")
    p = protocol(peer)
    shell = p.open_shell()
    cid = p.run_command(shell, "cat >/dev/null")
    p.send_command_input(shell, cid, b"a" * 40000, end=False)  # fits
    with pytest.raises(WinRMTransportError) as ei:
        p.send_command_input(shell, cid, b"a" * 80000, end=True)  # base64 > 64 KiB
    assert ei.value.code == 413 and ei.value.response_text == ""
    assert peer.stats()["envelope_too_large"] == 1


def test_simulated_reboot_loses_shells_and_changes_boot_time(fresh_peer):
    peer = fresh_peer("--reboot-down", "1")
    p = protocol(peer)
    shell = p.open_shell()
    assert run(p, shell, "echo before")[0] == b"before\n"
    boot0 = peer.stats()["boot_time_filetime"]
    peer.control("reboot", {"down_seconds": 600})  # down until the "up" below
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", peer.port), timeout=2).close()  # refused while down
    assert peer.control("up")["result"] == {"was_down": True}
    wait_until(lambda: peer.stats()["up"], "the peer to come back up")
    st = peer.stats()
    assert st["up"] and st["reboots"] == 1 and st["boot_time_filetime"] > boot0
    p2 = protocol(peer)  # new connection, new handshake
    with pytest.raises(WSManFaultError) as ei:
        p2.run_command(shell, "true")
    assert ei.value.wsman_fault_code == SHELL_NOT_FOUND


# --------------------------------------------------------------------------------------------
# record mode
# --------------------------------------------------------------------------------------------

def _ps_encode(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


def test_record_mode_decodes_encoded_command(record_peer):
    s = winrm.Session(record_peer.url, auth=(USER, PASSWORD), transport="ntlm")
    script = 'Get-Service k3s-agent | Select-Object -ExpandProperty Status # ünïcode'
    r = s.run_ps(script)
    assert r.status_code == 0 and r.std_out == b"Running\r\n"
    r = s.run_ps("Write-Error x; exit 7")
    assert (r.status_code, r.std_err) == (7, b"boom")
    # pypsrp: a raw WinRS command carrying -EncodedCommand
    c = pypsrp_client.Client("127.0.0.1", port=record_peer.port, username=USER, password=PASSWORD, ssl=False,
                             auth="negotiate")
    out, err, rc = c.execute_cmd("powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Unrestricted "
                                 "-EncodedCommand " + _ps_encode("$x = 1\nWrite-Output $x"))
    assert (out, rc) == ("", 0)
    recs = record_peer.records()
    scripts = [r["script"] for r in recs]
    assert script in scripts and "Write-Error x; exit 7" in scripts and "$x = 1\nWrite-Output $x" in scripts
    lines = [json.loads(x) for x in open(record_peer.record_log, encoding="utf-8")]
    assert [x["script"] for x in lines] == scripts
    rec = next(x for x in lines if x["script"] == script)
    assert rec["command"].startswith("powershell -encodedcommand ") and rec["shell_id"] and rec["time"] > 0
    assert rec["script_source"] == "encoded"


def test_record_mode_script_over_stdin(record_peer):
    p = protocol(record_peer)
    shell = p.open_shell(codepage=65001)
    cid = p.run_command(shell, "PowerShell", ["-NoProfile", "-NonInteractive", "-Command", "-"])
    p.send_command_input(shell, cid, "Get-Service   k3s-agent\r\n".encode(), end=False)
    p.send_command_input(shell, cid, b"exit $LASTEXITCODE\r\n", end=True)
    out, err, rc = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    # an encoded bootstrap that reads its payload from $input waits for stdin too
    cid = p.run_command(shell, "powershell.exe -EncodedCommand " + _ps_encode("$in = $input | Out-String; iex $in"))
    p.send_command_input(shell, cid, b"payload-line-1\r\npayload-line-2\r\n", end=True)
    out2, _, rc2 = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    p.close_shell(shell)
    assert (out, rc) == (b"Running\r\n", 0) and rc2 == 0
    recs = record_peer.records()
    r1 = next(r for r in recs if r["command_id"] and "Get-Service   k3s-agent" in (r["script"] or ""))
    assert r1["script_source"] == "stdin" and r1["arguments"] == ["-NoProfile -NonInteractive -Command -"]
    r2 = recs[-1]
    assert r2["script"] == "$in = $input | Out-String; iex $in"
    assert r2["stdin"] == "payload-line-1\r\npayload-line-2\r\n"


def test_record_mode_boot_time_and_reboot(record_peer):
    s = winrm.Session(record_peer.url, auth=(USER, PASSWORD), transport="ntlm")
    boot_ps = "(Get-CimInstance Win32_OperatingSystem -Property LastBootUpTime).LastBootUpTime.ToFileTime()"
    r = s.run_ps(boot_ps)
    boot0 = int(r.std_out.decode().strip())
    assert r.std_out.endswith(b"\r\n") and boot0 == record_peer.stats()["boot_time_filetime"]
    # A delayed restart stays pending (this peer caps /t at an hour): a second one is refused,
    # `shutdown /a` aborts it.
    r = s.run_cmd('shutdown.exe /r /t 600 /c "Reboot initiated by test"')
    assert r.status_code == 0 and record_peer.stats()["reboot_pending"]
    r = s.run_cmd("shutdown /r /t 600")  # already scheduled
    assert r.status_code == 1190
    assert s.run_cmd("shutdown /a").status_code == 0
    assert not record_peer.stats()["reboot_pending"]
    assert s.run_cmd("shutdown /a").status_code == 1116  # nothing to abort
    # An immediate restart: the host goes down once the result has reached the client (so the
    # client does not clean up: the shell is lost with the reboot).
    p = protocol(record_peer)
    shell = p.open_shell()
    cid = p.run_command(shell, "shutdown /r /t 0")
    assert p.get_command_output(shell, cid)[2] == 0
    wait_until(lambda: record_peer.stats()["reboots"] == 1, "the reboot")

    def new_boot_time():
        try:
            r = winrm.Session(record_peer.url, auth=(USER, PASSWORD), transport="ntlm",
                              read_timeout_sec=5, operation_timeout_sec=3).run_ps(boot_ps)
        except Exception:
            return None  # still down
        boot1 = int(r.std_out.decode().strip())
        return boot1 if boot1 != boot0 else None

    assert wait_until(new_boot_time, "the host to come back with a new boot time") > boot0
    assert record_peer.stats()["reboots"] == 1


# --------------------------------------------------------------------------------------------
# fault injection through the control channel
# --------------------------------------------------------------------------------------------

def test_injected_faults(fresh_peer):
    peer = fresh_peer()
    p = protocol(peer)
    shell = p.open_shell()
    assert run(p, shell, "echo ok")[0] == b"ok\n"

    peer.control("http500", {"n": 1})
    with pytest.raises(WSManFaultError) as ei:
        p.run_command(shell, "true")
    assert ei.value.code == 500 and "remote procedure call failed" in ei.value.response
    assert run(p, shell, "echo after500")[0] == b"after500\n"

    peer.control("garbage", {"n": 1})
    with pytest.raises(Exception):
        p.run_command(shell, "true")
    assert run(p, shell, "echo after-garbage")[0] == b"after-garbage\n"

    t = time.monotonic()
    peer.control("delay_ms", {"ms": 150})
    run(p, shell, "true")  # Command + Receive + Signal: 3 delayed responses
    peer.control("delay_ms", {"ms": 0})
    assert time.monotonic() - t >= 0.45

    peer.control("big", {"mb": 2})
    out, _, rc = run(p, shell, "true")
    assert len(out) == 2 * 1024 * 1024 and rc == 0

    peer.control("endless", {"n": 1})
    cid = p.run_command(shell, "echo never-runs")
    got = b""
    for _ in range(3):
        o, _, _, done = p.get_command_output_raw(shell, cid)
        got += o
        assert not done
    assert got.startswith(b"endless output line 1\r\n")
    p.cleanup_command(shell, cid)

    # a wrong NTLM signature on the response: pywinrm detects it
    peer.control("badsig", {"n": 1})
    with pytest.raises(Exception) as ei:
        p.run_command(shell, "true")
    assert "signature" in repr(ei.value).lower() or "mic" in repr(ei.value).lower() or "checksum" in repr(ei.value).lower()

    # the dropped connection and a truncated body reach a fresh client as transport errors
    for op in ("drop_next", "truncate"):
        q = protocol(peer)
        peer.control(op, {"n": 1})
        with pytest.raises(Exception):
            q.open_shell()
        peer.control("reset")
    st = peer.stats()
    assert st["injected"] == {"http500": 1, "garbage": 1, "big": 1, "endless": 1, "badsig": 1, "drop": 1,
                              "truncate": 1}
    assert peer.alive()


def test_drop_next_forces_reconnect_and_new_handshake(fresh_peer):
    peer = fresh_peer()
    p = protocol(peer)
    shell = p.open_shell()
    peer.control("drop_next", {"n": 1})
    with pytest.raises(Exception):
        p.run_command(shell, "true")
    # A new client must re-authenticate on its new connection; the shell survives the drop.
    q = protocol(peer)
    assert run(q, shell, "echo survived")[0] == b"survived\n"
    st = peer.stats()
    assert st["handshakes"] == 2 and st["shells_created"] == 1


def test_users_file_and_idle_keepalive_timeout(fresh_peer, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# local and domain accounts\nops:0ps-pw\nCORP\\svc:svc:pw\n")
    peer = fresh_peer("--users-file", str(users), "--idle-timeout", "0.5", users=())
    assert winrm.Session(peer.url, auth=("ops", "0ps-pw"), transport="ntlm").run_cmd("echo a").std_out == b"a\n"
    assert winrm.Session(peer.url, auth=("CORP\\svc", "svc:pw"), transport="ntlm").run_cmd("echo b").std_out == b"b\n"
    with pytest.raises(InvalidCredentialsError):  # domain account, wrong domain
        winrm.Session(peer.url, auth=("OTHER\\svc", "svc:pw"), transport="ntlm").run_cmd("true")
    raw = RawClient(peer.port, user="ops", password="0ps-pw")
    assert raw.handshake()[0] == 200
    assert raw.rf.read(1) == b""  # blocks until the server closes the idle keep-alive connection
    raw.close()


def test_bad_input_never_kills_the_peer(fresh_peer):
    peer = fresh_peer("--basic", "--allow-unencrypted")
    junk = [
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET /wsman HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nAuthorization: Negotiate !!!notbase64\r\nContent-Length: 0\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nAuthorization: Negotiate " + base64.b64encode(b"NTLMSSP\x00\x01\x00\x00\x00junk") + b"\r\nContent-Length: 0\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nAuthorization: Negotiate " + base64.b64encode(b"\x60\x05junk") + b"\r\nContent-Length: 0\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nAuthorization: Negotiate " + base64.b64encode(b"NTLMSSP\x00\x03\x00\x00\x00" + b"\xff" * 80) + b"\r\nContent-Length: 0\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nAuthorization: Basic " + base64.b64encode(b"\xff\xfe:\x00") + b"\r\nContent-Length: 0\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nAuthorization: Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()) +
        b"\r\nContent-Type: application/soap+xml\r\nContent-Length: 9\r\n\r\n<a><b></a",
        b"POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /wsman HTTP/1.1\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
    ]
    for data in junk:
        s = socket.create_connection(("127.0.0.1", peer.port), timeout=5)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()
    # sealed garbage after a real handshake
    raw = RawClient(peer.port)
    assert raw.handshake()[0] == 200
    st, _, _ = raw.request(b"--Encrypted Boundary\r\nnonsense", {
        "Content-Type": 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'})
    assert st == 400
    raw.close()
    assert peer.alive()
    s = winrm.Session(peer.url, auth=(USER, PASSWORD), transport="ntlm")
    assert s.run_cmd("echo still-alive").std_out == b"still-alive\n"
    assert "crashed" not in peer.log() and "Traceback" not in peer.log()


def test_cmd_exe_command_line_limit(http_peer, record_peer):
    p = protocol(http_peer)
    shell = p.open_shell()
    long_arg = "x" * 8200
    out, err, rc = run(p, shell, "echo", [long_arg])
    assert (out, err, rc) == (b"", b"The command line is too long.\r\n", 1)
    out, err, rc = run(p, shell, "printf", ["%s", "y" * 8000])  # just under the limit: runs
    assert rc == 0 and len(out) == 8000
    p.close_shell(shell)
    # pywinrm's run_ps puts the whole script on the command line: a long script fails like on Windows
    r = winrm.Session(record_peer.url, auth=(USER, PASSWORD), transport="ntlm").run_ps("Write-Output 1\n" * 400)
    assert r.status_code == 1 and b"The command line is too long." in r.std_err
    assert record_peer.records()[-1]["builtin"] == "command_line_too_long"


def test_record_rules_at_run_time_with_upload_hash_placeholders(record_peer):
    record_peer.control("rules", {"rules": [
        {"match": r"\[IO\.File\]::Create", "stdout": '{"sha256": "{{stdin_b64_sha256}}", "bytes": {{stdin_b64_bytes}}}\r\n'},
        {"match": "flaky", "rc": 1, "times": 1},
    ]})
    content = os.urandom(700000)
    b64 = base64.b64encode(content).decode()
    lines = "".join(b64[i:i + 76] + "\r\n" for i in range(0, len(b64), 76)).encode()
    upload = ("begin { $fs = [IO.File]::Create('C:\\tmp\\x.bin') } "
              "process { $b = [Convert]::FromBase64String($input); $fs.Write($b, 0, $b.Length) } end { $fs.Close() }")
    p = protocol(record_peer)
    shell = p.open_shell(codepage=65001)
    cid = p.run_command(shell, "powershell.exe -EncodedCommand " + _ps_encode(upload))
    for i in range(0, len(lines), 150000):  # several Send messages, End on the last
        p.send_command_input(shell, cid, lines[i:i + 150000], end=i + 150000 >= len(lines))
    out, err, rc = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    res = json.loads(out)
    assert rc == 0 and res == {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    assert record_peer.records()[-1]["stdin_bytes"] == len(lines)
    assert [run(p, shell, "powershell -Command flaky")[2] for _ in range(2)] == [1, 0]
    p.close_shell(shell)


# --------------------------------------------------------------------------------------------
# Real Windows behaviour on request (WINRM-NOTES.md "Real Windows behaviour the first peer did
# not model"): each mode checked with pywinrm and pypsrp.
# --------------------------------------------------------------------------------------------

MAX_OPERATIONS = 2150859174  # ERROR_WSMAN_QUOTA_MAX_OPERATIONS, 0x803381A6


def test_operations_quota_counts_commands_until_the_shell_is_deleted(fresh_peer):
    peer = fresh_peer("--max-operations", "3")
    p = protocol(peer)
    shell = p.open_shell()
    for i in range(3):  # finished and signalled (pywinrm's cleanup_command): still counted
        assert run(p, shell, "echo %d" % i)[0] == b"%d\n" % i
    assert peer.stats()["operations"] == {USER: 3}
    with pytest.raises(WSManFaultError) as ei:
        p.run_command(shell, "true")
    assert ei.value.wsman_fault_code == MAX_OPERATIONS and ei.value.fault_subcode == "w:QuotaLimit"
    assert "maximum number of 3 concurrent operations" in ei.value.reason
    # per user, across shells
    other = p.open_shell()
    with pytest.raises(WSManFaultError):
        p.run_command(other, "true")
    # another user has a quota of their own
    q = winrm.Protocol(peer.url, transport="ntlm", username="LAB\\admin", password="Adm1n-pw")
    qs = q.open_shell()
    assert run(q, qs, "echo admin")[0] == b"admin\n"
    q.close_shell(qs)
    # only Delete gives the operations back
    p.close_shell(shell)
    assert run(p, other, "echo again")[0] == b"again\n"
    p.close_shell(other)
    st = peer.stats()
    assert st["faults"]["QuotaMaxOperations"] == 2 and st["operations"] == {}

    # pypsrp sees the same fault code
    peer2 = fresh_peer("--max-operations", "1")
    wsman = WSMan("127.0.0.1", port=peer2.port, username=USER, password=PASSWORD, ssl=False,
                  auth="negotiate", cert_validation=False)
    with WinRS(wsman) as ws:
        Process(ws, "echo one").invoke()
        with pytest.raises(PsrpFault) as ei:
            Process(ws, "echo two").invoke()
        assert ei.value.code == MAX_OPERATIONS


def test_operations_quota_as_wmi_error(fresh_peer):
    # The shape of pywinrm's test_exceptions.py: w:InternalError with p:MSFT_WmiError/error_Code,
    # no WSManFault (what Ansible's winrm plugin checks).
    peer = fresh_peer("--max-operations", "1", "--operations-fault", "wmi")
    p = protocol(peer)
    shell = p.open_shell()
    run(p, shell, "true")
    with pytest.raises(WSManFaultError) as ei:
        p.run_command(shell, "true")
    e = ei.value
    assert (e.fault_subcode, e.wsman_fault_code, e.wmierror_code) == ("w:InternalError", None, 0x803381A6)
    assert "concurrent operations" in e.reason
    p.close_shell(shell)


def test_receive_without_command_id_is_invalid_parameter(fresh_peer):
    # pypsrp's test_winrs_fail_poll_process.yml: Windows answers w:InvalidParameter, code 87.
    for tolerant in (False, True):
        peer = fresh_peer(*(["--tolerate-missing-command-id"] if tolerant else []))
        wsman = WSMan("127.0.0.1", port=peer.port, username=USER, password=PASSWORD, ssl=False,
                      auth="negotiate", cert_validation=False)
        with WinRS(wsman) as ws:
            proc = Process(ws, "echo hi")
            proc.begin_invoke()
            if tolerant:
                resp = ws.receive("stdout stderr")  # the shell's only command
                assert resp[0] in ("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done",
                                   "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running")
            else:
                with pytest.raises(PsrpFault) as ei:
                    ws.receive("stdout stderr")
                assert ei.value.code == 87 and ei.value.reason == "The parameter is incorrect."
                assert ei.value.provider == "Shell cmd plugin"
            proc.signal(SignalCode.TERMINATE)
        assert peer.stats()["faults"].get("InvalidParameter", 0) == (0 if tolerant else 1)


def test_send_timed_out_still_delivers_and_busy_does_not(fresh_peer):
    peer = fresh_peer()
    p = protocol(peer)
    shell = p.open_shell()
    cid = p.run_command(shell, "cat")
    peer.control("send_timeout", {"n": 1})
    with pytest.raises(WinRMOperationTimeoutError):  # what Ansible warns about and carries on from
        p.send_command_input(shell, cid, b"first\n")
    peer.control("send_busy", {"n": 1})
    with pytest.raises(WSManFaultError) as ei:
        p.send_command_input(shell, cid, b"second\n")
    assert ei.value.wsman_fault_code == 170  # Ansible retries ERROR_BUSY
    p.send_command_input(shell, cid, b"second\n", end=True)  # the retry
    out, _, rc = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    assert (out, rc) == (b"first\nsecond\n", 0)  # the timed-out input arrived, the busy one once
    st = peer.stats()
    assert st["injected"] == {"send_timeout": 1, "send_busy": 1}
    assert st["faults"]["TimedOut"] == 1 and st["faults"]["SendBusy"] == 1
    p.close_shell(shell)


def test_done_without_exit_code(fresh_peer):
    peer = fresh_peer("--no-exit-code", "1")
    wsman = WSMan("127.0.0.1", port=peer.port, username=USER, password=PASSWORD, ssl=False,
                  auth="negotiate", cert_validation=False)
    with WinRS(wsman) as ws:
        proc = Process(ws, "echo hi; exit 3")
        proc.invoke()
        assert proc.stdout == b"hi\n" and proc.rc is None  # Done, but no rsp:ExitCode
        proc = Process(ws, "exit 3")
        proc.invoke()
        assert proc.rc == 3
    p = protocol(peer)
    peer.control("no_exit_code", {"n": 1})
    with pytest.raises(StopIteration):  # pywinrm looks for the element unconditionally
        p.get_command_output(*(lambda s: (s, p.run_command(s, "true")))(p.open_shell()))


def test_http_sys_error_page(fresh_peer):
    peer = fresh_peer()
    p = protocol(peer)
    shell = p.open_shell()
    for status in (503, 400):
        peer.control("http503", {"n": 1, "status": status})
        with pytest.raises(WinRMTransportError) as ei:
            p.run_command(shell, "true")
        assert ei.value.code == status
        text = {503: "HTTP Error 503. The service is unavailable.",
                400: "HTTP Error 400. The request hostname is invalid."}[status]
        assert text in ei.value.response_text and ei.value.response_text.startswith("<!DOCTYPE HTML")
        # HTTP.sys answered, not WinRM: the shell and a new connection are fine
        assert run(protocol(peer), shell, "echo after")[0] == b"after\n"
    assert peer.stats()["injected"] == {"http503": 2}


def test_cmd_exe_model_gives_the_argv_a_program_receives(fresh_peer, tmp_path):
    log = tmp_path / "records.jsonl"
    peer = fresh_peer("--mode", "record", "--record-log", str(log))
    p = protocol(peer)
    shell = p.open_shell(codepage=65001)
    exe = r'"C:\Program Files\A\a.exe"'
    line = exe + r' "x & y" "%USERNAME%" "say \"hi\" ^ <now>"'
    want = [r"C:\Program Files\A\a.exe", "x & y", "%USERNAME%", 'say "hi" ^ <now>']

    def record(command, skip):
        cid = p.run_command(shell, command, skip_cmd_shell=skip)
        out, _, rc = p.get_command_output(shell, cid)
        p.cleanup_command(shell, cid)
        return peer.records()[-1], out

    # WINRS_SKIP_CMD_SHELL=TRUE: CreateProcess gets the line; CommandLineToArgvW splits it.
    r, _ = record(line, True)
    assert r["skip_cmd_shell"] is True and r["cmd"] is None and r["argv"] == want
    # Through cmd.exe: the first and last quote are stripped (more than two quotes), `&` splits the
    # line, %USERNAME% is expanded: the program is not even the one asked for.
    r, _ = record(line, False)
    assert r["cmd"]["quotes_stripped"] is True
    assert r["argv"][0] == r"C:\Program" and r["argv"] != want
    assert [s["op"] for s in r["cmd"]["segments"]][0] == "&"
    # Exactly two quotes around an executable path with spaces: kept.
    r, _ = record(exe + " /all", False)
    assert r["argv"] == [r"C:\Program Files\A\a.exe", "/all"] and r["cmd"]["quotes_stripped"] is False
    # %VAR% expansion and carets, and cmd's own echo
    r, out = record("cmd.exe /d /c echo %USERNAME% a^^b", True)
    assert out == b"vagrant a^b\r\n" and r["builtin"] == "cmd_echo"
    r, out = record("cmd.exe /d /c echo a^^b", False)  # parsed twice: the outer cmd eats a caret
    assert out == b"ab\r\n"
    # `set "K=V"&& ` prefixes and `cd /d` do not hide the program
    r, _ = record(r'set "A=1"&& cd /d "C:\x y" && ' + exe + ' "p q"', False)
    assert r["argv"] == [r"C:\Program Files\A\a.exe", "p q"]
    assert [s["builtin"] for s in r["cmd"]["segments"]] == ["set", "cd", None]
    # The shell's working directory and environment are in the record.
    p2 = winrm.Protocol(peer.url, transport="ntlm", username=USER, password=PASSWORD)
    s2 = p2.open_shell(working_directory=r"C:\work dir", env_vars={"GREETING": "hi there"})
    cid = p2.run_command(s2, "cmd.exe /c echo %GREETING%")
    out, _, _ = p2.get_command_output(s2, cid)
    assert out == b"hi there\r\n"
    r = peer.records()[-1]
    assert r["working_directory"] == r"C:\work dir" and r["environment"] == {"GREETING": "hi there"}
    p2.close_shell(s2)
    # pypsrp's no_shell sends the executable and each argument as they are: unquoted, the path splits.
    wsman = WSMan("127.0.0.1", port=peer.port, username=USER, password=PASSWORD, ssl=False,
                  auth="negotiate", cert_validation=False)
    with WinRS(wsman) as ws:
        Process(ws, r"C:\Program Files\A\a.exe", ["x & y"], no_shell=True).invoke()
    assert peer.records()[-1]["argv"] == [r"C:\Program", r"Files\A\a.exe", "x", "&", "y"]
    p.close_shell(shell)
    assert json.loads(log.read_text().splitlines()[0])["argv"] == want


def test_hosts_that_ignore_skip_cmd_shell(fresh_peer):
    peer = fresh_peer("--mode", "record", "--ignore-skip-cmd-shell")
    p = protocol(peer)
    shell = p.open_shell()
    cid = p.run_command(shell, r'"C:\Program Files\A\a.exe" "x & y"', skip_cmd_shell=True)
    p.get_command_output(shell, cid)
    r = peer.records()[-1]
    assert r["skip_cmd_shell"] is True and r["cmd"]["quotes_stripped"] is True
    assert r["argv"][0] == r"C:\Program"
    p.close_shell(shell)
