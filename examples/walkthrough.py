"""What the demo does on a running stack: apply the agents, run a workflow, find its executions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, query_pb2_grpc, status_pb2
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from backend.stigmer_service import manifests
from backend.workflow_runner.dsl.errors import DslError
from backend.workflow_runner.models import DslRunInput, ProgressEntry
from backend.workflow_runner.workflows import PROGRESS_QUERY, WORKFLOW_NAME

PROGRESS_POLL_SECONDS = 0.25
RPC_TIMEOUT = 10.0
# Executions are listed newest first; the run's own are among the newest few pages.
MAX_EXECUTION_PAGES = 20
# The example MCP servers (examples/mcp/) are Python modules of this repo, started with this
# command in the manifests. The demo starts them with its own interpreter instead, which has the
# MCP SDK (a `python` on the PATH may not): the service it runs is in this process.
EXAMPLE_PYTHON = "python"


async def apply_agents(
    endpoint: str, manifest: pathlib.Path, model: str | None = None
) -> list[agent_api_pb2.Agent]:
    """Creates or updates every agent of the manifest, with `model` instead of theirs if given,
    and this interpreter for the example MCP servers."""
    agents = manifests.parse_agents(manifest.read_text(encoding="utf-8"))
    applied: list[agent_api_pb2.Agent] = []
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = agent_command_grpc.AgentCommandServiceStub(channel)
        for agent in agents:
            if model:
                agent.spec.model = model
            for server in agent.spec.mcp_servers:
                if server.HasField("stdio") and server.stdio.command == EXAMPLE_PYTHON:
                    server.stdio.command = sys.executable
            request = agent_command_pb2.ApplyAgentRequest(agent=agent)
            applied.append(await stub.ApplyAgent(request, timeout=RPC_TIMEOUT))
    return applied


@dataclasses.dataclass
class RunResult:
    workflow_id: str
    run_id: str
    output: Any = None
    error: DslError | None = None


ProgressCallback = Callable[[ProgressEntry, float], None]


async def run_workflow(
    client: Client,
    task_queue: str,
    document: dict[str, Any],
    workflow_input: Any,
    on_progress: ProgressCallback,
    on_started: Callable[[str, str], None] | None = None,
    alongside: Callable[[str], Awaitable[None]] | None = None,
) -> RunResult:
    """Runs the document to its end, reporting each finished task with the seconds since start.
    `alongside(workflow_id)` runs while the workflow does (the demo's approver); its error ends
    the run with that error."""
    workflow_id = f"{document['document']['name']}-{uuid.uuid4().hex[:8]}"
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        WORKFLOW_NAME, DslRunInput(document, workflow_input), id=workflow_id, task_queue=task_queue
    )
    run_id = handle.result_run_id or ""
    if on_started:
        on_started(workflow_id, run_id)
    started = time.monotonic()
    result = asyncio.ensure_future(handle.result())
    helper = asyncio.ensure_future(alongside(workflow_id)) if alongside else None
    shown = 0
    try:
        while True:
            waited = {result} if helper is None else {result, helper}
            done, _ = await asyncio.wait(
                waited, timeout=PROGRESS_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            shown = await _report_progress(handle, shown, time.monotonic() - started, on_progress)
            if helper is not None and helper in done:
                failed, helper = helper.exception(), None
                if failed is not None:
                    raise failed
            if result in done:
                break
    finally:
        result.cancel()
        if helper is not None:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
    try:
        return RunResult(workflow_id, run_id, output=result.result())
    except WorkflowFailureError as failure:
        return RunResult(workflow_id, run_id, error=DslError.from_failure(failure))


async def _report_progress(
    handle: WorkflowHandle[Any, Any], shown: int, elapsed: float, on_progress: ProgressCallback
) -> int:
    try:
        entries = await handle.query(PROGRESS_QUERY, result_type=list[ProgressEntry])
    except Exception:  # - a missed poll only delays the progress lines
        return shown
    for entry in entries[shown:]:
        on_progress(entry, elapsed)
    return max(shown, len(entries))


async def executions_of(
    endpoint: str,
    workflow_id: str | None,
    phases: Sequence[status_pb2.ExecutionPhase.ValueType] = (),
) -> list[api_pb2.AgentExecution]:
    """The agent executions this workflow started (None: any workflow), in one of `phases` (empty:
    any), oldest first (found by their caller info)."""
    # The API filters by agent, session and phase but not by caller, so filter here.
    found: list[api_pb2.AgentExecution] = []
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        page_token = ""
        for _ in range(MAX_EXECUTION_PAGES):
            page = await stub.ListAgentExecutions(
                query_pb2.ListAgentExecutionsRequest(
                    page_size=100, page_token=page_token, phases=phases
                ),
                timeout=RPC_TIMEOUT,
            )
            found += [
                e
                for e in page.executions
                if workflow_id is None or e.spec.caller.workflow_id == workflow_id
            ]
            page_token = page.next_page_token
            if not page_token:
                break
    return sorted(found, key=lambda e: e.metadata.audit.created_at.ToNanoseconds())
