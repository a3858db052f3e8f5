"""The steps of agents with tools: written as they happen, read with their executions."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.stigmer_service.store.base import StoreBase, now, utc
from backend.stigmer_service.store.records import StepRecord
from backend.stigmer_service.store.tables import executions, steps


def _values(step: StepRecord) -> dict[str, object]:
    return {
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
            )
        )
    return found


async def delete_steps(conn: AsyncConnection, doomed: sa.ColumnElement[bool]) -> None:
    """Deletes the steps of the executions `doomed` selects (before they go themselves)."""
    await conn.execute(
        steps.delete().where(steps.c.execution_id.in_(sa.select(executions.c.id).where(doomed)))
    )


class StepStore(StoreBase):
    async def record_step(self, execution_id: str, step: StepRecord) -> None:
        """Writes the step at its index, replacing what an earlier attempt wrote there: an
        activity retried after it recorded a step leaves one row, not two."""
        where = (steps.c.execution_id == execution_id) & (steps.c.step_index == step.index)
        async with self.engine.begin() as conn:
            result = await conn.execute(steps.update().where(where).values(**_values(step)))
            if not result.rowcount:
                await conn.execute(
                    steps.insert().values(
                        execution_id=execution_id, step_index=step.index, **_values(step)
                    )
                )

    async def step(self, execution_id: str, index: int) -> StepRecord | None:
        """The step at `index`, if one is recorded."""
        async with self.engine.connect() as conn:
            found = await steps_by_execution(conn, [execution_id])
        return next((s for s in found.get(execution_id, []) if s.index == index), None)
