"""`make bench-k8s`: one release of a class of 40, 100 and 200 members on the local cluster
(the current kube context, else the project's kind cluster), installed as the chart README says
(`helm install --wait`), measured, and removed before the next size. Prints one table:

  install      seconds of `helm install --wait` (servers ready, then every client Job done)
  jobs         first client Job start -> last client Job complete (s)
  round        seconds until every row has risen once more, from a snapshot taken after install
  sessions     the database's connected sessions / max_connections (computed by the chart)
  refused      connections the database refused for max_connections (must be 0)
  db MiB       the database container's working set (kubelet), and its memory request
  C / Py MiB   the servers' working set, mean and largest, per language

The numbers are reported, not asserted (tests/e2e/test_roster.py asserts the rules at 40).

    python -m pointsbench.k8s_scale [--sizes 40,100,200] [--interval 5] [--timeout 1200]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from tempfile import TemporaryDirectory

from pointsmesh import k8s, spec

RELEASE = "points"
DB = f"{RELEASE}-database"


@dataclass
class Result:
    size: int
    install_s: float
    jobs_s: float
    round_s: float
    sessions: int
    max_connections: int
    refused: int
    db_mib: float
    db_request: str
    c_mib: tuple[float, float]
    py_mib: tuple[float, float]
    note: str = ""


def _status(kube: k8s.Kube, ns: str) -> dict[str, int]:
    rows = kube.database_sql(ns, DB, "SHOW GLOBAL STATUS WHERE Variable_name IN "
                             "('Threads_connected', 'Connection_errors_max_connections')")
    out = {k: int(v) for k, v in rows}
    out["max_connections"] = int(kube.database_sql(ns, DB, "SELECT @@max_connections")[0][0])
    return out


def _points(kube: k8s.Kube, ns: str) -> dict[str, int]:
    return {u: int(p) for u, p in kube.database_sql(
        ns, DB, "SELECT user, points FROM project_db.users")}


def run_size(kube: k8s.Kube, base_values: dict[str, object], size: int, timeout: int,
             interval: int, log: k8s.Progress) -> Result:
    members = spec.class_roster(size)
    ns = f"bench-class-{size}"
    kube.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=300s", check=False,
                 timeout=330)
    kube.kubectl("create", "namespace", ns)
    with TemporaryDirectory() as tmp:
        # The client Jobs all start at once: on a small cluster a large class's pods take
        # minutes to start, so their deadline follows helm's --timeout (the chart README).
        vfile = k8s.write_values(
            k8s.merge_values(base_values, {
                "members": spec.chart_members(members),
                "clients": {"activeDeadlineSeconds": max(270, timeout - 60)}}),
            Path(tmp) / "values.yaml")
        log(f"{size} members: helm install --wait --timeout {timeout}s ...")
        t0 = time.monotonic()
        proc = kube.helm("install", RELEASE, str(k8s.CHART), "-n", ns, "-f", str(vfile),
                         "--wait", "--timeout", f"{timeout}s", check=False,
                         timeout=timeout + 120)
        install_s = time.monotonic() - t0
    note = "" if proc.returncode == 0 else f"helm exited {proc.returncode}"
    if proc.returncode != 0:
        log(f"{size} members: {proc.stderr.strip()[-500:]}; {kube.pod_summary(ns, limit=10)}")
    jobs = kube.kubectl_json("-n", ns, "get", "jobs")["items"]
    starts = [k8s.api_time(j["status"]["startTime"]) for j in jobs if j["status"].get("startTime")]
    ends = [k8s.api_time(j["status"]["completionTime"]) for j in jobs
            if j["status"].get("completionTime")]
    done = sum(1 for j in jobs if j["status"].get("succeeded") == 1)
    if done != size:
        note += f"; {done}/{size} client Jobs succeeded"
    jobs_s = max(ends) - min(starts) if starts and ends else float("nan")
    before = _points(kube, ns)
    t0 = time.monotonic()
    round_s = float("nan")
    while time.monotonic() - t0 < 20 * interval:
        now = _points(kube, ns)
        if all(now.get(u, -1) > p for u, p in before.items()):
            round_s = time.monotonic() - t0
            break
        time.sleep(0.5)
    status = _status(kube, ns)
    usage = kube.container_usage(ns)
    db = [u.working_set / 2**20 for u in usage if u.container == "database"]
    c = [u.working_set / 2**20 for u in usage
         if u.container == "server" and u.pod.startswith("c-server-")]
    py = [u.working_set / 2**20 for u in usage
          if u.container == "server" and u.pod.startswith("python-server-")]
    sts = kube.kubectl_json("-n", ns, "get", f"statefulset/{DB}")
    (db_container,) = [x for x in sts["spec"]["template"]["spec"]["containers"]
                       if x["name"] == "database"]
    result = Result(
        size, install_s, jobs_s, round_s, status.get("Threads_connected", 0),
        status["max_connections"], status.get("Connection_errors_max_connections", 0),
        db[0] if db else float("nan"), db_container["resources"]["requests"]["memory"],
        (mean(c), max(c)) if c else (float("nan"),) * 2,
        (mean(py), max(py)) if py else (float("nan"),) * 2, note.strip("; "))
    log(f"{size} members: done ({format_row(result)}); uninstalling ...")
    kube.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "5m", check=False,
              timeout=400)
    kube.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=300s", check=False,
                 timeout=330)
    return result


HEADER = (f"{'members':>7} {'install s':>9} {'jobs s':>7} {'round s':>7} {'sessions':>9} "
          f"{'refused':>7} {'db MiB':>7} {'db req':>7} {'C MiB':>10} {'Py MiB':>11}  note")


def format_row(r: Result) -> str:
    return (f"{r.size:>7} {r.install_s:>9.0f} {r.jobs_s:>7.0f} {r.round_s:>7.1f} "
            f"{f'{r.sessions}/{r.max_connections}':>9} {r.refused:>7} {r.db_mib:>7.0f} "
            f"{r.db_request:>7} {f'{r.c_mib[0]:.1f}/{r.c_mib[1]:.1f}':>10} "
            f"{f'{r.py_mib[0]:.1f}/{r.py_mib[1]:.1f}':>11}  {r.note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="40,100,200", help="class sizes (default 40,100,200)")
    ap.add_argument("--interval", type=int, default=5, help="servers.updateInterval")
    ap.add_argument("--timeout", type=int, default=1200, help="helm --timeout (s) per size")
    ap.add_argument("--cluster", default=None, help="kind|current|auto (POINTS_MESH_CLUSTER)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    log = k8s.Progress("bench-k8s", sys.stdout)
    target = k8s.choose_cluster(args.cluster, log=log)
    images = k8s.ensure_images(target, log=log)
    values = k8s.values_for(target, images, update_interval=args.interval)
    capacity = {n["metadata"]["name"]: n["status"]["capacity"]["pods"]
                for n in target.kube.kubectl_json("get", "nodes")["items"]}
    log(f"nodes and their pod capacity: {capacity}")
    results = [run_size(target.kube, values, n, args.timeout, args.interval, log)
               for n in sizes]
    print("\n" + HEADER)
    for r in results:
        print(format_row(r))
    print("\n(sessions: connected / max_connections; C and Py MiB: mean / largest working set)")
    return 0 if all(not r.note for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
