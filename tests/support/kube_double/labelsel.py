"""Label and field selectors with the grammar of k8s.io/apimachinery/pkg/labels and pkg/fields."""
from util import ApiError

_OPS = ("==", "!=", "=", ">", "<")


def _bad(msg):
    return ApiError(400, "BadRequest", msg)


def _split_top(s):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _valid_key(k):
    if not k:
        return False
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")
    return all(c in allowed for c in k) and k.count("/") <= 1


def parse_label_selector(s):
    """Returns a list of (key, op, values). op in exists, !, =, !=, in, notin, gt, lt."""
    reqs = []
    if s is None:
        return reqs
    s = s.strip()
    if not s:
        return reqs
    for raw in _split_top(s):
        part = raw.strip()
        if not part:
            raise _bad("unable to parse requirement: found '', expected: identifier")
        low = part
        if low.startswith("!"):
            key = low[1:].strip()
            if not _valid_key(key):
                raise _bad("unable to parse requirement: invalid label key %r" % key)
            reqs.append((key, "!", []))
            continue
        done = False
        for word in (" notin ", " in "):
            idx = low.find(word)
            if idx > 0:
                key = low[:idx].strip()
                rest = low[idx + len(word):].strip()
                if not (rest.startswith("(") and rest.endswith(")")):
                    raise _bad("unable to parse requirement: found '%s', expected: '('" % rest)
                vals = [v.strip() for v in rest[1:-1].split(",")]
                vals = [v for v in vals if v != ""] if rest[1:-1].strip() else []
                if not _valid_key(key):
                    raise _bad("unable to parse requirement: invalid label key %r" % key)
                reqs.append((key, word.strip(), vals))
                done = True
                break
        if done:
            continue
        for op in _OPS:
            idx = low.find(op)
            if idx > 0:
                key = low[:idx].strip()
                val = low[idx + len(op):].strip()
                if not _valid_key(key):
                    raise _bad("unable to parse requirement: invalid label key %r" % key)
                o = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[op]
                if o in ("gt", "lt"):
                    try:
                        int(val)
                    except ValueError:
                        raise _bad("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
                reqs.append((key, o, [val]))
                done = True
                break
        if done:
            continue
        if not _valid_key(part):
            raise _bad("unable to parse requirement: invalid label key %r" % part)
        reqs.append((part, "exists", []))
    return reqs


def label_matches(reqs, labels):
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op == "=" and (not has or v != vals[0]):
            return False
        if op == "!=" and has and v == vals[0]:
            return False
        if op == "in" and (not has or v not in vals):
            return False
        if op == "notin" and has and v in vals:
            return False
        if op in ("gt", "lt"):
            if not has:
                return False
            try:
                iv = int(v)
            except (TypeError, ValueError):
                return False
            if op == "gt" and not iv > int(vals[0]):
                return False
            if op == "lt" and not iv < int(vals[0]):
                return False
    return True


def selector_from_label_selector(sel):
    """metav1.LabelSelector (matchLabels/matchExpressions) -> requirements list."""
    reqs = []
    if not sel:
        return reqs
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, "=", [str(v)]))
    for e in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(e.get("operator"))
        if op:
            reqs.append((e.get("key"), op, list(e.get("values") or [])))
    return reqs


# Field selectors --------------------------------------------------------------------------------

# Field labels each kind supports (pkg/registry/*/strategy.go ...FieldsSet / AddFieldLabelConversionFunc).
COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
KIND_FIELDS = {
    "Pod": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"},
    "Node": {"spec.unschedulable"},
    "Event": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"},
    "Namespace": {"status.phase"},
    "ReplicaSet": {"status.replicas"},
    "Secret": {"type"},
}


def parse_field_selector(s, kind):
    reqs = []
    if s is None or not s.strip():
        return reqs
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            idx = part.find(op)
            if idx > 0:
                key, val = part[:idx].strip(), part[idx + len(op):].strip()
                break
        else:
            raise _bad("invalid selector: '%s'; can't understand '%s'" % (s, part))
        if key not in COMMON_FIELDS and key not in KIND_FIELDS.get(kind, set()):
            raise _bad('"%s" is not a known field selector: only "%s"' % (
                key, '", "'.join(sorted(COMMON_FIELDS | KIND_FIELDS.get(kind, set())))))
        reqs.append((key, "!=" if op == "!=" else "=", val))
    return reqs


def field_value(obj, key):
    if key == "source":
        return (obj.get("source") or {}).get("component", "")
    cur = obj
    for p in key.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        return "false" if key in ("spec.unschedulable", "spec.hostNetwork") else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_matches(reqs, obj):
    for key, op, val in reqs:
        v = field_value(obj, key)
        if op == "=" and v != val:
            return False
        if op == "!=" and v == val:
            return False
    return True
