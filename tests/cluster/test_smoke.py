"""Smoke test of the air-gapped kind cluster: its nodes exist and run locally built images only,
pods on different nodes reach each other, a Service answers by DNS name, Job logs can be read."""

from __future__ import annotations

import ipaddress
import json
import os
import time

import pytest
from clusterlib import CLUSTER_SH, Cluster, on_node, run, web_app

WEB = "smoke-web"


def _job(name: str, image: str, args: list[str], volumes: dict[str, str] | None = None,
         node: str | None = None) -> dict:
    """A one-pod Job running the smoke image (on NODE if given); volumes maps PVC name -> mount
    path."""
    volumes = volumes or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 120,
            "template": {
                "spec": {
                    **on_node(node),
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "client",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "args": args,
                        "volumeMounts": [{"name": c, "mountPath": p} for c, p in volumes.items()],
                    }],
                    "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}}
                                for c in volumes],
                    # The default StorageClass (local-path-provisioner, addons/) makes 0777
                    # directories: the image's own non-root user (65534) writes to them.
                },
            },
        },
    }


def _node_containers(cluster: Cluster) -> list[str]:
    return sorted(run(["docker", "ps", "--filter", f"label=io.x-k8s.kind.cluster={cluster.name}",
                       "--format", "{{.Names}}"], timeout=30).stdout.split())


def test_nodes_ready_and_control_plane_from_local_builds(cluster: Cluster) -> None:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    names = sorted(n["metadata"]["name"] for n in nodes)
    workers = [f"{cluster.name}-worker{i if i > 1 else ''}" for i in range(1, cluster.workers + 1)]
    assert names == sorted([cluster.node, *workers]) == _node_containers(cluster)
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        # Real version ldflags: the kubelet and the API server report the pinned release.
        assert node["status"]["nodeInfo"]["kubeletVersion"] == cluster.k8s_version
    # Each node has its own pod CIDR (what routing between nodes is built on).
    cidrs = [n["spec"].get("podCIDR") for n in nodes]
    assert None not in cidrs and len(set(cidrs)) == len(nodes), cidrs
    server = cluster.kubectl_json("version")["serverVersion"]
    assert server["gitVersion"] == cluster.k8s_version

    pods = cluster.kubectl_json("-n", "kube-system", "get", "pods")["items"]
    components = {p["metadata"].get("labels", {}).get("component") or
                  p["metadata"].get("labels", {}).get("k8s-app") for p in pods}
    assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
            "kube-proxy", "kube-dns"} <= components
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
    # Nothing was pulled, nor tried: every image was preloaded in the node image or loaded
    # with `kind load`. Read from each node's containerd log (CRI logs every PullImage call at
    # info level), which, unlike Kubernetes events, does not expire after an hour.
    for name in names:
        log = run(["docker", "exec", name, "journalctl", "-u", "containerd", "--no-pager",
                   "-o", "cat"], timeout=60).stdout
        assert "Started containerd" in log or "containerd successfully booted" in log, name
        assert [line for line in log.splitlines() if "PullImage" in line] == [], name


def test_nodes_can_return_with_their_address(cluster: Cluster) -> None:
    """The nodes sit on a docker network whose IPv4 subnet is user-configured (cluster.sh makes
    it before kind, which would leave the IPv4 subnet to Docker): each node's address there is
    its InternalIP, and Docker accepts `network connect --ip` on it, which the node-fault tests
    use to bring a crashed node back as a rebooted machine, with the address the API server
    knows. Tried with a throwaway container that never starts."""
    net = json.loads(run(["docker", "network", "inspect", "kind"], timeout=30).stdout)[0]
    assert net["Labels"].get("io.points-mesh.kind-airgap.subnets") == "explicit", net["Labels"]
    v4 = [ipaddress.ip_network(c["Subnet"]) for c in net["IPAM"]["Config"]
          if ipaddress.ip_network(c["Subnet"]).version == 4]
    assert len(v4) == 1, net["IPAM"]
    for node in cluster.kubectl_json("get", "nodes")["items"]:
        name = node["metadata"]["name"]
        internal = next(a["address"] for a in node["status"]["addresses"]
                        if a["type"] == "InternalIP")
        on_net = run(["docker", "inspect", "-f",
                      '{{(index .NetworkSettings.Networks "kind").IPAddress}}', name],
                     timeout=30).stdout.strip()
        assert on_net == internal and ipaddress.ip_address(on_net) in v4[0], (name, on_net)
    spare = str(v4[0].broadcast_address - 2)   # kind hands out addresses from the bottom
    box = f"smoke-net-{os.getpid()}"
    run(["docker", "create", "--name", box, "--network", "none", cluster.node_image, "true"],
        timeout=60)
    try:
        run(["docker", "network", "disconnect", "none", box], timeout=30)
        run(["docker", "network", "connect", "--ip", spare, "kind", box], timeout=30)
        got = run(["docker", "inspect", "-f",
                   '{{(index .NetworkSettings.Networks "kind").IPAMConfig.IPv4Address}}', box],
                  timeout=30).stdout.strip()
        assert got == spare, got
    finally:
        run(["docker", "rm", "-f", box], timeout=60, check=False)


def test_pods_on_different_nodes_reach_each_other(cluster: Cluster, namespace: str,
                                                  smoke_image: str) -> None:
    """The pod network routes between nodes: a Job on one node reaches a web pod on another
    by the pod's own address and through its Service's DNS name."""
    nodes = cluster.schedulable_nodes()
    if len(nodes) < 2:
        pytest.skip(f"SKIPPED: single-node cluster ({nodes}): no traffic between nodes to test")
    web_node, client_node = nodes[0], nodes[1]
    cluster.apply(web_app("cross-web", smoke_image, f"cross-{namespace}", node=web_node), namespace)
    cluster.wait_rollout("deployment/cross-web", namespace)
    pod = cluster.kubectl_json("-n", namespace, "get", "pods", "-l", "app=cross-web")["items"][0]
    assert pod["spec"]["nodeName"] == web_node
    ip = pod["status"]["podIP"]
    cluster.apply(_job("cross-client", smoke_image,
                       ["get", f"http://{ip}:8080/", "+", "get", "http://cross-web/"],
                       node=client_node), namespace)
    logs = cluster.wait_job("cross-client", namespace)
    job_pod = cluster.kubectl_json("-n", namespace, "get", "pods", "-l",
                                   "job-name=cross-client")["items"][0]
    assert job_pod["spec"]["nodeName"] == client_node != web_node
    assert logs.count(f"cross-{namespace} (pod cross-web-") == 2, logs


def test_service_dns_name_and_job_logs(cluster: Cluster, namespace: str,
                                       smoke_image: str) -> None:
    text = f"hello-{namespace}"
    cluster.apply(web_app(WEB, smoke_image, text), namespace)
    cluster.wait_rollout(f"deployment/{WEB}", namespace)
    vip = cluster.kubectl("-n", namespace, "get", "service", WEB,
                          "-o", "jsonpath={.spec.clusterIP}").stdout.strip()

    fqdn = f"{WEB}.{namespace}.svc.cluster.local"
    cluster.apply(_job("smoke-client", smoke_image,
                       ["lookup", WEB, fqdn, "+", "get", f"http://{WEB}/"]), namespace)
    logs = cluster.wait_job("smoke-client", namespace)

    # `kubectl logs job/NAME` output of the second pod: both names resolve to the Service VIP,
    # and the HTTP answer comes from the web pod through it.
    assert f"{WEB} {vip}\n" in logs
    assert f"{fqdn} {vip}\n" in logs
    assert f"{text} (pod {WEB}-" in logs


def test_default_storage_class_keeps_data_across_pods(cluster: Cluster, namespace: str,
                                                     smoke_image: str) -> None:
    cluster.apply({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }, namespace)
    cluster.apply(_job("writer", smoke_image, ["write", "/data/note", namespace],
                       {"data": "/data"}), namespace)
    cluster.wait_job("writer", namespace)
    cluster.apply(_job("reader", smoke_image, ["cat", "/data/note"], {"data": "/data"}), namespace)
    assert cluster.wait_job("reader", namespace) == f"{namespace}\n"


def test_python_client_talks_to_the_cluster(cluster: Cluster, namespace: str) -> None:
    # PyPI `kubernetes` belongs in the dev extras; until it is there, say so instead of failing.
    client = pytest.importorskip(
        "kubernetes.client", reason="PyPI package `kubernetes` is not installed in this venv")

    api = client.CoreV1Api(cluster.api())
    names = [p.metadata.name for p in api.list_namespaced_pod("kube-system").items]
    assert any(n.startswith("coredns-") for n in names)
    api.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="smoke"), data={"answer": "42"}))
    assert api.read_namespaced_config_map("smoke", namespace).data == {"answer": "42"}


def test_up_again_reuses_the_healthy_cluster(cluster: Cluster) -> None:
    node_id = run(["docker", "inspect", "-f", "{{.Id}}", cluster.node], timeout=30).stdout
    t0 = time.monotonic()
    run(["bash", str(CLUSTER_SH), "up"], timeout=600)
    took = time.monotonic() - t0
    assert run(["docker", "inspect", "-f", "{{.Id}}", cluster.node], timeout=30).stdout == node_id
    assert took < 120, f"cached `cluster.sh up` took {took:.0f}s"


def test_helm_installs_a_local_chart(cluster: Cluster, namespace: str, tmp_path) -> None:
    version = cluster.helm("version", "--short").stdout
    pinned = run(["bash", str(CLUSTER_SH.parent / "helm.sh"), "version"], timeout=30).stdout
    assert version.split("+")[0].strip() == pinned.strip(), (version, pinned)   # Helm 4
    chart = tmp_path / "smoke-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: smoke-chart\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("answer: 42\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-values\n"
        "data:\n  answer: {{ .Values.answer | quote }}\n")
    cluster.helm("install", "smoke", str(chart), "-n", namespace, "--set", "answer=7", "--wait")
    data = cluster.kubectl_json("-n", namespace, "get", "configmap", "smoke-values")["data"]
    assert data == {"answer": "7"}
    cluster.helm("uninstall", "smoke", "-n", namespace, "--wait")
