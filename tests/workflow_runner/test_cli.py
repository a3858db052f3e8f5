"""The command line: validate, run (end to end against the dev server) and --help."""

from __future__ import annotations

import asyncio
import json
import pathlib
import uuid

import pytest
import yaml
from temporalio.client import Client
from temporalio.service import RPCError
from typer.testing import CliRunner, Result

from backend.common.temporal_dev_server import DevServer
from backend.workflow_runner.cli import app
from backend.workflow_runner.worker import build_worker
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(60)


def invoke(*args: str, address: str = "127.0.0.1:1") -> Result:
    return CliRunner(env={"TEMPORAL_ADDRESS": address}).invoke(app, list(args))


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["worker"], ["version"]])
def test_help_everywhere(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_validate_a_valid_file() -> None:
    path = scenarios.WORKFLOWS / "agents.yaml"
    result = invoke("validate", str(path))
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{path}: valid"


def write(tmp_path: pathlib.Path, document: dict[str, object]) -> pathlib.Path:
    path = tmp_path / f"{uuid.uuid4()}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


INVALID = scenarios.inline(
    """
do:
  - first: {set: {x: "${ .a + }"}, then: nowhere}
  - second: {beam: {}}
"""
)


def test_validate_reports_every_problem_with_its_path(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, INVALID)
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"{path}: /do/0/first/set/x: invalid expression")
    assert lines[1].startswith(f"{path}: /do/0/first/then: then: 'nowhere'")
    assert lines[2].startswith(f"{path}: /do/1/second: unknown task type")
    assert lines[3] == "3 problem(s) found"


def test_validate_a_missing_file() -> None:
    result = invoke("validate", "/nonexistent/flow.yaml")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


async def assert_not_started(client: Client, workflow_id: str) -> None:
    with pytest.raises(RPCError):
        await client.get_workflow_handle(workflow_id).describe()


async def test_run_rejects_an_invalid_document_before_starting(
    temporal_client: Client, temporal_server: DevServer, tmp_path: pathlib.Path
) -> None:
    workflow_id = f"never-{uuid.uuid4()}"
    path = write(tmp_path, INVALID)
    result = await asyncio.to_thread(
        invoke, "run", str(path), "--id", workflow_id, address=temporal_server.address
    )
    assert result.exit_code == 1
    assert "/do/1/second: unknown task type" in result.stderr
    await assert_not_started(temporal_client, workflow_id)


async def test_run_rejects_input_that_violates_the_schema(
    temporal_client: Client, temporal_server: DevServer
) -> None:
    workflow_id = f"never-{uuid.uuid4()}"
    result = await asyncio.to_thread(
        invoke,
        "run",
        str(scenarios.WORKFLOWS / "agents.yaml"),
        "--input",
        '{"ticket": 5}',
        "--id",
        workflow_id,
        address=temporal_server.address,
    )
    assert result.exit_code == 1
    assert "input: /input/ticket: workflow input does not match input.schema" in result.stderr
    await assert_not_started(temporal_client, workflow_id)


async def test_run_end_to_end_prints_progress_and_the_output(
    temporal_client: Client, temporal_server: DevServer, task_queue: str, tmp_path: pathlib.Path
) -> None:
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps({"ticket": "the site is down"}))
    async with build_worker(
        temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
    ):
        result = await asyncio.wait_for(
            asyncio.to_thread(
                invoke,
                "run",
                str(scenarios.WORKFLOWS / "agents.yaml"),
                "--input",
                f"@{input_file}",
                "--task-queue",
                task_queue,
                address=temporal_server.address,
            ),
            40,
        )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "category": "urgent",
        "paged": False,
        "reason": "model overloaded",
    }
    assert "completed /do/0/classify" in " ".join(result.stderr.split())
    assert "failed /do/2/escalate/try/0/page (ModelError)" in " ".join(result.stderr.split())


async def test_run_a_failing_workflow_prints_the_dsl_error_and_exits_1(
    temporal_client: Client, temporal_server: DevServer, task_queue: str, tmp_path: pathlib.Path
) -> None:
    path = write(
        tmp_path,
        scenarios.inline(
            "do:\n  - boom: {raise: {error: {type: https://example.com/boom, status: 500}}}"
        ),
    )
    async with build_worker(
        temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
    ):
        result = await asyncio.wait_for(
            asyncio.to_thread(
                invoke,
                "run",
                str(path),
                "--task-queue",
                task_queue,
                address=temporal_server.address,
            ),
            40,
        )
    assert result.exit_code == 1
    assert result.stdout == ""
    error_line = result.stderr.strip().splitlines()[-1]
    assert json.loads(error_line) == {
        "error": {
            "type": "https://example.com/boom",
            "status": 500,
            "title": "",
            "detail": "",
            "instance": "/do/0/boom",
        }
    }


async def test_run_no_wait_prints_the_ids(
    temporal_client: Client, temporal_server: DevServer, task_queue: str
) -> None:
    workflow_id = f"nowait-{uuid.uuid4()}"
    result = await asyncio.to_thread(
        invoke,
        "run",
        str(scenarios.WORKFLOWS / "agents.yaml"),
        "--input",
        '{"ticket": "hello"}',
        "--id",
        workflow_id,
        "--no-wait",
        "--task-queue",
        task_queue,
        address=temporal_server.address,
    )
    assert result.exit_code == 0, result.stderr
    started = json.loads(result.stdout)
    assert started["workflow_id"] == workflow_id
    async with build_worker(
        temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
    ):
        output = await asyncio.wait_for(
            temporal_client.get_workflow_handle(workflow_id).result(), 30
        )
    assert output["category"] == "routine"


async def test_run_with_an_execution_timeout_ends_a_run_that_waits_longer(
    temporal_client: Client, temporal_server: DevServer, task_queue: str, tmp_path: pathlib.Path
) -> None:
    path = write(tmp_path, scenarios.inline("do:\n  - nap: {wait: PT60S}\n"))
    workflow_id = f"bounded-{uuid.uuid4()}"
    async with build_worker(temporal_client, task_queue):
        result = await asyncio.wait_for(
            asyncio.to_thread(
                invoke,
                "run",
                str(path),
                "--id",
                workflow_id,
                "--execution-timeout",
                "PT2S",
                "--task-queue",
                task_queue,
                address=temporal_server.address,
            ),
            40,
        )
    assert result.exit_code == 1, result.stderr
    assert f"workflow {workflow_id} failed" in result.stderr
    description = await temporal_client.get_workflow_handle(workflow_id).describe()
    assert description.status is not None and description.status.name == "TIMED_OUT"


def test_run_refuses_an_execution_timeout_that_is_not_a_duration(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, scenarios.inline("do:\n  - a: {set: {x: 1}}\n"))
    result = invoke("run", str(path), "--execution-timeout", "soon")
    assert result.exit_code == 1
    assert "--execution-timeout: 'soon' is not an ISO 8601 duration" in result.stderr
