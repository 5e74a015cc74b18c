"""A private MariaDB or Oracle MySQL server in a temporary directory, on a free loopback port.

Nothing system-wide is touched: the data directory, socket, pid file and log live under one
directory, the server listens on 127.0.0.1 only, and `stop()` removes the process.

    python -m pointsmesh.devdb --dir /tmp/pm-db   # start, load sql/, print the DB_* settings;
                                                  # Ctrl-C, SIGTERM or SIGHUP stops the database

Used by the tests, `make demo` and `make bench`.

Two flavours, chosen by the environment variable POINTS_MESH_DB_FLAVOUR (or DevDB's `flavour`
field, or --flavour here):

  mariadb  (default) the host's MariaDB packages (mariadbd, mariadb-install-db, mariadb).
  mysql    Oracle MySQL from the Debian root that tools/install-mysql.sh builds and caches
           (`make test-mysql` runs it). Its mysqld and mysql run on the host through that root's
           own dynamic loader and libraries, with no chroot, so neither root nor a container is
           needed to run it, only to build the cache once. The root is found through
           POINTS_MESH_MYSQL_ROOT, else the record <venv>/mysql.env that the script writes.

Both flavours load the same sql/*.sql and sql/app-user.sql.in, so the application account has
each server's default authentication plugin (caching_sha2_password on MySQL).
"""

from __future__ import annotations

import argparse
import atexit
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

FLAVOURS = ("mariadb", "mysql")
FLAVOUR_ENV = "POINTS_MESH_DB_FLAVOUR"
MYSQL_ROOT_ENV = "POINTS_MESH_MYSQL_ROOT"
MYSQL_RECORD = "mysql.env"


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


def default_flavour() -> str:
    """The flavour POINTS_MESH_DB_FLAVOUR names (mariadb when unset or empty)."""
    value = os.environ.get(FLAVOUR_ENV, "").strip().lower() or "mariadb"
    if value not in FLAVOURS:
        raise DevDBError(f"{FLAVOUR_ENV}={value!r}: expected one of {', '.join(FLAVOURS)}")
    return value


def _read_record(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class MySQLRoot:
    """A Debian root holding Oracle MySQL (tools/install-mysql.sh), run from the host."""

    path: Path

    @classmethod
    def find(cls) -> MySQLRoot:
        override = os.environ.get(MYSQL_ROOT_ENV)
        if override:
            where = f"the environment variable {MYSQL_ROOT_ENV}"
            root = Path(override)
        else:
            records = list(dict.fromkeys(
                [Path(sys.prefix) / MYSQL_RECORD, ROOT / ".venv" / MYSQL_RECORD]))
            record = next((r for r in records if r.is_file()), None)
            if record is None:
                raise DevDBError(
                    "the MySQL flavour needs Oracle MySQL installed once, as root: "
                    "run tools/install-mysql.sh (or `make test-mysql`); "
                    f"none of {', '.join(map(str, records))} exists"
                )
            where = str(record)
            root = Path(_read_record(record).get("MYSQL_ROOT", ""))
        found = cls(root)
        if not os.access(found.loader, os.X_OK) or not found.mysqld.is_file():
            raise DevDBError(
                f"no MySQL root at {root} (from {where}); run tools/install-mysql.sh as root"
            )
        return found

    @property
    def loader(self) -> Path:
        return self.path / "usr/lib64/ld-linux-x86-64.so.2"

    @property
    def mysqld(self) -> Path:
        return self.path / "usr/sbin/mysqld"

    def command(self, program: Path) -> list[str]:
        """Run one of the root's programs on the host with the root's loader and libraries."""
        return [str(self.loader), "--library-path", str(self.path / "usr/lib/x86_64-linux-gnu"),
                str(program)]

    def env(self) -> dict[str, str]:
        """The environment for the root's programs: its own OpenSSL configuration and modules
        (TLS certificates are generated and served by the root's libssl)."""
        env = dict(os.environ)
        env["OPENSSL_CONF"] = str(self.path / "etc/ssl/openssl.cnf")
        env["OPENSSL_MODULES"] = str(self.path / "usr/lib/x86_64-linux-gnu/ossl-modules")
        return env

    def server_args(self) -> list[str]:
        """Where mysqld finds its own files (it would look under /usr of the host)."""
        share = self.path / "usr/share/mysql"
        return [
            f"--basedir={self.path / 'usr'}",
            f"--lc-messages-dir={share}",
            f"--character-sets-dir={share / 'charsets'}",
            f"--plugin-dir={self.path / 'usr/lib/mysql/plugin'}",
        ]


def server_version(flavour: str | None = None) -> str:
    """`mysqld --version` of the flavour's server (for test headers and reports)."""
    flavour = flavour or default_flavour()
    if flavour == "mysql":
        my = MySQLRoot.find()
        cmd, env = [*my.command(my.mysqld), "--version"], my.env()
    else:
        cmd, env = [_find("mariadbd", "mysqld"), "--version"], None
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, check=False)
    text = (res.stdout or res.stderr).strip()
    return text[text.find("Ver "):] if "Ver " in text else text  # without the binary's path


_MYSQL_TEMPLATES: dict[Path, Path] = {}


def _mysql_template(my: MySQLRoot) -> Path:
    """A data directory initialised by this root's mysqld, made once per process (removed at
    exit); DevDB copies it."""
    if my.path in _MYSQL_TEMPLATES:
        return _MYSQL_TEMPLATES[my.path]
    work = Path(tempfile.mkdtemp(prefix="pointsmesh-mysql-init-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    (work / "tmp").mkdir()
    log = work / "init.log"
    cmd = [
        *my.command(my.mysqld),
        "--no-defaults",
        "--initialize-insecure",
        *my.server_args(),
        f"--datadir={work / 'data'}",
        f"--tmpdir={work / 'tmp'}",
        f"--log-error={log}",
        *(["--user=root"] if os.geteuid() == 0 else []),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=my.env())
    if res.returncode != 0:
        text = ""
        with contextlib.suppress(OSError):
            text = log.read_text(errors="replace")
        raise DevDBError(f"mysqld --initialize-insecure failed:\n{res.stderr}\n{text}")
    _MYSQL_TEMPLATES[my.path] = work / "data"
    return work / "data"


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


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of pid is stopped (state T in /proc/<pid>/task/*/stat)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True  # gone: nothing runs
    for tid in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended
        # The state follows the command name, which is in parentheses and may hold spaces.
        if stat.rpartition(")")[2].split()[0] not in ("T", "t"):
            return False
    return True


@dataclass
class DevDB:
    """One private database server. Use as a context manager or call start()/stop()."""

    base: Path
    port: int = 0
    app_user: str = APP_USER
    app_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    time_zone: str = "+08:00"
    flavour: str = field(default_factory=default_flavour)
    # Extra server options, after the defaults (a later option wins), e.g.
    # ("--performance-schema=ON",) for a test that reads the statement counters.
    options: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    _mysql: MySQLRoot | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise DevDBError(f"flavour {self.flavour!r}: expected one of {', '.join(FLAVOURS)}")

    @property
    def label(self) -> str:
        """MariaDB or MySQL, for messages."""
        return "MySQL" if self.flavour == "mysql" else "MariaDB"

    @property
    def mysql_root(self) -> MySQLRoot:
        if self._mysql is None:
            self._mysql = MySQLRoot.find()
        return self._mysql

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
        if self.flavour == "mysql":
            self._install_mysql()
            return
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

    def _install_mysql(self) -> None:
        """A fresh MySQL data directory: a copy of one made by `mysqld --initialize-insecure`
        once per process (about 3 s; the copy takes a tenth of that), with its own server UUID.
        Like mariadb-install-db, it has root@localhost without a password, and the TLS
        certificates and RSA key pair that MySQL generates on initialisation."""
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise DevDBError(f"{self.datadir} is not empty and holds no MySQL data directory")
        with contextlib.suppress(FileNotFoundError):
            self.datadir.rmdir()
        shutil.copytree(_mysql_template(self.mysql_root), self.datadir, symlinks=True)
        (self.datadir / "auto.cnf").unlink(missing_ok=True)  # server_uuid, made anew at start

    def _server_command(self) -> tuple[list[str], dict[str, str] | None]:
        if self.flavour == "mysql":
            my = self.mysql_root
            return [
                *my.command(my.mysqld),
                "--no-defaults",
                *my.server_args(),
                "--secure-file-priv=NULL",  # no LOAD DATA / SELECT INTO OUTFILE anywhere
                "--mysqlx=OFF",  # the X protocol would listen on port 33060 of every address
                "--skip-log-bin",  # MySQL 8+ writes a binary log by default; nothing reads it
                "--performance-schema=OFF",  # saves memory; nothing here reads it
            ], my.env()
        return [_find("mariadbd", "mysqld"), "--no-defaults"], None

    def _launch(self) -> None:
        head, env = self._server_command()
        server = self.label
        cmd = [
            *head,
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
            *self.options,
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=env,
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

    @property
    def pid(self) -> int:
        """The database server's process id (mysqld runs in the process the loader starts)."""
        if self.proc is None or self.proc.poll() is not None:
            raise DevDBError(f"{self.label} is not running")
        return self.proc.pid

    def freeze(self) -> None:
        """Hang the server (SIGSTOP), as a frozen VM or a lost node would: its connections stay
        open and the kernel still completes new TCP handshakes, but nothing is answered.
        Always thaw() it again (a stopped server ignores SIGTERM until then). Returns once
        every thread is stopped: on a busy machine a thread can still run a statement for a
        moment after the signal is sent, which would let a test's "frozen" request through."""
        pid = self.pid
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _all_threads_stopped(pid):
            time.sleep(0.005)

    def thaw(self) -> None:
        """Resume a frozen server (SIGCONT); harmless when it runs."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)

    def __enter__(self) -> DevDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- SQL as root -------------------------------------------------------------------------

    def _client(self) -> list[str]:
        if self.flavour == "mysql":
            head = self.mysql_root.command(self.mysql_root.path / "usr/bin/mysql")
        else:
            head = [_find("mariadb", "mysql")]
        return [
            *head,
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

    def status(self, name: str) -> int:
        """One global status counter (SHOW GLOBAL STATUS), e.g. Com_stmt_execute."""
        out = self.sql(f"SHOW GLOBAL STATUS LIKE '{sql_escape(name)}'").split()
        if len(out) != 2:
            raise DevDBError(f"no status variable {name!r}: {out}")
        return int(out[1])

    def statement_executions(self, statement: str, user: str) -> int:
        """How many times the sessions of account `user` executed the prepared statement whose
        text is `statement`, as the database counts them: performance_schema
        .prepared_statements_instances, so it needs the options "--performance-schema=ON" and,
        for MariaDB to count executions there, "--performance-schema-consumer-events-statements
        -current=ON". A statement closed, or its session ended, drops out of the sum."""
        out = self.sql(
            "SELECT COALESCE(SUM(p.COUNT_EXECUTE), 0) "
            "FROM performance_schema.prepared_statements_instances p "
            "JOIN performance_schema.threads t ON t.THREAD_ID = p.OWNER_THREAD_ID "
            f"WHERE t.PROCESSLIST_USER = '{sql_escape(user)}' "
            f"AND p.SQL_TEXT = '{sql_escape(statement)}'"
        ).strip()
        return int(out)

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


# The signals that end `python -m pointsmesh.devdb` (Ctrl-C, kill or a supervisor, a closed
# terminal); each stops the database first.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(BaseException):
    """Raised by main()'s signal handlers: unwinds whatever runs (a start half done too), then
    the database stops. A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on(signum: int, _frame: object) -> None:
    raise _Stop(signum)


def _say(message: str) -> None:
    """A line on stderr; best effort (after a SIGHUP the terminal may be gone)."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", type=Path, help="base directory (default: a new temporary one)")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    ap.add_argument("--flavour", choices=FLAVOURS, default=None,
                    help=f"mariadb or mysql (default: ${FLAVOUR_ENV}, else mariadb)")
    args = ap.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="pointsmesh-db-"))
    db = DevDB(base, port=args.port, flavour=args.flavour or default_flavour())
    # The database runs in a session of its own (a terminal's Ctrl-C never reaches it), so this
    # process stops it on every signal meant to end it: handlers, not the default actions (which
    # would end this process alone and leave the database running), installed before it starts.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop_on)
    try:
        db.start()
        print(f"# {db.label} on 127.0.0.1:{db.port}", file=sys.stderr)
        for k, v in db.env().items():
            print(f"{k}={v}")
        sys.stdout.flush()  # a reader on a pipe gets the settings now, not at exit
        print(f"# root: {' '.join(db._client())}", file=sys.stderr)
        print("# Ctrl-C (or SIGTERM, SIGHUP) stops the database", file=sys.stderr)
        while db.running:
            time.sleep(1)
        assert db.proc is not None
        _say(f"# {db.label} exited by itself with status {db.proc.returncode}:\n{db._log_tail()}")
        return 1
    except _Stop as e:
        _say(f"# {signal.Signals(e.signum).name}: stopping {db.label}")
    finally:
        for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        db.stop()
    _say(f"# {db.label} stopped; its data stays in {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
