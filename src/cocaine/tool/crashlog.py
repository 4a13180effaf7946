"""``cocaine-tool crashlog ...``: the output the runtime kept of workers that died.

A crashlog is ``crashlogs/<µs since epoch>:<worker uuid>``, tagged with the app's name (and
the day), holding a msgpack array of the worker's last output lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import click

from cocaine.tool.context import (
    Session,
    Settings,
    ToolError,
    connection_options,
    pass_settings,
    run,
)
from cocaine.tool.storage import CRASHLOGS, Store, decode

app_option = click.option("-n", "--name", required=True, help="The app's name.")
timestamp_option = click.option(
    "-t", "--timestamp", help="The crashlog's timestamp (µs since the epoch, as `list` shows)."
)


@dataclass(frozen=True, order=True)
class CrashlogKey:
    """A crashlog's storage key, ``<µs since epoch>:<uuid>``, split."""

    timestamp: int
    uuid: str

    @classmethod
    def parse(cls, key: str) -> CrashlogKey | None:
        stamp, sep, uuid = key.partition(":")
        if not sep or not stamp.isdigit():
            return None
        return cls(int(stamp), uuid)

    @property
    def key(self) -> str:
        return f"{self.timestamp}:{self.uuid}"

    @property
    def when(self) -> str:
        """The time in local time, readable."""
        moment = datetime.fromtimestamp(self.timestamp / 1_000_000, tz=UTC).astimezone()
        return moment.strftime("%Y-%m-%d %H:%M:%S")


async def _keys(session: Session, app: str, timestamp: str | None = None) -> list[CrashlogKey]:
    """The app's crashlogs, oldest first; only those at ``timestamp`` if given."""
    found = await Store(session).find(CRASHLOGS, [app])
    keys = sorted(k for k in map(CrashlogKey.parse, found) if k is not None)
    if timestamp is not None:
        keys = [k for k in keys if str(k.timestamp) == timestamp or k.key == timestamp]
        if not keys:
            raise ToolError(f"app '{app}' has no crashlog at {timestamp}")
    return keys


def format_lines(value: object) -> list[str]:
    """A stored crashlog as text lines (an array of strings, or anything else as one line)."""
    items = value if isinstance(value, list) else [value]
    lines = []
    for item in items:
        if isinstance(item, bytes):
            item = item.decode("utf-8", "replace")
        lines.append(str(item).rstrip("\n"))
    return lines


@click.group("crashlog")
@connection_options
def crashlog_group() -> None:
    """Read and remove the crashlogs of an app's workers."""


@crashlog_group.command("list")
@app_option
@connection_options
@pass_settings
def list_crashlogs(settings: Settings, name: str) -> None:
    """List an app's crashlogs: time, timestamp and worker uuid."""
    for key in run(settings, lambda session: _keys(session, name)):
        click.echo(f"{key.when}  {key.timestamp}  {key.uuid}")


@crashlog_group.command("view")
@app_option
@timestamp_option
@connection_options
@pass_settings
def view(settings: Settings, name: str, timestamp: str | None) -> None:
    """Print a crashlog (the latest one unless --timestamp is given)."""

    async def work(session: Session) -> list[str]:
        keys = await _keys(session, name, timestamp)
        if not keys:
            raise ToolError(f"app '{name}' has no crashlogs")
        blob = await Store(session).read(CRASHLOGS, keys[-1].key)
        return format_lines(decode(blob))

    for line in run(settings, work):
        click.echo(line)


@crashlog_group.command("remove")
@app_option
@timestamp_option
@connection_options
@pass_settings
def remove(settings: Settings, name: str, timestamp: str | None) -> None:
    """Remove an app's crashlogs (all of them unless --timestamp is given)."""

    async def work(session: Session) -> int:
        store = Store(session)
        keys = await _keys(session, name, timestamp)
        for key in keys:
            await store.remove(CRASHLOGS, key.key)
        return len(keys)

    count = run(settings, work)
    click.echo(f"{count} crashlog{'' if count == 1 else 's'} of app '{name}' removed")


crashlog_group.add_command(remove, "removeall")

__all__ = ["CrashlogKey", "crashlog_group", "format_lines"]
