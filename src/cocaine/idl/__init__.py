"""Every service interface as data: the same graphs that ``locator.resolve`` sends."""

from cocaine.idl.interface import Interface
from cocaine.idl.locator import LOCATOR
from cocaine.idl.logging import LOGGING, Level
from cocaine.idl.node import APP, NODE, InfoFlags
from cocaine.idl.storage import STORAGE
from cocaine.idl.worker import CONTROL, HANDSHAKE, INVOKE

BUILTIN: dict[str, Interface] = {i.name: i for i in (LOCATOR, STORAGE, LOGGING, NODE)}

__all__ = [
    "APP",
    "BUILTIN",
    "CONTROL",
    "HANDSHAKE",
    "INVOKE",
    "LOCATOR",
    "LOGGING",
    "NODE",
    "STORAGE",
    "InfoFlags",
    "Interface",
    "Level",
]
