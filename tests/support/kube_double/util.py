"""Small helpers shared by the Kubernetes API test double: time, ids, Status errors."""
import copy
import datetime
import json
import random
import string
import threading
import uuid

_rand = random.Random()
_rand_lock = threading.Lock()

# The alphabet Kubernetes uses for generated names (k8s.io/apimachinery/pkg/util/rand).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(t=None):
    t = t or now()
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t=None):
    t = t or now()
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    if not s:
        return None
    try:
        s = s.replace("Z", "+00:00")
        return datetime.datetime.fromisoformat(s)
    except Exception:
        return None


def new_uid():
    return str(uuid.uuid4())


def rand_suffix(n=5):
    with _rand_lock:
        return "".join(_rand.choice(SAFE_ALPHABET) for _ in range(n))


def rand_hex(n):
    with _rand_lock:
        return "".join(_rand.choice("0123456789abcdef") for _ in range(n))


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(value: int) -> str:
    """Like rand.SafeEncodeString(fmt.Sprint(hash)) used for pod-template-hash."""
    s = str(value)
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in s)


def deepcopy(o):
    return copy.deepcopy(o)


def canon(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":"))


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60 * 2:
        return "%ds" % s
    m = s // 60
    if m < 10:
        rs = s % 60
        return "%dm" % m if rs == 0 else "%dm%ds" % (m, rs)
    if m < 60 * 3:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        rm = (s % 3600) // 60
        return "%dh" % h if rm == 0 else "%dh%dm" % (h, rm)
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        d, rh = divmod(h, 24)
        return "%dd" % d if rh == 0 else "%dd%dh" % (d, rh)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        y = h // (24 * 365)
        dy = (h // 24) % 365
        return "%dy" % y if dy == 0 else "%dy%dd" % (y, dy)
    return "%dy" % (h // (24 * 365))


def age(ts):
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((now() - t).total_seconds())


class ApiError(Exception):
    """An error that is sent to the client as a metav1.Status object."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        st = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            st["details"] = self.details
        return st


def qualified(res):
    """'deployments.apps' / 'pods' as used in apiserver error messages."""
    return res.plural + ("." + res.group if res.group else "")


def err_not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(res), name),
                    {"name": name, "group": res.group, "kind": res.plural} if res.group else
                    {"name": name, "kind": res.plural})


def err_already_exists(res, name):
    d = {"name": name, "kind": res.plural}
    if res.group:
        d["group"] = res.group
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (qualified(res), name), d)


def err_conflict(res, name, msg="the object has been modified; please apply your changes to the latest version and try again"):
    d = {"name": name, "kind": res.plural}
    if res.group:
        d["group"] = res.group
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (qualified(res), name, msg), d)


def err_invalid(res, name, causes):
    """causes: list of (field, message-text) -> 422 Invalid like field.ErrorList."""
    d = {"name": name, "kind": res.kind, "causes": [
        {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]}
    if res.group:
        d["group"] = res.group
    kindq = res.kind + ("." + res.group if res.group else "")
    if len(causes) == 1:
        text = "%s: %s" % (causes[0][0], causes[0][1])
    else:
        text = "[" + ", ".join("%s: %s" % c for c in causes) + "]"
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kindq, name, text), d)


def err_bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def status_success(res=None, name=None, uid=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if res is not None:
        d = {"name": name, "kind": res.plural}
        if res.group:
            d["group"] = res.group
        if uid:
            d["uid"] = uid
        st["details"] = d
    return st
