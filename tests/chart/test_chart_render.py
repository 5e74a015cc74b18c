"""helm lint --strict and helm template of every value set; every rendered object valid for the
cluster's Kubernetes version (strict: unknown fields are errors)."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter

import kubernetes_validate
import pytest
import yaml
from chartlib import (
    CERT_MANAGER_API,
    CHART,
    CI_VALUE_FILES,
    KUBE_MINOR,
    KUBE_VERSION,
    NAMESPACE,
    SERVICE_MONITOR_API,
    Obj,
    ValueSet,
    describe,
    find,
    helm,
    hook,
    pod_templates,
    render,
    rendered,
    selector_matches,
    template_cmd,
)

# Kinds of custom resources: kubernetes-validate bundles the schemas of Kubernetes' own APIs
# only, so these are checked by the tests of their own below instead.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("cert-manager.io/v1", "Certificate"), ("cert-manager.io/v1", "Issuer")}


def test_every_ci_values_file_is_a_value_set() -> None:
    files = {p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")}
    assert files == set(CI_VALUE_FILES), "register new ci/*-values.yaml in chartlib.CI_VALUE_FILES"


def test_lint_strict(value_set: ValueSet) -> None:
    # helm lint has no --api-versions (nor needs them: the values alone decide what is made).
    args = [a for a in value_set.args()
            if a not in ("--api-versions", SERVICE_MONITOR_API, CERT_MANAGER_API)]
    proc = helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *args,
                check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "[ERROR]" not in out and "[WARNING]" not in out, out
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_renders_the_expected_kinds(value_set: ValueSet, objs: list[Obj]) -> None:
    values = value_set.values()
    kinds = Counter(o["kind"] for o in objs)
    n = len(values["members"])
    assert kinds["Deployment"] == 2 * n
    assert kinds["StatefulSet"] == (1 if values["database"]["enabled"] else 0)
    test_pods = [p for p in find(objs, "Pod") if hook(p) == "test"]
    assert len(test_pods) == (2 if values["tests"]["enabled"] else 0), \
        "the helm test pods (C and Python client) are missing (templates/tests/ in .helmignore?)"
    # No pre-delete hook: a pod run on uninstall whose image cannot be pulled leaves the
    # release stuck `uninstalling`.
    assert [describe(o) for o in objs if "pre-delete" in hook(o)] == []
    jobs = find(objs, "Job")
    assert len(jobs) == (n if values["clients"]["enabled"] else 0)
    want_hook = "post-install,post-upgrade,post-rollback" if values["clients"]["helmHooks"] else ""
    assert {hook(j) for j in jobs} <= {want_hook}
    assert (kinds["NetworkPolicy"] > 0) == values["networkPolicy"]["enabled"]
    assert (kinds["PodDisruptionBudget"] == 2 * n) == (values["servers"]["replicas"] > 1)


def test_object_identities_are_unique(objs: list[Obj]) -> None:
    """No two rendered objects share kind, namespace and name, hooks included: the output of
    `helm template` can be applied as it is (kubectl apply, kustomize helmCharts, GitOps)."""
    seen = Counter((o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else "",
                    o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                   for o in objs)
    assert [k for k, n in seen.items() if n > 1] == []


def test_objects_are_in_the_release_namespace(objs: list[Obj]) -> None:
    assert [describe(o) for o in objs if o["metadata"].get("namespace") != NAMESPACE] == []


def test_valid_kubernetes_objects(value_set: ValueSet, objs: list[Obj]) -> None:
    errors = []
    for obj in objs:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_MINOR, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.absolute_path)
            errors.append(f"{describe(obj)}: {e.message} at {path}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{describe(obj)}: no schema for {obj['apiVersion']} in {KUBE_MINOR}")
    assert errors == []


def test_validation_is_strict() -> None:
    """The validator itself rejects an unknown field and a wrong type (so the test above can
    fail)."""
    deployment = copy.deepcopy(find(rendered("defaults"), "Deployment")[0])
    kubernetes_validate.validate(deployment, KUBE_MINOR, strict=True)
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["runAsRoot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBE_MINOR, strict=True)
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBE_MINOR, strict=True)


def test_service_monitor_follows_the_values_alone() -> None:
    """metrics.serviceMonitor.enabled decides, not what the cluster serves at render time (a
    `helm template` without --api-versions renders the same objects as an install)."""
    assert find(rendered("defaults"), "ServiceMonitor") == []
    assert find(render("--api-versions", SERVICE_MONITOR_API), "ServiceMonitor") == []
    plain = render("-f", str(CHART / "ci" / "servicemonitor-values.yaml"))
    assert len(find(plain, "ServiceMonitor")) == 1, "not rendered without --api-versions"
    objs = rendered("servicemonitor")
    monitors = find(objs, "ServiceMonitor")
    assert len(monitors) == 1
    spec = monitors[0]["spec"]
    services = find(objs, "Service")
    selected = {s["metadata"]["name"] for s in services
                if selector_matches(spec["selector"], s["metadata"].get("labels") or {})}
    servers = {d["metadata"]["name"] for d in find(objs, "Deployment")}
    assert selected == servers, "the ServiceMonitor must select exactly the server Services"
    ports = {e["port"] for e in spec["endpoints"]}
    for s in services:
        if s["metadata"]["name"] in servers:
            names = {p["name"] for p in s["spec"]["ports"]}
            assert ports <= names, f"{s['metadata']['name']} has no port {ports - names}"
    assert all(e.get("path", "/metrics") == "/metrics" for e in spec["endpoints"])


def test_dashboard_config_map() -> None:
    assert not [c for c in find(rendered("defaults"), "ConfigMap")
                if "grafana_dashboard" in (c["metadata"].get("labels") or {})]
    boards = [c for c in find(rendered("dashboard"), "ConfigMap")
              if (c["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
    assert len(boards) == 1
    (text,) = boards[0]["data"].values()
    assert json.loads(text) == json.loads((CHART / "files" / "dashboard.json").read_text())


def test_pod_templates_are_found() -> None:
    """The walker of the hardening and policy tests sees every kind of pod the chart makes."""
    kinds = {t.owner["kind"] for t in pod_templates(rendered("defaults"))}
    assert kinds == {"Deployment", "StatefulSet", "Job", "Pod"}


def test_replicated_servers_spread_over_schedulable_nodes() -> None:
    """With replicas > 1 each server's pods must land on different nodes, counting only nodes
    the pods may run on (a tainted control plane, a cordoned or a lost node is no domain, so the
    pods of a lost node can be rescheduled onto the nodes left)."""
    for dep in find(rendered("replicas"), "Deployment"):
        pod = dep["spec"]["template"]
        (spread,) = pod["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert (spread["maxSkew"], spread["whenUnsatisfiable"], spread["nodeTaintsPolicy"]) \
            == (1, "DoNotSchedule", "Honor")
        assert selector_matches({"matchLabels": spread["labelSelector"]["matchLabels"]},
                                pod["metadata"]["labels"])
        assert spread["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    for dep in find(rendered("defaults"), "Deployment"):
        assert "topologySpreadConstraints" not in dep["spec"]["template"]["spec"]


def test_db_name_is_the_database_the_schema_creates(value_set: ValueSet, objs: list[Obj]) -> None:
    """Every server's DB_NAME is the database the chart's SQL creates (its own database) or
    externalDatabase.name: never empty (a server given an empty name has no table)."""
    values = value_set.values()
    schema = (CHART / "files" / "sql" / "01-schema.sql").read_text()
    created = re.search(r"CREATE DATABASE IF NOT EXISTS (\w+)", schema)
    assert created, "files/sql/01-schema.sql creates no database"
    want = created[1] if values["database"]["enabled"] else values["externalDatabase"]["name"]
    seen = 0
    for t in pod_templates(objs):
        for _, c in t.containers():
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            if "DB_NAME" in env:
                assert env["DB_NAME"] == want, (t.name, c["name"], env["DB_NAME"])
                seen += 1
    assert seen >= 2 * len(values["members"]), seen



def _images(objs: list[Obj]) -> set[str]:
    return {c["image"] for t in pod_templates(objs) for _, c in t.containers()}


def test_image_registry_and_digests_reach_every_image() -> None:
    """global.imageRegistry (a parent chart's) replaces the registry of every image, the
    database's too; a digest pins an image as <ref>:<tag>@<digest>."""
    digest = "sha256:" + "ab" * 32
    objs = render("--set", "global.imageRegistry=mirror.example.com:5000/team",
                  "--set", "database.volumePermissions.enabled=true",
                  "--set", f"image.digests.cServer={digest}",
                  "--set", f"database.image.digest={digest}")
    images = _images(objs)
    app = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert images == {
        f"mirror.example.com:5000/team/pointsmesh/c-server:{app}@{digest}",
        f"mirror.example.com:5000/team/pointsmesh/python-server:{app}",
        f"mirror.example.com:5000/team/pointsmesh/c-client:{app}",
        f"mirror.example.com:5000/team/pointsmesh/python-client:{app}",
        f"mirror.example.com:5000/team/mysql:8.4@{digest}",
    }, images
    own = _images(render("--set", "image.registry=r.example.com/",
                         "--set", "database.image.registry=db.example.com/"))
    assert "db.example.com/mysql:8.4" in own and all(
        i.startswith(("r.example.com/pointsmesh/", "db.example.com/")) for i in own), own
    refused = helm(*template_cmd("--set", "image.digests.cServer=sha256:short"), check=False)
    assert refused.returncode != 0 and "digests" in refused.stderr, refused.stderr


def test_kube_version_constraint() -> None:
    """Chart.yaml refuses clusters older than 1.30 (the preStop sleep action) at once, with
    Helm's own message, and takes this one and the default of a `helm template` (Helm's own
    client version) without flags."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.30.0-0"
    assert helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION).returncode == 0
    assert helm("template", "x", str(CHART)).returncode == 0
    old = helm("template", "x", str(CHART), "--kube-version", "1.29.9", check=False)
    assert old.returncode != 0 and "kubeVersion" in old.stderr, old.stderr
