"""Routing: which app and event an HTTP request is for, and what URI the app sees. Pure.

``X-Cocaine-Service`` and ``X-Cocaine-Event`` win when both are present (the URI is kept);
otherwise the path is ``/<app>/<event><rest>`` and the app sees ``<rest>``, always starting
with ``/`` (``/echo/web?x=1`` → app ``echo``, event ``web``, URI ``/?x=1``).
"""

from __future__ import annotations

from typing import NamedTuple


class Route(NamedTuple):
    app: str
    event: str
    uri: bytes


def route(path: bytes, service: bytes | None, event: bytes | None) -> Route | None:
    """The route of a request, or None when the URL names no app and event."""
    if service and event:
        return Route(service.decode("latin-1"), event.decode("latin-1"), path)
    # /<app>/<event><rest>: app and event are non-empty and hold no '/' or '?'
    if not path.startswith(b"/"):
        return None
    slash = path.find(b"/", 1)
    if slash <= 1 or b"?" in path[1:slash]:
        return None
    start = end = slash + 1
    size = len(path)
    while end < size and path[end] not in _EVENT_END:
        end += 1
    if end == start:
        return None
    rest = path[end:]
    if not rest.startswith(b"/"):
        rest = b"/" + rest
    return Route(path[1:slash].decode("latin-1"), path[start:end].decode("latin-1"), rest)


_EVENT_END = b"/?"


__all__ = ["Route", "route"]
