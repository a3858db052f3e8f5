"""Starting an execution's workflow, stopping it, and re-delivering its end: one home for what
the API does for a caller and a parent agent does for its sub-agents."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from backend.common import contract
from backend.stigmer_service import logs, states
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import NotFound, Unavailable
from backend.stigmer_service.execution import approval
from backend.stigmer_service.execution.fields import log_fields
from backend.stigmer_service.execution.models import CallbackWorkflowInput, ExecutionWorkflowInput
from backend.stigmer_service.execution.policies import execution_policy
from backend.stigmer_service.execution.workflow_ids import (
    CALLBACK_WORKFLOW,
    CANCEL_SIGNAL,
    EXECUTION_WORKFLOW,
    callback_workflow_id,
    workflow_id,
)
from backend.stigmer_service.store import documents
from backend.stigmer_service.store.records import ExecutionRecord, NewExecution
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)


def _settle(task: asyncio.Future[ExecutionRecord]) -> None:
    """Retrieves the outcome of a create whose caller may have gone away: a failure is logged
    where it happens (`start`), not again as a never-retrieved task exception."""
    if not task.cancelled():
        task.exception()


class Lifecycle:
    def __init__(self, store: Store, client: Client, settings: Settings) -> None:
        self.store = store
        self.client = client
        self.settings = settings

    @property
    def _rpc_timeout(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.settings.start_rpc_timeout)

    async def create(
        self,
        new: NewExecution,
        timeout_seconds: float | None,
        *,
        agent_spec: dict[str, Any] | None = None,
    ) -> ExecutionRecord:
        """Stores the execution and starts its workflow; with an idempotency key already used,
        the existing execution (its callback now going to `new.token`, re-delivered if it had
        already ended). `agent_spec`: the agent's, when the caller has just read it.

        The row and its workflow's start run to their end even when the caller gives up between
        them (its RPC deadline cancels the handler): a row without a workflow would be found by
        the caller's retry (same key) and wait until the sweeper ended it as lost."""
        creating = asyncio.ensure_future(self._create(new, timeout_seconds, agent_spec))
        creating.add_done_callback(_settle)
        return await asyncio.shield(creating)

    async def _create(
        self, new: NewExecution, timeout_seconds: float | None, agent_spec: dict[str, Any] | None
    ) -> ExecutionRecord:
        result = await self.store.create_execution(new)
        record = result.execution
        if result.created:
            await self.start(
                record, timeout_seconds, may_queue=not new.new_session, agent_spec=agent_spec
            )
            log.info("execution created", **log_fields(record))
            return record
        log.info(
            "execution exists for idempotency key",
            replaced_token=result.token_replaced,
            **log_fields(record),
        )
        pending_callback = record.callback_state in (
            states.CALLBACK_WAITING,
            states.CALLBACK_FAILED,
        )
        if new.token and record.phase in states.TERMINAL_PHASES and pending_callback:
            await self.redeliver(record)
        return record

    async def start(
        self,
        record: ExecutionRecord,
        timeout_seconds: float | None,
        *,
        may_queue: bool = True,
        agent_spec: dict[str, Any] | None = None,
    ) -> None:
        """Starts the execution's workflow. `may_queue`: its session may hold other executions
        (False for a session drawn for it, which spares the create a query). `agent_spec`: the
        agent's, when known (read otherwise)."""
        # An agent with tools runs the agent loop; its budget is fixed for the run here. An
        # agent deleted meanwhile takes the one-call path, which ends the run as AgentNotFound.
        spec = agent_spec
        if spec is None:
            try:
                spec = (await self.store.get_agent(record.agent_id)).spec
            except NotFound:
                spec = {}
        max_steps = documents.max_steps(spec)
        try:
            await self.client.start_workflow(
                EXECUTION_WORKFLOW,
                ExecutionWorkflowInput(
                    record.id,
                    execution_policy(self.settings, timeout_seconds),
                    handshake_id=contract.handshake_id(record.idempotency_key),
                    max_steps=max_steps,
                    approval=approval.policy(spec) if max_steps else None,
                    session_queue=may_queue and await self.store.session_busy(record),
                    fresh_session=not may_queue,
                ),
                id=workflow_id(record.id),
                task_queue=self.settings.task_queue,
                rpc_timeout=self._rpc_timeout,
            )
        except Exception as error:
            try:
                # A timeout may hide a start that happened: then the row must stay.
                await self.client.get_workflow_handle(workflow_id(record.id)).describe(
                    rpc_timeout=self._rpc_timeout
                )
            except Exception:
                pass  # Not started (NOT_FOUND), or Temporal cannot tell: see below.
            else:
                log.info(
                    "execution workflow started though its start RPC failed",
                    error=type(error).__name__,
                    **log_fields(record),
                )
                return
            # Nothing may stay PENDING without a workflow to run it. Should the start have
            # happened unseen after all, its workflow finds no row and ends without running.
            await self.store.delete_execution(record.id)
            log.warning(
                "execution workflow did not start", error=type(error).__name__, **log_fields(record)
            )
            raise Unavailable(f"could not start the execution: {type(error).__name__}") from error

    async def redeliver(self, record: ExecutionRecord) -> None:
        try:
            await self.client.start_workflow(
                CALLBACK_WORKFLOW,
                CallbackWorkflowInput(record.id, execution_policy(self.settings)),
                id=callback_workflow_id(record.id, record.token_hash),
                task_queue=self.settings.task_queue,
                rpc_timeout=self._rpc_timeout,
            )
        except WorkflowAlreadyStartedError:
            pass  # The same token's delivery is already under way.
        except Exception as error:
            raise Unavailable(f"could not schedule the callback: {type(error).__name__}") from error
        log.info("callback redelivery scheduled", **log_fields(record))

    async def signal_stop(self, record: ExecutionRecord, reason: str) -> None:
        """Tells the execution's workflow to stop its agent; the phase is already written."""
        try:
            await self.client.get_workflow_handle(workflow_id(record.id)).signal(
                CANCEL_SIGNAL, reason, rpc_timeout=self._rpc_timeout
            )
        except Exception as error:
            # The phase is already written; the workflow finds it when the agent returns.
            log.warning(
                "could not signal the execution workflow",
                error=type(error).__name__,
                **log_fields(record),
            )

    async def cancel(self, record: ExecutionRecord, reason: str) -> bool:
        """Records the execution cancelled and stops its workflow; False when it had already
        ended (nothing changed)."""
        if record.phase in states.TERMINAL_PHASES or not await self.store.finish(
            record.id, phase=states.PHASE_CANCELLED, error_message=reason
        ):
            return False
        await self.signal_stop(record, reason or "cancelled")
        log.info("execution cancelled", **log_fields(record))
        return True
