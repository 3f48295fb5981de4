"""The resource types the double serves: discovery documents, OpenAPI v3 stubs and Table printing."""
import hashlib
import json

from util import age

VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Resource:
    def __init__(self, group, version, kind, plural, singular, namespaced, short=(), categories=(),
                 status=True, generation=False, subresources=()):
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.singular = singular
        self.namespaced = namespaced
        self.short = list(short)
        self.categories = list(categories)
        self.status = status            # has a status subresource (status ignored on main resource writes)
        self.generation = generation    # metadata.generation is maintained
        self.subresources = list(subresources)  # extra subresources besides status

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def gv_path(self):
        return "/apis/%s/%s" % (self.group, self.version) if self.group else "/api/%s" % self.version

    def __repr__(self):
        return "<Resource %s %s>" % (self.api_version, self.kind)


RESOURCES = [
    Resource("", "v1", "Namespace", "namespaces", "namespace", False, ["ns"], status=True,
             subresources=[("finalize", ["update"])]),
    Resource("", "v1", "Node", "nodes", "node", False, ["no"], status=True, subresources=[("proxy", ["create", "delete", "get", "patch", "update"])]),
    Resource("", "v1", "Pod", "pods", "pod", True, ["po"], ["all"], status=True,
             subresources=[("eviction", ["create"]), ("log", ["get"]), ("binding", ["create"])]),
    Resource("", "v1", "Event", "events", "event", True, ["ev"], status=False),
    Resource("", "v1", "ConfigMap", "configmaps", "configmap", True, ["cm"], status=False),
    Resource("", "v1", "Secret", "secrets", "secret", True, [], status=False),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ["sa"], status=False),
    Resource("", "v1", "Service", "services", "service", True, ["svc"], ["all"], status=True),
    Resource("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ["ds"], ["all"],
             status=True, generation=True),
    Resource("apps", "v1", "Deployment", "deployments", "deployment", True, ["deploy"], ["all"],
             status=True, generation=True, subresources=[("scale", ["get", "patch", "update"])]),
    Resource("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ["rs"], ["all"],
             status=True, generation=True, subresources=[("scale", ["get", "patch", "update"])]),
    Resource("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, [], status=False),
    Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", True,
             ["pdb"], status=True, generation=True),
]

GROUP_ORDER = ["", "apps", "coordination.k8s.io", "policy"]

BY_KEY = {r.key: r for r in RESOURCES}


def find(group, version, plural):
    r = BY_KEY.get((group, plural))
    if r is not None and r.version == version:
        return r
    return None


def by_kind(api_version, kind):
    for r in RESOURCES:
        if r.api_version == api_version and r.kind == kind:
            return r
    return None


def group_versions():
    out = []
    for g in GROUP_ORDER:
        vs = sorted({r.version for r in RESOURCES if r.group == g})
        for v in vs:
            out.append((g, v))
    return out


def storage_hash(r):
    return hashlib.sha256(("%s/%s" % (r.api_version, r.kind)).encode()).digest()[:8].hex()[:11]


# Legacy discovery -------------------------------------------------------------------------------

def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list():
    groups = []
    for g in GROUP_ORDER:
        if not g:
            continue
        vs = sorted({r.version for r in RESOURCES if r.group == g})
        gvs = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs]
        groups.append({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group):
    vs = sorted({r.version for r in RESOURCES if r.group == group})
    if not vs:
        return None
    gvs = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in vs]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}


def _sub_kind(r, sub):
    return {"scale": ("autoscaling", "v1", "Scale"), "eviction": ("policy", "v1", "Eviction"),
            "binding": ("", "v1", "Binding"), "log": ("", "v1", "Pod"), "proxy": ("", "v1", "NodeProxyOptions"),
            "finalize": ("", "v1", "Namespace")}.get(sub, (r.group, r.version, r.kind))


def api_resource_list(group, version):
    rs = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rs:
        return None
    out = []
    for r in rs:
        e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
             "verbs": VERBS_ALL, "storageVersionHash": storage_hash(r)}
        if r.short:
            e["shortNames"] = r.short
        if r.categories:
            e["categories"] = r.categories
        out.append(e)
        subs = ([("status", ["get", "patch", "update"])] if r.status else []) + r.subresources
        for sub, verbs in subs:
            g, v, k = _sub_kind(r, sub)
            se = {"name": "%s/%s" % (r.plural, sub), "singularName": "", "namespaced": r.namespaced,
                  "kind": k, "verbs": verbs}
            if g != r.group or v != r.version:
                se["group"] = g
                se["version"] = v
            out.append(se)
    gv = "%s/%s" % (group, version) if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


# Aggregated discovery (apidiscovery.k8s.io/v2 and v2beta1) ---------------------------------------

def aggregated(legacy_core, api_version="apidiscovery.k8s.io/v2"):
    items = []
    groups = [""] if legacy_core else [g for g in GROUP_ORDER if g]
    for g in groups:
        versions = []
        for v in sorted({r.version for r in RESOURCES if r.group == g}):
            res = []
            for r in [x for x in RESOURCES if x.group == g and x.version == v]:
                e = {"resource": r.plural,
                     "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                     "scope": "Namespaced" if r.namespaced else "Cluster",
                     "singularResource": r.singular, "verbs": VERBS_ALL}
                if r.short:
                    e["shortNames"] = r.short
                if r.categories:
                    e["categories"] = r.categories
                subs = ([("status", ["get", "patch", "update"])] if r.status else []) + r.subresources
                if subs:
                    e["subresources"] = []
                    for sub, verbs in subs:
                        sg, sv, sk = _sub_kind(r, sub)
                        e["subresources"].append({"subresource": sub,
                                                  "responseKind": {"group": sg, "version": sv, "kind": sk},
                                                  "verbs": verbs})
                res.append(e)
            versions.append({"version": v, "resources": res, "freshness": "Current"})
        item = {"metadata": {"creationTimestamp": None}, "versions": versions}
        if g:
            item["metadata"]["name"] = g
        items.append(item)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


# OpenAPI v3 (only what kubectl's field-validation probe reads) -----------------------------------

def openapi_v3_path(g, v):
    return "api/%s" % v if not g else "apis/%s/%s" % (g, v)


def openapi_v3_root():
    paths = {}
    for g, v in group_versions():
        p = openapi_v3_path(g, v)
        paths[p] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (p, gv_hash(g, v))}
    return {"paths": paths}


def gv_hash(g, v):
    return hashlib.sha512(json.dumps(openapi_v3_doc(g, v), sort_keys=True).encode()).hexdigest()[:128].upper()


_QUERY_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def openapi_v3_doc(g, v, version_string="v1.32.5+k3s1"):
    paths = {}
    schemas = {}
    for r in [x for x in RESOURCES if x.group == g and x.version == v]:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        base = r.gv_path + ("/namespaces/{namespace}" if r.namespaced else "") + "/" + r.plural
        schema_name = "io.k8s.api.%s.%s.%s" % ((r.group.split(".")[0] or "core"), r.version, r.kind)
        ref = {"$ref": "#/components/schemas/%s" % schema_name}
        schemas[schema_name] = {
            "type": "object",
            "description": "%s (schema not modelled by the test double)" % r.kind,
            "x-kubernetes-group-version-kind": [gvk],
            "x-kubernetes-preserve-unknown-fields": True,
        }
        params = [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for p in _QUERY_PARAMS]
        resp = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        item_ops = {
            "get": {"operationId": "read%s" % r.kind, "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk, "responses": resp},
            "put": {"operationId": "replace%s" % r.kind, "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": resp},
            "patch": {"operationId": "patch%s" % r.kind, "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": resp,
                      "requestBody": {"content": {ct: {"schema": {"type": "object"}} for ct in (
                          "application/apply-patch+yaml", "application/json-patch+json",
                          "application/merge-patch+json", "application/strategic-merge-patch+json")}}},
            "delete": {"operationId": "delete%s" % r.kind, "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk, "responses": resp},
        }
        paths[base + "/{name}"] = item_ops
        paths[base] = {
            "get": {"operationId": "list%s" % r.kind, "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk, "responses": resp},
            "post": {"operationId": "create%s" % r.kind, "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": resp},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": version_string},
            "paths": paths, "components": {"schemas": schemas}}


# Server-side printing (meta.k8s.io/v1 Table) ------------------------------------------------------

def _col(name, typ="string", fmt="", desc="", priority=0):
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


def _cond(obj, typ):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


def node_status_text(n):
    c = _cond(n, "Ready")
    s = "Unknown"
    if c is not None:
        s = "Ready" if c.get("status") == "True" else "NotReady"
    if (n.get("spec") or {}).get("unschedulable"):
        s += ",SchedulingDisabled"
    return s


def node_roles(n):
    roles = sorted({k.split("/", 1)[1] for k in (n["metadata"].get("labels") or {})
                    if k.startswith("node-role.kubernetes.io/") and "/" in k and k.split("/", 1)[1]})
    kr = (n["metadata"].get("labels") or {}).get("kubernetes.io/role")
    if kr:
        roles = sorted(set(roles) | {kr})
    return ",".join(roles) if roles else "<none>"


def _addr(n, typ):
    for a in (n.get("status") or {}).get("addresses") or []:
        if a.get("type") == typ:
            return a.get("address")
    return "<none>"


def pod_status_reason(p):
    st = p.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Unknown"
    ready = 0
    restarts = 0
    cs = st.get("containerStatuses") or []
    for c in cs:
        restarts += c.get("restartCount", 0)
        state = c.get("state") or {}
        if c.get("ready"):
            ready += 1
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            t = state["terminated"]
            reason = t.get("reason") or ("Signal:%s" % t.get("signal") if t.get("signal") else "ExitCode:%s" % t.get("exitCode"))
    if st.get("phase") == "Running" and cs and all((c.get("state") or {}).get("running") and c.get("ready") for c in cs):
        reason = "Running"
    if p["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason, ready, restarts


def table_columns(r):
    k = r.kind
    if k == "Node":
        return [_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
                _col("Internal-IP", priority=1), _col("External-IP", priority=1), _col("OS-Image", priority=1),
                _col("Kernel-Version", priority=1), _col("Container-Runtime", priority=1)]
    if k == "Pod":
        return [_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts"), _col("Age"),
                _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
                _col("Readiness Gates", priority=1)]
    if k == "Deployment":
        return [_col("Name", fmt="name"), _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                _col("Age"), _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)]
    if k == "ReplicaSet":
        return [_col("Name", fmt="name"), _col("Desired", "integer"), _col("Current", "integer"),
                _col("Ready", "integer"), _col("Age"), _col("Containers", priority=1), _col("Images", priority=1),
                _col("Selector", priority=1)]
    if k == "DaemonSet":
        return [_col("Name", fmt="name"), _col("Desired", "integer"), _col("Current", "integer"),
                _col("Ready", "integer"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                _col("Node Selector"), _col("Age"), _col("Containers", priority=1), _col("Images", priority=1),
                _col("Selector", priority=1)]
    if k == "Event":
        return [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Subobject", priority=1),
                _col("Source", priority=1), _col("Message"), _col("First Seen", priority=1),
                _col("Count", "integer", priority=1), _col("Name", priority=1)]
    if k == "Namespace":
        return [_col("Name", fmt="name"), _col("Status"), _col("Age")]
    if k == "ConfigMap":
        return [_col("Name", fmt="name"), _col("Data", "integer"), _col("Age")]
    if k == "Service":
        return [_col("Name", fmt="name"), _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"),
                _col("Age"), _col("Selector", priority=1)]
    if k == "Lease":
        return [_col("Name", fmt="name"), _col("Holder"), _col("Age")]
    return [_col("Name", fmt="name"), _col("Age")]


def _containers(o):
    cs = (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _sel(o):
    ml = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join("%s=%s" % kv for kv in sorted(ml.items())) or "<none>"


def table_cells(r, o):
    md = o.get("metadata") or {}
    st = o.get("status") or {}
    sp = o.get("spec") or {}
    name = md.get("name", "")
    a = age(md.get("creationTimestamp"))
    k = r.kind
    if k == "Node":
        ni = st.get("nodeInfo") or {}
        rt = ni.get("containerRuntimeVersion") or "<unknown>"
        return [name, node_status_text(o), node_roles(o), a, ni.get("kubeletVersion", ""),
                _addr(o, "InternalIP"), _addr(o, "ExternalIP"), ni.get("osImage") or "<unknown>",
                ni.get("kernelVersion") or "<unknown>", rt]
    if k == "Pod":
        reason, ready, restarts = pod_status_reason(o)
        total = len(sp.get("containers") or [])
        return [name, "%d/%d" % (ready, total), reason, restarts, a, st.get("podIP") or "<none>",
                sp.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>", "<none>"]
    if k == "Deployment":
        c, i = _containers(o)
        return [name, "%d/%d" % (st.get("readyReplicas", 0), sp.get("replicas", 1)), st.get("updatedReplicas", 0),
                st.get("availableReplicas", 0), a, c, i, _sel(o)]
    if k == "ReplicaSet":
        c, i = _containers(o)
        return [name, sp.get("replicas", 1), st.get("replicas", 0), st.get("readyReplicas", 0), a, c, i, _sel(o)]
    if k == "DaemonSet":
        c, i = _containers(o)
        nsel = ((sp.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
        return [name, st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
                st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
                ",".join("%s=%s" % kv for kv in sorted(nsel.items())) or "<none>", a, c, i, _sel(o)]
    if k == "Event":
        io = o.get("involvedObject") or {}
        last = o.get("lastTimestamp") or o.get("eventTime") or md.get("creationTimestamp")
        first = o.get("firstTimestamp") or o.get("eventTime") or md.get("creationTimestamp")
        src = (o.get("source") or {}).get("component") or o.get("reportingComponent") or ""
        host = (o.get("source") or {}).get("host")
        if host:
            src += ", " + host
        return [age(last), o.get("type", ""), o.get("reason", ""),
                "%s/%s" % (io.get("kind", "").lower(), io.get("name", "")), io.get("fieldPath", ""),
                src, o.get("message", ""), age(first), o.get("count", 1), name]
    if k == "Namespace":
        return [name, st.get("phase", "Active"), a]
    if k == "ConfigMap":
        return [name, len(o.get("data") or {}) + len(o.get("binaryData") or {}), a]
    if k == "Service":
        ports = ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP")) for p in sp.get("ports") or []) or "<none>"
        sel = ",".join("%s=%s" % kv for kv in sorted((sp.get("selector") or {}).items())) or "<none>"
        return [name, sp.get("type", "ClusterIP"), sp.get("clusterIP", "<none>"), "<none>", ports, a, sel]
    if k == "Lease":
        return [name, sp.get("holderIdentity", ""), a]
    return [name, a]


def to_table(r, objs, list_meta, include_object="Metadata"):
    rows = []
    for o in objs:
        row = {"cells": table_cells(r, o)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": table_columns(r), "rows": rows}
