"""Replay tests of the service's workflows: a change that breaks determinism fails here.

Both ways, as sdk-python does: runs on a real service are replayed right away, and the committed
histories of every end (see histories.py to record them again) are replayed against the current
code. A deliberately changed copy of each workflow must fail to replay them.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from backend.common import sandbox
from backend.stigmer_service.execution.callers import CallerHeartbeats, CallerHeartbeatWorkflow
from backend.stigmer_service.execution.models import (
    CallbackWorkflowInput,
    CallbackWorkflowOutput,
    CallerSweepInput,
    ExecutionWorkflowInput,
    ExecutionWorkflowOutput,
)
from backend.stigmer_service.execution.workflows import AgentExecutionWorkflow, CallbackWorkflow
from tests.stigmer_service import caller
from tests.stigmer_service.replay import histories
from tests.support.service import Stubs

WORKFLOWS: list[type] = [AgentExecutionWorkflow, CallbackWorkflow, CallerHeartbeatWorkflow]
HISTORY_FILES = sorted(histories.HISTORIES.glob("*.json"))


def load(path: pathlib.Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


async def replay(history: WorkflowHistory, workflows: Sequence[type]) -> Exception | None:
    # Our workers' sandbox, with this module passed through for the changed workflows below.
    replayer = Replayer(workflows=workflows, workflow_runner=sandbox.workflow_runner("tests"))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


def test_every_recording_has_a_committed_history() -> None:
    assert {path.stem for path in HISTORY_FILES} == {r.name for r in histories.RECORDINGS}
    # Every workflow of the service has its ends recorded.
    assert {r.workflow for r in histories.RECORDINGS} == {w.__name__ for w in WORKFLOWS}


@pytest.mark.parametrize("recording", histories.RECORDINGS, ids=lambda r: r.name)
async def test_committed_history_replays(recording: histories.Recording) -> None:
    history = load(histories.HISTORIES / f"{recording.name}.json")
    # The file is the end it is named after.
    assert histories.workflow_type(history) == recording.workflow
    assert history.events[-1].event_type == recording.last_event
    failure = await replay(history, WORKFLOWS)
    assert failure is None, f"the current code does not replay {recording.name}: {failure}"


# The activities each recording of the agent loop schedules, in order: the path it stands for.
LOOP_ACTIVITIES = {
    # Two turns that call a tool each, then the turn that answers (and delivers).
    "execution_with_tools": ["model_turn", "call_tool"] * 2 + ["model_turn"],
    # Two turns (max_steps 2) that call a tool each; then the end is recorded and delivered.
    "execution_max_steps_exhausted": ["model_turn", "call_tool"] * 2
    + ["finish", "deliver_callback"],
    # A delegation: held open by the child's execution, which completes it; then the answer.
    "execution_with_sub_agent": ["model_turn", "delegate", "delegation_ended", "model_turn"],
    # A gated call waits on a signal (no activity), is approved, runs; then the answer.
    "execution_tool_approved": ["model_turn", "call_tool", "model_turn"],
}


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


@pytest.mark.parametrize("name", sorted(LOOP_ACTIVITIES))
def test_the_loop_recordings_take_the_loop(name: str) -> None:
    assert scheduled_activities(load(histories.HISTORIES / f"{name}.json")) == LOOP_ACTIVITIES[name]


async def test_runs_on_a_live_service_replay(stigmer: Stubs, temporal_client: Client) -> None:
    async with caller.running(temporal_client) as queue:
        recorded = await histories.record_all(histories.Stack(stigmer, temporal_client, queue))
    assert set(recorded) == {r.name for r in histories.RECORDINGS}
    for name, history in recorded.items():
        if name in LOOP_ACTIVITIES:
            assert scheduled_activities(history) == LOOP_ACTIVITIES[name], name
        failure = await replay(history, WORKFLOWS)
        assert failure is None, f"a live run of {name} does not replay: {failure}"


# Careless edits, each registered under the real workflow's name.


@workflow.defn(name=AgentExecutionWorkflow.__name__)
class _PausingExecutionWorkflow(AgentExecutionWorkflow):
    """Waits a moment before it starts the agent: a timer the recorded runs did not have."""

    @workflow.run
    async def run(self, request: ExecutionWorkflowInput) -> ExecutionWorkflowOutput:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(request)


@workflow.defn(name=AgentExecutionWorkflow.__name__)
class _ApprovingExecutionWorkflow(AgentExecutionWorkflow):
    """Waits a moment (a timer, as an approval's timeout would add) before every tool call,
    without a patch: runs in flight when it is deployed would break."""

    @workflow.run
    async def run(self, request: ExecutionWorkflowInput) -> ExecutionWorkflowOutput:
        return await super().run(request)

    @staticmethod
    async def _call_tool(*args: Any, **kwargs: Any) -> Any:
        await workflow.sleep(timedelta(seconds=1))
        return await AgentExecutionWorkflow._call_tool(*args, **kwargs)


@workflow.defn(name=AgentExecutionWorkflow.__name__)
class _LongerBudgetExecutionWorkflow(AgentExecutionWorkflow):
    """Allows one more model turn than the execution was started with (an off-by-one in
    max_steps): a third turn where the recorded run gave up."""

    @workflow.run
    async def run(self, request: ExecutionWorkflowInput) -> ExecutionWorkflowOutput:
        longer = dataclasses.replace(request, max_steps=request.max_steps + 1)
        return await super().run(longer)


@workflow.defn(name=CallbackWorkflow.__name__)
class _SilentCallbackWorkflow:
    """Reports the callback delivered without delivering it: an activity removed."""

    @workflow.run
    async def run(self, request: CallbackWorkflowInput) -> CallbackWorkflowOutput:
        return CallbackWorkflowOutput(state=3)


@workflow.defn(name=CallerHeartbeatWorkflow.__name__)
class _RestingSweeperWorkflow:
    """Rests between its runs: a timer inserted between the sweep and the continue-as-new."""

    @workflow.run
    async def run(self, request: CallerSweepInput) -> None:
        await workflow.execute_activity_method(
            CallerHeartbeats.heartbeat_callers,
            request,
            start_to_close_timeout=timedelta(seconds=request.run_seconds + 60),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout),
        )
        await workflow.sleep(timedelta(seconds=5))
        workflow.continue_as_new(request)


CHANGED: list[tuple[str, Any]] = [
    ("execution_completed", _PausingExecutionWorkflow),
    ("execution_with_tools", _ApprovingExecutionWorkflow),
    ("execution_max_steps_exhausted", _LongerBudgetExecutionWorkflow),
    ("callback_redelivered", _SilentCallbackWorkflow),
    ("sweeper_continued_as_new", _RestingSweeperWorkflow),
]


@pytest.mark.parametrize(("name", "changed"), CHANGED, ids=[name for name, _ in CHANGED])
async def test_a_changed_workflow_does_not_replay(name: str, changed: Any) -> None:
    history = load(histories.HISTORIES / f"{name}.json")
    # The real workflow replays it (so the failure below is the change's doing).
    assert await replay(history, WORKFLOWS) is None
    others = [w for w in WORKFLOWS if w.__name__ != histories.workflow_type(history)]
    failure = await replay(history, [changed, *others])
    assert isinstance(failure, NondeterminismError), failure
    print(f"{name} against {changed.__name__}: {failure}")
