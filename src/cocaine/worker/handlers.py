"""Handler styles, and how one invocation of a handler ends.

A handler is called as ``handler(request, response)`` and may be written three ways:

* ``async def h(request, response)``: awaited;
* a generator function in the original framework's style, where each ``yield`` hands over
  something to wait for and receives its result::

      def echo(request, response):
          message = yield request.read()
          data = yield storage.read("collection", "key")   # a ServiceError is raised here
          response.write(message)

  A yielded awaitable (coroutine, future, task) is awaited and its result sent back into the
  generator, or its exception thrown into it, so ``try/except`` around a ``yield`` works. A
  yielded list or tuple of awaitables is awaited together and gives the list of results. A
  bare ``yield`` just lets other work run;
* a plain function, called once. If it returns a generator or an awaitable (a decorator that
  wraps one of the styles above), that is driven as above.

When the handler returns without ending its response, the response is closed for it. When it
raises, the client gets ``error [[42, 100], str(exc)]`` (if the response is still open).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, Final

from cocaine.errors import Category, CocaineError, WorkerCode
from cocaine.worker.request import Request
from cocaine.worker.response import Response

log = logging.getLogger(__name__)

Handler = Callable[[Request, Response], Any]
_COROUTINE: Final = types.CoroutineType


async def invoke(handler: Handler, request: Request, response: Response) -> None:
    """Run ``handler`` for one event and make sure its response ends."""
    try:
        result = handler(request, response)
        if type(result) is _COROUTINE:  # ``async def``: awaited here, one coroutine less
            await result
        else:
            await _settle(result)
    except asyncio.CancelledError:
        _end_with_error(
            response,
            WorkerCode.INVOCATION_FAILED,
            "the handler was cancelled: the worker is shutting down",
        )
        raise
    except Exception as exc:
        log.exception("handler for event '%s' failed", request.event)
        _end_with_error(response, WorkerCode.UNCAUGHT_EXCEPTION, str(exc))
    else:
        response.close()


async def call(handler: Handler, request: Request, response: Response) -> Any:
    """Call a handler in any of the supported styles and wait until it is done."""
    return await _settle(handler(request, response))


async def _settle(result: Any) -> Any:
    """What a handler returned, waited for as its style asks."""
    if type(result) is _COROUTINE:  # ``async def``, the common case, without inspect's calls
        return await result
    if inspect.isgenerator(result):
        return await drive(result)
    if inspect.isawaitable(result):
        return await result
    return result


async def drive(gen: Generator[Any, Any, Any]) -> Any:
    """Run a generator-style coroutine: await what it yields, send back what that gives.

    Returns the generator's return value. If the task running this is cancelled, the generator
    is closed (its ``finally`` blocks run) and the cancellation goes on.
    """
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                if error is None:
                    yielded = gen.send(value)
                else:
                    yielded, error = gen.throw(error), None
            except StopIteration as stop:
                return stop.value
            value = None
            try:
                value = await _wait_for(yielded)
            except Exception as exc:
                error = exc
    finally:
        gen.close()


def _wait_for(yielded: Any) -> Awaitable[Any]:
    if yielded is None:
        return asyncio.sleep(0)
    if inspect.isawaitable(yielded):
        return yielded
    if isinstance(yielded, concurrent.futures.Future):
        return asyncio.wrap_future(yielded)
    if isinstance(yielded, (list, tuple)) and all(inspect.isawaitable(y) for y in yielded):
        return _all(yielded)
    return _bad_yield(yielded)


async def _all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Await several things at once; the first failure cancels the rest and is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_await(a)) for a in awaitables]
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _bad_yield(yielded: Any) -> None:
    raise TypeError(
        f"a handler may yield an awaitable, a list of awaitables or None, not {yielded!r}"
    )


def _end_with_error(response: Response, code: int, reason: str) -> None:
    if response.closed:
        return
    try:
        response.error(Category.WORKER, code, reason)
    except CocaineError as exc:  # the connection went away meanwhile
        log.debug("could not send the error for event '%s': %s", response.event, exc)


__all__ = ["Handler", "call", "drive", "invoke"]
