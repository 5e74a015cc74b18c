"""Log lines of the Python server (points_server.log): JSON per protocol.toml [log]."""

from __future__ import annotations

import io
import json
import re

import pytest

from points_server.generated.protocol import LOG_COMMON_FIELDS, LOG_EVENTS
from points_server.log import Logger, parse_level, timestamp

SAMPLE: dict[str, object] = {
    "version": "1.0.0", "pid": 42, "addr": "0.0.0.0", "port": 5002, "health_port": 8080,
    "role": "reader", "host": "db", "op": "read", "error": "gone", "retry_in": 0.1234567,
    "lock": "points:x", "first_update_in": 1.5, "points": 7, "peer": "127.0.0.1:5",
    "outcome": "ok", "duration_ms": 0.25, "signal": "SIGTERM", "in_flight": 3, "served": 9,
    "where": "event loop", "cert_file": "/tls/tls.crt", "client_ca": "", "reason": "not-tls",
    "max_connections": 4096, "limit": 864, "nofile": 1024, "source": "127.0.0.2", "table": 864,
    "lasted": 2.5, "shed": 10, "refused": 3,
}


def test_timestamp_format() -> None:
    assert timestamp(1767607200.1239) == "2026-01-05T10:00:00.123Z"
    assert timestamp(1767607200.0) == "2026-01-05T10:00:00.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", timestamp())


@pytest.mark.parametrize("event", sorted(LOG_EVENTS))
def test_every_event_has_common_then_own_fields_in_order(event: str) -> None:
    out = io.StringIO()
    log = Logger("python_user-akmal", "debug", out)
    log.log(event, **SAMPLE)
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    record = json.loads(text)
    level, fields = LOG_EVENTS[event]
    assert list(record) == [*LOG_COMMON_FIELDS, *fields]
    assert record["level"] == level
    assert record["service"] == "python-server"
    assert record["user"] == "python_user-akmal"
    assert record["event"] == event


def test_numbers_stay_numbers_and_the_rest_are_strings() -> None:
    out = io.StringIO()
    Logger("u", "debug", out).log("db_error", role="reader", op="connect", error=OSError("x"),
                                  retry_in=0.1234567)
    record = json.loads(out.getvalue())
    assert record["retry_in"] == 0.123
    assert record["error"] == "x"
    out = io.StringIO()
    Logger("u", "debug", out).log("listening", addr="::", port=5002, health_port=0)
    record = json.loads(out.getvalue())
    assert record["port"] == 5002 and record["health_port"] == 0 and record["addr"] == "::"


def test_missing_field_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        Logger("u", "debug", io.StringIO()).log("updated")


@pytest.mark.parametrize(
    ("level", "logged"),
    [("debug", {"request", "updated", "db_error", "config_error"}),
     ("info", {"updated", "db_error", "config_error"}),
     ("warn", {"db_error", "config_error"}),
     ("error", {"config_error"})],
)
def test_level_filter(level: str, logged: set[str]) -> None:
    out = io.StringIO()
    log = Logger("u", level, out)
    for event in ("request", "updated", "db_error", "config_error"):
        log.log(event, **SAMPLE)
    assert {json.loads(line)["event"] for line in out.getvalue().splitlines()} == logged
    assert log.enabled("request") == (level == "debug")


def test_parse_level() -> None:
    assert parse_level("WARN") == "warn"
    assert parse_level("warning") == "warn"
    with pytest.raises(ValueError):
        parse_level("loud")


def test_non_ascii_is_kept_readable() -> None:
    out = io.StringIO()
    Logger("pengguna-é", "info", out).log("row_created")
    assert json.loads(out.getvalue())["user"] == "pengguna-é"
