"""What every part of the store shares: the engine, the cipher, and the reading of rows into records."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.stigmer_service.crypto import Cipher
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.store import documents
from backend.stigmer_service.store.changes import ChangeFeed
from backend.stigmer_service.store.records import (
    AgentRecord,
    Delivery,
    EnvValue,
    ExecutionRecord,
    MessageRecord,
    TokenUsage,
)
from backend.stigmer_service.store.tables import executions, messages


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def utc(value: datetime.datetime | None) -> datetime.datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


def agent_record(row: Any) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        org=row.org,
        slug=row.slug,
        name=row.name,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        spec=dict(row.spec),
        instructions=documents.instructions(row.spec),
        model=documents.model(row.spec),
        model_options=documents.model_options(row.spec),
        version=row.version,
        execution_count=row.execution_count,
        last_execution_at=utc(row.last_execution_at),
        created_at=utc(row.created_at) or now(),
        updated_at=utc(row.updated_at) or now(),
    )


def execution_record(row: Any) -> ExecutionRecord:
    return ExecutionRecord(
        id=row.id,
        org=row.org,
        name=row.name,
        labels=dict(row.labels),
        agent_id=row.agent_id,
        session_id=row.session_id,
        message=row.message,
        config=dict(row.config),
        model_name=documents.config_model(row.config),
        temperature=documents.config_temperature(row.config),
        caller=documents.caller(row.caller),
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
        started_at=utc(row.started_at),
        completed_at=utc(row.completed_at),
        callback_state=row.callback_state,
        callback_outcome=row.callback_outcome,
        callback_attempts=row.callback_attempts,
        callback_last_error=row.callback_last_error,
        callback_delivered_at=utc(row.callback_delivered_at),
        version=row.version,
        created_at=utc(row.created_at) or now(),
        updated_at=utc(row.updated_at) or now(),
        created_by=row.created_by,
        parent_execution_id=row.parent_execution_id or "",
        usage=TokenUsage(row.input_tokens, row.output_tokens, row.model_calls),
    )


class StoreBase:
    """The database and the key; each part of the `Store` is a mixin over this."""

    def __init__(self, engine: AsyncEngine, cipher: Cipher) -> None:
        self.engine = engine
        self.cipher = cipher
        # Told of every committed write to an execution (store/changes.py).
        self.changes = ChangeFeed()

    @staticmethod
    async def _execution_row(conn: AsyncConnection, execution_id: str) -> Any:
        row = (
            await conn.execute(executions.select().where(executions.c.id == execution_id))
        ).first()
        if row is None:
            raise NotFound(f"execution {execution_id} not found")
        return row

    @staticmethod
    async def _message_rows(conn: AsyncConnection, execution_ids: list[str]) -> list[Any]:
        """The messages of these executions, in the order they were written, in one query."""
        if not execution_ids:
            return []
        return list(
            (
                await conn.execute(
                    messages.select()
                    .where(messages.c.execution_id.in_(execution_ids))
                    .order_by(messages.c.id)
                )
            ).all()
        )

    @staticmethod
    def _message(row: Any) -> MessageRecord:
        return MessageRecord(row.role, row.content, utc(row.created_at) or now())

    async def _messages(
        self, conn: AsyncConnection, execution_ids: list[str]
    ) -> list[MessageRecord]:
        return [self._message(r) for r in await self._message_rows(conn, execution_ids)]

    def _delivery(self, row: Any) -> Delivery:
        token = b"" if row.token_enc is None else self.cipher.decrypt_bytes(row.token_enc)
        return Delivery(execution_record(row), token, row.token_hash if token else "")
