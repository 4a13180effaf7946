"""The original framework's import path for the HTTP decorator.

from cocaine.decorators import http
"""

from cocaine.worker.http import http

__all__ = ["http"]
