"""Abuse on loopback, for the fairness tests and `make bench-abuse` (design.md section 10): a
flood of connections from one source address, held open, and a well-behaved client from
another address, measured.

The attacker binds 127.0.0.2 and the well-behaved client 127.0.0.1 (both loopback), so the
servers see two sources. Every loop here is bounded in count and in time. Standard library
only: the e2e suite runs this file as it is in a pod (`python3 -c`), flooding a Service.

    python -m pointsmesh.flood --port P [--mode idle] [--count 5000] [--refill 2000]
    python -m pointsmesh.flood --host c-server-akmal --port 5003 --source 0.0.0.0 --hold 60
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import resource
import select
import socket
import threading
import time
from dataclasses import dataclass, field

ATTACKER = "127.0.0.2"
CLIENT = "127.0.0.1"
REQUEST = b"REQUEST_LATEST_POINTS\n"
BUSY = b"ERROR server-busy"
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: pick the source port at connect, not at bind

# What each kind of attacker sends once connected (and then never reads, never closes):
# idle: part of the request; silent: nothing; greedy: a whole request (its reply is never
# read); health: part of an HTTP request, on the health port; tls-stall: the start of a TLS
# ClientHello (a record header announcing 512 bytes, then 6 of them), on a TLS port.
PAYLOADS = {"idle": b"REQ", "silent": b"", "greedy": REQUEST,
            "health": b"GET /healthz HTTP/1.0\r\n",
            "tls-stall": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"}


@dataclass
class FloodStats:
    opened: int = 0       # connect() started
    connected: int = 0    # the handshake finished
    failed: int = 0       # connect failed (refused, reset, timed out)
    busy: int = 0         # the server answered ERROR server-busy (then closed)
    closed: int = 0       # the server closed without a word (EOF)
    reset: int = 0        # the server reset the connection
    held: int = 0         # still open at the end

    @property
    def shed(self) -> int:
        """Connections the server ended while the attacker held them."""
        return self.busy + self.closed + self.reset


@dataclass
class Flood:
    """count connections from source to host:port, each sending PAYLOADS[mode] and then held.
    refill: while held, open new connections in place of those the server ended, up to
    refill connections per second (a persistent attacker; 0: none)."""

    port: int
    mode: str = "idle"
    count: int = 5000
    host: str = "127.0.0.1"
    source: str = ATTACKER
    refill: float = 0.0
    stats: FloodStats = field(default_factory=FloodStats)

    def __post_init__(self) -> None:
        if self.mode not in PAYLOADS:
            raise ValueError(f"mode {self.mode!r}: expected one of {', '.join(PAYLOADS)}")
        self._payload = PAYLOADS[self.mode]
        # A name (a Kubernetes Service) is looked up once, not per connection.
        self._target = socket.getaddrinfo(self.host, self.port, socket.AF_INET,
                                          socket.SOCK_STREAM)[0][4]
        self._ep = select.epoll()
        self._socks: dict[int, socket.socket] = {}
        self._seq: dict[int, int] = {}  # fd -> the connection's number, in opening order
        self.ended: list[int] = []  # numbers of the connections the server ended
        self.held: list[int] = []  # numbers of those still open at close()
        self._connecting: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------

    def _open_one(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((self.source, 0))
            err = s.connect_ex(self._target)
        except OSError:
            s.close()
            self.stats.failed += 1
            return
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.stats.failed += 1
            return
        self.stats.opened += 1
        fd = s.fileno()
        self._socks[fd] = s
        self._seq[fd] = self.stats.opened - 1
        self._connecting.add(fd)
        self._ep.register(fd, select.EPOLLOUT | select.EPOLLRDHUP)

    def open(self, timeout: float = 20.0) -> Flood:
        """Open the flood; returns once every connection is connected or failed (or timeout)."""
        for _ in range(self.count):
            self._open_one()
            if len(self._connecting) >= 512:  # keep the SYN queue reasonable
                self._poll(0.0)
        deadline = time.monotonic() + timeout
        while (self.stats.connected + self.stats.failed < self.count
               and time.monotonic() < deadline):
            self._poll(0.05)
        return self

    def _poll(self, timeout: float) -> None:
        for fd, _events in self._ep.poll(timeout, 1024):
            s = self._socks.get(fd)
            if s is None:
                continue
            if fd in self._connecting:
                self._connecting.discard(fd)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.stats.failed += 1
                    self._drop(fd, ended=False)
                    continue
                self.stats.connected += 1
                if self._payload:
                    with contextlib.suppress(OSError):
                        s.send(self._payload)
                # From now on only the server's end matters (its reply or line, FIN, RST).
                # A greedy reader never reads: its reply is expected, only its end is watched.
                self._ep.modify(fd, select.EPOLLRDHUP if self.mode == "greedy"
                                else select.EPOLLIN | select.EPOLLRDHUP)
                continue
            self._ended(fd, s)

    def _ended(self, fd: int, s: socket.socket) -> None:
        """The server wrote, closed or reset: classify. A greedy reader never reads: it only
        peeks, and its reply (which comes with FIN: SHUT_WR after the reply) is no shedding;
        only a busy line or an end without a reply is."""
        greedy = self.mode == "greedy"
        try:
            data = s.recv(256, socket.MSG_PEEK if greedy else 0)
        except BlockingIOError:
            return
        except OSError:
            self.stats.reset += 1
            self._drop(fd)
            return
        if data.startswith(BUSY):
            self.stats.busy += 1
        elif not data:
            self.stats.closed += 1
        elif greedy:
            self._ep.unregister(fd)  # answered: held (unread) from now on
            return
        else:
            return  # (health: a reply to half a request cannot come; ignore anything else)
        self._drop(fd)

    def _drop(self, fd: int, ended: bool = True) -> None:
        seq = self._seq.pop(fd, None)
        if ended and seq is not None:
            self.ended.append(seq)
        s = self._socks.pop(fd, None)
        if s is not None:
            with contextlib.suppress(OSError, ValueError):
                self._ep.unregister(fd)
            s.close()

    # -- holding ---------------------------------------------------------------------------

    def hold_in_background(self, max_seconds: float = 120.0) -> Flood:
        """Keep watching (and refilling) in a thread until close() or max_seconds."""
        self._thread = threading.Thread(target=self.hold, args=(max_seconds,), name="flood",
                                        daemon=True)
        self._thread.start()
        return self

    def hold(self, seconds: float) -> None:
        """Watch (and refill) for seconds, in this thread."""
        deadline = time.monotonic() + seconds
        last, budget = time.monotonic(), 0.0
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._poll(0.02)
            if self.refill:
                now = time.monotonic()
                budget = min(budget + (now - last) * self.refill, self.refill)
                last = now
                while budget >= 1 and len(self._socks) < self.count:
                    self._open_one()
                    budget -= 1

    @property
    def live(self) -> int:
        return len(self._socks)

    def close(self) -> FloodStats:
        """Stop holding; classify what the server already ended; close everything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._poll(0.0)
        self.stats.held = len(self._socks)
        self.held = sorted(self._seq.values())
        for fd in list(self._socks):
            self._drop(fd, ended=False)
        self._ep.close()
        return self.stats

    def __enter__(self) -> Flood:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._ep.closed:
            self.close()


# -- the well-behaved client ---------------------------------------------------------------


@dataclass
class ProbeResult:
    ok: int = 0
    busy: int = 0        # ERROR server-busy
    error: int = 0       # another ERROR line, or a reply that is no reply
    reset: int = 0
    refused: int = 0
    timeout: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests

    @property
    def total(self) -> int:
        return self.ok + self.busy + self.error + self.reset + self.refused + self.timeout

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(q * len(values)))]

    def summary(self) -> str:
        return (f"{self.ok}/{self.total} ok, busy {self.busy}, reset {self.reset}, "
                f"refused {self.refused}, timeout {self.timeout}, error {self.error}, "
                f"p50 {self.percentile(0.5) * 1000:.1f} ms, "
                f"p99 {self.percentile(0.99) * 1000:.1f} ms")


def _exchange(host: str, port: int, source: str, payload: bytes, timeout: float) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((source, 0))
        s.connect((host, port))
        s.sendall(payload)
        chunks: list[bytes] = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def probe(port: int, requests: int = 100, interval: float = 0.02, host: str = "127.0.0.1",
          source: str = CLIENT, timeout: float = 3.0, health: bool = False) -> ProbeResult:
    """requests one after another (interval apart), each on its own connection: the points
    request, or GET /healthz (health); latency from connect to the server's close."""
    payload = b"GET /healthz HTTP/1.0\r\n\r\n" if health else REQUEST
    res = ProbeResult()
    for _ in range(requests):
        t0 = time.monotonic()
        try:
            reply = _exchange(host, port, source, payload, timeout)
        except ConnectionResetError:
            res.reset += 1
        except ConnectionRefusedError:
            res.refused += 1
        except TimeoutError:
            res.timeout += 1
        except OSError:
            res.error += 1
        else:
            took = time.monotonic() - t0
            if reply.startswith(BUSY):
                res.busy += 1
            elif (reply.startswith(b"HTTP/1.0 200") if health
                  else reply.endswith(b"\n") and not reply.startswith(b"ERROR")):
                res.ok += 1
                res.latencies.append(took)
            else:
                res.error += 1
        time.sleep(interval)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="the server (default 127.0.0.1)")
    ap.add_argument("--port", type=int, required=True, help="the server's protocol port")
    ap.add_argument("--health-port", type=int, default=0, help="for --mode health")
    ap.add_argument("--source", default=ATTACKER,
                    help=f"the attacker's address (default {ATTACKER}; 0.0.0.0 in a pod)")
    ap.add_argument("--mode", choices=list(PAYLOADS), default="idle")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--refill", type=float, default=0.0,
                    help="connections per second opened in place of those the server ends")
    ap.add_argument("--requests", type=int, default=100, help="well-behaved requests")
    ap.add_argument("--hold", type=float, default=0.0,
                    help="only hold the flood this many seconds (no well-behaved client)")
    args = ap.parse_args(argv)
    with contextlib.suppress(OSError, ValueError):  # as many descriptors as allowed
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    flood_port = args.health_port if args.mode == "health" else args.port
    with Flood(flood_port, args.mode, args.count, host=args.host, source=args.source,
               refill=args.refill) as flood:
        flood.open()
        print(f"flooding {args.host}:{flood_port}: {flood.stats}", flush=True)
        if args.hold > 0:
            flood.hold(min(args.hold, 3600.0))
            print(f"flood: {flood.close()}", flush=True)
            return 0
        flood.hold_in_background(60)
        result = probe(args.port, args.requests, host=args.host)
        health = probe(args.health_port, 20, host=args.host, health=True) \
            if args.health_port else None
        stats = flood.close()
    print(f"flood: {stats}")
    print(f"client: {result.summary()}")
    if health is not None:
        print(f"/healthz: {health.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
