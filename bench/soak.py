#!/usr/bin/env python3
"""A long, reproducible soak of a real runtime and HTTP proxy (run it through ``scripts/soak``).

``python bench/soak.py [SECONDS]`` (default 600) starts ``cocaine-runtime`` and ``cocaine-proxy``
on loopback in a temporary directory, deploys an echo app, and drives it for SECONDS with

* RPC lanes: ``--in-flight`` requests (default 64) over 8 connections, each with a unique id
  that the reply must echo exactly;
* HTTP lanes: ``--http-connections`` keep-alive connections (default 16) through the proxy,
  ``GET /soak/http?id=<unique id>``, the body must be that id;
* ``wrk`` through the proxy when it is installed (``--no-wrk`` to skip), with a Lua check that
  every response is a 200 whose body is the request's id.

Every 10 s it prints the resident memory of the runtime, the proxy and the workers. At the end it
fails (exit status 1) on any lost, duplicated or wrong reply, any error, any ``wrk`` socket error
or bad response, or runtime/proxy RSS growth beyond ``--rss-growth-mb`` between the first sample
after warm-up and the last. It stops by itself and stops every process it started (they also
get SIGTERM if this script dies, through ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import io
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from cocaine.client import Service
from cocaine.errors import CocaineError

BIN = Path(sys.executable).parent
SAMPLE_EVERY = 10.0
RPC_CONNECTIONS = 8

APP = '''#!/usr/bin/env python3
"""The soak app: ``echo`` returns its chunk; ``http`` answers GET ?id=X with body X."""

import msgpack

from cocaine.worker import Worker


async def echo(request, response):
    response.write(await request.read())


async def http(request, response):
    method, uri, version, headers, body = msgpack.unpackb(await request.read(), raw=True)
    rid = uri.partition(b"id=")[2].partition(b"&")[0]
    head = [200, [[b"Content-Type", b"text/plain"], [b"Content-Length", b"%d" % len(rid)]]]
    response.write(msgpack.packb(head, use_bin_type=False))
    response.write(rid)


Worker().run({"echo": echo, "http": http})
'''
PROFILE = {"pool-limit": 4, "concurrency": 16, "queue-limit": 200, "grow-threshold": 4}

WRK_LUA = r"""
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
function init(args)
  ok, bad, seq = 0, 0, 0
  path = "/soak/http?id=wrk" .. tid .. "-"
end
function request()
  seq = seq + 1
  return wrk.format("GET", path .. seq)
end
function response(status, headers, body)
  if status == 200 and body:match("^wrk%d+%-%d+$") then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk-check requests=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, e.connect, e.read, e.write, e.timeout, e.status))
  for _, t in ipairs(threads) do
    io.write(string.format("wrk-thread ok=%d bad=%d\n", t:get("ok"), t:get("bad")))
  end
end
"""


# -- processes ----------------------------------------------------------------------------------


class SoakError(Exception):
    """The soak could not run (a process did not start, the app did not deploy)."""


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when this script's process goes away."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A started process whose stderr goes to a log file; ``ready`` resolves on a pattern."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, argv: list[str], ready: str, timeout: float = 30) -> re.Match[str]:
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        found: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(re.compile(ready), found))
        try:
            async with asyncio.timeout(timeout):
                return await found
        except (TimeoutError, EOFError):
            tail = "".join(self.lines[-20:])
            raise SoakError(f"{self.name} did not become ready:\n{tail}") from None

    async def _read(self, ready: re.Pattern[str], found: asyncio.Future[re.Match[str]]) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with self.log_path.open("w") as log:
            async for raw in self.proc.stderr:
                line = raw.decode(errors="replace")
                log.write(line)
                self.lines.append(line)
                del self.lines[:-200]
                m = ready.search(line)
                if m and not found.done():
                    found.set_result(m)
        if not found.done():
            found.set_exception(EOFError())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, timeout: float = 30) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return proc.returncode


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
    return found


def tree_rss_kb(pid: int) -> int:
    return rss_kb(pid) + sum(tree_rss_kb(c) for c in children(pid))


# -- load ---------------------------------------------------------------------------------------


@dataclass
class Lane:
    """What one kind of client sent and got back."""

    sent: int = 0
    replies: Counter[bytes] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(self.replies.values())

    def problems(self, name: str) -> list[str]:
        out = [f"{name}: {e}" for e in self.errors[:5]]
        if len(self.errors) > 5:
            out.append(f"{name}: … {len(self.errors)} errors in all")
        dups = [rid for rid, n in self.replies.items() if n > 1]
        if dups:
            out.append(f"{name}: {len(dups)} ids answered more than once, e.g. {dups[:3]}")
        lost = self.sent - len(self.replies) - len(self.errors)
        if lost:
            out.append(f"{name}: {lost} ids sent and never answered")
        return out


async def rpc_lane(n: int, service: Service, lane: Lane, until: Callable[[], bool]) -> None:
    seq = 0
    while not until():
        seq += 1
        rid = b"rpc%d-%d" % (n, seq)
        lane.sent += 1
        try:
            async with asyncio.timeout(30):
                stream = await service.call("enqueue", "echo")
                await stream.write(rid)
                await stream.close()
                got = [chunk async for chunk in stream]
        except (CocaineError, TimeoutError) as exc:
            lane.errors.append(f"{rid!r}: {exc!r}")
            continue
        if got != [rid]:
            lane.errors.append(f"{rid!r}: wrong reply {got!r}")
        else:
            lane.replies[rid] += 1


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if x)}
    if "content-length" in fields:
        return status, await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                return status, body
    return status, await reader.read()


async def http_lane(n: int, port: int, lane: Lane, until: Callable[[], bool]) -> None:
    seq = 0
    writer: asyncio.StreamWriter | None = None
    try:
        while not until():
            seq += 1
            rid = b"http%d-%d" % (n, seq)
            lane.sent += 1
            try:
                async with asyncio.timeout(30):
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"GET /soak/http?id=%s HTTP/1.1\r\nHost: soak\r\n\r\n" % rid)
                    status, body = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
                lane.errors.append(f"{rid!r}: {exc!r}")
                if writer is not None:
                    writer.close()
                writer = None
                continue
            if status != 200 or body != rid:
                lane.errors.append(f"{rid!r}: status {status}, body {body[:80]!r}")
            else:
                lane.replies[rid] += 1
    finally:
        if writer is not None:
            writer.close()


@dataclass
class WrkResult:
    ran: bool = False
    output: str = ""
    requests: int = 0
    problems: list[str] = field(default_factory=list)


async def run_wrk(port: int, seconds: int, workdir: Path) -> WrkResult:
    result = WrkResult()
    wrk = shutil.which("wrk")
    if wrk is None:
        return result
    script = workdir / "check.lua"
    script.write_text(WRK_LUA)
    proc = await asyncio.create_subprocess_exec(
        wrk,
        "-t2",
        "-c16",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    try:
        async with asyncio.timeout(seconds + 60):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    result.ran, result.output = True, out.decode(errors="replace")
    check = re.search(r"wrk-check requests=(\d+) (.*)", result.output)
    if proc.returncode != 0 or check is None:
        result.problems.append(f"wrk failed (status {proc.returncode}):\n{result.output}")
        return result
    result.requests = int(check.group(1))
    for name, value in re.findall(r"(\w+)=(\d+)", check.group(2)):
        if int(value):
            result.problems.append(f"wrk: {value} {name} errors")
    for ok, bad in re.findall(r"wrk-thread ok=(\d+) bad=(\d+)", result.output):
        if int(bad):
            result.problems.append(f"wrk: {bad} bad responses (of {int(ok) + int(bad)})")
    return result


# -- the run ------------------------------------------------------------------------------------


def pack_app() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = APP.encode()
        info = tarfile.TarInfo("worker.py")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def deploy(locator: str) -> None:
    storage = Service("storage", locator=locator)
    node = Service("node", locator=locator)
    try:
        blob = msgpack.packb(pack_app(), use_bin_type=False)
        await storage.write("apps", "soak", blob, ["app"])
        await storage.write("manifests", "soak", msgpack.packb({"slave": "worker.py"}), ["app"])
        await storage.write("profiles", "soak", msgpack.packb(PROFILE), ["profile"])
        await node.start_app("soak", "soak")
    finally:
        storage.close()
        node.close()


@dataclass
class Sample:
    t: float
    runtime_kb: int
    proxy_kb: int
    workers_kb: int
    rpc: int
    http: int


def mib(kb: int) -> str:
    return f"{kb / 1024:8.1f}"


async def soak(args: argparse.Namespace, workdir: Path) -> list[str]:
    seconds: int = args.seconds
    runtime = Child("cocaine-runtime", workdir / "runtime.log")
    proxy = Child("cocaine-proxy", workdir / "proxy.log")
    problems: list[str] = []
    try:
        m = await runtime.start(
            [
                str(BIN / "cocaine-runtime"),
                "--port",
                "0",
                "--endpoint",
                "127.0.0.1",
                "--state-dir",
                str(workdir / "state"),
            ],
            r"cocaine-runtime: ready, locator on (\S+):(\d+)",
        )
        locator = f"127.0.0.1:{m.group(2)}"
        m = await proxy.start(
            [
                str(BIN / "cocaine-proxy"),
                "--port",
                "0",
                "--host",
                "127.0.0.1",
                "--locator",
                locator,
            ],
            r"cocaine-proxy: ready on port (\d+)",
        )
        http_port = int(m.group(1))
        await deploy(locator)
        print(
            f"soak: {seconds}s, runtime pid {runtime.pid} (locator {locator}), "
            f"proxy pid {proxy.pid} (port {http_port}), logs in {workdir}",
            flush=True,
        )
        problems += await drive(args, workdir, runtime, proxy, locator, http_port)
    finally:
        proxy_status = await proxy.stop()
        runtime_status = await runtime.stop()
    if runtime_status != 0:
        problems.append(f"cocaine-runtime exited with status {runtime_status}")
    if proxy_status != 0:
        problems.append(f"cocaine-proxy exited with status {proxy_status}")
    return problems


async def drive(
    args: argparse.Namespace,
    workdir: Path,
    runtime: Child,
    proxy: Child,
    locator: str,
    http_port: int,
) -> list[str]:
    seconds: int = args.seconds
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop_at = start + seconds

    def over() -> bool:
        return loop.time() >= stop_at

    rpc, http = Lane(), Lane()
    services = [Service("soak", locator=locator, timeout=30) for _ in range(RPC_CONNECTIONS)]
    samples: list[Sample] = []
    warm_up = min(30.0, seconds / 6)

    def sample() -> Sample:
        s = Sample(
            round(loop.time() - start, 1),
            rss_kb(runtime.pid),
            tree_rss_kb(proxy.pid),
            sum(tree_rss_kb(c) for c in children(runtime.pid)),
            rpc.answered,
            http.answered,
        )
        samples.append(s)
        mark = " (warm-up)" if s.t < warm_up else ""
        print(
            f"{s.t:7.1f} {mib(s.runtime_kb)} {mib(s.proxy_kb)} {mib(s.workers_kb)}"
            f" {s.rpc:10d} {s.http:10d}{mark}",
            flush=True,
        )
        return s

    async def sampler() -> None:
        print("   t(s) rt(MiB) px(MiB) wk(MiB)    rpc ok    http ok", flush=True)
        while not over():
            sample()
            # Time-driven sampling for the report; nothing waits on it.
            await asyncio.sleep(min(SAMPLE_EVERY, max(0.0, stop_at - loop.time())))

    wrk: asyncio.Task[WrkResult] | None = None
    try:
        async with asyncio.TaskGroup() as group:
            if args.wrk:
                wrk = group.create_task(run_wrk(http_port, seconds, workdir))
            for n in range(args.in_flight):
                group.create_task(rpc_lane(n, services[n % RPC_CONNECTIONS], rpc, over))
            for n in range(args.http_connections):
                group.create_task(http_lane(n, http_port, http, over))
            group.create_task(sampler())
    finally:
        for service in services:
            service.close()
    sample()

    problems = rpc.problems("rpc") + http.problems("http")
    wrk_result = wrk.result() if wrk is not None else WrkResult()
    problems += wrk_result.problems
    info = Service("soak", locator=locator)
    try:
        report = await info.info()
    finally:
        info.close()
    if report["requests"]["rejected"]:
        problems.append(f"the app rejected {report['requests']['rejected']} requests")

    measured = [s for s in samples if s.t >= warm_up] or samples[-1:]
    first, last = measured[0], samples[-1]
    limit = args.rss_growth_mb * 1024
    for name, a, b in (
        ("runtime", first.runtime_kb, last.runtime_kb),
        ("proxy", first.proxy_kb, last.proxy_kb),
    ):
        if b - a > limit:
            problems.append(f"{name} RSS grew {(b - a) / 1024:.1f} MiB (> {args.rss_growth_mb})")

    elapsed = loop.time() - start
    print()
    print(f"{'':10}{'sent':>10}{'answered':>10}{'errors':>8}{'per s':>9}")
    for name, lane in (("rpc", rpc), ("http", http)):
        print(
            f"{name:10}{lane.sent:10d}{lane.answered:10d}{len(lane.errors):8d}"
            f"{lane.answered / elapsed:9.0f}"
        )
    if wrk_result.ran:
        print(
            f"{'wrk':10}{wrk_result.requests:10d}{'':10}{'':8}{wrk_result.requests / elapsed:9.0f}"
        )
    else:
        print("wrk: not installed" if args.wrk else "wrk: skipped (--no-wrk)")
    print(
        f"RSS growth after warm-up ({first.t:.0f}s → {last.t:.0f}s): "
        f"runtime {(last.runtime_kb - first.runtime_kb) / 1024:+.1f} MiB, "
        f"proxy {(last.proxy_kb - first.proxy_kb) / 1024:+.1f} MiB, "
        f"workers {(last.workers_kb - first.workers_kb) / 1024:+.1f} MiB "
        f"(limit {args.rss_growth_mb} MiB for runtime and proxy)"
    )
    return problems


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n")[0])
    parser.add_argument("seconds", nargs="?", type=int, default=600, help="default 600")
    parser.add_argument("--in-flight", type=int, default=64, help="RPC requests in flight")
    parser.add_argument("--http-connections", type=int, default=16)
    parser.add_argument("--rss-growth-mb", type=float, default=30.0)
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip wrk")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    workdir = Path(tempfile.mkdtemp(prefix="cocaine-soak-"))
    ok = False
    try:
        try:
            async with asyncio.timeout(args.seconds + 180):  # setup and teardown included
                problems = await soak(args, workdir)
        except (SoakError, CocaineError, TimeoutError) as exc:
            problems = [f"the soak could not run: {exc!r}"]
        for problem in problems:
            print(f"FAIL {problem}")
        ok = not problems
        print("soak: PASS" if ok else "soak: FAIL")
        return 0 if ok else 1
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"soak: logs kept in {workdir}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        status = asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("soak: interrupted", file=sys.stderr)
        status = 130
    print(f"soak: finished in {time.monotonic() - started:.0f}s", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
