"""The logging service: records from apps and clients into the runtime's own log."""

from __future__ import annotations

import errno
import logging
from typing import Any

from cocaine.errors import Category, CocaineError
from cocaine.idl import LOGGING, Level
from cocaine.rpc.dispatch import ServiceDispatch

_TO_PY = {
    Level.DEBUG: logging.DEBUG,
    Level.INFO: logging.INFO,
    Level.WARNING: logging.WARNING,
    Level.ERROR: logging.ERROR,
}
_FROM_PY = {v: k for k, v in _TO_PY.items()}

log = logging.getLogger("cocaine.app")

# A record is one line of the runtime's log: line breaks and other control characters from
# clients are escaped, so that no client can forge lines of its own (CWE-117).
_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(32), 0x7F, 0x85)} | {
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def _attr(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class LoggingService:
    """``emit`` writes one record with its source and attributes; verbosity filters them."""

    def __init__(self, level: int = Level.INFO) -> None:
        self.level = Level(level)

    def emit(self, level: int, source: str, message: str, attributes: Any = None) -> None:
        if level < self.level:
            return
        attrs = ""
        if isinstance(attributes, list) and attributes:
            pairs = (a for a in attributes if isinstance(a, list) and len(a) == 2)
            attrs = " " + " ".join(f"{_attr(k)}={_attr(v)}" for k, v in pairs)
        py_level = _TO_PY.get(Level(max(0, min(3, level))), logging.INFO)
        log.log(py_level, "%s", f"{source}: {message}{attrs}".translate(_ESCAPES))

    def verbosity(self) -> int:
        return int(self.level)

    def set_verbosity(self, level: int) -> None:
        if level not in _TO_PY:
            raise CocaineError(
                f"verbosity must be 0..3, got {level}", Category.GENERIC, errno.EINVAL
            )
        self.level = Level(level)
        log.setLevel(_TO_PY[self.level])

    def dispatch(self) -> ServiceDispatch:
        return ServiceDispatch(
            LOGGING,
            {"emit": self.emit, "verbosity": self.verbosity, "set_verbosity": self.set_verbosity},
        )


def level_from_severity(severity: str) -> Level:
    names = {
        "debug": Level.DEBUG,
        "info": Level.INFO,
        "warning": Level.WARNING,
        "error": Level.ERROR,
    }
    return names.get(severity.lower(), Level.INFO)


__all__ = ["LoggingService", "level_from_severity"]
