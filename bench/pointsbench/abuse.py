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

from pointsmesh import ROOT
from pointsmesh.devdb import DevDB
from pointsmesh.flood import Flood, FloodStats, ProbeResult, probe

from .bench import ROWS, RootedServer

ATTACKS = ("idle", "greedy", "persist", "nofile", "health")
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
    server = RootedServer(kind, env, base / "logs", name=f"{kind}-{attack}", root=root,
                          nofile=NOFILE if attack == "nofile" else 0)
    server.start(wait="ready", timeout=60)
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
