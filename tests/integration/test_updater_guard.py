"""The updater's guard (design.md sections 3.4 and 3.6): the increment both servers run
(protocol.toml's `increment`, one SQL text for C and Python) changes the row only from the
session that holds the row's named lock. The failover tests never exercise it (the old holder's
session is gone before a new one takes the lock), so here two live sessions of the app account,
through the Python server's own session code, play the cases the guard exists for: a session
that never had the lock, and a holder whose RELEASE_LOCK ran before its queued increment. Delete
`AND IS_USED_LOCK(?) = CONNECTION_ID()` from protocol.toml and this test fails."""

from __future__ import annotations

from testhelpers import unique_row

from points_server import config
from points_server import db as sessions
from points_server.generated.protocol import (
    SQL_ENSURE_ROW,
    SQL_GET_LOCK,
    SQL_INCREMENT,
    SQL_RELEASE_LOCK,
    SQL_SELECT_ROW,
)
from pointsmesh.devdb import DevDB


def test_only_the_lock_holders_live_session_increments(db: DevDB) -> None:
    row = unique_row("guard")
    lock = f"points:{row}"
    _, cfg = config.load([], {**db.env(), "SERVER_USER": row})
    assert cfg is not None
    a, b = sessions.connect(cfg), sessions.connect(cfg)
    try:
        a.change(SQL_ENSURE_ROW, (row,))
        assert a.query(SQL_GET_LOCK, (lock,))[0][0] == 1
        # B is alive and never had the lock: its increment matches no row.
        assert b.change(SQL_INCREMENT, (row, lock)) == 0
        assert a.change(SQL_INCREMENT, (row, lock)) == 1
        # A released the lock (a shutdown, a lost session's successor) with an increment
        # still queued: it matches nothing; B, which took the lock, increments.
        assert a.query(SQL_RELEASE_LOCK, (lock,))[0][0] == 1
        assert b.query(SQL_GET_LOCK, (lock,))[0][0] == 1
        assert a.change(SQL_INCREMENT, (row, lock)) == 0
        assert b.change(SQL_INCREMENT, (row, lock)) == 1
        # Exactly one increment per holder's slot: 2, never 3 or 4.
        assert int(a.query(SQL_SELECT_ROW, (row,))[0][0]) == 2
    finally:
        a.abort()
        b.abort()
