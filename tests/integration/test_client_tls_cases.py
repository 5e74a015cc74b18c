"""Both clients over TLS against small TLS servers in threads (no database): the exact message
for each outcome (failed verification, plaintext, old protocol, refused client certificate,
silence, EOF and reset during the handshake, unusable files), the same in C and Python, with
C under ASan too. (tests/integration/test_client_tls.py runs them against the real servers.)"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pointsmesh import ROOT
from pointsmesh.devdb import free_port
from pointsmesh.procs import REQUEST, SANITIZER_MARKERS, run_client
from pointsmesh.spec import load_protocol

KINDS = ["c", "c-asan", "python"]
PROG = {"c": "c-client", "c-asan": "c-client", "python": "python-client"}
PROTOCOL = load_protocol()
REPLY = PROTOCOL.reply("c_user-azmeer", 42, "2026-01-05 10:00:00").encode()
FAST = {"CLIENT_RETRIES": "2", "CLIENT_RETRY_DELAY": "0.05", "CLIENT_TIMEOUT": "1"}


Handler = Callable[[socket.socket], None]


@contextlib.contextmanager
def tcp_server(handler: Handler) -> Iterator[int]:
    """127.0.0.1:<port>, handler(conn) per connection in turn, until the block ends."""
    port, stop = free_port(), threading.Event()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(16)
    lsock.settimeout(0.1)

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(3)
                handler(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        lsock.close()


def tls_handler(pki: dict[str, Path], cert: str = "server", *, close_notify: bool = False,
                max_tls12: bool = False, client_ca: bool = False) -> Handler:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[f"{cert}.crt"], pki[f"{cert}.key"])
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca.crt"])

    def handle(conn: socket.socket) -> None:
        try:  # on a duplicate: conn stays open when the handshake fails
            tls = ctx.wrap_socket(conn.dup(), server_side=True)
        except ssl.SSLError:  # the alert is sent: linger until the client closes, as the
            while conn.recv(4096):  # real servers do, so that it reads the alert, not a reset
                pass
            return
        with tls:
            data = b""
            while b"\n" not in data:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                data += chunk
            assert data == REQUEST
            tls.sendall(REPLY)
            if close_notify:
                tls.unwrap()
            # else: close without close_notify (a ragged EOF, which the clients accept)

    return handle


def client(kind: str, port: int, pki: dict[str, Path], **env: str):
    settings = {**FAST, "TLS_CA_FILE": str(pki["ca.crt"]), **env}
    res = run_client(kind, port, host="127.0.0.1", extra_env=settings)
    if kind == "c-asan":
        assert not [m for m in SANITIZER_MARKERS if m in res.stderr], res.stderr
    return res


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("close_notify", [False, True])
@pytest.mark.parametrize("max_tls12", [False, True])
def test_reply_over_tls(kind, close_notify, max_tls12, pki):
    with tcp_server(tls_handler(pki, close_notify=close_notify, max_tls12=max_tls12)) as port:
        res = client(kind, port, pki)
    assert (res.returncode, res.stdout, res.stderr) == (0, REPLY.decode(), "")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["other-ca", "wrong-name", "wrong-address", "expired",
                                  "plaintext", "tls12-no-client-cert"])
def test_fatal_at_once(kind, case, pki):
    env = {"other-ca": {"TLS_CA_FILE": str(pki["other-ca.crt"])},
           "wrong-name": {"TLS_SERVER_NAME": "elsewhere.example"},
           "wrong-address": {"TLS_SERVER_NAME": "10.1.2.3"}}.get(case, {})
    if case == "plaintext":
        def handler(conn: socket.socket) -> None:
            conn.recv(4096)
            conn.sendall(REPLY)
    else:
        handler = tls_handler(pki, "expired" if case == "expired" else "server",
                              max_tls12=case == "tls12-no-client-cert",
                              client_ca=case == "tls12-no-client-cert")
    reason = {
        "other-ca": "certificate verify failed: unable to get local issuer certificate",
        "wrong-name": "certificate verify failed: Hostname mismatch, certificate is not valid "
                      "for 'elsewhere.example'.",
        "wrong-address": "certificate verify failed: IP address mismatch, certificate is not "
                         "valid for '10.1.2.3'.",
        "expired": "certificate verify failed: certificate has expired",
        "plaintext": "wrong version number",
        "tls12-no-client-cert": "sslv3 alert handshake failure",
    }[case]
    with tcp_server(handler) as port:
        res = client(kind, port, pki, **env)
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr == f"{PROG[kind]}: 127.0.0.1:{port}: TLS handshake failed: {reason}\n"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["silent", "eof"])
def test_handshake_cut_short_is_retried(kind, case, pki):
    def handler(conn: socket.socket) -> None:
        if case == "silent":
            conn.recv(4096)
            conn.settimeout(3)
            with contextlib.suppress(OSError):
                conn.recv(4096)  # until the client gives up
        else:
            conn.recv(4096)  # the ClientHello, then a clean EOF
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                conn.recv(4096)
    reason = {"silent": "TLS handshake timed out after 1 s",
              "eof": "TLS handshake: unexpected eof while reading"}[case]
    with tcp_server(handler) as port:
        res = client(kind, port, pki)
    p = PROG[kind]
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr == (
        f"{p}: attempt 1/2 to 127.0.0.1:{port} failed: {reason}; retrying in 0.05 s\n"
        f"{p}: giving up on 127.0.0.1:{port} after 2 attempts; last error: {reason}\n")


@pytest.mark.parametrize("kind", KINDS)
def test_mutual_tls_tls13(kind, pki):
    with tcp_server(tls_handler(pki, client_ca=True)) as port:
        res = client(kind, port, pki, TLS_CLIENT_CERT_FILE=str(pki["client.crt"]),
                     TLS_CLIENT_KEY_FILE=str(pki["client.key"]))
        assert (res.returncode, res.stdout) == (0, REPLY.decode()), res.stderr
        # TLS 1.3: the server refuses after the client's handshake is done: seen on reading
        res = client(kind, port, pki, CLIENT_RETRIES="1")
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr.startswith(f"{PROG[kind]}: giving up on 127.0.0.1:{port} after 1 attempt; "
                                 "last error: recv: "), res.stderr
    assert "tlsv13 alert certificate required" in res.stderr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["ca-missing", "ca-garbage", "key-mismatch", "key-missing"])
def test_unusable_files_exact(kind, case, pki, tmp_path):
    missing = str(tmp_path / "missing.pem")
    setting, path, env, reason = {
        "ca-missing": ("TLS_CA_FILE", missing, {"TLS_CA_FILE": missing},
                       "No such file or directory"),
        "ca-garbage": ("TLS_CA_FILE", str(pki["garbage.pem"]),
                       {"TLS_CA_FILE": str(pki["garbage.pem"])}, "no certificate or crl found"),
        "key-mismatch": ("TLS_CLIENT_CERT_FILE", str(pki["client.crt"]),
                         {"TLS_CLIENT_CERT_FILE": str(pki["client.crt"]),
                          "TLS_CLIENT_KEY_FILE": str(pki["other-client.key"])},
                         "key values mismatch"),
        "key-missing": ("TLS_CLIENT_CERT_FILE", str(pki["client.crt"]),
                        {"TLS_CLIENT_CERT_FILE": str(pki["client.crt"]),
                         "TLS_CLIENT_KEY_FILE": missing}, "No such file or directory"),
    }[case]
    res = client(kind, free_port(), pki, **env)
    flag = "--" + setting.lower().replace("_", "-")
    p = PROG[kind]
    assert (res.returncode, res.stdout) == (2, ""), res.stderr
    assert res.stderr == (f"{p}: bad setting: {setting} ({flag}): cannot load '{path}': "
                          f"{reason} (see {p} --help)\n")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_c_client_over_tls_under_valgrind(pki):
    cmd = ["valgrind", "--quiet", "--error-exitcode=98", "--leak-check=full",
           "--errors-for-leak-kinds=definite,indirect", "--track-fds=yes",
           str(ROOT / "clients/c-client/build/c-client")]
    env = {"PATH": "/usr/bin:/bin", **FAST, "TARGET_HOST": "127.0.0.1",
           "TLS_CA_FILE": str(pki["ca.crt"])}
    with tcp_server(tls_handler(pki)) as port:
        res = subprocess.run(cmd, env={**env, "TARGET_PORT": str(port)}, capture_output=True,
                             text=True, timeout=120)
        assert (res.returncode, res.stdout) == (0, REPLY.decode()), res.stderr
        bad = subprocess.run(cmd, env={**env, "TARGET_PORT": str(port),
                                       "TLS_SERVER_NAME": "elsewhere.example"},
                             capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stderr
    for r in (res, bad):
        assert r.stderr.count("Open file descriptor") == r.stderr.count("<inherited from parent>")
