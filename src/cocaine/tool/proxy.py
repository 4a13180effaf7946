"""``cocaine-tool proxy start``: run the HTTP proxy in the foreground (it replaces the tool).

The proxy is its own program, ``cocaine-proxy``; this command only finds it and replaces
itself with it (``exec``), passing the HTTP port, the number of worker processes and the
locator. It looks next to the running Python first (the same virtualenv), then on ``PATH``,
and falls back to ``python -m cocaine.proxy``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from cocaine.tool.context import Settings, connection_options, pass_settings

PROXY = "cocaine-proxy"


def proxy_program() -> list[str]:
    """The argv prefix that runs the proxy."""
    here = Path(sys.executable).parent / PROXY
    if here.is_file() and os.access(here, os.X_OK):
        return [str(here)]
    found = shutil.which(PROXY)
    if found:
        return [found]
    return [sys.executable, "-m", "cocaine.proxy"]


def proxy_command(port: int, count: int, locator: str) -> list[str]:
    """The whole argv of the proxy."""
    return [*proxy_program(), "--port", str(port), "--count", str(count), "--locator", locator]


@click.group("proxy")
@connection_options
def proxy_group() -> None:
    """Run the HTTP proxy that turns HTTP requests into app events."""


@proxy_group.command("start")
@click.option(
    "--port",
    "http_port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="HTTP port to listen on.",
)
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker processes (0 = one per CPU).",
)
@click.option(
    "--locator",
    metavar="HOST:PORT",
    help="The runtime's locator [default: COCAINE_LOCATOR, else localhost:10053].",
)
@pass_settings
def start(settings: Settings, http_port: int, count: int, locator: str | None) -> None:
    """Start the proxy in the foreground: http://HOST:PORT/<app>/<event>[?args].

    The locator is --locator, else the tool's --host/--port, else COCAINE_LOCATOR.
    """
    argv = proxy_command(http_port, count, locator or settings.locator)
    sys.stdout.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot run {argv[0]}: {exc.strerror}") from None


__all__ = ["proxy_command", "proxy_group", "proxy_program"]
