"""The demo's approvals: tool calls that wait for a person, approved with the service's command
line (`stigmer-service approve`) as a user approves them, or shown to the user in dev mode."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
from collections.abc import Callable

from ai.stigmer.agentic.agentexecution.v1 import api_pb2, status_pb2
from google.protobuf import json_format

from examples import commands, walkthrough

# The `stigmer-service` program, run with this interpreter (which has it, in the repo and in the
# demo's PEX) rather than a binary that may not be built.
CLI_MODULE = "backend.stigmer_service.main"
CLI_NAME = "stigmer-service"
# Recorded with the decision (and shown by `get execution`): why the call may run.
REASON = "linking to the open incident is safe"
POLL_SECONDS = 0.25


class ApprovalError(Exception):
    """The command line did not approve the call (its error in the message)."""


@dataclasses.dataclass(frozen=True)
class Waiting:
    """A tool call that waits for approval."""

    execution: api_pb2.AgentExecution
    step: status_pb2.AgentStep

    def approve_args(self, endpoint: str | None = None) -> list[str]:
        """The arguments of `stigmer-service approve` for this call (None: the default endpoint)."""
        args = ["approve", self.execution.metadata.id, str(self.step.index), "--reason", REASON]
        return args + (["--endpoint", endpoint] if endpoint else [])


@dataclasses.dataclass(frozen=True)
class Decided:
    """What the command line ran and the step as its answer shows it."""

    command: str
    step: status_pb2.AgentStep


def shown(args: list[str]) -> str:
    """A `stigmer-service` command line as a user types it."""
    return shlex.join([CLI_NAME, *args])


async def waiting(endpoint: str, workflow_id: str | None) -> list[Waiting]:
    """The tool calls of this workflow's running executions (None: any) that wait for approval."""
    running = await walkthrough.executions_of(
        endpoint, workflow_id, [status_pb2.EXECUTION_PHASE_RUNNING]
    )
    return [
        Waiting(execution, step)
        for execution in running
        for step in execution.status.steps
        if step.approval.state == status_pb2.APPROVAL_STATE_AWAITING
    ]


async def approve_with_cli(endpoint: str, call: Waiting) -> Decided:
    """Runs `stigmer-service approve` as a child process, with the demo's environment."""
    args = [*call.approve_args(endpoint), "--output", "json"]
    try:
        out = await commands.run(CLI_MODULE, args)
    except commands.CommandFailed as failed:
        raise ApprovalError(f"{shown(args)} {failed}") from None
    decided = json_format.ParseDict(
        json.loads(out), api_pb2.AgentExecution(), ignore_unknown_fields=True
    )
    step = next(s for s in decided.status.steps if s.index == call.step.index)
    return Decided(shown(args), step)


async def watch(
    endpoint: str,
    workflow_id: str | None,
    on_waiting: Callable[[Waiting], None],
    on_decided: Callable[[Decided], None] | None = None,
) -> None:
    """Until cancelled: reports each tool call of the workflow's executions (None: of any) that
    waits for approval, once; with `on_decided`, approves it with the command line first."""
    seen: set[tuple[str, int]] = set()
    while True:
        for call in await waiting(endpoint, workflow_id):
            key = (call.execution.metadata.id, call.step.index)
            if key in seen:
                continue
            seen.add(key)
            on_waiting(call)
            if on_decided is not None:
                on_decided(await approve_with_cli(endpoint, call))
        await asyncio.sleep(POLL_SECONDS)
