"""What the runtime's parts share, built once at start-up and passed down.

The context owns the config, the registry of published services, the storage backend and
the node's identity. Services receive it; nothing reaches for globals.
"""

from __future__ import annotations

import hmac
import logging
import uuid as uuidlib
from dataclasses import dataclass, field

from cocaine.errors import unauthorized
from cocaine.protocol.headers import AUTHORIZATION, Header, find_header
from cocaine.runtime.config import Config
from cocaine.runtime.registry import Registry
from cocaine.runtime.services.storage import Backend

log = logging.getLogger("cocaine.runtime")


@dataclass
class Context:
    config: Config
    storage: Backend
    registry: Registry = field(default_factory=Registry)
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    locator_endpoints: list[tuple[str, int]] = field(default_factory=list)

    def authorize(self, headers: list[Header]) -> None:
        """The shared-token check: a no-op unless the runtime has a token."""
        token = self.config.token
        if not token:
            return
        given = find_header(headers, AUTHORIZATION)
        if given is None:
            raise unauthorized("this runtime requires a token (authorization header)")
        if not hmac.compare_digest(given, token.encode()):
            raise unauthorized("invalid token")


__all__ = ["Context"]
