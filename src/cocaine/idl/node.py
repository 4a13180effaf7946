"""The node service (version 1) and the app service every running app publishes (version 1)."""

from cocaine.idl.interface import call, service
from cocaine.protocol.graph import PRIMITIVE, STREAMING, Message
from cocaine.protocol.values import DYNAMIC, TEXT, UINT, Args, list_of

NODE = service(
    "node",
    1,
    call("start_app", Args((TEXT, TEXT))),
    call("pause_app", Args((TEXT,))),
    call("list", returns=list_of(TEXT)),
    call("info", Args((TEXT,), (UINT,)), returns=DYNAMIC),
    Message("control", STREAMING, PRIMITIVE, Args((TEXT,))),
    Message("enqueue", STREAMING, STREAMING, Args((TEXT, TEXT))),
)

APP = service(
    "app",
    1,
    Message("enqueue", STREAMING, STREAMING, Args((TEXT,), (TEXT,))),
    call("info", returns=DYNAMIC),
    Message("control", STREAMING, PRIMITIVE),
)


class InfoFlags:
    BRIEF = 0
    OVERSEER_REPORT = 1
    EXPAND_MANIFEST = 2
    EXPAND_PROFILE = 4


__all__ = ["APP", "NODE", "InfoFlags"]
