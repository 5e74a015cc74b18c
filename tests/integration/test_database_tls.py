"""The servers' database sessions over TLS (DB_TLS_CA_FILE, design.md section 9), against a
private database that serves TLS with this test's CA: verified sessions answer; a certificate
from another CA, or a database without TLS, is refused loudly (db_error, db-unavailable),
never used unverified or in plaintext.
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
                         ("db", certs.issue(ca, "127.0.0.1", ["127.0.0.1", "localhost"]))):
        files[f"{stem}.crt"], files[f"{stem}.key"] = issued.write(out, stem)
    return files


@pytest.fixture(scope="module")
def tls_db(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Path]) -> Iterator[DevDB]:
    db = DevDB(tmp_path_factory.mktemp("tlsdb"),
               options=(f"--ssl-ca={pki['ca.crt']}", f"--ssl-cert={pki['db.crt']}",
                        f"--ssl-key={pki['db.key']}")).start()
    yield db
    db.stop()


def _start(kind: str, db: DevDB, ca: Path, logs: Path) -> ServerProc:
    env = {**db.env(), "SERVER_USER": unique_row(f"dbtls-{kind}"), "UPDATE_INTERVAL": "0.5",
           "DB_TLS_CA_FILE": str(ca), "DB_CONNECT_TIMEOUT": "2"}
    return ServerProc(kind, env, logs).start(wait="listening", timeout=60)


@pytest.mark.parametrize("kind", KINDS)
def test_verified_sessions_read_and_update(kind, tls_db, pki, tmp_path):
    before = tls_db.status("Ssl_accepts")
    server = _start(kind, tls_db, pki["ca.crt"], tmp_path)
    try:
        server.wait_for("ready", timeout=30)
        row = server.env["SERVER_USER"]
        assert reply_pattern(PROTOCOL, row).fullmatch(server.request())
        deadline = time.monotonic() + 15
        while (tls_db.points(row) or 0) < 1:  # the updater's session works too
            assert time.monotonic() < deadline, "no increment over TLS"
            time.sleep(0.2)
        # Both sessions (reader, updater) came in over TLS.
        assert tls_db.status("Ssl_accepts") >= before + 2
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("case", ["other-ca", "no-tls-database"])
@pytest.mark.parametrize("kind", KINDS)
def test_unverifiable_or_plaintext_database_is_refused(kind, case, tls_db, db, pki, tmp_path):
    database, ca = (tls_db, pki["other-ca.crt"]) if case == "other-ca" else (db, pki["ca.crt"])
    server = _start(kind, database, ca, tmp_path)
    try:
        deadline = time.monotonic() + 15
        while not [e for e in server.log_events() if e["event"] == "db_error"]:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.2)
        assert server.request() == PROTOCOL.error("db-unavailable").line.encode()
        errors = [e for e in server.log_events() if e["event"] == "db_error"]
        assert {e["op"] for e in errors} == {"connect"}, errors
        assert not [e for e in server.log_events() if e["event"] == "db_connected"]
        assert server.metrics()["points_db_up"] == 0
    finally:
        assert server.stop() == 0
