"""Fuzz target (differential): the Python client's judgement of what a server sent
(clients/py-client/src/points_client/cli.py, judge) against the C reply checks every C program
uses (protocol/c/pts_reply.c): the same lines are replies, the same are error lines with the
same code; judge never raises."""

from __future__ import annotations

import locale
import sys

import atheris

with atheris.instrument_imports():
    from points_client.cli import Outcome, judge
    from points_client.generated.protocol import ERROR_PREFIX, ERRORS

from common import c_library

# The C programs never call setlocale: their regexec runs in the "C" locale, where any byte but
# the excluded ones matches a field. Python set LC_CTYPE from the environment (C.UTF-8), in which
# glibc's regex rejects bytes that are not UTF-8: the C checker is run as in its programs.
locale.setlocale(locale.LC_CTYPE, "C")
C = c_library()
CODES = list(ERRORS)  # protocol.toml's order: pts_error_code's


def test_one_input(data: bytes) -> None:
    attempt = judge(data, "eof", 5.0)
    nl = data.find(b"\n")
    if nl < 0:
        if attempt.outcome is Outcome.REPLY:
            raise AssertionError(f"{data!r}: a reply without a newline")
        return
    text = data[:nl]
    if text.endswith(b"\r"):
        text = text[:-1]
    buf = text + b"\0"  # as the C callers hold it (pts_reply.h)
    c_error = C.pts_reply_error(buf, len(text))
    c_reply = C.pts_reply_shape_ok(buf, len(text)) == 1 and c_error == -1
    if (attempt.outcome is Outcome.REPLY) != c_reply:
        raise AssertionError(f"{text!r}: Python {attempt.outcome}, C reply {c_reply}")
    if c_error >= 0:
        if not text.startswith(ERROR_PREFIX.encode()):
            raise AssertionError(f"{text!r}: C sees an error line, Python does not")
        known = c_error < len(CODES)
        retry = known and ERRORS[CODES[c_error]].retryable
        want = Outcome.RETRY if retry else Outcome.FATAL
        if attempt.outcome is not want:
            raise AssertionError(f"{text!r}: C code {c_error}, Python {attempt.outcome}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
