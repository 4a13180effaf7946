"""The worker protocol (``--protocol 1``) between the runtime and a worker over a unix socket.

The worker opens channel 1 with ``handshake [uuid]``; the channel then carries ``heartbeat``
both ways (the runtime answers each one) and ends with ``terminate [code, reason]`` from either
side. The runtime opens channels 2, 3, … with ``invoke [event]``; chunks then flow both ways
as a stream, each direction closing on its own.
"""

from typing import Final

from cocaine.protocol.graph import RECURSIVE, STREAMING, Message, Protocol
from cocaine.protocol.values import ANY, INT, TEXT, Args

CONTROL = Protocol(
    "control",
    {
        0: Message("heartbeat", RECURSIVE),
        1: Message("terminate", args=Args((INT,), (ANY,))),
    },
)

# Messages the worker sends on a new channel.
HANDSHAKE = Protocol("worker", {0: Message("handshake", CONTROL, CONTROL, Args((TEXT,)))})

# Messages the runtime sends on a new channel.
INVOKE = Protocol("rpc", {0: Message("invoke", STREAMING, STREAMING, Args((TEXT,)))})

HEARTBEAT: Final = 0
TERMINATE: Final = 1
WRITE: Final = 0
ERROR: Final = 1
CLOSE: Final = 2

__all__ = ["CLOSE", "CONTROL", "ERROR", "HANDSHAKE", "HEARTBEAT", "INVOKE", "TERMINATE", "WRITE"]
