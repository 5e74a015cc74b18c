"""`make bench`: load-test each server next to a no-database reference, in one run.

Starts a private MariaDB or MySQL (pointsmesh.devdb), the reference server (bench/refserver.c:
constant reply, no database, the same close sequence as the real servers), one C server and one
Python server owning real rows, then drives each with a load generator (a fresh connection per
request, several processes; the C one, bench/loadgen.c, by default, so that the generator is not
the limit; `--generator python` for pointsbench.loadgen's) at each concurrency level, interleaved
(reference, C, Python at one level, then the next level) so that a noisy machine hurts all three
alike. Prints one table and the targets, writes the results as JSON, and stops everything it
started.

Per run it reports req/s, p50/p99 latency, and the server's CPU time per request (its user +
system time over the measuring window / the requests answered in it) with its ratio to the
reference's at the same level: a measure of the server's own cost that does not depend on how
fast the generator or the machine is.

Targets (at concurrency 64): no error of any kind (refused and timed-out connections included);
p99 < 10 ms; CPU per request within 1.2x the reference's (C) and 2.5x (Python); resident memory
after the run no higher than before the refactor of issue 10. They are reported, not asserted:
the exit status is non-zero only when the benchmark itself could not run (a server missing or
failing to start).

    python -m pointsbench [--duration 5] [--concurrency 1,16,64] [--servers ref,c,python]
                          [--generator c|python] [--generators 2] [--rounds 1]
                          [--tls off|full|resume] [--server-root DIR] [--json out/bench.json]

`--tls full` or `--tls resume` runs the C and Python servers over TLS (a CA and a certificate
for localhost made for the run with pointsmesh.certs; TLS_CERT_FILE and TLS_KEY_FILE), driven by
the C generator with a full handshake per connection, or with each generator user resuming the
TLS session of its previous connection. The reference (and the seed design) has no TLS and stays
plaintext: "% ref" and "x ref" then compare a TLS server with a plaintext reference, and the
table says so; the CPU-per-request and memory targets, set for plaintext, are shown but not
judged.

`--servers ref,c,python,seed` adds a baseline: the seed's Python server design (one client at
a time, a new database connection per request; bench/seed_server.py). `--server-root DIR` runs
the C and Python servers of another checkout (e.g. a git worktree of an older commit, built with
`make build` there), with this checkout's reference and generator: before and after a change,
measured the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pointsmesh import ROOT, certs
from pointsmesh.devdb import DevDB, DevDBError, free_port
from pointsmesh.procs import ServerProc, base_env, exchange, mem_kib, port_open
from pointsmesh.tlsclient import client_context

from .loadgen import GENERATORS, LOADGEN_C, TLS_MODES, LoadResult, load, reply_regex

REFSERVER = ROOT / "bench/build/refserver"
# Where a checkout keeps its servers (as procs.C_SERVER and the points_server package).
C_SERVER_PATH = Path("services/c-server/build/c-server")
PY_SERVER_SRC = Path("services/py-server/src")
SEED_SERVER = ROOT / "bench/seed_server.py"
ALL_SERVERS = ("ref", "c", "python", "seed")
DEFAULT_SERVERS = ("ref", "c", "python")
ROWS = {"c": "c_user-azmeer", "python": "python_user-azmeer", "seed": "python_user-azmeer"}
LABELS = {"ref": "reference (no DB)", "c": "C server", "python": "Python server",
          "seed": "seed design (Py)"}
TLS_SERVERS = ("c", "python")  # the servers that speak TLS with --tls (not ref, not seed)

TARGET_CONCURRENCY = 64
MAX_P99_MS = 10.0
# Server CPU time per request, as a multiple of the reference's at the same level (issue 10;
# measured before it: C 1.25-1.55x, Python 2.5-3x).
MAX_CPU_RATIO = {"c": 1.2, "python": 2.5}
STEAL_NOTE = 0.05  # a run with more CPU steal than this is flagged as noisy
# Resident memory after the run, "as before the refactor of issue 10 or lower": what the servers
# of commit 5d0b57d used after the run on this project's 2-core machine (C 6.6-6.8 MB, Python
# 29.7-29.8 MB), plus the run-to-run noise seen there (0.2 MB).
MAX_RSS_MB = {"c": 7.0, "python": 30.0}


class BenchError(RuntimeError):
    """The benchmark itself could not run."""


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)


def _steal_and_total() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat: time the hypervisor gave away."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    if len(values) < 8:
        return None
    return values[7], sum(values)


def _loadavg() -> list[float]:
    with contextlib.suppress(OSError):
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    return []


# -- the servers under test ----------------------------------------------------------------


@dataclass
class Target:
    """One server under test: the reference (a bare process) or a ServerProc."""

    name: str
    port: int = 0
    proc: subprocess.Popen | None = None
    server: ServerProc | None = None
    note: str = ""
    tls: bool = False  # spoken to over TLS

    @property
    def pid(self) -> int | None:
        if self.server is not None and self.server.proc is not None:
            return self.server.proc.pid
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        p = self.server.proc if self.server is not None else self.proc
        return p is not None and p.poll() is None

    def mem_kib(self) -> tuple[int, int]:
        pid = self.pid
        return mem_kib(pid) if pid is not None and self.alive() else (0, 0)

    def counters(self) -> dict[str, float]:
        """points_requests_total and points_db_reads_total from /metrics (empty if none)."""
        if self.server is None or not self.alive():
            return {}
        try:
            m = self.server.metrics()
        except (OSError, RuntimeError):
            return {}
        return {k: v for k, v in m.items()
                if k in ("points_requests_total", "points_db_reads_total")}

    def stop(self) -> None:
        if self.server is not None:
            try:
                self.server.stop(timeout=20)
            except TimeoutError as exc:
                self.note = str(exc)
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None


@dataclass
class RootedServer(ServerProc):
    """A ServerProc from a given checkout: its C binary, or its points_server package first on
    PYTHONPATH (procs.ServerProc only runs this checkout's). root=ROOT is this checkout."""

    root: Path = ROOT

    def command(self) -> list[str]:
        if self.kind == "c":
            return [str(self.root / C_SERVER_PATH)]
        if self.kind == "python":
            return [sys.executable, "-m", "points_server"]
        raise ValueError(f"no {self.kind!r} server in a checkout")

    def full_env(self) -> dict[str, str]:
        env = super().full_env()
        if self.kind == "python":
            env["PYTHONPATH"] = _python_path(self.root, env.get("PYTHONPATH"))
        return env

    def workdir(self) -> Path:
        return self.root


def _python_path(root: Path, current: str | None) -> str:
    """PYTHONPATH with root's points_server first: ahead of the .venv's own (an editable
    install of this checkout, found through a .pth file, which PYTHONPATH precedes)."""
    return os.pathsep.join(p for p in (str(root / PY_SERVER_SRC), current) if p)


def _checkout_commit(root: Path) -> str | None:
    """The short commit of a checkout, None when it is no git work tree."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=30)
        if res.returncode == 0:
            return res.stdout.strip()
    return None


def _answered(res: LoadResult) -> int:
    """Requests the server answered with a line: good replies, error lines, bad replies (not
    refused, reset or timed-out connections, which cost it little or nothing)."""
    return res.ok + sum(v for k, v in res.errors.items()
                        if k.startswith("ERROR ") or k in ("bad-reply", "too-long"))


@dataclass
class Row:
    server: str
    result: LoadResult
    share: float | None = None  # of the reference at the same concurrency
    rss_kib: int = 0
    hwm_kib: int = 0
    alive: bool = True
    db_reads: float | None = None
    replies: float | None = None
    server_cpu: float | None = None  # cores the server kept busy during the window
    cpu_us_per_req: float | None = None  # server CPU time per answered request, microseconds
    cpu_ratio: float | None = None  # cpu_us_per_req / the reference's at the same level
    db_cpu: float | None = None  # cores the database kept busy during the window
    steal: float | None = None  # share of all CPU time the hypervisor took during the window
    rounds: list[dict] = field(default_factory=list)  # every round when --rounds > 1

    def to_json(self) -> dict:
        return {
            "server": self.server,
            **self.result.to_json(),
            "share_of_reference": self.share,
            "rss_kib_after": self.rss_kib,
            "peak_rss_kib": self.hwm_kib,
            "alive_after": self.alive,
            "server_replies": self.replies,
            "server_db_reads": self.db_reads,
            "server_cpu_cores": self.server_cpu,
            "server_cpu_us_per_request": self.cpu_us_per_req,
            "cpu_per_request_vs_reference": self.cpu_ratio,
            "db_cpu_cores": self.db_cpu,
            "cpu_steal_share": self.steal,
            "rounds": self.rounds,
        }


@dataclass
class Verdict:
    server: str
    what: str
    passed: bool | None  # None: not measured
    detail: str


@dataclass
class Bench:
    servers: list[str]
    concurrency: list[int]
    duration: float
    warmup: float
    generators: int
    timeout: float
    pause: float
    rounds: int
    update_interval: str | None
    keep: bool
    generator: str = "c"
    server_root: Path = ROOT
    tls: str = "off"  # TLS_MODES: off, full (a full handshake per connection), resume
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pointsmesh-bench-")))
    db: DevDB | None = None
    tls_files: dict[str, Path] = field(default_factory=dict)  # ca.crt, server.crt, server.key
    targets: dict[str, Target] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    # -- start and stop ---------------------------------------------------------------------

    def build_bench(self) -> None:
        """bench/build/refserver and bench/build/loadgen (make -C bench; up to date: a no-op)."""
        res = subprocess.run(["make", "-s", "-C", str(ROOT / "bench")], capture_output=True,
                             text=True, timeout=300)
        if res.returncode != 0 or not REFSERVER.exists() or not LOADGEN_C.exists():
            raise BenchError(f"cannot build bench/ (make -C bench):\n{res.stdout}{res.stderr}")

    def start_plain(self, kind: str, cmd: list[str], env: dict[str, str] | None,
                    port: int, timeout: float) -> None:
        """A server without health port (the reference, the seed design): up when it listens."""
        log_path = self.base / f"{kind}-server.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        self.targets[kind] = Target(kind, port=port, proc=proc)
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the {LABELS[kind]} did not start; see {log_path}")
            time.sleep(0.05)

    def start_ref(self) -> None:
        port = free_port()
        self.start_plain("ref", [str(REFSERVER), str(port), "127.0.0.1"], None, port, 10)

    def start_seed(self) -> None:
        """The seed's one-client-at-a-time Python server (bench/seed_server.py)."""
        assert self.db is not None
        port = free_port()
        env = {**base_env(), **self.db.env(), "SERVER_HOST": "127.0.0.1",
               "SERVER_PORT": str(port), "SERVER_USER": ROWS["seed"]}
        self.start_plain("seed", [sys.executable, str(SEED_SERVER)], env, port, 30)

    def start_db(self) -> None:
        db = DevDB(self.base / "db")
        print(f"starting a private {db.label} ...", flush=True)
        try:
            self.db = db.start()
        except DevDBError as exc:
            db.kill()
            raise BenchError(f"cannot start the private {db.label}: {exc}") from exc

    def start_server(self, kind: str) -> None:
        assert self.db is not None
        env = {**self.db.env(), "SERVER_USER": ROWS[kind], "LOG_LEVEL": "info"}
        if self.update_interval is not None:
            env["UPDATE_INTERVAL"] = self.update_interval
        tls = self.tls != "off" and kind in TLS_SERVERS
        if tls:
            env["TLS_CERT_FILE"] = str(self.tls_files["server.crt"])
            env["TLS_KEY_FILE"] = str(self.tls_files["server.key"])
        server = RootedServer(kind, env, self.base / "logs", name=f"{kind}-server",
                              root=self.server_root,
                              tls=client_context(str(self.tls_files["ca.crt"])) if tls else None)
        self.targets[kind] = Target(kind, port=server.port, server=server, tls=tls)
        try:
            server.start(wait="ready", timeout=60)
        except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
            with_tls = (" with TLS (TLS_CERT_FILE, TLS_KEY_FILE set): does this server "
                        "support TLS?") if tls else ""
            raise BenchError(f"the {LABELS[kind]} did not start{with_tls}\n{exc}") from exc
        # A start that lost its harness-chosen port to another socket ran on new ports.
        self.targets[kind].port = server.port

    def available(self, kind: str) -> str | None:
        """None when the server can be started, else why not."""
        root = self.server_root
        if kind == "c":
            path = root / C_SERVER_PATH
            return None if path.exists() else f"{path} is not built (make build there)"
        if kind == "python":
            env = {**os.environ, "PYTHONPATH": _python_path(root, os.environ.get("PYTHONPATH"))}
            res = subprocess.run(
                [sys.executable, "-c", "import points_server; print(points_server.__file__)"],
                env=env, cwd=root, capture_output=True, text=True, timeout=60)
            if res.returncode != 0:
                return "the points_server package cannot be imported"
            found = Path(res.stdout.strip()).resolve()
            if not found.is_relative_to((root / PY_SERVER_SRC).resolve()):
                return f"points_server is imported from {found}, not from {root / PY_SERVER_SRC}"
        return None

    def start(self) -> None:
        for kind in self.servers:
            why = self.available(kind)
            if why is not None:
                self.skipped.append(kind)
                self.problems.append(f"{LABELS[kind]}: skipped, {why}")
        runnable = [k for k in self.servers if k not in self.skipped]
        self.build_bench()
        if self.tls != "off" and any(k in TLS_SERVERS for k in runnable):
            # a CA and a certificate for localhost and 127.0.0.1, for this run only
            self.tls_files = certs.make_set(self.base / "tls", ["localhost"])
        if "ref" in runnable:
            self.start_ref()
        if any(k in ROWS for k in runnable):
            self.start_db()
        for kind in runnable:
            if kind in ("c", "python"):
                print(f"starting the {LABELS[kind]} ...", flush=True)
                self.start_server(kind)
            elif kind == "seed":
                self.start_seed()
        pattern = re.compile(reply_regex().encode())
        for kind, t in self.targets.items():
            tls = t.server.tls if t.server is not None and t.tls else None
            try:
                reply = exchange(t.port, timeout=10, tls=tls)
            except OSError as exc:  # ssl.SSLError included
                raise BenchError(f"the {LABELS[kind]} did not answer a request: {exc}") from exc
            if not pattern.fullmatch(reply):
                raise BenchError(f"the {LABELS[kind]} answered {reply[:200]!r}")

    def stop(self) -> None:
        for t in self.targets.values():
            t.stop()
        if self.db is not None:
            self.db.stop()
        if self.keep:
            print(f"kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- measuring -------------------------------------------------------------------------

    def run_one(self, kind: str, c: int) -> Row:
        t = self.targets[kind]
        pid = t.pid
        cpu: dict[str, float | None] = {}
        steal: dict[str, tuple[int, int] | None] = {}

        db_pid = self.db.proc.pid if self.db is not None and self.db.proc is not None else None

        def hook(phase: str) -> None:
            cpu[phase] = _cpu_seconds(pid) if pid is not None else None
            cpu["db-" + phase] = _cpu_seconds(db_pid) if db_pid is not None else None
            steal[phase] = _steal_and_total()

        before = t.counters()
        tls: dict = {}
        if t.tls:
            tls = {"tls_ca": self.tls_files["ca.crt"], "tls_resume": self.tls == "resume"}
        try:
            res = load(self.generator, t.port, c, duration=self.duration, warmup=self.warmup,
                       generators=self.generators, timeout=self.timeout, window_hook=hook, **tls)
        except (RuntimeError, ValueError) as exc:
            raise BenchError(f"the {self.generator} load generator failed: {exc}") from exc
        after = t.counters()
        rss, hwm = t.mem_kib()
        row = Row(kind, res, rss_kib=rss, hwm_kib=hwm, alive=t.alive())
        if cpu.get("start") is not None and cpu.get("end") is not None:
            used = cpu["end"] - cpu["start"]  # type: ignore[operator]
            row.server_cpu = used / self.duration
            if _answered(res):
                row.cpu_us_per_req = used / _answered(res) * 1e6
        if cpu.get("db-start") is not None and cpu.get("db-end") is not None:
            row.db_cpu = (cpu["db-end"] - cpu["db-start"]) / self.duration  # type: ignore[operator]
        s0, s1 = steal.get("start"), steal.get("end")
        if s0 is not None and s1 is not None and s1[1] > s0[1]:
            row.steal = (s1[0] - s0[0]) / (s1[1] - s0[1])
        if before and after:
            row.replies = after.get("points_requests_total", 0) - before.get(
                "points_requests_total", 0)
            row.db_reads = after.get("points_db_reads_total", 0) - before.get(
                "points_db_reads_total", 0)
        return row

    def measure(self) -> None:
        """Level by level; within a level, round by round, every server in turn. With several
        rounds, the round with the median req/s stands for the server at that level."""
        order = [k for k in ALL_SERVERS if k in self.targets]
        for c in self.concurrency:
            runs: dict[str, list[Row]] = {k: [] for k in order}
            for rnd in range(self.rounds):
                for kind in order:
                    if not self.targets[kind].alive():
                        continue
                    row = self.run_one(kind, c)
                    runs[kind].append(row)
                    tag = f" (round {rnd + 1}/{self.rounds})" if self.rounds > 1 else ""
                    print("  " + self.format_row(row) + tag, flush=True)
                    if not row.alive:
                        self.problems.append(f"{LABELS[kind]}: died during the run at c={c}")
                    time.sleep(self.pause)
            ref_rps = ref_cpu = None
            for kind in order:
                rows = sorted(runs[kind], key=lambda r: r.result.rps)
                if not rows:
                    self.problems.append(f"{LABELS[kind]}: not running, c={c} skipped")
                    continue
                row = rows[(len(rows) - 1) // 2]
                if len(rows) > 1:
                    row.rounds = [r.to_json() for r in runs[kind]]
                    # errors of any round count: a target asks for none in the whole run
                    if any(r.result.error_count for r in rows):
                        row.result.errors = _merge_errors(rows)
                    # CPU per request: the median of the rounds' own (not the median-req/s
                    # round's), the steadier figure
                    per_req = sorted(r.cpu_us_per_req for r in rows
                                     if r.cpu_us_per_req is not None)
                    row.cpu_us_per_req = per_req[(len(per_req) - 1) // 2] if per_req else None
                if kind == "ref":
                    ref_rps, ref_cpu = row.result.rps, row.cpu_us_per_req
                if ref_rps:
                    row.share = row.result.rps / ref_rps
                if ref_cpu and row.cpu_us_per_req is not None:
                    row.cpu_ratio = row.cpu_us_per_req / ref_cpu
                self.rows.append(row)

    # -- reporting -------------------------------------------------------------------------

    HEADER = (f"{'server':<18} {'conc':>4} {'req/s':>8} {'% ref':>6} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'us/req':>7} {'x ref':>6} {'RSS MB':>7} {'CPU srv/db/gen':>15} "
              f"{'steal':>5}  errors")

    def header(self) -> str:
        """HEADER, with a TLS column after "conc" when the servers run over TLS."""
        if self.tls == "off":
            return self.HEADER
        at = self.HEADER.index("conc") + len("conc")
        return f"{self.HEADER[:at]} {'TLS':<8}{self.HEADER[at:]}"

    @staticmethod
    def tls_cell(r: Row) -> str:
        """How a run spoke: plain, full (handshakes), or res N% (handshakes resumed)."""
        res = r.result
        if res.tls == "off":
            return "plain"
        if res.tls == "resume" and res.tls_handshakes:
            return f"res {res.tls_resumed / res.tls_handshakes:.0%}"
        return res.tls

    def format_row(self, r: Row) -> str:
        res = r.result
        share = f"{r.share * 100:.0f}%" if r.share is not None else "-"
        errs = ", ".join(f"{k} {v}" for k, v in res.errors.items()) or "0"
        srv = f"{r.server_cpu:.2f}" if r.server_cpu is not None else "-"
        db = f"{r.db_cpu:.2f}" if r.db_cpu is not None else "-"
        cpu = f"{srv}/{db}/{res.generator_cpu:.2f}"
        steal = f"{r.steal * 100:.0f}%" if r.steal is not None else "-"
        per_req = f"{r.cpu_us_per_req:.1f}" if r.cpu_us_per_req is not None else "-"
        ratio = f"{r.cpu_ratio:.2f}x" if r.cpu_ratio is not None else "-"
        tls = f" {self.tls_cell(r):<8}" if self.tls != "off" else ""
        return (f"{LABELS[r.server]:<18} {res.concurrency:>4}{tls} {res.rps:>8,.0f} {share:>6} "
                f"{_ms(res.p50_ms):>7} {_ms(res.p99_ms):>7} {per_req:>7} {ratio:>6} "
                f"{r.rss_kib / 1024:>7.1f} {cpu:>15} {steal:>5}  {errs}")

    def verdicts(self) -> list[Verdict]:
        out: list[Verdict] = []
        at = {r.server: r for r in self.rows if r.result.concurrency == TARGET_CONCURRENCY}
        last = {r.server: r for r in self.rows}
        for kind in ("c", "python"):
            if kind not in self.servers:
                continue
            r = at.get(kind)
            name = LABELS[kind]
            if r is None:
                out.append(Verdict(kind, f"{name}: measured at c={TARGET_CONCURRENCY}", None,
                                   "not measured"))
                continue
            res = r.result
            errs = ", ".join(f"{k} {v}" for k, v in res.errors.items()) or "none"
            out.append(Verdict(kind, f"{name}: 0 errors at c={TARGET_CONCURRENCY}",
                               res.error_count == 0 and r.alive, f"errors: {errs}"))
            p99_ok = not math.isnan(res.p99_ms) and res.p99_ms < MAX_P99_MS
            out.append(Verdict(kind, f"{name}: p99 < {MAX_P99_MS:g} ms", p99_ok,
                               f"p99 {_ms(res.p99_ms)} ms"))
            most = MAX_CPU_RATIO[kind]
            what = f"{name}: CPU per request <= {most:g}x the reference's"
            if r.cpu_ratio is None or r.cpu_us_per_req is None:
                out.append(Verdict(kind, what, None, "reference or server CPU not measured"))
            elif res.tls != "off":
                # the target is for plaintext: a TLS server against a plaintext reference
                out.append(Verdict(kind, what, None,
                                   f"{r.cpu_us_per_req:.1f} us = {r.cpu_ratio:.2f}x "
                                   f"(TLS {res.tls}; reference: plaintext): not judged"))
            else:
                share = f"; {res.rps:,.0f} req/s = {r.share:.0%} of the reference" if (
                    r.share is not None) else ""
                out.append(Verdict(kind, what, r.cpu_ratio <= most,
                                   f"{r.cpu_us_per_req:.1f} us = {r.cpu_ratio:.2f}x{share}"))
            rss_mb = last[kind].rss_kib / 1024
            rss = f"{rss_mb:.1f} MB (peak {last[kind].hwm_kib / 1024:.1f} MB)"
            if last[kind].result.tls != "off":  # a plaintext target: TLS keeps OpenSSL too
                out.append(Verdict(kind, f"{name}: RSS <= {MAX_RSS_MB[kind]:g} MB after the run",
                                   None if last[kind].alive else False,
                                   f"{rss} (TLS; the target is for plaintext): not judged"))
                continue
            out.append(Verdict(kind, f"{name}: RSS <= {MAX_RSS_MB[kind]:g} MB after the run",
                               last[kind].alive and rss_mb <= MAX_RSS_MB[kind], rss))
        return out

    def report(self, load_before: list[float], load_after: list[float]) -> dict:
        print()
        rounds = f"; median of {self.rounds} rounds" if self.rounds > 1 else ""
        print(f"one connection per request; {self.generator} generator, {self.generators} "
              f"processes; {self.duration:g} s per run after {self.warmup:g} s warm-up{rounds}; "
              f"{os.cpu_count()} CPUs; load average before {_load(load_before)}, "
              f"after {_load(load_after)}")
        if self.tls != "off":
            how = ("a full TLS handshake per connection" if self.tls == "full" else
                   "TLS, each generator user resuming the session of its previous connection")
            print(f"C and Python servers over {how}; the reference has no TLS "
                  "(reference: plaintext)")
        if self.server_root != ROOT:
            print(f"C and Python servers from {self.server_root} "
                  f"(commit {_checkout_commit(self.server_root) or '?'})")
        print(self.header())
        for r in self.rows:
            print(self.format_row(r))
        print("(us/req: the server's CPU time per request answered in the measuring window, "
              "x ref: that over the reference's at the same level; CPU srv/db/gen: cores kept "
              "busy by the server, the database and the generator processes during the window; "
              "steal: share of the CPUs' time the hypervisor took)")
        if self.tls != "off":
            print("(TLS: full = a full handshake per connection, res N% = the share of "
                  "handshakes that resumed the previous session, plain = no TLS; "
                  "% ref and x ref compare a TLS server with the plaintext reference "
                  "(reference: plaintext): the cost of TLS is in them)")
        verdicts = self.verdicts()
        if verdicts:
            print()
            print(f"targets (at concurrency {TARGET_CONCURRENCY}):")
            for v in verdicts:
                mark = {True: "PASS", False: "FAIL", None: "n/a "}[v.passed]
                print(f"  {mark}  {v.what}: {v.detail}")
        ref = next((r for r in self.rows
                    if r.server == "ref" and r.result.concurrency == TARGET_CONCURRENCY), None)
        if verdicts and ref is not None and not ref.result.p99_ms < MAX_P99_MS:
            self.problems.append(
                f"the reference itself had p99 {_ms(ref.result.p99_ms)} ms at "
                f"c={TARGET_CONCURRENCY}: latency here is dominated by the machine and the "
                "generator, not by the servers")
        stolen = [r for r in self.rows if r.steal is not None and r.steal > STEAL_NOTE]
        if stolen:
            worst = max(r.steal or 0.0 for r in stolen)
            self.problems.append(
                f"the hypervisor took more than {STEAL_NOTE:.0%} of the CPUs' time during "
                f"{len(stolen)} run(s) (up to {worst:.0%}): those numbers understate the servers")
        for p in self.problems:
            print(f"  note: {p}")
        if load_before and load_before[0] > (os.cpu_count() or 1):
            print("  note: the machine was busy (load average above the CPU count); "
                  "numbers are noisy")
        return {
            "settings": {
                "servers": self.servers, "concurrency": self.concurrency,
                "duration": self.duration, "warmup": self.warmup,
                "generator": self.generator, "generators": self.generators,
                "tls": self.tls,
                "tls_servers": [k for k in self.targets if self.targets[k].tls],
                "timeout": self.timeout, "rounds": self.rounds,
                "update_interval": self.update_interval,
                # as given on the command line (relative paths stay relative)
                "server_root": None if self.server_root == ROOT else str(self.server_root),
                "server_commit": _checkout_commit(self.server_root),
            },
            "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                        "loadavg_after": load_after},
            "results": [r.to_json() for r in self.rows],
            "targets": [
                {"server": v.server, "target": v.what, "passed": v.passed, "detail": v.detail}
                for v in verdicts
            ],
            "notes": self.problems,
        }


def _merge_errors(rows: list[Row]) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in rows:
        for k, v in r.result.errors.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


def _ms(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2f}"


def _load(v: list[float]) -> str:
    return "/".join(f"{x:.1f}" for x in v) if v else "?"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency levels must be >= 1")
    return values


def _server_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in ALL_SERVERS]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"servers are a subset of {','.join(ALL_SERVERS)}")
    return [k for k in ALL_SERVERS if k in values]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds before each measurement")
    ap.add_argument("--concurrency", type=_int_list, default=[1, 16, 64],
                    help="comma-separated levels (default 1,16,64)")
    ap.add_argument("--servers", type=_server_list, default=list(DEFAULT_SERVERS),
                    help="subset of ref,c,python,seed (default ref,c,python; seed: the "
                    "seed's one-at-a-time Python server, a baseline)")
    ap.add_argument("--generator", choices=GENERATORS, default="c",
                    help="load generator: c (bench/loadgen.c) or python (pointsbench.loadgen, "
                    "for comparison); default c")
    ap.add_argument("--generators", type=int, default=2, help="generator processes (default 2)")
    ap.add_argument("--tls", choices=TLS_MODES, default="off",
                    help="the C and Python servers over TLS (C generator only): full = a full "
                    "handshake per connection, resume = each generator user resumes its previous "
                    "session; the reference stays plaintext (default off)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between runs")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs per server and level, interleaved; the median counts (default 1)")
    ap.add_argument("--update-interval", default=None,
                    help="UPDATE_INTERVAL of the servers (default: theirs, 30 s)")
    ap.add_argument("--json", type=Path, default=ROOT / "out/bench.json",
                    help="where to write the results (default out/bench.json)")
    ap.add_argument("--server-root", type=Path, default=None, metavar="DIR",
                    help="run the C and Python servers of the checkout DIR (e.g. a git worktree "
                    "of an older commit, built with `make build` there): its "
                    f"{C_SERVER_PATH} and {PY_SERVER_SRC} on PYTHONPATH; default this checkout")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = ap.parse_args(argv)
    if args.server_root is not None and not args.server_root.is_dir():
        ap.error(f"--server-root {args.server_root}: not a directory")
    if (args.duration <= 0 or args.warmup < 0 or args.generators < 1 or args.timeout <= 0
            or args.rounds < 1):
        ap.error("--duration, --generators, --timeout and --rounds must be positive")
    if args.tls != "off" and args.generator != "c":
        ap.error(f"--tls {args.tls}: the {args.generator} load generator does not speak TLS; "
                 "use --generator c")

    bench = Bench(servers=args.servers, concurrency=args.concurrency, duration=args.duration,
                  warmup=args.warmup, generators=args.generators, timeout=args.timeout,
                  pause=args.pause, rounds=args.rounds, update_interval=args.update_interval,
                  keep=args.keep, generator=args.generator,
                  server_root=args.server_root or ROOT, tls=args.tls)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    status = 0
    try:
        load_before = _loadavg()
        bench.start()
        if not bench.targets:
            raise BenchError("nothing to measure")
        print(f"measuring {', '.join(LABELS[k] for k in bench.targets)} at concurrency "
              f"{', '.join(map(str, bench.concurrency))} ({bench.duration:g} s each)", flush=True)
        bench.measure()
        data = bench.report(load_before, _loadavg())
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
        print(f"results written to {args.json}")
        if bench.skipped:
            status = 1  # asked to measure a server that is not there
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        status = 130
    finally:
        bench.stop()
        signal.signal(signal.SIGTERM, previous)
    return status


if __name__ == "__main__":
    sys.exit(main())
