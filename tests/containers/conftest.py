"""Session fixtures for the container tests: CI images, project images, one Compose stack.

    ci_env   ci/docker/prepare.sh: Docker engine, Compose v2 plugin, the local stand-in for
             debian:bookworm-slim and the CI database image (each cached; cold ~10 min, then s)
    images   `docker compose build` of the four project images (tag IMAGE_TAG=test)
    stack    `docker compose up -d` of docker-compose.yml under a unique project name, with
             UPDATE_INTERVAL=2, random passwords and the servers' ports published on ephemeral
             loopback ports; waits for the six clients to finish; `down -v` at the end, always.

Measurements (image sizes, build and start-up times) are printed at the end of the run and
written to out/containers-report.json. Settings:
    POINTS_MESH_DB_IMAGE   database image of the Compose stack instead of the CI MySQL one (e.g.
                           mysql:8.4 where a registry is reachable, or the CI MariaDB image)
    POINTS_MESH_MYSQL_IMAGE  Oracle MySQL image for test_mysql_image.py instead of the CI one
                           (MYSQL_DB_IMAGE of prepare.sh), e.g. mysql:8.4
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from composelib import (
    BUILD_TIMEOUT,
    CI_DOCKER,
    IMAGE_PREFIX,
    IMAGE_TAG,
    IMAGES,
    MEASURE,
    PREPARE_TIMEOUT,
    PROJECT_PREFIX,
    REPO,
    REPORT,
    SIZE_LIMIT_MB,
    TEST_TIMEOUT,
    Stack,
    clean_env,
    docker_inspect,
    run,
    write_stack_files,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.containers)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, func_only=True))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURE:
        return
    tr = terminalreporter
    tr.section("container measurements")
    for name in IMAGES:
        size = MEASURE.get("image_mb", {}).get(name)
        if size is not None:
            tr.write_line(f"image {name:<14} {size:7.1f} MB (limit {SIZE_LIMIT_MB[name]} MB)")
    labels = {
        "prepare_s": "CI prerequisites (engine, compose, base, database image)",
        "prepare_again_s": "CI prerequisites, second call (cached)",
        "build_s": "docker compose build (four project images)",
        "mysql_init_s": "CI MySQL image: docker run -> TCP answers (first start)",
        "up_to_clients_done_s": "docker compose up -d -> all six clients exited",
        "session_s": "container test session so far",
    }
    for key, label in labels.items():
        if key in MEASURE:
            tr.write_line(f"{label:<58} {MEASURE[key]:7.1f} s")
    for key in ("mysql_version", "mysql_image_mb", "mysql_app_sessions"):
        if key in MEASURE:
            tr.write_line(f"{key}: {MEASURE[key]}")
    for line in MEASURE.get("prepare_steps", []):
        tr.write_line(f"  {line}")
    try:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(MEASURE, indent=2, sort_keys=True) + "\n")
        tr.write_line(f"(written to {REPORT.relative_to(REPO)})")
    except OSError:
        pass


@pytest.fixture(scope="session")
def session_clock() -> float:
    return time.monotonic()


@pytest.fixture(scope="session")
def ci_env(session_clock: float) -> dict[str, str]:
    """Engine, Compose plugin, base and database images (ci/docker/prepare.sh), cached."""
    t0 = time.monotonic()
    proc = run(["bash", str(CI_DOCKER / "prepare.sh")], timeout=PREPARE_TIMEOUT)
    MEASURE["prepare_s"] = time.monotonic() - t0
    MEASURE["prepare_steps"] = [
        line.removeprefix("[ci-prepare] ")
        for line in proc.stderr.splitlines()
        if line.startswith("[ci-prepare]")
    ]
    values = dict(
        line.split("=", 1) for line in proc.stdout.splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    # The Compose stack runs Oracle MySQL, as users get it (docker-compose.yml defaults to
    # mysql:8.4; here the CI image from Debian's packages); the CI MariaDB image is the second
    # flavour (POINTS_MESH_DB_IMAGE=<it> runs the stack on it).
    values["STACK_DB_IMAGE"] = (os.environ.get("POINTS_MESH_DB_IMAGE")
                                or values.get("MYSQL_DB_IMAGE") or values["DB_IMAGE"])
    _remove_stale_projects()
    return values


@pytest.fixture(scope="session")
def mysql_image(ci_env: dict[str, str]) -> str:
    """The Oracle MySQL image under test: the CI one (ci/docker/mysql) unless overridden."""
    return os.environ.get("POINTS_MESH_MYSQL_IMAGE") or ci_env["MYSQL_DB_IMAGE"]


def _remove_stale_projects() -> None:
    """Stacks a killed earlier session of this suite left behind (project names pmtest-*)."""
    out = run(
        ["docker", "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}'],
        check=False,
    ).stdout
    for project in sorted(set(out.split())):
        if project.startswith(PROJECT_PREFIX):
            run(
                ["docker", "compose", "-p", project, "down", "-v", "--remove-orphans"],
                check=False,
                timeout=180,
            )


@pytest.fixture(scope="session")
def stack_files(ci_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Stack:
    tmp = tmp_path_factory.mktemp("stack")
    env_file, override, passwords = write_stack_files(tmp, ci_env["STACK_DB_IMAGE"])
    return Stack(
        project=f"{PROJECT_PREFIX}{uuid.uuid4().hex[:8]}",
        env_file=env_file,
        override=override,
        env=clean_env({}),
        passwords=passwords,
    )


@pytest.fixture(scope="session")
def images(stack_files: Stack) -> dict[str, dict[str, Any]]:
    """The four project images, built with `docker compose build`; name -> image inspect."""
    t0 = time.monotonic()
    stack_files.compose("build", timeout=BUILD_TIMEOUT)
    MEASURE["build_s"] = time.monotonic() - t0
    out = {}
    for name in IMAGES:
        out[name] = docker_inspect(f"{IMAGE_PREFIX}/{name}:{IMAGE_TAG}", "image")
    MEASURE["image_mb"] = {name: info["Size"] / 1e6 for name, info in out.items()}
    return out


@pytest.fixture(scope="session")
def stack(
    stack_files: Stack, images: dict[str, dict[str, Any]], session_clock: float
) -> Iterator[Stack]:
    """The whole system up; the six clients have finished when this returns."""
    st = stack_files
    try:
        MEASURE["up_to_clients_done_s"] = st.up_until_clients_exit()
        yield st
    except BaseException:
        print(st.compose("ps", "-a", check=False).stdout)
        print(st.compose("logs", "--no-color", "--tail", "40", check=False).stdout[-12000:])
        raise
    finally:
        st.compose("down", "-v", "--remove-orphans", check=False, timeout=300)
        MEASURE["session_s"] = time.monotonic() - session_clock
