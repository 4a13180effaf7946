"""``cocaine-tool profile ...``: upload, list, view and remove profiles.

A profile (``profiles/<name>``, tag ``profile``) is a msgpack map of pool and timeout settings
and the isolate; the node reads it when an app starts. ``upload`` takes a JSON file or an
inline JSON object, checks that it is an object, and stores it as given.
"""

from __future__ import annotations

import click

from cocaine.tool.arguments import load_json_object
from cocaine.tool.context import (
    Session,
    Settings,
    connection_options,
    echo_json,
    pass_settings,
    run,
)
from cocaine.tool.storage import PROFILES, Store

name_option = click.option("-n", "--name", required=True, help="The profile's name.")


@click.group("profile")
@connection_options
def profile_group() -> None:
    """Manage profiles: the pool, timeout and isolate settings apps run with."""


@profile_group.command("list")
@connection_options
@pass_settings
def list_profiles(settings: Settings) -> None:
    """List profiles."""
    for name in run(settings, lambda session: Store(session).find(PROFILES)):
        click.echo(name)


@profile_group.command("view")
@name_option
@connection_options
@pass_settings
def view(settings: Settings, name: str) -> None:
    """Show a profile as JSON."""
    echo_json(run(settings, lambda session: Store(session).read_map(PROFILES, name)))


@profile_group.command("upload")
@name_option
@click.option(
    "-r",
    "--profile",
    "source",
    required=True,
    metavar="FILE_OR_JSON",
    help="A JSON file, or the JSON object itself ('{\"pool-limit\": 4}').",
)
@connection_options
@pass_settings
def upload(settings: Settings, name: str, source: str) -> None:
    """Store a profile from a JSON file or an inline JSON object."""
    profile = load_json_object(source, "profile")
    run(settings, lambda session: Store(session).write_value(PROFILES, name, profile))
    click.echo(f"profile '{name}' uploaded")


@profile_group.command("remove")
@name_option
@connection_options
@pass_settings
def remove(settings: Settings, name: str) -> None:
    """Remove a profile."""
    run(settings, lambda session: Store(session).remove_existing(PROFILES, name))
    click.echo(f"profile '{name}' removed")


@profile_group.command("copy")
@name_option
@click.option("--copyname", required=True, help="The name of the copy.")
@connection_options
@pass_settings
def copy(settings: Settings, name: str, copyname: str) -> None:
    """Copy a profile under a new name."""

    async def work(session: Session) -> None:
        store = Store(session)
        await store.write(PROFILES, copyname, await store.read(PROFILES, name))

    run(settings, work)
    click.echo(f"profile '{name}' copied to '{copyname}'")


__all__ = ["profile_group"]
