"""The request line parser (design.md section 1.2). Pure functions of the bytes received so far.

* A line ends at ``\\n``; one ``\\r`` directly before it is dropped. The first line is the
  request; bytes after it are ignored.
* The line ``REQUEST_LATEST_POINTS`` is a request; any other line is an unknown command.
* A line longer than ``MAX_LINE_BYTES`` (``\\r`` excluded) is refused as soon as that is certain:
  at the 1025th byte without ``\\n``, unless that byte is the ``\\r`` of a 1024-byte line.
* A buffer holding exactly the command (optionally plus one ``\\r``) is a request waiting only
  for its terminator: after a short grace period or at EOF it is answered anyway.
* At EOF a partial line is the line; an empty buffer means the client left without asking.
"""

from __future__ import annotations

from enum import Enum

from .generated.protocol import COMMAND, MAX_LINE_BYTES

COMMAND_BYTES = COMMAND.encode("ascii")
REQUEST_LINE = COMMAND_BYTES + b"\n"
_COMMAND_CR = COMMAND_BYTES + b"\r"


class Verdict(Enum):
    MORE = "more"  # keep reading
    GRACE = "grace"  # the complete command without terminator: answer after a pause or EOF
    REQUEST = "request"  # a complete, valid request
    UNKNOWN = "unknown-command"
    TOO_LONG = "line-too-long"
    EMPTY = "empty"  # EOF before any byte: close quietly


def scan(buf: bytes) -> Verdict:
    """Verdict on the bytes received so far (connection still open)."""
    newline = buf.find(b"\n", 0, MAX_LINE_BYTES + 2)
    if newline >= 0:
        end = newline - 1 if newline and buf[newline - 1] == 0x0D else newline
        if end > MAX_LINE_BYTES:
            return Verdict.TOO_LONG
        return Verdict.REQUEST if buf[:end] == COMMAND_BYTES else Verdict.UNKNOWN
    size = len(buf)
    if size > MAX_LINE_BYTES + 1 or (size == MAX_LINE_BYTES + 1 and buf[-1] != 0x0D):
        return Verdict.TOO_LONG
    if buf in (COMMAND_BYTES, _COMMAND_CR):
        return Verdict.GRACE
    return Verdict.MORE


def scan_eof(buf: bytes) -> Verdict:
    """Verdict when the peer has half-closed after sending ``buf``."""
    if not buf:
        return Verdict.EMPTY
    verdict = scan(buf)
    if verdict is Verdict.MORE:
        return Verdict.UNKNOWN  # the partial line is the line, and it is not the command
    if verdict is Verdict.GRACE:
        return Verdict.REQUEST
    return verdict
