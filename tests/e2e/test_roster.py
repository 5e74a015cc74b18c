"""A class-sized roster: one release of CLASS members (2 x CLASS servers, CLASS client Jobs),
installed as the chart README says (`helm install --wait`, Helm's default timeout), on the
project's three-node cluster. The database is sized from the roster (max_connections, memory)
and the client Jobs run side by side (one List hook), so the install finishes, every member's
client prints both rows, every row rises, and no connection is ever refused for a limit.

`make bench-k8s` measures the same install at 40, 100 and 200 members (outside CI)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2elib import INTERVAL, MEASURE, RELEASE, Space, log, reply_for, unique

from pointsmesh import k8s, spec

CLASS = 40
MEMBERS = spec.class_roster(CLASS)
SERVERS = spec.servers(MEMBERS)
# MySQL's errors for a full server (1040) and a full account (1203), as the servers log them.
LIMIT_ERRORS = re.compile(r"Too many connections|\b1040\b|\b1203\b|max_user_connections")


@pytest.fixture(scope="module")
def space(kube: k8s.Kube, values: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Space]:
    sp = Space(kube, unique("e2e-class"))
    vals = k8s.merge_values(values, {"members": spec.chart_members(MEMBERS)})
    vfile = k8s.write_values(vals, tmp_path_factory.mktemp("class") / "values.yaml")
    kube.kubectl("create", "namespace", sp.ns)
    t0 = time.monotonic()
    sp.helm("install", RELEASE, str(k8s.CHART), "-f", str(vfile), "--wait")
    MEASURE[f"class of {CLASS}: helm install --wait -> all client Jobs complete (s)"] = \
        round(time.monotonic() - t0, 1)
    try:
        yield sp
    finally:
        # The namespace goes with its 120 pods while the next module runs: waiting for them
        # here (helm uninstall --wait) took 60-95 s of a 2-core CI run.
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)


def test_every_client_job_prints_both_rows_and_they_ran_side_by_side(space: Space) -> None:
    jobs = {j["metadata"]["name"]: j for j in space.get("jobs")["items"]}
    assert sorted(jobs) == sorted(f"client-{m.name}" for m in MEMBERS)
    failed = [n for n, j in jobs.items() if j["status"].get("succeeded") != 1]
    assert failed == [], failed
    for m in MEMBERS:
        logs = space.kube.job_logs(f"client-{m.name}", space.ns)
        assert reply_for(m.c_row).search(logs) and reply_for(m.python_row).search(logs), logs
    starts = sorted(k8s.api_time(j["status"]["startTime"]) for j in jobs.values())
    ends = sorted(k8s.api_time(j["status"]["completionTime"]) for j in jobs.values())
    MEASURE[f"class of {CLASS}: client Jobs started within (s)"] = starts[-1] - starts[0]
    MEASURE[f"class of {CLASS}: first Job start -> last Job complete (s)"] = ends[-1] - starts[0]
    # One hook per member would start them one after another, each once the previous one is
    # complete (about 3 s apart: 2 min for 40); the List hook creates them all at once.
    assert starts[-1] - starts[0] <= 20, f"Jobs started over {starts[-1] - starts[0]:.0f} s"


def test_every_server_ready_and_every_row_rising(space: Space) -> None:
    deployments = space.get("deployments")["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(s.name for s in SERVERS)
    unready = [d["metadata"]["name"] for d in deployments
               if d["status"].get("readyReplicas") != 1]
    assert unready == [], unready
    before = space.rows()
    t0 = time.monotonic()
    deadline = t0 + 10 * INTERVAL
    while True:
        now = space.rows()
        stale = [s.row for s in SERVERS if now[s.row].points <= before[s.row].points]
        if not stale:
            break
        assert time.monotonic() < deadline, f"rows not rising after {10 * INTERVAL} s: {stale}"
        time.sleep(0.5)
    MEASURE[f"class of {CLASS}: every row incremented within (s)"] = \
        round(time.monotonic() - t0, 1)


def test_database_sized_for_the_class_and_no_connection_refused(space: Space) -> None:
    status = {k: v for k, v in space.sql(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', "
        "'Max_used_connections', 'Connection_errors_max_connections')")}
    max_conns = space.sql("SELECT @@max_connections")[0][0]
    sessions = 2 * len(SERVERS)  # each server's reader and updater
    # The chart's sizing: 2 sessions x (1 replica + 1 during a rollout) per server, plus 16.
    assert int(max_conns) == 2 * 2 * len(SERVERS) + 16, max_conns
    assert int(status["Threads_connected"]) >= sessions, status
    assert int(status["Connection_errors_max_connections"]) == 0, status
    MEASURE[f"class of {CLASS}: database sessions (connected, max used, max_connections)"] = \
        f"{status['Threads_connected']}, {status['Max_used_connections']}, {max_conns}"
    # No server ever hit a limit, and none lost its database once the database was ready
    # (before, while it initialises, a server's connects are refused and retried).
    db = space.get("pod", "points-database-0")
    ready = next(c for c in db["status"]["conditions"] if c["type"] == "Ready")
    ready_at = k8s.api_time(ready["lastTransitionTime"])
    out = space.kubectl("logs", "-l", "app.kubernetes.io/component=server", "--tail=-1",
                        "--prefix", "--max-log-requests=200", timeout=300)
    errors = [line for line in out.splitlines() if '"event":"db_error"' in line]
    limited = [e for e in errors if LIMIT_ERRORS.search(e)]
    assert limited == [], limited[:5]
    late = [e for e in errors
            if k8s.api_time(json.loads(e.split(" ", 1)[1])["ts"]) > ready_at + 5]
    assert late == [], late[:5]
    connected = out.count('"event":"db_connected"')
    assert connected >= sessions, f"{connected} db_connected events, {sessions} sessions"
    log(f"class of {CLASS}: {len(errors)} db_error events, all before the database was ready")
