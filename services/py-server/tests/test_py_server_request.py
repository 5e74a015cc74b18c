"""The Python server's request line parser (points_server.request): pure, no sockets."""

from __future__ import annotations

import pytest

from points_server.generated.protocol import COMMAND, MAX_LINE_BYTES
from points_server.request import REQUEST_LINE, Verdict, scan, scan_eof

CMD = COMMAND.encode()
V = Verdict


@pytest.mark.parametrize(
    ("buf", "verdict"),
    [
        (CMD + b"\n", V.REQUEST),
        (CMD + b"\r\n", V.REQUEST),
        (CMD + b"\nGARBAGE\n", V.REQUEST),  # bytes after the first line are ignored
        (CMD + b"\n" + b"X" * 5000, V.REQUEST),
        (b"\n", V.UNKNOWN),  # the empty line
        (b"\r\n", V.UNKNOWN),
        (CMD + b"\r\r\n", V.UNKNOWN),  # only one \r is dropped
        (CMD + b" \n", V.UNKNOWN),
        (b" " + CMD + b"\n", V.UNKNOWN),
        (CMD.lower() + b"\n", V.UNKNOWN),
        (CMD + b"X\n", V.UNKNOWN),
        (b"REQUEST_LATEST\n", V.UNKNOWN),
        (b"\x00\xff\xfe\n", V.UNKNOWN),
        (b"", V.MORE),
        (b"REQUEST_LAT", V.MORE),  # a partial command
        (CMD + b"X", V.MORE),  # not the command any more, no terminator yet
        (CMD, V.GRACE),  # the seed's C client: no terminator
        (CMD + b"\r", V.GRACE),
    ],
)
def test_scan(buf: bytes, verdict: Verdict) -> None:
    assert scan(buf) is verdict


def test_request_line_constant() -> None:
    assert REQUEST_LINE == b"REQUEST_LATEST_POINTS\n"
    assert scan(REQUEST_LINE) is V.REQUEST


def test_line_of_max_length_is_a_line() -> None:
    assert scan(b"A" * MAX_LINE_BYTES + b"\n") is V.UNKNOWN
    assert scan(b"A" * MAX_LINE_BYTES + b"\r\n") is V.UNKNOWN
    assert scan(b"A" * MAX_LINE_BYTES) is V.MORE


def test_over_long_is_refused_at_the_1025th_byte() -> None:
    assert scan(b"A" * (MAX_LINE_BYTES + 1)) is V.TOO_LONG
    assert scan(b"A" * (MAX_LINE_BYTES + 1) + b"\n") is V.TOO_LONG
    assert scan(b"A" * 4096) is V.TOO_LONG
    assert scan(b"A" * (1 << 20) + b"\n") is V.TOO_LONG


def test_carriage_return_at_the_1025th_byte_may_still_end_a_line() -> None:
    assert scan(b"A" * MAX_LINE_BYTES + b"\r") is V.MORE
    assert scan(b"A" * MAX_LINE_BYTES + b"\rB") is V.TOO_LONG
    assert scan(b"A" * MAX_LINE_BYTES + b"\r\r") is V.TOO_LONG


def test_byte_at_a_time_reaches_the_request() -> None:
    buf = b""
    for byte in REQUEST_LINE[:-1]:
        buf += bytes([byte])
        assert scan(buf) in (V.MORE, V.GRACE)
    assert scan(buf + b"\n") is V.REQUEST


@pytest.mark.parametrize(
    ("buf", "verdict"),
    [
        (b"", V.EMPTY),  # connect, then close: nothing to answer
        (CMD, V.REQUEST),  # no terminator, then half-close
        (CMD + b"\r", V.REQUEST),
        (b"HELLO", V.UNKNOWN),  # the partial line is the line
        (b"REQUEST_LAT", V.UNKNOWN),
        (CMD + b"\n", V.REQUEST),
        (b"X\n", V.UNKNOWN),
        (b"A" * MAX_LINE_BYTES + b"\r", V.UNKNOWN),
        (b"A" * 5000, V.TOO_LONG),
    ],
)
def test_scan_eof(buf: bytes, verdict: Verdict) -> None:
    assert scan_eof(buf) is verdict


def test_error_verdicts_name_protocol_error_codes() -> None:
    from points_server.generated.protocol import ERRORS

    assert V.UNKNOWN.value in ERRORS and V.TOO_LONG.value in ERRORS
