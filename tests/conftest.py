"""Shared fixtures: a real ``cocaine-runtime`` on an ephemeral port, and an async runner."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.processes import RuntimeProcess

SRC = Path(__file__).resolve().parent.parent / "src"


def _compiled_state() -> str:
    """'pure', 'compiled', or why the compiled extensions cannot be trusted."""
    extensions = list((SRC / "cocaine").rglob("*.so"))
    if not extensions:
        return "pure"
    stamp = SRC / ".compiled"
    if not stamp.exists():
        return "stale: extensions without a build stamp"
    for line in stamp.read_text().splitlines()[1:]:
        digest, _, name = line.partition("  ")
        if hashlib.sha1((SRC / name).read_bytes()).hexdigest() != digest:
            return f"stale: {name} changed since it was compiled"
    return "compiled"


def pytest_report_header() -> str:
    import cocaine.rpc.connection

    compiled = not cocaine.rpc.connection.__file__.endswith(".py")
    where = Path(cocaine.rpc.connection.__file__).parent.parent
    return f"cocaine from {where}: {'compiled' if compiled else 'plain Python'}"


def pytest_sessionstart(session: pytest.Session) -> None:
    state = _compiled_state()
    if state.startswith("stale"):
        pytest.exit(f"compiled extensions are {state}: run scripts/compile (or --pure)", 2)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop (the project has no pytest-asyncio)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in names}
        asyncio.run(pyfuncitem.obj(**kwargs))
        return True
    return None


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[RuntimeProcess]:
    """A runtime with its own state dir, bound to loopback on an ephemeral locator port."""
    proc = RuntimeProcess(tmp_path / "state")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def runtime_factory(tmp_path: Path) -> Iterator[Any]:
    """Start runtimes with extra arguments (a token, a config file); all stopped at the end."""
    started: list[RuntimeProcess] = []

    def start(*args: str, state: Path | None = None, **kwargs: Any) -> RuntimeProcess:
        proc = RuntimeProcess(state or tmp_path / "state", list(args), **kwargs)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
