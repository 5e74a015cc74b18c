"""The servers' database sessions over TLS (DB_TLS_MODE and DB_TLS_CA_FILE, design.md
section 9), against private databases that serve TLS with this test's CA: verified sessions
answer; a certificate from another CA, or a database without TLS, is refused loudly (db_error,
db-unavailable), never used unverified or in plaintext; every mode means the same in both
servers (by default they encrypt when the database offers TLS).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testhelpers import SERVER_KINDS, reply_pattern, unique_row

from pointsmesh import certs
from pointsmesh.devdb import DevDB
from pointsmesh.procs import ServerProc
from pointsmesh.spec import load_protocol

pytestmark = pytest.mark.timeout(240)
PROTOCOL = load_protocol()
KINDS = [k for k in SERVER_KINDS if k in ("c", "python")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dbpki")
    ca, other = certs.make_ca("db CA"), certs.make_ca("another CA")
    files: dict[str, Path] = {}
    for stem, issued in (("ca", ca), ("other-ca", other),
                         ("db", certs.issue(ca, "127.0.0.1", ["127.0.0.1", "localhost"])),
                         ("misnamed", certs.issue(ca, "elsewhere.example",
                                                  ["elsewhere.example"]))):
        files[f"{stem}.crt"], files[f"{stem}.key"] = issued.write(out, stem)
    return files


@pytest.fixture(scope="module")
def tls_db(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Path]) -> Iterator[DevDB]:
    """TLS with this test's CA, and only TLS (require_secure_transport): a plaintext session is
    refused by the database itself, so a session that works is an encrypted one."""
    db = DevDB(tmp_path_factory.mktemp("tlsdb"),
               options=(f"--ssl-ca={pki['ca.crt']}", f"--ssl-cert={pki['db.crt']}",
                        f"--ssl-key={pki['db.key']}", "--require-secure-transport=ON")).start()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def misnamed_db(tmp_path_factory: pytest.TempPathFactory,
                pki: dict[str, Path]) -> Iterator[DevDB]:
    """A database whose certificate the CA signed for another name than DB_HOST (127.0.0.1)."""
    db = DevDB(tmp_path_factory.mktemp("misnameddb"),
               options=(f"--ssl-ca={pki['ca.crt']}", f"--ssl-cert={pki['misnamed.crt']}",
                        f"--ssl-key={pki['misnamed.key']}")).start()
    yield db
    db.stop()


def _start(kind: str, db: DevDB, ca: Path | None, logs: Path, mode: str = "") -> ServerProc:
    env = {**db.env(), "SERVER_USER": unique_row(f"dbtls-{kind}"), "UPDATE_INTERVAL": "0.5",
           "DB_CONNECT_TIMEOUT": "2"}
    if ca is not None:
        env["DB_TLS_CA_FILE"] = str(ca)
    if mode:
        env["DB_TLS_MODE"] = mode
    return ServerProc(kind, env, logs).start(wait="listening", timeout=60)


def _served(server: ServerProc, db: DevDB) -> None:
    """Both sessions work: the reader answers, the updater increments."""
    server.wait_for("ready", timeout=30)
    row = server.env["SERVER_USER"]
    assert reply_pattern(PROTOCOL, row).fullmatch(server.request())
    deadline = time.monotonic() + 15
    while (db.points(row) or 0) < 1:
        assert time.monotonic() < deadline, "no increment"
        time.sleep(0.2)


def _refused(server: ServerProc) -> list[dict[str, object]]:
    """Every connect refused, loudly: the db_error events."""
    deadline = time.monotonic() + 15
    while not [e for e in server.log_events() if e["event"] == "db_error"]:
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.2)
    assert server.request() == PROTOCOL.error("db-unavailable").line.encode()
    errors = [e for e in server.log_events() if e["event"] == "db_error"]
    assert {e["op"] for e in errors} == {"connect"}, errors
    assert not [e for e in server.log_events() if e["event"] == "db_connected"]
    return errors


@pytest.mark.parametrize("mode", ["", "preferred", "required", "disabled"])
@pytest.mark.parametrize("kind", KINDS)
def test_modes_without_a_ca_encrypt_unless_disabled(kind, mode, tls_db, tmp_path):
    """DB_TLS_MODE alike in both servers, against a database that takes TLS sessions only: by
    default (auto: preferred without a CA), preferred and required, the sessions use the TLS
    the database offers (the C server's used to be plaintext: its library asks for TLS only
    when told to); disabled stays plaintext, which this database refuses."""
    server = _start(kind, tls_db, None, tmp_path, mode)
    try:
        if mode == "disabled":
            _refused(server)
        else:
            _served(server, tls_db)
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("mode", ["", "preferred"])
@pytest.mark.parametrize("kind", KINDS)
def test_preferred_takes_a_database_as_it_is(kind, mode, db, tmp_path):
    """preferred (and auto without a CA) never insists: the session database (MariaDB without
    TLS; MySQL, which offers it) serves either way."""
    server = _start(kind, db, None, tmp_path, mode)
    try:
        _served(server, db)
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_verify_ca_takes_any_name_verify_identity_only_db_host(kind, misnamed_db, pki, tmp_path):
    """A certificate from the CA but for another name: verify-ca accepts it (the chain is
    checked), verify-identity (and auto, with a CA) refuses it."""
    server = _start(kind, misnamed_db, pki["ca.crt"], tmp_path, "verify-ca")
    try:
        _served(server, misnamed_db)
    finally:
        assert server.stop() == 0
    for mode in ("verify-identity", ""):
        server = _start(kind, misnamed_db, pki["ca.crt"], tmp_path / (mode or "auto"), mode)
        try:
            _refused(server)
        finally:
            assert server.stop() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_verified_sessions_read_and_update(kind, tls_db, pki, tmp_path):
    before = tls_db.status("Ssl_accepts")
    server = _start(kind, tls_db, pki["ca.crt"], tmp_path)
    try:
        _served(server, tls_db)
        # Both sessions (reader, updater) came in over TLS.
        assert tls_db.status("Ssl_accepts") >= before + 2
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("mode", ["", "verify-ca"])
@pytest.mark.parametrize("case", ["other-ca", "no-tls-database"])
@pytest.mark.parametrize("kind", KINDS)
def test_unverifiable_or_plaintext_database_is_refused(kind, case, mode, tls_db, db, pki,
                                                       tmp_path):
    database, ca = (tls_db, pki["other-ca.crt"]) if case == "other-ca" else (db, pki["ca.crt"])
    server = _start(kind, database, ca, tmp_path, mode)
    try:
        _refused(server)
        assert server.metrics()["points_db_up"] == 0
    finally:
        assert server.stop() == 0
