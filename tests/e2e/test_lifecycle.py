"""The chart as users run it outside `helm install --wait`: rendered by `helm template` and
applied again and again, as a GitOps controller syncs; removed while its images cannot be
pulled; run by Helm 3, upgraded from the release users already have."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from e2elib import (
    DB,
    INSTANCE,
    INTERVAL,
    MEASURE,
    RELEASE,
    ROSTER,
    SERVERS,
    Space,
    log,
    printed_reply,
    reply_for,
    unique,
)

from pointsmesh import ROOT, k8s

CHART = str(k8s.CHART)
JOBS = [f"client-{m.name}" for m in ROSTER]
# The chart users already run: the first published, 1.0.0, as it was at this commit.
PREVIOUS_RELEASE = ("1.0.0", "d0fe9d7")


def _render(sp: Space, values: dict[str, Any], path: Path) -> str:
    """`helm template` as a GitOps tool runs it: no cluster access, so no `lookup`."""
    vfile = k8s.write_values(values, path)
    helm = k8s.find_helm()
    assert helm
    return k8s.run([helm, "template", RELEASE, CHART, "-n", sp.ns, "-f", str(vfile)],
                   timeout=120).stdout


def _apply(sp: Space, manifest: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sp.kube.kubectl("-n", sp.ns, "apply", "-f", "-", input=manifest, check=check,
                           timeout=180)


def _generations(sp: Space) -> dict[str, int]:
    """metadata.generation of every workload of the namespace (a changed spec bumps it)."""
    items = sp.get("statefulsets,deployments,jobs")["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["generation"] for o in items}


def _restart_and_wait(sp: Space, selector: str, kind_name: str) -> float:
    """Delete the pods of SELECTOR; seconds until KIND_NAME is ready again (its readiness
    probe authenticates to the database with the password the pod now mounts)."""
    t0 = time.monotonic()
    sp.kubectl("delete", "pod", "-l", selector, "--wait=true", timeout=120)
    sp.wait_ready(kind_name, timeout=180)
    return time.monotonic() - t0


def test_gitops_double_sync_changes_no_password(kube: k8s.Kube, values: dict[str, Any],
                                                tmp_path: Path) -> None:
    """Render and apply twice with the passwords given (database.auth, plain client Jobs): the
    second apply changes nothing, and pods restarted after it (a server of each language, then
    the database) authenticate and answer. A third render without the passwords (a sync that
    lost them) is refused on the immutable Secret only: the passwords stay, and a server
    restarted after it still authenticates."""
    sp = Space(kube, unique("e2e-gitops"))
    vals = k8s.merge_values(values, {
        "database": {"auth": {"rootPassword": secrets.token_urlsafe(18),
                              "password": secrets.token_urlsafe(18)}},
        "clients": {"helmHooks": False}, "tests": {"enabled": False}})
    kube.kubectl("create", "namespace", sp.ns)
    try:
        first = _render(sp, vals, tmp_path / "values.yaml")
        assert "helm.sh/hook" not in first
        t0 = time.monotonic()
        _apply(sp, first)
        kube.wait_jobs(JOBS, sp.ns, timeout=420)
        MEASURE["gitops: first apply -> all client Jobs complete (s)"] = time.monotonic() - t0
        for m in ROSTER:
            logs = kube.job_logs(f"client-{m.name}", sp.ns)
            assert reply_for(m.c_row).search(logs) and reply_for(m.python_row).search(logs), logs
        secret = sp.get(f"secret/{DB}")["data"]

        second = _render(sp, vals, tmp_path / "values-again.yaml")
        assert second == first, "two renders with the same values differ"
        generations = _generations(sp)
        out = _apply(sp, second).stdout
        # Nothing changed: no workload rolled (kubectl may still say "configured" for a
        # StatefulSet, whose claim templates the API server fills in).
        assert _generations(sp) == generations, out
        assert sp.get(f"secret/{DB}")["data"] == secret
        server_c, server_py = SERVERS[0].name, SERVERS[1].name
        MEASURE["gitops: server pods restarted after the second sync -> ready (s)"] = max(
            _restart_and_wait(sp, f"points-mesh.io/server={name}", f"deployment/{name}")
            for name in (server_c, server_py))
        MEASURE["gitops: database pod restarted after the second sync -> ready (s)"] = \
            _restart_and_wait(sp, "app.kubernetes.io/component=database", f"statefulset/{DB}")

        lost = k8s.merge_values(vals, {"database": {"auth": {"rootPassword": "", "password": ""}}})
        third = _render(sp, lost, tmp_path / "values-lost.yaml")
        refused = _apply(sp, third, check=False)
        assert refused.returncode != 0, refused.stdout
        # kubectl applies the rest and names the one object refused: the Secret.
        assert f'Secret "{DB}" is invalid' in refused.stderr, refused.stderr
        assert "immutable" in refused.stderr, refused.stderr
        assert sp.get(f"secret/{DB}")["data"] == secret
        _restart_and_wait(sp, f"points-mesh.io/server={server_c}", f"deployment/{server_c}")
        for s in SERVERS:
            sp.wait_ready(f"deployment/{s.name}", timeout=180)
        log("gitops: two syncs changed nothing; a sync without the passwords was refused")
    finally:
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)


def test_uninstall_with_images_that_cannot_be_pulled(kube: k8s.Kube,
                                                     values: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """The most common first failure on a local cluster: the images are not there. The release
    is installed anyway (no hooks, no wait: its pods sit in ErrImagePull), and `helm uninstall`
    completes at once and starts no pod: nothing is left but the documented kept Secret."""
    sp = Space(kube, unique("e2e-nopull"))
    vals = k8s.merge_values(values, {"image": {"tag": "no-such-tag", "pullPolicy": "Never"}})
    vfile = k8s.write_values(vals, tmp_path / "values.yaml")
    kube.kubectl("create", "namespace", sp.ns)
    try:
        sp.helm("install", RELEASE, CHART, "-f", str(vfile), "--no-hooks")
        deadline = time.monotonic() + 120
        while True:   # a server pod that cannot start for want of its image
            waiting = [c.get("state", {}).get("waiting", {}).get("reason")
                       for p in sp.pods("points-mesh.io/server")
                       for c in p["status"].get("containerStatuses", [])]
            if any(r in ("ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff")
                   for r in waiting):
                break
            assert time.monotonic() < deadline, waiting
            time.sleep(2)
        pods_before = {p["metadata"]["name"] for p in sp.get("pods")["items"]}
        t0 = time.monotonic()
        sp.helm("uninstall", RELEASE, "--wait", "--timeout", "2m")
        MEASURE["helm uninstall, images not pullable (s)"] = time.monotonic() - t0
        assert {p["metadata"]["name"] for p in sp.get("pods")["items"]} <= pods_before
        sel = f"{INSTANCE}={RELEASE}"
        sp.wait_gone("pods", sel, timeout=120)
        left = sp.get("deployments,statefulsets,jobs,services,configmaps,networkpolicies,"
                      "persistentvolumeclaims,secrets", "-l", sel)["items"]
        kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in left)
        # The database's claim stays too when its pod got as far as binding it.
        assert [k for k in kinds if not k.startswith("PersistentVolumeClaim/")] == \
            [f"Secret/{DB}"], kinds
        status = sp.helm("status", RELEASE, check=False)
        assert "not found" in status, status
    finally:
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)



def _previous_chart(dest: Path) -> Path:
    """helm/points-mesh as released in PREVIOUS_RELEASE, out of git history."""
    version, commit = PREVIOUS_RELEASE
    try:
        at = k8s.run(["git", "-C", str(ROOT), "show", f"{commit}:VERSION"], timeout=30).stdout
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "helm/points-mesh"],
                                 capture_output=True, check=True, timeout=60).stdout
    except (k8s.K8sError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"the previous release's chart ({version} at {commit}) is not in this "
                    f"clone's history (a shallow clone?): {exc}")
    assert at.strip() == version, f"{commit} is version {at.strip()}, not {version}"
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=60)
    return dest / "helm" / "points-mesh"


def test_helm3_user_upgrades_from_the_previous_release(kube: k8s.Kube, values: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """A Helm 3 user (the newest 3.x) who runs the previous release (chart 1.0.0) upgrades to
    this one, as the README says: the data, the passwords and the client Jobs' output carry
    over; then the whole lifecycle under Helm 3: `kubectl logs job/client-<member>`, a second
    upgrade with --reuse-values, a rollback (which re-runs the clients), uninstall."""
    helm3 = k8s.run(["bash", str(k8s.KIND_AIRGAP / "helm.sh"), "path", "3"],
                    timeout=1800).stdout.strip()
    kube3 = dataclasses.replace(kube, helm_bin=helm3)
    assert "v3." in kube3.helm("version", "--short").stdout
    sp = Space(kube3, unique("e2e-helm3"))
    vfile = k8s.write_values(values, tmp_path / "values.yaml")
    old_chart = _previous_chart(tmp_path / "previous")
    kube.kubectl("create", "namespace", sp.ns)
    try:
        t0 = time.monotonic()
        sp.helm("install", RELEASE, str(old_chart), "-f", str(vfile), "--wait", "--timeout", "10m")
        MEASURE["helm 3: install of the previous release (s)"] = time.monotonic() - t0
        secret = sp.get(f"secret/{DB}")["data"]
        jobs0 = {j: sp.get(f"job/{j}")["metadata"]["uid"] for j in JOBS}
        before = sp.rows()

        t0 = time.monotonic()
        out = sp.helm("upgrade", RELEASE, CHART, "-f", str(vfile), "--wait", "--timeout", "10m")
        MEASURE["helm 3: upgrade from the previous release (s)"] = time.monotonic() - t0
        assert sp.get(f"secret/{DB}")["data"] == secret, "the passwords changed on upgrade"
        assert sp.get(f"secret/{DB}").get("immutable") is True
        for m in ROSTER:
            job = f"client-{m.name}"
            assert sp.get(f"job/{job}")["metadata"]["uid"] != jobs0[job], "Job not re-run"
            logs = kube.job_logs(job, sp.ns)
            assert reply_for(m.c_row).search(logs) and reply_for(m.python_row).search(logs), logs
        after = sp.rows()
        assert all(after[s.row].points >= before[s.row].points for s in SERVERS), (before, after)
        # No object of the previous release's uninstall cleanup is left.
        assert not sp.get("jobs,pods", "-l", "app.kubernetes.io/component=uninstall-cleanup")[
            "items"]

        # The clients as one hook per member: Helm 3 prints each reply.
        out = sp.helm("upgrade", RELEASE, CHART, "--reuse-values", "--set",
                      "servers.logLevel=debug", "--set", "clients.printReplies=true",
                      "--wait", "--timeout", "10m")
        for m in ROSTER:
            assert printed_reply(m.c_row).search(out), out[-3000:]
        assert sp.get(f"secret/{DB}")["data"] == secret
        jobs2 = {j: sp.get(f"job/{j}")["metadata"]["uid"] for j in JOBS}
        sp.helm("rollback", RELEASE, "2", "--wait", "--timeout", "5m")
        for m in ROSTER:
            job = f"client-{m.name}"
            assert sp.get(f"job/{job}")["metadata"]["uid"] != jobs2[job], "rollback ran no client"
            logs = sp.kubectl("logs", f"job/{job}")
            assert reply_for(m.c_row).search(logs), logs
        time.sleep(INTERVAL)
        final = sp.rows()
        assert all(final[s.row].points >= after[s.row].points for s in SERVERS)
        t0 = time.monotonic()
        sp.helm("uninstall", RELEASE, "--wait", "--timeout", "3m")
        MEASURE["helm 3: uninstall (s)"] = time.monotonic() - t0
        left = sp.get("deployments,statefulsets,services,configmaps,networkpolicies", "-l",
                      f"{INSTANCE}={RELEASE}")["items"]
        assert not left, [f"{o['kind']}/{o['metadata']['name']}" for o in left]
        log("helm 3: previous release -> this one, reuse-values upgrade, rollback, uninstall")
    finally:
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)
