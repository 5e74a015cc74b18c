"""Fuzz target: the Python server's health HTTP handler
(services/py-server/src/points_server/health.py) fed any request, as the health port would
read it: the answer is one HTTP/1.0 response with a status the server uses, never an
exception. The handler runs unchanged over in-memory files instead of a socket."""

from __future__ import annotations

import io
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["http", "points_server"]):
    from points_server.health import _make_handler

STATUSES = (b"200", b"400", b"404", b"405", b"408", b"414", b"431", b"501", b"503", b"505")

Base = _make_handler(lambda: "", lambda: True, lambda: b"# metrics\n")


class Handler(Base):  # type: ignore[misc,valid-type]
    def __init__(self, data: bytes) -> None:  # no socket, no server: setup() below
        self._data = data
        super().__init__(None, ("127.0.0.1", 1), None)

    def setup(self) -> None:
        self.rfile = io.BytesIO(self._data)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        pass


def test_one_input(data: bytes) -> None:
    h = Handler(data[:65536])
    out = h.wfile.getvalue()
    if not out:
        return  # nothing to answer (an empty or dropped request line), as the C server
    if not out.startswith(b"HTTP/1.0 ") or out[9:12] not in STATUSES:
        raise AssertionError(f"{data[:200]!r}: answered {out[:80]!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
