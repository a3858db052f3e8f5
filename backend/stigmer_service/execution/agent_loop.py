"""The two activities' work of an agent with tools: one model turn, and one tool call.

The workflow holds the conversation (masked); each turn rebuilds the chat from the store (the
execution's message with its secrets resolved), adds the conversation, lists the agent's tools
and asks the model. Every step is recorded as it happens, with secret values masked.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time

from opentelemetry.trace import StatusCode
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.common import contract, tracing
from backend.stigmer_service import logs, placeholders
from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution import approval, delegation, tooling
from backend.stigmer_service.execution.agent_run import AgentRun, Context, turn
from backend.stigmer_service.execution.heartbeating import heartbeating
from backend.stigmer_service.execution.models import (
    ApprovalPolicy,
    ApprovalTimeoutInput,
    CallToolInput,
    LoopToolCall,
    LoopToolResult,
    LoopTurn,
    ToolDecision,
)
from backend.stigmer_service.providers.base import ChatMessage, ToolCall, ToolSpec
from backend.stigmer_service.store import documents
from backend.stigmer_service.store.base import now
from backend.stigmer_service.store.records import (
    APPROVAL_APPROVED,
    APPROVAL_AWAITING,
    APPROVAL_NONE,
    APPROVAL_TIMED_OUT,
    STEP_ASSISTANT_MESSAGE,
    STEP_SUB_AGENT,
    STEP_TOOL_CALL,
    ExecutionRecord,
    StepDecision,
    StepRecord,
    SubAgentRecord,
    TokenUsage,
)
from backend.stigmer_service.store.repository import Store
from backend.stigmer_service.tools import mcp

log = logs.get(__name__)

# The failure type of a tool call attempt that Temporal retries (a transport failure).
TOOL_ATTEMPT_FAILED = "ToolAttemptFailed"


@dataclasses.dataclass
class TurnReply:
    """A model turn: the final text (no calls), or the calls to make (and text alongside)."""

    text: str  # Secret values masked.
    calls: list[LoopToolCall]
    next_index: int
    agent_slug: str
    usage: TokenUsage  # The turn's model call's.


def _chat(turns: list[LoopTurn]) -> list[ChatMessage]:
    """The conversation the workflow holds, as chat messages after the execution's message."""
    chat: list[ChatMessage] = []
    for earlier in turns:
        calls = [ToolCall(c.call_id, c.name, c.arguments) for c in earlier.calls]
        chat.append(ChatMessage("assistant", earlier.text, tool_calls=calls))
        for result in earlier.results:
            text = f"error: {result.text}" if result.is_error else result.text
            chat.append(ChatMessage("tool", text, tool_call_id=result.call_id))
    return chat


class AgentLoop:
    def __init__(self, store: Store, settings: Settings, agent_run: AgentRun) -> None:
        self.store = store
        self.settings = settings
        self.agent_run = agent_run

    async def turn(
        self,
        execution: ExecutionRecord,
        fields: dict[str, str],
        turns: list[LoopTurn],
        next_index: int,
        approvals: ApprovalPolicy | None = None,
    ) -> TurnReply:
        """One model turn, its steps recorded from `next_index` on (a gated call's as awaiting
        approval); traced as one span, the model call's within it."""
        with tracing.tracer(__name__).start_as_current_span(
            "agent turn",
            attributes={
                "stigmer.execution_id": execution.id,
                "stigmer.handshake_id": fields["handshake_id"],
                "stigmer.step.index": next_index,
            },
        ) as span:
            reply = await self._turn(execution, fields, turns, next_index, approvals)
            span.set_attribute("stigmer.turn.tool_calls", len(reply.calls))
            return reply

    async def _turn(
        self,
        execution: ExecutionRecord,
        fields: dict[str, str],
        turns: list[LoopTurn],
        next_index: int,
        approvals: ApprovalPolicy | None,
    ) -> TurnReply:
        context = await self.agent_run.context(execution)
        context.chat.extend(_chat(turns))
        tools = await self._tools(context)
        started, clock = now(), time.monotonic()
        reply, usage = await self.agent_run.call(context, fields, turn, tools.specs)
        took = datetime.timedelta(seconds=time.monotonic() - clock)
        mask = context.secret_values
        text = placeholders.mask(reply.text, mask)
        index = next_index
        if text or not reply.tool_calls:
            await self.store.record_step(
                execution.id,
                StepRecord(index, STEP_ASSISTANT_MESSAGE, started, result=text, duration=took),
            )
            index += 1
        calls: list[LoopToolCall] = []
        for call in reply.tool_calls:
            spec = tools.find(call.name)
            masked = placeholders.mask(call.arguments, mask)
            found = LoopToolCall(
                index=index,
                call_id=call.id,
                name=call.name,
                server=spec.server if spec else "",
                tool=spec.tool if spec else call.name,
                arguments=masked,
            )
            await self.store.record_step(
                execution.id,
                StepRecord(
                    index,
                    STEP_SUB_AGENT
                    if found.server == documents.SUB_AGENTS_SERVER
                    else STEP_TOOL_CALL,
                    now(),
                    tool_server=found.server,
                    tool_name=found.tool,
                    arguments=masked,
                    approval=(
                        APPROVAL_AWAITING if approval.gated(approvals, found) else APPROVAL_NONE
                    ),
                ),
            )
            calls.append(found)
            index += 1
        return TurnReply(text, calls, index, context.agent.slug, usage)

    async def _tools(self, context: Context) -> tooling.AgentTools:
        found = tooling.servers(context.agent.spec, context.env, context.secrets)
        try:
            tools = await heartbeating(
                tooling.discover(found), self.settings.activity_heartbeat_interval
            )
        except mcp.ToolError as error:
            # Retried with the turn (the model-call retry policy): a server that cannot list its
            # tools may be starting.
            raise ApplicationError(
                placeholders.mask(
                    f"could not list the agent's tools: {error}", context.secret_values
                ),
                type=contract.TRANSIENT_MODEL_ERROR,
                category=ApplicationErrorCategory.BENIGN,
            ) from None
        subs = [
            await self._sub_agent_tool(context, sub)
            for sub in documents.sub_agents(context.agent.spec)
        ]
        return tooling.AgentTools(tools.servers, tools.specs + subs)

    async def _sub_agent_tool(self, context: Context, sub: SubAgentRecord) -> ToolSpec:
        """The tool of a sub-agent, described as the agent sets, else as the sub-agent's own
        description says."""
        description = sub.description
        if not description:
            agent = await delegation.resolve_agent(self.store, context.execution.org, sub.agent)
            description = str((agent.spec if agent else {}).get("description") or "")
        return tooling.sub_agent_tool(
            sub.name, description or f"Delegates to the agent {sub.agent!r} and returns its answer."
        )

    async def approval_timed_out(self, request: ApprovalTimeoutInput) -> ToolDecision:
        index = request.call.index
        text = approval.timed_out(request.timeout_seconds)
        timeout = StepDecision(index, APPROVAL_TIMED_OUT, "", "", error=text)
        if await self.store.decide_step(request.execution_id, timeout):
            log.info(
                "tool call approval timed out",
                step=index,
                fail=request.fail,
                execution_id=request.execution_id,
            )
            return ToolDecision(index, approve=False, timed_out=True)
        step = await self.store.step(request.execution_id, index)
        if step is None or step.approval == APPROVAL_TIMED_OUT:
            return ToolDecision(index, approve=False, timed_out=True)
        return ToolDecision(
            index, step.approval == APPROVAL_APPROVED, step.approval_by, step.approval_reason
        )

    async def call_tool(self, request: CallToolInput) -> LoopToolResult:
        """Runs one tool call unless its result is recorded (then returns it: a completed call
        is never run again) and records its result, duration or error as the model sees it;
        traced as one span."""
        call = request.call
        with tracing.tracer(__name__).start_as_current_span(
            "tool call",
            attributes={
                "stigmer.execution_id": request.execution_id,
                "stigmer.step.index": call.index,
                "stigmer.tool": f"{call.server}.{call.tool}",
            },
        ) as span:
            result = await self._call_tool(request)
            if result.is_error:
                span.set_status(StatusCode.ERROR, "the tool call failed")
            return result

    async def _call_tool(self, request: CallToolInput) -> LoopToolResult:
        call = request.call
        recorded = await self.store.step(request.execution_id, call.index)
        if recorded is not None and recorded.duration is not None:
            return LoopToolResult(
                call.call_id, recorded.error or recorded.result, bool(recorded.error)
            )
        execution = await self.store.get_execution(request.execution_id)
        context = await self.agent_run.context(execution)
        servers = tooling.servers(context.agent.spec, context.env, context.secrets)
        started, clock = now(), time.monotonic()
        server = servers.get(call.server)
        error = ""
        text = ""
        if server is None or not tooling.enabled(server, call.tool):
            error = f"no tool {call.name!r}: call one of the tools you were given"
        else:
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                error = "the arguments must be a JSON object"
            else:
                error, text = await self._run(request, server, arguments, context)
        step = StepRecord(
            call.index,
            STEP_TOOL_CALL,
            started,
            tool_server=call.server,
            tool_name=call.tool,
            arguments=call.arguments,
            result=tooling.bounded(text),
            error=tooling.bounded(error),
            duration=datetime.timedelta(seconds=time.monotonic() - clock),
        )
        await self.store.record_step(request.execution_id, step)
        log.info(
            "tool call",
            tool_server=call.server,
            tool_name=call.tool,
            step=call.index,
            failed=bool(error),
            execution_id=request.execution_id,
        )
        return LoopToolResult(call.call_id, step.error or step.result, bool(error))

    async def _run(
        self,
        request: CallToolInput,
        server: mcp.McpServer,
        arguments: dict[str, object],
        context: Context,
    ) -> tuple[str, str]:
        """(error, result text) of the call, both masked; a transport failure is raised to be
        retried, except on the last attempt, where it becomes the error the model gets."""
        mask = context.secret_values
        try:
            result = await heartbeating(
                mcp.call_tool(
                    server,
                    request.call.tool,
                    arguments,
                    tooling.TOOL_TIMEOUT,
                    idempotency_key=tooling.idempotency_key(request.execution_id, request.call),
                ),
                self.settings.activity_heartbeat_interval,
            )
        except mcp.ToolError as failure:
            message = placeholders.mask(f"tool call failed: {failure}", mask)
            # Retried only when the call cannot have reached the tool (it never ran twice) and
            # attempts are left; otherwise the model hears the failure as the tool's result.
            again = failure.retryable and not failure.call_sent
            if again and activity.info().attempt < request.max_attempts:
                raise ApplicationError(
                    message, type=TOOL_ATTEMPT_FAILED, category=ApplicationErrorCategory.BENIGN
                ) from None
            return message, ""
        text = placeholders.mask(result.text, mask)
        return (text, "") if result.is_error else ("", text)
