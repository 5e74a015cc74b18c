"""The Oracle MySQL image (CI: ci/docker/mysql, MYSQL_DB_IMAGE of prepare.sh; any other with
POINTS_MESH_MYSQL_IMAGE, e.g. mysql:8.4) with the project's sql/ as its initdb, started with
`docker run`, and the project's real C and Python servers authenticating against it.

One container (and one named volume) for the module: first start with sql/ mounted read-only on
/docker-entrypoint-initdb.d; then a second container on the same volume, started as root, which
must not initialise again; then the servers against it, after a restart (so the app account's
first login goes through caching_sha2_password's full authentication, not its cache).
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mysql.connector
import pytest
from composelib import MEASURE, REPO, SERVERS, clean_env, docker_inspect, parse_reply, run

from pointsmesh.procs import C_SERVER, ServerProc

APP_USER = "points_app"
START_TIMEOUT = 180
INIT_DONE = "init process done"  # the official images' entrypoint says it too


@dataclass
class MySQLRun:
    image: str
    volume: str
    root_pw: str
    app_pw: str
    name: str = ""
    port: int = 0
    logs_at_first_greeting: str = ""
    greeting_version: str = ""
    started_as_root: bool = False
    names: list[str] = field(default_factory=list)

    def start(self, *, as_root: bool = False, app_pw: str | None = None) -> None:
        """docker run (detached) on the volume; returns once TCP answers with a greeting."""
        self.name = f"pmtest-mysql-{uuid.uuid4().hex[:8]}"
        self.names.append(self.name)
        self.started_as_root = as_root
        cmd = [
            "docker", "run", "-d", "--name", self.name,
            "-e", "MYSQL_ROOT_PASSWORD", "-e", f"APP_DB_USER={APP_USER}", "-e", "APP_DB_PASSWORD",
            "-v", f"{REPO / 'sql'}:/docker-entrypoint-initdb.d:ro",
            "-v", f"{self.volume}:/var/lib/mysql",
            "-p", "127.0.0.1::3306",
        ]
        if as_root:
            cmd += ["--user", "0:0"]
        cmd += [self.image, "--default-time-zone=+08:00"]
        env = clean_env({"MYSQL_ROOT_PASSWORD": self.root_pw,
                         "APP_DB_PASSWORD": app_pw or self.app_pw})
        run(cmd, env=env)
        self.port = int(run(["docker", "port", self.name, "3306/tcp"]).stdout.split(":")[-1])
        self.wait_for_greeting()

    def wait_for_greeting(self) -> None:
        """Poll the published port until the server's handshake arrives; keep the logs of that
        moment (the proxy accepts at once, the server only once it listens on TCP)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            version = greeting(self.port)
            if version:
                self.logs_at_first_greeting = self.logs()
                self.greeting_version = version
                return
            state = docker_inspect(self.name)["State"]
            if not state["Running"]:
                raise AssertionError(f"{self.name} exited {state['ExitCode']}:\n{self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: no MySQL greeting in {START_TIMEOUT} s\n{self.logs()}")

    def logs(self) -> str:
        proc = run(["docker", "logs", self.name], check=False)
        return proc.stdout + proc.stderr

    def connect(self, user: str = "root", password: str | None = None):
        return mysql.connector.connect(
            host="127.0.0.1", port=self.port, user=user,
            password=self.root_pw if password is None else password,
            use_pure=True, autocommit=True, connection_timeout=10,
        )

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        cnx = self.connect()
        try:
            cur = cnx.cursor()
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cnx.close()

    def exec(self, *cmd: str, check: bool = True):
        return run(["docker", "exec", self.name, *cmd], check=check)

    def remove(self) -> None:
        run(["docker", "rm", "-f", self.name], check=False)


def greeting(port: int) -> str:
    """The server version of a MySQL handshake on port, or "" when none comes."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            data = b""
            while len(data) < 5:
                chunk = s.recv(4096)
                if not chunk:
                    return ""
                data += chunk
    except OSError:
        return ""
    length = struct.unpack("<I", data[:3] + b"\0")[0]
    if data[4] != 10 or length < 2:  # protocol version 10; 0xff is an error packet
        return ""
    return data[5:data.index(b"\0", 5)].decode(errors="replace") if b"\0" in data[5:] else ""


@pytest.fixture(scope="module")
def db(mysql_image: str) -> Iterator[MySQLRun]:
    volume = f"pmtest-mysql-{uuid.uuid4().hex[:8]}"
    run(["docker", "volume", "create", volume])
    r = MySQLRun(
        image=mysql_image, volume=volume,
        # characters a careless template or shell would mangle
        root_pw="r" + secrets.token_urlsafe(12) + "&%^#'\"\\",
        app_pw="a" + secrets.token_urlsafe(12) + "&%#'x",
    )
    try:
        t0 = time.monotonic()
        r.start()
        MEASURE["mysql_init_s"] = time.monotonic() - t0
        yield r
    finally:
        for name in r.names:
            run(["docker", "rm", "-f", name], check=False)
        run(["docker", "volume", "rm", "-f", volume], check=False)


def test_tcp_answers_only_after_initialisation(db: MySQLRun) -> None:
    logs = db.logs_at_first_greeting
    assert "Initializing database files" in logs or "Initializing database" in logs
    assert "running /docker-entrypoint-initdb.d/01-schema.sql" in logs
    assert "sourcing /docker-entrypoint-initdb.d/03-app-user.sh" in logs
    assert INIT_DONE in logs, "TCP answered before the first-start initialisation ended"


def test_server_is_oracle_mysql(db: MySQLRun, mysql_image: str) -> None:
    [(version, comment)] = db.query("SELECT VERSION(), @@version_comment")
    MEASURE["mysql_version"] = f"{version} {comment} ({mysql_image})"
    assert "mariadb" not in f"{version} {comment}".lower()
    assert db.greeting_version == version
    found = re.match(r"(\d+)\.(\d+)", version)
    assert found, version
    major, minor = (int(x) for x in found.groups())
    assert (major, minor) >= (8, 4), version
    info = docker_inspect(mysql_image, "image")
    MEASURE["mysql_image_mb"] = round(info["Size"] / 1e6, 1)
    # The CI image records the Debian package version it was built from (the pin, or sid's
    # newer upload when the pin is gone: the build warns then).
    deb = run(["docker", "run", "--rm", "--entrypoint", "cat", mysql_image,
               "/etc/mysql/ci-deb-version"], check=False).stdout.strip()
    if deb:
        MEASURE["mysql_deb_version"] = deb
        assert version.split("-")[0] == deb.split("-")[0], (version, deb)


def test_app_account_least_privilege_caching_sha2(db: MySQLRun) -> None:
    [(default_plugin,)] = db.query("SELECT @@authentication_policy")
    [(plugin,)] = db.query(
        "SELECT plugin FROM mysql.user WHERE user = %s AND host = '%'", (APP_USER,))
    assert plugin == "caching_sha2_password", (plugin, default_plugin)
    grants = sorted(g for (g,) in db.query(f"SHOW GRANTS FOR '{APP_USER}'@'%'"))
    assert grants == [
        f"GRANT SELECT, INSERT, UPDATE ON `project_db`.`users` TO `{APP_USER}`@`%`",
        f"GRANT USAGE ON *.* TO `{APP_USER}`@`%`",
    ]
    assert db.query("SELECT COUNT(*) FROM mysql.user WHERE user = %s", (APP_USER,)) == [(1,)]


def test_seed_rows(db: MySQLRun) -> None:
    rows = dict(db.query("SELECT user, points FROM project_db.users"))
    assert rows == {s.row: 0 for s in SERVERS}


def test_runs_as_uid_999_with_project_clients(db: MySQLRun) -> None:
    status = db.exec("cat", "/proc/1/status").stdout
    assert re.search(r"^Name:\s+mysqld$", status, re.M), status
    assert re.search(r"^Uid:\s+999\s+999\s+999\s+999$", status, re.M), status
    assert re.search(r"^Gid:\s+999\s+999\s+999\s+999$", status, re.M), status
    assert db.exec("stat", "-c", "%u:%g", "/var/lib/mysql").stdout.strip() == "999:999"
    # the Compose health check, over TCP, with the official image's client names
    db.exec("mysqladmin", "ping", "-h", "127.0.0.1", "--silent")
    assert "mysql" in db.exec("mysql", "--version").stdout.lower()


def test_restart_on_the_same_volume_does_not_initialise_again(db: MySQLRun) -> None:
    """A new container on the same volume, started as root with another app password: the data
    directory is handed to uid 999, the server runs as 999, and no init script runs again (the
    app account keeps its first password)."""
    db.query("CREATE TABLE project_db.marker (id INT PRIMARY KEY)")
    db.query("INSERT INTO project_db.marker VALUES (1)")
    first = db.name
    run(["docker", "stop", "-t", "30", first])
    assert docker_inspect(first)["State"]["ExitCode"] == 0
    db.remove()
    # a volume whose files belong to root, as after a careless restore
    run(["docker", "run", "--rm", "--user", "0:0", "--entrypoint", "chown",
         "-v", f"{db.volume}:/var/lib/mysql", db.image, "-R", "0:0", "/var/lib/mysql"])
    db.start(as_root=True, app_pw="another-" + secrets.token_hex(6))
    logs = db.logs()
    assert "Initializing database" not in logs
    assert "docker-entrypoint-initdb.d" not in logs
    assert INIT_DONE not in logs
    assert db.query("SELECT id FROM project_db.marker") == [(1,)]
    status = db.exec("cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+999\s+999\s+999\s+999$", status, re.M), status
    owners = db.exec("find", "/var/lib/mysql", "-not", "-user", "999").stdout.split()
    assert owners == []
    cnx = db.connect(APP_USER, db.app_pw)  # the first password still works
    cnx.close()


@pytest.mark.parametrize("kind", ["c", "python"])
def test_real_server_authenticates_and_increments(
    db: MySQLRun, kind: str, tmp_path: Path
) -> None:
    """The project's server binary on the host against the published port, with the app account;
    the container is restarted first, so this is the account's first login since mysqld started
    (caching_sha2_password full authentication: TLS or the server's RSA key on plain TCP)."""
    if kind == "c" and not C_SERVER["c"].exists():
        pytest.skip(f"{C_SERVER['c'].relative_to(REPO)} is not built (make build)")
    run(["docker", "restart", "-t", "30", db.name])
    db.port = int(run(["docker", "port", db.name, "3306/tcp"]).stdout.split(":")[-1])
    db.wait_for_greeting()
    row = next(s.row for s in SERVERS if (s.language == "python") == (kind == "python"))
    [(before,)] = db.query("SELECT points FROM project_db.users WHERE user = %s", (row,))
    server = ServerProc(kind, {
        "DB_HOST": "127.0.0.1", "DB_PORT": str(db.port), "DB_USER": APP_USER,
        "DB_PASS": db.app_pw, "DB_NAME": "project_db", "SERVER_USER": row,
        "UPDATE_INTERVAL": "1",
    }, tmp_path, name=f"{kind}-server")
    try:
        server.start(wait="ready", timeout=30)
        sessions = db.query(
            "SELECT t.connection_type, COALESCE(s.variable_value, '') "
            "FROM performance_schema.threads t LEFT JOIN performance_schema.status_by_thread s "
            "ON s.thread_id = t.thread_id AND s.variable_name = 'Ssl_version' "
            "WHERE t.processlist_user = %s", (APP_USER,))
        MEASURE.setdefault("mysql_app_sessions", {})[kind] = sorted(
            {f"{ctype} {tls}".strip() for ctype, tls in sessions})
        m = parse_reply(server.request().decode())
        assert m["user"] == row
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            [(now,)] = db.query("SELECT points FROM project_db.users WHERE user = %s", (row,))
            if now >= before + 2:
                break
            time.sleep(0.2)
        assert now >= before + 2, (before, now, server.log_text()[-2000:])
    finally:
        code = server.stop()
    assert code == 0, server.log_text()[-2000:]
    events = [e.get("event") for e in server.log_events()]
    assert "db_connected" in events and "updated" in events, events
