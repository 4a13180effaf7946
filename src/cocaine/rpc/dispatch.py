"""Server-side dispatch: an interface table bound to handler functions.

Handlers are chosen by the shape of each message in the interface:

* a one-shot call with a ``value``/``error`` reply: a function returning the value (a tuple
  becomes several value args, ``None`` none). An ``async`` function, or one that returns an
  awaitable, runs as a task owned by the connection. A raised :class:`CocaineError` becomes
  the ``error`` reply.
* a mute call (no reply, e.g. ``logging.emit``): a function whose result is ignored;
* anything else (streams): an *opener* ``open(channel, args, headers) -> Receiver | None``.

A handler that wants the request headers takes a keyword parameter named ``headers``.
A guard, when set, runs before handlers of the listed methods (the token check).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from cocaine.errors import CocaineError
from cocaine.errors import Dispatch as DispatchCode
from cocaine.idl.interface import Interface
from cocaine.protocol.graph import Message, Protocol, kind
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel, Receiver

log = logging.getLogger(__name__)

Guard = Callable[[list[Header]], None]
Opener = Callable[[Channel, list[Any], list[Header]], Receiver | None]


class _Unary:
    __slots__ = ("fn", "is_async", "wants_headers")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        try:
            self.wants_headers = "headers" in inspect.signature(fn).parameters
        except (TypeError, ValueError):  # a compiled function may not tell its signature
            self.wants_headers = False


def _reply(channel: Channel, result: Any) -> None:
    if not channel.can_send:
        return
    if result is None:
        args: list[Any] = []
    elif isinstance(result, tuple):
        args = list(result)
    else:
        args = [result]
    channel.send(0, args)


def _fail(channel: Channel, alias: str, exc: BaseException) -> None:
    if isinstance(exc, CocaineError):
        error = exc
    else:
        log.exception("handler %s failed", alias, exc_info=exc)
        error = CocaineError(f"{alias}: {exc}", 7, DispatchCode.UNCAUGHT_ERROR)
    if channel.can_send:
        channel.send(1, error.to_wire())


class ServiceDispatch:
    """A service's handler table over its interface."""

    def __init__(
        self,
        interface: Interface,
        handlers: Mapping[str, Callable[..., Any]],
        *,
        guard: Guard | None = None,
        guarded: Collection[str] = (),
    ) -> None:
        self.interface = interface
        self.root: Protocol = interface.root
        self._guard = guard
        self._guarded = {interface.root.id_of(a) for a in guarded}
        self._unary: dict[int, _Unary] = {}
        self._mute: dict[int, Callable[..., Any]] = {}
        self._open: dict[int, Opener] = {}
        for alias, fn in handlers.items():
            mid = interface.root.id_of(alias)
            message = interface.root[mid]
            shape = kind(message.upstream)
            if shape == "primitive" and message.dispatch is not None and _terminal(message):
                self._unary[mid] = _Unary(fn)
            elif shape == "void":
                self._mute[mid] = fn
            else:
                self._open[mid] = fn
        # The hot path: a stream opener with no guard is called straight away.
        self._direct: dict[Message, Opener] = {
            interface.root[mid]: fn for mid, fn in self._open.items() if mid not in self._guarded
        }

    def open(
        self, channel: Channel, message: Message, args: list[Any], headers: list[Header]
    ) -> Receiver | None:
        direct = self._direct.get(message)
        if direct is not None:
            return direct(channel, args, headers)
        mid = self.root.id_of(message.alias)
        try:
            if self._guard is not None and mid in self._guarded:
                self._guard(headers)
        except CocaineError as exc:
            _fail(channel, message.alias, exc)
            return None
        unary = self._unary.get(mid)
        if unary is not None:
            self._call(channel, message.alias, unary, args, headers)
            return None
        mute = self._mute.get(mid)
        if mute is not None:
            try:
                result = mute(*args)
                if inspect.isawaitable(result):
                    channel.conn.spawn(result)
            except Exception:
                log.exception("mute handler %s failed", message.alias)
            return None
        opener = self._open.get(mid)
        if opener is None:
            _fail(
                channel,
                message.alias,
                CocaineError(
                    f"method '{message.alias}' is not implemented", 7, DispatchCode.SLOT_NOT_FOUND
                ),
            )
            return None
        return opener(channel, args, headers)

    def _call(
        self, channel: Channel, alias: str, unary: _Unary, args: list[Any], headers: list[Header]
    ) -> None:
        kwargs = {"headers": headers} if unary.wants_headers else {}
        if unary.is_async:  # the coroutine is made inside the task: a cancelled task leaves none
            fn = unary.fn
            channel.conn.spawn(self._run(channel, alias, lambda: fn(*args, **kwargs)))
            return
        try:
            result = unary.fn(*args, **kwargs)
        except Exception as exc:
            _fail(channel, alias, exc)
            return
        if inspect.isawaitable(result):  # a compiled async function is not seen as one
            channel.conn.spawn(self._run(channel, alias, lambda: result))
        else:
            _reply(channel, result)

    @staticmethod
    async def _run(channel: Channel, alias: str, start: Callable[[], Awaitable[Any]]) -> None:
        try:
            result = await start()
        except Exception as exc:
            _fail(channel, alias, exc)
        else:
            _reply(channel, result)


def _terminal(message: Message) -> bool:
    dispatch = message.dispatch
    return isinstance(dispatch, Protocol) and dispatch.terminal


__all__ = ["Guard", "Opener", "ServiceDispatch"]
