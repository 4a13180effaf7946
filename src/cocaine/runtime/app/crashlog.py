"""Crashlogs: the last output lines of a worker that died abnormally, kept in storage.

Collection ``crashlogs``, key ``"<µs since epoch>:<worker uuid>"``, value a msgpack array of
lines, tags ``[<app>, "cocaine-YYYY-MM-DD"]``, the layout the command-line tool reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import msgpack

from cocaine.errors import CocaineError
from cocaine.runtime.services.storage import Backend

log = logging.getLogger(__name__)

COLLECTION = "crashlogs"


async def store_crashlog(
    storage: Backend, app: str, uuid: str, lines: Iterable[str], now: float | None = None
) -> str:
    stamp = time.time() if now is None else now
    key = f"{int(stamp * 1_000_000)}:{uuid}"
    day = time.strftime("cocaine-%Y-%m-%d", time.gmtime(stamp))
    blob = msgpack.packb(list(lines), use_bin_type=False)
    try:
        await storage.write(COLLECTION, key, blob, [app, day])
    except CocaineError as exc:
        log.warning("app %s: cannot store crashlog %s: %s", app, key, exc)
    return key


__all__ = ["COLLECTION", "store_crashlog"]
