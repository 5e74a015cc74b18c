"""Structured logs: one JSON object per line on stdout, as protocol.toml [log] describes.

Every line starts with ``ts`` (UTC, RFC 3339 with milliseconds and ``Z``), ``level``,
``service``, ``user`` and ``event``, followed by the event's own fields in the listed order.
Numbers stay JSON numbers; every other value is written as a string. Lines are flushed one by
one and may be written from any thread.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import TextIO

from . import SERVICE
from .generated.protocol import LOG_EVENTS

LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warn": 30, "error": 40}
LEVEL_ALIASES: dict[str, str] = {"warning": "warn"}


def parse_level(text: str) -> str:
    """The canonical level name for text (case-insensitive); ValueError when unknown."""
    name = text.strip().lower()
    name = LEVEL_ALIASES.get(name, name)
    if name not in LEVELS:
        raise ValueError(f"unknown log level {text!r} (expected debug, info, warn or error)")
    return name


def timestamp(now: float | None = None) -> str:
    """UTC time as ``2026-01-05T10:00:00.123Z`` (milliseconds truncated)."""
    t = time.time() if now is None else now
    seconds = math.floor(t)
    millis = min(999, int((t - seconds) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _json_value(value: object) -> object:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # A "seconds" field: at most 3 decimals, no trailing zeros (30, 0.5), as the C server
        # writes it (services/c-server/src/log.c); not finite: 0, as C.
        if not math.isfinite(value):
            return 0
        rounded = round(value, 3)
        return int(rounded) if rounded.is_integer() else rounded
    return str(value)


class Logger:
    """Writes the protocol's log events for one server (row ``user``)."""

    def __init__(self, user: str, level: str = "info", stream: TextIO | None = None) -> None:
        self.user = user
        self.threshold = LEVELS[parse_level(level)]
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def enabled(self, event: str) -> bool:
        """True when ``event`` passes the level filter (check before building costly fields)."""
        return LEVELS[LOG_EVENTS[event][0]] >= self.threshold

    def line(self, event: str, fields: dict[str, object], now: float | None = None) -> str:
        """The JSON line (with its newline) for ``event``; every listed field is required."""
        level, names = LOG_EVENTS[event]
        record: dict[str, object] = {
            "ts": timestamp(now),
            "level": level,
            "service": SERVICE,
            "user": self.user,
            "event": event,
        }
        for name in names:
            record[name] = _json_value(fields[name])
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"

    def log(self, event: str, **fields: object) -> None:
        if not self.enabled(event):
            return
        text = self.line(event, fields)
        with self._lock:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # stdout gone (closed pipe): logging must never take the server down
