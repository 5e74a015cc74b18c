"""`make k8s-demo`: the points mesh on Kubernetes, the cluster counterpart of `make demo`.

Picks the cluster (the current kube context if it answers, else the project's kind cluster,
built without any registry by ci/kind-airgap; POINTS_MESH_CLUSTER=kind|current|auto or
--cluster), builds the four images under a content tag and loads them into kind (or pushes them
to --image-registry), installs the Helm chart with a short update interval, prints every
member's client Job (`kubectl logs job/client-<member> --all-containers --prefix`), waits two
update intervals, runs the clients again and shows that the points have risen. The release is
left running (unless --uninstall) and the commands to look around and to remove it are printed.

The second round is a second `helm upgrade` with the same values: the client Jobs are Helm
post-install/post-upgrade hooks, so each upgrade deletes the previous Jobs and runs them anew
under the same names (`kubectl logs job/client-akmal` keeps working). `kubectl create job
--from=` only copies CronJobs, and a hand-made copy of a hook Job would be left behind by
`helm uninstall`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import k8s
from .spec import load_protocol, load_roster, reply_regex

NAMESPACE = "points-demo"
RELEASE = "points"
INTERVAL = 5


@dataclass
class Reply:
    job: str
    container: str
    row: str
    points: int
    line: str


def reply_pattern() -> re.Pattern[str]:
    """One reply line without its line end."""
    return re.compile(reply_regex(load_protocol().reply_format.rstrip("\r\n")))


def parse_job_logs(job: str, text: str, pattern: re.Pattern[str]) -> list[Reply]:
    """The reply lines in `kubectl logs --all-containers --prefix` output
    ('[pod/client-akmal-x/c-client] User: c_user-akmal, Points: 3, Last Update: ...')."""
    out = []
    for raw in text.splitlines():
        m = re.match(r"^\[pod/[^/\]]+/(?P<container>[^\]]+)\] (?P<line>.*)$", raw)
        container, line = (m["container"], m["line"]) if m else ("?", raw)
        r = pattern.fullmatch(line.strip())
        if r:
            out.append(Reply(job, container, r["user"], int(r["points"]), line.strip()))
    return out


def show_round(kube: k8s.Kube, jobs: list[str], namespace: str,
               pattern: re.Pattern[str]) -> dict[str, int]:
    """Print each Job's logs as kubectl shows them; return row -> points."""
    points: dict[str, int] = {}
    for job in jobs:
        print(f"  $ kubectl -n {namespace} logs job/{job} --all-containers --prefix")
        text = kube.job_logs(job, namespace, check=False)
        for line in text.strip().splitlines() or ["(no output)"]:
            print(f"    {line}")
        for reply in parse_job_logs(job, text, pattern):
            points[reply.row] = reply.points
    return points


def expected_rows() -> list[str]:
    return [row for m in load_roster() for row in (m.c_row, m.python_row)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--namespace", default=NAMESPACE, help=f"(default {NAMESPACE})")
    ap.add_argument("--release", default=RELEASE, help=f"Helm release (default {RELEASE})")
    ap.add_argument("--interval", type=int, default=INTERVAL,
                    help=f"servers.updateInterval in seconds (default {INTERVAL})")
    ap.add_argument("--cluster", choices=k8s.CLUSTER_MODES, default=None,
                    help="auto: the current context if it answers, else the project's kind "
                         "cluster; kind: always that; current: the current context "
                         "(default: POINTS_MESH_CLUSTER or auto)")
    ap.add_argument("--image-registry", default=None,
                    help="push the images there (needed for a cluster that is not kind)")
    ap.add_argument("--db-image", default=None,
                    help="database image (default: the CI image on the project's kind "
                         "cluster, else the chart's default)")
    ap.add_argument("--rebuild", action="store_true",
                    help="build the images from scratch (docker build --no-cache)")
    ap.add_argument("--no-second-round", action="store_true",
                    help="stop after the first round of client Jobs")
    ap.add_argument("--uninstall", action="store_true",
                    help="remove the release and the namespace at the end")
    ap.add_argument("--timeout", type=int, default=600, help="helm --timeout in seconds")
    args = ap.parse_args(argv)

    log = k8s.Progress("k8s-demo", sys.stdout)
    timings: dict[str, float] = {}
    pattern = reply_pattern()
    members = [m.name for m in load_roster()]
    jobs = k8s.client_jobs(members)
    ok = True
    try:
        log("choosing the cluster ...")
        target = k8s.choose_cluster(args.cluster, log=log)
        timings["cluster"] = log.elapsed()
        kube = target.kube

        images = k8s.ensure_images(target, registry=args.image_registry,
                                   db_image=args.db_image, rebuild=args.rebuild, log=log)
        timings.update(images.timings)
        values = k8s.values_for(target, images, update_interval=args.interval)
        log("helm values: " + ", ".join(_flatten(values)))

        log(f"helm upgrade --install {args.release} helm/points-mesh --namespace "
            f"{args.namespace} --create-namespace --wait --timeout {args.timeout}s ...")
        t_helm = time.time()
        helm_run = kube.helm_upgrade_install(
            args.release, args.namespace, values, timeout_s=args.timeout, log=log)
        timings["helm_install"] = helm_run.seconds
        kube.wait_jobs(jobs, args.namespace, timeout=120, log=log)
        timings["install_to_jobs_done"] = _jobs_done_after(kube, jobs, args.namespace, t_helm)
        log(f"installed in {timings['helm_install']:.1f} s; all client Jobs complete "
            f"{timings['install_to_jobs_done']:.1f} s after helm started")

        print("\nhelm says:")
        for line in helm_run.output.strip().splitlines():
            print(f"  {line}")
        print("\nround 1: each member's client Job (C client, then Python client)")
        first = show_round(kube, jobs, args.namespace, pattern)
        ok &= _check_rows(first)

        if not args.no_second_round:
            wait = 2 * args.interval
            log(f"waiting {wait} s (two update intervals) ...")
            time.sleep(wait)
            log("round 2: helm upgrade with the same values re-runs the client Jobs ...")
            t0 = time.monotonic()
            kube.helm_upgrade_install(args.release, args.namespace, values,
                                      timeout_s=args.timeout, log=log)
            kube.wait_jobs(jobs, args.namespace, timeout=120, log=log)
            timings["second_round"] = time.monotonic() - t0
            print("\nround 2: the points have risen")
            second = show_round(kube, jobs, args.namespace, pattern)
            ok &= _check_rows(second)
            risen = {row: (first.get(row), second.get(row)) for row in expected_rows()}
            not_risen = {r: v for r, v in risen.items()
                         if v[0] is None or v[1] is None or v[1] <= v[0]}
            if not_risen:
                ok = False
                print(f"\nthese rows did not rise: {not_risen}")
            else:
                print("\nevery row rose: " + ", ".join(
                    f"{row} {a}->{b}" for row, (a, b) in risen.items()))

        _hints(target, args.release, args.namespace, uninstalling=args.uninstall)
        if args.uninstall:
            log(f"removing: helm uninstall {args.release}; kubectl delete namespace "
                f"{args.namespace} ...")
            t0 = time.monotonic()
            kube.helm_uninstall(args.release, args.namespace)
            kube.kubectl("delete", "namespace", args.namespace, "--wait=true",
                         "--timeout=180s", check=False, timeout=240)
            timings["uninstall"] = time.monotonic() - t0
    except k8s.K8sError as exc:
        print(f"\nk8s-demo failed: {exc}", file=sys.stderr)
        ok = False
    timings["total"] = log.elapsed()
    print("\ntimings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return 0 if ok else 1


def _flatten(values: dict[str, object], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={value!r}" if value == "" else f"{prefix}{key}={value}")
    return out


def _check_rows(points: dict[str, int]) -> bool:
    missing = [r for r in expected_rows() if r not in points]
    if missing:
        print(f"  no reply line for: {', '.join(missing)}")
    return not missing


def _jobs_done_after(kube: k8s.Kube, jobs: list[str], namespace: str, t_start: float) -> float:
    """Seconds from t_start (epoch) to the last Job's completionTime (API time, 1 s steps)."""
    last = 0.0
    for _start, done in kube.job_times(jobs, namespace).values():
        if done:
            last = max(last, k8s.api_time(done))
    return max(0.0, last - t_start) if last else float("nan")


def _hints(target: k8s.Target, release: str, namespace: str, *, uninstalling: bool) -> None:
    kube = target.kube
    print(f"\nThe release {release} runs in namespace {namespace} on {target.description}.")
    kc, helm = "kubectl", "helm"
    if target.project_kind:
        dirs = sorted({str(Path(kube.kubectl_bin).parent), str(Path(kube.helm_bin).parent)})
        print("Its kubectl and helm (built by ci/kind-airgap; `ci/kind-airgap/cluster.sh env`):")
        print(f"  export KUBECONFIG={kube.kubeconfig} PATH={':'.join(dirs)}:$PATH")
    elif kube.context:
        kc = f"kubectl --context {kube.context}"
        helm = f"helm --kube-context {kube.context}"
    member = load_roster()[0]
    print("Look around (the chart's NOTES above say more):")
    print(f"  {kc} -n {namespace} get pods,svc,jobs,pvc,networkpolicies")
    print(f"  {kc} -n {namespace} logs job/client-{member.name} -c python-client")
    print(f"  {kc} -n {namespace} logs deploy/{member.c_server}      # the server's JSON events")
    print(f"  {helm} -n {namespace} test {release} --logs")
    print("  make k8s-demo      # again: a helm upgrade, the client Jobs run anew")
    if not uninstalling:
        print("Remove it:")
        print(f"  {helm} uninstall {release} -n {namespace}")
        print(f"  {kc} delete namespace {namespace}    # with the database volume and Secret")
        if target.project_kind:
            print("  make cluster-delete                # the whole kind cluster")


if __name__ == "__main__":
    sys.exit(main())
