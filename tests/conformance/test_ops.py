"""Operations surface, identical in every implementation: health, metrics, logs, settings,
shutdown."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

import pytest
from testhelpers import reply_pattern, unique_row

from pointsmesh import ROOT, project_version
from pointsmesh.procs import PORT_TAKEN, REQUEST, ServerProc, base_env, server_command

pytestmark = pytest.mark.timeout(120)

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$')


def metric_families(text: str) -> dict[str, str]:
    """{family name: type} from the # TYPE lines; also checks every sample line's syntax."""
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, mtype = line.split(" ", 3)
            types[name] = mtype
        elif line and not line.startswith("#"):
            assert SAMPLE_RE.match(line), f"bad sample line: {line!r}"
    return types


def test_health_endpoints(make_server, kind):
    server = make_server(kind, unique_row(f"ops-health-{kind}"))
    assert server.http("/healthz")[0] == 200
    assert server.http("/readyz")[0] == 200
    assert server.http("/nope")[0] == 404


def test_health_port_bad_request_lines(make_server, kind):
    """Request lines a fuzzer or an attacker sends to the health port (the kubelet's and
    Prometheus' port) get 400 and nothing else; the server stays up (under ASan: no report).
    The first one once made the C server read far past its buffer (a space after the first
    newline taken for the end of the method)."""
    server = make_server(kind, unique_row(f"ops-health-bad-{kind}"))
    for raw in (b"G\n x\n\n", b"GET\n/healthz x\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.health_port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        status = reply.split(b"\r\n", 1)[0].split(b" ")
        assert status[0].startswith(b"HTTP/1.") and status[1] == b"400", (raw, reply)
        assert server.http("/healthz")[0] == 200, raw


def _health_exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    return reply


HEALTH_REGRESSIONS = sorted({p.read_bytes() for d in ("health", "py-health")
                             for p in (ROOT / "fuzz" / "regressions" / d).iterdir()})


def test_health_port_answers_the_fuzzers_findings_with_a_status_line(make_server, kind):
    """Every input the fuzzers once broke a health parser with (fuzz/regressions/) gets an
    HTTP/1.x status line from every server, which stays up; an HTTP/0.9 request line too (the
    Python server once sent it a bare body)."""
    server = make_server(kind, unique_row(f"ops-health-fuzz-{kind}"))
    assert HEALTH_REGRESSIONS
    for raw in [*HEALTH_REGRESSIONS, b"GET /healthz HTTP/0.9\r\n\r\n"]:
        reply = _health_exchange(server.health_port, raw)
        status = reply.split(b"\r\n", 1)[0].split(b" ")
        assert status[0] in (b"HTTP/1.0", b"HTTP/1.1") and status[1].isdigit(), (raw, reply)
        assert server.http("/healthz")[0] == 200, raw
    ok = _health_exchange(server.health_port, b"GET /healthz HTTP/0.9\r\n\r\n")
    assert ok.startswith(b"HTTP/1.0 200 ") and ok.endswith(b"\r\n\r\nok\n"), ok


def test_metrics_names_types_and_labels(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"ops-metrics-{kind}"))
    status, text = server.http("/metrics")
    assert status == 200
    families = metric_families(text)
    for m in protocol.metrics:
        family = m.name.removesuffix("_total") if m.type == "counter" else m.name
        assert families.get(m.name, families.get(family)) == m.type, (m.name, families)
    samples = server.metrics()
    for code in (e.code for e in protocol.errors):
        assert f'points_errors_total{{code="{code}"}}' in samples
    for op in ("connect", "read", "update", "lock"):
        assert f'points_db_errors_total{{op="{op}"}}' in samples
    language = "python" if kind == "python" else "c"
    assert any(k.startswith("points_build_info{") and f'language="{language}"' in k
               and v == 1 for k, v in samples.items())
    buckets = [k for k in samples if k.startswith("points_request_duration_seconds_bucket")]
    assert len(buckets) == len(protocol.duration_buckets) + 1  # + le="+Inf"


def test_metrics_count_requests_errors_and_reads(make_server, kind):
    server = make_server(kind, unique_row(f"ops-counts-{kind}"))
    before = server.metrics()
    for _ in range(5):
        server.request()
    server.request(b"NOPE\n")
    time.sleep(0.1)
    after = server.metrics()

    def delta(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert delta("points_requests_total") == 6
    assert delta('points_errors_total{code="unknown-command"}') == 1
    assert delta("points_connections_total") == 6
    assert 1 <= delta("points_db_reads_total") <= 5
    assert delta("points_request_duration_seconds_count") == 6
    assert after["points_db_up"] == 1
    assert after["points_connections_active"] == 0


def _events_by_name(events: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["event"], list(e.keys()))
    return out


def test_log_lines_follow_the_protocol(make_server, protocol, kind):
    row = unique_row(f"ops-logs-{kind}")
    server = make_server(kind, row, update_interval="1", log_level="debug")
    server.request()
    deadline = time.monotonic() + 5
    while server.metrics().get("points_updates_total", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.stop() == 0
    lines = [line for line in server.log_text().splitlines() if line.strip()]
    events = server.log_events()
    assert len(events) == len(lines), "every stdout line must be one JSON object"
    spec = {e.name: e for e in protocol.log_events}
    service = "python-server" if kind == "python" else "c-server"
    for e in events:
        keys = list(e.keys())
        assert keys[:5] == list(protocol.log_common_fields), keys
        assert e["event"] in spec, e
        assert e["level"] == spec[e["event"]].level, e
        assert keys[5:] == list(spec[e["event"]].fields), e
        assert e["service"] == service and e["user"] == row
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]), e["ts"]
    names = [e["event"] for e in events]
    for expected in ("starting", "listening", "db_connected", "lock_acquired", "updated",
                     "request", "shutdown_started", "stopped"):
        assert expected in names, names


def test_log_level_filters_debug(make_server, kind):
    server = make_server(kind, unique_row(f"ops-loglevel-{kind}"), log_level="info")
    server.request()
    assert server.stop() == 0
    assert "request" not in [e["event"] for e in server.log_events()]


def test_help_and_version(protocol, kind):
    cmd = server_command(kind)
    res = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=30,
                         env=base_env())
    assert res.returncode == 0
    for s in protocol.server_settings:
        assert s.env in res.stdout and s.flag in res.stdout, s.env
    res = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30,
                         env=base_env())
    assert res.returncode == 0 and project_version() in res.stdout


@pytest.mark.parametrize(
    "env",
    [{"SERVER_PORT": "http"}, {"SERVER_PORT": "70000"}, {"UPDATE_INTERVAL": "-1"},
     {"IDLE_TIMEOUT": "0"}, {"LOG_LEVEL": "loud"}, {"MAX_CONNECTIONS": "0"},
     {"DB_PASS_FILE": "/nonexistent/secret"}],
    ids=["port-text", "port-range", "interval-negative", "idle-zero", "level", "maxconn",
         "passfile"],
)
def test_bad_setting_exits_2_with_config_error(kind, env):
    full = {**base_env(), "SERVER_PORT": "1", "HEALTH_PORT": "0", **env}
    res = subprocess.run(server_command(kind), capture_output=True, text=True, timeout=30,
                         env=full)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert '"event":"config_error"' in res.stdout.replace(" ", ""), res.stdout
    assert res.stderr.strip(), "a readable message on stderr"


def test_flag_overrides_environment(make_server, protocol, kind):
    row = unique_row(f"ops-flags-{kind}")
    server = make_server(kind, "not-this-row", wait="none", args=["--server-user", row])
    server.wait_for("ready")
    assert reply_pattern(protocol, row).fullmatch(server.request())
    other = unique_row(f"ops-flags-eq-{kind}")
    server2 = make_server(kind, "not-this-row", wait="none", args=[f"--server-user={other}"])
    server2.wait_for("ready")
    assert reply_pattern(protocol, other).fullmatch(server2.request())


def test_password_file_wins(make_server, db, protocol, kind, tmp_path):
    secret = tmp_path / "db-pass"
    secret.write_text(db.app_password + "\n")
    row = unique_row(f"ops-passfile-{kind}")
    server = make_server(kind, row, db_pass="wrong", db_pass_file=str(secret))
    assert reply_pattern(protocol, row).fullmatch(server.request())


def test_wrong_password_keeps_serving_errors(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"ops-badpass-{kind}"), wait="listening",
                         db_pass="definitely-wrong")
    assert server.request() == protocol.error("db-unavailable").line.encode()
    assert server.http("/readyz")[0] == 503
    assert server.http("/healthz")[0] == 200


def test_sigterm_finishes_in_flight_and_stops_accepting(make_server, protocol, kind):
    row = unique_row(f"ops-sigterm-{kind}")
    server = make_server(kind, row, shutdown_timeout="5", idle_timeout="5")
    port = server.port
    with server.connect(timeout=10) as s:
        s.sendall(b"REQUEST_LATEST")
        time.sleep(0.2)
        server.signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(OSError):  # the listener is closed
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        s.sendall(b"_POINTS\n")
        s.settimeout(10)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply_pattern(protocol, row).fullmatch(reply), reply
    assert server.proc is not None
    assert server.proc.wait(10) == 0
    assert [e["event"] for e in server.log_events()][-1] == "stopped"


def test_sigterm_answers_idle_connections_shutting_down(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"ops-sigterm-idle-{kind}"), shutdown_timeout="1",
                         idle_timeout="30")
    with server.connect(timeout=10) as s:
        time.sleep(0.1)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        s.settimeout(10)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        assert time.monotonic() - started < 4
    assert reply == protocol.error("shutting-down").line.encode()
    assert server.proc is not None and server.proc.wait(10) == 0


def test_sigterm_releases_the_updater_lock(make_server, db, kind):
    row = unique_row(f"ops-release-{kind}")
    first = make_server(kind, row, update_interval="1")
    deadline = time.monotonic() + 5
    while first.metrics().get("points_update_lock_held") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.metrics()["points_update_lock_held"] == 1
    second = make_server(kind, row, update_interval="1")
    time.sleep(1.5)
    assert second.metrics()["points_update_lock_held"] == 0
    assert first.stop() == 0
    deadline = time.monotonic() + 5
    while second.metrics().get("points_update_lock_held") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert second.metrics()["points_update_lock_held"] == 1


def test_server_answers_many_sequential_requests(make_server, protocol, kind):
    row = unique_row(f"ops-seq-{kind}")
    server = make_server(kind, row)
    pattern = reply_pattern(protocol, row)
    for _ in range(200):
        assert pattern.fullmatch(server.request(REQUEST))


def test_c_and_python_expose_identical_metric_metadata(make_server):
    """Same # HELP and # TYPE lines for every points_* family, in both languages."""
    texts = []
    for kind in ("c", "python"):
        server = make_server(kind, unique_row(f"ops-meta-{kind}"))
        texts.append({
            line for line in server.http("/metrics")[1].splitlines()
            if line.startswith(("# HELP points_", "# TYPE points_"))
        })
    assert texts[0] == texts[1], texts[0] ^ texts[1]


def test_taken_port_is_start_failed_exit_1(kind, db):
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = {**base_env(), **db.env(), "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port),
               "HEALTH_PORT": "0", "UPDATE_INTERVAL": "0"}
        res = subprocess.run(server_command(kind), capture_output=True, text=True, timeout=30,
                             env=env)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert '"event":"start_failed"' in res.stdout.replace(" ", ""), res.stdout
    assert res.stderr.strip()


def test_harness_restarts_a_server_whose_chosen_port_was_taken_meanwhile(kind, db, tmp_path):
    """The suites choose free ports before a server binds them, and an outgoing connection's
    ephemeral port can take one in between: the harness then starts the server again on new
    ports (a port the test chose itself is never changed: see the test above)."""
    server = ServerProc(kind, {**db.env(), "SERVER_USER": unique_row(f"ops-taken-{kind}"),
                               "UPDATE_INTERVAL": "0"}, tmp_path / "logs")
    taken = server.port
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        server.start(wait="ready")
    try:
        assert server.port != taken
        failed = [e for e in server.log_events() if e.get("event") == "start_failed"]
        assert len(failed) == 1 and PORT_TAKEN in failed[0]["error"], server.log_text()
    finally:
        assert server.stop() == 0, server.log_text()
