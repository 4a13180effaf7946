"""Lifecycle faults on a real runtime: SIGTERM mid-request, restart under load, SIGKILL mid-write.

Each test drives real processes (the ``cocaine-runtime`` of the ``runtime`` fixture, real Python
workers) and waits only on what the system itself signals: a reply chunk, a log line, a process
exit. The workers' simulated work is the only sleeping. Every client call runs under its own
deadline, so a hang fails the test instead of stalling the suite.

The runlist bringing apps back after an orderly restart is covered by
``tests/integration/test_apps.py::test_runlist_starts_apps_after_restart``; here it is the
restart after SIGKILL.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import msgpack

from cocaine.client import Service, Stream
from cocaine.errors import Category, CocaineError, ServiceError
from cocaine.protocol.headers import pack_u64
from support.apps import call, deploy, read_lines
from support.processes import RuntimeProcess

APP_STOPPED = (Category.GENERIC, errno.EPIPE)  # (12, 32): app stopped, or its connection closed
NOT_AVAILABLE = (Category.LOCATOR, 1)  # (10, 1): the locator does not know the app (the gap)
DIED = re.compile(r"worker \S+ died")  # the runtime's line for an abnormal worker exit

SLOW = """
import asyncio
import os

from cocaine.worker import Worker


async def forever(request, response):
    response.write(b"running")
    await asyncio.Event().wait()  # never finishes by itself


async def sleepy(request, response):
    seconds = float(await request.read())
    response.write(b"started")
    await asyncio.sleep(seconds)  # simulated work of the client's chosen length
    response.write(b"done")


async def slow(request, response):
    data = await request.read()
    response.write(b"started %d" % os.getpid())
    await asyncio.sleep(1.0)  # simulated work that outlives the runtime's SIGTERM
    response.write(data)


async def echo(request, response):
    data = await request.read()
    if "HANDLED" in os.environ:  # one line per event a worker ran, appended atomically
        with open(os.environ["HANDLED"], "ab") as handled:
            handled.write(data + b"\\n")
    response.write(data)


async def work(request, response):
    await asyncio.sleep(0.3)  # simulated work, so restarts find events in flight
    await echo(request, response)


worker = Worker()
HANDLERS = {"slow": slow, "echo": echo, "work": work, "forever": forever, "sleepy": sleepy}
worker.run(HANDLERS)
# Only an orderly stop gets here (run() exits with status 1 otherwise): record what stopped us.
reason = worker.stop_reason
with open(os.environ["MARKS"], "a") as marks:
    marks.write(f"{os.getpid()} {reason.code} {reason.reason}\\n")
"""


def _manifest(marks: Path, **env: Path) -> dict[str, object]:
    environment = {"MARKS": str(marks), **{name: str(path) for name, path in env.items()}}
    return {"slave": "worker.py", "environment": environment}


def _crashlogs(runtime: RuntimeProcess) -> list[str]:
    """Crashlog keys in the files backend's directory (read while the runtime is down)."""
    folder = runtime.state_dir / "storage" / "crashlogs"
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


# -- SIGTERM while requests are in flight ------------------------------------------------------


async def test_sigterm_drains_in_flight_requests_and_terminates_workers(
    runtime: RuntimeProcess, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    profile = {
        "pool-limit": 2,
        "concurrency": 3,
        "grow-threshold": 1,
        "seal-timeout": 5,
        "terminate-timeout": 5,
    }
    await deploy(runtime.locator, "drain", SLOW, profile, manifest=_manifest(marks))
    client = Service("drain", locator=runtime.locator, timeout=20)
    late = Service("drain", locator=runtime.locator, timeout=20)
    assert runtime.proc is not None
    try:
        streams: list[Stream] = []
        for n in range(6):
            stream = await client.call("enqueue", "slow")
            await stream.write(b"payload-%d" % n)
            await stream.close()
            streams.append(stream)
        # Every request has reached a worker once its "started" chunk is back.
        firsts = await asyncio.gather(*(s.get(timeout=20) for s in streams))
        pids = {int(chunk.split()[1]) for chunk in firsts}
        assert len(pids) == 2, firsts  # both workers are busy
        await late.connect()

        sent = time.monotonic()
        runtime.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(runtime.wait_for_log, r"cocaine\.runtime: stopping$", 10)
        # The app is stopping: a new event on a live connection is refused, not queued.
        refused = await late.call("enqueue", "echo")
        try:
            await refused.get(timeout=10)
            raise AssertionError("an event sent after SIGTERM was served")
        except ServiceError as exc:
            assert exc.pair == APP_STOPPED, exc

        # Every in-flight request still completes with its full reply.
        rests = await asyncio.gather(*(_rest(s, 20) for s in streams))
        assert rests == [[b"payload-%d" % n] for n in range(6)]

        code = await asyncio.to_thread(runtime.proc.wait, 20)
        elapsed = time.monotonic() - sent
    finally:
        client.close()
        late.close()
    assert code == 0, runtime.log
    # Drained in about the handlers' 1 s; seal-timeout (5 s) plus a margin bounds it.
    assert elapsed < 5 + 5, f"the runtime took {elapsed:.1f}s to stop"
    # Each worker was told [11, "overseer is shutting down"] and left in order (status 0).
    lines = sorted(read_lines(marks))
    assert [line.split(" ", 1)[0] for line in lines] == sorted(str(p) for p in pids)
    assert all(line.split(" ", 1)[1] == "11 overseer is shutting down" for line in lines), lines
    assert not DIED.search(runtime.log), runtime.log
    assert _crashlogs(runtime) == []


async def _rest(stream: Stream, timeout: float) -> list[bytes]:
    async with asyncio.timeout(timeout):
        return [chunk async for chunk in stream]


async def _drain(stream: Stream, timeout: float) -> tuple[list[bytes], ServiceError | None]:
    """The rest of a reply and the error that ended it (None when it closed normally)."""
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            async for chunk in stream:
                chunks.append(chunk)
    except ServiceError as exc:
        return chunks, exc
    return chunks, None


async def test_sigterm_cuts_a_request_that_outlives_the_seal_timeout(
    runtime: RuntimeProcess, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    profile = {"pool-limit": 1, "seal-timeout": 1, "terminate-timeout": 1}
    await deploy(runtime.locator, "stuck", SLOW, profile, manifest=_manifest(marks))
    client = Service("stuck", locator=runtime.locator, timeout=20)
    assert runtime.proc is not None
    try:
        stream = await client.call("enqueue", "forever")
        await stream.close()
        assert await stream.get(timeout=20) == b"running"
        sent = time.monotonic()
        runtime.proc.send_signal(signal.SIGTERM)
        # The client is not left hanging: the seal deadline ends the request with an error.
        try:
            extra = await stream.get(timeout=20)
            raise AssertionError(f"a reply after the seal timeout: {extra!r}")
        except ServiceError as exc:
            error = exc
        code = await asyncio.to_thread(runtime.proc.wait, 30)
        elapsed = time.monotonic() - sent
    finally:
        client.close()
    # the worker cut the handler short (42, 212), or the runtime failed it for the slave
    assert error.pair[0] in (Category.WORKER, Category.SLAVE), error
    assert code == 0, runtime.log
    # seal (1 s) + terminate (1 s) + the SIGTERM → SIGKILL step (5 s) bound it, with a margin.
    assert elapsed < 1 + 1 + 5 + 5, f"the runtime took {elapsed:.1f}s to stop"


async def _exited(pid: int, timeout: float) -> bool:
    """Wait (through a pidfd, no polling) until process ``pid`` is gone; False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(fd, lambda: gone.done() or gone.set_result(None))
    try:
        async with asyncio.timeout(timeout):
            await gone
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def test_sigkill_leaves_no_orphan_workers_and_the_runlist_comes_back(
    runtime: RuntimeProcess, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    profile = {"pool-limit": 2, "concurrency": 1, "grow-threshold": 1}
    await deploy(runtime.locator, "phoenix", SLOW, profile, manifest=_manifest(marks))
    storage = Service("storage", locator=runtime.locator)
    try:
        runlist = msgpack.packb({"phoenix": "phoenix"})
        await storage.write("runlists", "default", runlist, ["runlist"])
    finally:
        storage.close()
    client = Service("phoenix", locator=runtime.locator, timeout=20)
    try:
        streams = []
        for n in range(2):
            stream = await client.call("enqueue", "slow")
            await stream.write(b"before-%d" % n)
            await stream.close()
            streams.append(stream)
        firsts = await asyncio.gather(*(s.get(timeout=20) for s in streams))
        pids = {int(chunk.split()[1]) for chunk in firsts}
        assert len(pids) == 2

        await asyncio.to_thread(runtime.kill)
        # The requests in flight fail with the lost connection; they do not hang.
        for stream in streams:
            try:
                got = await stream.get(timeout=20)
                raise AssertionError(f"a reply from a killed runtime: {got!r}")
            except CocaineError as exc:
                assert exc.pair == APP_STOPPED, exc
    finally:
        client.close()
    # The workers notice the lost socket and leave on their own (status 1, no terminate mark).
    assert all(await asyncio.gather(*(_exited(pid, 20) for pid in pids))), pids
    assert read_lines(marks) == []

    await asyncio.to_thread(runtime.restart)
    reply = await call(runtime.locator, "phoenix", "echo", b"after", timeout=20)
    assert reply == [b"after"]


# -- one event ends early: the others on the same worker must not notice ----------------------


async def _bystander_survives(runtime: RuntimeProcess, end_early: str) -> None:
    """Two events on one worker; the first ends early (client gone / deadline); the second
    must still get its full reply and the worker must live on."""
    await deploy(runtime.locator, "shared", SLOW, {"pool-limit": 1, "concurrency": 8})
    victim_client = Service("shared", locator=runtime.locator, timeout=20)
    bystander_client = Service("shared", locator=runtime.locator, timeout=20)
    try:
        headers = [(b"request_timeout", pack_u64(300))] if end_early == "deadline" else None
        victim = await victim_client.call("enqueue", "sleepy", headers=headers)
        await victim.write(b"1.0")
        await victim.close()
        bystander = await bystander_client.call("enqueue", "sleepy")
        await bystander.write(b"2.0")
        await bystander.close()
        assert await bystander.get(timeout=20) == b"started"
        if end_early == "client gone":
            assert await victim.get(timeout=20) == b"started"
            victim_client.close()  # the client goes away mid-event
        else:
            chunks, error = await _drain(victim, 20)
            assert chunks in ([], [b"started"]), chunks
            assert error is not None and error.pair == (Category.NODE, 3), error  # timed out
        # The worker writes its late "done" to the victim's channel at 1 s; the bystander must
        # still get its own reply at 2 s from the same, living worker.
        assert await _rest(bystander, 20) == [b"done"]
    finally:
        victim_client.close()
        bystander_client.close()
    assert not DIED.search(runtime.log), runtime.log


async def test_a_client_leaving_mid_event_does_not_fail_the_workers_other_events(
    runtime: RuntimeProcess,
) -> None:
    await _bystander_survives(runtime, "client gone")


async def test_a_timed_out_event_does_not_fail_the_workers_other_events(
    runtime: RuntimeProcess,
) -> None:
    await _bystander_survives(runtime, "deadline")


# -- app restart while clients stream requests -------------------------------------------------


class _Tally:
    """What the load loops saw: successes (by id), error pairs, wrong replies, hangs."""

    def __init__(self) -> None:
        self.ok: Counter[bytes] = Counter()
        self.errors: Counter[tuple[int, int]] = Counter()
        self.wrong: list[tuple[bytes, object]] = []
        self.hung: list[bytes] = []
        self.progress = asyncio.Condition()

    async def succeeded(self, rid: bytes) -> None:
        self.ok[rid] += 1
        async with self.progress:
            self.progress.notify_all()

    async def wait_for_successes(self, count: int, timeout: float) -> None:
        target = sum(self.ok.values()) + count
        async with asyncio.timeout(timeout), self.progress:
            await self.progress.wait_for(lambda: sum(self.ok.values()) >= target)


async def _one(service: Service, event: str, rid: bytes, tally: _Tally, deadline: float) -> None:
    try:
        async with asyncio.timeout(deadline):
            stream = await service.call("enqueue", event)
            await stream.write(rid)
            await stream.close()
            reply = [chunk async for chunk in stream]
    except TimeoutError:
        tally.hung.append(rid)
        return
    except CocaineError as exc:
        tally.errors[exc.pair] += 1
        return
    if reply != [rid]:
        tally.wrong.append((rid, reply))
        return
    await tally.succeeded(rid)


RESTARTS = 4


async def test_app_restart_under_load(runtime: RuntimeProcess, tmp_path: Path) -> None:
    marks, handled = tmp_path / "marks", tmp_path / "handled"
    profile = {"pool-limit": 2, "concurrency": 8, "seal-timeout": 5, "terminate-timeout": 2}
    await deploy(runtime.locator, "hot", SLOW, profile, manifest=_manifest(marks, HANDLED=handled))
    tally = _Tally()
    running = True

    async def client(n: int) -> None:
        service = Service("hot", locator=runtime.locator, timeout=10)
        event = "work" if n < 2 else "echo"  # two slow clients, four fast ones
        seq = 0
        try:
            while running:
                seq += 1
                await _one(service, event, b"%d-%d" % (n, seq), tally, deadline=15)
        finally:
            service.close()

    node = Service("node", locator=runtime.locator, timeout=20)
    try:
        async with asyncio.TaskGroup() as group:
            for n in range(6):
                group.create_task(client(n))
            try:
                for _ in range(RESTARTS):
                    await tally.wait_for_successes(80, timeout=30)
                    await node.pause_app("hot")
                    await node.start_app("hot", "hot")
                await tally.wait_for_successes(80, timeout=30)
            finally:
                running = False
    finally:
        node.close()

    assert not tally.hung, f"requests without an answer within their deadline: {tally.hung[:5]}"
    assert not tally.wrong, f"wrong replies: {tally.wrong[:5]}"
    assert all(count == 1 for count in tally.ok.values())
    # Every event a worker ran was answered to its client, and none ran twice.
    ran = Counter(line.encode() for line in read_lines(handled))
    assert set(ran) == set(tally.ok), set(ran) ^ set(tally.ok)
    assert max(ran.values()) == 1
    unexpected = {
        pair: n for pair, n in tally.errors.items() if pair not in (APP_STOPPED, NOT_AVAILABLE)
    }
    assert not unexpected, f"errors other than app-stopped / not-available: {unexpected}"
    assert sum(tally.ok.values()) >= 80 * (RESTARTS + 1)
    # Every restart stopped its workers in order: terminate [11, …], exit status 0, no crashlog.
    assert len(read_lines(marks)) >= RESTARTS
    assert all(" 11 overseer is shutting down" in line for line in read_lines(marks))
    assert not DIED.search(runtime.log), runtime.log


# -- SIGKILL while a client writes to storage --------------------------------------------------

VALUE_BYTES = 64 * 1024


def _value(key: str, version: int) -> bytes:
    """A self-checking value: ``key|version|`` + filler + sha256 of everything before it."""
    head = f"{key}|{version}|".encode()
    body = head + bytes([version % 251]) * VALUE_BYTES
    return body + hashlib.sha256(body).digest()


def _version(key: str, blob: bytes) -> int:
    """The version a stored value holds; fails on a torn or foreign value."""
    body, digest = blob[:-32], blob[-32:]
    assert hashlib.sha256(body).digest() == digest, f"{key}: torn value ({len(blob)} bytes)"
    name, version, _ = body.split(b"|", 2)
    assert name.decode() == key
    return int(version)


async def test_storage_writes_survive_sigkill(runtime: RuntimeProcess) -> None:
    keys = [[f"w{w}-k{k}" for k in range(6)] for w in range(4)]
    acked: dict[str, int] = {}  # the last version each key's write was acknowledged for
    writes = asyncio.Condition()

    async def writer(mine: list[str]) -> None:
        storage = Service("storage", locator=runtime.locator, timeout=10)
        try:
            version = 0
            while True:  # until the kill breaks the connection
                version += 1
                for key in mine:
                    await storage.write("kv", key, _value(key, version), ["kill-test"])
                    acked[key] = version
                    async with writes:
                        writes.notify_all()
        except CocaineError:
            return  # the runtime is gone
        finally:
            storage.close()

    async with asyncio.TaskGroup() as group:
        for mine in keys:
            group.create_task(writer(mine))
        async with asyncio.timeout(60), writes:
            await writes.wait_for(lambda: sum(acked.values()) >= 600)
        # SIGKILL lands while all four writers are busy: some writes are half done on the server.
        await asyncio.to_thread(runtime.kill)
    assert runtime.proc is not None and runtime.proc.returncode == -signal.SIGKILL

    await asyncio.to_thread(runtime.restart)
    storage = Service("storage", locator=runtime.locator, timeout=20)
    try:
        found = set(await storage.find("kv", ["kill-test"]))
        for key in (k for mine in keys for k in mine):
            if key not in acked:
                continue  # its first write may or may not have landed
            assert key in found
            version = _version(key, await storage.read("kv", key))
            # the acknowledged value, or the one being written at the kill; never a torn one
            assert version in (acked[key], acked[key] + 1), (key, version, acked[key])
        # the storage works normally after the crash
        await storage.write("kv", "after", b"fine", ["kill-test"])
        assert await storage.read("kv", "after") == b"fine"
    finally:
        storage.close()
    # On disk, besides the keys, at most the hidden temporary files of the interrupted writes.
    files = {p.name for p in (runtime.state_dir / "storage" / "kv").iterdir() if p.is_file()}
    assert all(name.startswith(".") for name in files - found - {"after"}), files - found
