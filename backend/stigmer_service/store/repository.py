"""All reads and writes of agents and executions, with guarded status updates."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.stigmer_service import ids, states
from backend.stigmer_service.crypto import Cipher, token_hash
from backend.stigmer_service.errors import Aborted, AlreadyExists, NotFound
from backend.stigmer_service.store.records import (
    AgentRecord,
    CallbackOverview,
    CreateResult,
    EnvValue,
    ExecutionRecord,
    MessageRecord,
    NewExecution,
    WaitingCaller,
)
from backend.stigmer_service.store.tables import agents, executions, messages

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


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


def _agent(row: Any) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        org=row.org,
        slug=row.slug,
        name=row.name,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        spec=dict(row.spec),
        version=row.version,
        execution_count=row.execution_count,
        last_execution_at=_utc(row.last_execution_at),
        created_at=_utc(row.created_at) or now(),
        updated_at=_utc(row.updated_at) or now(),
    )


def _execution(row: Any) -> ExecutionRecord:
    return ExecutionRecord(
        id=row.id,
        org=row.org,
        name=row.name,
        labels=dict(row.labels),
        agent_id=row.agent_id,
        session_id=row.session_id,
        message=row.message,
        config=dict(row.config),
        caller=dict(row.caller),
        runtime_env={
            k: EnvValue(value=v["value"], is_secret=bool(v["is_secret"]))
            for k, v in row.runtime_env.items()
        },
        token_present=row.token_enc is not None,
        token_hash=row.token_hash,
        idempotency_key=row.idempotency_key or "",
        phase=row.phase,
        output=row.output,
        error_type=row.error_type,
        error_message=row.error_message,
        error_retryable=row.error_retryable,
        started_at=_utc(row.started_at),
        completed_at=_utc(row.completed_at),
        callback_state=row.callback_state,
        callback_outcome=row.callback_outcome,
        callback_attempts=row.callback_attempts,
        callback_last_error=row.callback_last_error,
        callback_delivered_at=_utc(row.callback_delivered_at),
        version=row.version,
        created_at=_utc(row.created_at) or now(),
        updated_at=_utc(row.updated_at) or now(),
    )


class Store:
    """The service's persistence; every method is one transaction."""

    def __init__(self, engine: AsyncEngine, cipher: Cipher) -> None:
        self.engine = engine
        self.cipher = cipher

    # Agents ----------------------------------------------------------------------------------

    async def create_agent(
        self,
        *,
        org: str,
        slug: str,
        name: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        spec: dict[str, Any],
    ) -> AgentRecord:
        at = now()
        values = {
            "id": ids.new_agent_id(),
            "org": org,
            "slug": slug,
            "name": name,
            "labels": labels,
            "annotations": annotations,
            "spec": spec,
            "version": 1,
            "execution_count": 0,
            "created_at": at,
            "updated_at": at,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(agents.insert().values(**values))
        except IntegrityError as error:
            raise AlreadyExists(f"agent {org or '(platform)'}/{slug} already exists") from error
        return await self.get_agent(str(values["id"]))

    async def apply_agent(
        self,
        *,
        org: str,
        slug: str,
        name: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        spec: dict[str, Any],
    ) -> AgentRecord:
        for _ in range(3):
            existing = await self.find_agent(org, slug)
            if existing is None:
                try:
                    return await self.create_agent(
                        org=org,
                        slug=slug,
                        name=name,
                        labels=labels,
                        annotations=annotations,
                        spec=spec,
                    )
                except AlreadyExists:
                    continue  # Created concurrently: update it instead.
            return await self.update_agent(
                existing.id,
                {"name": name, "labels": labels, "annotations": annotations, "spec": spec},
                expected_version=0,
            )
        raise Aborted(f"agent {org}/{slug} changed concurrently; retry")

    async def update_agent(
        self, agent_id: str, fields: dict[str, Any], *, expected_version: int
    ) -> AgentRecord:
        condition = agents.c.id == agent_id
        if expected_version:
            condition = condition & (agents.c.version == expected_version)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                agents.update()
                .where(condition)
                .values(**fields, version=agents.c.version + 1, updated_at=now())
            )
            if result.rowcount == 0:
                exists = await conn.scalar(sa.select(agents.c.id).where(agents.c.id == agent_id))
                if exists is None:
                    raise NotFound(f"agent {agent_id} not found")
                raise Aborted(f"agent {agent_id} was changed since version {expected_version}")
        return await self.get_agent(agent_id)

    async def get_agent(self, agent_id: str) -> AgentRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(agents.select().where(agents.c.id == agent_id))).first()
        if row is None:
            raise NotFound(f"agent {agent_id} not found")
        return _agent(row)

    async def find_agent(self, org: str, slug: str) -> AgentRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    agents.select().where((agents.c.org == org) & (agents.c.slug == slug))
                )
            ).first()
        return None if row is None else _agent(row)

    async def list_agents(
        self, *, org: str, labels: dict[str, str], offset: int, limit: int
    ) -> tuple[list[AgentRecord], bool]:
        """One page of agents (label matching in Python: portable across both databases)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    agents.select()
                    .where(agents.c.org == org)
                    .order_by(agents.c.created_at, agents.c.id)
                )
            ).all()
        matching = [_agent(r) for r in rows if all(r.labels.get(k) == v for k, v in labels.items())]
        page = matching[offset : offset + limit]
        return page, offset + limit < len(matching)

    async def delete_agent(self, agent_id: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(agents.delete().where(agents.c.id == agent_id))
        if result.rowcount == 0:
            raise NotFound(f"agent {agent_id} not found")

    # Executions ------------------------------------------------------------------------------

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
        return CreateResult(await self.get_execution(execution_id), created=True)

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
        return CreateResult(
            await self.get_execution(execution_id), created=False, token_replaced=replaced
        )

    async def delete_execution(self, execution_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(messages.delete().where(messages.c.execution_id == execution_id))
            result = await conn.execute(executions.delete().where(executions.c.id == execution_id))
        if result.rowcount == 0:
            raise NotFound(f"execution {execution_id} not found")

    @staticmethod
    async def _execution_row(conn: AsyncConnection, execution_id: str) -> Any:
        row = (
            await conn.execute(executions.select().where(executions.c.id == execution_id))
        ).first()
        if row is None:
            raise NotFound(f"execution {execution_id} not found")
        return row

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        async with self.engine.connect() as conn:
            record = _execution(await self._execution_row(conn, execution_id))
            record.messages = await self._messages(conn, [execution_id])
        return record

    async def for_delivery(self, execution_id: str) -> tuple[ExecutionRecord, bytes, str]:
        """The execution without its messages, its clear callback token (empty when none) and
        the token's hash: what a callback needs, in one query."""
        async with self.engine.connect() as conn:
            row = await self._execution_row(conn, execution_id)
        return self._delivery(row)

    def _delivery(self, row: Any) -> tuple[ExecutionRecord, bytes, str]:
        token = b"" if row.token_enc is None else self.cipher.decrypt_bytes(row.token_enc)
        return _execution(row), token, row.token_hash if token else ""

    async def execution_version(self, execution_id: str) -> int | None:
        async with self.engine.connect() as conn:
            version = await conn.scalar(
                sa.select(executions.c.version).where(executions.c.id == execution_id)
            )
        return None if version is None else int(version)

    @staticmethod
    async def _messages(conn: AsyncConnection, execution_ids: list[str]) -> list[MessageRecord]:
        rows = (
            await conn.execute(
                messages.select()
                .where(messages.c.execution_id.in_(execution_ids))
                .order_by(messages.c.id)
            )
        ).all()
        return [MessageRecord(r.role, r.content, _utc(r.created_at) or now()) for r in rows]

    async def list_executions(
        self,
        *,
        phases: list[int],
        agent_id: str,
        session_id: str,
        offset: int,
        limit: int,
        callback_states: list[int] | None = None,
    ) -> tuple[list[ExecutionRecord], bool]:
        query = executions.select()
        if phases:
            query = query.where(executions.c.phase.in_(phases))
        if callback_states:
            query = query.where(executions.c.callback_state.in_(callback_states))
        if agent_id:
            query = query.where(executions.c.agent_id == agent_id)
        if session_id:
            query = query.where(executions.c.session_id == session_id)
        query = (
            query.order_by(executions.c.created_at.desc(), executions.c.id.desc())
            .offset(offset)
            .limit(limit + 1)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            records = [_execution(r) for r in rows[:limit]]
            for record in records:
                record.messages = await self._messages(conn, [record.id])
        return records, len(rows) > limit

    async def session_agent(self, session_id: str) -> str | None:
        """The agent of the session's first execution."""
        async with self.engine.connect() as conn:
            agent_id = await conn.scalar(
                sa.select(executions.c.agent_id)
                .where(executions.c.session_id == session_id)
                .order_by(executions.c.created_at, executions.c.id)
                .limit(1)
            )
        return None if agent_id is None else str(agent_id)

    async def session_history(self, execution: ExecutionRecord) -> list[MessageRecord]:
        """User and assistant messages of the session's executions created before this one."""
        async with self.engine.connect() as conn:
            earlier = (
                await conn.execute(
                    sa.select(executions.c.id)
                    .where(
                        (executions.c.session_id == execution.session_id)
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

    # Guarded status updates ------------------------------------------------------------------

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
        return bool(result.rowcount)

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
        return True

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
        return bool(result.rowcount)

    async def complete(
        self, execution_id: str, answer: str, *, append: bool = True
    ) -> tuple[ExecutionRecord, bytes, str] | None:
        """Records the agent's answer and the COMPLETED phase in one transaction, unless the
        execution has already ended (None). `append=False`: the answer is already among the
        messages.

        Returns what `for_delivery` would, read by the same statement (UPDATE ... RETURNING):
        the callback goes out one query sooner, to the token current at the end."""
        at = now()
        async with self.engine.begin() as conn:
            values = {"execution_id": execution_id, "answer": answer, "at": at}
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
        return self._delivery(row)

    # Callback --------------------------------------------------------------------------------

    async def waiting_callers(self) -> list[WaitingCaller]:
        """The callers of executions that have not ended, with their clear tokens (to heartbeat)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        executions.c.id,
                        executions.c.token_enc,
                        executions.c.token_hash,
                        executions.c.caller,
                    ).where(
                        executions.c.phase.in_([states.PHASE_PENDING, states.PHASE_RUNNING])
                        & executions.c.token_enc.is_not(None)
                    )
                )
            ).all()
        return [
            WaitingCaller(
                execution_id=row.id,
                token=self.cipher.decrypt_bytes(row.token_enc),
                token_hash=row.token_hash,
                caller=dict(row.caller or {}),
            )
            for row in rows
        ]

    async def record_callback(
        self,
        execution_id: str,
        *,
        for_token_hash: str,
        state: int,
        last_error: str = "",
        attempted: bool = True,
    ) -> bool:
        """Records a delivery attempt for the token with this hash (a replaced token's is ignored)."""
        values: dict[str, Any] = {
            "callback_state": state,
            "callback_last_error": last_error,
            "version": executions.c.version + 1,
            "updated_at": now(),
        }
        if attempted:
            values["callback_attempts"] = executions.c.callback_attempts + 1
        if state in (states.CALLBACK_DELIVERED, states.CALLBACK_ALREADY_CLOSED):
            values["callback_delivered_at"] = now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                executions.update()
                .where(
                    (executions.c.id == execution_id)
                    & (executions.c.token_hash == for_token_hash)
                    # Two racing deliveries of one token (the agent's end and a cancel): the
                    # loser's NOT_FOUND must not turn the winner's DELIVERED into ALREADY_CLOSED.
                    & (executions.c.callback_state != states.CALLBACK_DELIVERED)
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def reopen_callback(self, execution_id: str) -> bool:
        """FAILED (or stuck WAITING) callback of an ended execution -> WAITING, for a redelivery;
        False when the execution has not ended, has no token, or its callback was delivered."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                executions.update()
                .where(
                    (executions.c.id == execution_id)
                    & executions.c.phase.in_(states.TERMINAL_PHASES)
                    & executions.c.token_enc.is_not(None)
                    & executions.c.callback_state.in_(
                        [states.CALLBACK_FAILED, states.CALLBACK_WAITING]
                    )
                )
                .values(
                    callback_state=states.CALLBACK_WAITING,
                    version=executions.c.version + 1,
                    updated_at=now(),
                )
            )
        return bool(result.rowcount)

    async def callback_overview(self) -> CallbackOverview:
        async with self.engine.connect() as conn:
            phases = {
                int(phase): int(count)
                for phase, count in await conn.execute(
                    sa.select(executions.c.phase, sa.func.count()).group_by(executions.c.phase)
                )
            }
            waiting = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(executions.c.created_at)).where(
                        executions.c.callback_state == states.CALLBACK_WAITING
                    )
                )
            ).one()
            failed = await conn.scalar(
                sa.select(sa.func.count()).where(
                    executions.c.callback_state == states.CALLBACK_FAILED
                )
            )
        oldest = waiting[1]
        if isinstance(oldest, str):  # SQLite returns min() of a datetime column as text.
            oldest = datetime.datetime.fromisoformat(oldest)
        return CallbackOverview(
            phases=phases,
            waiting=int(waiting[0]),
            oldest_waiting=_utc(oldest),
            failed=int(failed or 0),
        )

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
