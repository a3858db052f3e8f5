"""A fresh PostgreSQL database per test or run, on the local server (127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]

# The server's maintenance database, from which the fresh ones are created and dropped.
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.asynccontextmanager
async def fresh_database(prefix: str = "stigmer_test") -> AsyncIterator[str]:
    """The SQLAlchemy URL of a new, empty database of its own, dropped afterwards, so that runs
    never collide."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
