"""The command line a runtime launches a worker with, and what it tells the worker's clients.

The runtime starts a worker as ``<slave> --app <name> --endpoint <unix socket> --locator
<h1:p1,[v6]:p2> --protocol 1 --uuid <uuid4>`` (v11 runtimes omit ``--protocol``). Parsing is
lenient: unknown arguments are left alone, so an app may take options of its own.

The locator list is handed to :class:`~cocaine.client.Service` through ``COCAINE_LOCATOR``,
unless that variable is already set (an operator's override wins).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

LOCATOR_ENV = "COCAINE_LOCATOR"


@dataclass(frozen=True)
class WorkerOptions:
    """What the runtime passed on the command line; ``None`` where an option was absent."""

    app: str | None = None
    endpoint: str | None = None
    locator: str | None = None
    protocol: int | None = None
    uuid: str | None = None

    @classmethod
    def from_argv(cls, argv: Sequence[str] | None = None) -> WorkerOptions:
        """Parse ``argv`` (default ``sys.argv[1:]``), ignoring anything unknown."""
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        for name in ("--app", "--endpoint", "--locator", "--uuid"):
            parser.add_argument(name, default=None)
        parser.add_argument("--protocol", default=None)
        known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
        protocol: int | None
        try:
            protocol = int(known.protocol) if known.protocol is not None else None
        except ValueError:
            protocol = None
        return cls(known.app, known.endpoint, known.locator, protocol, known.uuid)


def export_locator(locator: str | None) -> None:
    """Make ``locator`` (a comma list) the default locator of clients in this process.

    Does nothing when ``locator`` is empty or ``COCAINE_LOCATOR`` is already set.
    """
    if locator and not os.environ.get(LOCATOR_ENV):
        os.environ[LOCATOR_ENV] = locator


__all__ = ["LOCATOR_ENV", "WorkerOptions", "export_locator"]
