"""Render the plain manifests k8s/points-mesh.generated.yaml from the Helm chart.

One of pointsmesh.render's targets (so `make render` writes it and the test suite fails on
drift): `helm template` of helm/points-mesh with its defaults, release name `points`, except
that the database credentials come from the Secret that k8s/kustomization.yaml generates
(database.existingSecret), so no password is rendered or committed. Then, for `kubectl apply`:
  - the client Jobs are plain Jobs (clients.helmHooks=false) and there is no `helm test` pod
    (tests.enabled=false); any hook object left would fail the render;
  - `metadata.namespace` goes (kubectl's namespace, or the kustomization's, applies), and so do
    the labels that say Helm manages the objects.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import ROOT, charttools
from .render_chart import CHART

K8S_DIR = ROOT / "k8s"
MANIFEST = K8S_DIR / "points-mesh.generated.yaml"
RELEASE = "points"
# The Secret k8s/kustomization.yaml's secretGenerator makes (keys mysql-root-password and
# mysql-password, from k8s/database.env).
SECRET = "points-database"


def kube_version() -> str:
    """The Kubernetes version the project's cluster runs (K8S_VERSION of
    ci/kind-airgap/versions.env): the render does not depend on which helm made it."""
    for line in (ROOT / "ci" / "kind-airgap" / "versions.env").read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("no K8S_VERSION in ci/kind-airgap/versions.env")


def helm_template(*args: str) -> list[dict[str, Any]]:
    """The objects `helm template RELEASE CHART ARGS...` renders (hooks included)."""
    proc = subprocess.run(
        [str(charttools.helm()), "template", RELEASE, str(CHART), "--kube-version",
         kube_version(), *args],
        capture_output=True, text=True, check=False, timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def plain(obj: dict[str, Any]) -> dict[str, Any]:
    """OBJ as a plain manifest (no Helm annotations or labels, no namespace)."""
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    if "helm.sh/hook" in annotations:
        raise RuntimeError(f"a Helm hook in the plain manifests: {obj['kind']}/{meta.get('name')}")
    for key in [k for k in annotations if k.startswith("helm.sh/")]:
        del annotations[key]
    if not annotations:
        meta.pop("annotations", None)
    meta.pop("namespace", None)
    labels = meta.get("labels") or {}
    labels.pop("helm.sh/chart", None)
    if labels.get("app.kubernetes.io/managed-by") == "Helm":
        labels["app.kubernetes.io/managed-by"] = "kustomize"
    return obj


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts, SQL) as literal blocks, so the file reads like the chart."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def render_manifest() -> str:
    objs = helm_template("--set", f"database.existingSecret={SECRET}",
                         "--set", "clients.helmHooks=false", "--set", "tests.enabled=false")
    out = [plain(o) for o in objs]
    head = (
        "# Generated from helm/points-mesh (its defaults, release `points`) by `make render`\n"
        "# (tools/pointsmesh/render_k8s.py). Do not edit: change the chart and re-render.\n"
        "# Apply with `kubectl apply -k k8s/` (see k8s/README.md).\n"
    )
    docs = yaml.dump_all(
        out, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )
    return head + "---\n" + docs


def k8s_targets() -> dict[Path, Callable[[], str]]:
    return {MANIFEST: render_manifest}
