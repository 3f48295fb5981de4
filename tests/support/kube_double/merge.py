"""Patch formats and field ownership.

- server-side apply (application/apply-patch+yaml) with managedFields (FieldsV1), conflicts and force,
- JSON merge patch (RFC 7386), strategic merge patch (the subset of directives kubectl sends),
- JSON patch (RFC 6902),
- managedFields bookkeeping for Update operations.

The schema knowledge is a small table of list/map semantics for the built-in types the double serves
(associative lists keyed like the real OpenAPI x-kubernetes-list-map-keys, atomic selectors)."""
import json

from util import ApiError, canon, deepcopy

# ---- schema knowledge -----------------------------------------------------------------------------

_ASSOC = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "env": ("name",), "volumes": ("name",), "volumeMounts": ("mountPath",), "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",), "ownerReferences": ("uid",), "conditions": ("type",),
    "hostAliases": ("ip",), "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",), "readinessGates": ("conditionType",),
}
_KEY_DEFAULTS = {"protocol": "TCP"}
_SETS = {"finalizers"}
_ATOMIC_MAPS = {"selector", "nodeSelector"}
# strategic merge patch: patchMergeKey of the built-in types
_SMP_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "ownerReferences": "uid", "conditions": "type", "hostAliases": "ip", "addresses": "type",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
}
_SMP_PRIMITIVE_MERGE = {"finalizers"}

# fields that are never tracked in managedFields
_IGNORED_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                 "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}


def list_keys(names):
    """Associative list keys for the list at this field-name path, 'set', or None (atomic)."""
    if not names:
        return None
    last = names[-1]
    if last == "ports":
        parent = names[-2] if len(names) > 1 else ""
        if parent in ("containers", "initContainers", "ephemeralContainers"):
            return ("containerPort", "protocol")
        if parent == "spec":
            return ("port", "protocol")
        return None
    if last in _SETS:
        return "set"
    return _ASSOC.get(last)


def is_atomic_map(names):
    return bool(names) and names[-1] in _ATOMIC_MAPS


def key_of(item, keys):
    d = {}
    for k in keys:
        v = item.get(k, _KEY_DEFAULTS.get(k)) if isinstance(item, dict) else None
        d[k] = v
    return "k:" + json.dumps(d, separators=(",", ":"))


def _item_matches(item, kstr, keys):
    return isinstance(item, dict) and key_of(item, keys) == kstr


# ---- field sets -----------------------------------------------------------------------------------

def _collect(v, path, names, out, vals):
    if isinstance(v, dict) and v and not is_atomic_map(names):
        for k, c in v.items():
            _collect(c, path + ("f:" + k,), names + (k,), out, vals)
        return
    if isinstance(v, list):
        lk = list_keys(names)
        if isinstance(lk, tuple) and all(isinstance(i, dict) for i in v):
            for item in v:
                ip = path + (key_of(item, lk),)
                out.add(ip)
                for k, c in item.items():
                    _collect(c, ip + ("f:" + k,), names + (k,), out, vals)
            return
        if lk == "set":
            for item in v:
                p = path + ("v:" + json.dumps(item, separators=(",", ":")),)
                out.add(p)
                if vals is not None:
                    vals[p] = canon(item)
            return
    out.add(path)
    if vals is not None:
        vals[path] = canon(v)


def fieldset(obj, res, part="main", with_values=False):
    """Set of field paths (tuples of FieldsV1 keys) an object specifies.
    part: 'main' (everything but ignored fields and, with a status subresource, status),
          'status' (only status), 'all'."""
    out, vals = set(), ({} if with_values else None)
    for k, v in (obj or {}).items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "status" and part == "main" and res.status:
            continue
        if part == "status" and k != "status":
            continue
        if k == "metadata":
            if not isinstance(v, dict):
                continue
            for mk, mv in v.items():
                if mk in _IGNORED_META or mv is None:
                    continue
                _collect(mv, ("f:metadata", "f:" + mk), ("metadata", mk), out, vals)
            continue
        if v is None:
            continue
        _collect(v, ("f:" + k,), (k,), out, vals)
    return (out, vals) if with_values else out


def to_fields_v1(paths):
    root = {}
    for p in sorted(paths):
        node = root
        for el in p:
            node = node.setdefault(el, {})
    members = set(paths)

    def mark(node, prefix):
        for k, sub in list(node.items()):
            p = prefix + (k,)
            if sub:
                mark(sub, p)
                if p in members:
                    sub["."] = {}
                    # keep "." first like the apiserver does
                    node[k] = {".": {}, **{kk: vv for kk, vv in sub.items() if kk != "."}}
    mark(root, ())
    return root


def from_fields_v1(fv, prefix=()):
    out = set()
    if not isinstance(fv, dict):
        return out
    for k, sub in fv.items():
        if k == ".":
            out.add(prefix)
            continue
        p = prefix + (k,)
        if not sub:
            out.add(p)
        else:
            out |= from_fields_v1(sub, p)
    return out


def _names_of(path):
    return tuple(el[2:] for el in path if el.startswith("f:"))


def get_at(obj, path):
    """(found, value) for a FieldsV1 path."""
    cur = obj
    names = ()
    for el in path:
        if el.startswith("f:"):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return False, None
            names += (el[2:],)
            cur = cur[el[2:]]
        elif el.startswith("k:"):
            keys = list_keys(names)
            if not isinstance(cur, list) or not isinstance(keys, tuple):
                return False, None
            for item in cur:
                if _item_matches(item, el, keys):
                    cur = item
                    break
            else:
                return False, None
        elif el.startswith("v:"):
            val = json.loads(el[2:])
            if not isinstance(cur, list) or val not in cur:
                return False, None
            cur = val
        else:
            return False, None
    return True, cur


def remove_at(obj, path):
    if not path:
        return
    found, parent = get_at(obj, path[:-1])
    if not found:
        return
    el = path[-1]
    names = _names_of(path[:-1])
    if el.startswith("f:") and isinstance(parent, dict):
        parent.pop(el[2:], None)
    elif el.startswith("k:") and isinstance(parent, list):
        keys = list_keys(names)
        if isinstance(keys, tuple):
            parent[:] = [i for i in parent if not _item_matches(i, el, keys)]
    elif el.startswith("v:") and isinstance(parent, list):
        val = json.loads(el[2:])
        parent[:] = [i for i in parent if i != val]


def _path_str(path):
    """'.spec.template.spec.containers[name="web"].image' as in apiserver conflict messages."""
    s = ""
    for el in path:
        if el.startswith("f:"):
            s += "." + el[2:]
        elif el.startswith("k:"):
            d = json.loads(el[2:])
            s += "[" + ",".join('%s=%s' % (k, json.dumps(v)) for k, v in d.items()) + "]"
        elif el.startswith("v:"):
            s += "[=%s]" % el[2:]
    return s


# ---- managedFields --------------------------------------------------------------------------------

class Entry:
    def __init__(self, d):
        self.manager = d.get("manager", "")
        self.operation = d.get("operation", "Update")
        self.api_version = d.get("apiVersion", "")
        self.time = d.get("time")
        self.subresource = d.get("subresource")
        self.fields = from_fields_v1(d.get("fieldsV1") or {})

    def to_dict(self):
        d = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
             "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}
        if self.subresource:
            d["subresource"] = self.subresource
        return d


def read_entries(obj):
    return [Entry(d) for d in ((obj or {}).get("metadata") or {}).get("managedFields") or [] if isinstance(d, dict)]


def write_entries(obj, entries):
    es = [e.to_dict() for e in entries if e.fields]
    md = obj.setdefault("metadata", {})
    if es:
        md["managedFields"] = es
    else:
        md.pop("managedFields", None)


def _owned_by_prefix(entry, path):
    n = len(path)
    return any(p[:n] == path for p in entry.fields)


def strip_nulls(v):
    if isinstance(v, dict):
        return {k: strip_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [strip_nulls(x) for x in v]
    return v


def _apply_merge(live, cfg, names):
    if isinstance(cfg, dict) and isinstance(live, dict) and not is_atomic_map(names):
        out = dict(live)
        for k, v in cfg.items():
            out[k] = _apply_merge(live[k], v, names + (k,)) if k in live else deepcopy(v)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        lk = list_keys(names)
        if isinstance(lk, tuple) and all(isinstance(i, dict) for i in cfg + live):
            out = [deepcopy(x) for x in live]
            for item in cfg:
                ks = key_of(item, lk)
                for i, li in enumerate(out):
                    if key_of(li, lk) == ks:
                        out[i] = _apply_merge(li, item, names)
                        break
                else:
                    out.append(deepcopy(item))
            return out
        if lk == "set":
            out = [deepcopy(x) for x in live]
            for x in cfg:
                if x not in out:
                    out.append(deepcopy(x))
            return out
    return deepcopy(cfg)


def server_side_apply(live, cfg, manager, force, res, ts, subresource=None):
    """Returns the new object (not yet defaulted). live may be None (create)."""
    cfg = strip_nulls(cfg)
    part = "status" if subresource == "status" else "main"
    new_set = fieldset(cfg, res, part)
    entries = read_entries(live)
    mine = None
    for e in entries:
        if e.manager == manager and e.operation == "Apply" and (e.subresource or None) == subresource:
            mine = e
            break
    old_set = set(mine.fields) if mine else set()

    base = deepcopy(live) if live else {}
    conflicts = []
    for e in entries:
        if e is mine or e.manager == manager:
            continue
        for p in sorted(new_set & e.fields):
            if p and p[-1].startswith("k:"):
                continue
            f1, v1 = get_at(base, p)
            f2, v2 = get_at(cfg, p)
            if f1 and f2 and canon(v1) == canon(v2):
                continue
            conflicts.append((e, p))
    if conflicts and not force:
        causes = [{"reason": "FieldManagerConflict", "message": 'conflict with "%s"%s' % (
            e.manager, " using " + e.api_version if e.operation == "Update" else ""), "field": _path_str(p)}
                  for e, p in conflicts]
        if len(conflicts) == 1:
            msg = "Apply failed with 1 conflict: %s: %s" % (causes[0]["message"], causes[0]["field"])
        else:
            msg = "Apply failed with %d conflicts: %s" % (
                len(conflicts), "\n".join("%s: %s" % (c["message"], c["field"]) for c in causes))
        d = {"name": ((live or {}).get("metadata") or {}).get("name", ""), "kind": res.plural, "causes": causes}
        if res.group:
            d["group"] = res.group
        raise ApiError(409, "Conflict", msg, d)
    for e, p in conflicts:
        e.fields.discard(p)

    # merge the configuration into the live object
    body = {k: v for k, v in cfg.items() if k not in ("apiVersion", "kind", "metadata")}
    if part == "status":
        body = {"status": cfg.get("status")} if "status" in cfg else {}
    elif res.status:
        body.pop("status", None)
    merged = _apply_merge(base, body, ())
    md = merged.setdefault("metadata", {})
    for mk, mv in (cfg.get("metadata") or {}).items():
        if mk in _IGNORED_META:
            continue
        md[mk] = _apply_merge(md[mk], mv, ("metadata", mk)) if mk in md else deepcopy(mv)

    # fields this manager applied before but no longer specifies are removed unless someone else owns them
    others = [e for e in entries if e is not mine]
    for p in sorted(old_set - new_set, key=len, reverse=True):
        if any(_owned_by_prefix(e, p) for e in others):
            continue
        if any(q[:len(p)] == p for q in new_set):
            continue
        remove_at(merged, p)

    if mine is None:
        mine = Entry({"manager": manager, "operation": "Apply", "apiVersion": res.api_version,
                      "time": ts, "subresource": subresource})
        entries.append(mine)
    mine.fields = new_set
    mine.api_version = res.api_version
    write_entries(merged, entries)
    return merged


def update_managed_fields(old, new, manager, res, ts, subresource=None):
    """Record an Update operation by `manager` that turned old into new (mutates new's managedFields)."""
    part = "status" if subresource == "status" else "main"
    oset, ovals = fieldset(old or {}, res, part, with_values=True)
    nset, nvals = fieldset(new, res, part, with_values=True)
    changed = {p for p in nset if p not in oset or ovals.get(p) != nvals.get(p)}
    removed = oset - nset
    entries = read_entries(old) if old else []
    if not changed and not removed:
        write_entries(new, entries)
        return
    mine = None
    for e in entries:
        if e.manager == manager and e.operation == "Update" and (e.subresource or None) == subresource:
            mine = e
    for e in entries:
        if e is not mine:
            e.fields -= changed
        e.fields -= removed
    if changed:
        if mine is None:
            mine = Entry({"manager": manager, "operation": "Update", "apiVersion": res.api_version,
                          "subresource": subresource})
            entries.append(mine)
        mine.fields |= changed
        mine.time = ts
    write_entries(new, entries)


# ---- JSON merge patch / strategic merge patch / JSON patch -----------------------------------------

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target, patch, name=""):
    if not isinstance(patch, dict):
        return deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list) and isinstance(v, list):
                out[f] = [x for x in out[f] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
            continue
        cur = out.get(k)
        if isinstance(v, list):
            mk = _SMP_KEYS.get(k)
            if k == "ports" and v and isinstance(v[0], dict):
                mk = "containerPort" if "containerPort" in v[0] else "port"
            if mk and isinstance(cur, list):
                res = [deepcopy(x) for x in cur]
                for item in v:
                    if not isinstance(item, dict):
                        continue
                    if item.get("$patch") == "replace":
                        res = [deepcopy({a: b for a, b in i.items() if a != "$patch"}) for i in v]
                        break
                    idx = next((i for i, x in enumerate(res) if isinstance(x, dict) and x.get(mk) == item.get(mk)), None)
                    if item.get("$patch") == "delete":
                        if idx is not None:
                            res.pop(idx)
                        continue
                    if idx is None:
                        res.append(strategic_merge_patch({}, item))
                    else:
                        res[idx] = strategic_merge_patch(res[idx], item)
                out[k] = res
            elif k in _SMP_PRIMITIVE_MERGE and isinstance(cur, list):
                out[k] = cur + [x for x in v if x not in cur]
            else:
                out[k] = [strategic_merge_patch({}, x) if isinstance(x, dict) else deepcopy(x) for x in v]
        elif isinstance(v, dict):
            r = strategic_merge_patch(cur, v)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        else:
            out[k] = deepcopy(v)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _jp_get(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise KeyError(p)
    return cur


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = deepcopy(doc)
    for op in ops:
        try:
            kind = op["op"]
            parts = _ptr(op["path"])
            if kind == "test":
                if canon(_jp_get(doc, parts)) != canon(op.get("value")):
                    raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
                continue
            if kind in ("move", "copy"):
                src = _ptr(op["from"])
                val = deepcopy(_jp_get(doc, src))
                if kind == "move":
                    doc = _jp_remove(doc, src)
                doc = _jp_add(doc, parts, val)
                continue
            if kind == "remove":
                doc = _jp_remove(doc, parts)
            elif kind == "add":
                doc = _jp_add(doc, parts, deepcopy(op.get("value")))
            elif kind == "replace":
                _jp_get(doc, parts)
                doc = _jp_remove(doc, parts)
                doc = _jp_add(doc, parts, deepcopy(op.get("value")))
            else:
                raise ApiError(422, "Invalid", "Unexpected kind: %s" % kind)
        except (KeyError, IndexError, TypeError, ValueError):
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
    return doc


def _jp_add(doc, parts, val):
    if not parts:
        return val
    parent = _jp_get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = val
    elif isinstance(parent, list):
        if last == "-":
            parent.append(val)
        else:
            i = int(last)
            if i > len(parent):
                raise IndexError(i)
            parent.insert(i, val)
    else:
        raise KeyError(last)
    return doc


def _jp_remove(doc, parts):
    parent = _jp_get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        del parent[last]
    elif isinstance(parent, list):
        parent.pop(int(last))
    else:
        raise KeyError(last)
    return doc
