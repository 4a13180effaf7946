"""Deploy tiny inline apps to a real runtime and talk to them, as the tools and clients do.

``deploy`` packs worker source into ``apps/<name>`` (a msgpack raw of tar.gz bytes), writes
``manifests/<name>`` and ``profiles/<profile>`` and starts the app through the node service.
``call`` sends one event and collects the reply stream. ``wait_until`` is the single place a
test waits on state that only the runtime's own reports show.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgpack

from cocaine.client import Service
from cocaine.errors import EndOfStream, ServiceError
from cocaine.protocol.headers import Header

SHEBANG = "#!/usr/bin/env python3"
T = TypeVar("T")


def pack_app(files: dict[str, str], mode: int = 0o755) -> bytes:
    """Write ``files`` into a temporary app directory and pack it as tar.gz (members relative)."""
    with tempfile.TemporaryDirectory(prefix="cocaine-app-") as tmp:
        root = Path(tmp)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode if text.startswith("#!") else 0o644)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path in sorted(root.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
        return buf.getvalue()


def worker_source(source: str) -> str:
    """Dedented source with the shebang as its first line."""
    text = textwrap.dedent(source).lstrip("\n")
    return text if text.startswith("#!") else f"{SHEBANG}\n{text}"


async def upload(
    locator: str,
    name: str,
    source: str | dict[str, str] | None,
    profile: dict[str, Any] | None,
    *,
    profile_name: str | None = None,
    manifest: dict[str, Any] | None = None,
    mode: int = 0o755,
) -> str:
    """Write whichever of archive, manifest and profile are given; return the profile's name."""
    profile_name = profile_name or name
    storage = Service("storage", locator=locator)
    try:
        if source is not None:
            files = {"worker.py": source} if isinstance(source, str) else dict(source)
            files = {path: worker_source(text) for path, text in files.items()}
            blob = msgpack.packb(pack_app(files, mode), use_bin_type=False)
            await storage.write("apps", name, blob, ["app"])
        if manifest is not None or source is not None:
            body = manifest if manifest is not None else {"slave": "worker.py"}
            await storage.write("manifests", name, msgpack.packb(body), ["app"])
        if profile is not None:
            await storage.write("profiles", profile_name, msgpack.packb(profile), ["profile"])
    finally:
        storage.close()
    return profile_name


async def deploy(
    locator: str,
    name: str,
    source: str | dict[str, str],
    profile: dict[str, Any],
    *,
    profile_name: str | None = None,
    manifest: dict[str, Any] | None = None,
    start: bool = True,
    mode: int = 0o755,
) -> None:
    """Upload an app built from inline worker source and (by default) start it.

    ``source`` is the text of ``worker.py`` or a map of relative paths to texts; each gets the
    ``#!/usr/bin/env python3`` first line when it has none and is made executable (``mode``).
    """
    profile_name = await upload(
        locator,
        name,
        source,
        profile,
        profile_name=profile_name,
        manifest=manifest,
        mode=mode,
    )
    if start:
        node = Service("node", locator=locator)
        try:
            await node.start_app(name, profile_name)
        finally:
            node.close()


async def call_stream(
    locator: str,
    app: str,
    event: str,
    *chunks: bytes,
    timeout: float = 10,
    headers: list[Header] | None = None,
) -> tuple[list[bytes], ServiceError | None]:
    """Enqueue ``event``, send ``chunks`` and close; return what came back and how it ended.

    The second item is the error that ended the reply (None when it closed normally), so a
    test can see the chunks that arrived before a failure.
    """
    service = Service(app, locator=locator, timeout=timeout)
    received: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            stream = await service.call("enqueue", event, headers=headers)
            for chunk in chunks:
                await stream.write(chunk)
            await stream.close()
            while True:
                try:
                    received.append(await stream.get())
                except EndOfStream:
                    return received, None
                except ServiceError as exc:
                    return received, exc
    finally:
        service.close()


async def call(
    locator: str,
    app: str,
    event: str,
    *chunks: bytes,
    timeout: float = 10,
    headers: list[Header] | None = None,
) -> list[bytes]:
    """Enqueue ``event`` with ``chunks``; the reply chunks, or the ServiceError it ended with."""
    received, error = await call_stream(
        locator, app, event, *chunks, timeout=timeout, headers=headers
    )
    if error is not None:
        raise error
    return received


async def app_info(locator: str, app: str) -> dict[str, Any]:
    """The app's own ``info`` report (the overseer report)."""
    service = Service(app, locator=locator)
    try:
        info: dict[str, Any] = await service.info()
        return info
    finally:
        service.close()


async def wait_until(
    predicate: Callable[[], Awaitable[T]], timeout: float, what: str = "the condition"
) -> T:
    """Re-check ``predicate`` until it returns something truthy; return that.

    This waits on the runtime's *report* (``info``, stored crashlogs): that state has no push
    channel a client could await, so the only way to observe it is to ask again. It asks every
    50 ms under a deadline and fails the test with the last answer when the deadline passes.
    Anything a test can await directly (a reply, a log line) must be awaited instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {result!r}")
        await asyncio.sleep(0.05)


def slaves(info: dict[str, Any]) -> dict[str, Any]:
    """The per-worker section of an info report."""
    pool: dict[str, Any] = info.get("pool", {})
    found: dict[str, Any] = pool.get("slaves", {})
    return found


def read_lines(path: Path) -> list[str]:
    """A worker-written log file as lines ([] before the worker created it)."""
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


__all__ = [
    "SHEBANG",
    "app_info",
    "call",
    "call_stream",
    "deploy",
    "pack_app",
    "read_lines",
    "slaves",
    "upload",
    "wait_until",
    "worker_source",
]
