"""Just enough of the Kubernetes protobuf encoding to read the request bodies kubectl's typed clients send
(kubectl create configmap/secret/namespace/serviceaccount, DeleteOptions, Eviction). Anything else gets a
415 telling the caller to send JSON, which is what kube-rs, kubectl apply/create -f and the dynamic client use."""
import base64
import datetime

from util import ApiError

MAGIC = b"k8s\x00"


def _varint(b, i):
    shift = result = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if not c & 0x80:
            return result, i
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(b):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise ValueError("truncated field")
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, wt, v


TIME = {1: ("seconds", "int"), 2: ("nanos", "int")}
OWNER = {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
         6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")}
META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
        6: ("resourceVersion", "str"), 7: ("generation", "int"), 8: ("creationTimestamp", "time"),
        11: ("labels", "map"), 12: ("annotations", "map"), 13: ("ownerReferences", ("rep", OWNER)),
        14: ("finalizers", "rep_str")}
PRECOND = {1: ("uid", "str"), 2: ("resourceVersion", "str")}
DELETE_OPTIONS = {1: ("gracePeriodSeconds", "int"), 2: ("preconditions", PRECOND), 3: ("orphanDependents", "bool"),
                  4: ("propagationPolicy", "str"), 5: ("dryRun", "rep_str")}
REF = {1: ("kind", "str"), 2: ("namespace", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str")}
LOCAL_REF = {1: ("name", "str")}
SCHEMAS = {
    ("v1", "ConfigMap"): {1: ("metadata", META), 2: ("data", "map"), 3: ("binaryData", "map_bytes"), 4: ("immutable", "bool")},
    ("v1", "Secret"): {1: ("metadata", META), 2: ("data", "map_bytes"), 3: ("type", "str"), 4: ("stringData", "map"),
                       5: ("immutable", "bool")},
    ("v1", "Namespace"): {1: ("metadata", META), 2: ("spec", {1: ("finalizers", "rep_str")}), 3: ("status", {1: ("phase", "str")})},
    ("v1", "ServiceAccount"): {1: ("metadata", META), 2: ("secrets", ("rep", REF)), 3: ("imagePullSecrets", ("rep", LOCAL_REF)),
                               4: ("automountServiceAccountToken", "bool")},
    ("policy/v1", "Eviction"): {1: ("metadata", META), 2: ("deleteOptions", DELETE_OPTIONS)},
    ("meta.k8s.io/v1", "DeleteOptions"): DELETE_OPTIONS,
    ("v1", "DeleteOptions"): DELETE_OPTIONS,
}


def _int(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def _msg(b, schema):
    out = {}
    for num, wt, v in _fields(b):
        if num not in schema:
            continue
        name, typ = schema[num]
        if typ == "str":
            out[name] = v.decode()
        elif typ == "int":
            out[name] = _int(v)
        elif typ == "bool":
            out[name] = bool(v)
        elif typ == "time":
            t = _msg(v, TIME)
            out[name] = datetime.datetime.fromtimestamp(t.get("seconds", 0), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif typ in ("map", "map_bytes"):
            e = {k: val for k, _, val in _fields(v)}
            key = e.get(1, b"").decode()
            val = e.get(2, b"")
            out.setdefault(name, {})[key] = base64.b64encode(val).decode() if typ == "map_bytes" else val.decode()
        elif typ == "rep_str":
            out.setdefault(name, []).append(v.decode())
        elif isinstance(typ, tuple) and typ[0] == "rep":
            out.setdefault(name, []).append(_msg(v, typ[1]))
        elif isinstance(typ, dict):
            out[name] = _msg(v, typ)
    return {k: v for k, v in out.items() if v not in ("", 0, False, None, {}, [])}


def decode(body):
    """Protobuf request body -> JSON-like dict, or ApiError 415 for kinds the double cannot read."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    try:
        env = {}
        for num, wt, v in _fields(body[4:]):
            env[num] = v
        tm = _msg(env.get(1, b""), {1: ("apiVersion", "str"), 2: ("kind", "str")})
        key = (tm.get("apiVersion", ""), tm.get("kind", ""))
        schema = SCHEMAS.get(key)
        if schema is None:
            raise ApiError(415, "UnsupportedMediaType",
                           "kube-double cannot decode protobuf %s %s; send application/json (the test double reads protobuf "
                           "only for ConfigMap, Secret, Namespace, ServiceAccount, Eviction and DeleteOptions)" % key)
        obj = _msg(env.get(2, b""), schema)
        obj["apiVersion"], obj["kind"] = key
        return obj
    except ValueError as e:
        raise ApiError(400, "BadRequest", "unable to decode protobuf body: %s" % e)
