"""Start real ``cocaine-runtime`` processes and wait for their readiness line, with deadlines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

READY = re.compile(r"cocaine-runtime: ready, locator on (\S+):(\d+)")
BIN = Path(sys.executable).parent


class RuntimeProcess:
    def __init__(
        self,
        state_dir: Path,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.state_dir = state_dir
        self.args = args or []
        self.env = {**os.environ, **(env or {})}
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._changed = threading.Condition()

    @property
    def locator(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self._ready.clear()
        self.proc = subprocess.Popen(
            [
                str(BIN / "cocaine-runtime"),
                "--port",
                str(self.port),
                "--endpoint",
                "127.0.0.1",
                "--state-dir",
                str(self.state_dir),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("runtime did not become ready:\n" + "".join(self.lines[-30:]))

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
            m = READY.search(line)
            if m:
                self.port = int(m.group(2))
                self._ready.set()
        with self._changed:
            self._changed.notify_all()
        self._ready.set()

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """Block until a log line matches ``pattern``; return it."""
        rx = re.compile(pattern)
        with self._changed:
            ok = self._changed.wait_for(
                lambda: (
                    any(rx.search(x) for x in self.lines)
                    or (self.proc is not None and self.proc.poll() is not None)
                ),
                timeout,
            )
            for line in self.lines:
                if rx.search(line):
                    return line
        raise AssertionError(
            f"no log line matching {pattern!r} (waited={ok}):\n" + "".join(self.lines[-30:])
        )

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 20.0) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.lines.clear()
        self.start()
