"""Every end of an agent call, on real processes, and what the logs and read APIs never show."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
import yaml
from ai.stigmer.agentic.agentexecution.v1 import (
    command_pb2,
    command_pb2_grpc,
    status_pb2,
)
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from backend.workflow_runner.models import DslRunInput
from tests.support import leaks
from tests.support.agents import ORG
from tests.support.stack import Stack
from tests.system import flows
from tests.system.conftest import AGENT, SECRET_VALUE


def _document(name: str, task: str) -> dict[str, Any]:
    return yaml.safe_load(
        f"""
document: {{dsl: 1.0.0, namespace: system, name: {name}, version: 1.0.0}}
use:
  secrets: [API_KEY]
do:
{task}
"""
    )


def _call(
    message: str, extra: str = "", config: str = "{model: offline/echo, timeout: PT2M}"
) -> str:
    return f"""
      call: agent
      with:
        agent: {AGENT}
        org: {ORG}
        message: '{message}'
        env:
          API_KEY: ${{ $secrets.API_KEY }}
        config: {config}
{extra}"""


SUCCESS = _document("success", "  - ask:" + _call("Say hello #reply=hello"))
CAUGHT = _document(
    "caught",
    """  - guarded:
      try:
        - ask:"""
    + _call("#fail=ModelError").replace("\n      ", "\n            ")
    + """
      catch:
        errors:
          with: {type: ModelError}
        as: failure
        do:
          - recover:
              set:
                caught: true
                type: ${ $failure.type }
""",
)
FAILING = _document("failing", "  - ask:" + _call("#fail=QuotaExceeded"))
EXECUTION_TIMEOUT = _document(
    "execution-timeout",
    "  - ask:" + _call("#sleep=60", config="{model: offline/echo, timeout: PT1S}"),
)
CALLER_TIMEOUT = _document(
    "caller-timeout",
    "  - ask:" + _call("#sleep=60", extra="      timeout:\n        after: PT2S\n"),
)
LONG = _document("long", "  - ask:" + _call("#sleep=60"))
UNKNOWN_AGENT = _document(
    "unknown-agent", "  - ask:" + _call("hello").replace(f"agent: {AGENT}", "agent: no-such-agent")
)


async def _start(
    client: Client, stack: Stack, document: dict[str, Any], name: str
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        "DslWorkflow",
        DslRunInput(document, {}),
        id=f"{name}-{stack.worker_task_queue}",
        task_queue=stack.worker_task_queue,
    )


async def _failure_type(handle: WorkflowHandle[Any, Any]) -> str:
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), 90)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError), cause
    return str(cause.type)


async def _execution_of(stack: Stack, workflow_id: str) -> Any:
    for _ in range(300):
        for execution in await flows.list_executions(stack.service_address):
            if execution.spec.caller.workflow_id == workflow_id:
                return execution
        await asyncio.sleep(0.2)
    raise AssertionError(f"no execution for {workflow_id}")


async def _wait_phase(stack: Stack, workflow_id: str, phase: int) -> Any:
    for _ in range(300):
        execution = await _execution_of(stack, workflow_id)
        if execution.status.phase == phase:
            return execution
        await asyncio.sleep(0.2)
    raise AssertionError(f"{workflow_id}: phase {execution.status.phase}, wanted {phase}")


async def test_every_end_reaches_the_workflow_and_nothing_leaks(stack: Stack) -> None:
    client = await Client.connect(stack.temporal.address)
    handles = {
        name: await _start(client, stack, document, name)
        for name, document in {
            "success": SUCCESS,
            "caught": CAUGHT,
            "failing": FAILING,
            "execution-timeout": EXECUTION_TIMEOUT,
            "caller-timeout": CALLER_TIMEOUT,
            "cancel-workflow": LONG,
            "cancel-execution": LONG,
            "unknown-agent": UNKNOWN_AGENT,
        }.items()
    }

    # Cancelling the workflow cancels the agent execution.
    await _wait_phase(stack, handles["cancel-workflow"].id, status_pb2.EXECUTION_PHASE_RUNNING)
    await handles["cancel-workflow"].cancel()
    # Cancelling the execution reaches the waiting workflow.
    running = await _wait_phase(
        stack, handles["cancel-execution"].id, status_pb2.EXECUTION_PHASE_RUNNING
    )
    async with grpc.aio.insecure_channel(stack.service_address) as channel:
        await command_pb2_grpc.AgentExecutionCommandServiceStub(channel).CancelAgentExecution(
            command_pb2.CancelAgentExecutionRequest(id=running.metadata.id, reason="test"),
            timeout=10,
        )

    success = await asyncio.wait_for(handles["success"].result(), 90)
    assert success["output"] == "hello" and success["execution_id"].startswith("aex-")
    caught = await asyncio.wait_for(handles["caught"].result(), 90)
    assert caught["caught"] is True and caught["type"] == "ModelError"
    assert await _failure_type(handles["failing"]) == "QuotaExceeded"
    assert await _failure_type(handles["execution-timeout"]) == "ExecutionTimeout"
    assert "timeout" in await _failure_type(handles["caller-timeout"])
    assert await _failure_type(handles["cancel-execution"]) == "ExecutionCancelled"
    assert await _failure_type(handles["unknown-agent"]) == "AgentNotFound"
    with pytest.raises(WorkflowFailureError) as cancelled:
        await asyncio.wait_for(handles["cancel-workflow"].result(), 90)
    assert isinstance(cancelled.value.cause, CancelledError)

    phases = {
        name: (await _wait_phase(stack, handle.id, phase)).status.phase
        for name, handle, phase in [
            ("success", handles["success"], status_pb2.EXECUTION_PHASE_COMPLETED),
            ("failing", handles["failing"], status_pb2.EXECUTION_PHASE_FAILED),
            ("execution-timeout", handles["execution-timeout"], status_pb2.EXECUTION_PHASE_FAILED),
            ("caller-timeout", handles["caller-timeout"], status_pb2.EXECUTION_PHASE_CANCELLED),
            ("cancel-workflow", handles["cancel-workflow"], status_pb2.EXECUTION_PHASE_CANCELLED),
            ("cancel-execution", handles["cancel-execution"], status_pb2.EXECUTION_PHASE_CANCELLED),
        ]
    }
    assert len(phases) == 6

    await _assert_nothing_leaks(stack)
    _assert_no_tracebacks(stack)


def _assert_no_tracebacks(stack: Stack) -> None:
    """Every end above is expected (a model error, an unknown agent, timeouts, cancellations):
    each leaves structured log lines, and a traceback only ever means a bug."""
    for process in (stack.service, stack.worker):
        text = process.log_text()
        assert (
            "Traceback" not in text
        ), f"{process.name}:\n{text[text.index('Traceback') - 500 :][:3000]}"


async def _assert_nothing_leaks(stack: Stack) -> None:
    reads = await leaks.read_responses(stack.service_address)
    tokens = await leaks.service_tokens(stack, (e.metadata.id for e in reads.executions))
    assert len(tokens) >= 7, "every call handed over its token"
    for execution in reads.executions:
        assert execution.status.callback.token_present
    logs = leaks.process_logs(stack)
    assert any(b"token_hash" in log for log in logs.values()), "logs correlate by the token's hash"
    values = {f"callback token {n}": token for n, token in enumerate(tokens)}
    values["secret API_KEY"] = SECRET_VALUE.encode()
    leaks.assert_absent(logs | reads.responses, values)
