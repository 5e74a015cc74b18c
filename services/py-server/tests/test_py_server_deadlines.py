"""The Python server's shared-timer deadline queue (points_server.server.DeadlineQueue)."""

from __future__ import annotations

import asyncio

from points_server.server import DeadlineQueue


def test_entries_expire_in_order_after_their_duration() -> None:
    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        expired: list[tuple[str, float]] = []
        start = loop.time()
        queue: DeadlineQueue[str] = DeadlineQueue(
            loop, 0.05, lambda c: expired.append((c, loop.time() - start)))
        queue.add("a", loop.time())
        await asyncio.sleep(0.02)
        queue.add("b", loop.time())
        queue.add("gone", loop.time())
        queue.discard("gone")
        await asyncio.sleep(0.15)
        assert len(queue) == 0
        queue.close()
        return expired

    expired = asyncio.run(scenario())
    assert [name for name, _ in expired] == ["a", "b"]
    assert 0.045 <= expired[0][1] < 1.0  # never early; late only on a very busy machine
    assert expired[1][1] >= 0.065


def test_discarded_front_entry_does_not_expire_the_next_early() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        expired: list[str] = []
        queue = DeadlineQueue(loop, 0.1, expired.append)
        queue.add("first", loop.time())
        await asyncio.sleep(0.06)
        queue.add("second", loop.time())
        queue.discard("first")
        await asyncio.sleep(0.07)  # first's deadline passed; second's (0.16) not yet
        early = list(expired)
        await asyncio.sleep(0.1)
        queue.close()
        assert early == []
        return expired

    assert asyncio.run(scenario()) == ["second"]
