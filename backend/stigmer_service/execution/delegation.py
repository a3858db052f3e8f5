"""A parent agent's delegation to a sub-agent, over the same handshake as a workflow's
`call: agent`: the parent's delegate activity hands its own task token to a new execution (the
child) and completes asynchronously; the child's end, however it ends, completes that activity
exactly once (`delivery`), and the caller sweeper heartbeats it while the child works. So every
edge of a tree of agents is exactly-once, and a waiting parent holds no activity slot.

The child runs the sub-agent in the parent's org, in a fresh session, with the parent's runtime
env (its secrets too: the MCP servers of the child may need them), on the message the model
wrote (masked, as recorded). Cancelling or timing out the parent cancels its running children
(`cancel_children`), and theirs in turn.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from temporalio import activity

from backend.common import secret_placeholders, tracing
from backend.stigmer_service import convert, ids, logs
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.execution import tooling
from backend.stigmer_service.execution.fields import log_fields
from backend.stigmer_service.execution.lifecycle import Lifecycle
from backend.stigmer_service.execution.models import DelegateInput, DelegationEndedInput
from backend.stigmer_service.store import documents
from backend.stigmer_service.store.base import now
from backend.stigmer_service.store.records import (
    STEP_SUB_AGENT,
    AgentRecord,
    CallerRef,
    ExecutionRecord,
    NewExecution,
    StepRecord,
)
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

# How deep sub-agents nest (spec.proto): an execution at this depth cannot delegate further.
MAX_DEPTH = 4
# The org of agents every org may run.
PLATFORM_ORG = ""


def idempotency_key(parent_id: str, step_index: int) -> str:
    """One child per sub-agent step: a retried delegate activity takes the same child over."""
    return f"sub-agent/{parent_id}/{step_index}"


async def resolve_agent(store: Store, org: str, reference: str) -> AgentRecord | None:
    """A sub-agent's agent: by id, or by slug, of the parent's org or the platform's."""
    try:
        agent: AgentRecord | None = await store.get_agent(reference)
    except NotFound:
        agent = None
    if agent is not None and agent.org in (org, PLATFORM_ORG):
        return agent
    for owner in (org, PLATFORM_ORG):
        if (found := await store.find_agent(owner, reference)) is not None:
            return found
    return None


class Delegation:
    def __init__(self, store: Store, lifecycle: Lifecycle) -> None:
        self.store = store
        self.lifecycle = lifecycle

    async def delegate(self, request: DelegateInput) -> dict[str, Any]:
        """Starts (or takes over) the child and leaves the activity open for it to complete;
        returns at once only with {"error": ...} when there is no child to start. Traced as one
        span, from which the child's workflow (and its trace) goes on."""
        call = request.call
        with tracing.tracer(__name__).start_as_current_span(
            "sub-agent",
            attributes={
                "stigmer.execution_id": request.execution_id,
                "stigmer.step.index": call.index,
                "stigmer.sub_agent": call.tool,
            },
        ) as span:
            child_id, outcome = await self._delegate(request)
            span.set_attribute("stigmer.sub_execution_id", child_id)
        if outcome is not None:
            return outcome
        activity.raise_complete_async()

    async def _delegate(self, request: DelegateInput) -> tuple[str, dict[str, Any] | None]:
        """(the child's id, None) once it is started, or ("", the outcome) without a child."""
        call = request.call
        parent = await self.store.get_execution(request.execution_id)
        step = StepRecord(
            call.index,
            STEP_SUB_AGENT,
            now(),
            tool_server=documents.SUB_AGENTS_SERVER,
            tool_name=call.tool,
            arguments=call.arguments,
        )
        recorded = await self.store.step(parent.id, call.index)
        if recorded is not None and recorded.duration is not None:
            # The step ended and was recorded (a retry after that): its outcome stands.
            outcome = {"error": recorded.error} if recorded.error else {"output": recorded.result}
            return recorded.sub_execution_id, outcome
        agent, message, error = await self._child_of(parent, call.tool, call.arguments)
        if agent is None:
            step = dataclasses.replace(step, error=error, duration=now() - step.started_at)
            await self.store.record_step(parent.id, step)
            return "", {"error": error}
        await self.store.record_step(parent.id, step)
        info = activity.info()
        child = await self.lifecycle.create(
            NewExecution(
                org=parent.org,
                name="",
                labels={},
                agent_id=agent.id,
                session_id=ids.new_session_id(),
                new_session=True,
                message=message,
                config={},
                caller=convert.to_json(
                    convert.caller_to_proto(
                        CallerRef(
                            workflow_id=info.workflow_id or "",
                            run_id=info.workflow_run_id or "",
                            activity_id=info.activity_id,
                            namespace=info.workflow_namespace or "",
                            task_queue=info.task_queue,
                            heartbeat_timeout=(
                                info.heartbeat_timeout.total_seconds()
                                if info.heartbeat_timeout
                                else 0.0
                            ),
                        )
                    )
                ),
                runtime_env=self._env(parent),
                token=info.task_token,
                idempotency_key=idempotency_key(parent.id, call.index),
                created_by=parent.created_by or "",
                parent_execution_id=parent.id,
            ),
            timeout_seconds=None,
        )
        await self.store.record_step(
            parent.id, dataclasses.replace(step, sub_execution_id=child.id)
        )
        log.info(
            "delegated to a sub-agent",
            sub_agent=call.tool,
            step=call.index,
            sub_execution_id=child.id,
            **log_fields(parent),
        )
        return child.id, None

    async def _child_of(
        self, parent: ExecutionRecord, name: str, arguments: str
    ) -> tuple[AgentRecord | None, str, str]:
        """(the sub-agent, the message) to run, or (None, "", why not) as the model hears it."""
        try:
            spec = (await self.store.get_agent(parent.agent_id)).spec
        except NotFound:
            spec = {}
        sub = next((s for s in documents.sub_agents(spec) if s.name == name), None)
        if sub is None:
            return None, "", f"no sub-agent {name!r}: call one of the tools you were given"
        try:
            document = json.loads(arguments or "{}")
        except ValueError:
            document = None
        message = document.get("message") if isinstance(document, dict) else None
        if not isinstance(message, str) or not message.strip():
            return None, "", 'the arguments must be {"message": "<what to ask the sub-agent>"}'
        if await self._depth(parent) >= MAX_DEPTH:
            return None, "", f"sub-agents nest at most {MAX_DEPTH} levels deep"
        agent = await resolve_agent(self.store, parent.org, sub.agent)
        if agent is None:
            return None, "", f"sub-agent {name!r}: agent {sub.agent!r} not found"
        return agent, message, ""

    async def _depth(self, execution: ExecutionRecord) -> int:
        """How many ancestors the execution has (0 for one the API created)."""
        depth, parent_id = 0, execution.parent_execution_id
        while parent_id and depth < MAX_DEPTH:
            depth += 1
            try:
                parent_id = (await self.store.get_execution(parent_id)).parent_execution_id
            except NotFound:
                break
        return depth

    def _env(self, parent: ExecutionRecord) -> dict[str, tuple[str, bool]]:
        """The parent's runtime env for the child, without the seal of the parent's message
        placeholders: nothing the model writes is resolved as a placeholder."""
        clear, secrets = self.store.decrypt_env(parent)
        return {
            name: (value, name in secrets)
            for name, value in clear.items()
            if name != secret_placeholders.SEAL_ENV_NAME
        }

    async def ended(self, request: DelegationEndedInput) -> None:
        """Records the sub-agent step's outcome (the child's answer or error) on the parent."""
        call, result = request.call, request.result
        recorded = await self.store.step(request.execution_id, call.index)
        started = recorded.started_at if recorded else now()
        text = tooling.bounded(result.text)
        await self.store.record_step(
            request.execution_id,
            StepRecord(
                call.index,
                STEP_SUB_AGENT,
                started,
                tool_server=documents.SUB_AGENTS_SERVER,
                tool_name=call.tool,
                arguments=call.arguments,
                result="" if result.is_error else text,
                error=text if result.is_error else "",
                duration=now() - started,
                sub_execution_id=recorded.sub_execution_id if recorded else "",
            ),
        )

    async def cancel_children(self, execution_id: str, reason: str) -> int:
        """Cancels the execution's running sub-agent executions; their workflows cancel theirs."""
        cancelled = 0
        for child in await self.store.running_children(execution_id):
            if await self.lifecycle.cancel(child, reason):
                cancelled += 1
                log.info(
                    "sub-agent execution cancelled",
                    parent_execution_id=execution_id,
                    **log_fields(child),
                )
        return cancelled
