"""The seed system under Docker Compose: 13 services, health-ordered start, every client prints
its own row, points rise, a crashed server comes back, the database keeps its data in the
volume, and `down -v` leaves nothing behind. The tests run in file order on one stack."""

from __future__ import annotations

import time

import pytest
from composelib import CLIENTS, SERVERS, UPDATE_INTERVAL, Stack, parse_reply, run

C_AND_PY = [s for s in SERVERS if s.member == SERVERS[0].member]
C_AND_PY_IDS = [s.name for s in C_AND_PY]


def points(stack: Stack, server) -> int:
    return int(stack.ask_until_reply(server.name, server.port)["points"])


def test_thirteen_services_database_and_servers_healthy(stack: Stack) -> None:
    services = stack.compose("ps", "-a", "--services").stdout.split()
    assert sorted(services) == sorted(["database", *(s.name for s in SERVERS), *CLIENTS])
    for name in ["database", *(s.name for s in SERVERS)]:
        state = stack.inspect(name)["State"]
        assert state["Running"], name
        assert state["Health"]["Status"] == "healthy", name


@pytest.mark.parametrize("server", SERVERS, ids=[s.client for s in SERVERS])
def test_client_exited_0_and_printed_its_own_row(stack: Stack, server) -> None:
    info = stack.inspect(server.client)
    assert info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 0, stack.logs(server.client)
    # `docker logs` keeps the streams apart: stdout holds exactly the reply line; retry
    # progress, if any, went to stderr.
    logs = run(["docker", "logs", info["Id"]])
    assert logs.stdout.count("\n") == 1, logs.stdout + logs.stderr
    assert parse_reply(logs.stdout)["user"] == server.row


def test_servers_run_hardened_with_the_app_account(stack: Stack) -> None:
    for s in SERVERS:
        info = stack.inspect(s.name)
        host = info["HostConfig"]
        assert info["Config"]["User"] == "10001:10001"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        env = dict(v.split("=", 1) for v in info["Config"]["Env"])
        assert env["DB_USER"] != "root" and env["SERVER_USER"] == s.row
        assert env["DB_HOST"] == "database"


def test_points_rise_after_an_update_interval(stack: Stack) -> None:
    before = {s.name: points(stack, s) for s in SERVERS}
    time.sleep(UPDATE_INTERVAL * 2.5)
    after = {s.name: points(stack, s) for s in SERVERS}
    for s in SERVERS:
        assert after[s.name] > before[s.name], (s.name, before[s.name], after[s.name])


@pytest.mark.parametrize("server", C_AND_PY, ids=C_AND_PY_IDS)
def test_crashed_server_is_restarted_and_answers(stack: Stack, server) -> None:
    """The server process dies by SIGKILL (a crash, the OOM killer): the restart policy brings
    the container back, it turns healthy and answers with the stored points."""
    before = points(stack, server)
    restarts = stack.inspect(server.name)["RestartCount"]
    # From inside the container: kill every process except the init (PID 1) and this shell.
    stack.compose("exec", "-T", server.name, "bash", "-c", "kill -KILL -1", check=False)
    end = time.monotonic() + 30
    while stack.inspect(server.name)["RestartCount"] == restarts:
        assert time.monotonic() < end, f"{server.name} was not restarted"
        time.sleep(0.25)
    info = stack.wait_healthy(server.name)
    assert info["RestartCount"] == restarts + 1
    assert points(stack, server) >= before


def test_docker_kill_then_compose_up_brings_a_server_back(stack: Stack) -> None:
    """`docker kill` is a manual stop: Docker disables the restart policy until the next start
    (documented Docker behaviour), so the operator's `docker compose up -d` brings it back."""
    server = SERVERS[-1]
    cid = stack.container(server.name)
    run(["docker", "kill", cid])
    time.sleep(3)
    assert not stack.inspect(server.name)["State"]["Running"]
    stack.compose("up", "-d", "--no-build", "--no-deps", server.name)
    stack.wait_healthy(server.name)
    parse_reply(stack.ask(server.name, server.port))


def test_database_recreated_keeps_its_data(stack: Stack) -> None:
    """The database container is removed and created anew: the rows live in the named volume,
    the init scripts do not run again, and the servers reconnect by themselves."""
    before = {s.name: points(stack, s) for s in SERVERS}
    old = stack.container("database")
    stack.compose("rm", "--stop", "--force", "database")
    stack.compose("up", "-d", "--no-build", "--no-deps", "database")
    assert stack.container("database") != old
    stack.wait_healthy("database")
    for s in SERVERS:
        assert points(stack, s) >= before[s.name] > 0
    new_logs = run(["docker", "logs", stack.container("database")])
    assert "/docker-entrypoint-initdb.d/" not in new_logs.stdout + new_logs.stderr
    # And a client run now still finds its server by name (the last member's client: its
    # service only uses the image, so `run` builds nothing).
    again = stack.compose("run", "--rm", "--no-deps", CLIENTS[-1])
    assert parse_reply(again.stdout)["user"] == SERVERS[-1].row


def test_down_v_leaves_nothing_behind(stack: Stack) -> None:
    assert stack.resources()["volumes"], "the named data volume should exist before down"
    stack.compose("down", "-v", "--remove-orphans", timeout=300)
    assert stack.resources() == {"containers": [], "networks": [], "volumes": []}
