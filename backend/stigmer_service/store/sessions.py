"""The order of a session's executions: one runs at a time, in the order they were created.

Executions of a session share its history, so a later one must see the earlier ones' answers:
it waits (its workflow holds a timer and a signal, nothing else) until every earlier execution
of the session has ended. "Earlier" is the order (created_at, id), the order `session_history`
reads; a session is one org's (another org's executions with the same id are not in it).
"""

from __future__ import annotations

import sqlalchemy as sa

from backend.stigmer_service import states
from backend.stigmer_service.store.base import StoreBase
from backend.stigmer_service.store.records import ExecutionRecord
from backend.stigmer_service.store.tables import executions


def _unfinished_of(execution: ExecutionRecord) -> sa.ColumnElement[bool]:
    return (
        (executions.c.session_id == execution.session_id)
        & (executions.c.org == execution.org)
        & (executions.c.id != execution.id)
        & executions.c.phase.notin_(states.TERMINAL_PHASES)
    )


def _before(execution: ExecutionRecord) -> sa.ColumnElement[bool]:
    return (executions.c.created_at < execution.created_at) | (
        (executions.c.created_at == execution.created_at) & (executions.c.id < execution.id)
    )


class SessionStore(StoreBase):
    async def session_busy(self, execution: ExecutionRecord) -> bool:
        """Whether another execution of the session has not ended (before or after this one:
        two created at once both queue, and the order decides which runs)."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(executions.c.id).where(_unfinished_of(execution)).limit(1)
            )
        return found is not None

    async def session_ahead(self, execution: ExecutionRecord) -> str | None:
        """The earliest unfinished execution of the session created before this one."""
        async with self.engine.connect() as conn:
            return await conn.scalar(
                sa.select(executions.c.id)
                .where(_unfinished_of(execution) & _before(execution))
                .order_by(executions.c.created_at, executions.c.id)
                .limit(1)
            )

    async def session_next(self, execution: ExecutionRecord) -> str | None:
        """The earliest unfinished execution of the session created after this one: the one
        that may run now that this one has ended."""
        async with self.engine.connect() as conn:
            return await conn.scalar(
                sa.select(executions.c.id)
                .where(_unfinished_of(execution) & ~_before(execution))
                .order_by(executions.c.created_at, executions.c.id)
                .limit(1)
            )
