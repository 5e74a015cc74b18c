"""Fuzz target (differential): the Python server's request scanner
(services/py-server/src/points_server/request.py) against the C server's
(services/c-server/src/request.c), on every prefix a connection can hold, open and at EOF: the
same verdict for every byte stream. enum verdict's order is Verdict's."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from points_server.request import Verdict, scan, scan_eof

from common import c_library

C = c_library()
VERDICTS = list(Verdict)
CAP = 1024 + 2  # REQUEST_BUF_CAP: MAX_LINE_BYTES + 2


def test_one_input(data: bytes) -> None:
    held = data[:CAP]
    for n in range(len(held) + 1):
        prefix = held[:n]
        py, c = scan(prefix), VERDICTS[C.request_scan(prefix, n)]
        if py is not c:
            raise AssertionError(f"{prefix!r}: Python {py}, C {c}")
        py_eof, c_eof = scan_eof(prefix), VERDICTS[C.request_scan_eof(prefix, n)]
        if py_eof is not c_eof:
            raise AssertionError(f"{prefix!r} at EOF: Python {py_eof}, C {c_eof}")
        if py not in (Verdict.MORE, Verdict.GRACE):
            break


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
