"""Blob stores of the claim check: a directory (the default) or a PostgreSQL table.

Keys are content-addressed (the codec uses the blob's sha256), so a put of a key that exists
writes the same bytes again: both stores skip or ignore it, which makes retries and replays
idempotent. A get is bounded: a blob above `max_bytes` is refused before it is read.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import tempfile
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]

from backend.workflow_runner.claim_check.errors import (
    BlobMissingError,
    BlobTooLargeError,
    InvalidKeyError,
)

# No separator and no leading dot: a valid key names one file inside the store's directory.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DEFAULT_TABLE = "claim_check_blobs"


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Stores `data` under `key`; a key that exists already is left as it is."""

    async def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The bytes under `key`; BlobMissingError when there are none, BlobTooLargeError
        when they are longer than `max_bytes`."""

    async def close(self) -> None:
        """Releases connections; the store may not be used afterwards."""


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise InvalidKeyError(
            "claim check key must be 1-128 letters, digits, '_' or '-', starting with a "
            f"letter or digit: {key[:140]!r}"
        )
    return key


def _too_large(key: str, size: int, max_bytes: int) -> BlobTooLargeError:
    return BlobTooLargeError(
        f"claim check blob {key} is {size} bytes, over the ceiling of {max_bytes} "
        "(STIGMER_CLAIM_CHECK_MAX_BYTES)"
    )


class FileStore:
    """One file per blob under `directory/<first two characters of the key>/<key>`.

    The fan-out keeps directories small; files are written to a temporary name and renamed, so
    a reader never sees half a blob. The directory and the files are readable by their owner
    only: payloads can hold whatever a workflow fetched.
    """

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = pathlib.Path(directory)

    def path(self, key: str) -> pathlib.Path:
        check_key(key)
        return self.directory / key[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    async def get(self, key: str, max_bytes: int | None = None) -> bytes:
        return await asyncio.to_thread(self._get, key, self.path(key), max_bytes)

    async def close(self) -> None:
        pass

    def _put(self, path: pathlib.Path, data: bytes) -> None:
        if path.exists():  # Content-addressed: the same key holds the same bytes.
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            pathlib.Path(temporary).unlink(missing_ok=True)
            raise

    @staticmethod
    def _get(key: str, path: pathlib.Path, max_bytes: int | None) -> bytes:
        try:
            with path.open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    raise _too_large(key, size, max_bytes)
                return file.read()
        except FileNotFoundError:
            raise BlobMissingError(f"claim check blob {key} is not in the store") from None


class PostgresStore:
    """Blobs in one table (`key text primary key, data bytea, created_at`), created if missing.

    The pool opens on first use, in the event loop that uses it (the data converter is built
    before the client connects). `table` lets tests use a table of their own.
    """

    def __init__(self, url: str, table: str = DEFAULT_TABLE, max_pool_size: int = 10) -> None:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"claim check table must be a lower-case SQL identifier: {table!r}")
        self._url = url
        self.table = table
        self._max_pool_size = max_pool_size
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _connected(self) -> Any:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self._url, min_size=1, max_size=self._max_pool_size
                )
                try:
                    await pool.execute(
                        f'CREATE TABLE IF NOT EXISTS "{self.table}" ('
                        "key text PRIMARY KEY, data bytea NOT NULL, "
                        "created_at timestamptz NOT NULL DEFAULT now())"
                    )
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def put(self, key: str, data: bytes) -> None:
        pool = await self._connected()
        await pool.execute(
            f'INSERT INTO "{self.table}" (key, data) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
            check_key(key),
            data,
        )

    async def get(self, key: str, max_bytes: int | None = None) -> bytes:
        pool = await self._connected()
        # The size first and the bytes only when they are within the ceiling, in one query.
        row = await pool.fetchrow(
            f"SELECT octet_length(data) AS size, CASE WHEN $2::bigint IS NULL OR "
            f'octet_length(data) <= $2::bigint THEN data END AS data FROM "{self.table}" '
            "WHERE key = $1",
            check_key(key),
            max_bytes,
        )
        if row is None:
            raise BlobMissingError(f"claim check blob {key} is not in the store")
        if row["data"] is None and max_bytes is not None:
            raise _too_large(key, row["size"], max_bytes)
        return bytes(row["data"])

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
