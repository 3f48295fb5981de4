"""API semantics on top of the store: create/update/patch/apply/delete with defaulting, validation,
status subresources, generation, managedFields, dry-run, admission (namespace lifecycle)."""
import json
import re

import merge
import resources
from util import (ApiError, canon, deepcopy, err_already_exists, err_bad_request, err_conflict, err_invalid,
                  err_not_found, new_uid, rfc3339, status_success, rand_suffix)

NS_RES = resources.BY_KEY[("", "namespaces")]
DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _default_container(c):
    img = c.get("image", "")
    if "imagePullPolicy" not in c:
        last = img.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last and "@" not in last else ("" if "@" not in last else "digest")
        c["imagePullPolicy"] = "Always" if tag in ("", "latest") else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")


def default_pod_spec(spec):
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)


def apply_defaults(res, obj):
    k = res.kind
    spec = obj.get("spec")
    if k in ("Deployment", "ReplicaSet"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if k == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            st = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if st.get("type", "RollingUpdate") == "RollingUpdate":
                st.setdefault("type", "RollingUpdate")
                ru = st.setdefault("rollingUpdate", {})
                ru.setdefault("maxSurge", "25%")
                ru.setdefault("maxUnavailable", "25%")
        tpl = spec.get("template")
        if isinstance(tpl, dict):
            default_pod_spec(tpl.get("spec"))
    elif k == "DaemonSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if isinstance(us, dict) and us.get("type", "RollingUpdate") == "RollingUpdate":
            us.setdefault("type", "RollingUpdate")
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        tpl = spec.get("template")
        if isinstance(tpl, dict):
            default_pod_spec(tpl.get("spec"))
    elif k == "Pod":
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tol = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(isinstance(t, dict) and t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tol):
                tol.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    elif k == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
    elif k == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif k == "Event":
        obj.setdefault("count", 1) if obj.get("firstTimestamp") else None


def initial_status(res, obj):
    if res.kind == "Pod":
        qos = "BestEffort"
        for c in (obj.get("spec") or {}).get("containers") or []:
            r = (c or {}).get("resources") or {}
            if r.get("limits") or r.get("requests"):
                qos = "Burstable"
        return {"phase": "Pending", "qosClass": qos}
    if res.kind == "Namespace":
        return {"phase": "Active"}
    if res.kind == "Service":
        return {"loadBalancer": {}}
    if res.kind in ("Deployment", "ReplicaSet", "PodDisruptionBudget", "Node"):
        return {}
    if res.kind == "DaemonSet":
        # these four are not omitempty in apps/v1 DaemonSetStatus, so a new DaemonSet shows them as 0
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}
    return None


def validate(res, obj, name):
    causes = []
    md = obj.get("metadata") or {}
    nm = md.get("name") or ""
    if not nm:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif res.kind in ("Namespace", "Service"):
        if not DNS1123_LABEL.match(nm) or len(nm) > 63:
            causes.append(("metadata.name", 'Invalid value: "%s": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character (e.g. \'my-name\',  or \'123-abc\', regex used for validation is \'[a-z0-9]([-a-z0-9]*[a-z0-9])?\')' % nm))
    elif not DNS1123_SUB.match(nm) or len(nm) > 253:
        causes.append(("metadata.name", 'Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character (e.g. \'example.com\', regex used for validation is \'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\')' % nm))
    for fld in ("labels", "annotations"):
        v = md.get(fld)
        if v is not None and not isinstance(v, dict):
            causes.append(("metadata." + fld, "Invalid value: must be a map"))
        elif fld == "labels" and v:
            for lk, lv in v.items():
                if not isinstance(lv, str):
                    raise err_bad_request("json: cannot unmarshal %s into Go struct field ObjectMeta.metadata.labels of type string" % type(lv).__name__)
    spec = obj.get("spec") or {}
    if res.kind in ("Deployment", "ReplicaSet", "DaemonSet"):
        sel = spec.get("selector")
        tpl = spec.get("template") or {}
        if not sel:
            causes.append(("spec.selector", "Required value"))
        else:
            from labelsel import label_matches, selector_from_label_selector
            reqs = selector_from_label_selector(sel)
            tl = (tpl.get("metadata") or {}).get("labels") or {}
            if not reqs:
                causes.append(("spec.selector", "Invalid value: %s: empty selector is invalid for %s" % (
                    json.dumps(sel), "daemonset" if res.kind == "DaemonSet" else "deployment")))
            elif not label_matches(reqs, tl):
                causes.append(("spec.template.metadata.labels", "Invalid value: map[string]string{%s}: `selector` does not match template `labels`" % ", ".join('"%s":"%s"' % kv for kv in sorted(tl.items()))))
        r = spec.get("replicas", 1)
        if res.kind != "DaemonSet" and (not isinstance(r, int) or r < 0):
            causes.append(("spec.replicas", "Invalid value: %s: must be greater than or equal to 0" % r))
        _validate_pod_spec((tpl.get("spec") or {}), "spec.template.spec", causes)
    elif res.kind == "Pod":
        _validate_pod_spec(spec, "spec", causes)
    if causes:
        raise err_invalid(res, name or nm, causes)


def _validate_pod_spec(spec, prefix, causes):
    cs = spec.get("containers")
    if not cs:
        causes.append((prefix + ".containers", "Required value"))
        return
    seen = set()
    for i, c in enumerate(cs):
        if not isinstance(c, dict):
            causes.append(("%s.containers[%d]" % (prefix, i), "Invalid value: must be an object"))
            continue
        if not c.get("name"):
            causes.append(("%s.containers[%d].name" % (prefix, i), "Required value"))
        elif c["name"] in seen:
            causes.append(("%s.containers[%d].name" % (prefix, i), 'Duplicate value: "%s"' % c["name"]))
        seen.add(c.get("name"))
        if not c.get("image"):
            causes.append(("%s.containers[%d].image" % (prefix, i), "Required value"))


def _spec_part(o):
    return canon({k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")})


class Api:
    def __init__(self, store, log=None):
        self.store = store
        self.log = log or (lambda *a: None)

    # ---- reads -----------------------------------------------------------------------------------
    def get(self, res, ns, name):
        o = self.store.get(res.key, ns, name)
        if o is None:
            raise err_not_found(res, name)
        return o

    def _check_namespace(self, res, ns, creating=True):
        if not res.namespaced:
            return
        nso = self.store.get_ref(NS_RES.key, "", ns)
        if nso is None:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns, {"name": ns, "kind": "namespaces"})
        if creating and nso.get("metadata", {}).get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", 'unable to create new content in namespace %s because it is being terminated' % ns,
                           {"name": ns, "kind": "namespaces", "causes": [{"reason": "NamespaceTerminating", "message": "namespace %s is being terminated" % ns, "field": "metadata.namespace"}]})

    # ---- writes ----------------------------------------------------------------------------------
    def _finish_create(self, res, obj, ns, manager, dry_run, apply_managed=False):
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise err_bad_request("metadata must be an object")
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + rand_suffix(5)
        if res.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns or md.get("namespace") or "default"
            ns = md["namespace"]
        else:
            md.pop("namespace", None)
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        self._check_namespace(res, ns)
        if res.status:
            st = initial_status(res, obj)
            if res.kind in ("Node",) and isinstance(obj.get("status"), dict):
                st = obj["status"]  # nodes register themselves with a status
            if st is None:
                obj.pop("status", None)
            else:
                obj["status"] = st
        apply_defaults(res, obj)
        if res.kind == "Pod" and "status" in obj:
            obj["status"] = initial_status(res, obj)
        validate(res, obj, md.get("name"))
        if self.store.get_ref(res.key, ns if res.namespaced else "", md["name"]) is not None:
            raise err_already_exists(res, md["name"])
        ts = rfc3339()
        md.pop("resourceVersion", None)
        md["uid"] = new_uid()
        md["creationTimestamp"] = ts
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(f, None)
        if res.generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        if not apply_managed:
            md.pop("managedFields", None)
            if manager:
                merge.update_managed_fields(None, obj, manager, res, ts)
        if dry_run:
            return obj
        return self.store.put(res.key, obj, "ADDED")

    def create(self, res, ns, body, manager, dry_run=False):
        if not isinstance(body, dict):
            raise err_bad_request("the body of the request was in an unknown format")
        self._check_kind(res, body)
        obj = deepcopy(body)
        out = self._finish_create(res, obj, ns, manager, dry_run)
        return deepcopy(out)

    def _check_kind(self, res, body):
        k, av = body.get("kind"), body.get("apiVersion")
        if k and k != res.kind:
            raise err_bad_request("the API version in the data (%s) does not match the expected API version (%s)" % (av, res.api_version)
                                  if av != res.api_version else "Object kind %s does not match %s" % (k, res.kind))
        if av and av != res.api_version:
            raise err_bad_request("the API version in the data (%s) does not match the expected API version (%s)" % (av, res.api_version))

    def _finish_update(self, res, old, new, manager, dry_run, subresource=None, apply_managed=False, check_rv=None):
        """old: current stored object; new: proposed full object."""
        md = new.setdefault("metadata", {})
        omd = old["metadata"]
        if check_rv and check_rv != omd.get("resourceVersion"):
            raise err_conflict(res, omd["name"])
        if md.get("uid") and md["uid"] != omd.get("uid"):
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition failed: UID in precondition: %s, UID in object meta: %s' % (
                resources_q(res), omd["name"], omd["uid"], md["uid"]))
        if md.get("name") and md["name"] != omd["name"]:
            raise err_bad_request('the name of the object (%s) does not match the name on the URL (%s)' % (md["name"], omd["name"]))
        for f in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if f in omd:
                md[f] = omd[f]
            else:
                md.pop(f, None)
        md["resourceVersion"] = omd.get("resourceVersion")
        new["apiVersion"] = res.api_version
        new["kind"] = res.kind
        if subresource == "status":
            st = new.get("status")
            new = deepcopy(old)
            if st is None:
                new.pop("status", None)
            else:
                new["status"] = st
            if apply_managed:
                new["metadata"]["managedFields"] = md.get("managedFields", [])
        elif res.status:
            if "status" in old:
                new["status"] = deepcopy(old["status"])
            else:
                new.pop("status", None)
        apply_defaults(res, new)
        validate(res, new, omd["name"])
        if res.generation and _spec_part(new) != _spec_part(old):
            new["metadata"]["generation"] = omd.get("generation", 1) + 1
        ts = rfc3339()
        if not apply_managed:
            new["metadata"]["managedFields"] = deepcopy(omd.get("managedFields") or [])
            if not new["metadata"]["managedFields"]:
                new["metadata"].pop("managedFields")
            merge.update_managed_fields(old, new, manager or "unknown", res, ts, subresource)
        if canon(new) == canon(old):
            return deepcopy(old), False
        if apply_managed:
            # the applier's entry gets the time of this (effective) change
            for e in new["metadata"].get("managedFields") or []:
                if e.get("manager") == manager and e.get("operation") == "Apply" and (e.get("subresource") or None) == subresource:
                    e["time"] = ts
        if dry_run:
            return new, True
        return deepcopy(self.store.put(res.key, new, "MODIFIED")), True

    def replace(self, res, ns, name, body, manager, dry_run=False, subresource=None):
        if not isinstance(body, dict):
            raise err_bad_request("the body of the request was in an unknown format")
        self._check_kind(res, body)
        old = self.store.get(res.key, ns, name)
        if old is None:
            raise err_not_found(res, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        new = deepcopy(body)
        mf = (new.get("metadata") or {}).get("managedFields")
        explicit = (subresource != "status" and mf is not None
                    and canon(mf) != canon(old["metadata"].get("managedFields")))
        out, _ = self._finish_update(res, old, new, manager, dry_run, subresource, apply_managed=explicit, check_rv=rv)
        return out

    def patch(self, res, ns, name, ctype, raw, manager, dry_run=False, force=False, subresource=None):
        ctype = (ctype or "").split(";")[0].strip().lower()
        if ctype == "application/apply-patch+yaml":
            return self.apply(res, ns, name, raw, manager, dry_run, force, subresource)
        try:
            patch = json.loads(raw or b"null")
        except ValueError as e:
            raise err_bad_request("error decoding patch: %s" % e)
        old = self.store.get(res.key, ns, name)
        if old is None:
            raise err_not_found(res, name)
        if ctype == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise err_bad_request("json: cannot unmarshal %s into Go value of type map[string]interface {}" % type(patch).__name__)
            new = merge.merge_patch(old, patch)
        elif ctype == "application/strategic-merge-patch+json":
            if not isinstance(patch, dict):
                raise err_bad_request("json: cannot unmarshal %s into Go value of type map[string]interface {}" % type(patch).__name__)
            new = merge.strategic_merge_patch(old, patch) or {}
        elif ctype == "application/json-patch+json":
            new = merge.json_patch(old, patch)
            if not isinstance(new, dict):
                raise err_bad_request("the patched object is not an object")
        else:
            raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json')
        rv = (new.get("metadata") or {}).get("resourceVersion")
        mf_changed = canon((new.get("metadata") or {}).get("managedFields")) != canon(old["metadata"].get("managedFields"))
        out, _ = self._finish_update(res, old, new, manager, dry_run, subresource,
                                     apply_managed=mf_changed and subresource != "status",
                                     check_rv=rv if rv != old["metadata"].get("resourceVersion") else None)
        return out

    def apply(self, res, ns, name, raw, manager, dry_run=False, force=False, subresource=None):
        import yaml
        if not manager:
            raise ApiError(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
        try:
            cfg = yaml.safe_load(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except Exception as e:
            raise err_bad_request("error decoding YAML: %s" % e)
        if not isinstance(cfg, dict):
            raise err_bad_request("error decoding patch: the apply configuration must be an object")
        cfg = json.loads(json.dumps(cfg, default=str))  # YAML timestamps etc. -> strings
        if not cfg.get("apiVersion") or not cfg.get("kind"):
            raise err_bad_request("Object 'Kind' is missing in '%s'" % json.dumps(cfg)[:200] if not cfg.get("kind") else "Object 'apiVersion' is missing")
        self._check_kind(res, cfg)
        md = cfg.get("metadata") or {}
        if not isinstance(md, dict):
            raise err_bad_request("metadata must be an object")
        if md.get("name") and md["name"] != name:
            raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (md["name"], name))
        if res.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")
        old = self.store.get(res.key, ns, name)
        ts = rfc3339()
        if old is None:
            if subresource:
                raise err_not_found(res, name)
            merged = merge.server_side_apply(None, cfg, manager, force, res, ts)
            merged.setdefault("metadata", {})["name"] = name
            out = self._finish_create(res, merged, ns, manager, dry_run, apply_managed=True)
            return deepcopy(out)
        rv = md.get("resourceVersion")
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise err_conflict(res, name)
        merged = merge.server_side_apply(old, cfg, manager, force, res, ts, subresource)
        # keep the old timestamps; _finish_update stamps the applier only when something changed
        mine = [e for e in old["metadata"].get("managedFields") or []
                if e.get("manager") == manager and e.get("operation") == "Apply" and (e.get("subresource") or None) == subresource]
        for e in merged["metadata"].get("managedFields") or []:
            if e.get("manager") == manager and e.get("operation") == "Apply" and (e.get("subresource") or None) == subresource:
                e["time"] = mine[0].get("time") if mine else ts
        out, _ = self._finish_update(res, old, merged, manager, dry_run, subresource, apply_managed=True)
        return out

    def delete(self, res, ns, name, opts=None, dry_run=False):
        opts = opts or {}
        old = self.store.get(res.key, ns, name)
        if old is None:
            raise err_not_found(res, name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition failed: UID in precondition: %s, UID in object meta: %s' % (
                resources_q(res), name, pre["uid"], old["metadata"].get("uid")))
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get("resourceVersion"):
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s' % (
                resources_q(res), name, pre["resourceVersion"], old["metadata"].get("resourceVersion")))
        policy = opts.get("propagationPolicy")
        if opts.get("orphanDependents") is True:
            policy = "Orphan"
        if dry_run:
            return old if res.kind in ("Pod", "Namespace") else status_success(res, name, old["metadata"].get("uid"))
        if res.kind == "Namespace" or old["metadata"].get("finalizers"):
            if not old["metadata"].get("deletionTimestamp"):
                new = deepcopy(old)
                new["metadata"]["deletionTimestamp"] = rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if res.kind == "Namespace":
                    new.setdefault("status", {})["phase"] = "Terminating"
                old = deepcopy(self.store.put(res.key, new, "MODIFIED"))
            return old
        if policy == "Orphan":
            self._orphan(old["metadata"]["uid"])
        gone = self.store.remove(res.key, ns, name)
        if res.kind == "Pod":
            return deepcopy(gone)
        return status_success(res, name, old["metadata"].get("uid"))

    def _orphan(self, uid):
        for rkey, o in self.store.all_items():
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                n = deepcopy(o)
                n["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not n["metadata"]["ownerReferences"]:
                    del n["metadata"]["ownerReferences"]
                self.store.put(rkey, n, "MODIFIED")


def resources_q(res):
    return res.plural + ("." + res.group if res.group else "")
