"""Routing: which app and event an HTTP request is for, and what URI the app sees. Pure.

``X-Cocaine-Service`` and ``X-Cocaine-Event`` win when both are present (the URI is kept);
otherwise the path is ``/<app>/<event><rest>`` and the app sees ``<rest>``, always starting
with ``/`` (``/echo/web?x=1`` → app ``echo``, event ``web``, URI ``/?x=1``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

_URL = re.compile(rb"^/([^/?]+)/([^/?]+)(.*)$", re.DOTALL)


class Route(NamedTuple):
    app: str
    event: str
    uri: bytes


def route(path: bytes, service: bytes | None, event: bytes | None) -> Route | None:
    """The route of a request, or None when the URL names no app and event."""
    if service and event:
        return Route(service.decode("latin-1"), event.decode("latin-1"), path)
    match = _URL.match(path)
    if match is None:
        return None
    app, ev, rest = match.groups()
    if not rest.startswith(b"/"):
        rest = b"/" + rest
    return Route(app.decode("latin-1"), ev.decode("latin-1"), rest)


__all__ = ["Route", "route"]
