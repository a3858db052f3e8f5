"""The driver's read-only look at the service's database: the cheapest honest signal of how
many calls are in flight, which tool calls await approval, and how big the database is."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from backend.stigmer_service.store import db

# ExecutionPhase and the step's ApprovalState as stored (status.proto): RUNNING, then
# COMPLETED, FAILED, CANCELLED; AWAITING a decision.
PHASE_RUNNING = 2
PHASES_ENDED = (3, 4, 5)
PHASES_FAILED = (4, 5)
APPROVAL_AWAITING = 1

# An execution that failed after recording its step keeps the step's state: running ones only.
_FIRST_AWAITING = (
    "FROM execution_steps s JOIN executions e ON e.id = s.execution_id "
    f"WHERE s.step_index = 0 AND s.approval = {APPROVAL_AWAITING} AND e.phase = {PHASE_RUNNING}"
)
AWAITING = f"SELECT s.execution_id {_FIRST_AWAITING}"
COUNT_AWAITING = f"SELECT count(*) {_FIRST_AWAITING}"
COUNT_PHASES = "SELECT count(*) FROM executions WHERE phase IN ({phases})"


class StoreProbe:
    """Queries on the database the replicas share (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite_path = db.sqlite_path(url)
        self._pg: Any = None

    async def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.sqlite_path is not None:
            return await asyncio.to_thread(self._sqlite_rows, self.sqlite_path, sql)
        if self._pg is None:
            self._pg = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
        return [tuple(row) for row in await self._pg.fetch(sql)]

    @staticmethod
    def _sqlite_rows(path: pathlib.Path, sql: str) -> list[tuple[Any, ...]]:
        # Read-only, a connection per query: the service's writers are never held up for long.
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return list(connection.execute(sql).fetchall())
        finally:
            connection.close()

    async def _count(self, sql: str) -> int:
        return int((await self._rows(sql))[0][0])

    async def awaiting_approval(self) -> list[str]:
        """The executions whose first tool call (step 0) awaits a decision."""
        return [str(row[0]) for row in await self._rows(AWAITING)]

    async def count_awaiting(self) -> int:
        return await self._count(COUNT_AWAITING)

    async def count_running(self) -> int:
        """Executions whose agent runs now (for the slow model: sleeping in `run_agent`)."""
        return await self._count_phases((PHASE_RUNNING,))

    async def count_ended(self) -> int:
        """Executions that ended, whatever the outcome."""
        return await self._count_phases(PHASES_ENDED)

    async def count_failed(self) -> int:
        """Executions that failed or were cancelled."""
        return await self._count_phases(PHASES_FAILED)

    async def _count_phases(self, phases: tuple[int, ...]) -> int:
        return await self._count(COUNT_PHASES.format(phases=", ".join(map(str, phases))))

    async def size_bytes(self) -> int:
        """SQLite: the file and its WAL; PostgreSQL: pg_database_size."""
        if self.sqlite_path is not None:
            files = [self.sqlite_path, self.sqlite_path.with_name(self.sqlite_path.name + "-wal")]
            return sum(f.stat().st_size for f in files if f.exists())
        return await self._count("SELECT pg_database_size(current_database())")

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
            self._pg = None
