"""The chart as GitOps tools and umbrella charts use it: `helm template` output applied as it is,
rendered again and again, or the chart as a dependency of another chart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from chartlib import (
    CHART,
    KUBE_VERSION,
    ListItem,
    Obj,
    annotations_of,
    find,
    helm,
    hook,
    one,
    parse,
    render,
)

AUTH = ("--set", "database.auth.rootPassword=root-pw", "--set", "database.auth.password=app-pw")


def secret_data(objs: list[Obj]) -> dict[str, str]:
    data: dict[str, str] = one(objs, "Secret", "points-database")["data"]
    return data


def test_two_renders_with_given_passwords_give_the_same_secret() -> None:
    first, second = render(*AUTH), render(*AUTH)
    assert secret_data(first) == secret_data(second)
    assert one(first, "Secret", "points-database")["immutable"] is True


def test_generated_passwords_are_immutable_once_applied() -> None:
    """Without database.auth `helm template` cannot read the cluster and generates new
    passwords each time: the Secret is immutable, so applying a second render is refused by the
    API server and the passwords the database was initialised with stay (the chart README's
    GitOps section says to use database.auth or database.existingSecret instead)."""
    first, second = render(), render()
    assert secret_data(first) != secret_data(second)
    assert one(first, "Secret", "points-database")["immutable"] is True


def test_existing_secret_renders_no_password() -> None:
    objs = render("--set", "database.existingSecret=my-credentials")
    assert find(objs, "Secret") == []


def test_plain_client_jobs_without_helm_hooks() -> None:
    """clients.helmHooks=false: the client Jobs are plain objects of the release, with no Helm
    annotation (what `helm template | kubectl apply` and GitOps tools apply), still named
    client-<member>; ttlSecondsAfterFinished null leaves the field out."""
    objs = render("--set", "clients.helmHooks=false",
                  "--set", "clients.ttlSecondsAfterFinished=null")
    jobs = find(objs, "Job")
    assert sorted(j["metadata"]["name"] for j in jobs) == [
        "client-akmal", "client-azmeer", "client-hasif"]
    for job in jobs:
        assert not any(k.startswith("helm.sh/") for k in job["metadata"].get("annotations") or {})
        assert "ttlSecondsAfterFinished" not in job["spec"]


@pytest.mark.parametrize("print_replies", [False, True])
def test_hook_jobs_rerun_on_rollback(print_replies: bool) -> None:
    """By default the Jobs are the items of one List hook (created and waited for together);
    with clients.printReplies each is a hook of its own whose output Helm prints."""
    objs = render("--set", f"clients.printReplies={str(print_replies).lower()}")
    jobs = find(objs, "Job")
    assert len(jobs) == 3
    assert all(isinstance(j, ListItem) for j in jobs) is not print_replies
    if not print_replies:
        assert len({id(j.container) for j in jobs if isinstance(j, ListItem)}) == 1
    for job in jobs:
        ann = annotations_of(job)
        assert hook(job) == "post-install,post-upgrade,post-rollback"
        assert ("helm.sh/hook-output-log-policy" in ann) is print_replies
        if print_replies:
            assert ann["helm.sh/hook-output-log-policy"] == "hook-succeeded,hook-failed"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation"
        # Each Job's whole run fits in Helm's default --timeout (300 s).
        assert job["spec"]["activeDeadlineSeconds"] < 300
        assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_global_and_enabled_are_accepted() -> None:
    """The strict schema still takes what a parent chart passes down: `global` and `enabled`."""
    objs = render("--set", "global.imagePullSecrets[0].name=x", "--set", "enabled=true")
    assert find(objs, "Deployment")
    refused = helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION,
                   "--set", "globl.x=1", check=False)
    assert refused.returncode != 0 and "globl" in refused.stderr, refused.stderr


def test_as_a_dependency_of_an_umbrella_chart(tmp_path: Path) -> None:
    """An umbrella chart with points-mesh as a dependency (condition points-mesh.enabled, a
    `global` block): rendered with the dependency on, every server is there; off, none."""
    parent = tmp_path / "umbrella"
    (parent / "charts").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "points-mesh")
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    (parent / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "umbrella", "version": "0.1.0",
        "dependencies": [{"name": "points-mesh", "version": version,
                          "condition": "points-mesh.enabled"}]}))
    (parent / "values.yaml").write_text(yaml.safe_dump({
        "global": {"imageRegistry": "registry.example.com"},
        "points-mesh": {"enabled": True, "database": {"auth": {
            "rootPassword": "r", "password": "p"}}}}))
    out = helm("template", "classroom", str(parent), "--namespace", "class",
               "--kube-version", KUBE_VERSION).stdout
    objs = parse(out)
    assert len(find(objs, "Deployment")) == 6
    assert one(objs, "Secret", "classroom-database")["data"]["mysql-password"] == "cA=="  # "p"
    off = helm("template", "classroom", str(parent), "--kube-version", KUBE_VERSION,
               "--set", "points-mesh.enabled=false").stdout
    assert parse(off) == []
