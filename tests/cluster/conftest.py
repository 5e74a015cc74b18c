"""Session fixtures for tests that need a real Kubernetes cluster (kind, built air-gapped).

The cluster comes from ci/kind-airgap/cluster.sh: `up` builds the node image when it is not
cached, creates the kind cluster (or reuses a healthy one) and waits for node Ready and CoreDNS.
The session deletes the cluster at the end if it created it; set POINTS_MESH_KEEP_CLUSTER=1 to
keep it (a cluster that was already up before the session is always kept).

Helpers for suites (this smoke test, the e2e tests):
    cluster.kubectl(*args)                 kubectl against the cluster, CompletedProcess
    cluster.apply(manifest, namespace)     kubectl apply -f - (str, dict or list of dicts)
    cluster.load_image(ref)                kind load docker-image
    cluster.wait_job(name, namespace)      wait for a Job; returns `kubectl logs job/NAME`
    cluster.api()                          a `kubernetes` ApiClient for this cluster
    namespace                              a fresh namespace per test, deleted afterwards
    smoke_image                            the smoke-test image, built and loaded
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterlib import KIND_AIRGAP, Cluster, run, session_cluster

# A cold node-image build (all Go modules compiled on 2 cores) takes most of an hour;
# a cached `up` takes about a minute.
UP_TIMEOUT = int(os.environ.get("POINTS_MESH_CLUSTER_UP_TIMEOUT", "5400"))
TEST_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cluster tests: the timeout covers the test itself, not the session's cluster bring-up."""
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.cluster)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, func_only=True))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The kind cluster, brought up once per session (building the node image if needed)."""
    yield from session_cluster(UP_TIMEOUT)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    base = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def smoke_image(cluster: Cluster) -> str:
    """The smoke-test image (ci/kind-airgap/testimages), built locally and loaded."""
    ref = run(["bash", str(KIND_AIRGAP / "testimages" / "build.sh")], timeout=600).stdout.strip()
    cluster.load_image(ref)
    return ref
