"""The GitHub workflows, which cannot run here (no GitHub, no registry to push to), checked
statically: actionlint finds nothing, and the release builds and pushes exactly the images and
the chart the project has, multi-arch, with an SBOM, only for a tag that is v + VERSION."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from pointsmesh import ROOT, charttools, k8s

WORKFLOWS = ROOT / ".github" / "workflows"


def _release() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    return data


def test_actionlint_finds_nothing() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 2, files
    proc = subprocess.run([str(charttools.actionlint()), *files], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_release_runs_on_version_tags_and_checks_the_version() -> None:
    wf = _release()
    on = wf[True] if True in wf else wf["on"]   # YAML 1.1 reads the key `on` as true
    assert on == {"push": {"tags": ["v*.*.*"]}}
    script = wf["jobs"]["version"]["steps"][-1]["run"]
    assert "$(cat VERSION)" in script and '"v$version"' in script and "exit 1" in script


def test_release_builds_every_image_multi_arch_with_an_sbom() -> None:
    job = _release()["jobs"]["images"]
    matrix = {m["name"]: m["dockerfile"] for m in job["strategy"]["matrix"]["include"]}
    assert matrix == {name: dockerfile for name, (dockerfile, _) in k8s.IMAGES.items()}
    (build,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
        "docker/build-push-action@")]
    w = build["with"]
    assert set(w["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert w["push"] is True and w["sbom"] is True
    assert w["build-args"] == "VERSION=${{ needs.version.outputs.version }}"
    assert w["tags"].endswith(
        f"/{k8s.IMAGE_PREFIX}/${{{{ matrix.name }}}}:${{{{ needs.version.outputs.version }}}}")
    assert job["permissions"]["packages"] == "write"


def test_release_pushes_the_chart_as_oci() -> None:
    job = _release()["jobs"]["chart"]
    assert job["needs"] == ["version", "images"]   # images first: the chart points at them
    script = job["steps"][-1]["run"]
    assert "helm package helm/points-mesh" in script
    assert 'helm push "dist/points-mesh-$VERSION.tgz" "oci://ghcr.io/$OWNER/charts"' in script
    setup = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("azure/setup-helm"))
    assert setup["with"]["version"].startswith("v4.")
