"""Routing: which app and event an HTTP request is for, and what URI the app sees. Pure.

``X-Cocaine-Service`` and ``X-Cocaine-Event`` win when both are present (the URI is kept);
otherwise the path is ``/<app>/<event><rest>`` and the app sees ``<rest>``, always starting
with ``/`` (``/echo/web?x=1`` → app ``echo``, event ``web``, URI ``/?x=1``).
"""

from __future__ import annotations

from typing import Final, TypeAlias

Route: TypeAlias = tuple[str, str, bytes]
"""``(app, event, uri)``; a plain tuple, the cheapest thing to build per request."""


def route(path: bytes, service: bytes | None, event: bytes | None) -> Route | None:
    """The route of a request, or None when the URL names no app and event."""
    if service and event:
        return service.decode("latin-1"), event.decode("latin-1"), path
    # /<app>/<event><rest>: app and event are non-empty and hold no '/' or '?'. A byte loop:
    # compiled, it is cheaper than bytes.find (a method call each) or a regular expression.
    size = len(path)
    if size < 4 or path[0] != _SLASH:
        return None
    slash = _segment_end(path, 1, size)
    if slash == 1 or slash == size or path[slash] != _SLASH:
        return None
    start = slash + 1
    end = _segment_end(path, start, size)
    if end == start:
        return None
    rest = path[end:] if end < size and path[end] == _SLASH else b"/" + path[end:]
    return path[1:slash].decode("latin-1"), path[start:end].decode("latin-1"), rest


def _segment_end(path: bytes, i: int, size: int) -> int:
    """Index of the first '/' or '?' at or after ``i`` (``size`` when there is none)."""
    while i < size:
        c = path[i]
        if c in (_SLASH, _QUERY):
            return i
        i += 1
    return size


_SLASH: Final = 0x2F
_QUERY: Final = 0x3F

__all__ = ["Route", "route"]
