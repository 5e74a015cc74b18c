"""A small event loop (after redis ae.c, as the C server's ``ae.c``): descriptors, each with its
callback, over one epoll of the server's own.

The client connections are watched here rather than with asyncio's ``add_reader``: that
creates a selector key and a handle per registration and a handle per event, which is most of
the loop's cost for a connection that lives one request. This epoll's own descriptor is
watched by asyncio (it is readable when a watched descriptor is ready), so timers,
``call_soon_threadsafe`` and the listener stay on asyncio; :meth:`Ae.run_once` then calls the
ready descriptors' callbacks directly. Level-triggered, as asyncio's.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable

# The event bits for callers (select.EPOLLIN and friends, under the C names).
READABLE = select.EPOLLIN
WRITABLE = select.EPOLLOUT
MAX_EVENTS = 256  # C: AE_MAX_EVENTS

Proc = Callable[[int], None]  # called with the events epoll reported


class Ae:
    """Descriptors with callbacks; :meth:`close` before the asyncio loop closes."""

    __slots__ = ("_ep", "_loop", "_procs")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ep = select.epoll()
        self._procs: dict[int, Proc] = {}
        loop.add_reader(self._ep.fileno(), self.run_once)

    def add(self, fd: int, events: int, proc: Proc) -> None:
        """Watch fd for events, calling proc (raises OSError from epoll_ctl)."""
        self._ep.register(fd, events)
        self._procs[fd] = proc

    def mod(self, fd: int, events: int) -> None:
        """Watch fd for other events from now on."""
        self._ep.modify(fd, events)

    def delete(self, fd: int) -> None:
        """Stop watching fd (before closing it)."""
        self._ep.unregister(fd)
        del self._procs[fd]

    def run_once(self) -> None:
        """Call the callbacks of what is ready now (asyncio calls this when it is).

        A callback may delete its own or another descriptor; an event of this batch for a
        deleted descriptor is dropped (a descriptor is only reused by an accept, which runs
        outside this batch, so an event never reaches the wrong connection)."""
        procs = self._procs
        for fd, events in self._ep.poll(0, MAX_EVENTS):
            proc = procs.get(fd)
            if proc is not None:
                proc(events)

    def __len__(self) -> int:
        return len(self._procs)

    def close(self) -> None:
        if not self._ep.closed:
            self._loop.remove_reader(self._ep.fileno())
            self._ep.close()
        self._procs.clear()
