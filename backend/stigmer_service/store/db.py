"""Engine creation and automatic schema migration (alembic, run programmatically).

Every replica migrates at start, so migrations are serialised: on PostgreSQL by an advisory lock
held for the migration's transaction, on SQLite by a lock file next to the database (SQLite's
own locking does not stop two processes from both reading an empty schema and then both
creating it)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = pathlib.Path(__file__).resolve().parent / "migrations"
# Key of the PostgreSQL advisory lock that migrations hold (any constant the app uses once).
MIGRATION_LOCK_KEY = 0x5717_6E12


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> pathlib.Path | None:
    """The file of a SQLite URL; None for an in-memory database or another engine."""
    if not is_sqlite(url):
        return None
    path = url.split(":///", 1)[-1]
    if not path or ":memory:" in path:
        return None
    return pathlib.Path(path).expanduser()


def create_engine(url: str, *, pool_size: int = 20, max_overflow: int = 20) -> AsyncEngine:
    """An async engine; SQLite files get their directory, foreign keys and a busy timeout.

    Bound parameters are request data (messages, outputs, encrypted tokens): `hide_parameters`
    keeps them out of statement logging (echo) and out of the text of database errors, which a
    crashed RPC logs with its traceback. `pool_size`, `max_overflow`: the connections of a
    server database (Settings.db_pool_size)."""
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
    )


def _upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@contextlib.asynccontextmanager
async def _file_lock(path: pathlib.Path) -> AsyncIterator[None]:
    """An exclusive lock on `path` (created if need be), between processes and within one:
    flock locks belong to the open file, so two opens in one process exclude each other too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # Releases the lock.


async def migrate(engine: AsyncEngine) -> None:
    """Brings the schema to the newest revision; a no-op when it is already there. Safe to run
    from any number of processes at once: one migrates, the others then find it done."""
    path = sqlite_path(str(engine.url))
    lock = (
        _file_lock(path.with_name(path.name + ".migrate.lock"))
        if path is not None
        else contextlib.nullcontext()
    )
    async with lock, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Released at the end of this transaction, which is the migration's (DDL is
            # transactional in PostgreSQL): the next replica waits, then finds the schema there.
            await connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade)
