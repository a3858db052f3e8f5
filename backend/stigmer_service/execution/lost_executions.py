"""Waiting executions whose own workflow is gone (terminated by an operator, or otherwise
closed without recording an end): nobody will end them, so their callers must not be kept
alive for ever. The sweeper checks each waiting execution's workflow now and then (when
`caller_schedule.py` says it is due), ends a lost one CANCELLED (a guarded write: an end
recorded meanwhile wins) and has its callback delivered, so the caller gets a non-retryable
ExecutionCancelled instead of heartbeats."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

with workflow.unsafe.imports_passed_through():
    from backend.common import contract
    from backend.stigmer_service import logs, states
    from backend.stigmer_service.config import Settings
    from backend.stigmer_service.execution.models import CallbackWorkflowInput
    from backend.stigmer_service.execution.policies import execution_policy
    from backend.stigmer_service.execution.rate_limit import TokenBucket
    from backend.stigmer_service.execution.workflow_ids import callback_workflow_id, workflow_id
    from backend.stigmer_service.execution.workflows import CallbackWorkflow
    from backend.stigmer_service.store.records import WaitingCaller
    from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

_RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


class LostExecutions:
    def __init__(
        self,
        store: Store,
        client: Client,
        settings: Settings,
        bucket: TokenBucket,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.bucket = bucket

    async def end_if_lost(self, caller: WaitingCaller) -> bool:
        """True when the execution's workflow is gone (it is then ended and its callback
        scheduled); False when it runs, or when Temporal cannot tell now."""
        reason = await self._lost(caller.execution_id)
        if reason is None:
            return False
        fields = {"execution_id": caller.execution_id, "token_hash": caller.token_hash}
        if not await self.store.finish(
            caller.execution_id,
            phase=states.PHASE_CANCELLED,
            error_type=contract.EXECUTION_CANCELLED,
            error_message=reason,
        ):
            return True  # Its end was recorded meanwhile; that end's callback is under way.
        log.warning("execution lost its workflow; ended", reason=reason, **fields)
        try:
            await self.client.start_workflow(
                CallbackWorkflow.run,
                CallbackWorkflowInput(caller.execution_id, execution_policy(self.settings)),
                id=callback_workflow_id(caller.execution_id, caller.token_hash),
                task_queue=self.settings.task_queue,
                rpc_timeout=timedelta(seconds=self.settings.caller_heartbeat_rpc_timeout),
            )
        except WorkflowAlreadyStartedError:
            pass
        except RPCError as error:
            # Recorded CANCELLED with its callback WAITING: `redeliver` (or a retried caller)
            # sends it; the sweeper no longer heartbeats it either way.
            log.warning(
                "could not schedule the lost execution's callback",
                status=error.status.name if error.status else "",
                **fields,
            )
        return True

    async def _lost(self, execution_id: str) -> str | None:
        await self.bucket.acquire()
        handle = self.client.get_workflow_handle(workflow_id(execution_id))
        try:
            description = await handle.describe(
                rpc_timeout=timedelta(seconds=self.settings.caller_heartbeat_rpc_timeout)
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return "the execution's workflow does not exist"
            return None
        status = description.raw_description.workflow_execution_info.status
        if status == _RUNNING:
            return None
        name = WorkflowExecutionStatus.Name(status).removeprefix("WORKFLOW_EXECUTION_STATUS_")
        return f"the execution's workflow ended without recording an end ({name})"
