"""A tiny control plane: deployment, replicaset and daemonset controllers, scheduler, kubelets, node lifecycle,
garbage collector and namespace deletion. Runs in one thread, a reconcile pass every 100 ms."""
import fnmatch
import math
import threading
import time
import traceback

import resources
import scenario as scen
from labelsel import label_matches, selector_from_label_selector
from util import ApiError, canon, deepcopy, fnv32a, rand_hex, rand_suffix, rfc3339, safe_encode

R = resources.BY_KEY
NODES, PODS, EVENTS = R[("", "nodes")], R[("", "pods")], R[("", "events")]
DEPLOY, RS, NS, LEASES = R[("apps", "deployments")], R[("apps", "replicasets")], R[("", "namespaces")], R[("coordination.k8s.io", "leases")]
DS = R[("apps", "daemonsets")]

# What the DaemonSet controller adds to every daemon pod (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations):
# survive NotReady/unreachable NoExecute forever, and ignore the condition taints and cordoning.
DS_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
DS_TOLERATION_HOSTNET = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}

ANN_READY_DELAY = "kube-double.mixop.dev/ready-delay"
ANN_NEVER_READY = "kube-double.mixop.dev/never-ready"


def _cond(obj, typ):
    for c in ((obj.get("status") or {}).get("conditions") or []):
        if c.get("type") == typ:
            return c
    return None


def node_ready(n):
    c = _cond(n, "Ready")
    return c.get("status") if c else "Unknown"


def tolerates(tols, taint):
    for t in tols or []:
        if not isinstance(t, dict):
            continue
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if op == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expr_matches(e, labels):
    op, key, vals = e.get("operator"), e.get("key"), e.get("values") or []
    has, v = key in labels, labels.get(key)
    if op == "In":
        return has and v in vals
    if op == "NotIn":
        return not has or v not in vals
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    try:
        if op == "Gt":
            return has and int(v) > int(vals[0])
        if op == "Lt":
            return has and int(v) < int(vals[0])
    except (ValueError, IndexError, TypeError):
        return False
    return False


def affinity_matches(pod, node):
    labels = node["metadata"].get("labels") or {}
    spec = pod.get("spec") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = req.get("nodeSelectorTerms")
    if terms:
        ok = False
        for t in terms:
            exprs = t.get("matchExpressions") or []
            fields = t.get("matchFields") or []
            if not exprs and not fields:
                continue
            if all(_expr_matches(e, labels) for e in exprs) and all(
                    _expr_matches(e, {"metadata.name": node["metadata"]["name"]}) for e in fields):
                ok = True
                break
        if not ok:
            return False
    return True


def _intstr(v, total, round_up):
    if isinstance(v, str) and v.endswith("%"):
        try:
            p = int(v[:-1])
        except ValueError:
            return 0
        x = total * p / 100.0
        return int(math.ceil(x)) if round_up else int(math.floor(x))
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


class Controller(threading.Thread):
    def __init__(self, api, sc, log):
        super().__init__(daemon=True, name="kube-double-controller")
        self.api = api
        self.store = api.store
        self.sc = sc
        self.log = log
        self.t0 = time.monotonic()
        self.stop_ev = threading.Event()
        self.pod_state = {}       # pod uid -> {"bound": t, "stage": str, "ip": str}
        self.sched_msg = {}       # pod uid -> last FailedScheduling message
        self.progress = {}        # deployment uid -> (signature, monotonic time of last progress)
        self.ip_next = {}         # node name -> next host octet
        self.timeline = []        # (at, node, status) still to happen
        self.lease_t = 0.0
        for n in sc.get("nodes") or []:
            if n.get("readyAfter") is not None:
                self.timeline.append((float(n["readyAfter"]), n["name"], "True"))
            if n.get("notReadyAfter") is not None:
                self.timeline.append((float(n["notReadyAfter"]), n["name"], "False"))
        for ev in sc.get("timeline") or []:
            r = ev.get("ready", True)
            st = "Unknown" if str(r).lower() == "unknown" else ("True" if r in (True, "true", "True") else "False")
            self.timeline.append((float(ev.get("after", 0)), ev.get("node"), st))
        self.timeline.sort(key=lambda x: x[0])
        self.node_spec = {n["name"]: n for n in sc.get("nodes") or []}

    def stop(self):
        self.stop_ev.set()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                with self.store.lock:
                    self.reconcile()
            except Exception:
                self.log("controller error:\n" + traceback.format_exc())
            self.stop_ev.wait(0.1)

    # ---- helpers ---------------------------------------------------------------------------------
    def elapsed(self):
        return time.monotonic() - self.t0

    def write(self, res, old, new, manager, status=False):
        try:
            out, changed = self.api._finish_update(res, old, new, manager, False, "status" if status else None)
            return out
        except ApiError as e:
            self.log("controller write %s %s failed: %s" % (res.kind, old["metadata"].get("name"), e.message))
            return old

    def event(self, obj, res, typ, reason, message, component, host=None, field_path=None):
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        for ev in self.store.items(EVENTS.key, ns)[0]:
            io = ev.get("involvedObject") or {}
            if io.get("uid") == md.get("uid") and ev.get("reason") == reason and ev.get("message") == message:
                new = deepcopy(ev)
                new["count"] = ev.get("count", 1) + 1
                new["lastTimestamp"] = rfc3339()
                self.write(EVENTS, deepcopy(ev), new, component)
                return
        io = {"kind": res.kind, "namespace": md.get("namespace"), "name": md["name"], "uid": md.get("uid"),
              "apiVersion": res.api_version, "resourceVersion": md.get("resourceVersion")}
        if res.kind == "Node":
            io = {"kind": "Node", "name": md["name"], "uid": md["name"], "apiVersion": "v1"}
        if not io.get("namespace"):
            io.pop("namespace", None)
        if field_path:
            io["fieldPath"] = field_path
        ts = rfc3339()
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": "%s.%x" % (md["name"], time.time_ns()), "namespace": ns},
              "involvedObject": io, "reason": reason, "message": message,
              "source": {"component": component}, "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
              "type": typ, "eventTime": None, "reportingComponent": component, "reportingInstance": host or ""}
        if host:
            ev["source"]["host"] = host
        try:
            self.api.create(EVENTS, ns, ev, component)
        except ApiError as e:
            self.log("event create failed: %s" % e.message)

    def owned(self, res, ns, uid):
        return [o for o in self.store.items(res.key, ns)[0]
                if any(r.get("uid") == uid and r.get("controller") for r in o["metadata"].get("ownerReferences") or [])]

    def kubelet_manager(self, node):
        spec = self.node_spec.get(node["metadata"]["name"], {})
        d = scen.DIST[self.sc["distribution"]]
        return d["win_manager"] if spec.get("os") == "windows" or (node["metadata"].get("labels") or {}).get(
            "kubernetes.io/os") == "windows" else d["linux_manager"]

    # ---- reconcile -------------------------------------------------------------------------------
    def reconcile(self):
        self.node_lifecycle()
        self.namespaces()
        self.garbage_collect()
        for d in list(self.store.items(DEPLOY.key)[0]):
            self.deployment(d)
        for rs in list(self.store.items(RS.key)[0]):
            self.replicaset(rs)
        for ds in list(self.store.items(DS.key)[0]):
            self.daemonset(ds)
        self.schedule()
        self.kubelets()
        for rs in list(self.store.items(RS.key)[0]):
            self.rs_status(rs)
        for ds in list(self.store.items(DS.key)[0]):
            self.daemonset_status(ds)
        for d in list(self.store.items(DEPLOY.key)[0]):
            self.deployment_status(d)
        self.leases()

    def set_node_ready(self, name, status):
        n = self.store.get(NODES.key, "", name)
        if n is None:
            return
        old = deepcopy(n)
        if node_ready(n) == status:
            return
        ts = rfc3339()
        conds = [c for c in n["status"].get("conditions") or [] if c.get("type") != "Ready"]
        if status == "Unknown":
            conds = scen.pressure_conditions(ts, True)
        elif any(c.get("status") == "Unknown" for c in conds):
            conds = scen.pressure_conditions(ts, False)
        conds.append(scen.ready_condition(status, ts, self.node_spec.get(name)))
        n["status"]["conditions"] = conds
        new = self.write(NODES, old, n, self.kubelet_manager(n) if status == "True" else "k3s", status=True)
        if status == "True":
            self.event(new, NODES, "Normal", "NodeReady", "Node %s status is now: NodeReady" % name, "kubelet", name)
        else:
            self.event(new, NODES, "Normal", "NodeNotReady", "Node %s status is now: NodeNotReady" % name, "node-controller")

    def node_lifecycle(self):
        el = self.elapsed()
        while self.timeline and self.timeline[0][0] <= el:
            _, name, st = self.timeline.pop(0)
            self.set_node_ready(name, st)
        for n in list(self.store.items(NODES.key)[0]):
            ready = node_ready(n)
            want = []
            if ready == "False":
                want.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
            elif ready == "Unknown":
                want.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"})
            if (n.get("spec") or {}).get("unschedulable"):
                want.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
            system = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "node.kubernetes.io/unschedulable"}
            cur = (n.get("spec") or {}).get("taints") or []
            keep = [t for t in cur if not (t.get("key") in system and t.get("effect") == "NoSchedule")]
            sys_cur = [t for t in cur if t.get("key") in system and t.get("effect") == "NoSchedule"]
            if canon(sorted(sys_cur, key=canon)) == canon(sorted(want, key=canon)):
                continue
            new = deepcopy(n)
            taints = keep + want
            if taints:
                new["spec"]["taints"] = taints
            else:
                new["spec"].pop("taints", None)
            self.write(NODES, deepcopy(n), new, "k3s")

    def namespaces(self):
        for ns in list(self.store.items(NS.key)[0]):
            if not ns["metadata"].get("deletionTimestamp"):
                continue
            name = ns["metadata"]["name"]
            for r in resources.RESOURCES:
                if r.namespaced:
                    for o in list(self.store.items(r.key, name)[0]):
                        self.store.remove(r.key, name, o["metadata"]["name"])
            self.store.remove(NS.key, "", name)

    def garbage_collect(self):
        uids = set()
        allobj = self.store.all_items()
        for _, o in allobj:
            uids.add(o["metadata"].get("uid"))
        for rkey, o in allobj:
            refs = o["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in uids for r in refs):
                md = o["metadata"]
                self.store.remove(rkey, md.get("namespace", ""), md["name"])
                self.pod_state.pop(md.get("uid"), None)

    # ---- deployment controller -------------------------------------------------------------------
    def template_hash(self, d):
        tpl = (d.get("spec") or {}).get("template") or {}
        cc = (d.get("status") or {}).get("collisionCount", 0)
        return safe_encode(fnv32a((canon(tpl) + (str(cc) if cc else "")).encode()))

    def deployment(self, d):
        md = d["metadata"]
        if md.get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        ns = md["namespace"]
        h = self.template_hash(d)
        desired = spec.get("replicas", 1)
        rss = self.owned(RS, ns, md["uid"])
        new_rs = next((r for r in rss if (r["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        revs = [int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0") or 0) for r in rss]
        surge = _intstr(((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%"), desired, True)
        if new_rs is None:
            tpl = deepcopy(spec.get("template") or {})
            tmd = tpl.setdefault("metadata", {})
            tmd.setdefault("labels", {})["pod-template-hash"] = h
            sel = deepcopy(spec.get("selector") or {})
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            rev = (max(revs) if revs else 0) + 1
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": {"name": "%s-%s" % (md["name"], h), "namespace": ns,
                               "labels": dict(tmd["labels"]),
                               "annotations": {"deployment.kubernetes.io/desired-replicas": str(desired),
                                               "deployment.kubernetes.io/max-replicas": str(desired + surge),
                                               "deployment.kubernetes.io/revision": str(rev)},
                               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": md["name"],
                                                    "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]},
                  "spec": {"replicas": desired, "selector": sel, "template": tpl,
                           **({"minReadySeconds": spec["minReadySeconds"]} if spec.get("minReadySeconds") else {})}}
            try:
                new_rs = self.api.create(RS, ns, rs, "k3s")
            except ApiError as e:
                self.log("replicaset create failed: %s" % e.message)
                return
            self.progress[md["uid"]] = ("new", time.monotonic())
            self.event(d, DEPLOY, "Normal", "ScalingReplicaSet",
                       "Scaled up replica set %s from 0 to %d" % (new_rs["metadata"]["name"], desired), "deployment-controller")
            nd = deepcopy(d)
            nd["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(rev)
            d = self.write(DEPLOY, deepcopy(d), nd, "k3s")
        else:
            cur = (new_rs.get("spec") or {}).get("replicas", 1)
            ann = new_rs["metadata"].get("annotations") or {}
            if cur != desired or ann.get("deployment.kubernetes.io/desired-replicas") != str(desired):
                nr = deepcopy(new_rs)
                nr["spec"]["replicas"] = desired
                nr["metadata"].setdefault("annotations", {}).update({
                    "deployment.kubernetes.io/desired-replicas": str(desired),
                    "deployment.kubernetes.io/max-replicas": str(desired + surge)})
                self.write(RS, deepcopy(new_rs), nr, "k3s")
                if cur != desired:
                    self.event(d, DEPLOY, "Normal", "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d" % (
                        "up" if desired > cur else "down", new_rs["metadata"]["name"], cur, desired), "deployment-controller")
            rev = ann.get("deployment.kubernetes.io/revision")
            if rev and (d["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") != rev:
                nd = deepcopy(d)
                nd["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = rev
                self.write(DEPLOY, deepcopy(d), nd, "k3s")
        for r in rss:
            if r["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                continue
            cur = (r.get("spec") or {}).get("replicas", 1)
            if cur:
                nr = deepcopy(r)
                nr["spec"]["replicas"] = 0
                self.write(RS, deepcopy(r), nr, "k3s")
                self.event(d, DEPLOY, "Normal", "ScalingReplicaSet",
                           "Scaled down replica set %s from %d to 0" % (r["metadata"]["name"], cur), "deployment-controller")
        # revisionHistoryLimit
        limit = spec.get("revisionHistoryLimit", 10)
        old = sorted([r for r in self.owned(RS, ns, md["uid"]) if r["metadata"]["uid"] != new_rs["metadata"]["uid"]
                      and not (r.get("spec") or {}).get("replicas") and not (r.get("status") or {}).get("replicas")],
                     key=lambda r: int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0") or 0))
        while len(old) > limit:
            r = old.pop(0)
            self.store.remove(RS.key, ns, r["metadata"]["name"])

    def replicaset(self, rs):
        md = rs["metadata"]
        if md.get("deletionTimestamp"):
            return
        ns = md["namespace"]
        want = (rs.get("spec") or {}).get("replicas", 1)
        pods = [p for p in self.owned(PODS, ns, md["uid"]) if not p["metadata"].get("deletionTimestamp")]
        if len(pods) < want:
            tpl = (rs.get("spec") or {}).get("template") or {}
            for _ in range(want - len(pods)):
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"generateName": md["name"] + "-", "namespace": ns,
                                    "labels": dict((tpl.get("metadata") or {}).get("labels") or {}),
                                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": md["name"],
                                                         "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]},
                       "spec": deepcopy(tpl.get("spec") or {})}
                if (tpl.get("metadata") or {}).get("annotations"):
                    pod["metadata"]["annotations"] = dict(tpl["metadata"]["annotations"])
                try:
                    p = self.api.create(PODS, ns, pod, "k3s")
                except ApiError as e:
                    self.event(rs, RS, "Warning", "FailedCreate", "Error creating: %s" % e.message, "replicaset-controller")
                    return
                self.event(rs, RS, "Normal", "SuccessfulCreate", "Created pod: %s" % p["metadata"]["name"], "replicaset-controller")
        elif len(pods) > want:
            def rank(p):
                st = p.get("status") or {}
                return (bool((p.get("spec") or {}).get("nodeName")), st.get("phase") == "Running",
                        bool(_cond(p, "Ready") and _cond(p, "Ready").get("status") == "True"))
            for p in sorted(pods, key=rank)[:len(pods) - want]:
                self.store.remove(PODS.key, ns, p["metadata"]["name"])
                self.pod_state.pop(p["metadata"]["uid"], None)
                self.event(rs, RS, "Normal", "SuccessfulDelete", "Deleted pod: %s" % p["metadata"]["name"], "replicaset-controller")

    def rs_status(self, rs):
        md = rs["metadata"]
        pods = [p for p in self.owned(PODS, md["namespace"], md["uid"]) if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in pods if (_cond(p, "Ready") or {}).get("status") == "True")
        reqs = selector_from_label_selector((rs.get("spec") or {}).get("selector"))
        st = {"replicas": len(pods), "observedGeneration": md.get("generation", 1)}
        fl = sum(1 for p in pods if label_matches(reqs, p["metadata"].get("labels")))
        if fl:
            st["fullyLabeledReplicas"] = fl
        if ready:
            st["readyReplicas"] = ready
            st["availableReplicas"] = ready
        if canon(st) != canon(rs.get("status") or {}):
            new = deepcopy(rs)
            new["status"] = st
            self.write(RS, deepcopy(rs), new, "k3s", status=True)

    def deployment_status(self, d):
        md = d["metadata"]
        if md.get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        ns = md["namespace"]
        desired = spec.get("replicas", 1)
        h = self.template_hash(d)
        rss = self.owned(RS, ns, md["uid"])
        new_rs = next((r for r in rss if (r["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        if new_rs is None:
            return
        allpods, newpods = [], []
        for r in rss:
            ps = [p for p in self.owned(PODS, ns, r["metadata"]["uid"]) if not p["metadata"].get("deletionTimestamp")]
            allpods += ps
            if r is new_rs:
                newpods = ps
        ready = sum(1 for p in allpods if (_cond(p, "Ready") or {}).get("status") == "True")
        available = ready
        maxu = _intstr(((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%"), desired, False)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            maxu = 0
        st = {"observedGeneration": md.get("generation", 1)}
        if allpods:
            st["replicas"] = len(allpods)
        if newpods:
            st["updatedReplicas"] = len(newpods)
        if ready:
            st["readyReplicas"] = ready
        if available:
            st["availableReplicas"] = available
        if desired - available > 0:
            st["unavailableReplicas"] = desired - available
        old_st = d.get("status") or {}
        if old_st.get("collisionCount"):
            st["collisionCount"] = old_st["collisionCount"]
        now = rfc3339()
        old_conds = {c.get("type"): c for c in old_st.get("conditions") or []}

        def cond(typ, status, reason, msg):
            o = old_conds.get(typ)
            c = {"type": typ, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": msg}
            if o:
                if o.get("status") == status:
                    c["lastTransitionTime"] = o.get("lastTransitionTime", now)
                if o.get("status") == status and o.get("reason") == reason and o.get("message") == msg:
                    c["lastUpdateTime"] = o.get("lastUpdateTime", now)
            return c

        if available >= desired - maxu:
            ac = cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            ac = cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        rsn = new_rs["metadata"]["name"]
        sig = (len(newpods), ready, len(allpods))
        prev = self.progress.get(md["uid"])
        if prev is None or prev[0] != sig:
            self.progress[md["uid"]] = (sig, time.monotonic())
            since = 0.0
        else:
            since = time.monotonic() - prev[1]
        complete = len(newpods) == desired and available == desired and len(allpods) == desired
        old_p = old_conds.get("Progressing") or {}
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            pc = cond("Progressing", "True", "NewReplicaSetAvailable", 'ReplicaSet "%s" has successfully progressed.' % rsn)
        elif old_p.get("reason") == "ProgressDeadlineExceeded" and old_p.get("message", "").startswith('ReplicaSet "%s"' % rsn) and since > 0:
            pc = cond("Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "%s" has timed out progressing.' % rsn)
        elif since > deadline:
            pc = cond("Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "%s" has timed out progressing.' % rsn)
            self.event(d, DEPLOY, "Warning", "ProgressDeadlineExceeded", 'ReplicaSet "%s" has timed out progressing.' % rsn, "deployment-controller") \
                if old_p.get("reason") != "ProgressDeadlineExceeded" else None
        elif not old_p or (old_p.get("reason") == "NewReplicaSetCreated" and old_p.get("message") == 'Created new replica set "%s"' % rsn and not newpods):
            pc = cond("Progressing", "True", "NewReplicaSetCreated", 'Created new replica set "%s"' % rsn)
        else:
            pc = cond("Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "%s" is progressing.' % rsn)
        st["conditions"] = [ac, pc]
        if canon(st) != canon(old_st):
            new = deepcopy(d)
            new["status"] = st
            self.write(DEPLOY, deepcopy(d), new, "k3s", status=True)

    # ---- daemonset controller --------------------------------------------------------------------
    def daemon_pod_spec(self, ds, node_name=None):
        """The template's pod spec as the DaemonSet controller creates it: its tolerations added and, for a
        given node, the required node affinity replaced by a matchFields term on metadata.name."""
        spec = deepcopy((((ds.get("spec") or {}).get("template") or {}).get("spec")) or {})
        tols = spec.setdefault("tolerations", [])
        extra = DS_TOLERATIONS + ([DS_TOLERATION_HOSTNET] if spec.get("hostNetwork") else [])
        for t in extra:
            tols[:] = [x for x in tols if not (isinstance(x, dict) and x.get("key") == t["key"] and x.get("effect") == t["effect"])]
            tols.append(dict(t))
        if node_name is not None:
            aff = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
            aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
        return spec

    def should_run(self, ds, node):
        """(shouldRun, shouldContinueRunning) as NodeShouldRunDaemonPod: nodeName, node affinity/selector, then
        taints (NoSchedule and NoExecute; a pod already there stays unless a NoExecute taint is untolerated)."""
        pod = {"spec": self.daemon_pod_spec(ds)}
        nn = pod["spec"].get("nodeName")
        if nn and nn != node["metadata"]["name"]:
            return False, False
        if not affinity_matches(pod, node):
            return False, False
        tols = pod["spec"]["tolerations"]
        taints = (node.get("spec") or {}).get("taints") or []
        if any(t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tols, t) for t in taints):
            return False, not any(t.get("effect") == "NoExecute" and not tolerates(tols, t) for t in taints)
        return True, True

    @staticmethod
    def daemon_pod_node(p):
        spec = p.get("spec") or {}
        if spec.get("nodeName"):
            return spec["nodeName"]
        req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        for t in req.get("nodeSelectorTerms") or []:
            for f in t.get("matchFields") or []:
                if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                    return f["values"][0]
        return None

    def daemon_pods_by_node(self, ds):
        md = ds["metadata"]
        by_node = {}
        for p in self.owned(PODS, md["namespace"], md["uid"]):
            if p["metadata"].get("deletionTimestamp"):
                continue
            by_node.setdefault(self.daemon_pod_node(p), []).append(p)
        for ps in by_node.values():
            ps.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        return by_node

    @staticmethod
    def _pod_ready(p):
        return (_cond(p, "Ready") or {}).get("status") == "True"

    def _delete_daemon_pod(self, ds, p):
        self.store.remove(PODS.key, p["metadata"]["namespace"], p["metadata"]["name"])
        self.pod_state.pop(p["metadata"]["uid"], None)
        self.event(ds, DS, "Normal", "SuccessfulDelete", "Deleted pod: %s" % p["metadata"]["name"], "daemonset-controller")

    def daemonset(self, ds):
        md = ds["metadata"]
        if md.get("deletionTimestamp"):
            return
        ns = md["namespace"]
        spec = ds.get("spec") or {}
        h = self.template_hash(ds)
        by_node = self.daemon_pods_by_node(ds)
        nodes = list(self.store.items(NODES.key)[0])
        tpl = spec.get("template") or {}
        for n in nodes:
            nn = n["metadata"]["name"]
            run, keep = self.should_run(ds, n)
            pods = by_node.get(nn) or []
            if not keep:
                for p in pods:
                    self._delete_daemon_pod(ds, p)
                continue
            for p in pods[1:]:  # one daemon pod per node: the oldest stays
                self._delete_daemon_pod(ds, p)
            if pods or not run:
                continue
            labels = dict((tpl.get("metadata") or {}).get("labels") or {})
            labels["controller-revision-hash"] = h
            labels["pod-template-generation"] = str(md.get("generation", 1))
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"generateName": md["name"] + "-", "namespace": ns, "labels": labels,
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": md["name"],
                                                     "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]},
                   "spec": self.daemon_pod_spec(ds, nn)}
            if (tpl.get("metadata") or {}).get("annotations"):
                pod["metadata"]["annotations"] = dict(tpl["metadata"]["annotations"])
            try:
                p = self.api.create(PODS, ns, pod, "k3s")
            except ApiError as e:
                self.event(ds, DS, "Warning", "FailedCreate", "Error creating: %s" % e.message, "daemonset-controller")
                return
            self.event(ds, DS, "Normal", "SuccessfulCreate", "Created pod: %s" % p["metadata"]["name"], "daemonset-controller")
        # RollingUpdate (maxSurge 0): replace outdated pods, at most maxUnavailable of the nodes unavailable at once.
        # OnDelete leaves outdated pods until someone deletes them.
        us = spec.get("updateStrategy") or {}
        if us.get("type", "RollingUpdate") != "RollingUpdate":
            return
        by_node = self.daemon_pods_by_node(ds)
        wanted = [n["metadata"]["name"] for n in nodes if self.should_run(ds, n)[0]]
        maxu = max(1, _intstr((us.get("rollingUpdate") or {}).get("maxUnavailable", 1), len(wanted), True)) if wanted else 0
        unavailable = sum(1 for nn in wanted if not by_node.get(nn) or not self._pod_ready(by_node[nn][0]))
        for nn in wanted:
            pods = by_node.get(nn) or []
            if not pods or (pods[0]["metadata"].get("labels") or {}).get("controller-revision-hash") == h:
                continue
            if not self._pod_ready(pods[0]):
                self._delete_daemon_pod(ds, pods[0])
            elif unavailable < maxu:
                unavailable += 1
                self._delete_daemon_pod(ds, pods[0])

    def daemonset_status(self, ds):
        md = ds["metadata"]
        if md.get("deletionTimestamp"):
            return
        h = self.template_hash(ds)
        by_node = self.daemon_pods_by_node(ds)
        desired = current = mis = ready = available = updated = 0
        for n in self.store.items(NODES.key)[0]:
            run, _ = self.should_run(ds, n)
            pods = by_node.get(n["metadata"]["name"]) or []
            if not run:
                if pods:
                    mis += 1
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            p = pods[0]
            if self._pod_ready(p):
                ready += 1
                available += 1  # minReadySeconds is not modelled, as for Deployments
            if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == h:
                updated += 1
        st = {"currentNumberScheduled": current, "numberMisscheduled": mis, "desiredNumberScheduled": desired,
              "numberReady": ready, "observedGeneration": md.get("generation", 1)}
        if updated:
            st["updatedNumberScheduled"] = updated
        if available:
            st["numberAvailable"] = available
        if desired - available > 0:
            st["numberUnavailable"] = desired - available
        old_st = ds.get("status") or {}
        if old_st.get("collisionCount"):
            st["collisionCount"] = old_st["collisionCount"]
        if canon(st) != canon(old_st):
            new = deepcopy(ds)
            new["status"] = st
            self.write(DS, deepcopy(ds), new, "k3s", status=True)

    # ---- scheduler -------------------------------------------------------------------------------
    def schedule(self):
        nodes = list(self.store.items(NODES.key)[0])
        for p in list(self.store.items(PODS.key)[0]):
            spec = p.get("spec") or {}
            if spec.get("nodeName") or p["metadata"].get("deletionTimestamp"):
                continue
            if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                continue
            if (p.get("status") or {}).get("phase") not in (None, "Pending"):
                continue
            feasible, reasons = [], {}
            tols = spec.get("tolerations") or []
            for n in nodes:
                nspec = n.get("spec") or {}
                reason = None
                if nspec.get("unschedulable") and not tolerates(tols, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
                    reason = "node(s) were unschedulable"
                if reason is None:
                    for t in nspec.get("taints") or []:
                        if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tols, t):
                            reason = "node(s) had untolerated taint {%s: %s}" % (t.get("key"), t.get("value", ""))
                            break
                if reason is None and not affinity_matches(p, n):
                    reason = "node(s) didn't match Pod's node affinity/selector"
                if reason is None:
                    feasible.append(n)
                else:
                    reasons[reason] = reasons.get(reason, 0) + 1
            if feasible:
                counts = {}
                for q in self.store.items(PODS.key)[0]:
                    nn = (q.get("spec") or {}).get("nodeName")
                    if nn:
                        counts[nn] = counts.get(nn, 0) + 1
                n = sorted(feasible, key=lambda x: (counts.get(x["metadata"]["name"], 0), x["metadata"]["name"]))[0]
                self.bind(p, n)
            else:
                total = len(nodes)
                if total == 0:
                    msg = "no nodes available to schedule pods"
                else:
                    parts = sorted("%d %s" % (c, r) for r, c in reasons.items())
                    msg = ("0/%d nodes are available: %s. preemption: 0/%d nodes are available: %d Preemption is not "
                           "helpful for scheduling." % (total, ", ".join(parts), total, total))
                uid = p["metadata"]["uid"]
                if self.sched_msg.get(uid) != msg:
                    self.sched_msg[uid] = msg
                    new = deepcopy(p)
                    st = new.setdefault("status", {})
                    st["phase"] = "Pending"
                    st["conditions"] = [{"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                                         "lastTransitionTime": rfc3339(), "reason": "Unschedulable", "message": msg}]
                    p = self.write(PODS, deepcopy(p), new, "k3s", status=True)
                    self.event(p, PODS, "Warning", "FailedScheduling", msg, "default-scheduler")

    def bind(self, p, n):
        nn = n["metadata"]["name"]
        new = deepcopy(p)
        new["spec"]["nodeName"] = nn
        p2 = self.write(PODS, deepcopy(p), new, "k3s")
        new = deepcopy(p2)
        st = new.setdefault("status", {})
        conds = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": rfc3339()})
        st["conditions"] = conds
        p3 = self.write(PODS, deepcopy(p2), new, "k3s", status=True)
        self.sched_msg.pop(p["metadata"]["uid"], None)
        self.event(p3, PODS, "Normal", "Scheduled", "Successfully assigned %s/%s to %s" % (
            p["metadata"]["namespace"], p["metadata"]["name"], nn), "default-scheduler")

    # ---- kubelets --------------------------------------------------------------------------------
    def _pull_fails(self, image):
        for pat in self.sc.get("imagePullFailures") or []:
            if fnmatch.fnmatchcase(image, str(pat)):
                return True
        return False

    def _pod_ip(self, node):
        name = node["metadata"]["name"]
        cidr = (node.get("spec") or {}).get("podCIDR") or "10.42.0.0/24"
        base = cidr.split("/")[0].rsplit(".", 1)[0]
        o = self.ip_next.get(name, 2)
        self.ip_next[name] = o + 1 if o < 254 else 2
        return "%s.%d" % (base, o)

    def kubelets(self):
        nodes = {n["metadata"]["name"]: n for n in self.store.items(NODES.key)[0]}
        now_m = time.monotonic()
        for p in list(self.store.items(PODS.key)[0]):
            md, spec = p["metadata"], p.get("spec") or {}
            nn = spec.get("nodeName")
            if not nn or md.get("deletionTimestamp"):
                continue
            node = nodes.get(nn)
            if node is None:
                continue
            uid = md["uid"]
            ps = self.pod_state.get(uid)
            host_ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"), "")
            mgr = self.kubelet_manager(node)
            nready = node_ready(node) == "True"
            containers = spec.get("containers") or []
            if ps is None:
                if not nready:
                    continue
                ps = self.pod_state[uid] = {"bound": now_m, "stage": "creating"}
                new = deepcopy(p)
                st = new.setdefault("status", {})
                ts = rfc3339()
                names = " ".join(c.get("name", "") for c in containers)
                st.update({"phase": "Pending", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "startTime": ts})
                st["conditions"] = [
                    {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None, "lastTransitionTime": ts},
                    {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": ts},
                    {"type": "Ready", "status": "False", "lastProbeTime": None, "lastTransitionTime": ts,
                     "reason": "ContainersNotReady", "message": "containers with unready status: [%s]" % names},
                    {"type": "ContainersReady", "status": "False", "lastProbeTime": None, "lastTransitionTime": ts,
                     "reason": "ContainersNotReady", "message": "containers with unready status: [%s]" % names},
                ] + [c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"]
                st["containerStatuses"] = [{"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": False,
                                            "restartCount": 0, "started": False,
                                            "state": {"waiting": {"reason": "ContainerCreating"}}} for c in containers]
                p = self.write(PODS, deepcopy(p), new, mgr, status=True)
                for c in containers:
                    self.event(p, PODS, "Normal", "Pulling", 'Pulling image "%s"' % c.get("image"), "kubelet", nn,
                               "spec.containers{%s}" % c.get("name"))
                continue
            delay = float(self.sc.get("podReadyDelay", 1.0))
            try:
                delay = float((md.get("annotations") or {}).get(ANN_READY_DELAY, delay))
            except ValueError:
                pass
            age = now_m - ps["bound"]
            if ps["stage"] == "creating" and age >= delay and nready:
                failing = [c for c in containers if self._pull_fails(c.get("image", ""))]
                new = deepcopy(p)
                st = new["status"]
                ts = rfc3339()
                if failing:
                    ps["stage"] = "errimagepull"
                    ps["t"] = now_m
                    for cs in st.get("containerStatuses") or []:
                        c = next((x for x in failing if x.get("name") == cs.get("name")), None)
                        if c is not None:
                            cs["state"] = {"waiting": {"reason": "ErrImagePull", "message": self._pull_msg(c.get("image"))}}
                    p = self.write(PODS, deepcopy(p), new, mgr, status=True)
                    for c in failing:
                        fp = "spec.containers{%s}" % c.get("name")
                        self.event(p, PODS, "Warning", "Failed", 'Failed to pull image "%s": %s' % (c.get("image"), self._pull_msg(c.get("image"))), "kubelet", nn, fp)
                        self.event(p, PODS, "Warning", "Failed", "Error: ErrImagePull", "kubelet", nn, fp)
                    continue
                ps["stage"] = "running"
                ip = ps.setdefault("ip", self._pod_ip(node))
                never = str((md.get("annotations") or {}).get(ANN_NEVER_READY, "")).lower() == "true"
                st["phase"] = "Running"
                st["podIP"] = ip
                st["podIPs"] = [{"ip": ip}]
                for c in st.get("conditions") or []:
                    if c["type"] in ("PodReadyToStartContainers",) or (c["type"] in ("Ready", "ContainersReady") and not never):
                        c["status"] = "True"
                        c["lastTransitionTime"] = ts
                        c.pop("reason", None)
                        c.pop("message", None)
                css = []
                for c in containers:
                    img = c.get("image", "")
                    ref = img if "/" in img.split(":")[0] and "." in img.split("/")[0] else "docker.io/" + ("library/" + img if "/" not in img else img)
                    css.append({"name": c.get("name"), "image": ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest",
                                "imageID": "%s@sha256:%s" % (ref.split(":")[0] if ":" in ref.rsplit("/", 1)[-1] else ref, rand_hex(64)),
                                "containerID": "containerd://" + rand_hex(64), "ready": not never, "restartCount": 0,
                                "started": True, "state": {"running": {"startedAt": ts}}})
                st["containerStatuses"] = css
                p = self.write(PODS, deepcopy(p), new, mgr, status=True)
                for c in containers:
                    fp = "spec.containers{%s}" % c.get("name")
                    ms = int(delay * 1000 * 0.8) or 1
                    self.event(p, PODS, "Normal", "Pulled", 'Successfully pulled image "%s" in %dms (%dms including waiting). Image size: %d bytes.' % (
                        c.get("image"), ms, ms, 27000000 + len(c.get("image", "")) * 1000), "kubelet", nn, fp)
                    self.event(p, PODS, "Normal", "Created", "Created container: %s" % c.get("name"), "kubelet", nn, fp)
                    self.event(p, PODS, "Normal", "Started", "Started container %s" % c.get("name"), "kubelet", nn, fp)
                continue
            if ps["stage"] == "errimagepull" and now_m - ps.get("t", now_m) >= max(delay, 1.0):
                ps["stage"] = "backoff"
                new = deepcopy(p)
                for cs in new["status"].get("containerStatuses") or []:
                    w = (cs.get("state") or {}).get("waiting") or {}
                    if w.get("reason") == "ErrImagePull":
                        cs["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "%s"' % cs.get("image")}}
                p = self.write(PODS, deepcopy(p), new, mgr, status=True)
                for c in containers:
                    if self._pull_fails(c.get("image", "")):
                        fp = "spec.containers{%s}" % c.get("name")
                        self.event(p, PODS, "Normal", "BackOff", 'Back-off pulling image "%s"' % c.get("image"), "kubelet", nn, fp)
                        self.event(p, PODS, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet", nn, fp)
                continue
            if ps["stage"] == "running":
                # node lifecycle controller marks pods on an unready node NotReady; the kubelet restores readiness
                never = str((md.get("annotations") or {}).get(ANN_NEVER_READY, "")).lower() == "true"
                want = "True" if nready and not never else "False"
                rc = _cond(p, "Ready")
                if rc is not None and rc.get("status") != want:
                    new = deepcopy(p)
                    for c in new["status"].get("conditions") or []:
                        if c["type"] == "Ready":
                            c["status"] = want
                            c["lastTransitionTime"] = rfc3339()
                            if want == "True":
                                c.pop("reason", None)
                                c.pop("message", None)
                    self.write(PODS, deepcopy(p), new, mgr if nready else "k3s", status=True)

    def _pull_msg(self, image):
        ref = image if "." in image.split("/")[0] and "/" in image else "docker.io/library/" + image if "/" not in image else "docker.io/" + image
        return ('rpc error: code = NotFound desc = failed to pull and unpack image "%s": failed to resolve reference '
                '"%s": %s: not found' % (ref, ref, ref))

    def leases(self):
        now_m = time.monotonic()
        if now_m - self.lease_t < 10:
            return
        self.lease_t = now_m
        from util import rfc3339_micro
        for n in self.store.items(NODES.key)[0]:
            name = n["metadata"]["name"]
            ready = node_ready(n) == "True"
            cur = self.store.get(LEASES.key, "kube-node-lease", name)
            if cur is None:
                lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": name, "namespace": "kube-node-lease",
                                      "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": n["metadata"]["uid"]}]},
                         "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": rfc3339_micro()}}
                try:
                    self.api.create(LEASES, "kube-node-lease", lease, self.kubelet_manager(n))
                except ApiError:
                    pass
            elif ready:
                new = deepcopy(cur)
                new["spec"]["renewTime"] = rfc3339_micro()
                self.write(LEASES, cur, new, self.kubelet_manager(n))
