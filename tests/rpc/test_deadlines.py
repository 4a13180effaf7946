"""Bucketed deadlines: items expire after their time unless they leave first; a bucket that
empties gives up its loop timer, so far-off deadlines cost nothing once met."""

from __future__ import annotations

import asyncio

from cocaine.rpc.deadlines import Bucket, Deadlines

T = 5.0
DAY = 86400.0


class Item:
    def __init__(self) -> None:
        self.expired = asyncio.Event()
        self.bucket: Bucket[Item] | None = None

    def expire(self) -> None:
        if self.bucket is not None:  # as the app invocations do: leave, then report
            self.bucket.discard(self)
        self.expired.set()


async def test_an_item_expires_after_its_deadline_and_not_before() -> None:
    loop = asyncio.get_running_loop()
    deadlines: Deadlines[Item] = Deadlines(loop, resolution=0.01)
    item = Item()
    due = loop.time() + 0.05
    item.bucket = deadlines.add(item, due)
    await asyncio.wait_for(item.expired.wait(), T)
    assert loop.time() >= due
    assert deadlines.timers == 0 and len(deadlines) == 0


async def test_items_that_leave_never_expire_and_free_their_timers() -> None:
    loop = asyncio.get_running_loop()
    deadlines: Deadlines[Item] = Deadlines(loop, resolution=0.01)
    items = [Item() for _ in range(50)]
    for i, item in enumerate(items):
        item.bucket = deadlines.add(item, loop.time() + DAY + i)  # 50 distinct slots
    assert deadlines.timers == 50 and len(deadlines) == 50
    for item in items:
        assert item.bucket is not None
        item.bucket.discard(item)
    assert deadlines.timers == 0 and len(deadlines) == 0


async def test_a_shared_bucket_keeps_its_timer_until_the_last_item_leaves() -> None:
    loop = asyncio.get_running_loop()
    deadlines: Deadlines[Item] = Deadlines(loop, resolution=1.0)
    first, second, late = Item(), Item(), Item()
    when = loop.time() + DAY
    first.bucket = deadlines.add(first, when)
    second.bucket = deadlines.add(second, when)
    assert first.bucket is second.bucket and deadlines.timers == 1
    first.bucket.discard(first)
    assert deadlines.timers == 1 and len(deadlines) == 1
    second.bucket.discard(second)
    assert deadlines.timers == 0
    # the slot can be used again afterwards, with a fresh timer that does fire
    late.bucket = deadlines.add(late, loop.time() + 0.02)
    stay = Item()
    deadlines.add(stay, loop.time() + 0.02)
    await asyncio.wait_for(late.expired.wait(), T)
    await asyncio.wait_for(stay.expired.wait(), T)


async def test_close_forgets_everything() -> None:
    loop = asyncio.get_running_loop()
    deadlines: Deadlines[Item] = Deadlines(loop, resolution=0.01)
    item = Item()
    item.bucket = deadlines.add(item, loop.time() + 0.01)
    deadlines.close()
    assert deadlines.timers == 0 and len(deadlines) == 0
    other = Item()
    deadlines.add(other, loop.time() + 0.01)
    await asyncio.wait_for(other.expired.wait(), T)  # still usable, and the closed one is gone
    assert not item.expired.is_set()
