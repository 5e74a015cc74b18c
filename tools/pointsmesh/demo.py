"""`make demo`: the whole roster on this machine, no containers, nothing system-wide.

Starts a private MariaDB (or MySQL, POINTS_MESH_DB_FLAVOUR) in a temporary directory on a free
loopback port, loads sql/, starts every server of roster.yaml (C and Python, short update
interval), runs every client (each language against its own server) twice, one update interval
apart, prints the replies, and shuts everything down cleanly.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from .devdb import DevDB, free_port
from .procs import ServerProc, run_client
from .spec import Server, load_roster, servers


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_clients(roster: list[Server], procs: dict[str, ServerProc]) -> bool:
    ok = True
    width = max(len(s.client) for s in roster)
    for s in roster:
        res = run_client("python" if s.language == "python" else "c", procs[s.name].port,
                         extra_env={"CLIENT_RETRIES": "5", "CLIENT_RETRY_DELAY": "0.2"})
        line = res.stdout.strip() if res.returncode == 0 else f"FAILED ({res.stderr.strip()})"
        ok &= res.returncode == 0
        print(f"  {s.client:<{width}} -> {line}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--interval", type=float, default=2.0, help="UPDATE_INTERVAL (default 2 s)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)

    roster = servers(load_roster())
    base = Path(tempfile.mkdtemp(prefix="pointsmesh-demo-"))
    procs: dict[str, ServerProc] = {}
    db = DevDB(base / "db")
    ok = True
    try:
        db.start()
        print(f"private {db.label} on 127.0.0.1:{db.port} (data in {db.datadir})")
        for s in roster:
            port = s.port if port_is_free(s.port) else free_port()
            note = "" if port == s.port else f" (roster port {s.port} is busy here)"
            env = {**db.env(), "SERVER_USER": s.row, "UPDATE_INTERVAL": str(args.interval)}
            procs[s.name] = ServerProc("python" if s.language == "python" else "c", env,
                                       base / "logs", name=s.name, port=port)
            procs[s.name].start(wait="ready")
            print(f"started {s.name:<22} on 127.0.0.1:{port:<5} row {s.row}{note}")
        print("\nround 1: every client asks its server")
        ok &= run_clients(roster, procs)
        wait = 2 * args.interval + 0.5
        print(f"\nwaiting {wait:g} s (two update intervals) ...")
        time.sleep(wait)
        print("\nround 2: the points have risen")
        ok &= run_clients(roster, procs)
    finally:
        codes = {name: p.stop() for name, p in procs.items()}
        db.stop()
        bad = {n: c for n, c in codes.items() if c != 0}
        if bad:
            ok = False
            print(f"\nservers that did not exit 0: {bad}")
        else:
            print(f"\nall {len(codes)} servers stopped cleanly (SIGTERM, exit 0); database stopped")
        if args.keep or not ok:
            print(f"logs and data kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
