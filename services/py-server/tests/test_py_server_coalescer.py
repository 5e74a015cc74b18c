"""Read coalescing of the Python server (points_server.reader.Coalescer), with a fake reader."""

from __future__ import annotations

from points_server.reader import UNAVAILABLE, Coalescer, ReadResult, format_reply


class FakeReader:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.reads = 0

    def request_read(self) -> bool:
        if self.up:
            self.reads += 1
        return self.up


class Waiter:
    def __init__(self) -> None:
        self.answers: list[ReadResult] = []

    def answer(self, result: ReadResult, now: float) -> None:
        self.answers.append(result)


def ok(started: float = 0.0) -> ReadResult:
    return ReadResult(b"User: u, Points: 1, Last Update: 2026-01-05 10:11:12\n", "", started)


def test_requests_during_a_read_wait_for_the_next_one() -> None:
    reader = FakeReader()
    co = Coalescer(reader, max_staleness=0)  # type: ignore[arg-type]
    first, second, third = Waiter(), Waiter(), Waiter()
    co.submit(first, 1.0)
    co.submit(second, 1.1)
    co.submit(third, 1.2)
    assert reader.reads == 1
    r1 = ok(1.0)
    co.deliver(r1)
    assert first.answers == [r1] and not second.answers and not third.answers
    assert reader.reads == 2  # the next read started at once, for both waiting requests
    r2 = ok(1.3)
    co.deliver(r2)
    assert second.answers == [r2] and third.answers == [r2]
    assert co.waiting() == []


def test_database_down_answers_at_once() -> None:
    reader = FakeReader(up=False)
    co = Coalescer(reader, max_staleness=0)  # type: ignore[arg-type]
    w = Waiter()
    co.submit(w, 1.0)
    assert w.answers == [UNAVAILABLE] and reader.reads == 0


def test_failed_read_fails_its_batch_and_the_next_if_still_down() -> None:
    reader = FakeReader()
    co = Coalescer(reader, max_staleness=0)  # type: ignore[arg-type]
    a, b = Waiter(), Waiter()
    co.submit(a, 1.0)
    co.submit(b, 1.1)
    reader.up = False
    co.deliver(UNAVAILABLE)
    assert a.answers == [UNAVAILABLE] and b.answers == [UNAVAILABLE]


def test_staleness_reuses_a_recent_read() -> None:
    reader = FakeReader()
    co = Coalescer(reader, max_staleness=0.5)  # type: ignore[arg-type]
    a, b, c = Waiter(), Waiter(), Waiter()
    co.submit(a, 10.0)
    result = ok(started=10.0)
    co.deliver(result)
    co.submit(b, 10.4)  # the read started 0.4 s before: reused
    assert b.answers == [result] and reader.reads == 1
    co.submit(c, 10.6)  # too old: a new read
    assert not c.answers and reader.reads == 2


def test_without_staleness_every_reply_comes_from_a_later_read() -> None:
    reader = FakeReader()
    co = Coalescer(reader, max_staleness=0)  # type: ignore[arg-type]
    a, b = Waiter(), Waiter()
    co.submit(a, 10.0)
    co.deliver(ok(10.0))
    co.submit(b, 10.0)
    assert not b.answers and reader.reads == 2


def test_format_reply_is_the_protocol_line() -> None:
    assert format_reply("python_user-akmal", 7, "2026-02-03 04:05:06") == (
        b"User: python_user-akmal, Points: 7, Last Update: 2026-02-03 04:05:06\n")
    assert format_reply("u", b"12", bytearray(b"2026-02-03 04:05:06")) == (
        b"User: u, Points: 12, Last Update: 2026-02-03 04:05:06\n")
