"""Database sessions: opening, closing and retry pacing (design.md section 2).

Every session is opened with bounded connect and query timeouts, autocommit, no automatic
reconnect (a silent reconnect would lose the named lock and the time zone), affected-rows
semantics (``FOUND_ROWS`` off, so ``SQL_ENSURE_ROW`` reports 1 only when it inserted), and runs
``SQL_SET_TIME_ZONE`` first (then, on the updater's session only, ``SQL_SET_WAIT_TIMEOUT``).
Statements are prepared once per session: a :class:`Session` keeps one prepared cursor per
statement for changes, and executes the reader's SELECT with the connection's statement
commands (one round trip per read; see :meth:`Session.query`).
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import mysql.connector
from mysql.connector.constants import ClientFlag

from .config import ServerConfig, db_tls_mode
from .generated.protocol import SQL_SET_TIME_ZONE, SQL_SET_WAIT_TIMEOUT


def describe(exc: BaseException) -> str:
    """A one-line description of a database error for the logs."""
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class Session:
    """One database connection with its prepared cursors."""

    def __init__(self, cnx: Any) -> None:
        self.cnx = cnx
        self._cursors: dict[str, Any] = {}
        self._statements: dict[str, Any] = {}  # query(): prepared once, executed directly

    def execute(self, sql: str, params: tuple[object, ...]) -> Any:
        """Run a prepared statement; returns its cursor (rows fetched with fetchall)."""
        cursor = self._cursors.get(sql)
        if cursor is None:
            cursor = self.cnx.cursor(prepared=True)
            self._cursors[sql] = cursor
        cursor.execute(sql, params)
        return cursor

    def query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        """Rows of a prepared SELECT: one round trip, as ``mysql_stmt_execute`` in the C server.

        The driver's prepared cursor sends COM_STMT_RESET before every execute (to clear long
        data this project never sends): a second round trip per read, which on the reader's
        share of the GIL cost the event loop about a tenth of its throughput. So the statement
        is prepared once and executed with the connection's own command methods."""
        cnx = self.cnx
        stmt = self._statements.get(sql)
        if stmt is None:
            stmt = cnx.cmd_stmt_prepare(sql.encode())  # placeholders: ? already
            self._statements[sql] = stmt
        result = cnx.cmd_stmt_execute(stmt["statement_id"], data=params,
                                      parameters=stmt["parameters"])
        if isinstance(result, dict):  # an OK packet: no result set
            return []
        cnx.unread_result = True  # what the cursor sets; get_rows reads up to the EOF packet
        rows, _ = cnx.get_rows(binary=True, columns=result[1])
        return list(rows)

    def change(self, sql: str, params: tuple[object, ...]) -> int:
        """Affected rows of a prepared INSERT/UPDATE."""
        return int(self.execute(sql, params).rowcount)

    def ping(self) -> None:
        self.cnx.ping(reconnect=False)

    def close(self) -> None:
        """Close politely (COM_QUIT); errors are ignored."""
        try:
            self.cnx.close()
        except Exception:  # the driver, the socket, or a torn packet
            self.abort()

    def abort(self) -> None:
        """Drop the socket without a word (for a connection already known to be broken)."""
        with contextlib.suppress(Exception):  # the driver, the socket, or a torn packet
            self.cnx.shutdown()


def connect(cfg: ServerConfig, wait_timeout: int | None = None) -> Session:
    """Open a session as cfg's account and set its time zone, then its ``wait_timeout`` (idle
    seconds before the database drops it) when one is given; raises on any failure."""
    query_timeout = max(1, math.ceil(cfg.db_query_timeout))  # the driver takes whole seconds
    mode = db_tls_mode(cfg)
    # DB_TLS_MODE as the driver's options (the C server's set_tls_mode): preferred is the
    # driver's default (TLS without verification when the database offers it); verify-ca
    # checks the chain, verify-identity the name DB_HOST too; from required on, an
    # unencrypted session is refused below, whatever the driver did.
    tls: dict[str, Any] = {"ssl_disabled": mode == "disabled"}
    if mode in ("verify-ca", "verify-identity"):
        tls |= {"ssl_ca": cfg.db_tls_ca_file, "ssl_verify_cert": True,
                "ssl_verify_identity": mode == "verify-identity"}
    cnx = mysql.connector.connect(
        host=cfg.db_host,
        port=cfg.db_port,
        user=cfg.db_user,
        password=cfg.db_pass,
        database=cfg.db_name,
        use_pure=True,
        autocommit=True,
        connection_timeout=cfg.db_connect_timeout,
        read_timeout=query_timeout,
        write_timeout=query_timeout,
        client_flags=[-ClientFlag.FOUND_ROWS],
        charset="utf8mb4",
        get_warnings=False,
        raise_on_warnings=False,
        **tls,
    )
    session = Session(cnx)
    if mode not in ("disabled", "preferred") and not cnx.is_secure:
        session.abort()
        raise ConnectionError("the database session is not encrypted (DB_TLS_MODE asks for TLS)")
    try:
        session.change(SQL_SET_TIME_ZONE, (cfg.db_timezone,))
        if wait_timeout is not None:
            session.change(SQL_SET_WAIT_TIMEOUT, (wait_timeout,))
    except Exception:  # the driver, the socket, or a torn packet
        session.abort()
        raise
    return session


class Backoff:
    """Retry delays: 0.1 s doubling to 5 s, each with +-20 % jitter."""

    def __init__(self, first: float = 0.1, cap: float = 5.0, jitter: float = 0.2,
                 rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def next(self) -> float:
        base = self._next
        self._next = min(self.cap, base * 2)
        return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)
