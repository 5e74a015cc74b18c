"""Helpers the test modules import (tests/ is on sys.path through tests/conftest.py).

Kept out of conftest.py: a test module's `from conftest import ...` would pick up whichever
conftest.py pytest imported last (tests/chart and tests/e2e have their own).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pointsmesh import ROOT
from pointsmesh.spec import Protocol, reply_regex

T = TypeVar("T")

# Every server implementation and build: C, C with ASan+UBSan, C with ThreadSanitizer, Python
# (tools/pointsmesh/procs.py maps a kind to its command).
ALL_SERVER_KINDS = ("c", "c-asan", "c-tsan", "python")
# POINTS_MESH_SERVER_KINDS (space-separated) narrows a pass to some of them: `make test-mysql`
# leaves ThreadSanitizer's build to `make test` (its threads race or not whatever the database).
SERVER_KINDS = tuple(os.environ.get("POINTS_MESH_SERVER_KINDS", " ".join(ALL_SERVER_KINDS))
                     .split())
if not SERVER_KINDS or set(SERVER_KINDS) - set(ALL_SERVER_KINDS):
    raise ValueError(f"POINTS_MESH_SERVER_KINDS={' '.join(SERVER_KINDS)!r}: expected some of "
                     f"{' '.join(ALL_SERVER_KINDS)}")
# The sanitizer builds as the two replicas of one row (tests/integration/test_system.py): each
# build in each role; the first started holds the lock, the second takes it over.
SANITIZER_PAIRS = (("c-asan", "c-tsan"), ("c-tsan", "c-asan"))
counter = itertools.count()


def unique_row(prefix: str) -> str:
    """A users row no other test touches (VARCHAR(50))."""
    return f"{prefix[:36]}-{next(counter)}"


def reply_pattern(protocol: Protocol, row: str) -> re.Pattern[bytes]:
    """The reply for row, points and timestamp as groups; use with fullmatch."""
    return re.compile(reply_regex(protocol.reply_format, row).encode())


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """PREDICATE's first truthy value, polled every INTERVAL s; its last value at TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


async def ask(port: int, request: bytes, timeout: float = 30) -> bytes:
    """One request on a fresh loopback connection; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def updater_events(server: Any, event: str) -> list[dict]:
    """A server's log events named EVENT that its updater logged (events without a role are
    the updater's)."""
    return [e for e in server.log_events()
            if e["event"] == event and e.get("role", "updater") == "updater"]


def compile_c(out: Path, sources: list[str], include: list[str]) -> str:
    """Build a small C test program (a driver that runs project C code on test input) from
    repository-relative sources and include folders, with the project's warnings as errors."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler (cc): make setup installs one")
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-pthread",
                    *(f"-I{ROOT / d}" for d in include), "-o", str(out),
                    *(str(ROOT / src) for src in sources), "-lm"], check=True)
    return str(out)


def make_test_pki(out: Path) -> dict[str, Path]:
    """The certificates the TLS tests use, by file name, written to out: two CAs (ca,
    other-ca); server certificates for localhost and 127.0.0.1 (server; expired: a month ago;
    other-server: from other-ca) and for another name (other-name: elsewhere.example); client
    certificates (client; other-client: from other-ca); garbage.pem, not a PEM file at all."""
    from pointsmesh import certs  # cryptography: only the TLS tests need it

    ca, other = certs.make_ca("test CA"), certs.make_ca("another CA")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    local = ["localhost", "127.0.0.1"]
    files: dict[str, Path] = {}
    for stem, issued in (
        ("ca", ca), ("other-ca", other),
        ("server", certs.issue(ca, "localhost", local)),
        ("expired", certs.issue(ca, "localhost", local, not_before=past,
                                not_after=past + datetime.timedelta(days=1))),
        ("other-name", certs.issue(ca, "elsewhere", ["elsewhere.example"])),
        ("other-server", certs.issue(other, "localhost", local)),
        ("client", certs.issue(ca, "points-client", server=False, client=True)),
        ("other-client", certs.issue(other, "points-client", server=False, client=True)),
    ):
        files[f"{stem}.crt"], files[f"{stem}.key"] = issued.write(out, stem)
    files["garbage.pem"] = out / "garbage.pem"
    files["garbage.pem"].write_text("not a certificate\n")
    return files
