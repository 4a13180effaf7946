"""The PostgreSQL storage backend: one table shared by every runtime of a cluster (DESIGN §6).

Schema (created on connect if missing, under an advisory lock so that runtimes starting together
do not race on the catalog)::

    CREATE TABLE <table> (
        collection text   NOT NULL,
        key        text   NOT NULL,
        blob       bytea  NOT NULL,
        tags       text[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (collection, key)
    );
    CREATE INDEX <table>_tags ON <table> USING gin (tags);

A write is one ``INSERT … ON CONFLICT DO UPDATE`` statement, so the blob and its tags change
together in one transaction; ``find`` is ``tags @> $2`` (served by the GIN index) ordered by key
in the "C" collation, i.e. by code point, the same order the files backend returns.

``asyncpg`` is an optional dependency (``pip install 'cocaine[postgres]'``): it is imported only by
:meth:`PostgresBackend.connect`, so importing this module costs nothing without it. Every error
from the driver or the network is translated here into a :class:`CocaineError` (generic
category): ECONNREFUSED when the server cannot be reached at connect time, EIO afterwards.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from cocaine.errors import Category, CocaineError
from cocaine.runtime.services.storage.backend import check_name, check_names, check_tags

#: How long connecting to the server may take before ``connect`` gives up, in seconds.
CONNECT_TIMEOUT = 10.0
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 4

# Short enough that "<table>_tags" stays within PostgreSQL's 63-byte identifier limit.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,57}")

_T = TypeVar("_T")


class PostgresBackend:
    """Blobs as rows of one PostgreSQL table; build it with :meth:`connect`."""

    def __init__(self, pool: Any, table: str, driver_errors: tuple[type[BaseException], ...]):
        """Wrap an open asyncpg pool; use :meth:`connect` rather than calling this directly."""
        self._pool = pool
        self._errors = driver_errors
        self._closed = False
        self.table = table
        quoted = f'"{table}"'
        self._read_sql = f"SELECT blob FROM {quoted} WHERE collection = $1 AND key = $2"
        self._write_sql = (
            f"INSERT INTO {quoted} (collection, key, blob, tags) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (collection, key) DO UPDATE SET blob = EXCLUDED.blob, tags = EXCLUDED.tags"
        )
        self._remove_sql = f"DELETE FROM {quoted} WHERE collection = $1 AND key = $2"
        self._find_sql = (
            f"SELECT key FROM {quoted} WHERE collection = $1 AND tags @> $2::text[] "
            'ORDER BY key COLLATE "C"'
        )

    @classmethod
    async def connect(cls, dsn: str, *, table: str = "cocaine_storage") -> PostgresBackend:
        """Open a pool to ``dsn`` and make sure ``table`` and its tag index exist."""
        if not _TABLE_NAME.fullmatch(table):
            raise CocaineError(
                f"invalid table name {table!r}: letters, digits and '_', at most 58 characters",
                Category.GENERIC,
                errno.EINVAL,
            )
        try:
            import asyncpg  # type: ignore[import-untyped]
        except ImportError as exc:
            raise CocaineError(
                "the postgres storage backend needs asyncpg: pip install 'cocaine[postgres]'",
                Category.GENERIC,
                errno.ENOSYS,
            ) from exc
        driver_errors = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE, timeout=CONNECT_TIMEOUT
            )
        except driver_errors as exc:  # the DSN may hold a password: do not echo it
            raise CocaineError(
                f"cannot connect to the postgres storage: {exc}",
                Category.GENERIC,
                errno.ECONNREFUSED,
            ) from exc
        backend = cls(pool, table, driver_errors)
        try:
            await backend._guard(backend._create_schema)
        except BaseException:
            await pool.close()
            raise
        return backend

    def __repr__(self) -> str:
        return f"PostgresBackend(table={self.table!r})"

    async def read(self, collection: str, key: str) -> bytes:
        check_names(collection, key)
        blob = await self._guard(lambda: self._pool.fetchval(self._read_sql, collection, key))
        if blob is None:
            raise CocaineError(f"{collection}/{key}", Category.GENERIC, errno.ENOENT)
        return bytes(blob)

    async def write(self, collection: str, key: str, blob: bytes, tags: Sequence[str] = ()) -> None:
        wanted = check_names(collection, key, tags)
        data = bytes(blob)
        await self._guard(
            lambda: self._pool.execute(self._write_sql, collection, key, data, wanted)
        )

    async def remove(self, collection: str, key: str) -> None:
        check_names(collection, key)
        await self._guard(lambda: self._pool.execute(self._remove_sql, collection, key))

    async def find(self, collection: str, tags: Sequence[str]) -> list[str]:
        check_name("collection", collection)
        wanted = check_tags(tags)
        if not wanted:
            return []
        rows = await self._guard(lambda: self._pool.fetch(self._find_sql, collection, wanted))
        return [str(row[0]) for row in rows]

    async def close(self) -> None:
        """Close the pool (waiting for queries in flight); calling it again does nothing."""
        if not self._closed:
            self._closed = True
            await self._pool.close()

    async def _create_schema(self) -> None:
        quoted, index = f'"{self.table}"', f'"{self.table}_tags"'
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {quoted} ("
                "collection text NOT NULL, key text NOT NULL, blob bytea NOT NULL, "
                "tags text[] NOT NULL DEFAULT '{}', PRIMARY KEY (collection, key))"
            )
            await conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {quoted} USING gin (tags)")

    async def _guard(self, query: Callable[[], Awaitable[_T]]) -> _T:
        """Run one query, translating driver and network errors into ours at this boundary."""
        if self._closed:
            raise CocaineError("the postgres storage is closed", Category.GENERIC, errno.EBADF)
        try:
            return await query()
        except self._errors as exc:
            raise CocaineError(f"postgres storage: {exc}", Category.GENERIC, errno.EIO) from exc
