"""The plain manifests (k8s/, rendered from the chart) deploy and serve with
`kubectl apply -k`, as the README tells a user: k8s/ copied beside a database.env with fresh
passwords, plus an overlay with this run's namespace and images (and, on clusters whose volumes
ignore fsGroup, the chart's volume-permissions init container)."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import yaml
from e2elib import DB, ROSTER, Space, reply_for, unique

from pointsmesh import ROOT, k8s


def _volume_permissions_patch(values: dict[str, Any]) -> dict[str, Any]:
    """The chart's own init container (helm template with volumePermissions on), as a
    strategic-merge patch of the database StatefulSet."""
    proc = k8s.run(
        [k8s.find_helm() or "helm", "template", "points", str(k8s.CHART),
         "--set", "database.volumePermissions.enabled=true",
         "--set", f"database.image.repository={values['database']['image']['repository']}",
         "--set", f"database.image.tag={values['database']['image']['tag']}",
         "--show-only", "templates/database.yaml"], timeout=120)
    sts = next(d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "StatefulSet")
    init = sts["spec"]["template"]["spec"]["initContainers"]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": DB},
            "spec": {"template": {"spec": {"initContainers": init}}}}


def test_plain_manifests_deploy_and_serve(kube: k8s.Kube, images: k8s.Images,
                                          values: dict[str, Any], tmp_path: Path) -> None:
    base = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", base, ignore=shutil.ignore_patterns("database.env"))
    (base / "database.env").write_text(
        f"mysql-root-password={secrets.token_urlsafe(18)}\n"
        f"mysql-password={secrets.token_urlsafe(18)}\n")
    sp = Space(kube, unique("e2e-plain"))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": sp.ns,
        "resources": ["../k8s"],
        "images": [
            {"name": f"pointsmesh/{name}", "newName": f"{images.registry}pointsmesh/{name}",
             "newTag": images.tag} for name in k8s.IMAGES
        ],
    }
    if images.db_image:
        repo, tag = k8s.split_image_ref(images.db_image)
        kustomization["images"].append({"name": "mysql", "newName": repo, "newTag": tag})
    if values.get("database", {}).get("volumePermissions", {}).get("enabled"):
        (overlay / "volume-permissions.yaml").write_text(
            yaml.safe_dump(_volume_permissions_patch(values)))
        kustomization["patches"] = [{"path": "volume-permissions.yaml"}]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    kube.kubectl("create", "namespace", sp.ns)
    try:
        kube.kubectl("apply", "-k", str(overlay), timeout=120)
        jobs = [f"client-{m.name}" for m in ROSTER]
        kube.wait_jobs(jobs, sp.ns, timeout=420)
        for m in ROSTER:
            assert reply_for(m.c_row).search(sp.kubectl("logs", f"job/client-{m.name}"))
            assert reply_for(m.python_row).search(
                sp.kubectl("logs", f"job/client-{m.name}", "-c", "python-client"))
        secret = sp.get(f"secret/{DB}")
        assert set(secret["data"]) == {"mysql-root-password", "mysql-password"}
        assert len(sp.get("networkpolicies")["items"]) >= 3
    finally:
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)
