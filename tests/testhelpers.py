"""Helpers the test modules import (tests/ is on sys.path through tests/conftest.py).

Kept out of conftest.py: a test module's `from conftest import ...` would pick up whichever
conftest.py pytest imported last (tests/chart and tests/e2e have their own).
"""

from __future__ import annotations

import itertools
import re

from pointsmesh.spec import Protocol, reply_regex

SERVER_KINDS = ("c", "c-asan", "python")
counter = itertools.count()


def unique_row(prefix: str) -> str:
    """A users row no other test touches (VARCHAR(50))."""
    return f"{prefix[:36]}-{next(counter)}"


def reply_pattern(protocol: Protocol, row: str) -> re.Pattern[bytes]:
    """The reply for row, points and timestamp as groups; use with fullmatch."""
    return re.compile(reply_regex(protocol.reply_format, row).encode())
