"""Acceptance: 100 agent calls wait at once on a worker with 2 activity slots, then all complete."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from backend.workflow_runner.agent_call.activities import agent_call_activities
from backend.workflow_runner.agent_call.models import CallAgentInput
from tests.workflow_runner.agent_call.agent_call_workflow import AgentCallWorkflow
from tests.workflow_runner.agent_call.fake_stigmer import Created, serve_fake

CALLS = 100
SLOTS = 2


async def test_hundred_calls_pend_on_two_slots_and_all_complete(
    temporal_client: Client, task_queue: str
) -> None:
    async with serve_fake() as (service, endpoint):
        service.add_agent("writer", org="acme")
        async with Worker(
            temporal_client,
            task_queue=task_queue,
            workflows=[AgentCallWorkflow],
            activities=agent_call_activities(endpoint),
            max_concurrent_activities=SLOTS,
        ):
            prefix = f"many-{uuid.uuid4().hex[:8]}"
            handles = await asyncio.gather(
                *(
                    temporal_client.start_workflow(
                        AgentCallWorkflow.run,
                        CallAgentInput(agent="writer", org="acme", message=f"job {index}"),
                        id=f"{prefix}-{index}",
                        task_queue=task_queue,
                    )
                    for index in range(CALLS)
                )
            )

            async def all_created() -> list[Created]:
                return [await service.created.get() for _ in range(CALLS)]

            # Only possible if each activity frees its slot while its agent still runs.
            created = await asyncio.wait_for(all_created(), 45)
            assert len({c.token for c in created}) == CALLS
            assert len({c.request.execution.spec.idempotency_key for c in created}) == CALLS

            descriptions = await asyncio.gather(*(handle.describe() for handle in handles))
            for description in descriptions:
                assert description.status == WorkflowExecutionStatus.RUNNING
                [pending] = description.raw_description.pending_activities
                assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED

            by_message = {c.request.execution.spec.message: c for c in created}
            await asyncio.gather(
                *(
                    temporal_client.get_async_activity_handle(task_token=c.token).complete(
                        {"execution_id": c.execution_id, "output": f"done: {message}"}
                    )
                    for message, c in by_message.items()
                )
            )
            results = await asyncio.wait_for(
                asyncio.gather(*(handle.result() for handle in handles)), 45
            )
            assert [result["output"] for result in results] == [
                f"done: job {index}" for index in range(CALLS)
            ]
            assert len(service.creates) == CALLS
