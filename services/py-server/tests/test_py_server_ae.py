"""The Python server's event loop for client descriptors (points_server.ae.Ae), nested in
asyncio as the C server's ae.c is its own loop."""

from __future__ import annotations

import asyncio
import socket

from points_server.ae import READABLE, WRITABLE, Ae


def test_callbacks_get_their_events_and_a_deleted_descriptor_none() -> None:
    async def scenario() -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        ae = Ae(loop)
        seen: list[tuple[str, int]] = []
        a, a_peer = socket.socketpair()
        b, b_peer = socket.socketpair()
        try:
            ae.add(a.fileno(), READABLE, lambda ev: seen.append(("a", ev)))
            ae.add(b.fileno(), READABLE, lambda ev: seen.append(("b", ev)))
            assert len(ae) == 2
            await asyncio.sleep(0.05)
            assert seen == []  # nothing ready: no callback
            a_peer.send(b"x")
            await asyncio.sleep(0.05)
            assert seen and {name for name, _ in seen} == {"a"}
            assert all(ev & READABLE for _, ev in seen)
            a.recv(1)
            seen.clear()
            ae.mod(b.fileno(), READABLE | WRITABLE)  # writable at once: an empty socket buffer
            await asyncio.sleep(0.05)
            assert seen and all(name == "b" and ev & WRITABLE for name, ev in seen)
            ae.delete(b.fileno())
            seen.clear()
            b_peer.send(b"y")
            await asyncio.sleep(0.05)
            assert seen == []  # deleted: never called again
            assert len(ae) == 1
        finally:
            ae.close()
            for s in (a, a_peer, b, b_peer):
                s.close()
        return seen

    asyncio.run(scenario())


def test_a_callback_may_delete_another_descriptor_of_the_same_batch() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        ae = Ae(loop)
        calls: list[str] = []
        pairs = [socket.socketpair() for _ in range(2)]
        fds = [p[0].fileno() for p in pairs]

        def first(_: int) -> None:
            calls.append("first")
            if fds[1] in ae_fds:
                ae.delete(fds[1])
                ae_fds.discard(fds[1])
            if fds[0] in ae_fds:
                ae.delete(fds[0])
                ae_fds.discard(fds[0])

        ae_fds = set(fds)
        # Whichever callback epoll reports first deletes both: the other is never called.
        ae.add(fds[0], READABLE, first)
        ae.add(fds[1], READABLE, first)
        for _, peer in pairs:
            peer.send(b"z")
        await asyncio.sleep(0.05)
        ae.close()
        for p in pairs:
            for s in p:
                s.close()
        return calls

    assert asyncio.run(scenario()) == ["first"]
