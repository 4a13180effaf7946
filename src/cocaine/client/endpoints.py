"""Locator addresses: ``host:port``, ``[v6]:port``, comma lists, ``COCAINE_LOCATOR``."""

from __future__ import annotations

import os

DEFAULT_LOCATOR = ("localhost", 10053)

Endpoint = tuple[str, int]


def parse_endpoints(text: str, default_port: int = DEFAULT_LOCATOR[1]) -> list[Endpoint]:
    """Parse ``h1:p1,[::1]:p2`` into endpoints. Raises ValueError naming the bad part."""
    out: list[Endpoint] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.startswith("["):
            host, sep, rest = part[1:].partition("]")
            if not sep:
                raise ValueError(f"bad endpoint {part!r}: missing ']'")
            port_text = rest[1:] if rest.startswith(":") else ""
        elif part.count(":") == 1:
            host, _, port_text = part.partition(":")
        else:
            host, port_text = part, ""
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ValueError(f"bad endpoint {part!r}: port must be a number") from None
        if not 0 < port < 65536:
            raise ValueError(f"bad endpoint {part!r}: port out of range")
        out.append((host or "localhost", port))
    if not out:
        raise ValueError(f"no endpoints in {text!r}")
    return out


def locator_endpoints(locator: str | Endpoint | list[Endpoint] | None = None) -> list[Endpoint]:
    """The locator's endpoints from an argument, else ``COCAINE_LOCATOR``, else localhost:10053."""
    if locator is None:
        env = os.environ.get("COCAINE_LOCATOR")
        return parse_endpoints(env) if env else [DEFAULT_LOCATOR]
    if isinstance(locator, str):
        return parse_endpoints(locator)
    if isinstance(locator, tuple):
        return [(str(locator[0]), int(locator[1]))]
    return [(str(h), int(p)) for h, p in locator]


def format_endpoint(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["DEFAULT_LOCATOR", "Endpoint", "format_endpoint", "locator_endpoints", "parse_endpoints"]
