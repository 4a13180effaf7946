"""Isolates: where and how worker processes run. ``process`` is the one built in."""

from cocaine.runtime.isolate.base import Handle, Isolate
from cocaine.runtime.isolate.process import ProcessIsolate

__all__ = ["Handle", "Isolate", "ProcessIsolate"]
