"""The state golden_test.go declares after golden 01 and 07 (its ExpectedData, which the Go test
never compares), checked on `$data` at the end of our run of the unchanged files."""

from __future__ import annotations

import pathlib
from typing import Any

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.dsl.dialects import Dialect
from backend.workflow_runner.interpreter import Interpreter
from tests.workflow_runner.dsl.fakes import FakeRunners

GOLDEN = pathlib.Path(__file__).parents[1] / "zigflow_fixtures" / "golden"


async def _final_data(name: str, workflow_input: dict[str, Any]) -> dict[str, Any]:
    document = loader.load_file(GOLDEN / name)
    runners = FakeRunners(http=lambda call: {"id": 101})  # jsonplaceholder's POST /posts
    interpreter = Interpreter(document, runners, "wf-golden", dialect=Dialect.ZIGFLOW)
    await interpreter.run(workflow_input)
    assert interpreter.zigflow is not None
    return interpreter.zigflow.data


async def test_golden_01_leaves_each_set_under_its_task_name() -> None:
    data = await _final_data("01-operation-basic.yaml", {})
    # golden_test.go GetGoldenTestCases, 01-operation-basic ExpectedData: matched as declared.
    assert data["initialize"] == {"workflow_started": True}
    assert data["hello"] == {"message": "Hello, Zigflow!", "status": "success", "executed": True}
    assert data["finalize"] == {"workflow_completed": True}


async def test_golden_07_evaluates_dot_as_the_original_does() -> None:
    data = await _final_data("07-inject-transform.yaml", {"a": 10, "b": 20})
    # Declared: injectData {computed: 30, message: "Data injected"}. The message matches; the
    # original's own runtime evaluates `${ .a + .b }` with no input (TraverseAndEvaluateObj(...,
    # nil, state): `.` is null, so null + null is null), and so do we: 30 is declared, never
    # compared, and not what the original computes.
    assert data["injectData"]["message"] == "Data injected"
    assert data["injectData"]["computed"] is None
