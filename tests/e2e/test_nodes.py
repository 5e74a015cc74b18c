"""Node faults, as users meet them on a cluster with several nodes: replicated servers spread
over the nodes; a worker crashes and comes back; the database's node crashes and comes back.

A crash is the node's container cut from the network and then killed: its processes die without
a FIN or RST reaching anyone, as in a power loss, so the database keeps the dead servers'
sessions until their idle timeout. A return is the container reconnected with its address and
started again (a reboot). Needs kind (nodes are containers) and two schedulable nodes; skipped,
loudly, otherwise. Every crashed node is restored at the end, whatever happened.

One release for the module; the tests run in order and each leaves the cluster whole.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from e2elib import (
    DB,
    INTERVAL,
    MEASURE,
    RELEASE,
    ROSTER,
    SERVERS,
    Row,
    Space,
    helm_test_pod_labels,
    log,
    reply_for,
    unique,
)

from pointsmesh import k8s

CHART = str(k8s.CHART)
# Pods of a lost node are evicted this long after it turns NotReady (Kubernetes' default: 300 s).
TOLERATION_S = 20
# The updater session's idle timeout at UPDATE_INTERVAL=INTERVAL (the servers' own formula:
# max(5, ceil(2 x interval))): how long a dead lock holder's session outlives it.
LOCK_SESSION_TIMEOUT = max(5, 2 * INTERVAL)
KIND_NETWORK = "kind"


def docker(*args: str) -> str:
    return k8s.run(["docker", *args], timeout=120).stdout.strip()


@dataclass
class Nodes:
    """The cluster's node containers, and the crashes not yet undone."""

    kube: k8s.Kube
    crashed: dict[str, str] = field(default_factory=dict)  # node -> its address

    def ready(self, node: str) -> str:
        return self.kube.kubectl(
            "get", "node", node, "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}').stdout.strip()

    def internal_ip(self, node: str) -> str:
        return self.kube.kubectl(
            "get", "node", node, "-o",
            'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}').stdout.split()[0]

    def wait_ready(self, node: str, want: str, timeout: float) -> float:
        """Seconds until NODE's Ready condition is WANT ("True", or "Unknown" once the
        control plane has given up on it)."""
        t0 = time.monotonic()
        while self.ready(node) != want:
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"node {node} not Ready={want} after {timeout:.0f}s")
            time.sleep(1)
        return time.monotonic() - t0

    def address(self, node: str) -> str:
        """NODE's address on the kind network; "" while it is cut from it."""
        return docker("inspect", "-f", f'{{{{with index .NetworkSettings.Networks '
                      f'"{KIND_NETWORK}"}}}}{{{{.IPAddress}}}}{{{{end}}}}', node)

    def crash(self, node: str) -> None:
        ip = self.address(node)
        # A node is only crashed when it can come back: `docker network connect --ip` needs a
        # network with a user-configured IPv4 subnet (ci/kind-airgap/cluster.sh makes one).
        subnets = docker("network", "inspect", "-f",
                         "{{range .IPAM.Config}}{{.Subnet}} {{end}}", KIND_NETWORK).split()
        label = docker("network", "inspect", "-f",
                       "{{index .Labels \"io.points-mesh.kind-airgap.subnets\"}}", KIND_NETWORK)
        if label != "explicit" or not any("." in net for net in subnets):
            pytest.fail(f"docker network {KIND_NETWORK} ({subnets}) was not made with explicit "
                        "IPv4 and IPv6 subnets by ci/kind-airgap/cluster.sh: a crashed node "
                        "could not return with its address; recreate the cluster "
                        "(make cluster-delete cluster)")
        assert ip == self.internal_ip(node), (node, ip, self.internal_ip(node))
        self.crashed[node] = ip
        docker("network", "disconnect", KIND_NETWORK, node)
        docker("kill", node)
        log(f"node {node} ({ip}) crashed: cut from the network, then killed")

    def restore(self, node: str) -> float:
        """Back as a rebooted machine: the same address (the other nodes' routes to its pod
        CIDR and the API server's record of it stay right), started, Ready. Returns the seconds
        from start to Ready."""
        ip = self.crashed[node]
        if self.address(node) != ip:   # a restore interrupted after the connect is not redone
            docker("network", "connect", "--ip", ip, KIND_NETWORK, node)
        docker("start", node)
        self.crashed.pop(node)
        log(f"node {node} ({ip}) started again")
        ready_s = self.wait_ready(node, "True", 240)
        assert self.address(node) == ip == self.internal_ip(node), \
            (node, ip, self.address(node), self.internal_ip(node))
        return ready_s

    def restore_all(self) -> None:
        """Every node still crashed back, whatever happened; the first error is raised after
        every node was tried."""
        errors = []
        for node in list(self.crashed):
            try:
                self.restore(node)
            except Exception as exc:   # the next node is still restored
                errors.append(f"{node}: {exc}")
        assert not errors, f"crashed nodes not restored: {errors}"


def schedulable(kube: k8s.Kube) -> list[str]:
    return sorted(
        n["metadata"]["name"] for n in kube.kubectl_json("get", "nodes")["items"]
        if not any(t.get("effect") in ("NoSchedule", "NoExecute")
                   for t in n["spec"].get("taints", [])))


@pytest.fixture(scope="module")
def fleet(target: k8s.Target, kube: k8s.Kube, values: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Space, Nodes]]:
    if not target.nodes:
        pytest.skip("SKIPPED: node faults need a kind cluster (nodes are docker containers); "
                    f"this cluster is {target.description}")
    workers = schedulable(kube)
    if len(workers) < 2:
        pytest.skip(f"SKIPPED: node faults need two schedulable nodes, this cluster has {workers} "
                    "(ci/kind-airgap: KIND_AIRGAP_WORKERS >= 2)")
    loss = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": TOLERATION_S} for k in ("unreachable", "not-ready")]
    vals = k8s.merge_values(values, {"servers": {"replicas": 2, "tolerations": loss}})
    sp = Space(kube, unique("e2e-nodes"))
    vfile = k8s.write_values(vals, tmp_path_factory.mktemp("values") / "values.yaml")
    sp.values_file = str(vfile)
    nodes = Nodes(kube)
    kube.kubectl("create", "namespace", sp.ns)
    try:
        sp.helm("install", RELEASE, CHART, "-f", str(vfile), "--wait", "--timeout", "10m")
        yield sp, nodes
    finally:
        nodes.restore_all()
        sp.helm("uninstall", RELEASE, "--wait", "--timeout", "3m", check=False)
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)


@pytest.fixture
def crashes(fleet: tuple[Space, Nodes]) -> Iterator[Nodes]:
    """The node faults of one test: whatever its outcome, every node it crashed is back and
    Ready when it ends, so no later test runs on a cluster with a node down."""
    _, nodes = fleet
    try:
        yield nodes
    finally:
        nodes.restore_all()


def server_pods(sp: Space) -> dict[str, list[dict[str, Any]]]:
    return {s.name: sp.pods(f"points-mesh.io/server={s.name}") for s in SERVERS}


def ready_pod(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions", []))


def db_node(sp: Space) -> str:
    return str(sp.get(f"pod/{DB}-0")["spec"]["nodeName"])


def lock_holders(sp: Space) -> dict[str, str]:
    """Server name -> the node of its replica that holds the row's updater lock (metric
    points_update_lock_held, read through the API server's pod proxy)."""
    out = {}
    for name, pods in server_pods(sp).items():
        for p in pods:
            if ready_pod(p) and sp.metrics(p["metadata"]["name"]).get(
                    "points_update_lock_held") == 1:
                out[name] = p["spec"]["nodeName"]
    return out


class RowSampler:
    """Reads the rows about once a second in the background: every increment is seen, so a
    doubled one (+2 between reads, or two stamps closer than the interval) and the longest gap
    between increments show."""

    def __init__(self, sp: Space) -> None:
        self.sp = sp
        self.samples: list[dict[str, Row]] = []
        self.times: list[float] = []   # time.time() of each sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            # the database unreachable for a moment: the next read tells
            with contextlib.suppress(AssertionError, k8s.K8sError):
                rows = self.sp.rows()
                self.samples.append(rows)
                self.times.append(time.time())
            self._stop.wait(1)

    def __enter__(self) -> RowSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=90)

    def rose_after(self, row: str, t: float) -> float | None:
        """Seconds from T to the first sample that shows ROW above its last value read before
        T; None if no later sample does."""
        before = [s[row].points for s, at in zip(self.samples, self.times, strict=True)
                  if at <= t and row in s]
        if not before:
            return None
        for rows, at in zip(self.samples, self.times, strict=True):
            if at > t and row in rows and rows[row].points > before[-1]:
                return at - t
        return None

    def check(self, row: str) -> int:
        """Assert that no two increments came closer than the interval (less the DATETIME's
        whole second); return the longest gap between two increments (s). Between two reads
        that saw N increments the stamps must be N intervals apart; when a read was slow or
        failed (N > 1) the longest gap is bounded by what the other N - 1 leave."""
        seen = [s[row] for s in self.samples if row in s]
        changes = [(a, b) for a, b in itertools.pairwise(seen) if b != a]
        assert changes, f"{row}: no increment in {len(seen)} reads"
        gaps = []
        for a, b in changes:
            rose, span = b.points - a.points, b.stamp - a.stamp
            assert rose >= 1 and span >= rose * (INTERVAL - 1), \
                f"{row}: {rose} increments in {span} s ({a} -> {b}): one was doubled"
            gaps.append(span - (rose - 1) * (INTERVAL - 1))
        return max(gaps)


def test_replicas_spread_over_nodes_and_reach_the_database_across_them(
        fleet: tuple[Space, Nodes]) -> None:
    sp, _ = fleet
    where_db = db_node(sp)
    across = 0
    for name, pods in server_pods(sp).items():
        nodes = sorted(p["spec"]["nodeName"] for p in pods)
        assert len(nodes) == 2 and nodes[0] != nodes[1], f"{name}: replicas on {nodes}"
        # Ready means its reader's database session works: through the database Service's DNS
        # name, from another node for the replica not beside the database.
        assert all(ready_pod(p) for p in pods), name
        across += sum(n != where_db for n in nodes)
    assert across >= len(SERVERS), f"the database is on {where_db}"
    MEASURE["node faults: database node"] = where_db


def test_worker_crash_leaves_every_member_answering(fleet: tuple[Space, Nodes], crashes: Nodes,
                                                   images: k8s.Images) -> None:
    """The worker without the database crashes: once the control plane marks it NotReady (and
    its pods not ready), every server answers through its Service from the replica left; the
    lost replicas are rescheduled onto the nodes left; a lock holder that died with the node
    loses its lock when its database session times out, and no increment is doubled. Then the
    worker comes back (as a rebooted machine: same address, Ready)."""
    sp, _ = fleet
    nodes = crashes
    where_db = db_node(sp)
    victim = next(n for n in schedulable(sp.kube) if n != where_db)
    probe = unique("probe")
    targets = " ".join(f"{s.name}:{s.port}" for s in SERVERS)
    # Each request: one attempt (2 s timeout) that shows a dead endpoint ("ok"), and when it
    # fails, the client as users run it, with its own retries ("retried" or "fail").
    script = f"""
        export CLIENT_TIMEOUT=2
        end=$((SECONDS + 170))
        while [ $SECONDS -lt $end ]; do
            for t in {targets}; do
                export TARGET_HOST=${{t%:*}} TARGET_PORT=${{t#*:}}
                if CLIENT_RETRIES=1 c-client >/dev/null 2>&1; then r=ok
                elif CLIENT_RETRIES=5 c-client >/dev/null 2>&1; then r=retried
                else r=fail; fi
                echo "$EPOCHSECONDS $TARGET_HOST $r"
            done
            sleep 0.5
        done
        echo done"""
    sp.start_pod(probe, f"{images.registry}pointsmesh/c-client:{images.tag}", script,
                 helm_test_pod_labels(), node=where_db)
    # The probe's own address is admitted by the policies a moment after it starts: wait
    # until one full round succeeds before the crash.
    deadline = time.monotonic() + 60
    while True:
        lines = sp.kubectl("logs", probe, check=False).splitlines()[-len(SERVERS):]
        if len(lines) == len(SERVERS) and all(line.endswith(" ok") for line in lines):
            break
        assert time.monotonic() < deadline, f"probe never got a full round through: {lines}"
        time.sleep(1)

    # The crashed node must hold at least one row's updater lock, or the takeover below proves
    # nothing: when every holder runs elsewhere, one is moved onto it (its pod deleted: the
    # lock is released and the replica on the victim takes it).
    holders = lock_holders(sp)
    if victim not in holders.values():
        name = next(iter(holders))
        pod = next(p["metadata"]["name"] for p in server_pods(sp)[name]
                   if p["spec"]["nodeName"] == holders[name])
        sp.kubectl("delete", "pod", pod, "--wait=true", timeout=120)
        deadline = time.monotonic() + 60
        while lock_holders(sp).get(name) != victim:
            assert time.monotonic() < deadline, f"{name}'s lock did not move to {victim}"
            time.sleep(1)
        sp.wait_ready(f"deployment/{name}", timeout=180)
        holders = lock_holders(sp)
    lost = sorted(s.row for s in SERVERS if holders.get(s.name) == victim)
    assert lost, holders
    MEASURE["worker crash: row locks held by the crashed node"] = len(lost)

    with RowSampler(sp) as sampler:
        time.sleep(2 * INTERVAL)
        t_crash = time.time()
        nodes.crash(victim)
        not_ready_s = nodes.wait_ready(victim, "Unknown", 120)
        log(f"{victim} NotReady after {not_ready_s:.0f}s")
        # Rescheduled: two ready replicas of every server again, none on the lost node.
        deadline = time.monotonic() + 180
        while True:
            pods = server_pods(sp)
            if all(len([p for p in ps if ready_pod(p) and p["spec"]["nodeName"] != victim]) == 2
                   for ps in pods.values()):
                break
            assert time.monotonic() < deadline, json.dumps(
                {n: [(p["metadata"]["name"], p["spec"].get("nodeName"), ready_pod(p))
                     for p in ps] for n, ps in pods.items()})
            time.sleep(2)
        rescheduled_s = time.time() - t_crash
        phase, out = sp.wait_pod(probe, timeout=240)
    assert phase == "Succeeded" and out.rstrip().endswith("done"), out[-2000:]

    results = [line.split() for line in out.splitlines()
               if line.endswith((" ok", " retried", " fail"))]
    after_crash = [(int(t) - t_crash, s, r) for t, s, r in results if int(t) >= t_crash]
    settled = not_ready_s + 15   # endpoints and kube-proxy follow the NotReady mark
    late = [(round(dt), s, r) for dt, s, r in after_crash if r != "ok" and dt >= settled]
    # Once the node is marked NotReady no request fails, and single attempts fail only in the
    # moment a rescheduled replica has turned ready but the policy enforcer has not yet admitted
    # its address (kube-router: a few seconds; the client's own retry covers it).
    assert [x for x in late if x[2] == "fail"] == [], f"requests failed after NotReady: {late}"
    answered = {s for dt, s, r in after_crash if r == "ok" and dt >= settled}
    assert answered == {s.name for s in SERVERS}, answered
    failed = [(round(dt), s) for dt, s, r in after_crash if r != "ok"]
    gaps = {s.row: sampler.check(s.row) for s in SERVERS}
    # A holder that died with the node kept its lock until its session's idle timeout; then a
    # replica took over at once (the row's stamp is overdue) and kept the schedule. Every row
    # rose again within that bound after the crash, the dead holders' rows included (a row
    # that stopped rising shows no gap at all, so the gaps alone would not tell).
    bound = LOCK_SESSION_TIMEOUT + INTERVAL + 3
    assert max(gaps.values()) <= bound, gaps
    rises = {s.row: sampler.rose_after(s.row, t_crash) for s in SERVERS}
    slow = {row: r for row, r in rises.items() if r is None or r > bound}
    assert not slow, f"rows not rising within {bound} s of the crash: {slow} (locks lost: {lost})"
    MEASURE["worker crash: dead holders' rows rising again after (s)"] = max(
        rises[row] or 0.0 for row in lost)
    MEASURE["worker crash: NotReady after (s)"] = not_ready_s
    MEASURE["worker crash: replicas rescheduled and ready after (s)"] = rescheduled_s
    MEASURE["worker crash: single attempts failed / made"] = f"{len(failed)} / {len(after_crash)}"
    MEASURE["worker crash: single attempts failed after NotReady (s after crash)"] = \
        [f"{dt} {s} {r}" for dt, s, r in late] or "none"
    MEASURE["worker crash: requests failed with the client's retries"] = \
        sum(r == "fail" for _, _, r in after_crash)
    MEASURE["worker crash: last failed single attempt after crash (s)"] = (
        float(max(dt for dt, _ in failed)) if failed else 0.0)
    MEASURE["worker crash: longest gap between increments (s)"] = float(max(gaps.values()))
    MEASURE["worker return: Ready after start (s)"] = nodes.restore(victim)
    MEASURE["_victim"] = victim


def test_returned_worker_runs_clients_that_reach_servers_on_another_node(
        fleet: tuple[Space, Nodes], tmp_path: Any) -> None:
    """The crashed worker is back; the client Jobs, pinned to it, reach by DNS name the
    servers, which all run on the other node now (Deployments do not move pods back)."""
    sp, nodes = fleet
    victim = MEASURE.pop("_victim", None)
    # The crash test restores its worker whatever happens; without it there is nothing to test.
    assert victim is not None, "the worker crash test did not complete: no returned worker"
    assert nodes.ready(victim) == "True" and victim not in nodes.crashed, victim
    servers_on = {p["spec"]["nodeName"] for ps in server_pods(sp).values() for p in ps}
    assert victim not in servers_on, servers_on
    pin = tmp_path / "clients-on-victim.yaml"
    pin.write_text(json.dumps({"clients": {"nodeSelector": {"kubernetes.io/hostname": victim}}}))
    sp.helm("upgrade", RELEASE, CHART, "-f", sp.values_file, "-f", str(pin),
            "--wait", "--timeout", "10m")
    for m in ROSTER:
        job = f"client-{m.name}"
        pods = sp.pods(f"job-name={job}")
        assert pods and {p["spec"]["nodeName"] for p in pods} == {victim}, job
        logs = sp.kube.job_logs(job, sp.ns)
        assert reply_for(m.c_row).search(logs) and reply_for(m.python_row).search(logs), logs
    still = {p["spec"]["nodeName"] for ps in server_pods(sp).values() for p in ps}
    assert victim not in still, "the upgrade moved servers; the clients proved nothing cross-node"


def test_database_node_crash_and_return_keeps_the_data(fleet: tuple[Space, Nodes],
                                                       crashes: Nodes) -> None:
    """The database's node crashes. Its local-path volume lives on that node's disk, so the
    database cannot move: the StatefulSet keeps its pod there (at most one pod per identity),
    the servers answer `db-unavailable` and go unready; when the node returns, the database
    starts on its own data, and the servers reconnect and continue the count."""
    sp, _ = fleet
    nodes = crashes
    where = db_node(sp)
    before = sp.rows()
    t0 = time.monotonic()
    nodes.crash(where)
    nodes.wait_ready(where, "Unknown", 120)
    MEASURE["database node return: Ready after start (s)"] = nodes.restore(where)
    sp.wait_ready(f"statefulset/{DB}", timeout=300)
    assert db_node(sp) == where
    deadline = time.monotonic() + 180
    while True:
        try:
            now = sp.rows()
        except (AssertionError, k8s.K8sError):
            now = {}
        if now and all(now[s.row].points > before[s.row].points for s in SERVERS):
            break
        assert time.monotonic() < deadline, f"rows did not rise again: {before} -> {now}"
        time.sleep(2)
    MEASURE["database node crash -> rows rising again (s)"] = time.monotonic() - t0
    for s in SERVERS:
        # Never reset: the count continued from what the volume kept.
        assert now[s.row].points > before[s.row].points >= 0
    for s in SERVERS:
        sp.wait_ready(f"deployment/{s.name}", timeout=180)
