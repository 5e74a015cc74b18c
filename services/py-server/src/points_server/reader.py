"""Reads of the row: one persistent database session in a dedicated thread, and coalescing of
the requests waiting for it (design.md section 2).

The event loop side (:class:`Coalescer`) keeps at most one read in flight. Requests completed
while none is in flight start one; requests completed while one is in flight wait for the next,
which starts as soon as the current one is delivered and answers all of them. The database side
(:class:`Reader`) runs the prepared SELECT on request and hands the reply bytes back to the loop
with ``call_soon_threadsafe``: one thread hop per read, not per request.

While the session is down every request is answered ``db-unavailable`` at once; the reader
reconnects in the background with backoff and pings its idle session so that /readyz follows
the database even without traffic.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from .config import ServerConfig
from .db import Backoff, Session, connect, describe
from .generated import log_events
from .generated.protocol import (
    DB_OPS,
    REPLY_FORMAT,
    SLOT_DB_ERRORS_TOTAL,
    SLOT_DB_READS_TOTAL,
    SLOT_DB_UP,
    SQL_ENSURE_ROW,
    SQL_SELECT_ROW,
)
from .log import Logger
from .metrics import Metrics

IDLE_PING_SECONDS = 1.0


class ReadResult(NamedTuple):
    """The outcome of one read: reply bytes, or an error code (then reply is empty)."""

    reply: bytes
    error: str  # "" on success
    started: float  # time.monotonic() when the read started


UNAVAILABLE = ReadResult(b"", "db-unavailable", 0.0)


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return str(value)


def format_reply(user: str, points: object, last_update: object) -> bytes:
    """The reply line, byte for byte the C server's (the database formatted the timestamp)."""
    return REPLY_FORMAT.format(
        user=user, points=int(_text(points)), last_update=_text(last_update)
    ).encode("utf-8")


class Reader(threading.Thread):
    """The reader thread: owns the read session, runs one read per :meth:`request_read`."""

    def __init__(self, cfg: ServerConfig, log: Logger, metrics: Metrics,
                 deliver: Callable[[ReadResult], None]) -> None:
        super().__init__(name="points-reader", daemon=True)
        self.cfg = cfg
        self.log = log
        self.metrics = metrics
        self._deliver = deliver
        self._cv = threading.Condition()
        self._up = False
        self._requested = False
        self._stopping = False
        self._backoff = Backoff()

    # -- called from the event loop thread -------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up

    def request_read(self) -> bool:
        """Ask for one read; False (nothing asked) when the session is down."""
        with self._cv:
            if not self._up or self._stopping:
                return False
            self._requested = True
            self._cv.notify()
        return True

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()

    # -- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        session: Session | None = None
        try:
            while not self._stopping:
                if session is None:
                    session = self._open()
                    continue
                with self._cv:
                    if not self._requested and not self._stopping:
                        self._cv.wait(IDLE_PING_SECONDS)
                    if self._stopping:
                        break
                    requested, self._requested = self._requested, False
                try:
                    if requested:
                        self._post(self._read(session))
                    else:
                        session.ping()
                except Exception as exc:  # the driver, the socket, or a torn packet
                    session.abort()
                    session = None
                    self._down(exc, answer_in_flight=requested)
        finally:
            with self._cv:
                self._up = False
            self.metrics.set(SLOT_DB_UP, 0)
            if session is not None:
                session.close()

    def _open(self) -> Session | None:
        session: Session | None = None
        try:
            session = connect(self.cfg)
            inserted = session.change(SQL_ENSURE_ROW, (self.cfg.server_user,))
        except Exception as exc:  # the driver, the socket, or a torn packet
            if session is not None:
                session.abort()
            self.metrics.add_shared(SLOT_DB_ERRORS_TOTAL + DB_OPS.index("connect"))
            delay = self._backoff.next()
            log_events.db_error(self.log, role="reader", op="connect", error=describe(exc),
                         retry_in=delay)
            self._sleep(delay)
            return None
        if inserted == 1:
            log_events.row_created(self.log)
        self._backoff.reset()
        log_events.db_connected(self.log, role="reader", host=self.cfg.db_host,
                                port=self.cfg.db_port)
        with self._cv:
            self._up = True
        self.metrics.set(SLOT_DB_UP, 1)
        return session

    def _down(self, exc: Exception, answer_in_flight: bool) -> None:
        """The session failed: refuse new reads, answer the batch that was waiting."""
        with self._cv:
            self._up = False
            pending, self._requested = self._requested, False
        self.metrics.set(SLOT_DB_UP, 0)
        self.metrics.add_shared(SLOT_DB_ERRORS_TOTAL + DB_OPS.index("read"))
        delay = self._backoff.next()
        log_events.db_error(self.log, role="reader", op="read", error=describe(exc), retry_in=delay)
        if answer_in_flight or pending:
            self._post(UNAVAILABLE)
        self._sleep(delay)

    def _read(self, session: Session) -> ReadResult:
        started = time.monotonic()
        user = self.cfg.server_user
        rows = session.query(SQL_SELECT_ROW, (user,))
        self.metrics.add(SLOT_DB_READS_TOTAL)
        if not rows:
            if session.change(SQL_ENSURE_ROW, (user,)) == 1:
                log_events.row_created(self.log)
            rows = session.query(SQL_SELECT_ROW, (user,))
            self.metrics.add(SLOT_DB_READS_TOTAL)
            if not rows:
                return ReadResult(b"", "row-missing", started)
        points, last_update = rows[0][0], rows[0][1]
        return ReadResult(format_reply(user, points, last_update), "", started)

    def _post(self, result: ReadResult) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is exiting
            self._deliver(result)

    def _sleep(self, seconds: float) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self._stopping, seconds)


class Waiter(Protocol):
    """A connection waiting for a read (see server.Connection)."""

    def answer(self, result: ReadResult, now: float) -> None: ...


class Coalescer:
    """Event loop side: batches waiting requests onto single reads."""

    def __init__(self, reader: Reader, max_staleness: float) -> None:
        self.reader = reader
        self.max_staleness = max_staleness
        self._in_flight: list[Waiter] | None = None
        self._next: list[Waiter] = []
        self._last: ReadResult | None = None

    def submit(self, waiter: Waiter, now: float) -> None:
        last = self._last
        if last is not None and self.max_staleness > 0 and now - last.started <= self.max_staleness:
            waiter.answer(last, now)
        elif self._in_flight is not None:
            self._next.append(waiter)
        elif self.reader.request_read():
            self._in_flight = [waiter]
        else:
            waiter.answer(UNAVAILABLE, now)

    def deliver(self, result: ReadResult) -> None:
        """The read finished (runs on the loop, scheduled by the reader thread)."""
        now = time.monotonic()
        batch = self._in_flight or []
        self._in_flight = None
        if not result.error:
            self._last = result
        for waiter in batch:
            waiter.answer(result, now)
        if self._next:
            batch, self._next = self._next, []
            if self.reader.request_read():
                self._in_flight = batch
            else:
                for waiter in batch:
                    waiter.answer(UNAVAILABLE, now)

    def waiting(self) -> list[Waiter]:
        """Every request waiting for a read, in flight or next."""
        return [*(self._in_flight or []), *self._next]
