"""Workflow documents and helpers the system tests share."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid
from typing import Any

import grpc
import yaml
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, query_pb2_grpc, status_pb2
from temporalio.client import Client, WorkflowHandle

from backend.workflow_runner.models import DslRunInput
from tests.system.conftest import AGENT, ORG

# One agent call; the offline model echoes the message (directives included) after the agent's
# slug, so each workflow's answer is known in advance. `#wait-for=<file>` holds every agent until
# the test opens the gate, so the fault strikes while all calls are in flight.
ONE_CALL = yaml.safe_load(
    f"""
document: {{dsl: 1.0.0, namespace: system, name: one-call, version: 1.0.0}}
do:
  - ask:
      call: agent
      with:
        agent: {AGENT}
        org: {ORG}
        message: '${{ "item " + (.n|tostring) + " #wait-for=" + .gate }}'
        config: {{model: offline/echo, timeout: PT2M}}
      output:
        as: '${{ {{n: $input.n, answer: .output, execution: .execution_id}} }}'
"""
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
    deadline = time.monotonic() + timeout
    running = 0
    while time.monotonic() < deadline:
        executions = await list_executions(address)
        running = sum(e.status.phase == status_pb2.EXECUTION_PHASE_RUNNING for e in executions)
        if running >= count:
            return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"only {running} of {count} executions running after {timeout}s")


async def results(handles: list[WorkflowHandle[Any, Any]], timeout: float) -> list[Any]:
    return list(await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout))


def assistant_messages(execution: api_pb2.AgentExecution) -> int:
    return sum(m.role == status_pb2.MESSAGE_ROLE_ASSISTANT for m in execution.status.messages)
