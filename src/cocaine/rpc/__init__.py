"""asyncio glue for the protocol: connections, channels, server-side dispatch, listeners."""

from cocaine.rpc.channel import Channel, Inbox, Receiver
from cocaine.rpc.connection import Connection, Dispatch, connect_tcp, connect_unix
from cocaine.rpc.dispatch import ServiceDispatch

__all__ = [
    "Channel",
    "Connection",
    "Dispatch",
    "Inbox",
    "Receiver",
    "ServiceDispatch",
    "connect_tcp",
    "connect_unix",
]
