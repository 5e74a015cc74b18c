"""Helpers of the e2e suite: a namespace on the cluster, the database's rows, ad-hoc pods,
server metrics through the API server, NetworkPolicy selectors evaluated on live pods."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import yaml

from pointsmesh import k8s, netpol
from pointsmesh.spec import load_protocol, load_roster, reply_regex, servers

PROTOCOL = load_protocol()
ROSTER = load_roster()
SERVERS = servers(ROSTER)
RELEASE = "points"
DB = f"{RELEASE}-database"
REPLY_RE = re.compile(reply_regex(PROTOCOL.reply_format))
# Labels every pod of a release carries (the chart's selector labels).
INSTANCE = "app.kubernetes.io/instance"
# Seconds between increments in the e2e releases: short, but long enough that a takeover or a
# doubled increment shows in a window of a few intervals.
INTERVAL = 3
# Measurements printed at the end of the session (conftest.py) and written to out/.
MEASURE: dict[str, Any] = {}


def log(msg: str) -> None:
    print(f"[e2e] {msg}", flush=True)


def reply_for(row: str) -> re.Pattern[str]:
    """A reply line of ROW, anywhere in a text (a log with other lines)."""
    return re.compile(reply_regex(PROTOCOL.reply_format, user=row).rstrip("\\\n") + "$", re.M)


def printed_reply(row: str) -> re.Pattern[str]:
    """A reply line of ROW as helm prints a hook's log: anywhere in its output (Helm 4 wraps
    the log in a log record, newlines escaped; Helm 3 copies it as it is)."""
    return re.compile(reply_regex(PROTOCOL.reply_format, user=row).rstrip("\\\n").lstrip("^"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Row:
    points: int
    stamp: int  # UNIX_TIMESTAMP(datetime_stamp): differences are exact seconds


@dataclass
class Space:
    """One namespace of the cluster and what the tests do in it."""

    kube: k8s.Kube
    ns: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120,
                input: str | None = None) -> str:
        return self.kube.kubectl("-n", self.ns, *args, check=check, timeout=timeout,
                                 input=input).stdout

    def get(self, *args: str) -> Any:
        return self.kube.kubectl_json("-n", self.ns, "get", *args)

    def apply(self, objs: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))

    def helm(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        proc = self.kube.helm(*args, "--namespace", self.ns, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                f"{proc.stderr[-3000:]}\npods: {self.kube.pod_summary(self.ns, limit=40)}\n"
                f"events:\n{self.kube.events_tail(self.ns)}")
        return proc.stdout + proc.stderr

    # -- the database (the chart's StatefulSet)

    def sql(self, query: str, sts: str = DB) -> list[list[str]]:
        """Rows of QUERY, run as root inside the database pod (tab-separated, no header)."""
        return self.kube.database_sql(self.ns, sts, query)

    def rows(self, sts: str = DB) -> dict[str, Row]:
        return {
            user: Row(int(points), int(stamp))
            for user, points, stamp in self.sql(
                "SELECT user, points, UNIX_TIMESTAMP(datetime_stamp) FROM project_db.users", sts)
        }

    # -- waiting

    def wait_ready(self, kind_name: str, timeout: int = 300) -> None:
        self.kubectl("rollout", "status", kind_name, f"--timeout={timeout}s",
                     timeout=timeout + 30)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def wait_gone(self, kind: str, selector: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = self.get(kind, "-l", selector)["items"]
            if not left:
                return
            if time.monotonic() > deadline:
                names = [o["metadata"]["name"] for o in left]
                raise AssertionError(f"{kind} still there after {timeout:.0f}s: {names}")
            time.sleep(2)

    # -- ad-hoc pods (a client image running a script)

    def run_pod(self, name: str, image: str, script: str, labels: dict[str, str],
                timeout: float = 180, node: str | None = None) -> tuple[str, str]:
        """Run SCRIPT (bash) in a one-off pod with LABELS (on NODE if given); return (phase,
        logs) once it ends. The pod is restricted like the chart's (non-root, read-only root,
        no capabilities)."""
        self.start_pod(name, image, script, labels, node)
        return self.wait_pod(name, timeout)

    def start_pod(self, name: str, image: str, script: str, labels: dict[str, str],
                  node: str | None = None) -> None:
        """run_pod without waiting (see wait_pod)."""
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                **({"nodeSelector": {"kubernetes.io/hostname": node}} if node else {}),
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["bash", "-c", script],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                  "limits": {"memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                }],
            },
        }
        self.apply([pod])

    def wait_pod(self, name: str, timeout: float = 180) -> tuple[str, str]:
        """(phase, logs) of a restartPolicy=Never pod once it ends; the pod is then deleted."""
        deadline = time.monotonic() + timeout
        phase = ""
        while time.monotonic() < deadline:
            phase = self.get("pod", name)["status"].get("phase", "")
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(1)
        logs = self.kubectl("logs", name, check=False)
        self.kubectl("delete", "pod", name, "--wait=false", check=False)
        if phase not in ("Succeeded", "Failed"):
            raise AssertionError(f"pod {name} did not finish in {timeout:.0f}s: {logs}")
        return phase, logs

    # -- metrics, through the API server's pod proxy (no port-forward, no extra tool)

    def metrics(self, pod: str, port: int = 8080) -> dict[str, float]:
        text = self.kube.kubectl(
            "get", "--raw", f"/api/v1/namespaces/{self.ns}/pods/{pod}:{port}/proxy/metrics",
            timeout=30).stdout
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


def client_labels(member: str) -> dict[str, str]:
    """The labels of member's client Job pods (what the servers' policies let in)."""
    return {"app.kubernetes.io/name": "points-mesh", INSTANCE: RELEASE,
            "app.kubernetes.io/component": "client", "points-mesh.io/member": member}


def helm_test_pod_labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": "points-mesh", INSTANCE: RELEASE,
            "app.kubernetes.io/component": "test"}


# ---------------------------------------------------------------------------------------------
# NetworkPolicies on live pods (pointsmesh.netpol implements the API's semantics)


def endpoint(name: str, labels: dict[str, str], namespace: str) -> netpol.Endpoint:
    return netpol.Endpoint(name, labels, namespace, {"kubernetes.io/metadata.name": namespace})


def pod_endpoint(pod: dict[str, Any]) -> netpol.Endpoint:
    meta = pod["metadata"]
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"]
             for p in c.get("ports") or [] if "name" in p}
    return netpol.Endpoint(meta["name"], meta.get("labels") or {}, meta["namespace"],
                           {"kubernetes.io/metadata.name": meta["namespace"]}, ports)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)[:3000]


# Namespaces whose workloads are the cluster's own add-ons (kube-router, CoreDNS, kube-proxy,
# local-path-provisioner): a cluster with any of them not ready is broken for every test.
ADDON_NAMESPACES = ("kube-system", "local-path-storage")


def cluster_problems(kube: k8s.Kube, nodes: int | None = None) -> list[str]:
    """What is wrong with the cluster as a whole: a node not Ready (or missing: NODES is the
    count expected), an add-on DaemonSet or Deployment not fully ready. Empty when healthy."""
    problems = []
    items = kube.kubectl_json("get", "nodes")["items"]
    if nodes is not None and len(items) != nodes:
        problems.append(f"{len(items)} node(s) registered, {nodes} expected")
    for n in items:
        ready: dict[str, Any] = next(
            (c for c in n["status"].get("conditions", []) if c["type"] == "Ready"), {})
        if ready.get("status") != "True":
            problems.append(f"node {n['metadata']['name']} Ready={ready.get('status')} "
                            f"({ready.get('reason', '')}: {ready.get('message', '')})")
    for ns in ADDON_NAMESPACES:
        for kind in ("daemonsets", "deployments"):
            for w in kube.kubectl_json("get", kind, "-n", ns)["items"]:
                st, name = w.get("status", {}), f"{ns}/{kind[:-1]}/{w['metadata']['name']}"
                if kind == "daemonsets":
                    want, have = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
                else:
                    want, have = w["spec"].get("replicas", 1), st.get("readyReplicas", 0)
                if have < want:
                    problems.append(f"{name}: {have}/{want} ready")
    return problems
