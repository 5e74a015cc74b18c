"""`make bench-abuse`: each server under a connection flood from one address while a
well-behaved client on another address is measured (design.md section 10).

Starts a private MariaDB or MySQL, then for each server (C, Python) and each attack: a fresh
server with its defaults (IDLE_TIMEOUT 10 s, MAX_CONNECTIONS 4096), the attacker on 127.0.0.2
(pointsmesh.flood) opening its connections and holding them (a persistent one opens a new
connection for each one the server ends), then the well-behaved client on 127.0.0.1 sending
requests one after another, each on a new connection. Prints one table: the client's answers,
its busy lines and resets, its latency, and what the server did to the attacker's connections.

Attacks:
  idle      N connections that send part of the request and wait
  greedy    N connections that send a whole request and never read or close
  persist   idle, and the connections the server ends are opened again (5,000/s at most)
  nofile    persist against a server whose descriptor limit (1024) is below the flood
  health    N idle connections on the health port; /healthz polled as well as the protocol port
  tls-stall 4,000 connections to a TLS server (no per-source limit) that send the start of a
            ClientHello and stall: the server's memory (RSS) before and under them, against
            the chart's limits (no client is measured: the probe speaks plaintext)

The numbers are reported, not asserted (tests/conformance/test_abuse.py asserts the rules).

    python -m pointsbench.abuse [--servers c,python] [--attacks idle,greedy,...] [--count 5000]
                                [--requests 100] [--server-root DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pointsmesh import ROOT, certs
from pointsmesh.devdb import DevDB
from pointsmesh.flood import Flood, FloodStats, ProbeResult, probe

from .bench import ROWS, RootedServer

ATTACKS = ("idle", "greedy", "persist", "nofile", "health", "tls-stall")
STALLS = 4000  # tls-stall's connections
# The chart's memory limits of the server containers (helm/points-mesh/values.yaml).
CHART_LIMIT_MIB = {"c": 64, "python": 128}
NOFILE = 1024
REFILL = 5000.0  # connections per second a persistent attacker opens again, at most


@dataclass
class Row:
    server: str
    attack: str
    client: ProbeResult
    flood: FloodStats
    healthz: ProbeResult | None
    shed: float
    refused: float
    note: str = ""


def _sum(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


def run_one(db: DevDB, base: Path, root: Path, kind: str, attack: str, count: int,
            requests: int) -> Row:
    env = {**db.env(), "SERVER_USER": ROWS[kind], "UPDATE_INTERVAL": "0", "LOG_LEVEL": "info"}
    if attack == "tls-stall":
        tls = certs.make_set(base / "tls", ["localhost"])
        env |= {"TLS_CERT_FILE": str(tls["server.crt"]), "TLS_KEY_FILE": str(tls["server.key"]),
                "MAX_CONNECTIONS_PER_SOURCE": "0", "IDLE_TIMEOUT": "60"}
    server = RootedServer(kind, env, base / "logs", name=f"{kind}-{attack}", root=root,
                          nofile=NOFILE if attack == "nofile" else 0)
    server.start(wait="ready", timeout=60)
    if attack == "tls-stall":
        return _stalls(server, kind)
    try:
        target = server.health_port if attack == "health" else server.port
        mode = "idle" if attack in ("persist", "nofile") else attack
        refill = REFILL if attack in ("persist", "nofile") else 0.0
        with Flood(target, mode, count, refill=refill) as flood:
            flood.open().hold_in_background(120)
            time.sleep(0.5)  # let the server take in the flood
            client = probe(server.port, requests)
            healthz = probe(server.health_port, requests, health=True) if attack == "health" \
                else None
            metrics = _metrics(server)
            stats = flood.close()
        row = Row(kind, attack, client, stats, healthz,
                  _sum(metrics, "points_connections_shed_total"),
                  _sum(metrics, "points_connections_refused_total"))
    except BaseException:
        server.kill()
        raise
    try:
        server.stop()
    except TimeoutError:
        server.kill()
        row.note = "ignored SIGTERM for 15 s (killed)"
    return row


def _stalls(server: RootedServer, kind: str) -> Row:
    """STALLS unfinished handshakes held on a TLS server: its memory before and under them."""
    try:
        before = server.rss_kib()
        with Flood(server.port, "tls-stall", STALLS) as flood:
            flood.open().hold_in_background(120)
            time.sleep(1.0)
            under = server.rss_kib()
            metrics = _metrics(server)
            stats = flood.close()
    finally:
        server.kill()
    held = stats.held or 1
    note = (f"RSS {before / 1024:.1f} -> {under / 1024:.1f} MiB under {stats.held:,} stalled "
            f"handshakes ({(under - before) / held:.1f} KiB each; chart limit "
            f"{CHART_LIMIT_MIB[kind]} MiB)")
    return Row(kind, "tls-stall", ProbeResult(), stats, None,
               _sum(metrics, "points_connections_shed_total"),
               _sum(metrics, "points_connections_refused_total"), note)


def _metrics(server: RootedServer) -> dict[str, float]:
    try:
        return server.metrics()
    except (OSError, RuntimeError):
        return {}


def _ms(v: float) -> str:
    return "-" if v != v else f"{v * 1000:.1f}"


HEADER = ("| server | attack | client ok | busy | reset | timeout | p50 ms | p99 ms "
          "| attacker ended | held | shed | refused | /healthz p99 ms |")


def format_row(r: Row) -> str:
    c = r.client
    hz = _ms(r.healthz.percentile(0.99)) + f" ({r.healthz.ok}/{r.healthz.total})" \
        if r.healthz else "-"
    return (f"| {r.server} | {r.attack} | {c.ok}/{c.total} | {c.busy} | {c.reset} "
            f"| {c.timeout + c.refused} | {_ms(c.percentile(0.5))} | {_ms(c.percentile(0.99))} "
            f"| {r.flood.shed} | {r.flood.held} | {r.shed:.0f} | {r.refused:.0f} | {hz} |"
            + (f" {r.note}" if r.note else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="c,python")
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--count", type=int, default=5000, help="attacker connections")
    ap.add_argument("--requests", type=int, default=100, help="well-behaved requests per run")
    ap.add_argument("--server-root", type=Path, default=ROOT, metavar="DIR",
                    help="run the servers of the checkout DIR (as make bench)")
    args = ap.parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    attacks = [a for a in args.attacks.split(",") if a]
    bad = [a for a in attacks if a not in ATTACKS] + [s for s in servers if s not in ROWS]
    if bad:
        ap.error(f"unknown: {', '.join(bad)}")
    with tempfile.TemporaryDirectory(prefix="points-abuse-") as tmp:
        base = Path(tmp)
        db = DevDB(base / "db").start()
        try:
            print(HEADER)
            print("|" + "---|" * (HEADER.count("|") - 1))
            for kind in servers:
                for attack in attacks:
                    row = run_one(db, base, args.server_root, kind, attack, args.count,
                                  args.requests)
                    print(format_row(row), flush=True)
        finally:
            db.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
