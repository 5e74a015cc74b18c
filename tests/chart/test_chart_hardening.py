"""Every container of every rendered pod (Deployments, StatefulSets, Jobs, the test Pod, their
init containers) runs hardened: non-root, read-only root filesystem, no privilege escalation,
no capabilities, RuntimeDefault seccomp, requests and a memory limit, no service account token;
long-running containers have liveness and readiness probes.

One documented exception: the database's optional `volume-permissions` init container
(database.volumePermissions.enabled) runs as root with the single capability CHOWN. It is
checked for exactly that, not skipped.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from chartlib import LONG_RUNNING_KINDS, Obj, PodTemplate, ValueSet, pod_templates, rendered

VOLUME_PERMISSIONS = "volume-permissions"


def effective(pod_sc: dict[str, Any], sc: dict[str, Any], key: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    return sc[key] if key in sc else pod_sc.get(key)


def is_volume_permissions(t: PodTemplate, key: str, c: Obj) -> bool:
    return (t.owner["kind"] == "StatefulSet" and key == "initContainers"
            and c["name"] == VOLUME_PERMISSIONS)


def container_problems(t: PodTemplate, key: str, c: Obj) -> list[str]:
    pod_sc = t.spec.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    problems = []
    exception = is_volume_permissions(t, key, c)
    if exception:
        if effective(pod_sc, sc, "runAsUser") != 0 or effective(pod_sc, sc, "runAsNonRoot"):
            problems.append("volume-permissions is expected to run as root (uid 0)")
        if caps.get("add") != ["CHOWN"]:
            problems.append(f"volume-permissions must add exactly [CHOWN], adds {caps.get('add')}")
    else:
        if effective(pod_sc, sc, "runAsNonRoot") is not True:
            problems.append("runAsNonRoot is not true")
        if effective(pod_sc, sc, "runAsUser") == 0:
            problems.append("runAsUser is 0")
        if caps.get("add"):
            problems.append(f"adds capabilities {caps['add']}")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        problems.append("privileged")
    if "ALL" not in (caps.get("drop") or []):
        problems.append("capabilities do not drop ALL")
    seccomp = effective(pod_sc, sc, "seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append(f"seccompProfile is {seccomp or 'unset'}, not RuntimeDefault")
    resources = c.get("resources") or {}
    requests = resources.get("requests") or {}
    if not {"cpu", "memory"} <= set(requests):
        problems.append(f"requests {requests} lack cpu or memory")
    if "memory" not in (resources.get("limits") or {}):
        problems.append("no memory limit")
    if key == "containers" and t.owner["kind"] in LONG_RUNNING_KINDS:
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                problems.append(f"no {probe}")
    return [f"{t.name} {key}/{c['name']}: {p}" for p in problems]


def pod_problems(t: PodTemplate) -> list[str]:
    problems = []
    if t.spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{t.name}: automountServiceAccountToken is not false")
    if t.spec.get("hostNetwork") or t.spec.get("hostPID") or t.spec.get("hostIPC"):
        problems.append(f"{t.name}: uses a host namespace")
    for key, c in t.containers():
        problems += container_problems(t, key, c)
    return problems


def test_every_container_is_hardened(objs: list[Obj]) -> None:
    templates = pod_templates(objs)
    assert templates, "no pod templates rendered"
    problems = [p for t in templates for p in pod_problems(t)]
    assert problems == []


def test_volume_permissions_is_the_only_root_container(value_set: ValueSet,
                                                       objs: list[Obj]) -> None:
    """The exception exists exactly when enabled, in the database StatefulSet only."""
    found = [(t.name, key) for t in pod_templates(objs) for key, c in t.containers()
             if c["name"] == VOLUME_PERMISSIONS]
    values = value_set.values()
    enabled = values["database"]["enabled"] and values["database"]["volumePermissions"]["enabled"]
    if enabled:
        assert len(found) == 1 and found[0][1] == "initContainers", found
        assert found[0][0].startswith("StatefulSet/"), found
    else:
        assert found == []


def test_volume_permissions_value_set_exercises_the_exception() -> None:
    templates = pod_templates(rendered("volume-permissions"))
    assert any(c["name"] == VOLUME_PERMISSIONS for t in templates for _, c in t.containers())


@pytest.mark.parametrize("mutation", [
    ("runAsNonRoot", False), ("readOnlyRootFilesystem", False),
    ("allowPrivilegeEscalation", True), ("capabilities", {"drop": ["NET_RAW"]}),
    ("capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}),
    ("seccompProfile", {"type": "Unconfined"}), ("privileged", True),
])
def test_checker_catches(mutation: tuple[str, Any]) -> None:
    """The checker reports each weakened setting (so the tests above can fail)."""
    key, value = mutation
    t = next(t for t in pod_templates(rendered("defaults")) if t.owner["kind"] == "Deployment")
    assert pod_problems(t) == []
    spec = copy.deepcopy(t.spec)
    spec["containers"][0].setdefault("securityContext", {})[key] = value
    assert pod_problems(PodTemplate(t.owner, t.labels, spec)) != []


def test_checker_catches_missing_probe_and_limit() -> None:
    t = next(t for t in pod_templates(rendered("defaults")) if t.owner["kind"] == "Deployment")
    for path in (("readinessProbe",), ("resources", "limits")):
        spec = copy.deepcopy(t.spec)
        target = spec["containers"][0]
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
        assert pod_problems(PodTemplate(t.owner, t.labels, spec)) != [], path


def test_openshift_value_set_asks_for_no_fixed_ids() -> None:
    """With the OpenShift-like value set no pod or container asks for a user, group or fsGroup
    (the platform assigns them), and every container is still hardened (the test above runs
    over that set too); by default every one of them names its user."""
    def ids(objs: list[Obj]) -> list[str]:
        found = []
        for t in pod_templates(objs):
            contexts = [t.spec.get("securityContext") or {}] + [
                c.get("securityContext") or {} for _, c in t.containers()]
            found += [f"{t.name}: {k}" for sc in contexts
                      for k in ("runAsUser", "runAsGroup", "fsGroup") if k in sc]
        return found

    assert ids(rendered("openshift")) == []
    defaults = rendered("defaults")
    assert len(ids(defaults)) >= 3 * len(pod_templates(defaults))
