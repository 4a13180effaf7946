"""Run the real ``cocaine-tool`` against a test runtime, with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.processes import RuntimeProcess

BIN = Path(sys.executable).parent
DEADLINE = 30.0


def tool_env(runtime: RuntimeProcess) -> dict[str, str]:
    return {**os.environ, "COCAINE_LOCATOR": runtime.locator, "COCAINE_TOKEN": ""}


def tool(runtime: RuntimeProcess, *args: str, cwd: Path | None = None) -> str:
    """Run ``cocaine-tool ARGS`` (killed past the deadline); return its stdout."""
    done = subprocess.run(
        [str(BIN / "cocaine-tool"), *args],
        cwd=cwd,
        env=tool_env(runtime),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, f"cocaine-tool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout
