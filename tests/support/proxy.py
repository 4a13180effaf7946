"""Start real ``cocaine-proxy`` processes and speak raw HTTP/1.x to them.

``ProxyProcess`` runs ``cocaine-proxy`` on loopback and blocks until it prints
``cocaine-proxy: ready on port N`` (once per serving process), under a deadline. ``exchange``
and ``read_response`` are a deliberately small HTTP client over asyncio streams, so tests see
the bytes the proxy sends (chunk boundaries, ``Connection`` handling, pipelined order) instead
of what a full client library would normalise away.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from types import TracebackType

from support.processes import BIN

READY = re.compile(r"cocaine-proxy: ready on port (\d+)")


def reserve_port() -> socket.socket:
    """A loopback socket bound with ``SO_REUSEPORT`` to a free port and not listening.

    Holding it keeps the port out of the kernel's ephemeral pool while proxy processes bind it
    with ``SO_REUSEPORT`` too; as it never listens, it takes no connections. Close it after.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ProxyProcess:
    """One ``cocaine-proxy`` command (a single server, or a supervisor with ``--count N``)."""

    def __init__(
        self, locator: str, args: list[str] | None = None, *, port: int = 0, servers: int = 1
    ) -> None:
        self.locator = locator
        self.args = args or []
        self.port = port
        self.servers = servers  # how many ready lines to wait for
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.ports: list[int] = []
        self._changed = threading.Condition()
        self._eof = False

    def start(self, timeout: float = 20.0) -> ProxyProcess:
        self.proc = subprocess.Popen(
            [
                str(BIN / "cocaine-proxy"),
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--locator",
                self.locator,
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        with self._changed:
            self._changed.wait_for(lambda: len(self.ports) >= self.servers or self._eof, timeout)
            ready = len(self.ports) >= self.servers
        if not ready:
            self.kill()
            raise RuntimeError("proxy did not become ready:\n" + self.log)
        self.port = self.ports[0]
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._changed:
                self.lines.append(line)
                self.ports += [int(port) for port in READY.findall(line)]
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "".join(self.lines[-40:])

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """Block until a stderr line matches ``pattern``; return it."""
        rx = re.compile(pattern)
        with self._changed:
            self._changed.wait_for(
                lambda: self._eof or any(rx.search(x) for x in self.lines), timeout
            )
            for line in self.lines:
                if rx.search(line):
                    return line
        raise AssertionError(f"no proxy log line matching {pattern!r}:\n{self.log}")

    def rss_mb(self) -> float:
        """Resident memory of the proxy process, in MiB."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop) without waiting."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; kill if it does not exit within ``timeout``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self.kill()


# -- a small HTTP client ------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP response as it came off the wire."""

    version: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunks: list[bytes] | None = None  # the chunks, when the body was chunked
    raw: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


def request(
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    version: str = "1.1",
) -> bytes:
    """The bytes of one request; ``Host`` and (for a body) ``Content-Length`` are added."""
    fields = {"Host": "127.0.0.1", **(headers or {})}
    if body and "Content-Length" not in fields and "Transfer-Encoding" not in fields:
        fields["Content-Length"] = str(len(body))
    head = f"{method} {target} HTTP/{version}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode("latin-1") + b"\r\n" + body


async def read_response(reader: asyncio.StreamReader, method: str = "GET") -> Reply:
    """Read one response: by Content-Length, by chunks, or (neither) to the end of stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[:-2]
    version, status, *_ = lines[0].split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])]
    reply = Reply(version, int(status), headers)
    raw = [head]
    length = reply.header("Content-Length")
    if method == "HEAD" or reply.status in (204, 304):
        pass
    elif (reply.header("Transfer-Encoding") or "").lower() == "chunked":
        reply.chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            raw += [size_line, data]
            if size == 0:
                break
            reply.chunks.append(data[:-2])
        reply.body = b"".join(reply.chunks)
    elif length is not None:
        reply.body = await reader.readexactly(int(length))
        raw.append(reply.body)
    else:
        reply.body = await reader.read()
        raw.append(reply.body)
    reply.raw = b"".join(raw)
    return reply


class Client:
    """One HTTP connection to the proxy, for keep-alive and pipelining tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, method: str = "GET", timeout: float = 10) -> Reply:
        async with asyncio.timeout(timeout):
            return await read_response(self.reader, method)

    async def at_eof(self, timeout: float = 10) -> bool:
        """True when the proxy closed the connection (nothing more to read)."""
        async with asyncio.timeout(timeout):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


async def exchange(port: int, data: bytes, method: str = "GET", timeout: float = 10) -> Reply:
    """Send one request on a fresh connection and read its response."""
    client = await Client.connect(port)
    try:
        await client.send(data)
        return await client.response(method, timeout)
    finally:
        await client.close()


async def get(port: int, target: str, headers: dict[str, str] | None = None) -> Reply:
    """``GET target`` over HTTP/1.1 on a fresh connection."""
    return await exchange(port, request("GET", target, headers=headers))


__all__ = [
    "READY",
    "Client",
    "ProxyProcess",
    "Reply",
    "exchange",
    "get",
    "read_response",
    "request",
    "reserve_port",
]
