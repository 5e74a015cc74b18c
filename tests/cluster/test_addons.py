"""The cluster's add-ons (ci/kind-airgap/addons/): kube-router is the pod network and enforces
NetworkPolicies, and rancher's local-path-provisioner backs the default StorageClass `standard`,
as in stock kind."""

from __future__ import annotations

import time

from clusterlib import Cluster, ClusterError, on_node, web_app

WEB = "web"
PORT = 8080


def _pod_result(cluster: Cluster, namespace: str, name: str,
                timeout: float = 90) -> tuple[str, str]:
    """Wait for a restartPolicy=Never pod to finish: (phase, logs)."""
    deadline = time.monotonic() + timeout
    while True:
        phase = cluster.kubectl("-n", namespace, "get", "pod", name,
                                "-o", "jsonpath={.status.phase}").stdout
        if phase in ("Succeeded", "Failed"):
            logs = cluster.kubectl("-n", namespace, "logs", name, check=False)
            return phase, logs.stdout + logs.stderr
        if time.monotonic() > deadline:
            raise ClusterError(f"pod {name} still {phase!r} after {timeout}s\n"
                               + cluster.kubectl("-n", namespace, "describe", "pod", name,
                                                 check=False).stdout[-3000:])
        time.sleep(0.5)


_probes = iter(range(1, 1000))


def _get(cluster: Cluster, namespace: str, image: str, url: str, *, labels: dict[str, str],
         retry: str, node: str | None = None) -> bool:
    """GET url from a fresh pod with these labels (on NODE if given); True if it answered 200
    within `retry` (each attempt times out after 5 s; retry=0s means one attempt)."""
    name = f"probe-{next(_probes)}"
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {**on_node(node), "restartPolicy": "Never", "automountServiceAccountToken": False,
                 "containers": [{"name": "get", "image": image, "imagePullPolicy": "Never",
                                 "args": ["get", "-retry", retry, url]}]},
    }, namespace)
    phase, logs = _pod_result(cluster, namespace, name)
    cluster.kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)
    if phase == "Succeeded":
        assert "policy-web" in logs, logs
    return phase == "Succeeded"


# kube-router adds a new pod's IP to the policies' ipsets a moment after the pod starts
# (measured: a first attempt at start-up is refused, one 4 s later passes): "open" checks retry,
# and "stays blocked" checks retry for longer than that lag without ever getting through.
STAYS_BLOCKED = "8s"


def _blocked_within(cluster: Cluster, namespace: str, image: str, url: str,
                    labels: dict[str, str], node: str | None, seconds: float = 30) -> bool:
    """Policies are programmed asynchronously: True once one single-attempt GET fails."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _get(cluster, namespace, image, url, labels=labels, retry="0s", node=node):
            return True
        time.sleep(1)
    return False


def _ready(cluster: Cluster, namespace: str) -> tuple[bool, int]:
    """(Ready condition, restart count) of the web pod."""
    pod = cluster.kubectl_json("-n", namespace, "get", "pods", "-l", f"app={WEB}")["items"][0]
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}.get("Ready") == "True"
    return ready, pod["status"]["containerStatuses"][0]["restartCount"]


def _policy(name: str, ingress: list[dict] | None, selector: dict[str, str] | None = None) -> dict:
    spec: dict = {"podSelector": {"matchLabels": selector} if selector else {},
                  "policyTypes": ["Ingress"]}
    if ingress is not None:
        spec["ingress"] = ingress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


def test_kube_router_routes_and_enforces_on_every_node(cluster: Cluster) -> None:
    ds = cluster.kubectl_json("-n", "kube-system", "get", "daemonset", "kube-router")
    assert ds["status"]["numberReady"] == ds["status"]["desiredNumberScheduled"] \
        == cluster.workers + 1
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--run-router=true", "--run-firewall=true", "--run-service-proxy=false",
            "--enable-cni=true"} <= set(args)


def test_default_deny_blocks_and_allow_policy_reopens(cluster: Cluster, namespace: str,
                                                      smoke_image: str) -> None:
    # Server and probes on different nodes when there are several: the policy must hold for
    # routed traffic between nodes, whose source is still the probe pod's own address.
    nodes = cluster.schedulable_nodes()
    web_node, probe_node = nodes[0], nodes[-1]
    cluster.apply(web_app(WEB, smoke_image, "policy-web", PORT, node=web_node), namespace)
    cluster.wait_rollout(f"deployment/{WEB}", namespace)
    url = f"http://{WEB}/"
    client = {"role": "client"}
    stranger = {"role": "stranger"}

    def get(labels: dict[str, str], retry: str) -> bool:
        return _get(cluster, namespace, smoke_image, url, labels=labels, retry=retry,
                    node=probe_node)

    # No policy: anyone reaches the server.
    assert get(stranger, "30s")

    # Default-deny ingress for the namespace: the same connection is refused...
    cluster.apply(_policy("default-deny-ingress", None), namespace)
    assert _blocked_within(cluster, namespace, smoke_image, url, client, probe_node), \
        "default-deny ingress did not block pod-to-pod traffic (is kube-router enforcing?)"
    assert not get(stranger, STAYS_BLOCKED)
    # ...while the kubelet's readiness probes (from the node) keep passing.
    time.sleep(5)   # several probe periods (1 s, failureThreshold 2)
    assert _ready(cluster, namespace) == (True, 0)
    endpoints = cluster.kubectl("-n", namespace, "get", "endpointslices",
                                "-l", f"kubernetes.io/service-name={WEB}",
                                "-o", "jsonpath={.items[*].endpoints[*].conditions.ready}").stdout
    assert endpoints.split() == ["true"], endpoints

    # An allow policy re-opens the port to pods labelled as clients only.
    cluster.apply(_policy("web-from-clients", [{
        "from": [{"podSelector": {"matchLabels": client}}],
        "ports": [{"protocol": "TCP", "port": PORT}],
    }], selector={"app": WEB}), namespace)
    assert get(client, "30s")
    assert not get(stranger, STAYS_BLOCKED)

    # Without any policy the server is open again, and it stayed Ready throughout.
    cluster.kubectl("-n", namespace, "delete", "networkpolicy", "default-deny-ingress",
                    "web-from-clients")
    assert get(stranger, "30s")
    assert _ready(cluster, namespace) == (True, 0)


def test_default_storage_class_is_local_path(cluster: Cluster) -> None:
    classes = cluster.kubectl_json("get", "storageclass")["items"]
    default = [c for c in classes if c["metadata"].get("annotations", {})
               .get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert [(c["metadata"]["name"], c["provisioner"], c["volumeBindingMode"]) for c in default] \
        == [("standard", "rancher.io/local-path", "WaitForFirstConsumer")]


def test_pvc_binds_on_first_consumer_and_non_root_pod_writes(cluster: Cluster, namespace: str,
                                                            smoke_image: str) -> None:
    cluster.apply({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }, namespace)
    time.sleep(2)
    pvc = cluster.kubectl_json("-n", namespace, "get", "pvc", "data")
    assert pvc["status"]["phase"] == "Pending"   # WaitForFirstConsumer: no pod yet
    assert pvc["spec"]["storageClassName"] == "standard"

    def pod(name: str, args: list[str]) -> dict:
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                    "runAsGroup": 10001, "fsGroup": 10001},
                "containers": [{"name": "main", "image": smoke_image, "imagePullPolicy": "Never",
                                "args": args,
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }

    cluster.apply(pod("writer", ["write", "/data/note", namespace, "+", "cat", "/data/note"]),
                  namespace)
    phase, logs = _pod_result(cluster, namespace, "writer", timeout=120)
    assert (phase, logs) == ("Succeeded", f"{namespace}\n")
    pvc = cluster.kubectl_json("-n", namespace, "get", "pvc", "data")
    assert pvc["status"]["phase"] == "Bound"
    pv = cluster.kubectl_json("get", "pv", pvc["spec"]["volumeName"])
    assert pv["spec"]["storageClassName"] == "standard"
    path = (pv["spec"].get("hostPath") or pv["spec"].get("local") or {}).get("path", "")
    assert path.startswith("/var/local-path-provisioner/"), pv["spec"]

    cluster.apply(pod("reader", ["cat", "/data/note"]), namespace)
    assert _pod_result(cluster, namespace, "reader") == ("Succeeded", f"{namespace}\n")
