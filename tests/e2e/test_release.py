"""The chart on a real cluster, as a user runs it: `helm install`, `kubectl logs job/client-akmal`,
`helm test`, pod faults, scaling, upgrades, bad values, uninstall.

One release ("points") in a fresh namespace for the whole module; the tests run in this order
and each leaves the release healthy for the next (the last one uninstalls it).
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from collections.abc import Iterator
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
    Row,
    Space,
    client_labels,
    endpoint,
    helm_test_pod_labels,
    log,
    pod_endpoint,
    printed_reply,
    reply_for,
    unique,
)

from pointsmesh import k8s, netpol, spec

CHART = str(k8s.CHART)
FLOOD_PY = k8s.ROOT / "tools/pointsmesh/flood.py"
MEMBER = "akmal"
ALL_JOBS = [f"client-{m.name}" for m in ROSTER]


@pytest.fixture(scope="module")
def space(kube: k8s.Kube, values: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Space]:
    """The release, installed as a user who knows no flags does: `helm install`, no --wait,
    Helm's default 5 min timeout. It returns once the client Jobs (one post-install hook,
    bounded under that timeout) are done. Removed with its namespace at the end."""
    sp = Space(kube, unique("e2e-points"))
    vfile = k8s.write_values(values, tmp_path_factory.mktemp("values") / "values.yaml")
    sp.values_file = str(vfile)
    kube.kubectl("create", "namespace", sp.ns)
    t0 = time.monotonic()
    out = sp.helm("install", RELEASE, CHART, "-f", str(vfile))
    MEASURE["helm install (no --wait, default timeout) -> all client Jobs complete (s)"] = \
        time.monotonic() - t0
    assert "STATUS: deployed" in out, out[-3000:]
    jobs = sp.get("jobs")["items"]
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(ALL_JOBS)
    assert all(j["status"].get("succeeded") == 1 for j in jobs), [j["status"] for j in jobs]
    for s in SERVERS:
        sp.wait_ready(f"deployment/{s.name}", timeout=180)
    try:
        yield sp
    finally:
        sp.helm("uninstall", RELEASE, "--wait", "--timeout", "3m", check=False)
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)


def _upgrade(sp: Space, *sets: str) -> str:
    args = ["upgrade", RELEASE, CHART, "-f", sp.values_file]
    for s in sets:
        args += ["--set", s]
    return sp.helm(*args, "--wait", "--timeout", "10m")


def _helm_test(sp: Space) -> str:
    out = sp.helm("test", RELEASE, "--logs", "--timeout", "5m")
    for s in SERVERS:
        assert out.count(f"ok   {s.name}:{s.port}  User: {s.row}, Points: ") == 2, out
    assert "FAIL" not in out, out
    return out


def _wait_rising(sp: Space, rows: dict[str, Row], timeout: float = 60) -> dict[str, Row]:
    """Wait until every roster row has risen above ROWS; the rows then."""
    deadline = time.monotonic() + timeout
    while True:
        now = sp.rows()
        if all(now[s.row].points > rows[s.row].points for s in SERVERS):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"rows did not rise in {timeout:.0f}s: {rows} -> {now}")
        time.sleep(1)


def assert_one_increment_per_interval(before: Row, after: Row, row: str) -> None:
    """Each increment stamps the row with NOW() and the updater keeps a fixed schedule, so
    between two reads the points rose by exactly the number of intervals between the stamps
    (a second updater, or an increment made up at a takeover, breaks the equation)."""
    rose = after.points - before.points
    span = after.stamp - before.stamp
    assert rose >= 1, f"{row}: no increment ({before} -> {after})"
    # Stamps are whole seconds and a takeover may shift the schedule by up to 1 s.
    assert abs(span - rose * INTERVAL) <= 1 + rose // 4, (
        f"{row}: {rose} increments over {span} s of stamps, interval {INTERVAL} s "
        f"({before} -> {after})")


def test_client_jobs_print_their_rows(space: Space, kube: k8s.Kube) -> None:
    """`kubectl logs job/client-<member>` prints the member's C client reply (the Job's default
    container), -c python-client the Python one, --all-containers --prefix both."""
    for m in ROSTER:
        job = f"client-{m.name}"
        status = space.get(f"job/{job}")["status"]
        assert status.get("succeeded") == 1, status
        default = space.kubectl("logs", f"job/{job}")
        assert reply_for(m.c_row).search(default), default
        assert m.python_row not in default
        py = space.kubectl("logs", f"job/{job}", "-c", "python-client")
        assert reply_for(m.python_row).search(py), py
        both = space.kubectl("logs", f"job/{job}", "--all-containers", "--prefix")
        assert f"/{job}-" in both and "c-client] User: " in both, both
        assert "python-client] User: " in both, both
    MEASURE["client Job durations (s)"] = [
        f"{job}: {_job_seconds(space, job):.1f}" for job in ALL_JOBS]


def _job_seconds(space: Space, job: str) -> float:
    status = space.get(f"job/{job}")["status"]
    start = time.mktime(time.strptime(status["startTime"], "%Y-%m-%dT%H:%M:%SZ"))
    end = time.mktime(time.strptime(status["completionTime"], "%Y-%m-%dT%H:%M:%SZ"))
    return end - start


def test_network_policies_select_live_pods(space: Space) -> None:
    """The policies in the cluster, evaluated on the running pods (pointsmesh.netpol): every
    pod of the release is default-denied; a member's clients reach their own servers' protocol
    ports only; only servers reach the database; the test pod reaches every server; DNS is
    allowed; a pod outside the release reaches nothing of it."""
    policies = space.get("networkpolicies")["items"]
    assert policies, "no NetworkPolicy installed"
    pods = space.pods(f"{INSTANCE}={RELEASE}")
    deny = [p for p in policies if p["metadata"]["name"] == f"{RELEASE}-default-deny"]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns = netpol.Endpoint("coredns", {"k8s-app": "kube-dns"}, "kube-system",
                          {"kubernetes.io/metadata.name": "kube-system"})
    for pod in pods:
        ep = pod_endpoint(pod)
        assert netpol.selects(deny[0], ep), ep.name
        assert netpol.allowed(policies, ep, dns, 53, "UDP"), ep.name
    by_component: dict[str, list[netpol.Endpoint]] = {}
    for pod in pods:
        comp = pod["metadata"]["labels"].get("app.kubernetes.io/component", "")
        by_component.setdefault(comp, []).append(pod_endpoint(pod))
    servers = {ep.labels["points-mesh.io/server"]: ep for ep in by_component["server"]}
    assert set(servers) == {s.name for s in SERVERS}
    (database,) = by_component["database"]
    stranger = endpoint("stranger", {"app": "stranger"}, space.ns)
    tester = endpoint("tester", helm_test_pod_labels(), space.ns)
    for s in SERVERS:
        dst = servers[s.name]
        for m in ROSTER:
            client = endpoint(f"client-{m.name}", client_labels(m.name), space.ns)
            assert netpol.allowed(policies, client, dst, s.port) is (m.name == s.member)
            assert not netpol.allowed(policies, client, database, 3306)
        assert netpol.allowed(policies, tester, dst, s.port)
        assert not netpol.allowed(policies, stranger, dst, s.port)
        assert netpol.allowed(policies, dst, database, 3306)
        other = next(o for o in SERVERS if o.name != s.name)
        assert not netpol.allowed(policies, dst, servers[other.name], other.port)
    assert not netpol.allowed(policies, stranger, database, 3306)
    assert not netpol.allowed(policies, tester, database, 3306)


def test_points_rise_one_per_interval(space: Space) -> None:
    """Every row rises by one per UPDATE_INTERVAL: exactly, by the rows' own stamps."""
    before = space.rows()
    assert {s.row for s in SERVERS} <= set(before)
    time.sleep(4 * INTERVAL + 1)
    after = space.rows()
    for s in SERVERS:
        assert_one_increment_per_interval(before[s.row], after[s.row], s.row)


def test_helm_test_passes(space: Space) -> None:
    """`helm test`: the C and the Python client ask every server and get its own row."""
    _helm_test(space)


def test_deleted_server_pod_is_replaced_and_answers(space: Space) -> None:
    server = f"c-server-{MEMBER}"
    old = space.pods(f"points-mesh.io/server={server}")
    assert len(old) == 1
    space.kubectl("delete", "pod", old[0]["metadata"]["name"], "--wait=true", timeout=120)
    space.wait_ready(f"deployment/{server}", timeout=180)
    new = space.pods(f"points-mesh.io/server={server}")
    assert [p["metadata"]["name"] for p in new] != [old[0]["metadata"]["name"]]
    _helm_test(space)


def test_deleted_database_pod_comes_back_with_its_data(space: Space) -> None:
    """The StatefulSet's pod is recreated on the same claim: points continue, never reset, and
    the servers reconnect without a restart."""
    before = space.rows()
    restarts = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
                for p in space.pods("app.kubernetes.io/component=server")}
    # A reset database (seed rows at 0) would show fewer points than before at its first read:
    # meaningful once the rows are past the few increments a reset one gains meanwhile.
    assert min(r.points for r in before.values()) >= 3, before
    space.kubectl("delete", "pod", f"{DB}-0", "--wait=true", timeout=180)
    space.wait_ready(f"statefulset/{DB}", timeout=300)
    first = space.rows()
    reset = {row: (before[row].points, r.points) for row, r in first.items()
             if row in before and r.points < before[row].points}
    assert not reset, f"rows below their count before the restart (a reset?): {reset}"
    after = _wait_rising(space, before, timeout=90)
    for s in SERVERS:
        assert after[s.row].points > before[s.row].points
    _helm_test(space)
    still = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
             for p in space.pods("app.kubernetes.io/component=server")}
    assert still == restarts, "servers were restarted by the database outage"


def test_two_replicas_one_increment_per_interval_both_answer(space: Space,
                                                             images: k8s.Images) -> None:
    """servers.replicas=2: a PodDisruptionBudget per server, one lock holder per row, exactly one
    increment per interval, and requests through the Service reach both replicas."""
    _upgrade(space, "servers.replicas=2")
    server = f"c-server-{MEMBER}"
    pods = space.pods(f"points-mesh.io/server={server}")
    assert len(pods) == 2
    pdb = space.get(f"poddisruptionbudget/{server}")
    assert pdb["spec"]["maxUnavailable"] == 1
    time.sleep(2)  # the lock changes hands only on a holder's death; let both settle
    before = space.rows()
    time.sleep(4 * INTERVAL + 1)
    after = space.rows()
    for s in SERVERS:
        assert_one_increment_per_interval(before[s.row], after[s.row], s.row)
    names = [p["metadata"]["name"] for p in pods]
    held = [space.metrics(n)["points_update_lock_held"] for n in names]
    assert sorted(held) == [0.0, 1.0], held
    counts0 = [space.metrics(n)["points_requests_total"] for n in names]
    script = "for i in $(seq 40); do c-client >/dev/null || exit 1; done; echo done"
    port = next(s.port for s in SERVERS if s.name == server)
    phase, logs = space.run_pod(
        unique("ask"), f"{images.registry}pointsmesh/c-client:{images.tag}",
        f"export TARGET_HOST={server} TARGET_PORT={port}; {script}", helm_test_pod_labels())
    assert phase == "Succeeded" and "done" in logs, logs
    counts1 = [space.metrics(n)["points_requests_total"] for n in names]
    served = [b - a for a, b in zip(counts0, counts1, strict=True)]
    assert sum(served) == 40 and min(served) > 0, served


def test_upgrade_keeps_data_and_credentials(space: Space) -> None:
    """helm upgrade with changed values: the generated Secret is read back (same passwords),
    the data stays, the client Jobs are re-run (one hook each now) and print valid replies,
    which helm prints too."""
    secret0 = space.get(f"secret/{DB}")["data"]
    jobs0 = {j: space.get(f"job/{j}")["metadata"]["uid"] for j in ALL_JOBS}
    before = space.rows()
    # With clients.printReplies: one hook per member, each reply printed by helm itself.
    out = _upgrade(space, "servers.replicas=1", "servers.logLevel=debug",
                   "clients.printReplies=true")
    for m in ROSTER:
        assert printed_reply(m.c_row).search(out) and printed_reply(m.python_row).search(out), \
            out[-3000:]
    secret1 = space.get(f"secret/{DB}")["data"]
    assert secret1 == secret0, "the generated passwords changed on upgrade"
    assert base64.b64decode(secret1["mysql-password"])
    after = space.rows()
    for s in SERVERS:
        assert after[s.row].points >= before[s.row].points
    for m in ROSTER:
        job = f"client-{m.name}"
        assert space.get(f"job/{job}")["metadata"]["uid"] != jobs0[job], "Job not re-run"
        assert reply_for(m.c_row).search(space.kubectl("logs", f"job/{job}"))
        assert reply_for(m.python_row).search(
            space.kubectl("logs", f"job/{job}", "-c", "python-client"))
    env = space.get(f"deployment/c-server-{MEMBER}")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "LOG_LEVEL", "value": "debug"} in env["env"]
    _helm_test(space)


def test_rollback_reruns_the_clients(space: Space) -> None:
    """helm rollback to the first revision: the client Jobs (post-rollback hooks) run again and
    print their rows, so `kubectl logs job/client-<member>` shows the rolled-back release, not
    the run that prompted the rollback."""
    jobs0 = {j: space.get(f"job/{j}")["metadata"]["uid"] for j in ALL_JOBS}
    space.helm("rollback", RELEASE, "1", "--wait", "--timeout", "5m")
    for m in ROSTER:
        job = f"client-{m.name}"
        assert space.get(f"job/{job}")["metadata"]["uid"] != jobs0[job], "Job not re-run"
        logs = space.kube.job_logs(job, space.ns)
        assert reply_for(m.c_row).search(logs) and reply_for(m.python_row).search(logs), logs
    env = space.get(f"deployment/c-server-{MEMBER}")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "LOG_LEVEL", "value": "debug"} not in env["env"]


def _roster_values(**change: Any) -> dict[str, Any]:
    members = spec.chart_members(ROSTER)
    members[1].update(change)
    return {"members": members}


@pytest.mark.parametrize(("bad", "message"), [
    ({"members": _roster_values(name="Bad_Name")["members"]}, "/members/1/name"),
    ({"members": _roster_values(cPort=70000)["members"]}, "/members/1/cPort"),
    ({"servers": {"updateInterval": -5}}, "/servers/updateInterval"),
], ids=["member-name", "port", "negative-interval"])
def test_bad_value_is_refused(space: Space, bad: dict[str, Any], message: str,
                              tmp_path: Any) -> None:
    """A bad value is refused by values.schema.json, naming the key; the release stays."""
    revision = _revision(space)
    bad_file = k8s.write_values(bad, tmp_path / "bad.yaml")
    out = space.helm("upgrade", RELEASE, CHART, "-f", space.values_file,
                     "-f", str(bad_file), check=False)
    assert "values don't meet the specifications of the schema" in out, out
    assert message in out, out
    assert _revision(space) == revision


def _revision(space: Space) -> int:
    return int(json.loads(space.helm("get", "metadata", RELEASE, "-o", "json"))["revision"])


# Each target is retried until it opens, within one 10 s deadline per probe pod: a policy
# enforcer admits a new pod's address a moment after the pod starts (kube-router rejects its
# first connections outright), so "blocked" means blocked for the whole window.
PROBE = """
import socket, sys, time
deadline = time.monotonic() + 10
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            print("open", target)
            break
        except OSError as e:
            if time.monotonic() > deadline:
                print("blocked", target, e)
                break
            time.sleep(0.5)
"""


def _probe(space: Space, image: str, labels: dict[str, str], *targets: str) -> dict[str, str]:
    script = f"python3 -c '{PROBE}' " + " ".join(targets)
    phase, logs = space.run_pod(unique("probe"), image, script, labels, timeout=150)
    assert phase == "Succeeded", logs
    return {line.split()[1]: line.split()[0] for line in logs.splitlines()
            if line.startswith(("open", "blocked"))}


# How long the canary may stay reachable while the enforcer programs its deny-all policy.
CANARY_DEADLINE_S = 90


def test_network_policies_enforced(space: Space, images: k8s.Images,
                                   target: k8s.Target) -> None:
    """Where the cluster enforces NetworkPolicies: a pod outside the release reaches neither a
    server nor the database, and a member's client does not reach another member's server.
    First a canary (a listener behind a deny-all policy) tells whether anything enforces
    policies here: probed until it is denied or CANARY_DEADLINE_S pass (an enforcer programs a
    new policy a moment after it is made, so one lucky connection proves nothing). Still
    reachable then: on the project's kind cluster, which runs kube-router, the test fails;
    on another cluster it is skipped, saying so."""
    image = f"{images.registry}pointsmesh/python-client:{images.tag}"
    canary = unique("canary")
    space.apply([{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": canary},
        "spec": {"podSelector": {"matchLabels": {"app": canary}}, "policyTypes": ["Ingress"]},
    }])
    # Accepts (and closes) every connection for 4 minutes, so each probe finds it listening.
    listener = ("python3 -c 'import socket, time\n"
                "s = socket.create_server((\"\", 8000)); end = time.monotonic() + 240\n"
                "while time.monotonic() < end:\n"
                "    s.settimeout(max(0.1, end - time.monotonic()))\n"
                "    try: s.accept()[0].close()\n"
                "    except OSError: pass'")
    space.apply([{
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": canary, "labels": {"app": canary}},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                 "containers": [{"name": "main", "image": image, "command": ["bash", "-c",
                                                                             listener]}]},
    }])
    probes: list[str] = []
    try:
        space.kubectl("wait", "--for=condition=Ready", f"pod/{canary}", "--timeout=90s",
                      timeout=120)
        ip = space.get(f"pod/{canary}")["status"]["podIP"]
        deadline = time.monotonic() + CANARY_DEADLINE_S
        while True:
            probes.append(_probe(space, image, {"app": "stranger"}, f"{ip}:8000")[f"{ip}:8000"])
            if probes[-1] == "blocked" or time.monotonic() > deadline:
                break
            time.sleep(3)
    finally:
        space.kubectl("delete", "pod,networkpolicy", canary, "--wait=false", check=False)
    MEASURE["network policies: canary probes until denied"] = " ".join(probes)
    if probes[-1] == "open":
        seen = (f"a deny-all canary was still reachable after {len(probes)} probes in "
                f"{CANARY_DEADLINE_S} s")
        assert not target.project_kind, (
            f"the project's kind cluster runs kube-router, which enforces NetworkPolicies, but "
            f"{seen}: the policy firewall is not working")
        pytest.skip(f"NOT ENFORCED HERE: this cluster's network plugin ignores NetworkPolicies "
                    f"({seen}); the policies were checked as objects on the live pods "
                    "(test_network_policies_select_live_pods) instead")
    server = f"c-server-{MEMBER}:5003"
    db = f"{DB}:3306"
    stranger = _probe(space, image, {"app": "stranger"}, server, db)
    assert stranger == {server: "blocked", db: "blocked"}, stranger
    other = next(m.name for m in ROSTER if m.name != MEMBER)
    wrong_member = _probe(space, image, client_labels(other), server, db)
    assert wrong_member == {server: "blocked", db: "blocked"}, wrong_member
    right_member = _probe(space, image, client_labels(MEMBER), server, db)
    assert right_member == {server: "open", db: "blocked"}, right_member


def test_pod_memory_within_requests_and_limits(space: Space, kube: k8s.Kube) -> None:
    """Each pod's working set (kubelet stats) after the run, against its request and limit."""
    pods = {p["metadata"]["name"]: p for p in space.pods(f"{INSTANCE}={RELEASE}")}
    table = []
    for use in kube.container_usage(space.ns):
        if use.pod not in pods:
            continue
        spec = {c["name"]: c for c in pods[use.pod]["spec"]["containers"]}
        res = spec.get(use.container, {}).get("resources", {})
        if not res:
            continue
        ws = use.working_set
        req = _bytes(res["requests"]["memory"])
        lim = _bytes(res["limits"]["memory"])
        table.append(f"{use.pod:<40} {use.container:<9} {ws / 2**20:6.1f} MiB "
                     f"(request {req / 2**20:.0f}, limit {lim / 2**20:.0f})")
        assert ws < lim, table[-1]
        # The servers' requests are their measured use (the chart's claim): a server above
        # its request is mis-sized. The database's buffers grow with use and its request is
        # a floor, so it is held to its limit alone.
        if use.container == "server":
            assert ws <= req, table[-1]
    assert table, "no pod statistics from the kubelet"
    MEASURE["pod memory (working set) after the e2e run"] = sorted(table)


def _bytes(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for u, f in units.items():
        if q.endswith(u):
            return float(q[: -len(u)]) * f
    return float(q)


FLOOD = 3000  # the attacker's connections
FLOOD_SECONDS = 120  # the flood pod's life at most (it is deleted as soon as the test is done)


def test_flood_through_the_service_does_not_stop_a_member_client(space: Space,
                                                                 images: k8s.Images) -> None:
    """A pod with the member's client labels (so that the policies let it in) floods the
    member's C server through its Service with pointsmesh/flood.py: 3,000 connections that
    send part of a request and wait, the ones the server ends opened again. Meanwhile the
    member's client Job runs again: it completes with its replies and no busy line, and the
    server counts the flood's connections beyond the per-source limit as refused."""
    server = next(s for s in SERVERS if s.name == f"c-server-{MEMBER}")
    pod = space.pods(f"points-mesh.io/server={server.name}")[0]["metadata"]["name"]
    image = f"{images.registry}pointsmesh/python-client:{images.tag}"
    source = base64.b64encode(FLOOD_PY.read_bytes()).decode()
    flood = unique("flood")
    space.start_pod(flood, image,
                    f'python3 -c "$(echo {source} | base64 -d)" --host {server.name} '
                    f"--port {server.port} --source 0.0.0.0 --count {FLOOD} --refill 500 "
                    f"--hold {FLOOD_SECONDS}", client_labels(MEMBER))
    job = unique(f"client-{MEMBER}-flooded")
    try:
        deadline = time.monotonic() + 120
        while "flooding" not in space.kubectl("logs", flood, check=False):
            assert time.monotonic() < deadline, space.kubectl("describe", "pod", flood)
            time.sleep(1)
        per_source = 'points_connections_refused_total{reason="per-source"}'
        wait_metric = time.monotonic() + 30
        while space.metrics(pod).get(per_source, 0) < FLOOD - 512:
            assert time.monotonic() < wait_metric, space.metrics(pod)
            time.sleep(1)
        t0 = time.monotonic()
        space.apply([_job_again(space, f"client-{MEMBER}", job)])
        space.kubectl("wait", "--for=condition=complete", f"job/{job}", "--timeout=180s",
                      timeout=200)
        MEASURE["client Job under a 3,000-connection flood of its C server (s)"] = (
            time.monotonic() - t0)
        logs = space.kubectl("logs", f"job/{job}", "--all-containers")
        member = next(m for m in ROSTER if m.name == MEMBER)
        assert reply_for(member.c_row).search(logs) and reply_for(member.python_row).search(
            logs), logs
        assert "server-busy" not in logs, logs
        metrics = space.metrics(pod)
        assert metrics[per_source] >= FLOOD - 512, metrics
        log(f"flood: {space.kubectl('logs', flood, check=False).strip()}")
    finally:
        space.kubectl("delete", "pod", flood, "--wait=false", check=False)
        space.kubectl("delete", "job", job, "--cascade=foreground", "--wait=true",
                      check=False, timeout=120)


def _job_again(space: Space, job: str, name: str) -> dict[str, Any]:
    """The Job job's spec under a new name (as `kubectl create job --from` does for a
    CronJob): without the identity the controller gave the original."""
    obj = space.get(f"job/{job}")
    template = obj["spec"]["template"]
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name",
                "batch.kubernetes.io/job-name"):
        template["metadata"].get("labels", {}).pop(key, None)
    spec = {k: v for k, v in obj["spec"].items() if k not in ("selector", "template")}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": obj["metadata"].get("labels", {})},
            "spec": {**spec, "template": template}}


def test_uninstall_leaves_no_workload_and_a_reinstall_finds_the_data(space: Space) -> None:
    """helm uninstall runs no pod (no pre-delete hook: nothing that could hang) and leaves no
    Deployment, StatefulSet, Service, ConfigMap or policy of the release. Helm never deletes
    hook objects: the client Jobs and the helm test pods stay (until their TTL), and the
    command NOTES prints deletes them. The data claim and the generated Secret stay on purpose
    (database.persistence.retainOnUninstall): a reinstall under the same name finds its data
    with the passwords it was initialised with."""
    before = space.rows()
    secret = space.get(f"secret/{DB}")["data"]
    notes = space.helm("get", "notes", RELEASE)
    pods_before = {p["metadata"]["name"] for p in space.get("pods")["items"]}
    t0 = time.monotonic()
    space.helm("uninstall", RELEASE, "--wait", "--timeout", "3m")
    MEASURE["helm uninstall --wait (s)"] = time.monotonic() - t0
    sel = f"{INSTANCE}={RELEASE}"
    assert {p["metadata"]["name"] for p in space.get("pods")["items"]} <= pods_before, \
        "helm uninstall started a pod"
    left = space.get("deployments,statefulsets,services,configmaps,networkpolicies,"
                     "poddisruptionbudgets", "-l", sel)["items"]
    assert not left, [f"{o['kind']}/{o['metadata']['name']}" for o in left]
    assert sorted(j["metadata"]["name"] for j in space.get("jobs")["items"]) == sorted(ALL_JOBS)
    # The delete NOTES gives, as printed: afterwards only the claim and the Secret are left.
    (delete,) = [line.strip() for line in notes.splitlines()
                 if line.strip().startswith(f"kubectl -n {space.ns} delete jobs,pods")]
    space.kube.kubectl(*shlex.split(delete)[1:], timeout=120)
    for kind in ("pods", "jobs"):
        space.wait_gone(kind, sel, timeout=120)
    assert not space.get("jobs")["items"], "client Jobs left behind"
    kept = space.get("persistentvolumeclaims,secrets", "-l", sel)["items"]
    assert sorted(o["kind"] for o in kept) == ["PersistentVolumeClaim", "Secret"], kept
    t0 = time.monotonic()
    space.helm("install", RELEASE, CHART, "-f", space.values_file,
               "--wait", "--timeout", "10m")
    MEASURE["reinstall on the kept data -> client Jobs complete (s)"] = time.monotonic() - t0
    assert space.get(f"secret/{DB}")["data"] == secret
    after = space.rows()
    for s in SERVERS:
        assert after[s.row].points >= before[s.row].points, (s.row, before, after)
    log(f"reinstalled on the kept data: {after}")
