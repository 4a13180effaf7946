"""Many deadlines, few timers.

A server with a deadline per request would create and cancel a loop timer per request. Here
deadlines fall into buckets of ``resolution`` seconds with one loop timer per bucket: adding is
a set insertion, leaving is ``bucket.discard(item)``. When a bucket's time comes, every item
still in it has its ``expire()`` called — at most ``resolution`` seconds after its own deadline.
A bucket that empties before its time is dropped with its timer, so far-off deadlines (a
profile's day-long ``request-timeout``) cost nothing once their requests are done.
"""

from __future__ import annotations

import asyncio
import math
from typing import Generic, Protocol, TypeVar


class Expiring(Protocol):
    def expire(self) -> None: ...


T = TypeVar("T", bound=Expiring)


class Bucket(Generic[T]):
    """The items due in one slot of time."""

    __slots__ = ("items", "owner", "slot", "timer")

    def __init__(self, owner: Deadlines[T], slot: int, timer: asyncio.TimerHandle) -> None:
        self.owner = owner
        self.slot = slot
        self.timer = timer
        self.items: set[T] = set()

    def discard(self, item: T) -> None:
        """``item`` leaves: it will not expire."""
        items = self.items
        items.discard(item)
        if not items:
            self.owner._drop(self)


class Deadlines(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.05) -> None:
        self._loop = loop
        self._resolution = resolution
        self._buckets: dict[int, Bucket[T]] = {}

    def add(self, item: T, when: float) -> Bucket[T]:
        """Call ``item.expire()`` soon after ``when`` (loop time) unless it leaves the returned
        bucket first (``bucket.discard(item)``)."""
        slot = math.ceil(when / self._resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            timer = self._loop.call_at(slot * self._resolution, self._fire, slot)
            bucket = self._buckets[slot] = Bucket(self, slot, timer)
        bucket.items.add(item)
        return bucket

    def _fire(self, slot: int) -> None:
        bucket = self._buckets.pop(slot, None)
        if bucket is not None:
            for item in list(bucket.items):
                item.expire()

    def _drop(self, bucket: Bucket[T]) -> None:
        if self._buckets.get(bucket.slot) is bucket:
            del self._buckets[bucket.slot]
            bucket.timer.cancel()

    @property
    def timers(self) -> int:
        """Loop timers pending: one per bucket that still holds items."""
        return len(self._buckets)

    def __len__(self) -> int:
        return sum(len(b.items) for b in self._buckets.values())

    def close(self) -> None:
        """Forget every deadline; nothing expires any more."""
        for bucket in self._buckets.values():
            bucket.timer.cancel()
        self._buckets.clear()


__all__ = ["Bucket", "Deadlines", "Expiring"]
