"""The version is written once, in VERSION: the Python packages read it when they are built, the
C programs when they are compiled, and the files that must hold it literally (the chart, the
Compose file, the plain manifests) are rendered from it and drift-checked."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib

import pytest
import yaml

from pointsmesh import ROOT, project_version, render
from pointsmesh.lint_shell import tracked_files
from pointsmesh.render_chart import CHART, render_chart_yaml

VERSION = project_version()

# Files where the version's digits are data of a test, not the project's version.
NOT_THE_VERSION = {
    "tests/unit/test_k8s_lib.py": "made-up image tags",
    "services/py-server/tests/test_py_server_log.py": "a sample log field",
    "services/c-server/tests/health.c": "the version handed to the metrics under test",
}


def test_version_file_is_one_semver_line() -> None:
    text = (ROOT / "VERSION").read_text()
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?\n", text), repr(text)


def test_no_tracked_file_writes_the_version_by_hand() -> None:
    """Anything else holding VERSION's value is a hand-written copy that a release would have
    to remember: derive it instead (or render it, and add it to pointsmesh.render)."""
    rendered = {p.relative_to(ROOT).as_posix() for p in render.targets()}
    literal = re.compile(rf"(?<![\w.]){re.escape(VERSION)}(?![\w.])")
    copies = []
    for rel in tracked_files():
        path = ROOT / rel
        if rel == "VERSION" or rel in rendered or rel in NOT_THE_VERSION:
            continue
        if path.is_symlink() or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        copies += [
            f"{rel}:{text.count(chr(10), 0, m.start()) + 1}" for m in literal.finditer(text)
        ]
    assert copies == []


def pyprojects() -> list[str]:
    return [p for p in tracked_files() if p.endswith("pyproject.toml")]


def test_there_are_three_python_packages() -> None:
    assert sorted(pyprojects()) == [
        "clients/py-client/pyproject.toml",
        "pyproject.toml",
        "services/py-server/pyproject.toml",
    ]


@pytest.mark.parametrize("rel", pyprojects())
def test_python_packages_read_the_version_file(rel: str) -> None:
    path = ROOT / rel
    project = tomllib.loads(path.read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"file": "VERSION"}
    # setuptools reads only files inside the package: a link to the repository's VERSION
    version_file = path.parent / "VERSION"
    assert version_file.resolve() == (ROOT / "VERSION").resolve()


@pytest.mark.parametrize("package", ["services/py-server", "clients/py-client"])
def test_python_images_copy_the_version_file(package: str) -> None:
    """The Dockerfile copies the package and the file its VERSION link points at."""
    dockerfile = (ROOT / package / "Dockerfile").read_text()
    assert f"COPY {package}/ /src/{package}/\n" in dockerfile
    assert (ROOT / package / "VERSION").readlink().as_posix() == "../../VERSION"
    assert "COPY VERSION /src/VERSION\n" in dockerfile


@pytest.mark.parametrize(
    ("distribution", "module"),
    [("points-server", "points_server"), ("points-client", "points_client"),
     ("pointsmesh-dev", None)],
)
def test_installed_packages_carry_the_version(distribution: str, module: str | None) -> None:
    installed = importlib.metadata.version(distribution)
    assert installed == VERSION, f"{distribution} {installed} was installed: run make setup"
    if module is not None:
        assert importlib.import_module(module).__version__ == VERSION


@pytest.mark.parametrize("directory", ["services/c-server", "clients/c-client"])
def test_c_programs_are_compiled_with_the_version_file(directory: str) -> None:
    """What the build passes the compiler as PTS_VERSION (the programs print it for --version,
    the server in its metrics and start log; tests/conformance runs them): `make -n -B` prints
    every compile command, running none."""
    commands = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", "-C", str(ROOT / directory), "all"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    defines = set(re.findall(r"-DPTS_VERSION=(\S+)", commands))
    assert defines == {f"'\"{VERSION}\"'"}


def test_chart_and_compose_carry_the_version() -> None:
    """Rendered from VERSION (pointsmesh.render_chart, render_compose)."""
    chart = yaml.safe_load((ROOT / "helm/points-mesh/Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (VERSION, VERSION)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    args = [
        svc["build"]["args"]["VERSION"]
        for svc in compose["services"].values()
        if isinstance(svc.get("build"), dict) and "VERSION" in svc["build"].get("args", {})
    ]
    assert args and set(args) == {VERSION}


def test_a_new_version_is_rendered_into_the_chart() -> None:
    path = CHART / "Chart.yaml"
    text = render_chart_yaml(path.read_text(), "2.1.0-rc.1", path)
    chart = yaml.safe_load(text)
    assert (chart["version"], chart["appVersion"]) == ("2.1.0-rc.1", "2.1.0-rc.1")
    assert text.replace("2.1.0-rc.1", VERSION) == path.read_text()  # nothing else changed
    with pytest.raises(ValueError, match="SemVer"):
        render_chart_yaml(path.read_text(), "1.0", path)
