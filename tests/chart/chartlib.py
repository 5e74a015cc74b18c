"""Helpers of the chart tests: run helm, parse what it renders, walk pod templates, and
evaluate NetworkPolicies against the labels of the rendered pods.

No cluster is involved: everything here reads `helm template` output.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pointsmesh import ROOT, charttools
from pointsmesh.netpol import (  # noqa: F401  (re-exported for the test modules)
    Endpoint,
    allowed,
    policy_types,
    selector_matches,
    selects,
)

CHART = ROOT / "helm" / "points-mesh"
RELEASE = "points"
NAMESPACE = "pm-chart-test"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
CERT_MANAGER_API = "cert-manager.io/v1"

Obj = dict[str, Any]


def kube_version() -> str:
    """The cluster version ci/kind-airgap builds (K8S_VERSION of versions.env), e.g. 1.34.4."""
    for line in (ROOT / "ci" / "kind-airgap" / "versions.env").read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return line.split("=", 1)[1].strip().lstrip("v")
    raise AssertionError("no K8S_VERSION in ci/kind-airgap/versions.env")


KUBE_VERSION = kube_version()
KUBE_MINOR = ".".join(KUBE_VERSION.split(".")[:2])


@dataclass(frozen=True)
class ValueSet:
    """A set of values the chart is checked with: the defaults or one ci/*-values.yaml."""

    name: str
    file: Path | None = None
    extra_args: tuple[str, ...] = ()

    def args(self) -> list[str]:
        out = ["-f", str(self.file)] if self.file else []
        return out + list(self.extra_args)

    def values(self) -> dict[str, Any]:
        """The effective values (defaults deep-merged with the file, lists replaced)."""
        base = yaml.safe_load((CHART / "values.yaml").read_text())
        if self.file:
            deep_merge(base, yaml.safe_load(self.file.read_text()) or {})
        return base


# Every values file of ci/ and the arguments it needs: the APIs of the custom resources a set
# makes, so that `helm template` there is what an install on a cluster with them renders.
CI_VALUE_FILES: dict[str, tuple[str, ...]] = {
    "replicas": (),
    "external-database": (),
    "no-network-policies": (),
    "servicemonitor": ("--api-versions", SERVICE_MONITOR_API),
    "dashboard": (),
    "fourth-member": (),
    "volume-permissions": (),
    "tls": (),
    "tls-cert-manager": ("--api-versions", CERT_MANAGER_API),
    "nodelocal-dns": (),
    "openshift": (),
}
VALUE_SETS: tuple[ValueSet, ...] = (
    ValueSet("defaults"),
    *(ValueSet(name, CHART / "ci" / f"{name}-values.yaml", args)
      for name, args in CI_VALUE_FILES.items()),
)


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value


# ---------------------------------------------------------------- helm

def helm(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [str(charttools.helm()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def template_cmd(*args: str) -> list[str]:
    return ["template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION, *args]


def render(*args: str) -> list[Obj]:
    """`helm template` of the chart (hooks and the test pod included), parsed."""
    return parse(helm(*template_cmd(*args)).stdout)


@functools.cache
def _rendered(name: str) -> tuple[Obj, ...]:
    vs = next(v for v in VALUE_SETS if v.name == name)
    return tuple(render(*vs.args()))


def rendered(name: str) -> list[Obj]:
    """The objects of the named value set (rendered once per session)."""
    return list(_rendered(name))


class ListItem(dict[str, Any]):
    """An object that came as an item of a `kind: List` document: Helm creates the items of a
    List hook as one hook, under the List's annotations (templates/clients.yaml)."""

    def __init__(self, obj: Obj, container: Obj) -> None:
        super().__init__(obj)
        self.container = container


def parse(text: str) -> list[Obj]:
    """The rendered objects, the items of a List in its place (as kubectl and Helm see them)."""
    docs: list[Obj] = []
    for d in yaml.safe_load_all(text):
        if not d:
            continue
        assert isinstance(d, dict) and "kind" in d and "metadata" in d, f"not an object: {d!r}"
        if d["kind"] == "List":
            docs += [ListItem(item, d) for item in d["items"]]
        else:
            docs.append(d)
    return docs


def find(objs: Sequence[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)]


def one(objs: Sequence[Obj], kind: str, name: str) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def annotations_of(obj: Obj) -> dict[str, str]:
    """The object's annotations; for a List's item, the List's helm.sh/ ones too (Helm runs the
    List as one hook)."""
    own = dict(obj["metadata"].get("annotations") or {})
    if isinstance(obj, ListItem):
        inherited = obj.container["metadata"].get("annotations") or {}
        own |= {k: v for k, v in inherited.items() if k.startswith("helm.sh/")}
    return own


def hook(obj: Obj) -> str:
    return annotations_of(obj).get("helm.sh/hook", "")


def describe(obj: Obj) -> str:
    h = hook(obj)
    return f"{obj['kind']}/{obj['metadata']['name']}" + (f" (hook {h})" if h else "")


# ---------------------------------------------------------------- pods

POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
LONG_RUNNING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


@dataclass
class PodTemplate:
    owner: Obj
    labels: dict[str, str]
    spec: Obj

    @property
    def name(self) -> str:
        return describe(self.owner)

    def containers(self, init: bool = True) -> Iterator[tuple[str, Obj]]:
        for key in (("initContainers", "containers") if init else ("containers",)):
            for c in self.spec.get(key) or []:
                yield key, c

    def container_ports(self) -> dict[str, int]:
        """Named container ports (name -> number)."""
        return {p["name"]: p["containerPort"] for _, c in self.containers()
                for p in c.get("ports") or [] if "name" in p}


def pod_templates(objs: Sequence[Obj]) -> list[PodTemplate]:
    out = []
    for o in objs:
        if o["kind"] == "Pod":
            out.append(PodTemplate(o, dict(o["metadata"].get("labels") or {}), o["spec"]))
        elif o["kind"] in POD_TEMPLATE_KINDS:
            t = o["spec"]["template"]
            out.append(PodTemplate(o, dict(t["metadata"].get("labels") or {}), t["spec"]))
        elif o["kind"] == "CronJob":
            t = o["spec"]["jobTemplate"]["spec"]["template"]
            out.append(PodTemplate(o, dict(t["metadata"].get("labels") or {}), t["spec"]))
    return out


# ---------------------------------------------------------------- NetworkPolicies

def pod_endpoint(t: PodTemplate) -> Endpoint:
    return Endpoint(t.name, t.labels, NAMESPACE, {"kubernetes.io/metadata.name": NAMESPACE},
                    t.container_ports())
