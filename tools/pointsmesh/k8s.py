"""The points mesh on Kubernetes: images, the cluster, Helm values, and waiting with progress.

Shared by `make k8s-demo` (pointsmesh.k8sdemo) and the e2e suite's fixtures. Every long step
prints progress lines ("[k8s   12.3s] building c-server image ...") through a `Log` callable,
so nothing waits silently.

    choose_cluster(mode)            -> Target     the cluster to use (current context, or the
                                                  project's kind cluster: ci/kind-airgap)
    ci_images()                     -> CiImages   ci/docker/prepare.sh: CI base + database image
    content_tag(root, base_id)      -> str        "<VERSION>-<12 hex>" of the images' build inputs
    build_images(tag, base_image)   -> BuildResult  docker build of the four images (skips
                                                  tags that exist: the tag is the content hash)
    load_images(target, refs)       -> LoadResult kind load docker-image, skipping images that
                                                  every node already has
    push_images(refs, registry)     -> dict       docker tag + push (clusters kind cannot load)
    ensure_images(target, ...)      -> Images     all of the above as one step
    values_for(target, images, ...) -> dict       Helm values pointing the chart at the images
    Kube                                          kubectl/helm with one kubeconfig; helm with
                                                  progress, Job waits, logs, pod summaries

Cluster choice (POINTS_MESH_CLUSTER, or the `mode` argument): `auto` (default) uses the current
kube context when it answers within a few seconds, else brings up the project's kind cluster;
`kind` always uses (and brings up) the project's kind cluster; `current` requires the current
context. Images reach a kind cluster with `kind load`; any other cluster needs a registry that
it can pull from (`registry=`, images pushed with `docker push`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import ROOT, charttools

CHART = ROOT / "helm" / "points-mesh"
CI_DOCKER = ROOT / "ci" / "docker"
KIND_AIRGAP = ROOT / "ci" / "kind-airgap"
CLUSTER_SH = KIND_AIRGAP / "cluster.sh"

# name -> (Dockerfile, the chart value holding its repository). Build context: ROOT.
IMAGES: dict[str, tuple[str, str]] = {
    "c-server": ("services/c-server/Dockerfile", "cServer"),
    "python-server": ("services/py-server/Dockerfile", "pythonServer"),
    "c-client": ("clients/c-client/Dockerfile", "cClient"),
    "python-client": ("clients/py-client/Dockerfile", "pythonClient"),
}
IMAGE_PREFIX = "pointsmesh"  # the chart's default repositories: pointsmesh/<name>
# Everything the four images are built from (the root .dockerignore sends nothing else).
BUILD_INPUTS = (
    "VERSION",
    ".dockerignore",
    "protocol",
    "services/c-server",
    "services/py-server",
    "clients/c-client",
    "clients/py-client",
)
HOST_PATH_PROVISIONER = "kubernetes.io/host-path"
DEFAULT_CLUSTER_NAME = "points-mesh"  # ci/kind-airgap's default (KIND_AIRGAP_CLUSTER)
CLUSTER_MODES = ("auto", "kind", "current")

UP_TIMEOUT = 5400.0  # a cold node image build: 15-30 min on 2 shared cores, more under load
BUILD_TIMEOUT = 1800.0
LOAD_TIMEOUT = 900.0
HELM_TIMEOUT = 600.0

Log = Callable[[str], None]


class K8sError(RuntimeError):
    """A step failed; the message says which command, why, and what to do."""


# ---------------------------------------------------------------------------------------------
# Progress lines and commands


class Progress:
    """A Log that prefixes each line with the seconds since it was made."""

    def __init__(self, prefix: str = "k8s", stream: TextIO | None = None) -> None:
        self.prefix = prefix
        self.stream = stream
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, msg: str) -> None:
        stream = self.stream or sys.stderr
        print(f"[{self.prefix} {self.elapsed():6.1f}s] {msg}", file=stream, flush=True)


default_log: Log = Progress()


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; K8sError with the output's tail when it fails."""
    try:
        proc = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise K8sError(f"{cmd[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise K8sError(f"{' '.join(cmd)}: no answer within {timeout:g}s") from exc
    if check and proc.returncode != 0:
        raise K8sError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def run_progress(
    cmd: Sequence[str],
    *,
    what: str,
    log: Log = default_log,
    timeout: float,
    env: Mapping[str, str] | None = None,
    status: Callable[[list[str]], str] | None = None,
    every: float = 15.0,
    check: bool = True,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a long command; every `every` seconds log "<what>: <n> s, <status>", where status()
    gets the output lines so far (default: the last one). stdout and stderr are merged; the
    result's stdout holds them all. On timeout the command's process group is killed."""
    lines: list[str] = []
    done: queue.Queue[None] = queue.Queue()
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise K8sError(f"{cmd[0]}: command not found") from exc

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
        done.put(None)

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    threading.Thread(target=reader, daemon=True).start()
    t0 = time.monotonic()
    next_report = t0 + every
    try:
        while True:
            try:
                proc.wait(timeout=max(0.1, min(next_report, t0 + timeout) - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if now >= t0 + timeout:
                    kill()
                    tail = "\n".join(lines[-40:])
                    raise K8sError(
                        f"{what}: not finished after {timeout:g}s (killed)\n{tail}"
                    ) from None
                if now >= next_report:
                    text = status(lines) if status else (lines[-1] if lines else "no output yet")
                    log(f"{what}: {now - t0:.0f} s, {text}")
                    next_report = now + every
    except BaseException:
        # Ctrl-C or a failing status(): the command runs in its own session, so end it here.
        if proc.poll() is None:
            kill()
        raise
    with contextlib.suppress(queue.Empty):
        done.get(timeout=10)
    out = "\n".join(lines) + ("\n" if lines else "")
    if check and proc.returncode != 0:
        tail = "\n".join(lines[-60:])
        raise K8sError(f"{what}: {' '.join(cmd)} exited {proc.returncode}\n{tail}")
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, "")


def wait_until(
    what: str,
    probe: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    log: Log = default_log,
    every: float = 10.0,
    poll: float = 1.0,
) -> float:
    """Poll probe() -> (done, status) until done; log what is waited for and its status every
    `every` seconds. Returns the seconds waited; K8sError with the last status on timeout."""
    t0 = time.monotonic()
    done, text = probe()
    if done:
        return 0.0
    log(f"waiting for {what} ({text})")
    next_report = t0 + every
    while True:
        time.sleep(poll)
        done, text = probe()
        now = time.monotonic()
        if done:
            return now - t0
        if now - t0 > timeout:
            raise K8sError(f"{what}: not done after {timeout:g}s; last status: {text}")
        if now >= next_report:
            log(f"still waiting for {what}: {now - t0:.0f} s, {text}")
            next_report = now + every


# ---------------------------------------------------------------------------------------------
# Image references


def split_image_ref(ref: str) -> tuple[str, str]:
    """'repo/name:tag' -> ('repo/name', 'tag'); a missing tag is 'latest'. Registries with a
    port ('localhost:5000/a:b') are handled; digests are not (the chart takes a tag)."""
    if "@" in ref:
        raise ValueError(f"{ref}: image digests are not supported here, give a tag")
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def normalize_ref(ref: str) -> str:
    """The fully qualified name containerd stores an image under ('pointsmesh/c-server:1' ->
    'docker.io/pointsmesh/c-server:1', 'mariadb' -> 'docker.io/library/mariadb:latest')."""
    repo, tag = split_image_ref(ref)
    first, _, rest = repo.partition("/")
    if not rest:
        repo = f"docker.io/library/{repo}"
    elif not ("." in first or ":" in first or first == "localhost"):
        repo = f"docker.io/{repo}"
    return f"{repo}:{tag}"


def normalize_registry(registry: str | None) -> str:
    """'' stays ''; 'registry.example.com:5000' -> 'registry.example.com:5000/' (the chart
    prepends image.registry to each repository, slash included)."""
    if not registry:
        return ""
    return registry.rstrip("/") + "/"


def image_ref(name: str, tag: str, registry: str = "") -> str:
    """The reference of one project image: [registry/]pointsmesh/<name>:<tag>."""
    if name not in IMAGES:
        raise ValueError(f"unknown image {name!r} (one of {', '.join(IMAGES)})")
    return f"{normalize_registry(registry)}{IMAGE_PREFIX}/{name}:{tag}"


# ---------------------------------------------------------------------------------------------
# Content tag


def dockerignore_patterns(root: Path = ROOT) -> list[str]:
    """The exclusion patterns of the root .dockerignore (re-inclusions and '*' left out: the
    build inputs are listed explicitly in BUILD_INPUTS)."""
    path = root / ".dockerignore"
    if not path.exists():
        return []
    out = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")) or line == "*":
            continue
        out.append(line)
    return out


def ignored(path: str, patterns: Iterable[str]) -> bool:
    """Whether .dockerignore keeps `path` (relative, '/'-separated) out of the build context."""
    parts = path.split("/")
    for pattern in patterns:
        pat = pattern.rstrip("/")
        if pat.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pat[3:]) for part in parts):
                return True
        elif fnmatch.fnmatchcase(path, pat) or path.startswith(pat + "/"):
            return True
    return False


def build_input_files(root: Path = ROOT, inputs: Sequence[str] = BUILD_INPUTS) -> list[str]:
    """The files the images are built from: git's tracked and untracked-but-not-ignored files
    under `inputs` (a checkout without git: every file there), minus what .dockerignore
    excludes. Relative paths, sorted."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard", "--", *inputs],
            capture_output=True, timeout=60, check=False,
        )
        listed = proc.stdout.decode().split("\0") if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        listed = None
    if listed is None:
        listed = []
        for item in inputs:
            p = root / item
            if p.is_file():
                listed.append(item)
            elif p.is_dir():
                listed += [f.relative_to(root).as_posix() for f in p.rglob("*") if f.is_file()]
    patterns = dockerignore_patterns(root)
    files = {
        f for f in listed
        if f and (root / f).is_file() and not ignored(f, patterns)
    }
    return sorted(files)


def content_hash(root: Path = ROOT, extra: Sequence[str] = (),
                 inputs: Sequence[str] = BUILD_INPUTS) -> str:
    """sha256 (hex) of the build input files (path, executable bit, bytes) and `extra`."""
    h = hashlib.sha256()
    for rel in build_input_files(root, inputs):
        p = root / rel
        mode = "x" if os.access(p, os.X_OK) else "-"
        h.update(f"{rel}\0{mode}\0".encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
        h.update(b"\n")
    for item in extra:
        h.update(f"extra\0{item}\n".encode())
    return h.hexdigest()


def repo_version(root: Path = ROOT) -> str:
    return (root / "VERSION").read_text().strip()


def content_tag(root: Path = ROOT, base_image_id: str = "") -> str:
    """'<VERSION>-<12 hex>': the same sources and base give the same tag, any change a new one
    (so pods run the new image: the chart's pullPolicy IfNotPresent is then right)."""
    digest = content_hash(root, extra=[f"base={base_image_id}"] if base_image_id else [])
    return f"{repo_version(root)}-{digest[:12]}"


# ---------------------------------------------------------------------------------------------
# Docker


def docker_image_id(ref: str) -> str | None:
    proc = run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], check=False, timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else None


def docker_build_env() -> dict[str, str]:
    """The environment for `docker build`: BuildKit only where the buildx plugin exists (the
    CI engine here is Docker 20.10 without it: the classic builder, as everywhere in ci/)."""
    env = dict(os.environ)
    has_buildx = run(["docker", "buildx", "version"], check=False, timeout=30).returncode == 0
    if not has_buildx:
        env["DOCKER_BUILDKIT"] = "0"
    return env


@dataclass(frozen=True)
class CiImages:
    """What ci/docker/prepare.sh made: the local stand-in for debian:bookworm-slim and the CI
    database images honouring the official mysql image contract: MariaDB (db) and Oracle MySQL
    (mysql, from Debian's packages; None when prepare.sh does not make one)."""

    base: str
    db: str
    seconds: float
    mysql: str | None = None

    def database(self, flavour: str) -> str:
        """The CI database image of FLAVOUR (mysql: the chart's default; mariadb)."""
        if flavour == "mysql" and self.mysql:
            return self.mysql
        if flavour in ("mysql", "mariadb"):
            return self.db
        raise K8sError(f"database flavour {flavour!r}: use mysql or mariadb")


def ci_images(log: Log = default_log, timeout: float = 3600) -> CiImages:
    """Run ci/docker/prepare.sh (Docker engine, Compose, base and database images; each cached,
    under a second when warm) and return its CI_BASE_IMAGE and DB_IMAGE."""
    log("CI images: ci/docker/prepare.sh (engine, base image, database image; cached) ...")
    t0 = time.monotonic()
    proc = run_progress(
        ["bash", str(CI_DOCKER / "prepare.sh")], what="ci/docker/prepare.sh", log=log,
        timeout=timeout, every=30,
    )
    values = dict(
        line.split("=", 1) for line in proc.stdout.splitlines()
        if re.match(r"^(CI_BASE_IMAGE|DB_IMAGE|MYSQL_DB_IMAGE)=", line)
    )
    if "CI_BASE_IMAGE" not in values or "DB_IMAGE" not in values:
        raise K8sError(f"ci/docker/prepare.sh printed no CI_BASE_IMAGE/DB_IMAGE:\n{proc.stdout}")
    out = CiImages(values["CI_BASE_IMAGE"], values["DB_IMAGE"], time.monotonic() - t0,
                   values.get("MYSQL_DB_IMAGE"))
    log(f"CI images ready in {out.seconds:.1f} s: base {out.base}, databases {out.db}"
        f"{', ' + out.mysql if out.mysql else ''}")
    return out


@dataclass(frozen=True)
class BuildResult:
    tag: str
    refs: dict[str, str]  # image name -> local reference
    built: tuple[str, ...]  # names built now (the others existed under this content tag)
    seconds: dict[str, float]  # name -> build time (0 for the ones that existed)

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


def _build_status(lines: list[str]) -> str:
    steps = [ln for ln in lines if ln.startswith("Step ")]
    last = steps[-1] if steps else (lines[-1] if lines else "starting")
    return " ".join(last.split())[:90]


def build_images(
    tag: str,
    base_image: str | None = None,
    *,
    names: Sequence[str] = tuple(IMAGES),
    force: bool = False,
    no_cache: bool = False,
    log: Log = default_log,
    timeout: float = BUILD_TIMEOUT,
) -> BuildResult:
    """docker build each image as pointsmesh/<name>:<tag> (context: the repository root,
    BASE_IMAGE build-arg when given, VERSION from the VERSION file). An image whose tag exists
    is not rebuilt (the tag is the content hash), unless force; no_cache (implies force)
    builds without Docker's layer cache."""
    force = force or no_cache
    env = docker_build_env()
    version = repo_version()
    refs: dict[str, str] = {}
    built: list[str] = []
    seconds: dict[str, float] = {}
    for name in names:
        ref = image_ref(name, tag)
        refs[name] = ref
        if not force and docker_image_id(ref):
            log(f"{name} image {ref} exists (same content tag): not rebuilt")
            seconds[name] = 0.0
            continue
        dockerfile = IMAGES[name][0]
        cmd = ["docker", "build", "--force-rm", "-f", dockerfile, "-t", ref,
               "--build-arg", f"VERSION={version}"]
        if no_cache:
            cmd.append("--no-cache")
        if base_image:
            cmd += ["--build-arg", f"BASE_IMAGE={base_image}"]
        cmd.append(".")
        log(f"building {name} image {ref} ...")
        t0 = time.monotonic()
        run_progress(cmd, what=f"building {name}", log=log, timeout=timeout, env=env,
                     status=_build_status, every=20)
        seconds[name] = time.monotonic() - t0
        built.append(name)
        log(f"built {name} in {seconds[name]:.1f} s")
    return BuildResult(tag, refs, tuple(built), seconds)


def push_images(refs: Mapping[str, str], registry: str, log: Log = default_log,
                timeout: float = 900) -> dict[str, str]:
    """docker tag + docker push each local image to `registry`; name -> remote reference."""
    reg = normalize_registry(registry)
    if not reg:
        raise ValueError("push_images needs a registry")
    out: dict[str, str] = {}
    for name, ref in refs.items():
        remote = reg + ref
        run(["docker", "tag", ref, remote])
        log(f"pushing {remote} ...")
        run_progress(["docker", "push", remote], what=f"pushing {name}", log=log,
                     timeout=timeout, every=20)
        out[name] = remote
    return out


# ---------------------------------------------------------------------------------------------
# kubectl and helm


@dataclass(frozen=True)
class HelmRun:
    seconds: float
    output: str  # helm's stdout and stderr (status, NOTES)


@dataclass
class Kube:
    """kubectl and helm against one cluster: kubeconfig None = the default one (KUBECONFIG or
    ~/.kube/config); context None = its current context."""

    kubectl_bin: str = "kubectl"
    helm_bin: str = "helm"
    kubeconfig: str | None = None
    context: str | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        return env

    def kubectl_cmd(self, *args: str) -> list[str]:
        cmd = [self.kubectl_bin]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        if self.context:
            cmd += ["--context", self.context]
        return [*cmd, *args]

    def helm_cmd(self, *args: str) -> list[str]:
        cmd = [self.helm_bin]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        if self.context:
            cmd += ["--kube-context", self.context]
        return [*cmd, *args]

    def shell_prefix(self) -> str:
        """How a person types kubectl for this cluster (for hints printed to the user)."""
        return " ".join(self.kubectl_cmd())

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(self.kubectl_cmd(*args), timeout=timeout, check=check, input=input,
                   env=self.env)

    def kubectl_json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def helm(self, *args: str, timeout: float = HELM_TIMEOUT + 60,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(self.helm_cmd(*args), timeout=timeout, check=check, env=self.env)

    def answers(self, timeout: float = 5.0) -> bool:
        """Whether the API server answers /readyz within `timeout` seconds."""
        try:
            proc = run(self.kubectl_cmd(f"--request-timeout={timeout:g}s", "get", "--raw",
                                        "/readyz"),
                       timeout=timeout + 5, check=False, env=self.env)
        except K8sError:
            return False
        return proc.returncode == 0

    # -- what is going on in a namespace

    def pod_summary(self, namespace: str, limit: int = 6) -> str:
        """One line: the pods of the namespace that are not ready yet and why, and the Jobs
        that have not completed."""
        proc = self.kubectl("-n", namespace, "get", "pods,jobs", "-o", "json", check=False,
                            timeout=30)
        if proc.returncode != 0:
            return "(kubectl get pods,jobs failed)"
        items = json.loads(proc.stdout).get("items", [])
        text = summarize_pods({"items": [i for i in items if i.get("kind") == "Pod"]}, limit)
        jobs = summarize_jobs([i for i in items if i.get("kind") == "Job"])
        return f"{text}; {jobs}" if jobs else text

    def events_tail(self, namespace: str, n: int = 25) -> str:
        proc = self.kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp",
                            check=False, timeout=30)
        return "\n".join(proc.stdout.splitlines()[-n:])

    # -- helm

    def helm_upgrade_install(
        self,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
        *,
        chart: Path = CHART,
        timeout_s: float = HELM_TIMEOUT,
        extra_args: Sequence[str] = (),
        log: Log = default_log,
    ) -> HelmRun:
        """helm upgrade --install RELEASE CHART -n NAMESPACE --create-namespace --wait with
        `values` (a temporary values file). While helm waits, log which pods are not ready yet
        (and the client Job hooks it runs last). Returns helm's seconds and output (with the
        chart's NOTES); K8sError with helm's output, the pods and recent events on failure."""
        with tempfile.TemporaryDirectory(prefix="pointsmesh-helm-") as tmp:
            vfile = write_values(values, Path(tmp) / "values.yaml")
            minutes = max(1, round(timeout_s / 60))
            cmd = self.helm_cmd(
                "upgrade", "--install", release, str(chart), "--namespace", namespace,
                "--create-namespace", "--wait", "--timeout", f"{minutes}m", "-f", str(vfile),
                *extra_args,
            )
            t0 = time.monotonic()
            proc = run_progress(
                cmd, what=f"helm upgrade --install {release}", log=log,
                timeout=minutes * 60 + 120, env=self.env, check=False, every=10,
                status=lambda _lines: "waiting for: " + self.pod_summary(namespace),
            )
            took = time.monotonic() - t0
        if proc.returncode != 0:
            raise K8sError(
                f"helm upgrade --install {release} failed after {took:.0f} s:\n"
                f"{proc.stdout[-4000:]}\npods: {self.pod_summary(namespace, limit=50)}\n"
                f"recent events:\n{self.events_tail(namespace)}"
            )
        return HelmRun(took, proc.stdout)

    def helm_uninstall(self, release: str, namespace: str, *, wait: bool = True,
                       timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        args = ["uninstall", release, "--namespace", namespace]
        if wait:
            args += ["--wait", "--timeout", f"{int(timeout_s)}s"]
        return self.helm(*args, timeout=timeout_s + 60, check=False)

    # -- Jobs

    def job_status(self, name: str, namespace: str) -> dict[str, Any] | None:
        proc = self.kubectl("-n", namespace, "get", f"job/{name}", "-o", "json", check=False,
                            timeout=30)
        if proc.returncode != 0:
            return None
        status: dict[str, Any] = json.loads(proc.stdout).get("status", {})
        return status

    def wait_jobs(self, names: Sequence[str], namespace: str, *, timeout: float = 300,
                  log: Log = default_log) -> float:
        """Wait until every Job in `names` has completed; K8sError (with pod details) as soon
        as one has failed. Returns the seconds waited."""

        def probe() -> tuple[bool, str]:
            pending = []
            for name in names:
                status = self.job_status(name, namespace)
                if status is None:
                    pending.append(f"{name} (not created yet)")
                    continue
                conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
                if conds.get("Failed") == "True":
                    raise K8sError(
                        f"job {name} failed: {status}\n"
                        + self.kubectl("-n", namespace, "logs", f"job/{name}",
                                       "--all-containers", "--prefix", check=False).stdout
                    )
                if conds.get("Complete") != "True":
                    pending.append(f"{name} (active {status.get('active', 0)})")
            return (not pending, "pending: " + ", ".join(pending) if pending else "all complete")

        return wait_until(f"Jobs {', '.join(names)}", probe, timeout=timeout, log=log)

    def job_logs(self, name: str, namespace: str, *, all_containers: bool = True,
                 prefix: bool = True, check: bool = True) -> str:
        """`kubectl logs job/NAME [--all-containers] [--prefix]`."""
        args = ["-n", namespace, "logs", f"job/{name}"]
        if all_containers:
            args.append("--all-containers")
        if prefix:
            args.append("--prefix")
        return self.kubectl(*args, check=check, timeout=60).stdout

    def job_times(self, names: Sequence[str], namespace: str) -> dict[str, tuple[str, str]]:
        """name -> (startTime, completionTime) as the API reports them (RFC 3339, seconds)."""
        out = {}
        for name in names:
            status = self.job_status(name, namespace) or {}
            out[name] = (status.get("startTime", ""), status.get("completionTime", ""))
        return out

    # -- the chart's database and the kubelet's statistics

    def database_sql(self, namespace: str, statefulset: str, query: str) -> list[list[str]]:
        """Rows of QUERY, run as root inside the chart's database pod (tab-separated, no
        header; the password read from the pod's own Secret mount)."""
        script = ('MYSQL_PWD=$(cat /run/secrets/db/mysql-root-password) '
                  'exec "$(command -v mysql || command -v mariadb)" -uroot -N -B -e "$0"')
        out = self.kubectl("-n", namespace, "exec", f"statefulset/{statefulset}", "-c",
                           "database", "--", "sh", "-c", script, query, timeout=60).stdout
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    def container_usage(self, namespace: str) -> list[ContainerUsage]:
        """Each running container of the namespace's pods: working set and CPU, from every
        node's kubelet summary (through the API server)."""
        out = []
        for node in self.kubectl_json("get", "nodes")["items"]:
            name = node["metadata"]["name"]
            raw = self.kubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/stats/summary",
                               timeout=60).stdout
            for pod in json.loads(raw).get("pods", []):
                ref = pod["podRef"]
                if ref["namespace"] != namespace:
                    continue
                for c in pod.get("containers", []):
                    ws = c.get("memory", {}).get("workingSetBytes")
                    if ws is None:
                        continue
                    cpu = c.get("cpu", {}).get("usageNanoCores") or 0
                    out.append(ContainerUsage(ref["name"], c["name"], name, ws, cpu))
        return out

    # -- storage

    def default_storage_provisioner(self) -> str | None:
        proc = self.kubectl("get", "storageclass", "-o", "json", check=False, timeout=30)
        if proc.returncode != 0:
            return None
        return default_provisioner(json.loads(proc.stdout))


def api_time(stamp: str) -> float:
    """An API server time (RFC 3339, "2026-12-07T13:04:45Z") as seconds since the epoch."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class ContainerUsage:
    pod: str
    container: str
    node: str
    working_set: int  # bytes
    cpu_nanocores: int


def summarize_pods(pod_list: Mapping[str, Any], limit: int = 6) -> str:
    """'database-0 (init volume-permissions: PodInitializing), c-server-akmal-x (not ready)'
    for the pods of a `kubectl get pods -o json` list that are not ready or done."""
    waiting: list[str] = []
    items = pod_list.get("items", [])
    for pod in items:
        name = pod["metadata"]["name"]
        status = pod.get("status", {})
        phase = status.get("phase", "Pending")
        if phase == "Succeeded":
            continue
        ready = {c["type"]: c["status"] for c in status.get("conditions", [])}.get("Ready")
        if phase == "Running" and ready == "True":
            continue
        why = phase
        for kind, key in (("init ", "initContainerStatuses"), ("", "containerStatuses")):
            for cs in status.get(key) or []:
                state = cs.get("state", {})
                if "waiting" in state:
                    why = f"{kind}{cs['name']}: {state['waiting'].get('reason', 'waiting')}"
                    break
                if "running" in state and not cs.get("ready") and kind:
                    why = f"init {cs['name']}: running"
                    break
                if "terminated" in state and state["terminated"].get("exitCode", 0) != 0:
                    why = f"{kind}{cs['name']}: exited {state['terminated'].get('exitCode')}"
                    break
            else:
                continue
            break
        else:
            if phase == "Running":
                why = "running, not ready"
            elif phase == "Pending":
                sched = [c for c in status.get("conditions", [])
                         if c["type"] == "PodScheduled" and c["status"] != "True"]
                if sched:
                    why = f"unschedulable: {sched[0].get('message', '')[:60]}"
        waiting.append(f"{name} ({why})")
    if not items:
        return "no pods yet"
    if not waiting:
        return f"all {len(items)} pods ready or done"
    more = f" +{len(waiting) - limit} more" if len(waiting) > limit else ""
    return ", ".join(waiting[:limit]) + more


def summarize_jobs(jobs: Iterable[Mapping[str, Any]]) -> str:
    """'Jobs running: client-akmal, client-hasif' for the Jobs that have not completed."""
    running = []
    for job in jobs:
        conds = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
        if conds.get("Complete") != "True":
            state = "failed" if conds.get("Failed") == "True" else "running"
            running.append(f"{job['metadata']['name']} ({state})")
    return "Jobs not complete: " + ", ".join(running) if running else ""


def default_provisioner(sc_list: Mapping[str, Any]) -> str | None:
    """The provisioner of the default StorageClass in a `kubectl get storageclass -o json`."""
    keys = ("storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class")
    for sc in sc_list.get("items", []):
        ann = sc.get("metadata", {}).get("annotations") or {}
        if any(ann.get(k) == "true" for k in keys):
            provisioner = sc.get("provisioner")
            return str(provisioner) if provisioner else None
    return None


def write_values(values: Mapping[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(dict(values), sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# The cluster


@dataclass
class Target:
    """The cluster to deploy to and how images get there."""

    kube: Kube
    description: str
    project_kind: bool = False  # ci/kind-airgap's cluster: no registry, CI images
    kind_bin: str | None = None  # set when images can be loaded with `kind load`
    kind_cluster: str | None = None
    nodes: tuple[str, ...] = ()  # kind node containers
    created: bool = False  # brought up by this process
    up_s: float = 0.0
    env: dict[str, str] = field(default_factory=dict)  # `cluster.sh env` for the project kind

    @property
    def can_load(self) -> bool:
        return self.kind_bin is not None and self.kind_cluster is not None


def parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z0-9_]+=", line))


def kind_cluster_name() -> str:
    return os.environ.get("KIND_AIRGAP_CLUSTER") or DEFAULT_CLUSTER_NAME


def cluster_mode(mode: str | None = None) -> str:
    """The cluster choice: `mode`, else POINTS_MESH_CLUSTER, else auto."""
    value = (mode or os.environ.get("POINTS_MESH_CLUSTER") or "auto").strip().lower()
    if value not in CLUSTER_MODES:
        raise K8sError(f"cluster mode {value!r}: use one of {', '.join(CLUSTER_MODES)} "
                       "(POINTS_MESH_CLUSTER or --cluster)")
    return value


def current_context(kubectl: str = "kubectl") -> str | None:
    """The current context of the default kubeconfig, None when there is none (or no kubectl)."""
    if not shutil.which(kubectl):
        return None
    proc = run([kubectl, "config", "current-context"], check=False, timeout=15)
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None


def container_running(name: str) -> bool:
    proc = run(["docker", "inspect", "-f", "{{.State.Running}}", name], check=False, timeout=30)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def find_helm() -> str | None:
    """The helm `make setup` built (pointsmesh.charttools: its record, or $HELM), else helm on
    PATH, else the one ci/kind-airgap built (its cached env record), if any."""
    with contextlib.suppress(charttools.ChartToolMissing):
        return str(charttools.helm())
    if found := shutil.which("helm"):
        return found
    cache = run(["bash", "-c", f'. "{KIND_AIRGAP}/lib.sh"; printf %s "$KA_CACHE"'],
                check=False, timeout=30).stdout.strip()
    env_file = Path(cache) / "env" if cache else None
    if env_file and env_file.is_file():
        helm = parse_env(env_file.read_text()).get("HELM")
        if helm and Path(helm).exists():
            return helm
    return None


def project_kind_cluster(log: Log = default_log, timeout: float = UP_TIMEOUT) -> Target:
    """ci/kind-airgap/cluster.sh up (builds the node image when not cached: 15-30 min cold;
    reuses a healthy cluster in seconds), then its env: the built kind, kubectl and helm, and a
    dedicated kubeconfig."""
    name = kind_cluster_name()
    was_up = run(["bash", str(CLUSTER_SH), "status"], check=False, timeout=120).returncode == 0
    how = ("reusing the running cluster" if was_up
           else "creating it; a cold node image build takes 15-30 min")
    log(f"kind cluster {name}: ci/kind-airgap/cluster.sh up ({how}) ...")
    t0 = time.monotonic()
    run_progress(
        ["bash", str(CLUSTER_SH), "up"], what="cluster.sh up", log=log, timeout=timeout,
        every=30, status=lambda ls: (ls[-1][-100:] if ls else "starting"),
    )
    up_s = time.monotonic() - t0
    env = parse_env(run(["bash", str(CLUSTER_SH), "env"], timeout=600).stdout)
    kube = Kube(kubectl_bin=env["KUBECTL"], helm_bin=env["HELM"], kubeconfig=env["KUBECONFIG"])
    log(f"kind cluster {name} ready in {up_s:.1f} s ({'reused' if was_up else 'created'})")
    return Target(
        kube=kube,
        description=f"the project's kind cluster {name} (ci/kind-airgap, "
                    f"{'reused' if was_up else 'created now'})",
        project_kind=True,
        kind_bin=env["KIND"],
        kind_cluster=env["CLUSTER"],
        nodes=tuple(kind_nodes(env["KIND"], env["CLUSTER"])) or (env["NODE"],),
        created=not was_up,
        up_s=up_s,
        env=env,
    )


def kind_nodes(kind_bin: str, cluster: str) -> list[str]:
    proc = run([kind_bin, "get", "nodes", "--name", cluster], check=False, timeout=60)
    return proc.stdout.split() if proc.returncode == 0 else []


def choose_cluster(mode: str | None = None, *, log: Log = default_log,
                   answer_timeout: float = 5.0, up_timeout: float = UP_TIMEOUT) -> Target:
    """The cluster to use (see the module doc: auto / kind / current). Logs its choice."""
    mode = cluster_mode(mode)
    name = kind_cluster_name()
    if mode == "kind":
        log("POINTS_MESH_CLUSTER=kind: using the project's kind cluster")
        return project_kind_cluster(log, up_timeout)

    ctx = current_context()
    answers = bool(ctx) and Kube(context=ctx).answers(answer_timeout)
    if not answers:
        if mode == "current":
            raise K8sError(
                f"POINTS_MESH_CLUSTER=current, but the current kube context "
                f"{ctx or '(none)'} does not answer within {answer_timeout:g}s "
                "(kubectl get --raw /readyz)"
            )
        log(f"current kube context: {ctx + ' does not answer' if ctx else 'none'}; "
            "using the project's kind cluster")
        return project_kind_cluster(log, up_timeout)

    assert ctx is not None
    if ctx == f"kind-{name}" and container_running(f"{name}-control-plane"):
        log(f"current kube context {ctx} is the project's kind cluster")
        return project_kind_cluster(log, up_timeout)

    helm = find_helm()
    if not helm:
        raise K8sError("helm is not installed (https://helm.sh/docs/intro/install/), "
                       "or use the project's kind cluster: POINTS_MESH_CLUSTER=kind")
    kube = Kube(kubectl_bin=shutil.which("kubectl") or "kubectl", helm_bin=helm, context=ctx)
    target = Target(kube=kube, description=f"the current kube context {ctx}")
    # Another kind cluster (e.g. a user's `kind create cluster`): images load with its kind.
    kind_bin = shutil.which("kind")
    if ctx.startswith("kind-") and kind_bin:
        cluster = ctx.removeprefix("kind-")
        nodes = kind_nodes(kind_bin, cluster)
        if nodes:
            target.kind_bin, target.kind_cluster, target.nodes = kind_bin, cluster, tuple(nodes)
            target.description += f" (kind cluster {cluster})"
    log(f"using {target.description}")
    return target


# ---------------------------------------------------------------------------------------------
# Images into the cluster


def node_images(node: str) -> set[str]:
    """The image references in a kind node's containerd (namespace k8s.io), including the
    'sha256:<id>' references of the images' ids. The node has no crictl; ctr is there."""
    proc = run(["docker", "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q"],
               check=False, timeout=60)
    return set(proc.stdout.split()) if proc.returncode == 0 else set()


def node_has_image(refs_on_node: set[str], ref: str, image_id: str | None) -> bool:
    """Whether a node's image list (node_images) holds `ref`, as the same image id if known."""
    if normalize_ref(ref) not in refs_on_node:
        return False
    return image_id is None or image_id in refs_on_node


@dataclass(frozen=True)
class LoadResult:
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]  # every node had them already
    seconds: float


def load_images(target: Target, refs: Sequence[str], log: Log = default_log,
                timeout: float = LOAD_TIMEOUT) -> LoadResult:
    """kind load docker-image the refs that some node of the kind cluster lacks (by name and
    image id); one kind call for all of them."""
    if not target.can_load:
        raise K8sError(f"{target.description}: not a kind cluster, images cannot be loaded")
    assert target.kind_bin and target.kind_cluster
    on_nodes = {node: node_images(node) for node in target.nodes}
    missing: list[str] = []
    skipped: list[str] = []
    for ref in dict.fromkeys(refs):
        image_id = docker_image_id(ref)
        if image_id is None:
            raise K8sError(f"{ref}: no such local image (build it first)")
        if on_nodes and all(node_has_image(imgs, ref, image_id) for imgs in on_nodes.values()):
            skipped.append(ref)
        else:
            missing.append(ref)
    if skipped:
        log(f"already in the cluster's nodes: {', '.join(skipped)}")
    t0 = time.monotonic()
    if missing:
        log(f"loading {len(missing)} image(s) into kind cluster {target.kind_cluster}: "
            f"{', '.join(missing)} ...")
        run_progress(
            [target.kind_bin, "load", "docker-image", "--name", target.kind_cluster, *missing],
            what="kind load docker-image", log=log, timeout=timeout, every=20,
        )
        log(f"loaded in {time.monotonic() - t0:.1f} s")
    return LoadResult(tuple(missing), tuple(skipped), time.monotonic() - t0)


@dataclass(frozen=True)
class Images:
    """The images a deployment uses, and what it took to get them there."""

    tag: str
    refs: dict[str, str]  # name -> local reference (pointsmesh/<name>:<tag>)
    registry: str = ""  # "" (loaded into kind) or "<registry>/" (pushed there)
    db_image: str | None = None  # database.image; None: the chart's default
    base_image: str | None = None  # BASE_IMAGE build-arg; None: the Dockerfiles' default
    built: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # prepare, build, load, push
    # Every CI database image loaded, by flavour (mysql, mariadb); empty off the CI cluster.
    db_images: dict[str, str] = field(default_factory=dict)


def ensure_images(
    target: Target,
    *,
    registry: str | None = None,
    base_image: str | None = None,
    db_image: str | None = None,
    ci: bool | None = None,
    rebuild: bool = False,
    db_flavour: str = "mysql",
    log: Log = default_log,
) -> Images:
    """Build the four images under their content tag and get them (and the database image)
    to the target: `kind load` for a kind cluster, else docker push to `registry`.

    ci (default: the target is the project's air-gapped kind cluster): take the base and the
    database image from ci/docker/prepare.sh (no registry reachable). Otherwise the base is
    the Dockerfiles' default (debian:bookworm-slim) and the database the chart's default,
    unless base_image / db_image say otherwise. db_flavour: which CI database image the
    chart gets (mysql, as the chart's own default, or mariadb); both are loaded. rebuild:
    docker build --no-cache even when the content tag exists."""
    reg = normalize_registry(registry)
    if not reg and not target.can_load:
        raise K8sError(
            f"{target.description} is not a kind cluster, so the images cannot be loaded into "
            "it, and no image registry was given. Either\n"
            "  - pass a registry the cluster can pull from: --image-registry "
            "registry.example.com/team (the images are pushed there with docker push; "
            "log in first with docker login), or\n"
            "  - use the project's kind cluster, built without any registry: "
            "POINTS_MESH_CLUSTER=kind (or --cluster kind); it is brought up with "
            "ci/kind-airgap/cluster.sh and removed with `make cluster-delete`."
        )
    use_ci = target.project_kind if ci is None else ci
    timings: dict[str, float] = {}
    db_images: dict[str, str] = {}
    if use_ci:
        prepared = ci_images(log)
        timings["prepare"] = prepared.seconds
        base_image = base_image or prepared.base
        db_image = db_image or prepared.database(db_flavour)
        db_images = {"mariadb": prepared.db}
        if prepared.mysql:
            db_images["mysql"] = prepared.mysql
    base_id = (docker_image_id(base_image) or base_image) if base_image else ""
    tag = content_tag(ROOT, base_id)
    log(f"image tag {tag} (VERSION + hash of {len(build_input_files())} build input files"
        f"{' and the base image' if base_id else ''})")
    t0 = time.monotonic()
    result = build_images(tag, base_image, no_cache=rebuild, log=log)
    timings["build"] = time.monotonic() - t0
    if result.built:
        log(f"images built in {timings['build']:.1f} s ({', '.join(result.built)})")
    if reg:
        t0 = time.monotonic()
        push_images(result.refs, reg, log)
        timings["push"] = time.monotonic() - t0
    else:
        to_load = list(dict.fromkeys(
            [*result.refs.values(), *([db_image] if db_image else []), *db_images.values()]))
        loaded = load_images(target, to_load, log)
        timings["load"] = loaded.seconds
    return Images(tag=tag, refs=result.refs, registry=reg, db_image=db_image,
                  base_image=base_image, built=result.built, timings=timings,
                  db_images=db_images)


# ---------------------------------------------------------------------------------------------
# Helm values


def chart_values(
    tag: str,
    *,
    registry: str = "",
    pull_policy: str = "IfNotPresent",
    db_image: str | None = None,
    volume_permissions: bool = False,
    update_interval: int | None = None,
) -> dict[str, Any]:
    """The values that point the chart at the given images (a values file's content)."""
    values: dict[str, Any] = {
        "image": {"registry": normalize_registry(registry), "tag": tag, "pullPolicy": pull_policy},
    }
    database: dict[str, Any] = {}
    if db_image:
        repo, db_tag = split_image_ref(db_image)
        database["image"] = {"repository": repo, "tag": db_tag, "pullPolicy": "IfNotPresent"}
    if volume_permissions:
        database["volumePermissions"] = {"enabled": True}
    if database:
        values["database"] = database
    if update_interval is not None:
        values["servers"] = {"updateInterval": int(update_interval)}
    return values


def needs_volume_permissions(kube: Kube) -> bool:
    """True when the default StorageClass makes root-owned host directories that ignore
    fsGroup (kubernetes.io/host-path, kind's fallback): the chart must chown the data dir."""
    return kube.default_storage_provisioner() == HOST_PATH_PROVISIONER


def control_plane_peers(kube: Kube) -> list[dict[str, Any]]:
    """NetworkPolicy peers for the control-plane nodes' addresses: the API server's pod proxy
    (`kubectl get --raw .../pods/NAME:8080/proxy/metrics`) reaches a pod on another node from
    its node's address, which a pod-selector rule never matches. Empty when the nodes do not say."""
    nodes = kube.kubectl_json("get", "nodes", "-l", "node-role.kubernetes.io/control-plane")
    peers = []
    for node in nodes.get("items", []):
        for addr in node.get("status", {}).get("addresses", []):
            if addr.get("type") == "InternalIP" and ":" not in addr.get("address", ":"):
                peers.append({"ipBlock": {"cidr": f"{addr['address']}/32"}})
    return peers


def values_for(target: Target, images: Images, *, update_interval: int | None = None,
               **extra: Any) -> dict[str, Any]:
    """chart_values for these images on this cluster (storage checked, the API server allowed
    to read the servers' metrics), deep-merged with `extra` (e.g. clients={'retries': 60})."""
    values = chart_values(
        images.tag,
        registry=images.registry,
        db_image=images.db_image,
        volume_permissions=needs_volume_permissions(target.kube),
        update_interval=update_interval,
    )
    scrapers = control_plane_peers(target.kube)
    values = merge_values(values, {"networkPolicy": {"metricsFrom": scrapers}})
    return merge_values(values, extra)


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two values trees (mappings merge; anything else is replaced)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def client_jobs(members: Iterable[str]) -> list[str]:
    """The chart's client Job of each member: client-<member>."""
    return [f"client-{m}" for m in members]
