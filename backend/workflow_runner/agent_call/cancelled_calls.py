"""The agent executions of a workflow's agent calls whose cancellation the workflow requested.

A cancelled workflow cancels its agent call at once (workflow_api.run_agent_call) instead of
waiting for the service's next heartbeat of the caller, which in a large deployment is minutes
away. The workflow does not know the execution's id (the activity created it); the activity's
heartbeat details do: the activity records `{"execution_id"}` right after the create, and the
service's heartbeats repeat it (Temporal keeps only the last heartbeat's details). So the cancel
activity reads them from the workflow's own description.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from backend.workflow_runner.agent_call.models import CALL_AGENT_ACTIVITY

_CANCEL_REQUESTED = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED


async def cancel_requested_executions(client: Client, info: activity.Info) -> list[str]:
    """The executions of the agent calls of `info`'s workflow run that the workflow asked to
    cancel; empty for one whose execution is not known yet (it is being created)."""
    handle = client.get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)
    description = await handle.describe()
    found: list[str] = []
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != CALL_AGENT_ACTIVITY or pending.state != _CANCEL_REQUESTED:
            continue
        payloads = list(pending.heartbeat_details.payloads)
        for detail in await client.data_converter.decode(payloads) if payloads else []:
            if isinstance(detail, dict) and detail.get("execution_id"):
                found.append(str(detail["execution_id"]))
    return found
