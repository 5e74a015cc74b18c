"""pointsmesh.k8s and pointsmesh.k8sdemo without a cluster: content tags, image references,
Helm values, pod summaries, progress while waiting."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pointsmesh import ROOT, k8s, k8sdemo

# ---------------------------------------------------------------------------- content tag


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A small checkout with the build inputs' layout and the real .dockerignore, in git."""
    repo = tmp_path / "repo"
    files = {
        "VERSION": "1.2.3\n",
        "protocol/points_protocol.h": "#define X 1\n",
        "services/c-server/Dockerfile": "FROM x\n",
        "services/c-server/src/main.c": "int main(void) { return 0; }\n",
        "services/c-server/tests/test_x.c": "test\n",
        "services/py-server/points_server/__init__.py": "",
        "clients/c-client/client.c": "int main(void) { return 1; }\n",
        "clients/py-client/points_client/__init__.py": "",
        "docs/design.md": "not an input\n",
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    shutil.copy(ROOT / ".dockerignore", repo / ".dockerignore")
    (repo / ".gitignore").write_text("build/\n*.pyc\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    return repo


def test_input_files_follow_dockerignore(src: Path) -> None:
    (src / "services/c-server/build").mkdir()
    (src / "services/c-server/build/c-server").write_text("binary")
    files = k8s.build_input_files(src)
    assert "services/c-server/src/main.c" in files
    assert "VERSION" in files and ".dockerignore" in files
    assert "services/c-server/tests/test_x.c" not in files  # **/tests/
    assert "services/c-server/build/c-server" not in files  # **/build/ (and git-ignored)
    assert "docs/design.md" not in files  # not a build input


def test_content_tag_is_stable_and_follows_the_sources(src: Path) -> None:
    tag = k8s.content_tag(src)
    assert re.fullmatch(r"1\.2\.3-[0-9a-f]{12}", tag)
    assert k8s.content_tag(src) == tag

    (src / "services/c-server/tests/test_x.c").write_text("changed test\n")
    (src / "docs/design.md").write_text("changed doc\n")
    assert k8s.content_tag(src) == tag, "files outside the build context must not count"

    (src / "services/c-server/src/main.c").write_text("int main(void) { return 2; }\n")
    changed = k8s.content_tag(src)
    assert changed != tag, "an uncommitted edit gives a new tag"

    (src / "clients/py-client/points_client/new.py").write_text("x = 1\n")
    assert k8s.content_tag(src) != changed, "a new, untracked file counts too"


def test_content_tag_follows_mode_base_and_version(src: Path) -> None:
    tag = k8s.content_tag(src)
    (src / "services/c-server/src/main.c").chmod(0o755)
    assert k8s.content_tag(src) != tag
    assert k8s.content_tag(src, "sha256:aa") != k8s.content_tag(src, "sha256:bb")
    (src / "VERSION").write_text("1.2.4\n")
    assert k8s.content_tag(src).startswith("1.2.4-")


def test_content_tag_without_git(src: Path) -> None:
    with_git = k8s.content_hash(src)
    shutil.rmtree(src / ".git")
    assert k8s.content_hash(src) == with_git


def test_content_tag_of_this_repository() -> None:
    tag = k8s.content_tag()
    version = (ROOT / "VERSION").read_text().strip()
    assert tag.startswith(version + "-") and len(tag) <= 128  # a valid docker tag
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", tag)
    for name, (dockerfile, _key) in k8s.IMAGES.items():
        assert (ROOT / dockerfile).is_file(), name
        assert dockerfile in k8s.build_input_files(), name


def test_ignored_patterns() -> None:
    patterns = k8s.dockerignore_patterns()
    assert not k8s.ignored("services/py-server/points_server/server.py", patterns)
    for path in ("services/py-server/points_server/__pycache__/x.cpython-311.pyc",
                 "clients/c-client/build-asan/c-client", "services/py-server/.env",
                 "services/py-server/tests/test_a.py", "protocol/x.egg-info/PKG-INFO"):
        assert k8s.ignored(path, patterns), path


# ---------------------------------------------------------------------------- image refs


@pytest.mark.parametrize(
    ("ref", "split"),
    [
        ("pointsmesh-ci/mariadb:35f5ce9643c4", ("pointsmesh-ci/mariadb", "35f5ce9643c4")),
        ("mysql:8.4", ("mysql", "8.4")),
        ("localhost:5000/pointsmesh/c-server:1.0.0-abc",
         ("localhost:5000/pointsmesh/c-server", "1.0.0-abc")),
        ("localhost:5000/pointsmesh/c-server", ("localhost:5000/pointsmesh/c-server", "latest")),
        ("mariadb", ("mariadb", "latest")),
    ],
)
def test_split_image_ref(ref: str, split: tuple[str, str]) -> None:
    assert k8s.split_image_ref(ref) == split


def test_split_image_ref_refuses_digests() -> None:
    with pytest.raises(ValueError, match="digest"):
        k8s.split_image_ref("mysql@sha256:" + "0" * 64)


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("pointsmesh/c-server:1.0.0-abc", "docker.io/pointsmesh/c-server:1.0.0-abc"),
        ("mariadb", "docker.io/library/mariadb:latest"),
        ("mysql:8.4", "docker.io/library/mysql:8.4"),
        ("localhost:5000/a/b:c", "localhost:5000/a/b:c"),
        ("localhost/a:c", "localhost/a:c"),
        ("registry.example.com/team/x:1", "registry.example.com/team/x:1"),
        ("registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10.1"),
    ],
)
def test_normalize_ref(ref: str, full: str) -> None:
    assert k8s.normalize_ref(ref) == full


def test_image_ref_and_registry() -> None:
    assert k8s.image_ref("c-server", "t") == "pointsmesh/c-server:t"
    assert k8s.image_ref("python-client", "t", "reg.example:5000") == \
        "reg.example:5000/pointsmesh/python-client:t"
    assert k8s.normalize_registry("reg.example/team/") == "reg.example/team/"
    assert k8s.normalize_registry(None) == ""
    with pytest.raises(ValueError):
        k8s.image_ref("nginx", "t")


def test_node_has_image_checks_name_and_id() -> None:
    node = {"docker.io/pointsmesh/c-server:t", "sha256:aaa", "docker.io/library/x:1"}
    assert k8s.node_has_image(node, "pointsmesh/c-server:t", "sha256:aaa")
    assert not k8s.node_has_image(node, "pointsmesh/c-server:t", "sha256:bbb")  # retagged
    assert not k8s.node_has_image(node, "pointsmesh/c-client:t", "sha256:aaa")
    assert k8s.node_has_image(node, "x:1", None)


# ---------------------------------------------------------------------------- values


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _keys(value, f"{prefix}{key}.")
    return out


def test_chart_values_for_the_airgapped_kind_cluster() -> None:
    values = k8s.chart_values("1.0.0-abc", db_image="pointsmesh-ci/mariadb:35f5ce9643c4",
                              volume_permissions=True, update_interval=5)
    assert values == {
        "image": {"registry": "", "tag": "1.0.0-abc", "pullPolicy": "IfNotPresent"},
        "database": {
            "image": {"repository": "pointsmesh-ci/mariadb", "tag": "35f5ce9643c4",
                      "pullPolicy": "IfNotPresent"},
            "volumePermissions": {"enabled": True},
        },
        "servers": {"updateInterval": 5},
    }


def test_chart_values_with_a_registry() -> None:
    values = k8s.chart_values("1.0.0-abc", registry="registry.example.com/team")
    assert values == {"image": {"registry": "registry.example.com/team/", "tag": "1.0.0-abc",
                                "pullPolicy": "IfNotPresent"}}


def test_chart_values_are_keys_of_the_chart() -> None:
    chart_values = yaml.safe_load((k8s.CHART / "values.yaml").read_text())
    ours = k8s.chart_values("t", db_image="a/b:c", volume_permissions=True, update_interval=5)
    assert _keys(ours) <= _keys(chart_values)
    for _dockerfile, key in k8s.IMAGES.values():
        repo = chart_values["image"][key]
        assert repo.startswith(k8s.IMAGE_PREFIX + "/"), key


def test_values_written_and_merged(tmp_path: Path) -> None:
    base = k8s.chart_values("t", volume_permissions=True)
    merged = k8s.merge_values(base, {"database": {"persistence": {"size": "2Gi"}},
                                     "image": {"tag": "u"}})
    assert merged["database"] == {"volumePermissions": {"enabled": True},
                                  "persistence": {"size": "2Gi"}}
    assert merged["image"]["tag"] == "u" and base["image"]["tag"] == "t"
    path = k8s.write_values(merged, tmp_path / "v.yaml")
    assert yaml.safe_load(path.read_text()) == merged


def test_default_provisioner() -> None:
    scs = {"items": [
        {"metadata": {"name": "fast", "annotations": {}}, "provisioner": "x.io/fast"},
        {"metadata": {"name": "standard", "annotations": {
            "storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "kubernetes.io/host-path"},
    ]}
    assert k8s.default_provisioner(scs) == k8s.HOST_PATH_PROVISIONER
    assert k8s.default_provisioner({"items": []}) is None


# ---------------------------------------------------------------------------- cluster choice


@pytest.mark.parametrize(("env", "arg", "want"), [
    (None, None, "auto"), ("kind", None, "kind"), ("KIND", "current", "current"),
])
def test_cluster_mode(monkeypatch: pytest.MonkeyPatch, env: str | None, arg: str | None,
                      want: str) -> None:
    if env is None:
        monkeypatch.delenv("POINTS_MESH_CLUSTER", raising=False)
    else:
        monkeypatch.setenv("POINTS_MESH_CLUSTER", env)
    assert k8s.cluster_mode(arg) == want


def test_cluster_mode_refuses_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POINTS_MESH_CLUSTER", "minikube")
    with pytest.raises(k8s.K8sError, match="auto, kind, current"):
        k8s.cluster_mode()


def test_foreign_cluster_without_registry_says_what_to_do() -> None:
    target = k8s.Target(kube=k8s.Kube(context="prod"), description="the current kube context prod")
    assert not target.can_load
    with pytest.raises(k8s.K8sError) as err:
        k8s.ensure_images(target, log=lambda _msg: None)
    text = str(err.value)
    assert "--image-registry" in text and "POINTS_MESH_CLUSTER=kind" in text


def test_kube_commands_carry_kubeconfig_and_context() -> None:
    kube = k8s.Kube(kubectl_bin="kc", helm_bin="hm", kubeconfig="/k", context="c")
    assert kube.kubectl_cmd("get", "pods") == ["kc", "--kubeconfig", "/k", "--context", "c",
                                               "get", "pods"]
    assert kube.helm_cmd("list") == ["hm", "--kubeconfig", "/k", "--kube-context", "c", "list"]
    assert k8s.Kube().kubectl_cmd("version") == ["kubectl", "version"]


def test_parse_env() -> None:
    text = "[kind-airgap] log line\nKIND=/x/kind\nKUBECONFIG=/y/kc\nnot a setting\n"
    assert k8s.parse_env(text) == {"KIND": "/x/kind", "KUBECONFIG": "/y/kc"}


# ---------------------------------------------------------------------------- progress


def _pod(name: str, phase: str, ready: str = "False", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}],
                       **status}}


def test_summarize_pods() -> None:
    pods = {"items": [
        _pod("database-0", "Pending", initContainerStatuses=[
            {"name": "volume-permissions", "state": {"waiting": {"reason": "PodInitializing"}}}]),
        _pod("c-server-akmal-1", "Running", containerStatuses=[
            {"name": "c-server", "ready": False, "state": {"running": {}}}]),
        _pod("python-server-akmal-1", "Running", ready="True"),
        _pod("client-akmal-x", "Succeeded"),
        _pod("client-hasif-x", "Pending", containerStatuses=[
            {"name": "c-client", "state": {"waiting": {"reason": "ErrImageNeverPull"}}}]),
    ]}
    text = k8s.summarize_pods(pods)
    assert "database-0 (init volume-permissions: PodInitializing)" in text
    assert "c-server-akmal-1 (running, not ready)" in text
    assert "client-hasif-x (c-client: ErrImageNeverPull)" in text
    assert "python-server-akmal" not in text and "client-akmal" not in text
    assert k8s.summarize_pods({"items": []}) == "no pods yet"
    assert k8s.summarize_pods({"items": [_pod("a", "Running", "True")]}) == \
        "all 1 pods ready or done"


def test_run_progress_reports_while_waiting() -> None:
    lines: list[str] = []
    code = "import time\nfor i in range(3):\n    print('Step', i, flush=True); time.sleep(0.4)\n"
    proc = k8s.run_progress([sys.executable, "-c", code], what="thing", log=lines.append,
                            timeout=30, every=0.3)
    assert proc.stdout.split("\n")[:3] == ["Step 0", "Step 1", "Step 2"]
    assert lines and all(line.startswith("thing: ") for line in lines)


def test_run_progress_fails_and_times_out() -> None:
    with pytest.raises(k8s.K8sError, match="exited 3"):
        k8s.run_progress([sys.executable, "-c", "print('bad'); raise SystemExit(3)"],
                         what="x", log=lambda _m: None, timeout=30)
    with pytest.raises(k8s.K8sError, match="not finished after"):
        k8s.run_progress([sys.executable, "-c", "import time; time.sleep(30)"],
                         what="x", log=lambda _m: None, timeout=0.5)


def test_wait_until_says_what_it_waits_for() -> None:
    lines: list[str] = []
    state = {"n": 0}

    def probe() -> tuple[bool, str]:
        state["n"] += 1
        return state["n"] >= 4, f"attempt {state['n']}"

    k8s.wait_until("the thing", probe, timeout=10, log=lines.append, every=0.01, poll=0.01)
    assert lines[0] == "waiting for the thing (attempt 1)"
    with pytest.raises(k8s.K8sError, match="last status: never"):
        k8s.wait_until("x", lambda: (False, "never"), timeout=0.05, log=lambda _m: None,
                       poll=0.01)


# ---------------------------------------------------------------------------- the demo


def test_demo_parses_job_logs() -> None:
    pattern = k8sdemo.reply_pattern()
    text = (
        "[pod/client-akmal-abcde/c-client] User: c_user-akmal, Points: 3, "
        "Last Update: 2026-11-26 09:10:11\n"
        "[pod/client-akmal-abcde/python-client] User: python_user-akmal, Points: 4, "
        "Last Update: 2026-11-26 09:10:12\n"
        "[pod/client-akmal-abcde/python-client] some log line\n"
    )
    replies = k8sdemo.parse_job_logs("client-akmal", text, pattern)
    assert [(r.container, r.row, r.points) for r in replies] == [
        ("c-client", "c_user-akmal", 3), ("python-client", "python_user-akmal", 4)]


def test_demo_is_a_make_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^k8s-demo:\n\t\$\(PYTHON\) -m pointsmesh\.k8sdemo", makefile, re.M)
    assert k8s.client_jobs(["akmal"]) == ["client-akmal"]


def test_chart_renders_with_these_values(tmp_path: Path) -> None:
    """The chart's schema accepts the values and every image points where they say."""
    # make setup builds helm (as the chart checks need it): missing here is a failure, not a skip.
    helm = k8s.find_helm()
    assert helm, "no helm: run make setup (it builds helm and records where)"
    values = k8s.chart_values("1.0.0-abc", db_image="pointsmesh-ci/mariadb:35f5ce9643c4",
                              volume_permissions=True, update_interval=5)
    vfile = k8s.write_values(values, tmp_path / "values.yaml")
    out = k8s.run([helm, "template", "points", str(k8s.CHART), "-n", "points-demo",
                   "-f", str(vfile)], timeout=120).stdout
    images = set(re.findall(r"^\s+image: (\S+)$", out, re.M))
    assert images == {*(f"pointsmesh/{name}:1.0.0-abc" for name in k8s.IMAGES),
                      "pointsmesh-ci/mariadb:35f5ce9643c4"}
    assert "volume-permissions" in out


def test_summarize_jobs() -> None:
    jobs = [
        {"metadata": {"name": "client-a"},
         "status": {"conditions": [{"type": "Complete", "status": "True"}]}},
        {"metadata": {"name": "client-b"}, "status": {"active": 1}},
        {"metadata": {"name": "client-c"},
         "status": {"conditions": [{"type": "Failed", "status": "True"}]}},
    ]
    assert k8s.summarize_jobs(jobs) == "Jobs not complete: client-b (running), client-c (failed)"
    assert k8s.summarize_jobs(jobs[:1]) == ""


def test_api_time_reads_the_api_servers_and_the_logs_stamps() -> None:
    assert k8s.api_time("2026-12-07T13:04:45Z") == 1796648685.0
    assert k8s.api_time("2026-12-07T13:04:45.500Z") == 1796648685.5
