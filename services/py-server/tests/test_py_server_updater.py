"""The Python server's updater session (points_server.updater, points_server.db): the
wait_timeout derived from UPDATE_INTERVAL and set on the updater's session only."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest

from points_server import db, reader, updater
from points_server.config import ServerConfig, load
from points_server.generated.protocol import SQL_SET_TIME_ZONE, SQL_SET_WAIT_TIMEOUT
from points_server.log import Logger
from points_server.metrics import Metrics
from points_server.updater import Updater, updater_wait_timeout


def server_config(env: dict[str, str]) -> ServerConfig:
    _, cfg = load([], env)
    assert cfg is not None
    return cfg


# The same table as the C unit test (services/c-server/tests/updater.c).
@pytest.mark.parametrize(("interval", "expected"), [
    (0.05, 5), (1, 5), (2, 5), (2.5, 5), (2.6, 6), (3, 6), (30, 60), (30.2, 61),
    (3600, 7200), (15_768_000, 31_536_000), (31_536_000, 31_536_000),
    (1e300, 31_536_000), (math.inf, 31_536_000),
])
def test_wait_timeout_is_twice_the_interval_at_least_5_s(interval: float, expected: int) -> None:
    got = updater_wait_timeout(interval)
    assert got == expected and isinstance(got, int)


class FakeCursor:
    def __init__(self, log: list[tuple[str, tuple[object, ...]]]) -> None:
        self.log = log
        self.rowcount = 0

    def execute(self, sql: str, params: tuple[object, ...]) -> None:
        self.log.append((sql, params))


class FakeConnection:
    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[object, ...]]] = []

    def cursor(self, prepared: bool = False) -> FakeCursor:
        assert prepared
        return FakeCursor(self.statements)


@pytest.fixture
def fake_driver(monkeypatch: pytest.MonkeyPatch) -> list[FakeConnection]:
    opened: list[FakeConnection] = []

    def fake_connect(**_: Any) -> FakeConnection:
        opened.append(FakeConnection())
        return opened[-1]

    monkeypatch.setattr(db.mysql.connector, "connect", fake_connect)
    return opened


def test_connect_sets_the_wait_timeout_right_after_the_time_zone(fake_driver) -> None:
    cfg = server_config({"DB_TIMEZONE": "+01:00"})
    db.connect(cfg, wait_timeout=7)
    assert fake_driver[0].statements == [(SQL_SET_TIME_ZONE, ("+01:00",)),
                                         (SQL_SET_WAIT_TIMEOUT, (7,))]
    db.connect(cfg)
    assert fake_driver[1].statements == [(SQL_SET_TIME_ZONE, ("+01:00",))]


def test_only_the_updater_session_gets_the_wait_timeout(monkeypatch) -> None:
    calls: list[tuple[str, int | None]] = []

    class FakeSession:
        def change(self, sql: str, params: tuple[object, ...]) -> int:
            return 0

    def recording(module: str):
        def fake(cfg: object, wait_timeout: int | None = None) -> FakeSession:
            calls.append((module, wait_timeout))
            return FakeSession()
        return fake

    monkeypatch.setattr(updater, "connect", recording("updater"))
    monkeypatch.setattr(reader, "connect", recording("reader"))
    cfg = server_config({"UPDATE_INTERVAL": "4"})
    log = Logger("python_user", stream=io.StringIO())
    metrics = Metrics({})
    assert Updater(cfg, log, metrics)._connect() is not None
    assert reader.Reader(cfg, log, metrics, lambda _: None)._open() is not None
    assert calls == [("updater", 8), ("reader", None)]
