"""The original framework's import path for the app logger: ``from cocaine.logging import Logger``.

This module shadows nothing: the package uses absolute imports, so ``import logging`` anywhere
in it is still the standard library.
"""

from cocaine.worker.logger import Logger

__all__ = ["Logger"]
