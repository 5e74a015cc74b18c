"""The clients over TLS (design.md section 9) against the real servers speaking TLS, across
languages: a verified reply; a server they cannot verify (another CA, another name, expired) or
one that does not speak TLS ends them at once with a clear message and exit 1, never a
plaintext retry; unusable TLS files are a bad setting (exit 2); mutual TLS with and without a
client certificate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testhelpers import unique_row

from pointsmesh.devdb import DevDB
from pointsmesh.procs import ServerProc, run_client
from pointsmesh.spec import load_protocol

pytestmark = pytest.mark.timeout(180)
CLIENTS = ["c", "c-asan", "python"]
SERVERS = ["c", "python"]
PROG = {"c": "c-client", "c-asan": "c-client", "python": "python-client"}
FAST = {"CLIENT_RETRIES": "2", "CLIENT_RETRY_DELAY": "0.05", "CLIENT_TIMEOUT": "3"}
PROTOCOL = load_protocol()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevDB]:
    db = DevDB(tmp_path_factory.mktemp("db")).start()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def servers(database: DevDB, pki: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProc]]:
    """One TLS server per language with TLS (good certificate), one with an expired
    certificate, one in mutual TLS, and one plaintext server (Python)."""
    logs = tmp_path_factory.mktemp("logs")
    started: dict[str, ServerProc] = {}
    good = {"TLS_CERT_FILE": str(pki["server.crt"]), "TLS_KEY_FILE": str(pki["server.key"])}
    plans = {f"tls-{k}": (k, good) for k in SERVERS}
    plans["expired"] = ("python", {"TLS_CERT_FILE": str(pki["expired.crt"]),
                                   "TLS_KEY_FILE": str(pki["expired.key"])})
    plans["mutual"] = ("python", {**good, "TLS_CLIENT_CA_FILE": str(pki["ca.crt"])})
    plans["plain"] = ("python", {})
    try:
        for name, (kind, tls) in plans.items():
            env = {**database.env(), "SERVER_USER": unique_row(f"ctls-{name}"),
                   "UPDATE_INTERVAL": "0", **tls}
            started[name] = ServerProc(kind, env, logs, name=name).start(timeout=60)
        yield started
    finally:
        for server in started.values():
            server.stop()


def client(kind: str, server: ServerProc, pki: dict[str, Path], **env: str):
    settings = {**FAST, "TLS_CA_FILE": str(pki["ca.crt"]), **env}
    return run_client(kind, server.port, host="127.0.0.1", extra_env=settings)


@pytest.mark.parametrize("server_kind", SERVERS)
@pytest.mark.parametrize("kind", CLIENTS)
def test_verified_reply_across_languages(kind, server_kind, servers, pki):
    server = servers[f"tls-{server_kind}"]
    res = client(kind, server, pki)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"User: {server.env['SERVER_USER']}, Points: "), res.stdout
    # The name the certificate carries, asked for explicitly (TARGET_HOST is an address).
    res = client(kind, server, pki, TLS_SERVER_NAME="localhost")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("case", ["other-ca", "wrong-name", "expired", "plaintext-server"])
def test_unverifiable_or_plaintext_server_ends_the_client_at_once(kind, case, servers, pki):
    server = servers["plain" if case == "plaintext-server" else
                     "expired" if case == "expired" else "tls-python"]
    env = {"other-ca": {"TLS_CA_FILE": str(pki["other-ca.crt"])},
           "wrong-name": {"TLS_SERVER_NAME": "elsewhere.example"}}.get(case, {})
    res = client(kind, server, pki, **env)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stdout == ""
    expected = {"other-ca": "certificate verify failed: unable to get local issuer certificate",
                "wrong-name": "certificate verify failed: Hostname mismatch",
                "expired": "certificate verify failed: certificate has expired",
                "plaintext-server": "TLS handshake failed: "}[case]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # no retry: one attempt, one line
    assert f"{PROG[kind]}: 127.0.0.1:{server.port}: TLS handshake failed: " in lines[0]
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("setting", ["TLS_CA_FILE", "TLS_CLIENT_CERT_FILE"])
def test_unusable_tls_files_are_a_bad_setting(kind, setting, servers, pki):
    env = {setting: str(pki["garbage.pem"])}
    if setting == "TLS_CLIENT_CERT_FILE":
        env["TLS_CLIENT_KEY_FILE"] = str(pki["client.key"])
    res = client(kind, servers["plain"], pki, **env)
    assert res.returncode == 2, (res.stdout, res.stderr)
    flag = "--" + setting.lower().replace("_", "-")
    assert res.stderr.startswith(
        f"{PROG[kind]}: bad setting: {setting} ({flag}): cannot load '{pki['garbage.pem']}': "
    ), res.stderr


@pytest.mark.parametrize("kind", CLIENTS)
def test_mutual_tls(kind, servers, pki):
    server = servers["mutual"]
    res = client(kind, server, pki, TLS_CLIENT_CERT_FILE=str(pki["client.crt"]),
                 TLS_CLIENT_KEY_FILE=str(pki["client.key"]))
    assert res.returncode == 0, res.stderr
    res = client(kind, server, pki)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stdout == ""
