"""Scenario: the cluster the double pretends to be (nodes, versions, timings, faults)."""
import copy
import hashlib
import uuid

import yaml

DEFAULT_SCENARIO = """
distribution: k3s            # k3s | rke2: versions, node labels and annotations follow the distribution
podReadyDelay: 1.0           # seconds from binding a pod to a node until its containers run and are Ready
nodes:
  - name: lab-server
    os: linux
    roles: [control-plane, master]
    ip: 10.10.0.10
  - name: win1
    os: windows
    ip: 10.10.0.21
  - name: win2
    os: windows
    ip: 10.10.0.22
"""

DIST = {
    "k3s": {"version": "v1.32.5+k3s1", "runtime": "containerd://1.7.26-k3s1", "instance": "k3s",
            "win_manager": "kubelet.exe", "linux_manager": "k3s"},
    "rke2": {"version": "v1.32.5+rke2r1", "runtime": "containerd://1.7.26-k3s1", "instance": "rke2",
             "win_manager": "kubelet.exe", "linux_manager": "kubelet"},
}


def load(path=None):
    sc = yaml.safe_load(DEFAULT_SCENARIO)
    if path:
        with open(path) as f:
            user = yaml.safe_load(f) or {}
        if not isinstance(user, dict):
            raise ValueError("scenario must be a YAML mapping")
        sc.update(user)
    sc.setdefault("distribution", "k3s")
    if sc["distribution"] not in DIST:
        raise ValueError("distribution must be k3s or rke2")
    d = DIST[sc["distribution"]]
    sc.setdefault("version", d["version"])
    sc.setdefault("podReadyDelay", 1.0)
    sc.setdefault("imagePullFailures", [])
    sc.setdefault("aggregatedDiscovery", True)
    sc.setdefault("watchHistory", 5000)
    sc.setdefault("bookmarkInterval", 5.0)
    sc.setdefault("namespaces", ["default", "kube-system", "kube-public", "kube-node-lease"])
    sc.setdefault("objects", [])
    sc.setdefault("timeline", [])
    sc.setdefault("users", [])
    sc.setdefault("systemPods", True)
    for i, n in enumerate(sc.get("nodes") or []):
        if not isinstance(n, dict) or not n.get("name"):
            raise ValueError("nodes[%d] needs a name" % i)
        n.setdefault("os", "linux")
        n.setdefault("ip", "10.10.0.%d" % (30 + i))
    return sc


def _h(s, n):
    return hashlib.sha256(s.encode()).hexdigest()[:n]


def node_ready_initially(n):
    if n.get("readyAfter") is not None:
        return "False"
    r = n.get("ready", True)
    if isinstance(r, str) and r.lower() == "unknown":
        return "Unknown"
    return "True" if r in (True, "true", "True") else "False"


def ready_condition(status, ts, n=None):
    n = n or {}
    if status == "True":
        return {"type": "Ready", "status": "True", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
                "reason": "KubeletReady", "message": "kubelet is posting ready status"}
    if status == "Unknown":
        return {"type": "Ready", "status": "Unknown", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
                "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}
    return {"type": "Ready", "status": "False", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
            "reason": n.get("notReadyReason", "KubeletNotReady"),
            "message": n.get("notReadyMessage", "container runtime network not ready: NetworkReady=false "
                             "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")}


def pressure_conditions(ts, unknown=False):
    out = []
    for typ, reason, msg in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                             ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                             ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")):
        if unknown:
            out.append({"type": typ, "status": "Unknown", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
                        "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."})
        else:
            out.append({"type": typ, "status": "False", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
                        "reason": reason, "message": msg})
    return out


def build_node(sc, n, index, ts):
    d = DIST[sc["distribution"]]
    name = n["name"]
    win = n["os"] == "windows"
    ip = n["ip"]
    version = n.get("kubeletVersion", sc["version"])
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": d["instance"],
        "beta.kubernetes.io/os": n["os"],
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": n["os"],
        "node.kubernetes.io/instance-type": d["instance"],
    }
    if win:
        labels["node.kubernetes.io/windows-build"] = n.get("windowsBuild", "10.0.20348")
    for role in n.get("roles") or []:
        labels["node-role.kubernetes.io/%s" % role] = "true"
    labels.update({k: str(v) for k, v in (n.get("labels") or {}).items()})
    ann = {
        "alpha.kubernetes.io/provided-node-ip": ip,
        "flannel.alpha.coreos.com/backend-data": '{"VNI":4096,"VtepMAC":"00:15:5d:%s:%s:%s"}' % (_h(name, 2), _h(name + "1", 2), _h(name + "2", 2)) if win
        else '{"VNI":4096,"VtepMAC":"%s"}' % ":".join(_h(name + str(i), 2) for i in range(6)),
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": ip,
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    if sc["distribution"] == "k3s":
        ann.update({"k3s.io/hostname": name, "k3s.io/internal-ip": ip,
                    "k3s.io/node-args": '["server","--flannel-backend","vxlan"]' if not win else '["agent","--server","https://10.10.0.10:6443"]',
                    "k3s.io/node-config-hash": _h(name, 52).upper(), "k3s.io/node-env": "{}"})
    else:
        ann.update({"rke2.io/hostname": name, "rke2.io/internal-ip": ip,
                    "rke2.io/node-args": '["server"]' if not win else '["agent"]',
                    "rke2.io/node-config-hash": _h(name, 52).upper(), "rke2.io/node-env": "{}"})
    ann.update({k: str(v) for k, v in (n.get("annotations") or {}).items()})
    if win:
        ni = {"architecture": "amd64", "bootID": str(3 + index), "containerRuntimeVersion": n.get("containerRuntimeVersion", d["runtime"]),
              "kernelVersion": n.get("kernelVersion", "10.0.20348.2849"), "kubeProxyVersion": version,
              "kubeletVersion": version, "machineID": name.upper(), "operatingSystem": "windows",
              "osImage": n.get("osImage", "Windows Server 2022 Datacenter"),
              "systemUUID": str(uuid.UUID(_h("sys" + name, 32))).upper()}
        cap = {"cpu": "4", "ephemeral-storage": "133703676Ki", "memory": "8388148Ki", "pods": "110"}
        alloc = {"cpu": "4", "ephemeral-storage": "123222016863", "memory": "8285748Ki", "pods": "110"}
        images = [{"names": ["docker.io/rancher/mirrored-pause@sha256:" + _h("pause", 64), "docker.io/rancher/mirrored-pause:3.6"], "sizeBytes": 126085622}]
    else:
        ni = {"architecture": "amd64", "bootID": str(uuid.UUID(_h("boot" + name, 32))), "containerRuntimeVersion": n.get("containerRuntimeVersion", d["runtime"]),
              "kernelVersion": n.get("kernelVersion", "5.15.0-126-generic"), "kubeProxyVersion": version,
              "kubeletVersion": version, "machineID": _h("machine" + name, 32), "operatingSystem": "linux",
              "osImage": n.get("osImage", "Ubuntu 22.04.5 LTS"), "systemUUID": str(uuid.UUID(_h("sys" + name, 32)))}
        cap = {"cpu": "2", "ephemeral-storage": "30298176Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": "4005552Ki", "pods": "110"}
        alloc = {"cpu": "2", "ephemeral-storage": "29474184201", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": "4005552Ki", "pods": "110"}
        images = [{"names": ["docker.io/rancher/mirrored-pause@sha256:" + _h("pause", 64), "docker.io/rancher/mirrored-pause:3.6"], "sizeBytes": 301463},
                  {"names": ["docker.io/rancher/mirrored-coredns-coredns@sha256:" + _h("coredns", 64), "docker.io/rancher/mirrored-coredns-coredns:1.11.3"], "sizeBytes": 18562039}]
    cap.update(n.get("capacity") or {})
    alloc.update(n.get("capacity") or {})
    ready = node_ready_initially(n)
    conds = pressure_conditions(ts, ready == "Unknown") + [ready_condition(ready, ts, n)]
    spec = {"podCIDR": "10.42.%d.0/24" % index, "podCIDRs": ["10.42.%d.0/24" % index],
            "providerID": "%s://%s" % (d["instance"], name)}
    taints = copy.deepcopy(n.get("taints") or [])
    if taints:
        spec["taints"] = taints
    if n.get("unschedulable"):
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": ann},
        "spec": spec,
        "status": {
            "addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": alloc, "capacity": cap, "conditions": conds,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": images, "nodeInfo": ni,
        },
    }


COREDNS = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
        "template": {
            "metadata": {"labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "priorityClassName": "system-cluster-critical",
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                                {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "coredns", "image": "rancher/mirrored-coredns-coredns:1.11.3",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                          {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"}],
                                "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}}}],
            },
        },
    },
}
