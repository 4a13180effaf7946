"""Cocaine for Python: an application cloud wire-compatible with Cocaine v12.

The public surface: :class:`Service` to call any service, :class:`Worker` to write an app,
and the error root :class:`CocaineError`. See the README for a ten-line example.
"""

from cocaine.client import Service
from cocaine.errors import CocaineError, EndOfStream, ServiceError

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The worker framework is imported on first use so a client never pays for it.
    if name == "Worker":
        from cocaine.worker import Worker

        return Worker
    raise AttributeError(name)


__all__ = ["CocaineError", "EndOfStream", "Service", "ServiceError", "Worker"]
