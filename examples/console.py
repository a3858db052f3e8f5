"""What the demo prints: progress lines, the agents, the approvals it makes, the executions with
their steps, and the commands to use in dev mode."""

from __future__ import annotations

import contextlib
import pathlib

import typer
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agentexecution.v1 import status_pb2

from backend.stigmer_service import cli_render
from backend.workflow_runner.models import ProgressEntry
from examples import approvals, stack, walkthrough


def say(text: str = "") -> None:
    typer.echo(text)


def shown(path: pathlib.Path) -> str:
    """A path as the user would type it: relative to the current directory when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(pathlib.Path.cwd()))
    return str(path)


def phase_name(value: status_pb2.ExecutionPhase.ValueType) -> str:
    return str(status_pb2.ExecutionPhase.Name(value)).removeprefix("EXECUTION_PHASE_")


def print_progress(entry: ProgressEntry, elapsed: float) -> None:
    suffix = f"  ({entry.error_type})" if entry.error_type else ""
    say(f"  {elapsed:6.1f}s  {entry.status:<9}  {entry.path}{suffix}")


def print_agents(agents: list[agent_api_pb2.Agent], manifest: pathlib.Path) -> None:
    say(f"Applied {len(agents)} agents from {shown(manifest)}:")
    for agent in agents:
        name = f"{agent.metadata.org}/{agent.metadata.slug}"
        say(f"  {name:<28} {agent.spec.model}")


def print_dev_commands(running: stack.Stack, workflow_arg: str, sample: str | None) -> None:
    input_arg = f" --input @{sample}" if sample else ""
    run_args = f"run {workflow_arg}{input_arg}"
    say()
    say("The stack is up on the default ports. From another terminal, in the repo root:")
    say(
        f"  ./pants --concurrent run backend/workflow_runner:workflow-runner -- {run_args}\n"
        "  ./pants --concurrent run backend/stigmer_service:stigmer-service -- list executions"
    )
    say(
        "or with the packaged binaries (./pants package backend/workflow_runner:workflow-runner "
        "backend/stigmer_service:stigmer-service):"
    )
    say(
        f"  dist/backend.workflow_runner/workflow-runner.pex {run_args}\n"
        "  dist/backend.stigmer_service/stigmer-service.pex list executions\n"
        "  dist/backend.stigmer_service/stigmer-service.pex get execution <EXECUTION_ID>"
    )
    say(
        "An urgent ticket's research step links it to the incident once you approve that tool "
        "call;\nthe approve command for it is printed here when it waits."
    )
    say(
        "The reply review waits for a reviewer's event (15 s at most); run it, then publish the "
        "review:\n"
        "  dist/backend.workflow_runner/workflow-runner.pex run examples/workflows/reply-review.yaml"
        """ --input '{"ticket": "T-7", "reply": "Hi"}'\n"""
        f"  NATS_URL={running.nats_url} dist/backend.workflow_runner/workflow-runner.pex emit"
        " --type com.acme.support.reply.reviewed --source me"
        """ --data '{"ticket": "T-7", "verdict": "approved", "reviewer": "me"}'"""
    )
    say(f"Temporal UI: {running.ui_url}")
    say("Press Ctrl-C to stop everything.")


def _waiting_call(call: approvals.Waiting) -> str:
    step = call.step
    arguments = cli_render.short(step.arguments_json, 50)
    tool = f"{step.tool_server}.{step.tool_name}"
    return f"step {step.index} of {call.execution.metadata.id}, {tool} {arguments}"


def print_waiting(call: approvals.Waiting) -> None:
    """A gated tool call the demo is about to approve with the command line."""
    say(f"  approval: {_waiting_call(call)} waits for a person; approving with the CLI:")


def print_decided(decided: approvals.Decided) -> None:
    say(f"    $ {decided.command}")
    say(f"    {cli_render.approval_text(decided.step.approval)}")


def print_dev_approval(call: approvals.Waiting) -> None:
    """Dev mode: the user approves (or rejects: `reject`) with this command."""
    say(f"\nA tool call waits for your approval: {_waiting_call(call)}. Approve it with")
    say(
        "  ./pants --concurrent run backend/stigmer_service:stigmer-service -- "
        + approvals.shown(call.approve_args()).removeprefix(approvals.CLI_NAME + " ")
    )
    say("(or `reject` instead of `approve`: the model then hears why).")


async def print_executions(
    running: stack.Stack, workflow_id: str, agents: list[agent_api_pb2.Agent]
) -> None:
    names = {a.metadata.id: f"{a.metadata.org}/{a.metadata.slug}" for a in agents}
    executions = await walkthrough.executions_of(running.service.address, workflow_id)
    say(f"Agent executions of this run ({len(executions)}):")
    for execution in executions:
        agent = names.get(execution.spec.agent_id, execution.spec.agent_id)
        line = f"  {execution.metadata.id}  {phase_name(execution.status.phase):<10} {agent}"
        if execution.status.error.type:
            line += f"  {execution.status.error.type}: {execution.status.error.message}"
        say(line)
        # An agent with tools: its steps as `stigmer-service get execution` shows them.
        for step in execution.status.steps:
            say(f"      {cli_render.step_line(step)}")
