"""``cocaine-tool runlist ...``: the lists of apps (with profiles) the node starts at boot.

A runlist (``runlists/<name>``, tag ``runlist``) is a msgpack map ``{app: profile}``; the node
service starts every app of the runlist named in its config when the runtime starts.
"""

from __future__ import annotations

import click

from cocaine.tool.arguments import load_json_object
from cocaine.tool.context import (
    Session,
    Settings,
    ToolError,
    connection_options,
    echo_json,
    pass_settings,
    run,
)
from cocaine.tool.storage import RUNLISTS, Store

name_option = click.option("-n", "--name", required=True, help="The runlist's name.")


@click.group("runlist")
@connection_options
def runlist_group() -> None:
    """Manage runlists: the apps (and their profiles) the node starts at boot."""


@runlist_group.command("list")
@connection_options
@pass_settings
def list_runlists(settings: Settings) -> None:
    """List runlists."""
    for name in run(settings, lambda session: Store(session).find(RUNLISTS)):
        click.echo(name)


@runlist_group.command("view")
@name_option
@connection_options
@pass_settings
def view(settings: Settings, name: str) -> None:
    """Show a runlist as JSON: {app: profile}."""
    echo_json(run(settings, lambda session: Store(session).read_map(RUNLISTS, name)))


@runlist_group.command("create")
@name_option
@connection_options
@pass_settings
def create(settings: Settings, name: str) -> None:
    """Create an empty runlist."""

    async def work(session: Session) -> None:
        store = Store(session)
        if await store.exists(RUNLISTS, name):
            raise ToolError(f"runlist '{name}' already exists")
        await store.write_value(RUNLISTS, name, {})

    run(settings, work)
    click.echo(f"runlist '{name}' created")


@runlist_group.command("upload")
@name_option
@click.option(
    "--runlist",
    "source",
    required=True,
    metavar="FILE_OR_JSON",
    help='A JSON file, or the JSON object itself (\'{"echo": "default"}\').',
)
@connection_options
@pass_settings
def upload(settings: Settings, name: str, source: str) -> None:
    """Store a whole runlist from a JSON object {app: profile}."""
    runlist = load_json_object(source, "runlist")
    bad = [app for app, profile in runlist.items() if not isinstance(profile, str)]
    if bad:
        raise ToolError(f"runlist: the profile of '{bad[0]}' must be a string")
    run(settings, lambda session: Store(session).write_value(RUNLISTS, name, runlist))
    click.echo(f"runlist '{name}' uploaded")


@runlist_group.command("remove")
@name_option
@connection_options
@pass_settings
def remove(settings: Settings, name: str) -> None:
    """Remove a runlist."""
    run(settings, lambda session: Store(session).remove_existing(RUNLISTS, name))
    click.echo(f"runlist '{name}' removed")


@runlist_group.command("add-app")
@name_option
@click.option("--app", required=True, help="The app to add.")
@click.option("-r", "--profile", required=True, help="The profile to start it with.")
@click.option("-f", "--force", is_flag=True, help="Create the runlist if it does not exist.")
@connection_options
@pass_settings
def add_app(settings: Settings, name: str, app: str, profile: str, force: bool) -> None:
    """Add an app (with its profile) to a runlist; an app already there gets the new profile."""

    async def work(session: Session) -> None:
        store = Store(session)
        if force and not await store.exists(RUNLISTS, name):
            runlist = {}
        else:
            runlist = await store.read_map(RUNLISTS, name)
        runlist[app] = profile
        await store.write_value(RUNLISTS, name, runlist)

    run(settings, work)
    click.echo(f"app '{app}' added to runlist '{name}' with profile '{profile}'")


@runlist_group.command("remove-app")
@name_option
@click.option("--app", required=True, help="The app to remove.")
@connection_options
@pass_settings
def remove_app(settings: Settings, name: str, app: str) -> None:
    """Remove an app from a runlist."""

    async def work(session: Session) -> None:
        store = Store(session)
        runlist = await store.read_map(RUNLISTS, name)
        if runlist.pop(app, None) is None:
            raise ToolError(f"app '{app}' is not in runlist '{name}'")
        await store.write_value(RUNLISTS, name, runlist)

    run(settings, work)
    click.echo(f"app '{app}' removed from runlist '{name}'")


__all__ = ["runlist_group"]
