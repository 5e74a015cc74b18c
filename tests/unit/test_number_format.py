"""The two servers write every /metrics number alike: the C server's format_float against the
Python server's (prometheus_client's floatToGoString), over edge values and bounded random
doubles of every magnitude. Before, C wrote 10 as "1e+01" where Python wrote "10.0"."""

from __future__ import annotations

import math
import random
import struct
import subprocess

import pytest
from prometheus_client.utils import floatToGoString
from testhelpers import compile_c

EDGES = [0.0, -0.0, 1.0, 10.0, 100.0, 0.1, 0.5, 2.5, 0.0005, 1e-4, 1e-5, 1e-7, 123456.0,
         999999.0, 1e6, 1234567.0, 12345678.0, 1e15, 1e16, 1.5e16, 1e22, 2**53, 2**63,
         9.0123, 0.30000000000000004, 5e-324, 1.7976931348623157e308, -1.0, -12345678.0,
         math.inf, -math.inf, 3.0e7, 10.5, 1000000.5]


@pytest.fixture(scope="module")
def formatter(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(tmp_path_factory.mktemp("fmt") / "format_float",
                     ["services/c-server/tests/drivers/format_float.c",
                      "services/c-server/src/metrics.c", "protocol/generated/points_protocol.c"],
                     ["services/c-server/src", "protocol/generated"])


def random_doubles(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    out: list[float] = []
    while len(out) < count:
        d = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(d):
            out.append(d)
        out.append(float(rng.randrange(0, 10**rng.randrange(1, 19))))  # counts of all sizes
        out.append(rng.randrange(0, 10**6) / 10 ** rng.randrange(0, 8))  # short decimals
    return out


def test_c_formats_numbers_as_python_does(formatter: str) -> None:
    values = [float(v) for v in EDGES] + random_doubles(seed=7, count=2000)
    text = "".join(f"{v.hex()}\n" for v in values)
    out = subprocess.run([formatter], input=text, capture_output=True, text=True, check=True,
                         timeout=30).stdout.splitlines()
    assert len(out) == len(values)
    for v, c in zip(values, out, strict=True):
        assert c == floatToGoString(v), v.hex()
