"""Guarded phase transitions of executions: each writes only if the execution has not ended."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from backend.stigmer_service import states
from backend.stigmer_service.store.base import StoreBase, now
from backend.stigmer_service.store.records import NO_USAGE, Delivery, TokenUsage
from backend.stigmer_service.store.tables import executions, messages

_NOT_TERMINAL = executions.c.phase.not_in(states.TERMINAL_PHASES)

# The statements of the agent's end, built once: it is on the callback's path, where building a
# statement (coercions, cache key) cost more than running it (see docs/benchmarks.md).
_COMPLETE = (
    executions.update()
    .where((executions.c.id == sa.bindparam("execution_id")) & _NOT_TERMINAL)
    .values(
        phase=states.PHASE_COMPLETED,
        output=sa.bindparam("answer"),
        completed_at=sa.bindparam("at"),
        callback_outcome=states.OUTCOME_COMPLETED,
        input_tokens=executions.c.input_tokens + sa.bindparam("input_tokens"),
        output_tokens=executions.c.output_tokens + sa.bindparam("output_tokens"),
        model_calls=executions.c.model_calls + sa.bindparam("model_calls"),
        version=executions.c.version + 1,
        updated_at=sa.bindparam("at"),
    )
    .returning(*executions.c)
)
_APPEND = messages.insert().values(
    execution_id=sa.bindparam("execution_id"),
    role=sa.bindparam("role"),
    content=sa.bindparam("content"),
    created_at=sa.bindparam("at"),
)


class PhaseStore(StoreBase):
    def _published(self, execution_id: str, written: int) -> bool:
        """Whether a guarded write wrote; if it did, watchers hear of it (it has committed)."""
        if written:
            self.changes.publish(execution_id)
        return bool(written)

    async def mark_running(self, execution_id: str) -> bool:
        """PENDING -> RUNNING; False when the execution is no longer pending."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                executions.update()
                .where(
                    (executions.c.id == execution_id) & (executions.c.phase == states.PHASE_PENDING)
                )
                .values(
                    phase=states.PHASE_RUNNING,
                    started_at=now(),
                    version=executions.c.version + 1,
                    updated_at=now(),
                )
            )
        return self._published(execution_id, result.rowcount)

    async def append_message(self, execution_id: str, role: int, content: str) -> bool:
        """Appends a message unless the execution has ended; concurrent appends all land."""
        async with self.engine.begin() as conn:
            # The version bump locks the row (and checks the phase) before the insert.
            result = await conn.execute(
                executions.update()
                .where((executions.c.id == execution_id) & _NOT_TERMINAL)
                .values(version=executions.c.version + 1, updated_at=now())
            )
            if not result.rowcount:
                return False
            await conn.execute(
                messages.insert().values(
                    execution_id=execution_id, role=role, content=content, created_at=now()
                )
            )
        self.changes.publish(execution_id)
        return True

    async def add_usage(self, execution_id: str, usage: TokenUsage) -> None:
        """Adds a model call's usage to the execution's (also after it ended: it was used)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                executions.update()
                .where(executions.c.id == execution_id)
                .values(
                    input_tokens=executions.c.input_tokens + usage.input_tokens,
                    output_tokens=executions.c.output_tokens + usage.output_tokens,
                    model_calls=executions.c.model_calls + usage.model_calls,
                    version=executions.c.version + 1,
                    updated_at=now(),
                )
            )
        self.changes.publish(execution_id)

    async def finish(
        self,
        execution_id: str,
        *,
        phase: int,
        output: str = "",
        error_type: str = "",
        error_message: str = "",
        error_retryable: bool = False,
    ) -> bool:
        """Writes a terminal phase unless one is already written; True if this call wrote it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                executions.update()
                .where((executions.c.id == execution_id) & _NOT_TERMINAL)
                .values(
                    phase=phase,
                    output=output,
                    error_type=error_type,
                    error_message=error_message,
                    error_retryable=error_retryable,
                    completed_at=now(),
                    callback_outcome=states.OUTCOME_OF_PHASE[phase],
                    version=executions.c.version + 1,
                    updated_at=now(),
                )
            )
        return self._published(execution_id, result.rowcount)

    async def complete(
        self,
        execution_id: str,
        answer: str,
        *,
        append: bool = True,
        usage: TokenUsage = NO_USAGE,
    ) -> Delivery | None:
        """Records the agent's answer and the COMPLETED phase in one transaction, unless the
        execution has already ended (None). `append=False`: the answer is already among the
        messages. `usage`: the answering model call's, added to the execution's.

        Returns what `for_delivery` would, read by the same statement (UPDATE ... RETURNING):
        the callback goes out one query sooner, to the token current at the end."""
        at = now()
        async with self.engine.begin() as conn:
            values = {
                "execution_id": execution_id,
                "answer": answer,
                "at": at,
                **dataclasses.asdict(usage),
            }
            row = (await conn.execute(_COMPLETE, values)).first()
            if row is None:
                return None
            if append:
                await conn.execute(
                    _APPEND,
                    {
                        "execution_id": execution_id,
                        "role": states.ROLE_ASSISTANT,
                        "content": answer,
                        "at": at,
                    },
                )
        self.changes.publish(execution_id)
        return self._delivery(row)
