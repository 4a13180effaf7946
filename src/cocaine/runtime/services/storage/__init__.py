"""Backends of the runtime's storage service (spec §4 ``storage``, §6.3 namespaces).

A backend keeps opaque blobs under ``(collection, key)`` with tags and implements the
:class:`Backend` protocol; the storage service picks one from the runtime config:

- :class:`FilesBackend`: the original on-disk layout, the embedded default for one machine;
- :class:`PostgresBackend`: one PostgreSQL table shared by a cluster (needs the optional
  ``asyncpg`` dependency, imported only when a backend connects).
"""

from cocaine.runtime.services.storage.backend import Backend
from cocaine.runtime.services.storage.files import FilesBackend
from cocaine.runtime.services.storage.postgres import PostgresBackend

__all__ = ["Backend", "FilesBackend", "PostgresBackend"]
