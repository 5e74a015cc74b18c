"""Shared by the Python fuzz targets (atheris, libFuzzer's engine for Python): the C parsers
loaded with ctypes from fuzz/build/libpts.so (built by fuzz/Makefile, no sanitizer) for the
differential targets."""

from __future__ import annotations

import ctypes
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "build" / "libpts.so"


def c_library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(LIB))
    lib.request_scan.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.request_scan_eof.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.pts_reply_shape_ok.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.pts_reply_error.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib
