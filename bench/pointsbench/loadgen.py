"""The project's load generator for the points protocol (loopback only).

Each request is one fresh TCP connection, as the project's clients do: connect, send the request
line, read until the server closes. Latency runs from the start of connect to EOF. A reply counts
as good only when it matches the reply format of protocol.toml; anything else is an error,
counted by kind: "refused", "reset", "timeout", "ERROR <code>", "bad-reply", or an errno name.

Two generators do the same thing: the C one (bench/loadgen.c, built by `make -C bench`: one
epoll loop per process, the default) and this module's Python one (asyncio in each process),
kept for comparison. Only the C one speaks TLS (--tls-ca: a full handshake per connection, or
with --tls-resume each user's previous session offered). The total concurrency is split over
several worker processes. Every run is bounded: a warm-up, a fixed measuring window, and a drain
of at most the request timeout. Requests that *start* inside the window are counted.

    python -m pointsbench.loadgen --port 5001 -c 64 -d 5 [--generator c|python] [--generators 2]
                                  [--tls-ca FILE [--tls-name NAME] [--tls-resume]] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import json
import math
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pointsmesh import ROOT
from pointsmesh.spec import load_protocol
from pointsmesh.spec import reply_regex as spec_reply_regex

READ_CAP = 4096
START_GRACE = 0.2  # seconds between "all workers ready" and the first request
C_START_GRACE = 0.05  # the same for the C generator: exec and fork take milliseconds
LOADGEN_C = ROOT / "bench/build/loadgen"
GENERATORS = ("c", "python")
TLS_MODES = ("off", "full", "resume")


def reply_regex(reply_format: str | None = None) -> str:
    """A regex (text) matching exactly one reply line, built from protocol.toml's format."""
    fmt = reply_format if reply_format is not None else load_protocol().reply_format
    return spec_reply_regex(fmt)


def request_bytes() -> bytes:
    return (load_protocol().command + "\n").encode()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    """What one run measured (merged over the worker processes)."""

    host: str
    port: int
    concurrency: int
    generators: int  # processes
    duration: float
    generator: str = "python"  # which implementation: "c" or "python"
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    rps: float = 0.0
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    mean_ms: float = math.nan
    generator_cpu: float = math.nan  # CPU cores the generator processes kept busy on average
    tls: str = "off"  # "off", "full" (a full handshake per connection) or "resume"
    tls_handshakes: int = 0  # completed TLS handshakes of the requests counted
    tls_resumed: int = 0  # of them, resumed (--tls-resume)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and math.isnan(v):
                d[k] = None
        d["error_count"] = self.error_count
        return d


# -- one worker process ---------------------------------------------------------------------


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, f"errno-{exc.errno}")
    return type(exc).__name__


async def _one_request(loop: asyncio.AbstractEventLoop, family: int, addr: str, port: int,
                       request: bytes, timeout: float, good: re.Pattern[bytes]
                       ) -> tuple[str, float]:
    """One request on a fresh connection. Returns ("ok" or an error kind, latency in seconds).

    Uses the loop's socket calls rather than streams or protocols: a third less CPU per
    request, which matters when the generator shares two cores with the server under test.
    """
    t0 = time.monotonic()
    data = bytearray()
    how = "eof"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (addr, port))
            await loop.sock_sendall(sock, request)
            while True:
                chunk = await loop.sock_recv(sock, READ_CAP)
                if not chunk:
                    break
                data += chunk
                if len(data) > READ_CAP:
                    how = "too-long"
                    break
    except TimeoutError:
        how = "timeout"
    except OSError as exc:
        how = _error_kind(exc)
    finally:
        sock.close()
    latency = time.monotonic() - t0
    if how != "eof":
        return how, latency
    if good.fullmatch(data):
        return "ok", latency
    if data.startswith(b"ERROR "):
        code = bytes(data[6:]).split(b"\n", 1)[0].split(b" ", 1)[0]
        return "ERROR " + code.decode("ascii", "replace"), latency
    if not data:
        return "closed-without-reply", latency
    return "bad-reply", latency


async def _drive(family: int, addr: str, port: int, concurrency: int, timeout: float,
                 t_begin: float, t_measure: float, t_end: float, request: bytes,
                 pattern: str) -> dict:
    loop = asyncio.get_running_loop()
    good = re.compile(pattern.encode())
    ok_latencies: list[float] = []
    errors: Counter[str] = Counter()
    cpu: dict[str, float] = {}

    def snap(key: str) -> None:
        t = os.times()
        cpu[key] = t.user + t.system

    # The loop's clock is time.monotonic(): CPU time used inside the measuring window.
    loop.call_at(t_measure, snap, "start")
    loop.call_at(t_end, snap, "end")
    await asyncio.sleep(max(0.0, t_begin - time.monotonic()))

    async def user() -> None:
        while True:
            started = time.monotonic()
            if started >= t_end:
                return
            how, latency = await _one_request(loop, family, addr, port, request, timeout, good)
            if started >= t_measure:
                if how == "ok":
                    ok_latencies.append(latency)
                else:
                    errors[how] += 1
            if how != "ok" and how != "timeout":
                await asyncio.sleep(0.001)  # no busy spin against a dead or failing port

    await asyncio.gather(*(user() for _ in range(concurrency)))
    await asyncio.sleep(max(0.0, t_end - time.monotonic()) + 0.001)
    cpu_s = cpu.get("end", 0.0) - cpu.get("start", 0.0)
    return {"ok_latencies": ok_latencies, "errors": dict(errors), "cpu_s": cpu_s}


def _worker(conn, family: int, addr: str, port: int, concurrency: int, timeout: float,
            request: bytes, pattern: str) -> None:
    try:
        conn.send("ready")
        if not conn.poll(60):
            return
        t_begin, t_measure, t_end = conn.recv()
        out = asyncio.run(_drive(family, addr, port, concurrency, timeout, t_begin, t_measure,
                                 t_end, request, pattern))
        conn.send(out)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        conn.close()


# -- the run --------------------------------------------------------------------------------


def _resolve_loopback(host: str, port: int) -> tuple[int, str]:
    """(family, numeric address) of host; refuses anything that is not a loopback address."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for family, _, _, _, sockaddr in infos:
        addr = str(sockaddr[0])
        if ipaddress.ip_address(addr).is_loopback:
            return family, addr
    raise ValueError(f"{host} is not a loopback address: the load generator only targets this "
                     "machine")


def split(total: int, parts: int) -> list[int]:
    """total concurrency over at most `parts` workers, none empty."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_load(port: int, concurrency: int, duration: float = 5.0, warmup: float = 1.0,
             generators: int = 2, timeout: float = 5.0, host: str = "127.0.0.1",
             reply_format: str | None = None,
             window_hook: Callable[[str], None] | None = None,
             tls_ca: os.PathLike | str | None = None, tls_name: str | None = None,
             tls_resume: bool = False) -> LoadResult:
    """Drive host:port at `concurrency` connections in flight for warmup + duration seconds.

    window_hook, if given, is called with "start" and "end" at the edges of the measuring
    window (e.g. to sample the server's CPU time). No TLS (the tls_* arguments are refused):
    the C generator has it.
    """
    if tls_ca is not None or tls_name is not None or tls_resume:
        raise ValueError("the Python load generator does not speak TLS: use the C generator")
    if concurrency < 1 or duration <= 0 or warmup < 0 or timeout <= 0 or generators < 1:
        raise ValueError("concurrency, duration, timeout and generators must be positive")
    family, addr = _resolve_loopback(host, port)
    request = request_bytes()
    pattern = reply_regex(reply_format)
    ctx = multiprocessing.get_context("spawn")
    shares = split(concurrency, generators)
    procs, pipes = [], []
    try:
        for share in shares:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, daemon=True,
                            args=(child, family, addr, port, share, timeout, request, pattern))
            p.start()
            child.close()
            procs.append(p)
            pipes.append(parent)
        for pipe in pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RuntimeError("a load generator process did not start")
        t_begin = time.monotonic() + START_GRACE
        t_measure = t_begin + warmup
        t_end = t_measure + duration
        for pipe in pipes:
            pipe.send((t_begin, t_measure, t_end))
        if window_hook is not None:
            time.sleep(max(0.0, t_measure - time.monotonic()))
            window_hook("start")
            time.sleep(max(0.0, t_end - time.monotonic()))
            window_hook("end")
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        cpu_s = 0.0
        for pipe in pipes:
            wait = max(1.0, t_end - time.monotonic()) + timeout + 10
            if not pipe.poll(wait):
                raise RuntimeError("a load generator process did not report in time")
            out = pipe.recv()
            latencies.extend(out["ok_latencies"])
            errors.update(out["errors"])
            cpu_s += out["cpu_s"]
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        for pipe in pipes:
            pipe.close()
    latencies.sort()
    res = LoadResult(host=addr, port=port, concurrency=concurrency, generators=len(shares),
                     duration=duration, ok=len(latencies), errors=dict(sorted(errors.items())))
    res.rps = len(latencies) / duration
    res.generator_cpu = cpu_s / duration
    if latencies:
        res.p50_ms = percentile(latencies, 50) * 1000
        res.p90_ms = percentile(latencies, 90) * 1000
        res.p99_ms = percentile(latencies, 99) * 1000
        res.max_ms = latencies[-1] * 1000
        res.mean_ms = sum(latencies) / len(latencies) * 1000
    return res


def build_c_generator() -> None:
    """Build bench/build/loadgen (and the reference server) with `make -C bench`."""
    res = subprocess.run(["make", "-s", "-C", str(ROOT / "bench")], capture_output=True,
                         text=True, timeout=300)
    if res.returncode != 0 or not LOADGEN_C.exists():
        raise RuntimeError(f"cannot build bench/build/loadgen:\n{res.stdout}{res.stderr}")


def run_load_c(port: int, concurrency: int, duration: float = 5.0, warmup: float = 1.0,
               generators: int = 2, timeout: float = 5.0, host: str = "127.0.0.1",
               window_hook: Callable[[str], None] | None = None,
               binary: os.PathLike | str = LOADGEN_C,
               tls_ca: os.PathLike | str | None = None, tls_name: str | None = None,
               tls_resume: bool = False) -> LoadResult:
    """run_load with the C generator (bench/loadgen.c): same arguments, same result.

    tls_ca: over TLS, the server's certificate verified against that CA file for tls_name
    (default "localhost"); every connection does a full handshake, or with tls_resume offers
    the session of its user's previous exchange (the result counts the resumed handshakes).

    The C program starts the load at a CLOCK_MONOTONIC time given here (Python's
    time.monotonic() reads the same clock), so window_hook runs at the edges of its window.
    Raises ValueError for a target that is not a loopback address, RuntimeError when the
    generator is missing or its run failed."""
    if concurrency < 1 or duration <= 0 or warmup < 0 or timeout <= 0 or generators < 1:
        raise ValueError("concurrency, duration, timeout and generators must be positive")
    _, addr = _resolve_loopback(host, port)  # the C program checks too; fail before starting it
    if not Path(binary).exists():
        raise RuntimeError(f"{binary} is not built (make -C bench)")
    t_begin = time.monotonic() + C_START_GRACE
    t_measure = t_begin + warmup
    t_end = t_measure + duration
    cmd = [str(binary), "--host", addr, "--port", str(port), "--concurrency", str(concurrency),
           "--procs", str(generators), "--duration", repr(duration), "--warmup", repr(warmup),
           "--timeout", repr(timeout), "--begin", f"{t_begin:.6f}"]
    if tls_ca is not None:
        cmd += ["--tls-ca", str(tls_ca)]
        if tls_name is not None:
            cmd += ["--tls-name", tls_name]
        if tls_resume:
            cmd.append("--tls-resume")
    elif tls_name is not None or tls_resume:
        raise ValueError("tls_name and tls_resume need tls_ca")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if window_hook is not None:
            time.sleep(max(0.0, t_measure - time.monotonic()))
            window_hook("start")
            time.sleep(max(0.0, t_end - time.monotonic()))
            window_hook("end")
        # The program bounds itself (drain <= timeout, a stuck process killed 5 s later).
        out, err = proc.communicate(timeout=max(0.0, t_end - time.monotonic()) + timeout + 15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("the C load generator did not finish in time") from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode == 2:
        raise ValueError(err.strip())
    if proc.returncode != 0:
        raise RuntimeError(f"the C load generator failed ({proc.returncode}): {err.strip()}")
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"the C load generator printed no JSON: {out[:200]!r}") from exc
    nan = math.nan
    return LoadResult(
        host=data["host"], port=data["port"], concurrency=data["concurrency"],
        generators=data["generators"], duration=data["duration"], generator="c",
        ok=data["ok"], errors=dict(sorted(data["errors"].items())), rps=data["rps"],
        tls=data["tls"], tls_handshakes=data["tls_handshakes"], tls_resumed=data["tls_resumed"],
        **{k: nan if data[k] is None else data[k]
           for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "generator_cpu")})


def load(generator: str, port: int, concurrency: int, **kw) -> LoadResult:
    """run_load_c or run_load by name ("c" or "python")."""
    if generator == "c":
        return run_load_c(port, concurrency, **kw)
    if generator == "python":
        return run_load(port, concurrency, **kw)
    raise ValueError(f"unknown generator {generator!r} (one of {', '.join(GENERATORS)})")


def format_result(r: LoadResult) -> str:
    errs = ", ".join(f"{k}={v}" for k, v in r.errors.items()) or "none"
    tls = "" if r.tls == "off" else (
        f"TLS {r.tls}, {r.tls_resumed:,} of {r.tls_handshakes:,} handshakes resumed; ")
    return (f"{r.host}:{r.port} c={r.concurrency} ({r.generator} generator, {r.generators} proc): "
            f"{tls}{r.rps:,.0f} req/s, "
            f"p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, max {r.max_ms:.1f} ms, "
            f"errors: {errs}; generator CPU {r.generator_cpu:.2f} cores")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-c", "--concurrency", type=int, default=16)
    ap.add_argument("-d", "--duration", type=float, default=5.0, help="measuring seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    ap.add_argument("--generator", choices=GENERATORS, default="c",
                    help="c (bench/loadgen.c, built with make -C bench) or python (default c)")
    ap.add_argument("--generators", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    ap.add_argument("--tls-ca", type=Path, default=None, metavar="FILE",
                    help="over TLS: verify the server's certificate against this CA (C "
                    "generator only)")
    ap.add_argument("--tls-name", default=None,
                    help="the name the certificate must hold (default localhost)")
    ap.add_argument("--tls-resume", action="store_true",
                    help="offer each user's previous TLS session (default: full handshakes)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if args.tls_ca is None and (args.tls_name is not None or args.tls_resume):
        ap.error("--tls-name and --tls-resume need --tls-ca")
    if args.tls_ca is not None and args.generator != "c":
        ap.error("--tls-ca: the Python generator does not speak TLS (use --generator c)")
    tls = {"tls_ca": args.tls_ca, "tls_name": args.tls_name, "tls_resume": args.tls_resume} if (
        args.tls_ca is not None) else {}
    try:
        if args.generator == "c" and not LOADGEN_C.exists():
            build_c_generator()
        res = load(args.generator, args.port, args.concurrency, duration=args.duration,
                   warmup=args.warmup, generators=args.generators, timeout=args.timeout,
                   host=args.host, **tls)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(res.to_json(), indent=2) if args.json else format_result(res))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
