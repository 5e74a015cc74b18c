"""The roster expands into the objects of the SPEC: per member a Deployment and Service
c-server-<m> and python-server-<m> on the member's ports, a client Job client-<m> asking both,
the test pod asking every server, and the seed rows; with the default roster the chart's seed
SQL is sql/02-seed.sql byte for byte."""

from __future__ import annotations

import re
from typing import Any

import yaml
from chartlib import CHART, Obj, ValueSet, find, hook, one, rendered

from pointsmesh import ROOT


def env_of(container: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def expected_servers(values: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(member, name, row, port) of every server of the values' roster."""
    out = []
    for m in values["members"]:
        out.append((m["name"], f"c-server-{m['name']}", f"c_user-{m['name']}", m["cPort"]))
        out.append((m["name"], f"python-server-{m['name']}", f"python_user-{m['name']}",
                    m["pythonPort"]))
    return out


def seed_sql(objs: list[Obj]) -> str:
    maps = [c for c in find(objs, "ConfigMap") if "02-seed.sql" in (c.get("data") or {})]
    assert len(maps) == 1, "expected one ConfigMap with the key 02-seed.sql"
    text: str = maps[0]["data"]["02-seed.sql"]
    return text


def client_jobs(objs: list[Obj]) -> dict[str, Obj]:
    """The client Jobs (post-install/post-upgrade hooks), not their pre-delete namesakes."""
    return {j["metadata"]["name"]: j for j in find(objs, "Job") if "post-install" in hook(j)}


def check_server(objs: list[Obj], name: str, row: str, port: int) -> list[str]:
    problems = []
    svc = one(objs, "Service", name)
    points = [p for p in svc["spec"]["ports"] if p["name"] == "points"]
    if [(p["port"], p["targetPort"]) for p in points] != [(port, "points")]:
        problems.append(f"Service {name}: points port {points}, expected {port} -> points")
    dep = one(objs, "Deployment", name)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    if ports.get("points") != port:
        problems.append(f"Deployment {name}: containerPort points={ports.get('points')}")
    env = env_of(c)
    if (env.get("SERVER_USER"), env.get("SERVER_PORT")) != (row, str(port)):
        problems.append(f"Deployment {name}: SERVER_USER/SERVER_PORT "
                        f"{env.get('SERVER_USER')}/{env.get('SERVER_PORT')}")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if any(v != labels.get(k) for k, v in svc["spec"]["selector"].items()):
        problems.append(f"Service {name} does not select its Deployment's pods")
    return problems


def test_servers_follow_the_roster(value_set: ValueSet, objs: list[Obj]) -> None:
    expected = expected_servers(value_set.values())
    problems = [p for _, name, row, port in expected for p in check_server(objs, name, row, port)]
    assert problems == []
    assert sorted(d["metadata"]["name"] for d in find(objs, "Deployment")) == \
        sorted(name for _, name, _, _ in expected)


def test_client_jobs_follow_the_roster(value_set: ValueSet, objs: list[Obj]) -> None:
    values = value_set.values()
    jobs = client_jobs(objs)
    assert sorted(jobs) == sorted(f"client-{m['name']}" for m in values["members"])
    for member, name, _row, port in expected_servers(values):
        job = jobs[f"client-{member}"]
        lang = name.split("-server-")[0]
        containers = {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}
        env = env_of(containers[f"{lang}-client"])
        assert (env["TARGET_HOST"], env["TARGET_PORT"]) == (name, str(port)), job["metadata"]
    for job in jobs.values():
        annotations = job["spec"]["template"]["metadata"].get("annotations") or {}
        assert annotations.get("kubectl.kubernetes.io/default-container") == "c-client"


def test_test_pod_asks_every_server(value_set: ValueSet, objs: list[Obj]) -> None:
    pods = [p for p in find(objs, "Pod") if hook(p) == "test"]
    langs = sorted(c["name"] for pod in pods for c in pod["spec"]["containers"])
    assert langs == ["c-client", "python-client"], "one helm test pod per client language"
    for c in (c for pod in pods for c in pod["spec"]["containers"]):
        script = "\n".join(c.get("command", []) + c.get("args", []))
        asked = re.findall(r"^\s*ask (\S+) (\d+) (\S+)\s*$", script, re.M)
        assert sorted(asked) == sorted((n, str(p), r) for _, n, r, p in
                                       expected_servers(value_set.values())), c["name"]


def test_seed_rows_follow_the_roster(value_set: ValueSet, objs: list[Obj]) -> None:
    values = value_set.values()
    if not values["database"]["enabled"]:
        assert [c for c in find(objs, "ConfigMap") if "02-seed.sql" in (c.get("data") or {})] == []
        return
    rows = re.findall(r"VALUES \('([^']+)', 0, NOW\(\)\)", seed_sql(objs))
    assert rows == [row for _, _, row, _ in expected_servers(values)]


def test_fourth_member() -> None:
    objs = rendered("fourth-member")
    assert check_server(objs, "c-server-zaid", "c_user-zaid", 5007) == []
    assert check_server(objs, "python-server-zaid", "python_user-zaid", 5008) == []
    assert "client-zaid" in client_jobs(objs)
    seed = seed_sql(objs)
    for row in ("c_user-zaid", "python_user-zaid"):
        assert (f"INSERT INTO users (user, points, datetime_stamp) VALUES ('{row}', 0, NOW()) "
                "ON DUPLICATE KEY UPDATE user = user;") in seed.splitlines()
    assert not find(rendered("defaults"), "Deployment", "c-server-zaid")


def test_default_seed_is_sql_02_seed_byte_for_byte() -> None:
    chart = seed_sql(rendered("defaults")).encode()
    repo = (ROOT / "sql" / "02-seed.sql").read_bytes()
    assert chart == repo


def test_default_members_are_the_roster() -> None:
    """values.yaml's members are roster.yaml's (make render keeps them so)."""
    roster = yaml.safe_load((ROOT / "roster.yaml").read_text())["members"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())["members"]
    assert values == roster
