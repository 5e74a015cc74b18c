"""The two servers write log lines alike: the C server's log_format against the Python
server's Logger for the same event, time, text and number: JSON escaping of any text
(quotes, backslashes, control characters, UTF-8) and "seconds" numbers (at most 3 decimals,
no trailing zeros)."""

from __future__ import annotations

import random
import subprocess

import pytest
from testhelpers import compile_c

from points_server.log import Logger

WALL = 1767607200.123456789  # the driver's fixed time: 2026-01-05T10:00:00.123Z
NUMBERS = [0.0, -0.0, 0.1, 0.5, 30.0, 2.0005, 0.0004, 0.0005, 0.0015, 1.25, 12345.678, -3.5,
           1e9, 0.123456, 59.9999, 3.0, float("inf"), float("nan")]
TEXTS = ["plain", 'quote " and backslash \\', "tab\tnew\nline\rcr", "\x01\x1f\x7f bell\x07",
         "café € 😀", "Lost connection to server at 'handshake' (110)", ""]


@pytest.fixture(scope="module")
def c_logger(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(tmp_path_factory.mktemp("log") / "log_line",
                     ["services/c-server/tests/drivers/log_line.c", "services/c-server/src/log.c",
                      "services/c-server/src/util.c", "protocol/generated/points_protocol.c"],
                     ["services/c-server/src", "protocol/generated"])


def test_c_and_python_write_the_same_log_lines(c_logger: str) -> None:
    rng = random.Random(3)
    numbers = NUMBERS + [rng.uniform(0, 100) for _ in range(300)] + [
        rng.randrange(0, 10**6) / 1000 for _ in range(300)]
    cases = [(n, TEXTS[i % len(TEXTS)]) for i, n in enumerate(numbers)]
    stdin = "".join(f"{n.hex()}\t{t.replace(chr(10), chr(11))}\n" for n, t in cases)
    out = subprocess.run([c_logger], input=stdin.encode(), capture_output=True, check=True,
                         timeout=30).stdout.decode().splitlines(keepends=True)
    assert len(out) == len(cases)
    log = Logger("row-1")
    for (n, t), c_line in zip(cases, out, strict=True):
        py_line = log.line("db_error", {"role": "reader", "op": "read",
                                        "error": t.replace("\n", "\x0b"), "retry_in": n},
                           now=WALL)
        assert c_line.replace('"c-server"', '"python-server"') == py_line, (n, t)
