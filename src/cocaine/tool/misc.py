"""``cocaine-tool locate`` and ``cocaine-tool call``: look at and talk to any service.

``locate`` shows what the locator knows of a service: endpoints, version and the methods of
its graph. ``call`` invokes one method with arguments from the command line; for an app,
``call APP EVENT [DATA...]`` sends an event, the shape every app understands.
"""

from __future__ import annotations

from typing import Any

import click
import msgpack
from rich.console import Console
from rich.table import Table

from cocaine.client import Service, Stream
from cocaine.client.endpoints import format_endpoint
from cocaine.idl import APP
from cocaine.protocol.graph import CONTROL_IDS, Protocol, from_wire, kind
from cocaine.tool.arguments import parse_call_arg
from cocaine.tool.context import (
    Session,
    Settings,
    ToolError,
    connection_options,
    echo_json,
    pass_settings,
    run,
)


@click.command("locate")
@click.option("-n", "--name", required=True, help="The service to resolve.")
@connection_options
@pass_settings
def locate(settings: Settings, name: str) -> None:
    """Show a service's endpoints, version and methods, as the locator resolves them."""
    endpoints, version, graph = run(
        settings, lambda session: session.call("locator", "resolve", name)
    )
    root = from_wire(graph, name)
    console = Console(highlight=False)
    console.print(f"service [bold]{name}[/bold], version {version}")
    console.print("endpoints: " + ", ".join(format_endpoint(tuple(e)) for e in endpoints))
    table = Table("id", "method", "reply")
    for mid in sorted(root.messages):
        if mid not in CONTROL_IDS.values():
            message = root[mid]
            table.add_row(str(mid), message.alias, kind(message.upstream))
    console.print(table)


APP_METHODS = frozenset(APP.root.by_alias) - frozenset(CONTROL_IDS)


def _is_app(root: Protocol) -> bool:
    """True when the graph is an app's (enqueue, info, control)."""
    return set(root.by_alias) - set(CONTROL_IDS) == APP_METHODS


def show(value: Any) -> None:
    """Print a reply: text as is, bytes as UTF-8 (else their repr), structures as JSON."""
    if value is None:
        return
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            click.echo(repr(value))
            return
    if isinstance(value, str):
        click.echo(value)
    else:
        echo_json(value)


def _chunk(text: str, packed: bool) -> bytes:
    if not packed:
        return text.encode("utf-8")
    blob: bytes = msgpack.packb(parse_call_arg(text), use_bin_type=False)
    return blob


def _shown(chunk: Any, packed: bool) -> Any:
    if packed and isinstance(chunk, bytes):
        try:
            return msgpack.unpackb(chunk, raw=False)
        except (ValueError, msgpack.UnpackException):
            return chunk
    return chunk


async def _drain(stream: Stream, packed: bool) -> None:
    """Close our side if it is still open, then print every chunk until the stream ends."""
    send = stream.channel.state.send
    if send is not None and "close" in send.by_alias:
        await stream.tx.close()
    async for chunk in stream.rx:
        show(_shown(chunk, packed))


async def _enqueue(svc: Service, event: str, data: tuple[str, ...], packed: bool) -> None:
    stream = await svc.call("enqueue", event)
    assert isinstance(stream, Stream)
    for text in data:
        await stream.tx.write(_chunk(text, packed))
    await _drain(stream, packed)


async def _call(
    session: Session, name: str, method: str, args: tuple[str, ...], packed: bool
) -> None:
    svc = await session.service(name)
    root = svc.root
    assert root is not None
    if _is_app(root):
        # Every name but the app's own methods is an event (even "ping", a control alias).
        if method == "enqueue" and args:
            return await _enqueue(svc, args[0], args[1:], packed)
        if method not in APP_METHODS:
            return await _enqueue(svc, method, args, packed)
    if method not in root.by_alias:
        methods = ", ".join(sorted(set(root.by_alias) - set(CONTROL_IDS)))
        raise ToolError(f"service '{name}' has no method '{method}' (it has: {methods})")
    result = await svc.call(method, *(parse_call_arg(a) for a in args))
    if isinstance(result, Stream):
        await _drain(result, packed)
    else:
        show(result)


@click.command("call")
@click.argument("service")
@click.argument("method")
@click.argument("args", nargs=-1)
@click.option(
    "--msgpack",
    "packed",
    is_flag=True,
    help="For app events: send each DATA as the msgpack of its JSON value, unpack the replies.",
)
@connection_options
@pass_settings
def call(
    settings: Settings, service: str, method: str, args: tuple[str, ...], packed: bool
) -> None:
    """Call METHOD of SERVICE, or send an event to an app.

    \b
    A service method:  cocaine-tool call storage find manifests '["app"]'
      Each ARG is parsed as JSON when it is valid JSON ('42', '["a"]', '"42"'),
      else taken as a string. The reply is printed: text as is, bytes as UTF-8
      (or their repr), maps and arrays as JSON; a streaming reply chunk by chunk.
    \b
    An app event:      cocaine-tool call echo ping 'Hello World!'
      When SERVICE is an app and METHOD is not one of its methods, METHOD is the
      event and each ARG is one chunk of data (UTF-8 bytes, or msgpack with
      --msgpack). Every chunk of the reply is printed. 'call APP enqueue EVENT
      [DATA...]' is the same thing.
    """
    run(settings, lambda session: _call(session, service, method, args, packed))


__all__ = ["call", "locate", "show"]
