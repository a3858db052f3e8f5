"""The steps of agents with tools: written as they happen, read with their executions."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.stigmer_service.store.base import StoreBase, now, utc
from backend.stigmer_service.store.records import APPROVAL_AWAITING, StepDecision, StepRecord
from backend.stigmer_service.store.tables import executions, steps


def _values(step: StepRecord) -> dict[str, object]:
    # The approval is only ever set here to mark a call awaiting; rewriting the step later (its
    # result) leaves the approval and its decision as they were.
    approval: dict[str, object] = {"approval": step.approval} if step.approval else {}
    return approval | {
        "kind": step.kind,
        "tool_server": step.tool_server,
        "tool_name": step.tool_name,
        "arguments": step.arguments,
        "result": step.result,
        "error": step.error,
        "started_at": step.started_at,
        "duration_ms": (
            None if step.duration is None else int(step.duration.total_seconds() * 1000)
        ),
        "sub_execution_id": step.sub_execution_id,
    }


async def steps_by_execution(
    conn: AsyncConnection, execution_ids: list[str]
) -> dict[str, list[StepRecord]]:
    """The steps of each of these executions, in index order."""
    if not execution_ids:
        return {}
    rows = (
        await conn.execute(
            steps.select()
            .where(steps.c.execution_id.in_(execution_ids))
            .order_by(steps.c.execution_id, steps.c.step_index)
        )
    ).all()
    found: dict[str, list[StepRecord]] = {}
    for r in rows:
        found.setdefault(r.execution_id, []).append(
            StepRecord(
                index=r.step_index,
                kind=r.kind,
                started_at=utc(r.started_at) or now(),
                tool_server=r.tool_server,
                tool_name=r.tool_name,
                arguments=r.arguments,
                result=r.result,
                error=r.error,
                duration=(
                    None
                    if r.duration_ms is None
                    else datetime.timedelta(milliseconds=r.duration_ms)
                ),
                approval=r.approval,
                approval_by=r.approval_by,
                approval_reason=r.approval_reason,
                approval_at=utc(r.approval_at),
                sub_execution_id=r.sub_execution_id,
            )
        )
    return found


async def delete_steps(conn: AsyncConnection, doomed: sa.ColumnElement[bool]) -> None:
    """Deletes the steps of the executions `doomed` selects (before they go themselves)."""
    await conn.execute(
        steps.delete().where(steps.c.execution_id.in_(sa.select(executions.c.id).where(doomed)))
    )


def _touch(execution_id: str) -> sa.Update:
    """The version bump that shows readers (a watch compares versions) that a step of the
    execution changed. Run first in the step's transaction, it also locks the execution's row
    before the step's, in the order of every other write of an execution."""
    return (
        executions.update()
        .where(executions.c.id == execution_id)
        .values(version=executions.c.version + 1, updated_at=now())
    )


class StepStore(StoreBase):
    async def record_step(self, execution_id: str, step: StepRecord) -> None:
        """Writes the step at its index, replacing what an earlier attempt wrote there: an
        activity retried after it recorded a step leaves one row, not two."""
        where = (steps.c.execution_id == execution_id) & (steps.c.step_index == step.index)
        async with self.engine.begin() as conn:
            await conn.execute(_touch(execution_id))
            result = await conn.execute(steps.update().where(where).values(**_values(step)))
            if not result.rowcount:
                await conn.execute(
                    steps.insert().values(
                        execution_id=execution_id, step_index=step.index, **_values(step)
                    )
                )
        self.changes.publish(execution_id)

    async def step(self, execution_id: str, index: int) -> StepRecord | None:
        """The step at `index`, if one is recorded."""
        async with self.engine.connect() as conn:
            found = await steps_by_execution(conn, [execution_id])
        return next((s for s in found.get(execution_id, []) if s.index == index), None)

    async def decide_step(self, execution_id: str, decision: StepDecision) -> bool:
        """Records the decision on the tool call at `decision.index` if it still awaits one;
        False when it does not (decided already, timed out, or never gated). The first writer
        wins: a person's decision and the timeout cannot both be recorded."""
        where = (
            (steps.c.execution_id == execution_id)
            & (steps.c.step_index == decision.index)
            & (steps.c.approval == APPROVAL_AWAITING)
        )
        values: dict[str, object] = {
            "approval": decision.state,
            "approval_by": decision.decided_by,
            "approval_reason": decision.reason,
            "approval_at": now(),
        }
        if decision.error:
            # The call will not run: this is its outcome, as the model hears it.
            values |= {"error": decision.error, "duration_ms": 0}
        async with self.engine.connect() as conn:
            await conn.execute(_touch(execution_id))
            result = await conn.execute(steps.update().where(where).values(**values))
            if not result.rowcount:
                await conn.rollback()  # Nothing decided: no new version either.
                return False
            await conn.commit()
        self.changes.publish(execution_id)
        return True
