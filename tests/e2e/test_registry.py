"""The chart and its images from a real OCI registry, as users with a registry install them:
the four images pushed, the chart packaged and pushed (`helm package`, `helm push`), then
`helm install oci://<registry>/charts/points-mesh --version <VERSION>`, with every image pulled
by the nodes' containerd from that registry (ci/kind-airgap/registry.sh: go-containerregistry's
registry beside the kind cluster)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2elib import MEASURE, RELEASE, ROSTER, Space, log, reply_for, unique

from pointsmesh import k8s

REGISTRY_SH = k8s.KIND_AIRGAP / "registry.sh"


@pytest.fixture(scope="module")
def registry(target: k8s.Target) -> Iterator[str]:
    """localhost:<port>: the registry, reachable from this host and (through containerd's
    registry configuration) from every node."""
    if not target.project_kind:
        pytest.skip("SKIPPED: the registry test runs beside the project's kind cluster "
                    f"(registry.sh configures its nodes); this cluster is {target.description}")
    t0 = time.monotonic()
    env = k8s.parse_env(k8s.run(["bash", str(REGISTRY_SH), "up"], timeout=1800).stdout)
    MEASURE["registry: up (s)"] = time.monotonic() - t0
    try:
        yield env["REGISTRY"]
    finally:
        k8s.run(["bash", str(REGISTRY_SH), "down"], check=False, timeout=120)


def _pushed_digests(registry: str, images: k8s.Images) -> dict[str, str]:
    """Push the four images (as built for this run) to REGISTRY; their repository digests."""
    digests = {}
    for name in k8s.IMAGES:
        src = f"{images.registry}{k8s.IMAGE_PREFIX}/{name}:{images.tag}"
        dst = f"{registry}/{k8s.IMAGE_PREFIX}/{name}:{images.tag}"
        k8s.run(["docker", "tag", src, dst], timeout=60)
        k8s.run(["docker", "push", "-q", dst], timeout=600)
        repo_digests = json.loads(k8s.run(
            ["docker", "image", "inspect", "-f", "{{json .RepoDigests}}", dst], timeout=60).stdout)
        (digest,) = [d.split("@", 1)[1] for d in repo_digests
                     if d.startswith(f"{registry}/{k8s.IMAGE_PREFIX}/{name}@")]
        digests[name] = digest
    return digests


def test_install_from_an_oci_registry(registry: str, kube: k8s.Kube, images: k8s.Images,
                                      values: dict[str, Any], tmp_path: Path) -> None:
    t0 = time.monotonic()
    digests = _pushed_digests(registry, images)
    version = yaml.safe_load((k8s.CHART / "Chart.yaml").read_text())["version"]
    helm = kube.helm_bin
    k8s.run([helm, "package", str(k8s.CHART), "-d", str(tmp_path)], timeout=120)
    pushed = k8s.run([helm, "push", str(tmp_path / f"points-mesh-{version}.tgz"),
                      f"oci://{registry}/charts", "--plain-http"], timeout=120)
    assert "Digest: sha256:" in pushed.stdout + pushed.stderr, pushed.stderr
    MEASURE["registry: four images and the chart pushed (s)"] = time.monotonic() - t0

    sp = Space(kube, unique("e2e-oci"))
    vals = k8s.merge_values(values, {"image": {"registry": f"{registry}/",
                                               "pullPolicy": "IfNotPresent"}})
    vfile = k8s.write_values(vals, tmp_path / "values.yaml")
    kube.kubectl("create", "namespace", sp.ns)
    try:
        t0 = time.monotonic()
        sp.helm("install", RELEASE, f"oci://{registry}/charts/points-mesh", "--version", version,
                "--plain-http", "-f", str(vfile), "--wait", "--timeout", "10m")
        MEASURE["registry: helm install oci:// with pulled images (s)"] = time.monotonic() - t0
        meta = json.loads(sp.helm("get", "metadata", RELEASE, "-o", "json"))
        assert (meta["chart"], meta["version"]) == ("points-mesh", version), meta
        for m in ROSTER:
            logs = kube.job_logs(f"client-{m.name}", sp.ns)
            assert reply_for(m.c_row).search(logs) and reply_for(m.python_row).search(logs), logs

        # Every container of the release names the registry's image; on its node, containerd
        # pulled that reference (its log) and holds it with the manifest digest pushed, byte
        # for byte. (The kubelet's imageID may name the same content by the tag `kind load`
        # gave it earlier, so the node's own image store is asked.)
        seen: dict[str, set[str]] = {}
        for pod in sp.get("pods")["items"]:
            for c in pod["spec"]["containers"]:
                if c["image"].startswith(f"{registry}/"):
                    name = c["image"].split("/")[-1].split(":")[0]
                    seen.setdefault(name, set()).add(pod["spec"]["nodeName"])
        assert set(seen) == set(k8s.IMAGES), seen
        pulls = 0
        for name, nodes in seen.items():
            ref = f"{registry}/{k8s.IMAGE_PREFIX}/{name}:{images.tag}"
            for node in nodes:
                journal = k8s.run(["docker", "exec", node, "journalctl", "-u", "containerd",
                                   "--no-pager", "-o", "cat"], timeout=60).stdout
                assert f'PullImage \\"{ref}\\"' in journal or f'PullImage "{ref}"' in journal, \
                    f"{node} never pulled {ref}"
                held = k8s.run(["docker", "exec", node, "ctr", "-n", "k8s.io", "images", "ls",
                                f"name=={ref}"], timeout=60).stdout.splitlines()[1:]
                assert [line.split()[2] for line in held] == [digests[name]], (node, ref, held)
                pulls += 1
        MEASURE["registry: image pulls by the nodes (checked in containerd's log)"] = pulls
        log(f"installed oci://{registry}/charts/points-mesh {version}; {pulls} pulls")
        sp.helm("uninstall", RELEASE, "--wait", "--timeout", "3m")
    finally:
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)
