"""The logging service (version 2): emit records into the runtime's log."""

from enum import IntEnum

from cocaine.idl.interface import call, service
from cocaine.protocol.graph import VOID
from cocaine.protocol.values import ANY, INT, TEXT, Args, list_of


class Level(IntEnum):
    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3


LOGGING = service(
    "logging",
    2,
    call("emit", Args((INT, TEXT, TEXT), (list_of(ANY),)), VOID),
    call("verbosity", returns=INT),
    call("set_verbosity", Args((INT,))),
)

__all__ = ["LOGGING", "Level"]
