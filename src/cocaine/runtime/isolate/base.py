"""The isolate protocol: how the runtime unpacks an app and starts its worker processes.

An isolate ``spool``s an app archive into a directory, then ``spawn``s workers there. A spawned
worker is a :class:`Handle`: it can be asked to terminate, killed, and awaited, and it keeps
the last lines of its output for crashlogs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

OutputSink = Callable[[str], None]


class Handle(Protocol):
    pid: int
    output: deque[str]

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    async def close(self) -> None:
        """Stop reading output; the process must already have exited or been killed."""


class Isolate(Protocol):
    async def spool(self, app: str, archive: bytes) -> Path:
        """Unpack ``archive`` for ``app``; return the app's working directory."""

    async def spawn(
        self,
        workdir: Path,
        executable: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        output_lines: int,
        on_output: OutputSink | None = None,
    ) -> Handle:
        """Start one worker process."""


__all__ = ["Handle", "Isolate", "OutputSink"]
