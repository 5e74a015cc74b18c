"""The Compose stack with TLS on every protocol port (docker-compose.tls.yml over
docker-compose.yml, certificates from pointsmesh.certs for the roster's service names): every
client, C and Python, verifies its server and prints its own row; a plaintext request to a
published TLS port gets nothing; the key in the containers is readable by the images' user
only, in the project's own volume."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from composelib import (
    COMPOSE_TLS_FILE,
    PROJECT_PREFIX,
    PROTOCOL,
    SERVERS,
    Stack,
    parse_reply,
    run,
)

from pointsmesh import certs


@pytest.fixture(scope="module")
def tls_stack(stack_files: Stack, images: dict[str, dict[str, Any]],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tls_dir = tmp_path_factory.mktemp("tls")
    certs.make_set(tls_dir, certs.roster_names())
    env_file = tls_dir / "stack.env"
    env_file.write_text(stack_files.env_file.read_text() + f"TLS_DIR={tls_dir}\n")
    st = dataclasses.replace(stack_files, project=f"{PROJECT_PREFIX}tls-{uuid.uuid4().hex[:8]}",
                             env_file=env_file, extra_files=(COMPOSE_TLS_FILE,))
    try:
        st.up_until_clients_exit()
        yield st
    except BaseException:
        print(st.compose("ps", "-a", check=False).stdout)
        print(st.compose("logs", "--no-color", "--tail", "40", check=False).stdout[-12000:])
        raise
    finally:
        st.compose("down", "-v", "--remove-orphans", check=False, timeout=300)


@pytest.mark.parametrize("server", SERVERS, ids=[s.client for s in SERVERS])
def test_client_verified_its_server_and_printed_its_row(tls_stack: Stack, server) -> None:
    info = tls_stack.inspect(server.client)
    assert info["State"]["ExitCode"] == 0, tls_stack.logs(server.client)
    env = dict(v.split("=", 1) for v in info["Config"]["Env"])
    assert env["TLS_CA_FILE"].endswith("/ca.crt")
    logs = run(["docker", "logs", info["Id"]])
    assert parse_reply(logs.stdout)["user"] == server.row


def test_servers_speak_tls_only_and_hold_a_private_key(tls_stack: Stack) -> None:
    for s in SERVERS:
        port = tls_stack.host_port(s.name, s.port)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall((PROTOCOL.command + "\n").encode())
            sock.settimeout(5)
            try:
                answer = sock.recv(4096)
            except ConnectionResetError:
                answer = b""
        assert answer == b"", (s.name, answer)  # never a plaintext reply on a TLS port
        key = tls_stack.compose("exec", "-T", s.name, "stat", "-c", "%u %a",
                                "/run/secrets/points-tls/server.key").stdout.split()
        assert key == ["10001", "400"], (s.name, key)
        logs = tls_stack.logs(s.name)
        assert '"event":"tls_loaded"' in logs, logs[-2000:]


def test_certificates_live_in_the_projects_own_volume(tls_stack: Stack) -> None:
    """(The fixture's `down -v` removes it with the project.)"""
    volumes = tls_stack.resources()["volumes"]
    assert any(v.endswith("_tls") for v in volumes), volumes
    init = tls_stack.inspect("tls-init")
    assert init["State"]["ExitCode"] == 0, tls_stack.logs("tls-init")
    assert init["HostConfig"]["CapAdd"] and init["HostConfig"]["ReadonlyRootfs"] is True


def test_clients_mount_only_the_ca(tls_stack: Stack) -> None:
    """A client container sees ca.crt and nothing else of the TLS material: the servers' key
    lives in a volume no client mounts."""
    for s in SERVERS:
        inspected = tls_stack.inspect(s.client)
        mounts = {m.get("Name", ""): m["Destination"] for m in inspected["Mounts"]}
        assert [n for n in mounts if n.endswith("_tls-ca")], (s.client, mounts)
        assert not [n for n in mounts if n.endswith("_tls")], (s.client, mounts)
        server = {m.get("Name", "") for m in tls_stack.inspect(s.name)["Mounts"]}
        assert [n for n in server if n.endswith("_tls")], (s.name, server)
