"""Reads and writes of executions and their messages (phase changes are in `phases`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.common.contract import token_hash
from backend.stigmer_service import identity, ids, states
from backend.stigmer_service.errors import AlreadyExists, FailedPrecondition, NotFound
from backend.stigmer_service.store.base import StoreBase, execution_record, now
from backend.stigmer_service.store.records import (
    CreateResult,
    ExecutionFilter,
    ExecutionRecord,
    MessageRecord,
    NewExecution,
    PageCursor,
    SessionStart,
)
from backend.stigmer_service.store.steps import delete_steps, steps_by_execution
from backend.stigmer_service.store.tables import agents, executions, messages

# The columns a create leaves to their defaults (NULL, or 0 for the usage counters).
_UNSET_COLUMNS = {
    "started_at": None,
    "completed_at": None,
    "callback_delivered_at": None,
    "input_tokens": 0,
    "output_tokens": 0,
    "model_calls": 0,
}


class _Row(dict[str, Any]):
    """A row written by this process, read like a fetched one (`row.column`)."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


class ExecutionStore(StoreBase):
    async def create_execution(self, new: NewExecution) -> CreateResult:
        """Inserts a PENDING execution, or returns the one with the same idempotency key."""
        at = now()
        execution_id = ids.new_execution_id()
        env = {
            name: {
                "value": self.cipher.encrypt_text(value) if secret else value,
                "is_secret": secret,
            }
            for name, (value, secret) in new.runtime_env.items()
        }
        values = {
            "id": execution_id,
            "org": new.org,
            "name": new.name or execution_id,
            "labels": new.labels,
            "agent_id": new.agent_id,
            "session_id": new.session_id,
            "message": new.message,
            "config": new.config,
            "caller": new.caller,
            "runtime_env": env,
            "token_enc": self.cipher.encrypt_bytes(new.token) if new.token else None,
            "token_hash": token_hash(new.token),
            "idempotency_key": new.idempotency_key or None,
            "created_by": new.created_by or identity.OPERATOR,
            "parent_execution_id": new.parent_execution_id or None,
            "phase": states.PHASE_PENDING,
            "output": "",
            "error_type": "",
            "error_message": "",
            "error_retryable": False,
            "callback_state": (
                states.CALLBACK_WAITING if new.token else states.CALLBACK_NOT_REQUESTED
            ),
            "callback_outcome": states.OUTCOME_UNSPECIFIED,
            "callback_attempts": 0,
            "callback_last_error": "",
            "version": 1,
            "created_at": at,
            "updated_at": at,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(executions.insert().values(**values))
                await conn.execute(
                    messages.insert().values(
                        execution_id=execution_id,
                        role=states.ROLE_USER,
                        content=new.message,
                        created_at=at,
                    )
                )
                await conn.execute(
                    agents.update()
                    .where(agents.c.id == new.agent_id)
                    .values(execution_count=agents.c.execution_count + 1, last_execution_at=at)
                )
        except IntegrityError:
            if not new.idempotency_key:
                raise
            return await self._existing_for_key(new)
        # The row is what was just written: built from it rather than read back (three queries
        # fewer on every create, the hot path of an agent call).
        record = execution_record(_Row({**_UNSET_COLUMNS, **values}))
        record.messages = [MessageRecord(states.ROLE_USER, new.message, at)]
        return CreateResult(record, created=True)

    async def _existing_for_key(self, new: NewExecution) -> CreateResult:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    executions.select().where(
                        (executions.c.org == new.org)
                        & (executions.c.idempotency_key == new.idempotency_key)
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"execution with idempotency key {new.idempotency_key} vanished")
            # Rows from before named credentials were all the operator's.
            if (row.created_by or identity.OPERATOR) != (new.created_by or identity.OPERATOR):
                # Another credential of the org must not take over the callback of this one.
                raise AlreadyExists(
                    f"idempotency key {new.idempotency_key!r} is used by another credential"
                )
            stored = self.cipher.decrypt_bytes(row.token_enc) if row.token_enc else b""
            replaced = bool(new.token) and new.token != stored
            if replaced:
                # The callback now targets the live attempt; its delivery starts over.
                await conn.execute(
                    executions.update()
                    .where(executions.c.id == row.id)
                    .values(
                        token_enc=self.cipher.encrypt_bytes(new.token),
                        token_hash=token_hash(new.token),
                        callback_state=states.CALLBACK_WAITING,
                        callback_attempts=0,
                        callback_last_error="",
                        callback_delivered_at=None,
                        version=executions.c.version + 1,
                        updated_at=now(),
                    )
                )
            execution_id = row.id
        if replaced:
            self.changes.publish(execution_id)
        return CreateResult(
            await self.get_execution(execution_id), created=False, token_replaced=replaced
        )

    async def delete_execution(self, execution_id: str, *, settled_only: bool = False) -> None:
        """Deletes the execution and its messages. `settled_only`: only if it has ended and owes
        no callback (else FailedPrecondition), checked by the delete itself, so that a cancel, a
        redelivery or a re-create with a new token between the caller's read and this wins."""
        doomed = executions.c.id == execution_id
        if settled_only:
            doomed &= executions.c.phase.in_(states.TERMINAL_PHASES) & (
                executions.c.callback_state != states.CALLBACK_WAITING
            )
        async with self.engine.begin() as conn:
            await delete_steps(conn, doomed)
            await conn.execute(
                messages.delete().where(
                    messages.c.execution_id.in_(sa.select(executions.c.id).where(doomed))
                )
            )
            result = await conn.execute(executions.delete().where(doomed))
            if result.rowcount == 0:
                exists = await conn.scalar(
                    sa.select(executions.c.id).where(executions.c.id == execution_id)
                )
                if exists is not None:  # Raising rolls the messages' delete back too.
                    raise FailedPrecondition(
                        f"execution {execution_id} is running or still owes its caller a callback"
                    )
        if result.rowcount == 0:
            raise NotFound(f"execution {execution_id} not found")
        self.changes.publish(execution_id)  # Its watches end.

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        async with self.engine.connect() as conn:
            record = execution_record(await self._execution_row(conn, execution_id))
            record.messages = await self._messages(conn, [execution_id])
            record.steps = (await steps_by_execution(conn, [execution_id])).get(execution_id, [])
        return record

    async def execution_version(self, execution_id: str) -> int | None:
        async with self.engine.connect() as conn:
            version = await conn.scalar(
                sa.select(executions.c.version).where(executions.c.id == execution_id)
            )
        return None if version is None else int(version)

    async def execution_versions(self, execution_ids: list[str]) -> dict[str, int]:
        """The current version of each of these executions that still exists."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(executions.c.id, executions.c.version).where(
                    executions.c.id.in_(execution_ids)
                )
            )
            return {row.id: int(row.version) for row in rows}

    async def list_executions(
        self, where: ExecutionFilter, *, after: PageCursor | None, limit: int
    ) -> tuple[list[ExecutionRecord], bool]:
        """One keyset page, newest first: the `limit` executions after `after` (and whether
        more follow), with their messages read in one query."""
        query = executions.select()
        if where.orgs is not None:
            query = query.where(executions.c.org.in_(sorted(where.orgs)))
        if where.phases:
            query = query.where(executions.c.phase.in_(where.phases))
        if where.callback_states:
            query = query.where(executions.c.callback_state.in_(where.callback_states))
        if where.agent_id:
            query = query.where(executions.c.agent_id == where.agent_id)
        if where.session_id:
            query = query.where(executions.c.session_id == where.session_id)
        if after is not None:
            # Inserts between pages land before the cursor (newer), so none is skipped or repeated.
            query = query.where(
                (executions.c.created_at < after.created_at)
                | ((executions.c.created_at == after.created_at) & (executions.c.id < after.id))
            )
        query = query.order_by(executions.c.created_at.desc(), executions.c.id.desc()).limit(
            limit + 1
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            records = [execution_record(r) for r in rows[:limit]]
            found = await self._messages_by_execution(conn, [r.id for r in records])
            found_steps = await steps_by_execution(conn, [r.id for r in records])
        for record in records:
            record.messages = found.get(record.id, [])
            record.steps = found_steps.get(record.id, [])
        return records, len(rows) > limit

    async def _messages_by_execution(
        self, conn: AsyncConnection, execution_ids: list[str]
    ) -> dict[str, list[MessageRecord]]:
        found: dict[str, list[MessageRecord]] = {}
        for r in await self._message_rows(conn, execution_ids):
            found.setdefault(r.execution_id, []).append(self._message(r))
        return found

    async def session_start(
        self, session_id: str, orgs: frozenset[str] | None
    ) -> SessionStart | None:
        """The agent and org of the session's first execution among `orgs` (None: any org)."""
        query = sa.select(executions.c.agent_id, executions.c.org).where(
            executions.c.session_id == session_id
        )
        if orgs is not None:
            query = query.where(executions.c.org.in_(sorted(orgs)))
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    query.order_by(executions.c.created_at, executions.c.id).limit(1)
                )
            ).first()
        return None if row is None else SessionStart(agent_id=row.agent_id, org=row.org)

    async def session_history(self, execution: ExecutionRecord) -> list[MessageRecord]:
        """User and assistant messages of the session's executions created before this one."""
        async with self.engine.connect() as conn:
            earlier = (
                await conn.execute(
                    sa.select(executions.c.id)
                    .where(
                        (executions.c.session_id == execution.session_id)
                        # Session ids are chosen by callers: another org's are not this one's.
                        & (executions.c.org == execution.org)
                        & (executions.c.id != execution.id)
                        & (executions.c.created_at <= execution.created_at)
                    )
                    .order_by(executions.c.created_at, executions.c.id)
                )
            ).all()
            if not earlier:
                return []
            history = await self._messages(conn, [r.id for r in earlier])
        return [m for m in history if m.role in (states.ROLE_USER, states.ROLE_ASSISTANT)]

    async def running_children(self, parent_execution_id: str) -> list[ExecutionRecord]:
        """The sub-agent executions of this one that have not ended (without messages)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    executions.select()
                    .where(
                        (executions.c.parent_execution_id == parent_execution_id)
                        & executions.c.phase.notin_(states.TERMINAL_PHASES)
                    )
                    .order_by(executions.c.created_at, executions.c.id)
                )
            ).all()
        return [execution_record(r) for r in rows]

    def decrypt_env(self, record: ExecutionRecord) -> tuple[dict[str, str], dict[str, str]]:
        """(all values in clear, secret values by name) of an execution's runtime env."""
        clear: dict[str, str] = {}
        secrets: dict[str, str] = {}
        for name, env in record.runtime_env.items():
            value = self.cipher.decrypt_text(env.value) if env.is_secret else env.value
            clear[name] = value
            if env.is_secret:
                secrets[name] = value
        return clear, secrets
