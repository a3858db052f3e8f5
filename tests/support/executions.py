"""Reading an agent execution as a test waits for it: once it has ended, once a step awaits
approval, and the Temporal history of its workflow as text (to look for what must not be there)."""

from __future__ import annotations

from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, status_pb2
from temporalio.client import Client

from tests.support.eventually import eventually
from tests.support.service import Stubs

WAIT = 60.0
# The ends of a callback: the caller heard the execution's end (or was gone already).
_SETTLED = (
    status_pb2.CALLBACK_STATE_DELIVERED,
    status_pb2.CALLBACK_STATE_ALREADY_CLOSED,
)


async def get(stigmer: Stubs, execution_id: str) -> api_pb2.AgentExecution:
    return await stigmer.queries.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=execution_id)
    )


async def ended(stigmer: Stubs, execution_id: str) -> api_pb2.AgentExecution:
    """The execution once it has ended and its caller has heard so."""

    async def settled() -> api_pb2.AgentExecution:
        execution = await get(stigmer, execution_id)
        assert execution.status.callback.state in _SETTLED, execution.status.callback
        return execution

    return await eventually(settled, timeout=WAIT)


async def awaiting_approval(stigmer: Stubs, execution_id: str, index: int) -> status_pb2.AgentStep:
    """The step at `index` once it awaits a person's approval."""

    async def found() -> status_pb2.AgentStep:
        steps = [s for s in (await get(stigmer, execution_id)).status.steps if s.index == index]
        assert steps, f"no step {index} yet"
        assert steps[0].approval.state == status_pb2.APPROVAL_STATE_AWAITING, steps[0]
        return steps[0]

    return await eventually(found, timeout=WAIT)


async def history_text(client: Client, workflow_id: str) -> str:
    """Every event of the workflow's history, printed: what Temporal keeps of its run (an
    execution's workflow is `workflow_ids.workflow_id(execution_id)`)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return "\n".join(str(event) for event in history.events)
