"""Helpers for tests that drive the kind cluster (used by conftest.py and the test modules)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from pointsmesh import ROOT as REPO

KIND_AIRGAP = REPO / "ci" / "kind-airgap"
CLUSTER_SH = KIND_AIRGAP / "cluster.sh"


class ClusterError(AssertionError):
    pass


def run(cmd: list[str], *, timeout: float, input: str | None = None,
         check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                           f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


def parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@dataclass
class Cluster:
    """A running kind cluster and the tools built for it (kind, kubectl, helm)."""

    name: str
    kind_bin: str
    kubectl_bin: str
    helm_bin: str
    kubeconfig: str
    node: str  # the control-plane node
    node_image: str
    k8s_version: str
    workers: int = 0
    created_by_session: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
                    input=input, check=check, timeout=timeout)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(self, *args: str, timeout: float = 300,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.helm_bin, "--kubeconfig", self.kubeconfig, *args],
                    timeout=timeout, check=check)

    def apply(self, manifest: str | dict | list[dict], namespace: str | None = None) -> str:
        if isinstance(manifest, dict):
            manifest = [manifest]
        if isinstance(manifest, list):
            manifest = yaml.safe_dump_all(manifest)
        ns = ["-n", namespace] if namespace else []
        return self.kubectl(*ns, "apply", "-f", "-", input=manifest).stdout

    def load_image(self, ref: str) -> None:
        """Copy a local docker image into the node's containerd (no registry involved)."""
        run([self.kind_bin, "load", "docker-image", "--name", self.name, ref], timeout=600)

    def wait_rollout(self, kind_name: str, namespace: str, timeout: int = 120) -> None:
        self.kubectl("-n", namespace, "rollout", "status", kind_name, f"--timeout={timeout}s",
                     timeout=timeout + 30)

    def wait_job(self, name: str, namespace: str, timeout: float = 120) -> str:
        """Wait until Job NAME completes and return its logs; on failure, raise with
        the logs and pod events so the test output says why."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.kubectl_json("-n", namespace, "get", f"job/{name}")
            status = job.get("status", {})
            conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
            if conditions.get("Complete") == "True":
                return self.job_logs(name, namespace)
            if conditions.get("Failed") == "True" or time.monotonic() > deadline:
                raise ClusterError(f"job {name} did not complete (conditions {conditions})\n"
                                   f"{self.describe_pods(namespace, f'job-name={name}')}")
            time.sleep(1)

    def job_logs(self, name: str, namespace: str) -> str:
        return self.kubectl("-n", namespace, "logs", f"job/{name}").stdout

    def describe_pods(self, namespace: str, selector: str) -> str:
        out = self.kubectl("-n", namespace, "describe", "pods", "-l", selector, check=False)
        logs = self.kubectl("-n", namespace, "logs", "-l", selector, "--all-containers",
                            "--tail=50", check=False)
        return f"{out.stdout[-4000:]}\nlogs:\n{logs.stdout[-4000:]}{logs.stderr[-1000:]}"

    def schedulable_nodes(self) -> list[str]:
        """Names of the nodes ordinary pods go to (no NoSchedule/NoExecute taint), sorted."""
        return sorted(
            n["metadata"]["name"] for n in self.kubectl_json("get", "nodes")["items"]
            if not any(t.get("effect") in ("NoSchedule", "NoExecute")
                       for t in n["spec"].get("taints", [])))

    def api(self) -> Any:
        """A `kubernetes` (PyPI) ApiClient configured for this cluster."""
        from kubernetes import config  # imported here: only cluster suites need it

        return config.new_client_from_config(config_file=self.kubeconfig)


def _cluster_sh(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return run(["bash", str(CLUSTER_SH), *args], timeout=timeout)


def session_cluster(up_timeout: float) -> Iterator[Cluster]:
    """Body of a session fixture (tests/cluster, tests/e2e): `cluster.sh up` (building the node
    image when it is not cached, reusing a healthy cluster), yield the Cluster, and delete it
    at the end if this session created it, unless POINTS_MESH_KEEP_CLUSTER=1."""
    was_up = subprocess.run(["bash", str(CLUSTER_SH), "status"], capture_output=True,
                            timeout=120, check=False).returncode == 0
    t0 = time.monotonic()
    up = _cluster_sh("up", timeout=up_timeout)
    t_up = time.monotonic() - t0
    env = parse_env(_cluster_sh("env", timeout=600).stdout)
    c = Cluster(name=env["CLUSTER"], kind_bin=env["KIND"], kubectl_bin=env["KUBECTL"],
                helm_bin=env["HELM"], kubeconfig=env["KUBECONFIG"], node=env["NODE"],
                node_image=env["NODE_IMAGE"], k8s_version=env["K8S_VERSION"],
                workers=int(env.get("WORKERS", "0")),
                created_by_session=not was_up, timings={"up": t_up})
    print(f"\n[cluster] {c.name} up in {t_up:.0f}s ({'created' if not was_up else 'reused'})"
          f"\n{up.stderr.strip()[-1500:]}")
    yield c
    if c.created_by_session and os.environ.get("POINTS_MESH_KEEP_CLUSTER") != "1":
        t0 = time.monotonic()
        _cluster_sh("down", timeout=600)
        print(f"\n[cluster] {c.name} deleted in {time.monotonic() - t0:.0f}s")


def on_node(node: str | None) -> dict[str, Any]:
    """Pod spec fields that pin a pod to NODE (none for None)."""
    return {"nodeSelector": {"kubernetes.io/hostname": node}} if node else {}


def web_app(name: str, image: str, text: str, port: int = 8080,
            node: str | None = None) -> list[dict[str, Any]]:
    """The smoke image serving TEXT over HTTP: a Deployment (app=NAME, readiness on /healthz
    every second, on NODE if given) and a Service NAME on port 80. Used by the smoke and
    add-on suites."""
    labels = {"app": name}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        **on_node(node),
                        "automountServiceAccountToken": False,
                        "containers": [{
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "args": ["serve", "-addr", f":{port}", "-text", text],
                            "ports": [{"containerPort": port}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": port},
                                               "periodSeconds": 1, "failureThreshold": 2},
                        }],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": port}]},
        },
    ]
