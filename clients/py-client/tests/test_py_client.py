"""Unit tests of the Python client: settings, backoff schedule, reply classification, retry loop."""

from __future__ import annotations

import pytest

from points_client import __version__, cli
from points_client.cli import Attempt, Outcome, judge, run
from points_client.generated.protocol import CLIENT_SETTINGS, ERRORS, REPLY_FORMAT, REPLY_RE
from points_client.settings import Action, ClientConfig, backoff_delays, load, target, usage

REPLY = b"User: c_user-azmeer, Points: 42, Last Update: 2026-01-05 10:00:00\n"


def config(**fields: object) -> ClientConfig:
    """The default settings with some fields replaced (names as the variables, lower case)."""
    _, cfg = load([], {s.env: str(fields.pop(s.field)) for s in CLIENT_SETTINGS
                       if s.field in fields})
    assert cfg is not None and not fields, fields
    return cfg


# -- settings (the rules of every kind: tests/conformance/test_settings.py, all four programs) --


def test_defaults_come_from_the_protocol() -> None:
    action, s = load([], {})
    assert action is Action.RUN and s is not None
    defaults = {x.env: x.default for x in CLIENT_SETTINGS}
    assert s.target_host == defaults["TARGET_HOST"]
    assert s.target_port == int(defaults["TARGET_PORT"])
    assert s.client_retries == int(defaults["CLIENT_RETRIES"])
    assert s.client_retry_delay == float(defaults["CLIENT_RETRY_DELAY"])
    assert s.client_retry_max_delay == float(defaults["CLIENT_RETRY_MAX_DELAY"])
    assert s.client_timeout == float(defaults["CLIENT_TIMEOUT"])


def test_environment_then_flags() -> None:
    env = {"TARGET_HOST": "c-server-akmal", "TARGET_PORT": "5003", "CLIENT_RETRIES": "3",
           "CLIENT_RETRY_DELAY": "0.25", "CLIENT_RETRY_MAX_DELAY": "2", "CLIENT_TIMEOUT": ".5"}
    assert load([], env)[1] == ClientConfig("c-server-akmal", 5003, 3, 0.25, 2.0, 0.5,
                                            "", "", "", "")
    _, s = load(["--target-port", "6000", "--client-retries=7", "--target-host=h"], env)
    assert s is not None
    assert (s.target_host, s.target_port, s.client_retries, s.client_timeout) == (
        "h", 6000, 7, 0.5)


def test_last_flag_wins_and_brackets_are_stripped() -> None:
    _, s = load(["--target-port=1", "--target-port=2", "--target-host", "[::1]"], {})
    assert s is not None and s.target_port == 2 and s.target_host == "::1"
    assert target(s) == "[::1]:2"
    assert target(config(target_host="db")) == "db:5001"


def test_help_version_and_check_flags() -> None:
    assert load(["--help"], {}) == (Action.HELP, None)
    assert load(["-h"], {"TARGET_PORT": "bad"}) == (Action.HELP, None)
    assert load(["--version"], {}) == (Action.VERSION, None)
    assert load(["--check-config"], {})[0] is Action.CHECK
    text = usage("python-client")
    for s in CLIENT_SETTINGS:
        assert s.env in text and s.flag in text


def test_main_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"], {}) == 0
    assert capsys.readouterr().out.startswith(f"python-client {__version__} ")
    assert cli.main(["--help"], {}) == 0
    assert cli.main(["--check-config"], {"TARGET_PORT": "7"}) == 0
    assert "TARGET_PORT=7\n" in capsys.readouterr().out
    assert cli.main([], {"TARGET_PORT": "x"}) == 2
    err = capsys.readouterr().err
    assert err.startswith("python-client: bad setting: TARGET_PORT (--target-port): invalid value")


# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum() -> None:
    s = config(client_retries=8, client_retry_delay=0.5, client_retry_max_delay=5)
    assert list(backoff_delays(s)) == [0.5, 1, 2, 4, 5, 5, 5]


def test_backoff_has_one_wait_fewer_than_attempts() -> None:
    assert list(backoff_delays(config(client_retries=1))) == []
    assert list(backoff_delays(config(client_retries=2, client_retry_delay=0.1))) == [0.1]


def test_backoff_first_delay_capped() -> None:
    s = config(client_retries=4, client_retry_delay=3, client_retry_max_delay=1)
    assert list(backoff_delays(s)) == [1, 1, 1]


def test_backoff_default_schedule_is_bounded() -> None:
    s = config()
    delays = list(backoff_delays(s))
    assert len(delays) == s.client_retries - 1
    assert sum(delays) < 60  # the default gives up within a minute (plus timeouts)


# -- reply classification -------------------------------------------------------------------


def test_reply_pattern_follows_the_protocol_format() -> None:
    pat = REPLY_RE
    line = REPLY_FORMAT.format(user="u", points=-3, last_update="2026-01-05 10:00:00")
    assert pat.fullmatch(line.rstrip("\n").encode())
    assert not pat.fullmatch(b"User: u, Points: x, Last Update: 2026-01-05 10:00:00")
    assert not pat.fullmatch(b"User: , Points: 1, Last Update: 2026-01-05 10:00:00")


def test_judge_reply() -> None:
    a = judge(REPLY, "eof", 5)
    assert a == Attempt(Outcome.REPLY, line=REPLY)
    # bytes after the first line, or a reset after it, do not matter
    assert judge(REPLY + b"junk", "reset", 5).line == REPLY
    # "\r\n" is accepted, and printed as received
    crlf = REPLY[:-1] + b"\r\n"
    assert judge(crlf, "eof", 5) == Attempt(Outcome.REPLY, line=crlf)


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_judge_error_lines(code: str) -> None:
    a = judge(ERRORS[code].line, "eof", 5)
    assert a.outcome is (Outcome.RETRY if ERRORS[code].retryable else Outcome.FATAL)
    assert a.reason == "server answered: " + ERRORS[code].line.decode().rstrip("\n")


@pytest.mark.parametrize(
    ("data", "end", "outcome", "reason"),
    [
        (b"", "eof", Outcome.RETRY, "server closed the connection without a reply"),
        (b"User: x", "eof", Outcome.RETRY, "incomplete reply (7 bytes, no newline)"),
        (b"", "timeout", Outcome.RETRY, "no reply within 0.4 s"),
        (b"", "reset", Outcome.RETRY, "connection reset by the server"),
        (b"", "Broken pipe", Outcome.RETRY, "recv: Broken pipe"),
        (b"x" * 4096, "cap", Outcome.FATAL, None),
        (b"ERROR no-such-code whatever\n", "eof", Outcome.FATAL, None),
        (b"hello\n", "eof", Outcome.FATAL, 'unexpected answer: "hello"'),
    ],
)
def test_judge_failures(data: bytes, end: str, outcome: Outcome, reason: str | None) -> None:
    a = judge(data, end, 0.4)
    assert a.outcome is outcome
    if reason is not None:
        assert a.reason == reason


# -- retry loop -----------------------------------------------------------------------------


class Script:
    def __init__(self, *results: Attempt) -> None:
        self.results = list(results)
        self.calls = 0
        self.sleeps: list[float] = []
        self.out: list[bytes] = []
        self.err: list[str] = []

    def attempt(self, _: ClientConfig) -> Attempt:
        self.calls += 1
        return self.results[min(self.calls - 1, len(self.results) - 1)]

    def run(self, settings: ClientConfig) -> int:
        return run(settings, attempt=self.attempt, sleep=self.sleeps.append,
                   out=self.out.append, err=self.err.append)


REFUSED = Attempt(Outcome.RETRY, "127.0.0.1:5001: connect: Connection refused")


def test_run_retries_then_prints() -> None:
    sc = Script(REFUSED, REFUSED, Attempt(Outcome.REPLY, line=REPLY))
    s = config(target_host="127.0.0.1", client_retries=5, client_retry_delay=0.5,
               client_retry_max_delay=5)
    assert sc.run(s) == 0
    assert sc.out == [REPLY]
    assert sc.sleeps == [0.5, 1.0]
    assert sc.err == [
        "python-client: attempt 1/5 to 127.0.0.1:5001 failed: "
        "127.0.0.1:5001: connect: Connection refused; retrying in 0.5 s",
        "python-client: attempt 2/5 to 127.0.0.1:5001 failed: "
        "127.0.0.1:5001: connect: Connection refused; retrying in 1 s",
    ]


def test_run_gives_up_after_the_last_attempt() -> None:
    sc = Script(REFUSED)
    s = config(target_host="127.0.0.1", client_retries=4, client_retry_delay=1,
               client_retry_max_delay=3)
    assert sc.run(s) == 1
    assert sc.calls == 4
    assert sc.sleeps == [1, 2, 3]
    assert sc.err[-1] == (
        "python-client: giving up on 127.0.0.1:5001 after 4 attempts; "
        "last error: 127.0.0.1:5001: connect: Connection refused"
    )


def test_run_stops_at_a_fatal_answer() -> None:
    sc = Script(REFUSED, Attempt(Outcome.FATAL, "server answered: ERROR unknown-command x"))
    assert sc.run(config(target_host="h", client_retries=9)) == 1
    assert sc.calls == 2
    assert sc.err[-1] == "python-client: h:5001: server answered: ERROR unknown-command x"
