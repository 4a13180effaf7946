"""The process isolate: workers are child processes of the runtime.

Each worker runs in the app's spool directory with the runtime's environment plus the
manifest's, in its own session (so a terminal's Ctrl-C reaches only the runtime), with stdout
and stderr merged into one pipe whose last lines are kept for crashlogs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from cocaine.errors import Category, CocaineError, Node
from cocaine.runtime.isolate.archive import unpack
from cocaine.runtime.isolate.base import OutputSink

log = logging.getLogger(__name__)


class ProcessHandle:
    def __init__(
        self, proc: asyncio.subprocess.Process, lines: int, on_output: OutputSink | None
    ) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.output: deque[str] = deque(maxlen=max(1, lines))
        self._on_output = on_output
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        stream = self._proc.stdout
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raw = await stream.read(64 * 1024)  # an over-long line: keep going
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.output.append(line)
            if self._on_output is not None:
                self._on_output(line)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        code = await self._proc.wait()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._reader), 1.0)  # the last lines
        return code

    def terminate(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()

    def kill(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class ProcessIsolate:
    def __init__(self, spool_dir: Path) -> None:
        self.spool_dir = spool_dir

    async def spool(self, app: str, archive: bytes) -> Path:
        dest = self.spool_dir / app
        await asyncio.to_thread(unpack, archive, dest)
        return dest

    async def spawn(
        self,
        workdir: Path,
        executable: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        output_lines: int,
        on_output: OutputSink | None = None,
    ) -> ProcessHandle:
        path = Path(executable) if os.path.isabs(executable) else workdir / executable
        try:
            proc = await asyncio.create_subprocess_exec(
                str(path),
                *argv,
                cwd=str(workdir),
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                limit=1024 * 1024,
            )
        except OSError as exc:
            raise CocaineError(
                f"cannot start {path}: {exc.strerror or exc}", Category.NODE, Node.RESOURCE
            ) from None
        return ProcessHandle(proc, output_lines, on_output)


__all__ = ["ProcessHandle", "ProcessIsolate"]
