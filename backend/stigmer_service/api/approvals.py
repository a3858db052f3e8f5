"""DecideToolCall: a person approves or rejects a tool call that waits for approval.

The store is the record (the step's approval, first writer wins against the timeout); the signal
only wakes the execution's workflow, which finds the recorded decision at its timeout should the
signal be lost.
"""

from __future__ import annotations

import datetime

from ai.stigmer.agentic.agentexecution.v1 import command_pb2
from temporalio.client import Client

from backend.stigmer_service import identity, logs, states
from backend.stigmer_service.api import tenancy, validation
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import FailedPrecondition, InvalidArgument
from backend.stigmer_service.execution import approval
from backend.stigmer_service.execution.fields import log_fields
from backend.stigmer_service.execution.models import ToolDecision
from backend.stigmer_service.execution.workflow_ids import workflow_id
from backend.stigmer_service.execution.workflows import AgentExecutionWorkflow
from backend.stigmer_service.store.records import (
    APPROVAL_APPROVED,
    APPROVAL_REJECTED,
    ExecutionRecord,
    StepDecision,
)
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

MAX_REASON = 1024


async def decide(
    store: Store, client: Client, settings: Settings, request: command_pb2.DecideToolCallRequest
) -> ExecutionRecord:
    """Records the decision on the awaiting call at `step_index`, wakes the workflow, and
    returns the execution (NOT_FOUND for another org's; FAILED_PRECONDITION for no such call)."""
    execution_id = validation.required(request.id, "id")
    record = await tenancy.execution(store, execution_id)
    if len(request.reason) > MAX_REASON:
        raise InvalidArgument("reason", f"must be at most {MAX_REASON} characters")
    index = request.step_index
    missing = FailedPrecondition(
        f"execution {execution_id} has no tool call awaiting approval at step {index}"
    )
    if record.phase in states.TERMINAL_PHASES:
        raise missing
    by = identity.current().name
    decision = StepDecision(
        index,
        APPROVAL_APPROVED if request.approve else APPROVAL_REJECTED,
        by,
        request.reason,
        error="" if request.approve else approval.rejection(by, request.reason),
    )
    if not await store.decide_step(execution_id, decision):
        raise missing
    try:
        await client.get_workflow_handle(workflow_id(execution_id)).signal(
            AgentExecutionWorkflow.decide_tool_call,
            ToolDecision(index, request.approve, by, request.reason),
            rpc_timeout=datetime.timedelta(seconds=settings.start_rpc_timeout),
        )
    except Exception as error:
        # Recorded: the workflow reads the decision from the store when its timer fires.
        log.warning(
            "could not signal the execution workflow",
            error=type(error).__name__,
            **log_fields(record),
        )
    log.info("tool call decided", step=index, approved=request.approve, **log_fields(record))
    return await store.get_execution(execution_id)
