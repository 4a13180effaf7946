"""The Cocaine v12 wire protocol, sans-I/O: frames, headers, graphs and channel states.

Nothing here touches sockets, event loops or clocks; every rule is testable in memory.
"""

from cocaine.protocol.channel import ChannelPhase, ChannelState
from cocaine.protocol.framing import Frame, FrameDecoder, encode_frame, pack
from cocaine.protocol.graph import (
    PRIMITIVE,
    RECURSIVE,
    STREAMING,
    TERMINAL,
    Message,
    Protocol,
    from_wire,
    to_wire,
)
from cocaine.protocol.headers import HeaderDecoder, HeaderEncoder, HeaderTable

__all__ = [
    "PRIMITIVE",
    "RECURSIVE",
    "STREAMING",
    "TERMINAL",
    "ChannelPhase",
    "ChannelState",
    "Frame",
    "FrameDecoder",
    "HeaderDecoder",
    "HeaderEncoder",
    "HeaderTable",
    "Message",
    "Protocol",
    "encode_frame",
    "from_wire",
    "pack",
    "to_wire",
]
