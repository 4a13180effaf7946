"""``cocaine-tool info``: what the node runs, app by app, as tables or as JSON.

The node lists its running apps (``node.list``); each app's overseer report comes from
``node.info(app, 1)``. The report is a map (see the reference, §4 node): ``state``,
``profile.name``, ``queue {depth, capacity}``, ``pool {active, idle, capacity, slaves}``,
``requests {accepted, rejected}``, ``uptime`` … An app that fails to report shows its error
instead of failing the whole command.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click
from rich.console import Console, Group
from rich.table import Table

from cocaine.errors import CocaineError
from cocaine.idl import InfoFlags
from cocaine.tool.context import (
    Session,
    Settings,
    connection_options,
    describe,
    echo_json,
    pass_settings,
    run,
)

Report = dict[str, Any]


async def collect(session: Session, apps: list[str] | None) -> dict[str, Report]:
    """``{app: report}`` for the given apps, or for every app the node runs."""
    names: list[str] = await session.call("node", "list") if apps is None else apps

    async def one(app: str) -> Report:
        try:
            report = await session.call("node", "info", app, InfoFlags.OVERSEER_REPORT)
        except CocaineError as exc:
            return {"state": "error", "error": describe(exc)}
        return report if isinstance(report, dict) else {"report": report}

    async with asyncio.TaskGroup() as tg:
        tasks = {name: tg.create_task(one(name)) for name in sorted(names)}
    return {name: task.result() for name, task in tasks.items()}


def _get(report: Report, *path: str) -> Any:
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _ratio(report: Report, section: str, *keys: str) -> str:
    return " / ".join(_text(_get(report, section, key)) for key in keys)


def format_uptime(seconds: Any) -> str:
    """``93784`` → ``1d 02:03:04``; anything not a number → ``-``."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def app_table(name: str, report: Report) -> Group:
    """One app: a summary table, then a table of its slaves."""
    summary = Table(title=f"app {name}", title_justify="left", show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    profile = _get(report, "profile", "name") or _get(report, "profile")
    summary.add_row("state", _text(report.get("state")))
    if "error" in report:
        summary.add_row("error", _text(report["error"]))
        return Group(summary)
    summary.add_row("profile", _text(profile if isinstance(profile, str) else None))
    summary.add_row("uptime", format_uptime(report.get("uptime")))
    summary.add_row("queue depth / capacity", _ratio(report, "queue", "depth", "capacity"))
    summary.add_row(
        "pool active / idle / capacity", _ratio(report, "pool", "active", "idle", "capacity")
    )
    summary.add_row(
        "requests accepted / rejected", _ratio(report, "requests", "accepted", "rejected")
    )
    slaves = _get(report, "pool", "slaves")
    if not isinstance(slaves, dict) or not slaves:
        return Group(summary)
    table = Table(title="slaves", title_justify="left")
    for column in ("uuid", "pid", "state", "load", "accepted", "uptime"):
        table.add_column(column, justify="left" if column in ("uuid", "state") else "right")
    for uuid, slave in sorted(slaves.items()):
        slave = slave if isinstance(slave, dict) else {}
        table.add_row(
            str(uuid),
            _text(slave.get("pid")),
            _text(slave.get("state")),
            _text(slave.get("load")),
            _text(slave.get("accepted")),
            format_uptime(slave.get("uptime")),
        )
    return Group(summary, table)


def render(reports: dict[str, Report], console: Console) -> None:
    if not reports:
        console.print("no apps are running")
        return
    for i, (name, report) in enumerate(reports.items()):
        if i:
            console.print()
        console.print(app_table(name, report))


@click.command("info")
@click.option("-n", "--name", "names", multiple=True, help="Only this app (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print {app: report} as JSON.")
@connection_options
@pass_settings
def info(settings: Settings, names: tuple[str, ...], as_json: bool) -> None:
    """Show the state of running apps: queue, pool, requests and slaves."""
    apps = list(names) or None
    reports = run(settings, lambda session: collect(session, apps))
    if as_json:
        echo_json(reports)
    else:
        render(reports, Console(highlight=False))


__all__ = ["app_table", "collect", "format_uptime", "info", "render"]
