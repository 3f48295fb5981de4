#!/usr/bin/env python3
"""Kubernetes API test double for mixop's tests (test support, not a product).

Run:  .venv/bin/python tests/support/kube_double/server.py --listen 127.0.0.1:0 --state-dir DIR [--scenario FILE]
Writes DIR/kubeconfig (client certificate), DIR/kubeconfig-token (bearer token), DIR/kubeconfig-viewer
(read-only token), DIR/token, DIR/ca.crt, DIR/audit.jsonl (one line per request) and, once serving, DIR/port.
See README.md next to this file."""
import argparse
import base64
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import api as apimod  # noqa: E402
import certs  # noqa: E402
import kproto  # noqa: E402
import controller as ctl  # noqa: E402
import resources  # noqa: E402
import scenario as scen  # noqa: E402
from labelsel import field_matches, label_matches, parse_field_selector, parse_label_selector  # noqa: E402
from store import Store  # noqa: E402
from util import ApiError, deepcopy, err_bad_request, new_uid, rfc3339, status_success  # noqa: E402

AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGG_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"

_log_lock = threading.Lock()


def log(msg):
    with _log_lock:
        sys.stderr.write("kube-double: %s\n" % msg)
        sys.stderr.flush()


def parse_accept(h):
    """[(media_type, params dict)] in header order."""
    out = []
    for part in (h or "").split(","):
        bits = [b.strip() for b in part.split(";") if b.strip()]
        if not bits:
            continue
        params = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip()] = v.strip()
        out.append((bits[0].lower(), params))
    return out


class World:
    """Everything a request handler needs."""

    def __init__(self, sc, state_dir):
        self.sc = sc
        self.state_dir = state_dir
        self.store = Store(history=int(sc.get("watchHistory", 5000)))
        self.api = apimod.Api(self.store, log)
        self.users_by_token = {}
        self.users_by_cn = {"system:admin": {"name": "system:admin", "groups": ["system:masters", "system:authenticated"], "readOnly": False}}
        self.server_address = "127.0.0.1:6443"
        self.audit_lock = threading.Lock()
        self.audit_path = os.path.join(state_dir, "audit.jsonl")
        self.started = time.time()

    def seed(self):
        ts = rfc3339()
        NS = resources.BY_KEY[("", "namespaces")]
        NODES = resources.BY_KEY[("", "nodes")]
        d = scen.DIST[self.sc["distribution"]]
        for ns in self.sc["namespaces"]:
            self.api.create(NS, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, d["linux_manager"])
        SA = resources.BY_KEY[("", "serviceaccounts")]
        for ns in self.sc["namespaces"]:
            self.api.create(SA, ns, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, d["linux_manager"])
        SVC = resources.BY_KEY[("", "services")]
        svc = self.api.create(SVC, "default", {"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1"],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}, d["linux_manager"])
        for i, n in enumerate(self.sc.get("nodes") or []):
            obj = scen.build_node(self.sc, n, i, ts)
            mgr = d["win_manager"] if n["os"] == "windows" else d["linux_manager"]
            node = self.api.create(NODES, "", obj, mgr)
            nm = n["name"]
            ev = self.controller.event
            ev(node, NODES, "Normal", "Starting", "Starting kubelet.", "kubelet", nm)
            for reason in ("NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID"):
                ev(node, NODES, "Normal", reason, "Node %s status is now: %s" % (nm, reason), "kubelet", nm)
            ev(node, NODES, "Normal", "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods", "kubelet", nm)
            if scen.node_ready_initially(n) == "True":
                ev(node, NODES, "Normal", "NodeReady", "Node %s status is now: NodeReady" % nm, "kubelet", nm)
            ev(node, NODES, "Normal", "RegisteredNode", "Node %s event: Registered Node %s in Controller" % (nm, nm), "node-controller")
        if self.sc.get("systemPods") and any(n["os"] == "linux" for n in self.sc.get("nodes") or []):
            self.api.create(resources.BY_KEY[("apps", "deployments")], "kube-system", deepcopy(scen.COREDNS), d["linux_manager"])
        for i, o in enumerate(self.sc.get("objects") or []):
            r = resources.by_kind(o.get("apiVersion"), o.get("kind")) if isinstance(o, dict) else None
            if r is None:
                raise ValueError("scenario objects[%d]: unsupported apiVersion/kind %s/%s" % (
                    i, (o or {}).get("apiVersion"), (o or {}).get("kind")))
            ns = (o.get("metadata") or {}).get("namespace") or ("default" if r.namespaced else "")
            self.api.create(r, ns, deepcopy(o), "kubectl-create")
        self.store.mark_seeded()

    def audit(self, rec):
        try:
            with self.audit_lock, open(self.audit_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        except OSError:
            pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-double"
    sys_version = ""
    world = None  # set on the class by main()

    def log_message(self, fmt, *args):
        pass

    # ---- plumbing --------------------------------------------------------------------------------
    def setup(self):
        super().setup()
        self.user = None

    def _body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline(65537).strip()
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > 32 * 1024 * 1024:
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
        return self.rfile.read(n) if n else b""

    def send_raw(self, code, body, ctype="application/json", headers=None):
        self.send_response(code)
        self.send_header("Audit-Id", new_uid())
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = code

    def send_json(self, code, obj, ctype="application/json", headers=None):
        self.send_raw(code, json.dumps(obj, separators=(",", ":")).encode(), ctype, headers)

    def send_error_status(self, e):
        self.send_json(e.code, e.status(), headers=e.headers)

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.send_raw(405, b"", "text/plain")

    def dispatch(self):
        self._status = 0
        t0 = time.monotonic()
        u = urllib.parse.urlsplit(self.path)
        self.qs = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        self.upath = u.path
        try:
            self.body = self._body()
        except ApiError as e:
            self.body = b""
            self.send_error_status(e)
            self.close_connection = True
            return
        except Exception:
            self.body = b""
        try:
            self.authenticate()
            self.route()
        except ApiError as e:
            if not self._status:
                self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception:
            log("internal error on %s %s:\n%s" % (self.command, self.path, traceback.format_exc()))
            if not self._status:
                try:
                    self.send_error_status(ApiError(500, "InternalError", "Internal error occurred: kube-double: %s" % sys.exc_info()[1]))
                except Exception:
                    self.close_connection = True
        finally:
            ms = (time.monotonic() - t0) * 1000
            user = (self.user or {}).get("name", "-")
            ua = self.headers.get("User-Agent", "")
            log("%s %s %s %s %.0fms [%s]" % (self.command, self.path, self._status, user, ms, ua.split(" ")[0]))
            self.world.audit({"time": rfc3339(), "verb": self.command, "path": self.upath, "query": self.qs,
                              "contentType": self.headers.get("Content-Type"), "accept": self.headers.get("Accept"),
                              "userAgent": ua, "user": user, "code": self._status})

    # ---- authn/authz -----------------------------------------------------------------------------
    def authenticate(self):
        w = self.world
        authz = self.headers.get("Authorization") or ""
        if authz.lower().startswith("bearer "):
            tok = authz[7:].strip()
            u = w.users_by_token.get(tok)
            if u is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self.user = u
            return
        if authz:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        cert = None
        try:
            cert = self.connection.getpeercert()
        except Exception:
            cert = None
        if cert:
            cn = None
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
            u = w.users_by_cn.get(cn)
            if u is None:
                orgs = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "organizationName"]
                u = {"name": cn, "groups": orgs + ["system:authenticated"], "readOnly": "system:masters" not in orgs}
            self.user = u
            return
        if self.upath in ("/healthz", "/livez", "/readyz", "/version"):
            # k3s/rke2 run with --anonymous-auth=false, but keep the probes reachable for test scripts
            pass
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def authorize(self, verb, res, ns, name, sub=None):
        if not (self.user or {}).get("readOnly"):
            return
        if verb in ("get", "list", "watch"):
            return
        u = self.user["name"]
        rdesc = res.plural + ("/" + sub if sub else "")
        scope = 'in the namespace "%s"' % ns if res.namespaced and ns else "at the cluster scope"
        what = '%s "%s" is forbidden' % (res.plural + ("." + res.group if res.group else ""), name) if name else \
            "%s is forbidden" % (res.plural + ("." + res.group if res.group else ""))
        d = {"kind": res.plural}
        if name:
            d["name"] = name
        if res.group:
            d["group"] = res.group
        raise ApiError(403, "Forbidden", '%s: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
            what, u, verb, rdesc, res.group, scope), d)

    # ---- routing ---------------------------------------------------------------------------------
    def route(self):
        p = self.upath.rstrip("/") or "/"
        m = self.command
        w = self.world
        if p in ("/healthz", "/livez", "/readyz") or p.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self.send_raw(200, b"ok", "text/plain; charset=utf-8")
        if p == "/version":
            v = w.sc["version"]
            core = v.split("+")[0].lstrip("v").split(".")
            return self.send_json(200, {"major": core[0], "minor": core[1], "gitVersion": v,
                                        "gitCommit": "b2d3c1c7a0c9b2b1b2a3c4d5e6f708192a3b4c5d", "gitTreeState": "clean",
                                        "buildDate": "2024-12-16T22:48:37Z", "goVersion": "go1.22.9", "compiler": "gc",
                                        "platform": "linux/amd64"})
        if p.startswith("/_double"):
            return self.control(p)
        if p in ("/api", "/apis"):
            if m != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            if w.sc.get("aggregatedDiscovery", True):
                for mt, params in parse_accept(self.headers.get("Accept")):
                    if mt == "application/json" and params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
                        if params.get("v") == "v2":
                            return self.send_json(200, resources.aggregated(p == "/api"), AGG_V2,
                                                  {"Vary": "Accept"})
                        if params.get("v") == "v2beta1":
                            return self.send_json(200, resources.aggregated(p == "/api", "apidiscovery.k8s.io/v2beta1"),
                                                  AGG_V2BETA1, {"Vary": "Accept"})
            if p == "/api":
                return self.send_json(200, resources.api_versions(w.server_address))
            return self.send_json(200, resources.api_group_list())
        if p == "/openapi/v3":
            return self.send_json(200, resources.openapi_v3_root())
        if p.startswith("/openapi/v3/"):
            rel = p[len("/openapi/v3/"):]
            for g, v in resources.group_versions():
                if resources.openapi_v3_path(g, v) == rel:
                    return self.send_json(200, resources.openapi_v3_doc(g, v, w.sc["version"]),
                                          headers={"Etag": '"%s"' % resources.gv_hash(g, v)})
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        parts = [urllib.parse.unquote(x) for x in p.split("/")[1:]]
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                g = resources.api_group(parts[1])
                if g is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return self.send_json(200, g)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            rl = resources.api_resource_list(group, version)
            if rl is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self.send_json(200, rl)
        legacy_watch = False
        if rest[0] == "watch":
            legacy_watch = True
            rest = rest[1:]
        ns, plural, name, sub = None, None, None, None
        if len(rest) >= 3 and rest[0] == "namespaces" and resources.find(group, version, rest[2]) is not None \
                and resources.find(group, version, rest[2]).namespaced:
            ns, plural = rest[1], rest[2]
            name = rest[3] if len(rest) > 3 else None
            sub = "/".join(rest[4:]) if len(rest) > 4 else None
        else:
            plural = rest[0]
            name = rest[1] if len(rest) > 1 else None
            sub = "/".join(rest[2:]) if len(rest) > 2 else None
        res = resources.find(group, version, plural)
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if legacy_watch:
            self.qs["watch"] = "true"
            if name:
                self.qs["fieldSelector"] = "metadata.name=%s" % name
                name = None
        if ns is not None and not res.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return self.resource(res, ns, name, sub)

    # ---- resources -------------------------------------------------------------------------------
    def manager(self):
        fm = self.qs.get("fieldManager")
        if fm:
            if len(fm) > 128:
                raise err_bad_request("fieldManager: Too long: may not be more than 128 bytes")
            return fm
        ua = self.headers.get("User-Agent") or "unknown"
        return ua.split("/")[0][:128]

    def dry_run(self):
        dr = self.qs.get("dryRun")
        if dr is None:
            return False
        if dr != "All":
            raise err_bad_request('dryRun: Unsupported value: "%s": supported values: "All"' % dr)
        return True

    def json_body(self):
        if not self.body:
            raise err_bad_request("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
        ct = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        try:
            if ct in ("application/yaml", "application/apply-patch+yaml"):
                import yaml
                return json.loads(json.dumps(yaml.safe_load(self.body.decode()), default=str))
            if ct == "application/vnd.kubernetes.protobuf":
                return kproto.decode(self.body)
            return json.loads(self.body)
        except ApiError:
            raise
        except Exception as e:
            raise err_bad_request("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (%s)" % e)

    def wants(self):
        """'table' | 'meta' | 'json' from the Accept header."""
        for mt, params in parse_accept(self.headers.get("Accept")):
            if mt in ("application/json", "*/*", "application/yaml", "application/vnd.kubernetes.protobuf"):
                if params.get("as") == "Table":
                    return "table"
                if params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                    return "meta"
                if "as" not in params and mt != "application/vnd.kubernetes.protobuf":
                    return "json"
            if mt == "application/vnd.kubernetes.protobuf" and not params:
                continue
        return "json"

    def out_obj(self, res, obj, code=200):
        want = self.wants()
        if want == "table" and obj.get("kind") == res.kind:
            return self.send_json(code, resources.to_table(res, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                                           self.qs.get("includeObject", "Metadata")), TABLE_CT)
        if want == "meta" and obj.get("kind") == res.kind:
            return self.send_json(code, {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]},
                                  "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
        return self.send_json(code, obj)

    def resource(self, res, ns, name, sub):
        m = self.command
        w = self.world
        a = w.api
        if sub and sub not in ("status", "scale", "eviction", "log", "binding"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "scale" and res.kind not in ("Deployment", "ReplicaSet"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub in ("eviction", "log", "binding") and res.kind != "Pod":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "status" and not res.status:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            if m in ("GET", "HEAD"):
                self.authorize("watch" if self.qs.get("watch") in ("1", "true", "True") else "list", res, ns, None)
                if self.qs.get("watch") in ("1", "true", "True"):
                    return self.watch(res, ns)
                return self.list(res, ns)
            if m == "POST":
                self.authorize("create", res, ns, None)
                body = self.json_body()
                if res.namespaced and ns is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                out = a.create(res, ns, body, self.manager(), self.dry_run())
                return self.out_obj(res, out, 201)
            if m == "DELETE":
                self.authorize("deletecollection", res, ns, None)
                items, _ = self.select(res, ns)
                dry = self.dry_run()
                opts = self.json_body() if self.body else {}
                for o in items:
                    try:
                        a.delete(res, o["metadata"].get("namespace"), o["metadata"]["name"], opts, dry)
                    except ApiError:
                        pass
                return self.send_json(200, status_success())
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        verb = {"GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}.get(m)
        self.authorize(verb, res, ns, name, sub)
        if sub == "scale":
            return self.scale(res, ns, name)
        if sub == "eviction":
            if m != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            a.get(res, ns, name)
            ev = self.json_body() if self.body else {}
            dopts = (ev.get("deleteOptions") or {}) if isinstance(ev, dict) else {}
            a.delete(res, ns, name, dopts, self.dry_run() or "All" in (dopts.get("dryRun") or []))
            return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
        if sub == "binding":
            body = self.json_body()
            pod = a.get(res, ns, name)
            if (pod.get("spec") or {}).get("nodeName"):
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on pods/binding "%s": pod %s is already assigned to node "%s"' % (
                    name, name, pod["spec"]["nodeName"]))
            new = deepcopy(pod)
            new["spec"]["nodeName"] = (body.get("target") or {}).get("name")
            a._finish_update(res, pod, new, self.manager(), self.dry_run())
            return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
        if sub == "log":
            pod = a.get(res, ns, name)
            cs = (pod.get("status") or {}).get("containerStatuses") or []
            want = self.qs.get("container") or ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
            for c in cs:
                if c.get("name") == want and "waiting" in (c.get("state") or {}):
                    raise err_bad_request('container "%s" in pod "%s" is waiting to start: %s' % (
                        want, name, c["state"]["waiting"].get("reason", "")))
            if not cs:
                raise err_bad_request('container "%s" in pod "%s" is waiting to start: ContainerCreating' % (want, name))
            return self.send_raw(200, b"", "text/plain")
        if m in ("GET", "HEAD"):
            return self.out_obj(res, a.get(res, ns, name))
        if m == "PUT":
            body = self.json_body()
            return self.out_obj(res, a.replace(res, ns, name, body, self.manager(), self.dry_run(), sub))
        if m == "PATCH":
            force = self.qs.get("force") in ("true", "1", "True")
            ct = self.headers.get("Content-Type") or ""
            if force and not ct.startswith("application/apply-patch"):
                raise err_bad_request("force: Forbidden: may not be specified for non-apply patch")
            is_apply = ct.split(";")[0].strip() == "application/apply-patch+yaml"
            # apply requires an explicit fieldManager (the apiserver answers 400 without one)
            mgr = self.qs.get("fieldManager") if is_apply else self.manager()
            existed = w.store.get_ref(res.key, ns or "", name) is not None
            out = a.patch(res, ns, name, ct, self.body, mgr, self.dry_run(), force, sub)
            return self.out_obj(res, out, 201 if is_apply and not existed else 200)
        if m == "DELETE":
            opts = self.json_body() if self.body else {}
            if not isinstance(opts, dict):
                raise err_bad_request("the body of the request was in an unknown format")
            if self.qs.get("propagationPolicy"):
                opts["propagationPolicy"] = self.qs["propagationPolicy"]
            out = a.delete(res, ns, name, opts, self.dry_run() or "All" in (opts.get("dryRun") or []))
            return self.send_json(200, out)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def scale(self, res, ns, name):
        a = self.world.api
        obj = a.get(res, ns, name)

        def to_scale(o):
            ml = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {k: o["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in o["metadata"]},
                    "spec": {"replicas": (o.get("spec") or {}).get("replicas", 1)},
                    "status": {"replicas": (o.get("status") or {}).get("replicas", 0),
                               "selector": ",".join("%s=%s" % kv for kv in sorted(ml.items()))}}
        sc = to_scale(obj)
        if self.command in ("GET", "HEAD"):
            return self.send_json(200, sc)
        if self.command == "PUT":
            new_sc = self.json_body()
        elif self.command == "PATCH":
            import merge
            ct = (self.headers.get("Content-Type") or "").split(";")[0]
            patch = json.loads(self.body or b"{}")
            if ct == "application/json-patch+json":
                new_sc = merge.json_patch(sc, patch)
            elif ct == "application/strategic-merge-patch+json":
                new_sc = merge.strategic_merge_patch(sc, patch)
            else:
                new_sc = merge.merge_patch(sc, patch)
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        replicas = (new_sc.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: Invalid value: %s: must be greater than or equal to 0' % (name, replicas))
        new = deepcopy(obj)
        new["spec"]["replicas"] = replicas
        out, _ = a._finish_update(res, obj, new, self.manager(), self.dry_run(), None,
                                  check_rv=(new_sc.get("metadata") or {}).get("resourceVersion") if self.command == "PUT" else None)
        return self.send_json(200, to_scale(out))

    def select(self, res, ns):
        lsel = parse_label_selector(self.qs.get("labelSelector"))
        fsel = parse_field_selector(self.qs.get("fieldSelector"), res.kind)
        items, rv = self.world.store.items(res.key, ns if res.namespaced else None)
        return [o for o in items if label_matches(lsel, o["metadata"].get("labels")) and field_matches(fsel, o)], rv

    def list(self, res, ns):
        items, rv = self.select(res, ns)
        start = 0
        cont = self.qs.get("continue")
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                after = tok["start"]
                list_rv = int(tok["rv"])
            except Exception:
                raise err_bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
            if list_rv < self.world.store.compacted_rv:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
            keys = [(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in items]
            start = next((i for i, k in enumerate(keys) if list(k) > list(after)), len(items))
            rv = list_rv
        limit = 0
        try:
            limit = int(self.qs.get("limit") or 0)
        except ValueError:
            raise err_bad_request("limit: Invalid value")
        meta = {"resourceVersion": str(rv)}
        page = items[start:]
        if limit > 0 and len(page) > limit:
            page = page[:limit]
            last = page[-1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": rv, "start": [last.get("namespace", ""), last["name"]]}).encode()).decode().rstrip("=")
            meta["remainingItemCount"] = len(items) - start - limit
        want = self.wants()
        if want == "table":
            return self.send_json(200, resources.to_table(res, page, meta, self.qs.get("includeObject", "Metadata")), TABLE_CT)
        if want == "meta":
            return self.send_json(200, {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                                        "items": [{"metadata": o["metadata"]} for o in page]},
                                  "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")
        out = []
        for o in page:
            o2 = dict(o)
            o2.pop("apiVersion", None)
            o2.pop("kind", None)
            out.append(o2)
        body = {"kind": res.kind + "List", "apiVersion": res.api_version, "metadata": meta, "items": out}
        return self.send_json(200, body)

    # ---- watch -----------------------------------------------------------------------------------
    def watch(self, res, ns):
        w = self.world
        store = w.store
        lsel = parse_label_selector(self.qs.get("labelSelector"))
        fsel = parse_field_selector(self.qs.get("fieldSelector"), res.kind)
        rv_s = self.qs.get("resourceVersion", "")
        try:
            rv = int(rv_s) if rv_s not in ("", "0") else None
        except ValueError:
            raise ApiError(400, "BadRequest", 'resourceVersion: Invalid value: "%s": must be an integer' % rv_s)
        try:
            timeout = float(self.qs.get("timeoutSeconds") or 1800)
        except ValueError:
            timeout = 1800
        bookmarks = self.qs.get("allowWatchBookmarks") in ("true", "1")
        initial = self.qs.get("sendInitialEvents") in ("true", "1")
        if initial and not bookmarks:
            raise ApiError(422, "Invalid", "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Required value: allowWatchBookmarks must be set to true when sendInitialEvents is true")
        table = self.wants() == "table"
        want_meta = self.wants() == "meta"
        nsfilter = ns if res.namespaced else None

        def matches(o):
            if o is None:
                return False
            if nsfilter is not None and o["metadata"].get("namespace") != nsfilter:
                return False
            return label_matches(lsel, o["metadata"].get("labels")) and field_matches(fsel, o)

        def enc(typ, o):
            if table and typ != "ERROR" and typ != "BOOKMARK":
                obj = resources.to_table(res, [o], {"resourceVersion": o["metadata"].get("resourceVersion", "")},
                                         self.qs.get("includeObject", "Metadata"))
            elif want_meta and typ not in ("ERROR",):
                obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
            else:
                obj = o
            return (json.dumps({"type": typ, "object": obj}, separators=(",", ":")) + "\n").encode()

        out = []
        with store.lock:
            epoch = store.epoch
            if rv is not None and rv < store.compacted_rv:
                gone = True
            else:
                gone = False
                if rv is None or initial:
                    items, cur = store.items(res.key, nsfilter)
                    for o in items:
                        if matches(o):
                            out.append(enc("ADDED", o))
                    last = cur
                    if initial:
                        out.append(enc("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version, "metadata": {
                            "resourceVersion": str(cur), "annotations": {"k8s.io/initial-events-end": "true"}}}))
                else:
                    last = rv
        if gone and w.sc.get("watchExpiredAsHttpError"):
            raise ApiError(410, "Expired", "too old resource version: %d (%d)" % (rv, store.compacted_rv))
        self.send_response(200)
        self.send_header("Audit-Id", new_uid())
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", TABLE_CT if table else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status = 200

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        if gone:
            st = ApiError(410, "Expired", "too old resource version: %d (%d)" % (rv, store.compacted_rv)).status()
            chunk(json.dumps({"type": "ERROR", "object": st}, separators=(",", ":")).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = False
            return
        for data in out:
            chunk(data)
        deadline = time.monotonic() + timeout
        interval = float(w.sc.get("bookmarkInterval", 5.0))
        last_sent = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            batch = []
            with store.cond:
                if store.epoch != epoch:
                    break
                evs = store.events_since(last)
                if evs is None:
                    st = ApiError(410, "Expired", "too old resource version: %d (%d)" % (last, store.compacted_rv)).status()
                    batch.append(json.dumps({"type": "ERROR", "object": st}, separators=(",", ":")).encode() + b"\n")
                    gone = True
                elif not evs:
                    store.cond.wait(timeout=min(1.0, deadline - now))
                    evs = store.events_since(last) or []
                    if store.epoch != epoch:
                        break
                for ev in (evs or []):
                    last = ev.rv
                    if ev.rkey != res.key:
                        continue
                    now_m, was_m = matches(ev.obj), matches(ev.prev) if ev.type != "ADDED" else False
                    if ev.type == "ADDED" and now_m:
                        batch.append(enc("ADDED", ev.obj))
                    elif ev.type == "DELETED" and was_m:
                        batch.append(enc("DELETED", ev.obj))
                    elif ev.type == "MODIFIED":
                        if now_m and was_m:
                            batch.append(enc("MODIFIED", ev.obj))
                        elif now_m:
                            batch.append(enc("ADDED", ev.obj))
                        elif was_m:
                            batch.append(enc("DELETED", ev.obj))
                cur_rv = store.rv
            for data in batch:
                chunk(data)
            if gone:
                break
            if batch:
                last_sent = time.monotonic()
            elif bookmarks and time.monotonic() - last_sent >= interval:
                chunk(enc("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                       "metadata": {"resourceVersion": str(cur_rv)}}))
                last_sent = time.monotonic()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- test control ----------------------------------------------------------------------------
    def control(self, p):
        w = self.world
        if (self.user or {}).get("readOnly"):
            raise ApiError(403, "Forbidden", "forbidden")
        if p == "/_double/compact" and self.command == "POST":
            w.store.compact()
            return self.send_json(200, {"compactedResourceVersion": str(w.store.compacted_rv)})
        if p == "/_double/end-watches" and self.command == "POST":
            w.store.end_watches()
            return self.send_json(200, {"ok": True})
        if p.startswith("/_double/nodes/") and p.endswith("/ready") and self.command == "POST":
            name = p.split("/")[3]
            st = self.qs.get("status", "True")
            if st not in ("True", "False", "Unknown"):
                raise err_bad_request("status must be True, False or Unknown")
            with w.store.lock:
                if w.store.get_ref(("", "nodes"), "", name) is None:
                    raise ApiError(404, "NotFound", 'nodes "%s" not found' % name)
                w.controller.set_node_ready(name, st)
            return self.send_json(200, {"node": name, "ready": st})
        if p == "/_double/state" and self.command == "GET":
            return self.send_json(200, {"resourceVersion": str(w.store.rv), "compactedResourceVersion": str(w.store.compacted_rv),
                                        "uptimeSeconds": time.time() - w.started})
        raise ApiError(404, "NotFound", "the server could not find the requested resource")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, ctx):
        self.ctx = ctx
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # TLS handshake in the per-connection thread so a slow client cannot block accept()
        try:
            request.settimeout(30)
            tls = self.ctx.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (ssl.SSLError, OSError) as e:
            log("TLS handshake with %s:%s failed: %s" % (client_address[0], client_address[1], e))
            try:
                request.close()
            except OSError:
                pass
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        log("connection error from %s: %s" % (client_address, sys.exc_info()[1]))


def kubeconfig(server, ca_pem, user):
    b64 = lambda b: base64.b64encode(b).decode()
    import yaml
    cfg = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "default", "cluster": {"certificate-authority-data": b64(ca_pem), "server": server}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": user}],
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def write_file(path, text, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Kubernetes API test double (test support for mixop)")
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port (default 127.0.0.1:0)")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--scenario", help="scenario YAML (see README.md); a built-in default is used otherwise")
    ap.add_argument("--pod-ready-delay", type=float, help="override the scenario's podReadyDelay (seconds)")
    ap.add_argument("--san", action="append", default=[],
                    help="extra subject alternative name (DNS name or IP) for the serving certificate; repeatable")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    os.makedirs(args.state_dir, exist_ok=True)
    for stale in ("port",):
        try:
            os.unlink(os.path.join(args.state_dir, stale))
        except FileNotFoundError:
            pass
    sc = scen.load(args.scenario)
    if args.pod_ready_delay is not None:
        sc["podReadyDelay"] = args.pod_ready_delay
    paths = certs.generate(args.state_dir, args.san)
    w = World(sc, args.state_dir)
    tok_path = os.path.join(args.state_dir, "token")
    if os.path.exists(tok_path):
        token = open(tok_path).read().strip()
    else:
        token = "K10" + secrets.token_hex(32) + "::server:" + secrets.token_hex(16)
        write_file(tok_path, token + "\n")
    viewer_token = "viewer-" + secrets.token_hex(16)
    w.users_by_token[token] = {"name": "system:admin", "groups": ["system:masters", "system:authenticated"], "readOnly": False}
    w.users_by_token[viewer_token] = {"name": "viewer", "groups": ["system:authenticated"], "readOnly": True}
    for u in sc.get("users") or []:
        w.users_by_token[str(u["token"])] = {"name": u.get("name", "user"), "groups": u.get("groups", []),
                                             "readOnly": bool(u.get("readOnly", False))}
    w.controller = ctl.Controller(w.api, sc, log)
    w.seed()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths["server.crt"], paths["server.key"])
    ctx.load_verify_locations(paths["ca.crt"])
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    Handler.world = w
    httpd = Server((host, int(port or 0)), Handler, ctx)
    real_port = httpd.server_address[1]
    w.server_address = "%s:%d" % (host, real_port)
    server_url = "https://%s:%d" % (host if ":" not in host else "[%s]" % host, real_port)
    ca_pem = open(paths["ca.crt"], "rb").read()
    write_file(os.path.join(args.state_dir, "kubeconfig"), kubeconfig(server_url, ca_pem, {
        "client-certificate-data": base64.b64encode(open(paths["client-admin.crt"], "rb").read()).decode(),
        "client-key-data": base64.b64encode(open(paths["client-admin.key"], "rb").read()).decode()}))
    write_file(os.path.join(args.state_dir, "kubeconfig-token"), kubeconfig(server_url, ca_pem, {"token": token}))
    write_file(os.path.join(args.state_dir, "kubeconfig-viewer"), kubeconfig(server_url, ca_pem, {"token": viewer_token}))
    w.controller.start()

    def stop(signum, frame):
        log("signal %d: shutting down" % signum)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_file(os.path.join(args.state_dir, "port"), "%d\n" % real_port, 0o644)
    log("serving %s (state dir %s, %d nodes, distribution %s %s)" % (
        server_url, args.state_dir, len(sc.get("nodes") or []), sc["distribution"], sc["version"]))
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        w.controller.stop()
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
