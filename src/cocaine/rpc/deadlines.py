"""Many deadlines, few timers.

A server with a deadline per request would create and cancel a loop timer per request. Here
deadlines fall into buckets of ``resolution`` seconds with one loop timer per bucket: adding is
a set insertion, cancelling a set removal. When a bucket's time comes, every item still in it
has its ``expire()`` called — at most ``resolution`` seconds after its own deadline.
"""

from __future__ import annotations

import asyncio
import math
from typing import Generic, Protocol, TypeVar


class Expiring(Protocol):
    def expire(self) -> None: ...


T = TypeVar("T", bound=Expiring)


class Deadlines(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.05) -> None:
        self._loop = loop
        self._resolution = resolution
        self._buckets: dict[int, set[T]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def add(self, item: T, when: float) -> set[T]:
        """Call ``item.expire()`` soon after ``when`` (loop time) unless it leaves the returned
        bucket first (``bucket.discard(item)``)."""
        slot = math.ceil(when / self._resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            self._timers[slot] = self._loop.call_at(slot * self._resolution, self._fire, slot)
        bucket.add(item)
        return bucket

    def _fire(self, slot: int) -> None:
        self._timers.pop(slot, None)
        bucket = self._buckets.pop(slot, None)
        if bucket:
            for item in list(bucket):
                item.expire()

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def close(self) -> None:
        """Forget every deadline; nothing expires any more."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._buckets.clear()


__all__ = ["Deadlines", "Expiring"]
