"""Replays the committed histories against the current DslWorkflow: non-determinism fails here."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from backend.common import sandbox
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import WORKFLOW_NAME, DslWorkflow
from tests.workflow_runner import histories, scenarios

HISTORY_FILES = sorted(scenarios.HISTORIES.glob("*.json"))


def test_every_recording_has_a_committed_history() -> None:
    recorded = {r.name for r in histories.RECORDINGS} | {histories.EVENTS_RECORDING}
    assert {path.stem for path in HISTORY_FILES} == recorded


@pytest.mark.parametrize("path", HISTORY_FILES, ids=lambda path: path.stem)
async def test_history_replays_deterministically(path: pathlib.Path) -> None:
    history = WorkflowHistory.from_json(f"history-{path.stem}", path.read_text())
    # The worker's own sandbox (backend/common/sandbox.py), as the worker replays.
    replayer = Replayer(workflows=[DslWorkflow], workflow_runner=sandbox.workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class _ChangedDslWorkflow:
    """What a careless edit looks like: a timer where the recorded run had none."""

    @workflow.run
    async def run(self, run_input: DslRunInput) -> Any:
        await asyncio.sleep(1)
        return None


async def test_a_changed_workflow_does_not_replay() -> None:
    # Guards the guard: the same histories must fail against a workflow that does otherwise.
    path = scenarios.HISTORIES / "agents_routine.json"
    history = WorkflowHistory.from_json("changed", path.read_text())
    replayer = Replayer(workflows=[_ChangedDslWorkflow])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
