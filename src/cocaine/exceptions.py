"""The original framework's import path for errors: ``from cocaine.exceptions import ServiceError``.

``ChokeEvent`` was its name for the end of a stream; here it is :class:`EndOfStream`.
"""

from cocaine.errors import CocaineError, ConnectionLost, EndOfStream, ServiceError

ChokeEvent = EndOfStream

__all__ = ["ChokeEvent", "CocaineError", "ConnectionLost", "EndOfStream", "ServiceError"]
