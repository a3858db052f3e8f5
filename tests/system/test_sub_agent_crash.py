"""kill -9 of the service while a sub-agent works: both edges of the tree still end exactly once.

The lead's delegate activity is open (completed asynchronously, by token) while its sub-agent's
model call runs in the killed service. After the restart the sub-agent's activity runs again,
its end completes the lead's delegation (the same attempt: no second child), and the lead's
answer reaches the workflow once."""

from __future__ import annotations

import json

import grpc
import pytest
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_pb2_grpc
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, query_pb2_grpc, status_pb2
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from backend.stigmer_service.execution.workflow_ids import workflow_id
from backend.workflow_runner.models import DslRunInput
from tests.support import documents
from tests.support.agents import OFFLINE_MODEL, ORG, agent
from tests.support.eventually import eventually
from tests.support.stack import Stack
from tests.system import flows

pytestmark = pytest.mark.timeout(300)
WAIT = 120.0
# The helper's model call sleeps this long: the window in which the test kills the service.
HELPER_SECONDS = 6
HELPER_MESSAGE = f"#sleep={HELPER_SECONDS}\n#reply=T-1 is a checkout bug"
LEAD_MESSAGE = "#tool=agents.helper:" + json.dumps({"message": HELPER_MESSAGE}).replace(
    "#", "\\u0023"
)


async def _apply(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = agent_command_pb2_grpc.AgentCommandServiceStub(channel)
        for resource in (
            agent("helper", ORG, model=OFFLINE_MODEL),
            agent(
                "lead",
                ORG,
                model=OFFLINE_MODEL,
                sub_agents=[agent_spec_pb2.SubAgent(name="helper", agent="helper")],
            ),
        ):
            await stub.ApplyAgent(agent_command_pb2.ApplyAgentRequest(agent=resource), timeout=10)


async def _get(address: str, execution_id: str) -> api_pb2.AgentExecution:
    async with grpc.aio.insecure_channel(address) as channel:
        return await query_pb2_grpc.AgentExecutionQueryServiceStub(channel).GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id), timeout=10
        )


async def _scheduled(client: Client, execution_id: str) -> list[tuple[str, int]]:
    """(activity, attempt) of each activity start in the execution's history, in order."""
    history = await client.get_workflow_handle(workflow_id(execution_id)).fetch_history()
    names = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return [
        (
            names[e.activity_task_started_event_attributes.scheduled_event_id],
            e.activity_task_started_event_attributes.attempt,
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


async def test_kill_9_while_a_sub_agent_works(stack: Stack) -> None:
    await _apply(stack.service_address)
    client = await Client.connect(stack.temporal.address)
    document = documents.one_call("lead", ORG, LEAD_MESSAGE, namespace="system")
    handle = await client.start_workflow(
        "DslWorkflow",
        DslRunInput(document, {}),
        id=f"sub-agent-crash-{stack.worker_task_queue}",
        task_queue=stack.worker_task_queue,
    )

    async def helper_runs() -> tuple[str, str]:
        executions = await flows.list_executions(stack.service_address)
        by_parent = {e.status.parent_execution_id: e for e in executions}
        assert "" in by_parent, "no lead execution yet"
        lead = by_parent[""]
        helper = next((e for e in executions if e.status.parent_execution_id), None)
        assert helper is not None, "no sub-agent execution yet"
        assert helper.status.phase == status_pb2.EXECUTION_PHASE_RUNNING
        return lead.metadata.id, helper.metadata.id

    lead_id, helper_id = await eventually(helper_runs, timeout=WAIT, every=0.1)
    stack.service.kill()
    await stack.start_service()

    [output] = await flows.results([handle], timeout=WAIT)
    assert output == {"answer": "lead: T-1 is a checkout bug", "execution": lead_id}

    async def settled(execution_id: str) -> api_pb2.AgentExecution:
        execution = await _get(stack.service_address, execution_id)
        assert execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
        return execution

    lead = await eventually(lambda: settled(lead_id), timeout=WAIT)
    helper = await eventually(lambda: settled(helper_id), timeout=WAIT)
    # One child, one delivery at each edge.
    children = [
        e
        for e in await flows.list_executions(stack.service_address)
        if e.status.parent_execution_id
    ]
    assert [c.metadata.id for c in children] == [helper_id]
    assert lead.status.callback.attempts == 1
    assert helper.status.callback.attempts == 1
    assert helper.status.output == "T-1 is a checkout bug"
    assert lead.status.steps[0].sub_execution_id == helper_id
    assert lead.status.steps[0].result == "T-1 is a checkout bug"
    # The lead's delegation was one attempt, held open across the kill and completed by the
    # helper's callback; the helper's model call ran again after the restart.
    lead_runs = await _scheduled(client, lead_id)
    assert [a for a in lead_runs if a[0] == "delegate"] == [("delegate", 1)]
    # (History keeps the start of an activity's last attempt only.)
    [(name, attempt)] = await _scheduled(client, helper_id)
    assert name == "run_agent" and attempt >= 2, (name, attempt)
