"""The CI prerequisites are cached, the project images are small, non-root and carry no secret,
and the Compose file and the database init script are sound."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from composelib import (
    CI_DOCKER,
    COMPOSE_FILE,
    IMAGE_PREFIX,
    IMAGE_TAG,
    IMAGES,
    MEASURE,
    REPO,
    SIZE_LIMIT_MB,
    Stack,
    run,
)

VERSION = (REPO / "VERSION").read_text().strip()
SERVER_IMAGES = ("c-server", "python-server")


def ref(name: str) -> str:
    return f"{IMAGE_PREFIX}/{name}:{IMAGE_TAG}"


def test_compose_file_is_rendered_and_valid(stack_files: Stack) -> None:
    run([sys.executable, "-m", "pointsmesh.render", "--check"])
    services = stack_files.compose("config", "--services").stdout.split()
    assert len(services) == 1 + 4 * len({line for line in services if line.startswith("c-server-")})
    assert "database" in services
    assert COMPOSE_FILE.read_text().startswith("# Generated from roster.yaml")


def test_ci_prerequisites_are_cached(ci_env: dict[str, str]) -> None:
    """A second call finds engine, Compose, base and database images in place."""
    t0 = time.monotonic()
    proc = run(["bash", str(CI_DOCKER / "prepare.sh")], timeout=600)
    MEASURE["prepare_again_s"] = time.monotonic() - t0
    assert "[ci-base] cached" in proc.stderr
    assert "[ci-mariadb] cached" in proc.stderr
    assert "[ci-sid] cached" in proc.stderr and "[ci-mysql] cached" in proc.stderr
    assert f"MYSQL_DB_IMAGE={ci_env['MYSQL_DB_IMAGE']}" in proc.stdout.splitlines()
    assert proc.stdout.splitlines()[0] == f"CI_BASE_IMAGE={ci_env['CI_BASE_IMAGE']}"
    assert MEASURE["prepare_again_s"] < 30


@pytest.mark.parametrize("name", IMAGES)
def test_image_size_under_target(images: dict[str, dict[str, Any]], name: str) -> None:
    mb = images[name]["Size"] / 1e6
    assert mb < SIZE_LIMIT_MB[name], f"{name}: {mb:.1f} MB"


@pytest.mark.parametrize("name", IMAGES)
def test_image_runs_as_non_root(images: dict[str, dict[str, Any]], name: str) -> None:
    assert images[name]["Config"]["User"] == "10001:10001"
    uid = run(["docker", "run", "--rm", "--entrypoint", "id", ref(name), "-u"]).stdout
    assert uid.strip() == "10001"


@pytest.mark.parametrize("name", IMAGES)
def test_image_has_no_secret_and_no_build_tools(
    images: dict[str, dict[str, Any]], stack_files: Stack, name: str
) -> None:
    history = run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref(name)])
    env = images[name]["Config"]["Env"]
    for pw in stack_files.passwords:
        assert pw not in history.stdout
    for var in env:
        key = var.split("=", 1)[0]
        assert not any(w in key for w in ("PASS", "SECRET", "TOKEN")), var
    # Only the runtime stage: no sources, compiler, pip or .env in the image.
    script = (
        "test ! -e /src && ! command -v gcc && ! command -v cc && ! command -v pip && "
        '! command -v pip3 && test -z "$(find / -xdev -name .env -print -quit)"'
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "bash", ref(name), "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", IMAGES)
def test_image_labels_version_and_entrypoint(images: dict[str, dict[str, Any]], name: str) -> None:
    config = images[name]["Config"]
    labels = config["Labels"] or {}
    assert labels.get("org.opencontainers.image.title") == f"pointsmesh-{name}"
    assert labels.get("org.opencontainers.image.version") == VERSION
    out = run(["docker", "run", "--rm", ref(name), "--version"]).stdout
    assert VERSION in out


@pytest.mark.parametrize("name", SERVER_IMAGES)
def test_server_image_has_a_healthcheck(images: dict[str, dict[str, Any]], name: str) -> None:
    test = images[name]["Config"]["Healthcheck"]["Test"]
    assert test[0] == "CMD" and "/readyz" in " ".join(test)


def test_c_images_carry_only_the_shared_library_they_need(
    images: dict[str, dict[str, Any]],
) -> None:
    server = run(
        ["docker", "run", "--rm", "--entrypoint", "ldd", ref("c-server"), "/usr/local/bin/c-server"]
    ).stdout
    assert "libmariadb.so.3" in server and "not found" not in server
    client = run(
        ["docker", "run", "--rm", "--entrypoint", "ldd", ref("c-client"), "/usr/local/bin/c-client"]
    ).stdout
    assert "libmariadb" not in client and "not found" not in client


APP_USER_SH = REPO / "sql" / "03-app-user.sh"


def test_app_user_script_escapes_and_stays_sourced(tmp_path: Path) -> None:
    """03-app-user.sh substitutes escaped values into app-user.sql.in (no database needed)."""
    assert not APP_USER_SH.stat().st_mode & 0o111, "must not be executable (it is sourced)"
    script = f"docker_process_sql() {{ cat; }}\n. {APP_USER_SH}\n"
    proc = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", "APP_DB_USER": "o'neil\\x&", "APP_DB_PASSWORD": "p'w\\&\"z"},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert (
        "CREATE USER IF NOT EXISTS 'o''neil\\\\x&'@'%' IDENTIFIED BY 'p''w\\\\&\"z';" in proc.stdout
    )
    assert "GRANT SELECT, INSERT, UPDATE ON project_db.users TO 'o''neil\\\\x&'@'%';" in proc.stdout
    assert "p'w" not in proc.stderr
    missing = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert missing.returncode != 0 and "APP_DB_PASSWORD" in missing.stderr
