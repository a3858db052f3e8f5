"""Reads and writes of the callback columns: the token to deliver to and each attempt's record."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from backend.stigmer_service import states
from backend.stigmer_service.store import documents
from backend.stigmer_service.store.base import StoreBase, now, utc
from backend.stigmer_service.store.records import (
    CallbackOverview,
    Delivery,
    UnreadableToken,
    WaitingCaller,
    WaitingCallers,
)
from backend.stigmer_service.store.tables import executions


class CallbackStore(StoreBase):
    async def for_delivery(self, execution_id: str) -> Delivery:
        """The execution without its messages, its clear callback token (empty when none) and
        the token's hash: what a callback needs, in one query."""
        async with self.engine.connect() as conn:
            row = await self._execution_row(conn, execution_id)
        return self._delivery(row)

    async def waiting_callers(self) -> WaitingCallers:
        """The callers of executions that have not ended, with their clear tokens (to heartbeat).
        Each token is decrypted on its own: one that fails is listed apart, the others are read."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        executions.c.id,
                        executions.c.token_enc,
                        executions.c.token_hash,
                        executions.c.caller,
                        executions.c.created_at,
                    ).where(
                        executions.c.phase.in_([states.PHASE_PENDING, states.PHASE_RUNNING])
                        & executions.c.token_enc.is_not(None)
                    )
                )
            ).all()
        waiting = WaitingCallers(callers=[])
        for row in rows:
            try:
                token = self.cipher.decrypt_bytes(row.token_enc)
            except (InvalidToken, ValueError):
                waiting.unreadable.append(UnreadableToken(row.id, row.token_hash))
                continue
            waiting.callers.append(
                WaitingCaller(
                    execution_id=row.id,
                    token=token,
                    token_hash=row.token_hash,
                    caller=documents.caller(row.caller),
                    created_at=utc(row.created_at),
                )
            )
        return waiting

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
        if result.rowcount:
            self.changes.publish(execution_id)
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
        if result.rowcount:
            self.changes.publish(execution_id)
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
            oldest_waiting=utc(oldest),
            failed=int(failed or 0),
        )
