"""How the client commands print: text lines for people, JSON (proto-JSON names) for scripts."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, status_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


class Output(enum.StrEnum):
    text = "text"
    json = "json"


def as_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=False)


def show(messages: Sequence[M], output: Output, text: Callable[[M], str]) -> None:
    """One message as a JSON object, several as a JSON array; or each as `text` renders it."""
    if output == Output.json:
        body: Any = as_json(messages[0]) if len(messages) == 1 else [as_json(m) for m in messages]
        typer.echo(json.dumps(body, indent=2))
    else:
        for message in messages:
            typer.echo(text(message))


def show_list(messages: Sequence[M], output: Output, text: Callable[[M], str]) -> None:
    """As `show`, except that JSON is always an array, even of one message."""
    if output == Output.json:
        typer.echo(json.dumps([as_json(m) for m in messages], indent=2))
    else:
        show(messages, output, text)


def agent_line(agent: agent_api_pb2.Agent) -> str:
    return f"{agent.metadata.id}  {agent.metadata.org or '-'}/{agent.metadata.slug}  {agent.spec.model or '(service default)'}"


def phase(execution: api_pb2.AgentExecution) -> str:
    return str(status_pb2.ExecutionPhase.Name(execution.status.phase)).removeprefix(
        "EXECUTION_PHASE_"
    )


def execution_text(execution: api_pb2.AgentExecution) -> str:
    lines = [
        f"{execution.metadata.id}  {phase(execution)}  agent={execution.spec.agent_id}  "
        f"session={execution.spec.session_id}"
    ]
    if execution.status.output:
        lines.append(f"  output: {execution.status.output}")
    if execution.status.error.type:
        lines.append(f"  error: {execution.status.error.type}: {execution.status.error.message}")
    if execution.status.steps:
        lines.append(f"  steps ({len(execution.status.steps)}):")
        lines.extend(f"    {step_line(step)}" for step in execution.status.steps)
    callback = execution.status.callback
    if callback.token_present:
        state = status_pb2.CallbackState.Name(callback.state).removeprefix("CALLBACK_STATE_")
        lines.append(
            f"  callback: {state} (token {callback.token_hash}, attempts {callback.attempts})"
        )
    return "\n".join(lines)


# A step line stays readable on a terminal; `--output json` has the whole text of every step.
SHORT = 60
_STEP_KINDS = {
    status_pb2.STEP_KIND_ASSISTANT_MESSAGE: "message",
    status_pb2.STEP_KIND_TOOL_CALL: "tool",
    status_pb2.STEP_KIND_SUB_AGENT: "agent",
}


def short(text: str, limit: int = SHORT) -> str:
    """One line of at most `limit` characters: newlines folded, the rest cut with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


_UNDECIDED = (status_pb2.APPROVAL_STATE_UNSPECIFIED, status_pb2.APPROVAL_STATE_AWAITING)
_DECIDED = {
    status_pb2.APPROVAL_STATE_APPROVED: "approved",
    status_pb2.APPROVAL_STATE_REJECTED: "rejected",
    status_pb2.APPROVAL_STATE_TIMED_OUT: "approval timed out",
}


def approval_text(approval: status_pb2.StepApproval) -> str:
    """`[approved by NAME: REASON]`, `[rejected by ...]` or `[approval timed out]`."""
    text = _DECIDED.get(approval.state, "?")
    if approval.decided_by:
        text += f" by {approval.decided_by}"
    if approval.reason:
        text += f": {short(approval.reason, 40)}"
    return f"[{text}]"


def step_line(step: status_pb2.AgentStep) -> str:
    """One step as `<index> <kind> [server.tool <arguments>] -> <result>|error: <error> (<secs>)`;
    a tool call still running has no result and no duration yet."""
    kind = _STEP_KINDS.get(step.kind, "?")
    parts = [f"{step.index:>2} {kind:<7}"]
    if step.kind in (status_pb2.STEP_KIND_TOOL_CALL, status_pb2.STEP_KIND_SUB_AGENT):
        parts.append(f"{step.tool_server}.{step.tool_name} {short(step.arguments_json, 40)}")
        if step.approval.state == status_pb2.APPROVAL_STATE_AWAITING:
            parts.append("(awaiting approval)")
        elif step.error:
            parts.append(f"-> error: {short(step.error)}")
        elif step.HasField("duration"):
            parts.append(f"-> {short(step.result)}")
        else:
            parts.append("(running)")
        if step.approval.state not in _UNDECIDED:
            parts.append(approval_text(step.approval))
    else:
        parts.append(short(step.result))
    if step.HasField("duration"):
        parts.append(f"({step.duration.ToTimedelta().total_seconds():.2f}s)")
    return " ".join(parts)


@dataclasses.dataclass
class Watched:
    """What `watch` has printed of an execution, so that each new state prints what is new: its
    new messages, each step that appeared or changed (a tool call running, then its result;
    awaiting approval, then decided), and its phase when it changed."""

    messages: int = 0
    steps: dict[int, str] = dataclasses.field(default_factory=dict)
    phase: str = ""

    def lines(self, execution: api_pb2.AgentExecution) -> list[str]:
        lines = []
        for message in execution.status.messages[self.messages :]:
            role = status_pb2.MessageRole.Name(message.role).removeprefix("MESSAGE_ROLE_")
            lines.append(f"[{role.lower()}] {message.content}")
        self.messages = len(execution.status.messages)
        for step in execution.status.steps:
            line = step_line(step)
            if self.steps.get(step.index) != line:
                self.steps[step.index] = line
                lines.append(f"step {line}")
        if phase(execution) != self.phase:
            self.phase = phase(execution)
            lines.append(f"phase: {self.phase}")
        return lines


def caller_row(execution: api_pb2.AgentExecution, now: datetime.datetime) -> dict[str, Any]:
    """What an operator needs about one waiting caller; the token only as its short hash."""
    callback = execution.status.callback
    created = execution.metadata.audit.created_at.ToDatetime(datetime.UTC)
    ended = (
        execution.status.completed_at.ToDatetime(datetime.UTC)
        if execution.status.HasField("completed_at")
        else None
    )
    return {
        "execution_id": execution.metadata.id,
        "agent_id": execution.spec.agent_id,
        "phase": phase(execution),
        "callback_state": status_pb2.CallbackState.Name(callback.state).removeprefix(
            "CALLBACK_STATE_"
        ),
        "age_seconds": round((now - created).total_seconds(), 1),
        "ended_seconds_ago": None if ended is None else round((now - ended).total_seconds(), 1),
        "attempts": callback.attempts,
        "last_error": callback.last_error,
        "caller_workflow_id": execution.spec.caller.workflow_id,
        "caller_run_id": execution.spec.caller.run_id,
        "caller_activity_id": execution.spec.caller.activity_id,
        "token_hash": callback.token_hash,
    }


def age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def show_callers(executions: Sequence[api_pb2.AgentExecution], output: Output) -> None:
    """The waiting callers, oldest first: a JSON array of rows, or a table."""
    now = datetime.datetime.now(datetime.UTC)
    rows = sorted(
        (caller_row(e, now) for e in executions), key=lambda row: -float(row["age_seconds"])
    )
    if output == Output.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no caller is waiting and no callback has failed")
        return
    typer.echo(
        f"{'EXECUTION':<24} {'PHASE':<9} {'CALLBACK':<8} {'AGE':>6} {'TRIES':>5}  "
        "CALLER WORKFLOW / ACTIVITY  LAST ERROR"
    )
    for row in rows:
        typer.echo(
            f"{row['execution_id']:<24} {row['phase']:<9} {row['callback_state']:<8} "
            f"{age(row['age_seconds']):>6} {row['attempts']:>5}  "
            f"{row['caller_workflow_id'] or '-'} / {row['caller_activity_id'] or '-'}  "
            f"{row['last_error'] or ''}"
        )
