"""One delivery attempt on the wire, through the caller's task token (when and how often: `delivery`)."""

from __future__ import annotations

import datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from backend.common import contract
from backend.stigmer_service import states
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.store.records import (
    APPROVAL_APPROVED,
    APPROVAL_AWAITING,
    APPROVAL_NONE,
    APPROVAL_REJECTED,
    APPROVAL_TIMED_OUT,
    STEP_ASSISTANT_MESSAGE,
    STEP_SUB_AGENT,
    STEP_TOOL_CALL,
    CallerRef,
    ExecutionRecord,
    StepRecord,
)
from backend.stigmer_service.store.repository import Store
from backend.stigmer_service.store.steps import steps_by_execution

# The name of each step kind in the caller's step summary: a new kind is one more entry.
STEP_KIND_NAMES = {
    STEP_ASSISTANT_MESSAGE: "message",
    STEP_TOOL_CALL: "tool_call",
    STEP_SUB_AGENT: "sub_agent",
}
# A gated tool call's approval in the summary (a call that needed none has no `approval`).
APPROVAL_NAMES = {
    APPROVAL_AWAITING: "awaiting",
    APPROVAL_APPROVED: "approved",
    APPROVAL_REJECTED: "rejected",
    APPROVAL_TIMED_OUT: "timed_out",
}


def step_summary(step: StepRecord) -> dict[str, Any]:
    """One step as the caller's `call: agent` output lists it: what happened, how long it took
    and who let it run; never its arguments or result, which can be large (`get` has them)."""
    summary: dict[str, Any] = {
        "index": step.index,
        "kind": STEP_KIND_NAMES.get(step.kind, "unknown"),
    }
    if step.kind in (STEP_TOOL_CALL, STEP_SUB_AGENT):
        summary["tool"] = (
            f"{step.tool_server}.{step.tool_name}" if step.tool_server else step.tool_name
        )
    if step.sub_execution_id:
        summary["sub_execution_id"] = step.sub_execution_id
    summary["error"] = bool(step.error)
    summary["duration_ms"] = (
        None if step.duration is None else int(step.duration.total_seconds() * 1000)
    )
    if step.approval != APPROVAL_NONE:
        summary["approval"] = APPROVAL_NAMES.get(step.approval, "unknown")
    return summary


async def _steps(store: Store, execution_id: str) -> list[StepRecord]:
    """The execution's steps as recorded at its end, in index order: one indexed read (none for
    an agent without tools). Not the record's `steps`: a delivery's record is read with the end,
    without them, and a record read earlier may lack the last turn's."""
    async with store.engine.connect() as conn:
        return (await steps_by_execution(conn, [execution_id])).get(execution_id, [])


async def result_payload(
    store: Store,
    execution: ExecutionRecord,
    agent_slug: str | None = None,
    steps: list[StepRecord] | None = None,
) -> dict[str, Any]:
    """The success payload, shaped like the runner's CallAgentOutput (with a summary of the
    steps of an agent with tools: `steps`, empty for an agent without). `agent_slug`, `steps`:
    when the caller knows them (each saves a query on the callback's path)."""
    if steps is None:
        steps = await _steps(store, execution.id)
    slug = agent_slug
    if slug is None:
        try:
            slug = (await store.get_agent(execution.agent_id)).slug
        except NotFound:
            slug = ""
    return {
        "execution_id": execution.id,
        "output": execution.output,
        "agent": slug,
        "agent_id": execution.agent_id,
        "session_id": execution.session_id,
        "steps": [step_summary(step) for step in steps],
    }


async def send(
    client: Client,
    store: Store,
    token: bytes,
    execution: ExecutionRecord,
    rpc_timeout: float,
    agent_slug: str | None = None,
    steps: list[StepRecord] | None = None,
) -> None:
    """One delivery attempt; raises the Temporal RPCError when it fails. `agent_slug`: the
    agent's, when the caller already has it (saves a query)."""
    handle = client.get_async_activity_handle(task_token=token)
    timeout = datetime.timedelta(seconds=rpc_timeout)
    if execution.phase == states.PHASE_COMPLETED:
        await handle.complete(
            await result_payload(store, execution, agent_slug, steps), rpc_timeout=timeout
        )
    elif execution.phase == states.PHASE_FAILED:
        error = ApplicationError(
            execution.error_message or execution.error_type,
            {"execution_id": execution.id},
            type=execution.error_type or contract.MODEL_ERROR,
            non_retryable=not execution.error_retryable,
        )
        await handle.fail(error, rpc_timeout=timeout)
    elif execution.phase == states.PHASE_CANCELLED:
        try:
            # The execution id in the details lets `landed` recognise this delivery later.
            await handle.report_cancellation({"execution_id": execution.id}, rpc_timeout=timeout)
        except RPCError as error:
            # Temporal accepts report_cancellation only after the caller asked to cancel, and
            # fail() only with an application failure. When the cancellation came from this side
            # (the cancel RPC), the caller gets a non-retryable ExecutionCancelled error instead.
            if error.status != RPCStatusCode.INVALID_ARGUMENT:
                raise
            await handle.fail(
                ApplicationError(
                    execution.error_message or "the agent execution was cancelled",
                    {"execution_id": execution.id},
                    type=contract.EXECUTION_CANCELLED,
                    non_retryable=True,
                ),
                rpc_timeout=timeout,
            )
    else:
        raise ValueError(f"execution {execution.id} has not ended (phase {execution.phase})")


def caller_workflow(client: Client, caller: CallerRef) -> WorkflowHandle[Any, Any] | None:
    """The caller's workflow, from the CallerInfo stored with the execution; None when it is
    unknown or in another namespace than this client's."""
    if not caller.workflow_id or (caller.namespace and caller.namespace != client.namespace):
        return None
    return client.get_workflow_handle(caller.workflow_id, run_id=caller.run_id or None)
