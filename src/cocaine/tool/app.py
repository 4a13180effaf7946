"""``cocaine-tool app ...``: upload, list, view, remove, start, stop/pause and restart apps.

Uploaded apps live in storage as ``apps/<name>`` (the tar.gz as a msgpack raw) and
``manifests/<name>`` (the manifest as a msgpack map), both tagged ``app``. Starting, pausing
and restarting go to the node service.
"""

from __future__ import annotations

from pathlib import Path

import click

from cocaine.errors import Category, Node, ServiceError
from cocaine.idl import InfoFlags
from cocaine.tool.context import (
    Session,
    Settings,
    ToolError,
    connection_options,
    echo_json,
    pass_settings,
    run,
)
from cocaine.tool.package import Package, build
from cocaine.tool.storage import APPS, MANIFESTS, Store, encode

UPLOAD_TIMEOUT = 120.0

name_option = click.option("-n", "--name", required=True, help="The app's name.")


@click.group("app")
@connection_options
def app_group() -> None:
    """Manage apps: upload, inspect and run them."""


@app_group.command("upload")
@click.argument(
    "path", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
@click.option("-n", "--name", help="App name [default: the manifest's name, else PATH's name].")
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest file [default: PATH/manifest.json].",
)
@click.option(
    "--package",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Upload this ready tar.gz instead of packing PATH.",
)
@connection_options
@pass_settings
def upload(
    settings: Settings, path: Path, name: str | None, manifest: Path | None, package: Path | None
) -> None:
    """Pack the app in PATH (default: the current directory) and upload it.

    The manifest must name the app's executable as "slave"; the file must be executable.
    """
    pkg = build(path, name=name, manifest_file=manifest, package_file=package)
    run(settings, lambda session: _upload(session, pkg), timeout=UPLOAD_TIMEOUT)
    size = len(pkg.archive)
    click.echo(f"app '{pkg.name}' uploaded ({_human_size(size)})")


async def _upload(session: Session, pkg: Package) -> None:
    store = Store(session)
    await store.write(APPS, pkg.name, encode(pkg.archive))
    await store.write(MANIFESTS, pkg.name, encode(pkg.manifest))


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@app_group.command("list")
@connection_options
@pass_settings
def list_apps(settings: Settings) -> None:
    """List uploaded apps."""
    for name in run(settings, lambda session: Store(session).find(MANIFESTS)):
        click.echo(name)


@app_group.command("view")
@name_option
@connection_options
@pass_settings
def view(settings: Settings, name: str) -> None:
    """Show an app's manifest as JSON."""
    echo_json(run(settings, lambda session: Store(session).read_map(MANIFESTS, name)))


@app_group.command("remove")
@name_option
@connection_options
@pass_settings
def remove(settings: Settings, name: str) -> None:
    """Remove an uploaded app (its package and manifest)."""

    async def work(session: Session) -> None:
        store = Store(session)
        if not await store.exists(MANIFESTS, name) and not await store.exists(APPS, name):
            raise ToolError(f"app '{name}' is not found")
        await store.remove(APPS, name)
        await store.remove(MANIFESTS, name)

    run(settings, work)
    click.echo(f"app '{name}' removed")


@app_group.command("start")
@name_option
@click.option("-r", "--profile", required=True, help="The profile to run the app with.")
@connection_options
@pass_settings
def start(settings: Settings, name: str, profile: str) -> None:
    """Start an app with a profile."""
    run(settings, lambda session: session.call("node", "start_app", name, profile))
    click.echo(f"app '{name}' started with profile '{profile}'")


@app_group.command("pause")
@name_option
@connection_options
@pass_settings
def pause(settings: Settings, name: str) -> None:
    """Stop a running app (its workers finish their work)."""
    run(settings, lambda session: session.call("node", "pause_app", name))
    click.echo(f"app '{name}' stopped")


app_group.add_command(pause, "stop")


@app_group.command("restart")
@name_option
@click.option("-r", "--profile", help="Profile to start with [default: the one it runs with].")
@connection_options
@pass_settings
def restart(settings: Settings, name: str, profile: str | None) -> None:
    """Stop an app if it runs, then start it again (with PROFILE, or the current one)."""
    used = run(settings, lambda session: _restart(session, name, profile))
    click.echo(f"app '{name}' restarted with profile '{used}'")


async def _restart(session: Session, name: str, profile: str | None) -> str:
    if profile is None:
        try:
            info = await session.call("node", "info", name, InfoFlags.OVERSEER_REPORT)
        except ServiceError as exc:
            if _not_running(exc):
                raise ToolError(
                    f"app '{name}' is not running; give --profile to start it"
                ) from None
            raise
        profile = _profile_name(info)
        if profile is None:
            raise ToolError(f"app '{name}' reports no profile; give --profile")
    try:
        await session.call("node", "pause_app", name)
    except ServiceError as exc:
        if not _not_running(exc):
            raise
    await session.call("node", "start_app", name, profile)
    return profile


def _not_running(exc: ServiceError) -> bool:
    return exc.category == Category.NODE and exc.code == Node.NOT_RUNNING


def _profile_name(info: object) -> str | None:
    if not isinstance(info, dict):
        return None
    profile = info.get("profile")
    if isinstance(profile, dict):
        profile = profile.get("name")
    return profile if isinstance(profile, str) else None


__all__ = ["app_group"]
