"""What the driver asks of the system: the agents, the one-call DSL document, starting N calls,
approving the waiting tool calls, and checking what came back."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import command_pb2, command_pb2_grpc
from google.protobuf import duration_pb2
from temporalio.client import WorkflowHandle

from backend.workflow_runner.models import DslRunInput
from benchmarks import driver
from benchmarks.system.rig import SystemRig
from tests.support import tickets_http
from tests.support.agents import OFFLINE_MODEL, agent

# Plain: one model call, no tools. Gated: one MCP tool (the desk's lookup), every call of
# which waits for a person.
PLAIN_AGENT = "bench-plain"
GATED_AGENT = "bench-gated"
# Turn 0 of the gated agent asks for this tool; turn 1 answers with its result.
TOOL_DIRECTIVE = '#tool=tickets.lookup_ticket:{"id": "T-1"}'
TOOL_RESULT = "Checkout fails with a 502"
# Longer than any run: an approval or a call never times out during a benchmark.
WAIT_SECONDS = 2 * 3600
# DecideToolCall RPCs in flight at once.
DECIDE_CONCURRENCY = 32
RPC_TIMEOUT = 30.0


def document(agent_slug: str) -> dict[str, Any]:
    """A one-task DSL document: one `call: agent` with the workflow input's message."""
    return {
        "document": {"dsl": "1.0.0", "namespace": "bench", "name": "one-call", "version": "1.0.0"},
        "do": [
            {
                "ask": {
                    "call": "agent",
                    "with": {
                        "agent": agent_slug,
                        "org": driver.ORG,
                        "message": "${ .message }",
                        "config": {"timeout": f"PT{WAIT_SECONDS}S"},
                    },
                }
            }
        ],
    }


async def create_agents(rig: SystemRig) -> None:
    """The plain agent and the gated one (its desk over HTTP: one process for every call)."""
    gated = agent_spec_pb2.ToolApproval(
        mode=agent_spec_pb2.TOOL_APPROVAL_MODE_ALL,
        timeout=duration_pb2.Duration(seconds=WAIT_SECONDS),
    )
    desk = tickets_http.http_server("tickets", rig.desk_url, enabled_tools=["lookup_ticket"])
    specs: dict[str, dict[str, Any]] = {
        PLAIN_AGENT: {"model": OFFLINE_MODEL, "instructions": "Answer."},
        GATED_AGENT: {
            "model": OFFLINE_MODEL,
            "instructions": "Look the ticket up.",
            "mcp_servers": [desk],
            "tool_approval": gated,
        },
    }
    async with grpc.aio.insecure_channel(rig.service_addresses[0]) as channel:
        stub = agent_command_grpc.AgentCommandServiceStub(channel)
        for slug, spec in specs.items():
            await stub.CreateAgent(
                agent_command_pb2.CreateAgentRequest(agent=agent(slug, driver.ORG, **spec)),
                timeout=RPC_TIMEOUT,
            )


async def start(
    rig: SystemRig, agent_slug: str, messages: Sequence[str], per_second: float = 0.0
) -> list[WorkflowHandle[Any, Any]]:
    """One DslWorkflow per message (64 starts in flight, or `per_second`), on the runners'
    queue; every workflow's id starts with the same fresh prefix."""
    prefix = f"system-{uuid.uuid4().hex[:8]}"
    spec = document(agent_slug)

    async def one(index: int) -> WorkflowHandle[Any, Any]:
        return await rig.client.start_workflow(
            "DslWorkflow",
            DslRunInput(spec, {"message": messages[index]}),
            id=f"{prefix}-{index}",
            task_queue=rig.queue,
        )

    return await driver.start_all(len(messages), one, per_second)


async def approve(rig: SystemRig, execution_ids: Sequence[str]) -> list[str]:
    """Approves step 0 of each execution (DecideToolCall, a bounded number in flight, the
    replicas in turn); returns the executions whose decision was refused."""
    channels = [grpc.aio.insecure_channel(address) for address in rig.service_addresses]
    stubs = itertools.cycle(command_pb2_grpc.AgentExecutionCommandServiceStub(c) for c in channels)
    gate = asyncio.Semaphore(DECIDE_CONCURRENCY)

    async def one(execution_id: str, stub: Any) -> bool:
        async with gate:
            try:
                await stub.DecideToolCall(
                    command_pb2.DecideToolCallRequest(
                        id=execution_id, step_index=0, approve=True, reason="benchmark"
                    ),
                    timeout=RPC_TIMEOUT,
                )
                return True
            except grpc.aio.AioRpcError:
                return False

    try:
        outcomes = await asyncio.gather(
            *(one(i, s) for i, s in zip(execution_ids, stubs, strict=False))
        )
    finally:
        for channel in channels:
            await channel.close()
    return [i for i, ok in zip(execution_ids, outcomes, strict=True) if not ok]


def came_back(result: Any, message: str, gated: bool) -> bool:
    """Whether a DSL workflow's result is the agent's real answer to `message`."""
    text = str(result)
    return TOOL_RESULT in text if gated else message.split(" #", 1)[0] in text
