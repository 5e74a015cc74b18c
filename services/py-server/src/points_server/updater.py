"""The updater thread: one increment of the row per interval, whatever the replica count
(design.md section 3).

Replicas elect the updating one with a MySQL named lock (``GET_LOCK(name, 0)``), polled every
``min(1 s, UPDATE_INTERVAL)``. The holder continues the stored schedule (first increment
``max(0, interval - seconds since the last update)`` later), then increments on a monotonic
schedule ``t0 + k * interval``, skipping missed slots. The increment only touches the row while
this session holds the lock, so a session that lost it cannot count twice; nothing is counted
in memory, so an outage neither repeats nor loses an acknowledged increment. The session's
``wait_timeout`` (:func:`updater_wait_timeout`) bounds how long a crashed or hung holder keeps
the lock.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .config import ServerConfig
from .db import Backoff, Session, connect, describe
from .generated import log_events
from .generated.protocol import (
    DB_OPS,
    SLOT_DB_ERRORS_TOTAL,
    SLOT_UPDATE_LOCK_HELD,
    SLOT_UPDATES_TOTAL,
    SQL_ENSURE_ROW,
    SQL_GET_LOCK,
    SQL_INCREMENT,
    SQL_RELEASE_LOCK,
    SQL_SECONDS_SINCE_UPDATE,
    SQL_SELECT_ROW,
)
from .log import Logger
from .metrics import Metrics

PING_SECONDS = 1.0  # while holding the lock, check the session at least this often
WAIT_TIMEOUT_MIN = 5
WAIT_TIMEOUT_MAX = 31_536_000  # the largest wait_timeout MySQL and MariaDB take (Linux)
T = TypeVar("T")


def updater_wait_timeout(interval: float) -> int:
    """The updater session's idle timeout (``SQL_SET_WAIT_TIMEOUT``) in whole seconds:
    ``max(5, ceil(2 * interval))``, at most a year. Same function in updater.c.

    The lock lives as long as the session, and the database drops a session only after
    ``wait_timeout`` idle seconds (default 8 h): without a shorter one, a holder whose node
    crashed (no FIN, no RST) or whose process hangs (SIGSTOP, a frozen VM) keeps the lock, and no
    replica increments, for hours. A live session is never idle much longer than one interval:
    a holder runs a statement at every slot (at most one interval apart; this one also pings
    every ``PING_SECONDS``) and a non-holder polls ``GET_LOCK`` every ``min(1 s, interval)``.
    Twice the interval leaves that much margin for a slow scheduler, and the 5 s floor keeps
    short intervals clear of a pause of a few seconds; so a live updater is not cut off, while a
    dead or hung holder's lock is freed after at most this many seconds.
    """
    twice = 2.0 * interval
    if not twice < WAIT_TIMEOUT_MAX:  # also inf and NaN
        return WAIT_TIMEOUT_MAX
    return max(WAIT_TIMEOUT_MIN, math.ceil(twice))


class SessionFailed(Exception):
    def __init__(self, op: str, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.op = op


class Updater(threading.Thread):
    def __init__(self, cfg: ServerConfig, log: Logger, metrics: Metrics) -> None:
        super().__init__(name="points-updater", daemon=True)
        self.cfg = cfg
        self.log = log
        self.metrics = metrics
        self.interval = cfg.update_interval
        self.lock_name = cfg.lock_name
        self.user = cfg.server_user
        self.wait_timeout = updater_wait_timeout(cfg.update_interval)
        self._stop_event = threading.Event()
        self._backoff = Backoff()

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when asked to stop."""
        return self._stop_event.wait(max(0.0, seconds))

    # -- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping:
            session = self._connect()
            if session is None:
                continue
            try:
                self._serve(session)
            except Exception as exc:  # SessionFailed, or a bug that must not end the thread
                self._set_held(False)
                session.abort()
                session = None
                op = exc.op if isinstance(exc, SessionFailed) else "update"
                self.metrics.add_shared(SLOT_DB_ERRORS_TOTAL + DB_OPS.index(op))
                delay = self._backoff.next()
                log_events.db_error(self.log, role="updater", op=op, error=describe(exc),
                             retry_in=delay)
                self._wait(delay)
            finally:
                if session is not None:
                    self._release(session)
                    session.close()
        self._set_held(False)

    def _connect(self) -> Session | None:
        try:
            session = connect(self.cfg, wait_timeout=self.wait_timeout)  # this session only
        except Exception as exc:  # the driver, the socket, or a torn packet
            self.metrics.add_shared(SLOT_DB_ERRORS_TOTAL + DB_OPS.index("connect"))
            delay = self._backoff.next()
            log_events.db_error(self.log, role="updater", op="connect", error=describe(exc),
                         retry_in=delay)
            self._wait(delay)
            return None
        log_events.db_connected(self.log, role="updater", host=self.cfg.db_host,
                                port=self.cfg.db_port)
        return session

    def _serve(self, session: Session) -> None:
        """Ensure the row, then elect and increment until stopped; raises SessionFailed."""
        self._ensure_row(session)
        self._backoff.reset()
        poll = min(1.0, self.interval)
        while not self.stopping:
            rows = self._call("lock", lambda: session.query(SQL_GET_LOCK, (self.lock_name,)))
            if not rows or rows[0][0] != 1:
                self._wait(poll)
                continue
            self._set_held(True)
            self._hold(session)
            if not self.stopping:
                self._set_held(False)  # lost; on stop it is held until run() releases it

    def _hold(self, session: Session) -> None:
        """Increment on schedule while the lock is ours; returns when it was lost or on stop."""
        rows = self._call(
            "lock", lambda: session.query(SQL_SECONDS_SINCE_UPDATE, (self.user,))
        )
        if not rows or rows[0][0] is None:
            self._ensure_row(session)
            elapsed = 0.0
        else:
            elapsed = max(0.0, float(rows[0][0]))
        first = max(0.0, self.interval - elapsed)
        log_events.lock_acquired(self.log, lock=self.lock_name, first_update_in=first)
        t0 = time.monotonic() + first
        slot = 0
        while True:
            if self._sleep_until(t0 + slot * self.interval, session):
                return  # stopping; run() releases the lock
            changed = self._call(
                "update", lambda: session.change(SQL_INCREMENT, (self.user, self.lock_name))
            )
            if changed != 1:
                log_events.lock_lost(self.log, lock=self.lock_name,
                             error="the increment matched no row: lock not held")
                return
            self.metrics.add(SLOT_UPDATES_TOTAL)
            rows = self._call("update", lambda: session.query(SQL_SELECT_ROW, (self.user,)))
            if rows:
                log_events.updated(self.log, points=int(rows[0][0]))
            # Next slot strictly in the future: a missed slot is skipped, never made up.
            elapsed_slots = (time.monotonic() - t0) / self.interval
            slot = max(slot + 1, math.floor(elapsed_slots) + 1)

    def _sleep_until(self, deadline: float, session: Session) -> bool:
        """Wait for the slot, pinging the session meanwhile; True when asked to stop."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.stopping
            if self._wait(min(remaining, PING_SECONDS)):
                return True
            if deadline - time.monotonic() > 0:
                self._call("lock", session.ping)

    def _ensure_row(self, session: Session) -> None:
        if self._call("update", lambda: session.change(SQL_ENSURE_ROW, (self.user,))) == 1:
            log_events.row_created(self.log)

    def _release(self, session: Session) -> None:
        """Release the lock (a no-op when this session does not hold it)."""
        with contextlib.suppress(Exception):  # closing the session releases it anyway
            session.query(SQL_RELEASE_LOCK, (self.lock_name,))
        self._set_held(False)

    def _set_held(self, held: bool) -> None:
        self.metrics.set(SLOT_UPDATE_LOCK_HELD, 1 if held else 0)

    @staticmethod
    def _call(op: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:  # the driver, the socket, or a torn packet
            raise SessionFailed(op, exc) from exc
