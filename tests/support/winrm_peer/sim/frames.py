"""The frames of mixop's Windows module protocol (docs/windows-protocol.md §2).

    MIXOP1 <KIND> <id> <length>\\n
    <base64 payload, exactly <length> characters>\\n

The payload is base64 of UTF-8 JSON. The controller may end lines with \\r\\n; the host writes \\n.
Frames arrive on stdin in Send chunks that may split them anywhere, so `FrameReader` buffers and
only yields complete frames. A malformed frame is reported (``Frame.error``), never raised, so the
host can answer it with ``mixop.BadRequest`` and keep running.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

MAGIC = b"MIXOP1"
KINDS = ("REQ", "RES", "READY")


def encode_frame(kind: str, frame_id: int, payload: dict) -> bytes:
    body = base64.b64encode(json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                                       default=str).encode("utf-8"))
    return b"%s %s %d %d\n%s\n" % (MAGIC, kind.encode(), int(frame_id), len(body), body)


@dataclass
class Frame:
    kind: str
    id: int
    payload: dict | None = None
    error: str | None = None  # set when the frame is malformed
    raw_len: int = 0


@dataclass
class _Pending:
    kind: str
    id: int
    length: int
    error: str | None = None


@dataclass
class FrameReader:
    """Incremental reader: feed() bytes as they arrive, get the complete frames back."""

    max_header: int = 4096
    accept: tuple = ("REQ",)
    buf: bytearray = field(default_factory=bytearray)
    pending: _Pending | None = None
    discarding: bool = False  # inside an over-long non-frame line
    scanned: int = 0  # bytes of buf already known to hold no newline (big payloads arrive in many Sends)

    def feed(self, data: bytes) -> list[Frame]:
        self.buf.extend(data)
        out: list[Frame] = []
        while True:
            nl = self.buf.find(b"\n", self.scanned)
            if nl < 0:
                self.scanned = len(self.buf)
                if self.pending is None and not self.discarding and len(self.buf) > self.max_header:
                    # Not a header (headers are short): report once, skip to the next newline.
                    out.append(Frame("REQ", 0, error="not a frame header: %r..." % bytes(self.buf[:40])))
                    self.discarding = True
                if self.discarding:
                    self.buf.clear()
                    self.scanned = 0
                break
            self.scanned = 0
            line = bytes(self.buf[:nl])
            del self.buf[:nl + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if self.discarding:
                self.discarding = False
                continue
            if self.pending is None:
                f = self._header(line)
                if f is not None:
                    out.append(f)
            else:
                p, self.pending = self.pending, None
                out.append(self._payload(p, line))
        return out

    def finish(self) -> list[Frame]:
        """End of input: complete a last line without its newline, report a cut-off frame."""
        out: list[Frame] = []
        if self.buf and not self.discarding:
            out.extend(self.feed(b"\n"))
        if self.pending is not None:
            p, self.pending = self.pending, None
            out.append(Frame(p.kind, p.id, error="input ended inside frame %d (payload missing)" % p.id))
        self.buf.clear()
        self.scanned = 0
        return out

    def _header(self, line: bytes) -> Frame | None:
        if not line.strip():
            return None  # blank lines between frames are harmless
        parts = line.strip().split()
        if len(parts) != 4 or parts[0] != MAGIC:
            return Frame("REQ", 0, error="not a frame header: %r" % line[:80])
        kind = parts[1].decode("ascii", "replace")
        try:
            fid = int(parts[2])
        except ValueError:
            fid = 0
            err = "bad frame id %r" % parts[2][:20]
        else:
            err = None
        try:
            length = int(parts[3])
            if length < 0:
                raise ValueError
        except ValueError:
            return Frame(kind, fid, error="bad frame length %r" % parts[3][:20])
        if err is None and kind not in self.accept:
            err = "unexpected frame kind %r (want %s)" % (kind, "/".join(self.accept))
        # The payload line follows even when the header is wrong: consume it, then report.
        self.pending = _Pending(kind, fid, length, err)
        return None

    @staticmethod
    def _payload(p: _Pending, line: bytes) -> Frame:
        if p.error:
            return Frame(p.kind, p.id, error=p.error, raw_len=len(line))
        if len(line) != p.length:
            return Frame(p.kind, p.id, raw_len=len(line),
                         error="payload is %d characters, header says %d" % (len(line), p.length))
        try:
            raw = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            return Frame(p.kind, p.id, raw_len=len(line), error="payload is not base64: %s" % exc)
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return Frame(p.kind, p.id, raw_len=len(line), error="payload is not UTF-8 JSON: %s" % exc)
        if not isinstance(obj, dict):
            return Frame(p.kind, p.id, raw_len=len(line), error="payload is not a JSON object")
        return Frame(p.kind, p.id, payload=obj, raw_len=len(line))


def parse_frames(data: bytes) -> list[Frame]:
    """Every frame in a complete byte string (stdout of a host, for tests)."""
    r = FrameReader(max_header=1 << 30, accept=KINDS)
    return r.feed(data) + r.finish()
