"""Every program checks a reply the same way: the C check (protocol/c/pts_reply.c, the C client
and load generator) against the Python one (REPLY_RE, rendered from the same toml fields: the
Python client and the tools' pointsmesh.spec.reply_regex), over valid replies and bounded random
mutations of them."""

from __future__ import annotations

import random
import re
import subprocess

import pytest
from testhelpers import compile_c

from points_client.generated.protocol import ERRORS, REPLY_RE
from pointsmesh.spec import load_protocol, reply_regex

GOOD = [
    b"User: c_user-azmeer, Points: 42, Last Update: 2026-01-05 10:00:00",
    b"User: u, Points: -3, Last Update: 0000-00-00 00:00:00",
    b"User: " + b"x" * 50 + b", Points: 12345678901234567890, Last Update: 2026-01-05 10:00:00",
    "User: é, Points: 0, Last Update: 2026-01-05 10:00:00".encode(),
]
BAD = [
    b"",
    b"User: , Points: 1, Last Update: 2026-01-05 10:00:00",
    b"User: u, Points: x, Last Update: 2026-01-05 10:00:00",
    b"User: u, Points: 1, Last Update: 2026-01-05 10:00",
    b"User: " + b"x" * 51 + b", Points: 1, Last Update: 2026-01-05 10:00:00",
    b"User: a,b, Points: 1, Last Update: 2026-01-05 10:00:00",
    b"User: u, Points: 1, Last Update: 2026-01-05 10:00:00 ",
    b"User: u\x00, Points: 1, Last Update: 2026-01-05 10:00:00",
    b"user: u, Points: 1, Last Update: 2026-01-05 10:00:00",
    b"User: u, Points: 123456789012345678901, Last Update: 2026-01-05 10:00:00",
]
ERROR_LINES = [e.line.rstrip(b"\n") for e in ERRORS.values()] + [
    b"ERROR no-such-code something", b"ERROR", b"ERRORx", b"ERROR server-busy"]


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(tmp_path_factory.mktemp("reply") / "reply_check",
                     ["protocol/tests/reply_check.c", "protocol/c/pts_reply.c",
                      "protocol/generated/points_protocol.c"],
                     ["protocol/generated", "protocol/c"])


def c_verdicts(exe: str, lines: list[bytes]) -> list[tuple[bool, int]]:
    out = subprocess.run([exe], input=b"".join(x + b"\n" for x in lines), capture_output=True,
                         check=True, timeout=30).stdout.decode().split("\n")
    return [(a == "1", int(b)) for a, b in (v.split() for v in out if v)]


def py_error(line: bytes) -> int:
    """The Python client's reading of an error line, as pts_reply_error's index."""
    if not line.startswith(b"ERROR "):
        return -1
    code = re.split(rb"[ \r]", line[6:], maxsplit=1)[0].decode(errors="replace")
    return list(ERRORS).index(code) if code in ERRORS else len(ERRORS)


def mutations(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = b"0123456789-:, Ux\x00\r\xc3\xa9"
    out = []
    for _ in range(count):
        line = bytearray(rng.choice(GOOD))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(line) + 1)
            op = rng.randrange(3)
            if op == 0 and pos < len(line):
                del line[pos]
            elif op == 1:
                line.insert(pos, rng.choice(alphabet))
            elif pos < len(line):
                line[pos] = rng.choice(alphabet)
        out.append(bytes(line).replace(b"\n", b""))
    return out


def test_c_and_python_accept_the_same_replies(checker: str) -> None:
    lines = GOOD + BAD + ERROR_LINES + mutations(seed=10, count=3000)
    c = c_verdicts(checker, lines)
    assert len(c) == len(lines)
    tools_re = re.compile(reply_regex(load_protocol().reply_format.rstrip("\n")))
    for line, (c_ok, c_err) in zip(lines, c, strict=True):
        py_ok = REPLY_RE.fullmatch(line) is not None
        assert c_ok == py_ok, line
        text = line.decode("utf-8", "surrogateescape")
        assert (tools_re.fullmatch(text) is not None) == py_ok or not line.isascii(), line
        assert c_err == py_error(line), line
    verdicts = dict(zip(lines, c, strict=True))
    assert all(verdicts[g][0] for g in GOOD)
    assert not any(verdicts[b][0] for b in BAD)
    assert sum(ok for ok, _ in c) > len(GOOD)  # some mutations stay valid (digits for digits)
