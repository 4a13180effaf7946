"""The original framework's import path for services: ``from cocaine.services import Service``."""

from cocaine.client import Service

__all__ = ["Service"]
