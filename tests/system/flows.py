"""Workflow documents and helpers the system tests share."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from typing import Any

import grpc
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, query_pb2_grpc, status_pb2
from temporalio.client import Client, WorkflowHandle

from backend.workflow_runner.models import DslRunInput
from tests.support import documents
from tests.support.agents import ORG
from tests.support.eventually import eventually
from tests.system.conftest import AGENT

# One agent call; the offline model echoes the message (directives included) after the agent's
# slug, so each workflow's answer is known in advance. `#wait-for=<file>` holds every agent until
# the test opens the gate, so the fault strikes while all calls are in flight.
ONE_CALL = documents.one_call(
    AGENT,
    ORG,
    '${ "item " + (.n|tostring) + " #wait-for=" + .gate }',
    namespace="system",
    carry="n: $input.n, ",
)


def expected_answer(n: int, gate: pathlib.Path) -> str:
    return f"{AGENT}: item {n} #wait-for={gate}"


async def start_many(
    client: Client, task_queue: str, count: int, gate: pathlib.Path
) -> list[WorkflowHandle[Any, Any]]:
    prefix = f"fault-{uuid.uuid4().hex[:8]}"
    return list(
        await asyncio.gather(
            *(
                client.start_workflow(
                    "DslWorkflow",
                    DslRunInput(ONE_CALL, {"n": n, "gate": str(gate)}),
                    id=f"{prefix}-{n}",
                    task_queue=task_queue,
                )
                for n in range(count)
            )
        )
    )


async def list_executions(address: str) -> list[api_pb2.AgentExecution]:
    executions: list[api_pb2.AgentExecution] = []
    token = ""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        while True:
            page = await stub.ListAgentExecutions(
                query_pb2.ListAgentExecutionsRequest(page_size=100, page_token=token), timeout=10
            )
            executions.extend(page.executions)
            token = page.next_page_token
            if not token:
                return executions


async def wait_running(address: str, count: int, timeout: float = 120.0) -> None:
    """Waits until `count` executions are RUNNING, i.e. every caller is waiting on its agent."""

    async def all_running() -> None:
        executions = await list_executions(address)
        running = sum(e.status.phase == status_pb2.EXECUTION_PHASE_RUNNING for e in executions)
        assert running >= count, f"only {running} of {count} executions running after {timeout}s"

    await eventually(all_running, timeout=timeout, every=0.3)


async def results(handles: list[WorkflowHandle[Any, Any]], timeout: float) -> list[Any]:
    return list(await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout))


def assistant_messages(execution: api_pb2.AgentExecution) -> int:
    return sum(m.role == status_pb2.MESSAGE_ROLE_ASSISTANT for m in execution.status.messages)
