"""Unit tests of the Python client: settings, backoff schedule, reply classification, retry loop."""

from __future__ import annotations

import pytest

from points_client import cli
from points_client.cli import Attempt, Outcome, judge, reply_pattern, run
from points_client.protocol import CLIENT_SETTINGS, ERRORS, REPLY_FORMAT
from points_client.settings import (
    ClientSettings,
    ConfigError,
    HelpRequested,
    VersionRequested,
    backoff_delays,
    parse_settings,
    usage,
)

REPLY = b"User: c_user-azmeer, Points: 42, Last Update: 2026-01-05 10:00:00\n"

# -- settings -------------------------------------------------------------------------------


def test_defaults_come_from_the_protocol() -> None:
    s = parse_settings([], {})
    defaults = {x.env: x.default for x in CLIENT_SETTINGS}
    assert s.host == defaults["TARGET_HOST"]
    assert s.port == int(defaults["TARGET_PORT"])
    assert s.retries == int(defaults["CLIENT_RETRIES"])
    assert s.retry_delay == float(defaults["CLIENT_RETRY_DELAY"])
    assert s.retry_max_delay == float(defaults["CLIENT_RETRY_MAX_DELAY"])
    assert s.timeout == float(defaults["CLIENT_TIMEOUT"])


def test_environment_then_flags() -> None:
    env = {"TARGET_HOST": "c-server-akmal", "TARGET_PORT": "5003", "CLIENT_RETRIES": "3",
           "CLIENT_RETRY_DELAY": "0.25", "CLIENT_RETRY_MAX_DELAY": "2", "CLIENT_TIMEOUT": ".5"}
    s = parse_settings([], env)
    assert s == ClientSettings("c-server-akmal", 5003, 3, 0.25, 2.0, 0.5)
    s = parse_settings(["--target-port", "6000", "--client-retries=7", "--target-host=h"], env)
    assert (s.host, s.port, s.retries, s.timeout) == ("h", 6000, 7, 0.5)


def test_last_flag_wins_and_brackets_are_stripped() -> None:
    s = parse_settings(["--target-port=1", "--target-port=2", "--target-host", "[::1]"], {})
    assert s.port == 2
    assert s.host == "::1"
    assert s.target == "[::1]:2"
    assert parse_settings([], {"TARGET_HOST": "db"}).target == "db:5001"


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({"TARGET_PORT": "abc"}, []),
        ({"TARGET_PORT": "0"}, []),
        ({"TARGET_PORT": "65536"}, []),
        ({"TARGET_PORT": " 80"}, []),
        ({"TARGET_PORT": "8_0"}, []),
        ({"TARGET_PORT": ""}, []),
        ({"TARGET_HOST": ""}, []),
        ({"TARGET_HOST": "a b"}, []),
        ({"TARGET_HOST": "x" * 256}, []),
        ({"CLIENT_RETRIES": "0"}, []),
        ({"CLIENT_RETRIES": "-1"}, []),
        ({"CLIENT_RETRIES": "2.5"}, []),
        ({"CLIENT_TIMEOUT": "0"}, []),
        ({"CLIENT_TIMEOUT": "-1"}, []),
        ({"CLIENT_TIMEOUT": "inf"}, []),
        ({"CLIENT_TIMEOUT": "nan"}, []),
        ({"CLIENT_TIMEOUT": "1e3"}, []),
        ({"CLIENT_TIMEOUT": "."}, []),
        ({"CLIENT_RETRY_DELAY": "1.2.3"}, []),
        ({"CLIENT_RETRY_MAX_DELAY": "9999999"}, []),
        ({}, ["--target-port"]),
        ({}, ["--nope", "1"]),
        ({}, ["positional"]),
        ({}, ["--target-port=x"]),
    ],
)
def test_bad_settings(env: dict[str, str], argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        parse_settings(argv, env)


@pytest.mark.parametrize("text", ["5", "0.5", ".5", "5.", "1000000"])
def test_good_durations(text: str) -> None:
    assert parse_settings([], {"CLIENT_TIMEOUT": text}).timeout == float(text)


def test_help_and_version_flags() -> None:
    with pytest.raises(HelpRequested):
        parse_settings(["--help"], {})
    with pytest.raises(HelpRequested):
        parse_settings(["-h"], {"TARGET_PORT": "bad"})
    with pytest.raises(VersionRequested):
        parse_settings(["--version"], {})
    text = usage("python-client")
    for s in CLIENT_SETTINGS:
        assert s.env in text and s.flag in text


def test_main_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"], {}) == 0
    assert capsys.readouterr().out.startswith("python-client 1.0.0 ")
    assert cli.main(["--help"], {}) == 0
    assert cli.main([], {"TARGET_PORT": "x"}) == 2
    err = capsys.readouterr().err
    assert err.startswith('python-client: bad setting: TARGET_PORT="x": ')


# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum() -> None:
    s = ClientSettings(retries=8, retry_delay=0.5, retry_max_delay=5)
    assert list(backoff_delays(s)) == [0.5, 1, 2, 4, 5, 5, 5]


def test_backoff_has_one_wait_fewer_than_attempts() -> None:
    assert list(backoff_delays(ClientSettings(retries=1))) == []
    assert list(backoff_delays(ClientSettings(retries=2, retry_delay=0.1))) == [0.1]


def test_backoff_first_delay_capped() -> None:
    s = ClientSettings(retries=4, retry_delay=3, retry_max_delay=1)
    assert list(backoff_delays(s)) == [1, 1, 1]


def test_backoff_default_schedule_is_bounded() -> None:
    s = parse_settings([], {})
    delays = list(backoff_delays(s))
    assert len(delays) == s.retries - 1
    assert sum(delays) < 60  # the default gives up within a minute (plus timeouts)


# -- reply classification -------------------------------------------------------------------


def test_reply_pattern_follows_the_protocol_format() -> None:
    pat = reply_pattern()
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

    def attempt(self, _: ClientSettings) -> Attempt:
        self.calls += 1
        return self.results[min(self.calls - 1, len(self.results) - 1)]

    def run(self, settings: ClientSettings) -> int:
        return run(settings, attempt=self.attempt, sleep=self.sleeps.append,
                   out=self.out.append, err=self.err.append)


REFUSED = Attempt(Outcome.RETRY, "127.0.0.1:5001: connect: Connection refused")


def test_run_retries_then_prints() -> None:
    sc = Script(REFUSED, REFUSED, Attempt(Outcome.REPLY, line=REPLY))
    s = ClientSettings(host="127.0.0.1", retries=5, retry_delay=0.5, retry_max_delay=5)
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
    s = ClientSettings(host="127.0.0.1", retries=4, retry_delay=1, retry_max_delay=3)
    assert sc.run(s) == 1
    assert sc.calls == 4
    assert sc.sleeps == [1, 2, 3]
    assert sc.err[-1] == (
        "python-client: giving up on 127.0.0.1:5001 after 4 attempts; "
        "last error: 127.0.0.1:5001: connect: Connection refused"
    )


def test_run_stops_at_a_fatal_answer() -> None:
    sc = Script(REFUSED, Attempt(Outcome.FATAL, "server answered: ERROR unknown-command x"))
    assert sc.run(ClientSettings(host="h", retries=9)) == 1
    assert sc.calls == 2
    assert sc.err[-1] == "python-client: h:5001: server answered: ERROR unknown-command x"
