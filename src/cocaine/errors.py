"""One error root for the whole project, shaped exactly as errors travel on the wire.

Every error is a ``(category, code)`` pair plus a free-text reason; on the wire it is the
``error`` message ``[[category, code], reason]``. Clients compare the pair, never the text.

    CocaineError (category, code, reason)
    ├── ServiceError          an error a peer sent us on a channel (any category)
    ├── ProtocolError         the bytes or messages broke the protocol
    │   ├── TransportError    category 6: bad frame, bad headers, frame too large
    │   └── DispatchError     category 7: unknown method, bad arguments, revoked channel
    ├── ConnectionLost        the connection went away under a channel (12, EPIPE)
    ├── EndOfStream           the peer closed the stream; nothing more will come (13, 1)
    └── ConfigError           a config, profile or manifest field is wrong (12, EINVAL)

Errors raised inside the runtime for node, overseer and slave faults are plain ``CocaineError``
values built by the helpers in :class:`Category`'s companions below (``queue_is_full()`` …).
"""

from __future__ import annotations

import errno
from enum import IntEnum
from typing import Any


class Category(IntEnum):
    """Error categories as they travel on the wire."""

    SYSTEM = 0x01
    TRANSPORT = 0x06
    DISPATCH = 0x07
    REPOSITORY = 0x08
    SECURITY = 0x09
    LOCATOR = 0x0A
    UNICORN = 0x0B
    GENERIC = 0x0C
    PROTOCOL = 0x0D
    UNKNOWN = 0xFF
    WORKER = 42
    WORKER_USER = 43
    NODE = 0x51FF
    OVERSEER = 0x52FF
    SLAVE = 0x53FF


class Transport(IntEnum):
    FRAME_FORMAT = 1
    HPACK = 2
    INSUFFICIENT_BYTES = 3
    PARSE = 4


class Dispatch(IntEnum):
    DUPLICATE_SLOT = 1
    INVALID_ARGUMENT = 2
    NOT_CONNECTED = 3
    REVOKED_CHANNEL = 4
    SLOT_NOT_FOUND = 5
    UNBOUND_DISPATCH = 6
    UNCAUGHT_ERROR = 7


class Security(IntEnum):
    TOKEN_NOT_FOUND = 1
    UNAUTHORIZED = 2
    PERMISSION_DENIED = 3


class Node(IntEnum):
    DEADLINE = 1
    RESOURCE = 2
    TIMEOUT = 3
    INVALID_ASSIGNMENT = 4
    ALREADY_STARTED = 5
    NOT_RUNNING = 6
    SPOOL = 7
    PUBLISH = 8


class Overseer(IntEnum):
    QUEUE_IS_FULL = 1
    POOL_IS_FULL = 2


class Slave(IntEnum):
    SPAWN_TIMEOUT = 1
    LOCATOR_NOT_FOUND = 2
    EMPTY_LOCATOR_ENDPOINTS = 3
    ACTIVATE_TIMEOUT = 4
    UNKNOWN_ACTIVATE_ERROR = 5
    SEAL_TIMEOUT = 6
    TERMINATE_TIMEOUT = 7
    HEARTBEAT_TIMEOUT = 8
    INVALID_STATE = 9
    CONTROL_IPC_ERROR = 10
    OVERSEER_SHUTDOWN = 11
    COMMITTED_SUICIDE = 12
    IDLE = 13
    SEALING = 14


class WorkerCode(IntEnum):
    EVENT_NOT_FOUND = 1
    UNCAUGHT_EXCEPTION = 100
    NO_HANDLER = 200
    INVOCATION_FAILED = 212
    SERVICE_DISCONNECTED = 220


class CocaineError(Exception):
    """The root of every error in the project: a ``(category, code)`` pair and a reason."""

    default_category: int = Category.UNKNOWN
    default_code: int = 0

    def __init__(self, reason: str = "", category: int | None = None, code: int | None = None):
        super().__init__(reason)
        self.category = self.default_category if category is None else int(category)
        self.code = self.default_code if code is None else int(code)
        self.reason = reason

    @property
    def pair(self) -> tuple[int, int]:
        return (self.category, self.code)

    def to_wire(self) -> list[Any]:
        """The args of an ``error`` message: ``[[category, code], reason]``."""
        return [[self.category, self.code], self.reason]

    def __str__(self) -> str:
        return f"[{self.category}, {self.code}] {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, category={self.category}, code={self.code})"


class ServiceError(CocaineError):
    """An error a peer sent on a channel: ``error [[category, code], reason]``."""

    @classmethod
    def from_wire(cls, args: list[Any]) -> ServiceError:
        """Build from the args of a received ``error`` message, tolerating sloppy peers."""
        category, code, reason = Category.UNKNOWN, 0, ""
        if args:
            head = args[0]
            if isinstance(head, (list, tuple)) and len(head) == 2:
                category, code = head
            elif isinstance(head, int):  # v11 style: [code, message]
                code = head
            if len(args) > 1:
                raw = args[1]
                reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if not isinstance(category, int) or not isinstance(code, int):
            category, code = Category.UNKNOWN, 0
        return cls(reason, category, code)


class ProtocolError(CocaineError):
    """The peer broke the protocol; the connection it came on is closed."""


class TransportError(ProtocolError):
    default_category = Category.TRANSPORT
    default_code = Transport.FRAME_FORMAT


class DispatchError(ProtocolError):
    default_category = Category.DISPATCH
    default_code = Dispatch.INVALID_ARGUMENT


class ConnectionLost(CocaineError):
    default_category = Category.GENERIC
    default_code = errno.EPIPE


class EndOfStream(CocaineError):
    """Raised by a receive on a stream the peer has closed."""

    default_category = Category.PROTOCOL
    default_code = 1

    def __init__(self, reason: str = "the stream is closed", *args: Any, **kwargs: Any):
        super().__init__(reason, *args, **kwargs)


class ConfigError(CocaineError):
    """A config, profile or manifest is invalid; the reason names the field."""

    default_category = Category.GENERIC
    default_code = errno.EINVAL


def error(category: int, code: int, reason: str) -> CocaineError:
    return CocaineError(reason, category, code)


def queue_is_full() -> CocaineError:
    return CocaineError("queue is full", Category.OVERSEER, Overseer.QUEUE_IS_FULL)


def service_not_available(name: str) -> CocaineError:
    return CocaineError(f"service '{name}' is not available", Category.LOCATOR, 1)


def app_stopped() -> CocaineError:
    return CocaineError("the application has been stopped", Category.GENERIC, errno.EPIPE)


def unauthorized(reason: str = "unauthorized") -> CocaineError:
    return CocaineError(reason, Category.SECURITY, Security.UNAUTHORIZED)


__all__ = [
    "Category",
    "CocaineError",
    "ConfigError",
    "ConnectionLost",
    "Dispatch",
    "DispatchError",
    "EndOfStream",
    "Node",
    "Overseer",
    "ProtocolError",
    "Security",
    "ServiceError",
    "Slave",
    "Transport",
    "TransportError",
    "WorkerCode",
    "app_stopped",
    "error",
    "queue_is_full",
    "service_not_available",
    "unauthorized",
]
