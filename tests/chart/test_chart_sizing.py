"""The database sized from the roster (issue: a class of 40 exhausted MySQL's default 151
connections): max_connections and the database's memory follow the members and replicas, a
configured limit too small for the roster is refused with the numbers, for the chart's
database and an external one alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chartlib import ListItem, Obj, find, helm, hook, one, render, template_cmd

from pointsmesh import spec


def class_values(tmp_path: Path, size: int) -> str:
    path = tmp_path / f"class-{size}.yaml"
    path.write_text(yaml.safe_dump({"members": spec.chart_members(spec.class_roster(size))}))
    return str(path)


def database(objs: list[Obj]) -> Obj:
    (c,) = [c for c in one(objs, "StatefulSet", "points-database")["spec"]["template"]["spec"]
            ["containers"] if c["name"] == "database"]
    return c


def max_connections(objs: list[Obj]) -> int:
    args = [a for a in database(objs).get("args", []) if a.startswith("--max-connections=")]
    assert len(args) == 1, database(objs).get("args")
    return int(args[0].split("=", 1)[1])


def mib(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


def expected(members: int, replicas: int = 1, extra: int = 16) -> int:
    """Two servers a member, two sessions a server pod, and a rollout's pods per server:
    replicas + 1 (maxSurge), + 2 from 2 replicas on (an old pod still terminating)."""
    return max(151, 2 * 2 * members * (replicas + min(replicas, 2)) + extra)


@pytest.mark.parametrize(("size", "replicas"), [(3, 1), (40, 1), (40, 2), (40, 3), (200, 1)])
def test_max_connections_follow_the_roster(tmp_path: Path, size: int, replicas: int) -> None:
    objs = render("-f", class_values(tmp_path, size), "--set", f"servers.replicas={replicas}")
    assert len(find(objs, "Deployment")) == 2 * size
    conns = max_connections(objs)
    assert conns == expected(size, replicas)
    # The memory request grows with every connection beyond MySQL's default, the limit twice
    # as fast, both from the measured base.
    res = database(objs)["resources"]
    request, limit = mib(res["requests"]["memory"]), mib(res["limits"]["memory"])
    assert request == 640 + (conns - 151)
    assert limit == request + 384 + (conns - 151)
    assert res["requests"]["cpu"] == "100m"


def test_the_seed_keeps_mysqls_default() -> None:
    assert max_connections(render()) == 151


def test_a_small_explicit_max_connections_keeps_the_measured_base() -> None:
    objs = render("--set", "database.maxConnections=100")
    assert max_connections(objs) == 100
    res = database(objs)["resources"]
    assert mib(res["requests"]["memory"]) == 640 and mib(res["limits"]["memory"]) == 1024


def test_max_connections_in_extra_args_is_refused() -> None:
    proc = helm(*template_cmd("--set", "database.extraArgs={--max-connections=50}"),
                check=False)
    assert proc.returncode != 0
    assert "set database.maxConnections instead" in proc.stderr, proc.stderr


def test_explicit_resources_and_connections_are_kept(tmp_path: Path) -> None:
    objs = render("-f", class_values(tmp_path, 40), "--set", "database.maxConnections=500",
                  "--set", "database.resources.requests.memory=2Gi")
    assert max_connections(objs) == 500
    assert database(objs)["resources"] == {"requests": {"memory": "2Gi"}}


def test_too_few_connections_are_refused_with_the_numbers(tmp_path: Path) -> None:
    proc = helm(*template_cmd("-f", class_values(tmp_path, 40),
                              "--set", "database.maxConnections=151"), check=False)
    assert proc.returncode != 0
    assert ("database.maxConnections 151 is too small for 40 members: their servers hold up "
            "to 320 sessions") in proc.stderr, proc.stderr
    assert "= 336" in proc.stderr, proc.stderr


EXTERNAL = ("--set", "database.enabled=false", "--set", "externalDatabase.host=db.example",
            "--set", "externalDatabase.password=pw")


def test_external_database_limit_checked(tmp_path: Path) -> None:
    values = class_values(tmp_path, 40)
    proc = helm(*template_cmd("-f", values, *EXTERNAL,
                              "--set", "externalDatabase.maxConnections=300"), check=False)
    assert proc.returncode != 0
    assert ("externalDatabase.maxConnections 300 is too small for 40 members: their servers "
            "hold up to 320 sessions") in proc.stderr, proc.stderr
    objs = render("-f", values, *EXTERNAL, "--set", "externalDatabase.maxConnections=320")
    assert len(find(objs, "Deployment")) == 80
    assert find(objs, "StatefulSet") == []


@pytest.mark.parametrize(("size", "parallelism", "batches"), [(3, 40, [3]), (40, 40, [40]),
                                                              (100, 40, [40, 40, 20])])
def test_client_jobs_run_in_batches_of_parallelism(tmp_path: Path, size: int, parallelism: int,
                                                   batches: list[int]) -> None:
    """The client Jobs are hooks of clients.parallelism Jobs each (Lists, which Helm creates and
    waits for together, one after another): a roster up to that size runs at once, a larger
    one in batches."""
    objs = render("-f", class_values(tmp_path, size),
                  "--set", f"clients.parallelism={parallelism}")
    jobs = find(objs, "Job")
    assert len(jobs) == size
    lists: dict[int, Obj] = {}
    for job in jobs:
        assert isinstance(job, ListItem)
        lists.setdefault(id(job.container), job.container)
    assert [len(lst["items"]) for lst in lists.values()] == batches
    names = [lst["metadata"]["name"] for lst in lists.values()]
    assert names == (["clients"] if len(batches) == 1
                     else [f"clients-{i + 1}" for i in range(len(batches))])
    assert {hook(j) for j in jobs} == {"post-install,post-upgrade,post-rollback"}
