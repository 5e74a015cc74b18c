"""Session fixtures of the e2e suite: the cluster, the images on it, the chart's values.

    target    the cluster (pointsmesh.k8s.choose_cluster): the current kube context when one
              answers, else the project's air-gapped kind cluster (ci/kind-airgap), brought up
              here and deleted at the end if this session created it (unless
              POINTS_MESH_KEEP_CLUSTER=1). POINTS_MESH_CLUSTER=kind|current forces the choice.
    images    the four images built under their content tag and loaded into the cluster (kind)
              or pushed to POINTS_MESH_IMAGE_REGISTRY; the CI database image on the project's
              kind cluster (no registry here), the chart's mysql:8.4 elsewhere.
    values    the chart values for those images, UPDATE_INTERVAL=INTERVAL.

Measurements (install to all client Jobs done, pod memory against requests, ...) are printed at
the end and written to out/e2e-report.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2elib import INTERVAL, MEASURE, cluster_problems, log

from pointsmesh import ROOT, k8s

TEST_TIMEOUT = 600
REPORT = ROOT / "out" / "e2e-report.json"
# How long a module waits for a cluster that is not healthy (a node just restarted, an add-on
# rolling) before it fails.
HEALTH_WAIT_S = 180

# Modules run last, in this order: the class of 40 leaves its namespace (120 pods) to be
# deleted while the session goes on, which slowed the module after it (a TLS install took 65 s
# instead of 28 s); last, nothing waits behind it.
LAST = ("test_roster.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.cluster)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, func_only=True))
    name = {id(i): Path(str(i.fspath)).name for i in items}
    items.sort(key=lambda i: LAST.index(name[id(i)]) + 1 if name[id(i)] in LAST else 0)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURE:
        return
    tr = terminalreporter
    tr.section("e2e measurements")
    for key, value in MEASURE.items():
        if isinstance(value, float):
            tr.write_line(f"{key:<52} {value:8.1f}")
        elif isinstance(value, list):
            tr.write_line(f"{key}:")
            for line in value:
                tr.write_line(f"  {line}")
        else:
            tr.write_line(f"{key:<52} {value}")
    try:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(MEASURE, indent=2, sort_keys=True) + "\n")
        tr.write_line(f"(written to {REPORT.relative_to(ROOT)})")
    except OSError:
        pass


@pytest.fixture(scope="session")
def session_clock() -> float:
    return time.monotonic()


@pytest.fixture(scope="session")
def target(session_clock: float) -> Iterator[k8s.Target]:
    t0 = time.monotonic()
    tgt = k8s.choose_cluster(log=log)
    MEASURE["cluster up (s)"] = time.monotonic() - t0
    MEASURE["cluster"] = tgt.description
    yield tgt
    MEASURE["e2e session (s)"] = time.monotonic() - session_clock
    if tgt.created and tgt.project_kind and os.environ.get("POINTS_MESH_KEEP_CLUSTER") != "1":
        subprocess.run(["bash", str(k8s.CLUSTER_SH), "down"], check=False, timeout=600)
        log("kind cluster deleted (created by this session)")


@pytest.fixture(scope="session")
def images(target: k8s.Target) -> k8s.Images:
    t0 = time.monotonic()
    imgs = k8s.ensure_images(target, registry=os.environ.get("POINTS_MESH_IMAGE_REGISTRY"),
                             log=log)
    MEASURE["images: prepare + build + load (s)"] = time.monotonic() - t0
    MEASURE["image tag"] = imgs.tag
    return imgs


@pytest.fixture(scope="session")
def values(target: k8s.Target, images: k8s.Images) -> dict[str, Any]:
    return k8s.values_for(target, images, update_interval=INTERVAL)


@pytest.fixture(scope="session")
def kube(target: k8s.Target) -> k8s.Kube:
    return target.kube


@pytest.fixture(scope="module", autouse=True)
def healthy_cluster(request: pytest.FixtureRequest, target: k8s.Target) -> None:
    """Before each module: every node Ready (all of the kind cluster's nodes registered) and
    every add-on ready, waiting up to HEALTH_WAIT_S; else the module fails at once with the
    reason, instead of its tests timing out one by one on a broken cluster."""
    expected = len(target.nodes) if target.nodes else None
    t0 = time.monotonic()
    while problems := cluster_problems(target.kube, expected):
        if time.monotonic() - t0 > HEALTH_WAIT_S:
            pytest.fail(f"cluster unhealthy before {request.module.__name__} "
                        f"(waited {HEALTH_WAIT_S} s): " + "; ".join(problems), pytrace=False)
        time.sleep(3)
    if time.monotonic() - t0 > 1:
        log(f"cluster healthy after {time.monotonic() - t0:.0f} s of waiting")
