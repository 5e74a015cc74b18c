"""Connections per source address (design.md section 10), for MAX_CONNECTIONS_PER_SOURCE: the
addresses holding a connection in the server's table, with their count; an address leaves
when its count drops to zero. C: sources.c (a hash table of its own; here a dict)."""

from __future__ import annotations


class Sources:
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def count(self, source: str) -> int:
        """The connections source holds now."""
        return self.counts.get(source, 0)

    def add(self, source: str) -> None:
        self.counts[source] = self.counts.get(source, 0) + 1

    def remove(self, source: str) -> None:
        n = self.counts.get(source, 0)
        if n > 1:
            self.counts[source] = n - 1
        else:
            self.counts.pop(source, None)
