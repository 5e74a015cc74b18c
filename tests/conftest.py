"""Shared fixtures: a private database per session (MariaDB, or MySQL with
POINTS_MESH_DB_FLAVOUR=mysql), servers as real processes, clean teardown.

With POINTS_MESH_TLS=1 every server a suite starts speaks TLS on its protocol port (a CA and a
certificate for localhost/127.0.0.1 made for the session by pointsmesh.certs), and the suites'
connections (ServerProc.connect, .request) verify it: the same tests, over TLS.

Every server a test starts is stopped with SIGTERM at teardown; the test then fails if the
server did not exit 0, if a sanitizer reported anything in its output, or if the server logged
an `internal_error` (a bug it survived) or printed a Python traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testhelpers import SERVER_KINDS, counter, make_test_pki

from pointsmesh import certs, tlsclient
from pointsmesh.devdb import DevDB, DevDBError, default_flavour, server_version
from pointsmesh.procs import ServerProc
from pointsmesh.spec import Protocol, load_protocol

TLS_MODE = os.environ.get("POINTS_MESH_TLS") == "1"


def pytest_report_header() -> str:
    """The database the suites run against, with its exact version (and TLS mode)."""
    flavour = default_flavour()
    try:
        version = server_version(flavour)
    except DevDBError as e:
        version = f"not installed ({e})"
    tls = "; protocol port over TLS (POINTS_MESH_TLS=1)" if TLS_MODE else ""
    return f"database: {flavour} ({version}){tls}"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The TLS tests' certificates (testhelpers.make_test_pki), made once per session."""
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate."""
    return certs.make_set(tmp_path_factory.mktemp("tls"), ["localhost"])


@pytest.fixture(params=SERVER_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each server implementation: C, C with ASan+UBSan, C with TSan, Python."""
    return request.param


@pytest.fixture(scope="session")
def protocol() -> Protocol:
    return load_protocol()


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevDB]:
    """One private database for the session (tests that stop a database make their own)."""
    database = DevDB(tmp_path_factory.mktemp("db")).start()
    yield database
    database.stop()


@pytest.fixture
def private_db(tmp_path: Path) -> Iterator[DevDB]:
    """A database of this test's own, free to stop, kill and restart."""
    database = DevDB(tmp_path / "db").start()
    yield database
    database.stop()


ServerFactory = Callable[..., ServerProc]
TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture
def make_server(tmp_path: Path, db: DevDB,
                request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """start(kind, row=..., database=db, wait="ready", nofile=0, **settings) -> a running
    ServerProc (nofile: its descriptor limit, soft and hard; 0 leaves it as is).

    allow_internal_errors=True exempts that server from the teardown's check for
    `internal_error` log events and Python tracebacks (a test that provokes one on purpose
    must say why)."""
    started: list[ServerProc] = []
    exempt: set[str] = set()

    def start(kind: str, row: str, database: DevDB | None = None, wait: str = "ready",
              args: list[str] | None = None, port: int = 0, allow_internal_errors: bool = False,
              nofile: int = 0, **settings: str) -> ServerProc:
        env = {**(database or db).env(), "SERVER_USER": row, "UPDATE_INTERVAL": "0",
               "IDLE_TIMEOUT": "2", "SHUTDOWN_TIMEOUT": "3"}
        tls = None
        if TLS_MODE:
            files: dict[str, Path] = request.getfixturevalue("tls_files")
            env.update(TLS_CERT_FILE=str(files["server.crt"]),
                       TLS_KEY_FILE=str(files["server.key"]))
            tls = tlsclient.client_context(str(files["ca.crt"]))
        env.update({k.upper(): str(v) for k, v in settings.items()})
        server = ServerProc(kind, env, tmp_path / "logs", name=f"{kind}-{next(counter)}",
                            port=port, tls=tls, nofile=nofile)
        started.append(server)
        if allow_internal_errors:
            exempt.add(server.name)
        return server.start(wait=wait, args=args)

    yield start
    problems = []
    for server in started:
        if server.proc is not None:
            code = server.stop()
            if code != 0:
                problems.append(f"{server.name} exited {code}")
        reports = server.sanitizer_reports()
        if reports:
            problems.append(f"{server.name}: sanitizer reported {reports}:\n{server.log_text()}")
        if server.name not in exempt:
            internal = [e for e in server.log_events() if e.get("event") == "internal_error"]
            if internal:
                problems.append(f"{server.name}: internal_error logged {internal}")
            if TRACEBACK in server.log_text():
                problems.append(f"{server.name}: Python traceback:\n{server.log_text()}")
    if problems:
        pytest.fail("; ".join(problems))


