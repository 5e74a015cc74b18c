"""Chart tests (tests/chart): `helm lint`, `helm template`, Kubernetes schemas, hardening,
roster, NetworkPolicies, values schema, dashboard and the chart's helm-unittest suites.
No cluster: everything runs on rendered manifests, in well under a minute.

helm and helm-unittest come from `make setup` (tools/install-chart-tools.sh); without them the
tests fail and say so (pointsmesh.charttools).
"""

from __future__ import annotations

import pytest
from chartlib import VALUE_SETS, Obj, ValueSet, rendered


@pytest.fixture(params=VALUE_SETS, ids=lambda vs: vs.name)
def value_set(request: pytest.FixtureRequest) -> ValueSet:
    """The defaults and each helm/points-mesh/ci/*-values.yaml."""
    vs: ValueSet = request.param
    return vs


@pytest.fixture
def objs(value_set: ValueSet) -> list[Obj]:
    """What `helm template` renders for the value set (rendered once per session)."""
    return rendered(value_set.name)
