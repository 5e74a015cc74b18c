"""A private MariaDB/MySQL server in a temporary directory, on a free loopback port.

Nothing system-wide is touched: the data directory, socket, pid file and log live under one
directory, the server listens on 127.0.0.1 only, and `stop()` removes the process.

    python -m pointsmesh.devdb --dir /tmp/pm-db   # start, load sql/, print the DB_* settings

Used by the tests, `make demo` and `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import ROOT

SQL_DIR = ROOT / "sql"
APP_USER = "points_app"


class DevDBError(RuntimeError):
    pass


def _find(*names: str) -> str:
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    raise DevDBError(
        f"none of {', '.join(names)} found; install MariaDB "
        "(Debian/Ubuntu: apt-get install mariadb-server mariadb-client) or run `make setup`"
    )


def terminate(proc: subprocess.Popen, timeout: float) -> bool:
    """SIGTERM proc and wait; SIGKILL it after timeout. True if it ended on SIGTERM."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql_escape(s: str) -> str:
    """Escape s for use inside a single-quoted SQL string."""
    return s.replace("\\", "\\\\").replace("'", "''")


def app_user_sql(user: str, password: str) -> str:
    text = (SQL_DIR / "app-user.sql.in").read_text()
    return text.replace("@APP_USER@", sql_escape(user)).replace(
        "@APP_PASSWORD@", sql_escape(password)
    )


@dataclass
class DevDB:
    """One private database server. Use as a context manager or call start()/stop()."""

    base: Path
    port: int = 0
    app_user: str = APP_USER
    app_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    time_zone: str = "+08:00"
    proc: subprocess.Popen | None = None

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def tmpdir(self) -> Path:
        return self.base / "tmp"

    @property
    def socket_path(self) -> Path:
        return self.base / "mysqld.sock"

    @property
    def log_path(self) -> Path:
        return self.base / "mysqld.log"

    def env(self) -> dict[str, str]:
        """The DB_* settings a server needs to reach this database as the app account."""
        return {
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(self.port),
            "DB_USER": self.app_user,
            "DB_PASS": self.app_password,
            "DB_NAME": "project_db",
            "DB_TIMEZONE": self.time_zone,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, load_sql: bool = True) -> DevDB:
        self.base.mkdir(parents=True, exist_ok=True)
        fresh = not (self.datadir / "mysql").exists()
        if fresh:
            self._install()
        if not self.port:
            self.port = free_port()
        self._launch()
        if fresh and load_sql:
            self.load_schema()
        return self

    def _user_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def _install(self) -> None:
        install = _find("mariadb-install-db", "mysql_install_db")
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            install,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._user_args(),
        ]
        if os.geteuid() != 0:
            cmd.append(f"--user={getpass.getuser()}")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise DevDBError(f"{install} failed:\n{res.stdout}\n{res.stderr}")

    def _launch(self) -> None:
        server = _find("mariadbd", "mysqld")
        cmd = [
            server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base / 'mysqld.pid'}",
            f"--log-error={self.log_path}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--max-connections=1000",
            "--innodb-buffer-pool-size=64M",
            f"--default-time-zone={self.time_zone}",
            *self._user_args(),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DevDBError(
                    f"{server} exited with {self.proc.returncode}:\n{self._log_tail()}"
                )
            if self._accepting():
                return
            time.sleep(0.05)
        self.kill()
        raise DevDBError(f"{server} did not accept connections in 60 s:\n{self._log_tail()}")

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.settimeout(0.5)
                return len(s.recv(4)) > 0  # the server greeting
        except OSError:
            return False

    def _log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        """Shut the server down cleanly (SIGTERM), keeping the data directory."""
        if self.proc is None:
            return
        terminate(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """Crash the server (SIGKILL), keeping the data directory."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Start again on the same port with the same data (after stop() or kill())."""
        self.stop()
        self._launch()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> DevDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- SQL as root -------------------------------------------------------------------------

    def _client(self) -> list[str]:
        return [
            _find("mariadb", "mysql"),
            "--no-defaults",
            "--user=root",
            f"--socket={self.socket_path}",
            "--batch",
            "--skip-column-names",
        ]

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL as root over the socket; returns the tab-separated output."""
        cmd = self._client() + ([database] if database else [])
        res = subprocess.run(cmd, input=statements, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise DevDBError(f"SQL failed: {res.stderr.strip()}\n--- statements ---\n{statements}")
        return res.stdout

    @contextlib.contextmanager
    def table_locked(self, table: str = "project_db.users") -> Iterator[None]:
        """Hold LOCK TABLES <table> WRITE in a root session: other sessions' reads of the
        table wait until the block ends (the lock is released when the session closes)."""
        proc = subprocess.Popen(
            [*self._client(), "--unbuffered"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(f"LOCK TABLES {table} WRITE; SELECT 'locked';\n")
            proc.stdin.flush()
            if proc.stdout.readline().strip() != "locked":
                raise DevDBError(f"LOCK TABLES failed: {proc.stderr.read() if proc.stderr else ''}")
            yield
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.write("UNLOCK TABLES;\n")
                proc.stdin.close()
            terminate(proc, 10)

    def load_schema(self) -> None:
        """Load sql/*.sql in order and create the application account."""
        for path in sorted(SQL_DIR.glob("*.sql")):
            self.sql(path.read_text())
        self.sql(app_user_sql(self.app_user, self.app_password))

    def points(self, row: str) -> int | None:
        out = self.sql(
            f"SELECT points FROM users WHERE user = '{sql_escape(row)}'", database="project_db"
        ).strip()
        return int(out) if out else None

    def row(self, row: str) -> tuple[int, str] | None:
        out = self.sql(
            "SELECT points, DATE_FORMAT(datetime_stamp, '%Y-%m-%d %H:%i:%s') FROM users "
            f"WHERE user = '{sql_escape(row)}'",
            database="project_db",
        ).strip()
        if not out:
            return None
        points, stamp = out.split("\t")
        return int(points), stamp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", type=Path, help="base directory (default: a new temporary one)")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    args = ap.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="pointsmesh-db-"))
    db = DevDB(base, port=args.port).start()
    for k, v in db.env().items():
        print(f"{k}={v}")
    print(f"# root: {' '.join(db._client())}", file=sys.stderr)
    print("# Ctrl-C stops the database", file=sys.stderr)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        db.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
