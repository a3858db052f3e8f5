"""Guarded phase transitions of executions: each writes only if the execution has not ended."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from backend.stigmer_service import states
from backend.stigmer_service.store import driver_sql
from backend.stigmer_service.store.base import StoreBase, execution_record, now
from backend.stigmer_service.store.records import NO_USAGE, Delivery, ExecutionRecord, TokenUsage
from backend.stigmer_service.store.tables import executions, messages

_NOT_TERMINAL = executions.c.phase.not_in(states.TERMINAL_PHASES)

# The agent's end, run on the driver's connection (store/driver_sql.py): it is on the callback's
# path, where SQLAlchemy's machinery cost more than the statements themselves. It returns only
# what the end changes and does not know: the token current at that moment, and the counters.
_COMPLETE = driver_sql.DriverStatement(
    executions.update()
    .where(
        (executions.c.id == sa.bindparam("execution_id"))
        # Not `not_in`: an expanding IN is rendered per execution, and this is compiled once.
        & sa.and_(*(executions.c.phase != phase for phase in states.TERMINAL_PHASES))
    )
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
    .returning(
        executions.c.token_enc,
        executions.c.token_hash,
        executions.c.callback_state,
        executions.c.callback_attempts,
        executions.c.version,
        executions.c.input_tokens,
        executions.c.output_tokens,
        executions.c.model_calls,
    )
)
_APPEND = driver_sql.DriverStatement(
    messages.insert().values(
        execution_id=sa.bindparam("execution_id"),
        role=sa.bindparam("role"),
        content=sa.bindparam("content"),
        created_at=sa.bindparam("at"),
    )
)
_MARK_RUNNING = (
    executions.update()
    .where(
        (executions.c.id == sa.bindparam("execution_id"))
        & (executions.c.phase == states.PHASE_PENDING)
    )
    .values(
        phase=states.PHASE_RUNNING,
        started_at=sa.bindparam("at"),
        version=executions.c.version + 1,
        updated_at=sa.bindparam("at"),
    )
    .returning(*executions.c)
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

    async def start_run(self, execution_id: str) -> tuple[ExecutionRecord, bool]:
        """PENDING -> RUNNING and the execution with its messages (not its steps: the one-call
        path of an agent without tools has none), in one transaction; and whether this call
        moved it to RUNNING (False for a retried attempt, or one that has ended)."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(_MARK_RUNNING, {"execution_id": execution_id, "at": now()})
            ).first()
            started = row is not None
            if row is None:
                row = await self._execution_row(conn, execution_id)
            record = execution_record(row)
            record.messages = await self._messages(conn, [execution_id])
        if started:
            self.changes.publish(execution_id)
        return record, started

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
        before: ExecutionRecord | None = None,
    ) -> Delivery | None:
        """Records the agent's answer and the COMPLETED phase in one transaction, unless the
        execution has already ended (None). `append=False`: the answer is already among the
        messages. `usage`: the answering model call's, added to the execution's. `before`: the
        execution as the caller read it before the end (read here otherwise).

        Returns what `for_delivery` would, with the token the same statement read (UPDATE ...
        RETURNING): the callback goes to the token current at the end."""
        if before is None:
            async with self.engine.connect() as conn:
                before = execution_record(await self._execution_row(conn, execution_id))
        at = now()
        async with driver_sql.transaction(self.engine) as conn:
            values = {"execution_id": execution_id, "answer": answer, "at": at}
            rows = await conn.fetch(_COMPLETE, values | dataclasses.asdict(usage))
            if not rows:
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
        token_enc, token_hash, callback_state, attempts, version, *counters = rows[0]
        token = b"" if token_enc is None else self.cipher.decrypt_bytes(token_enc)
        ended = dataclasses.replace(
            before,
            phase=states.PHASE_COMPLETED,
            output=answer,
            completed_at=at,
            callback_outcome=states.OUTCOME_COMPLETED,
            callback_state=callback_state,
            callback_attempts=attempts,
            token_present=token_enc is not None,
            token_hash=token_hash,
            version=version,
            updated_at=at,
            usage=TokenUsage(*counters),
            messages=[],
            steps=[],
        )
        return Delivery(ended, token, token_hash if token else "")
