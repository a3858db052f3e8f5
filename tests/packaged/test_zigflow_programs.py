"""The packaged runner on the vendored Zigflow documents, as a user moving over runs it: every
fixture validated by its own process (several at once), some run by `run` against a worker
process, and `migrate` on one of them. Every command exits as documented, none aborts."""

from __future__ import annotations

import json
import pathlib
import uuid

import pytest
import yaml

from tests.packaged.test_exit_codes import ABORTED, RUNNER_PEX, Programs, assert_clean
from tests.support.processes import wait_for_log

pytestmark = pytest.mark.timeout(540)

FIXTURES = pathlib.Path(__file__).parents[1] / "workflow_runner" / "zigflow_fixtures"
INVALID = FIXTURES / "zigflow" / "invalid" / "workflow.yaml"


def _fixtures() -> list[pathlib.Path]:
    return sorted([*FIXTURES.glob("golden/*.yaml"), *FIXTURES.glob("zigflow/*/workflow.yaml")])


async def test_every_fixture_validates_in_its_own_process(programs: Programs) -> None:
    paths = [path for path in _fixtures() if path != INVALID]
    assert len(paths) == 49
    results = await programs.run_all(
        RUNNER_PEX, (["validate", str(path)] for path in paths), at_once=6
    )
    assert_clean(results)
    assert all(r.stdout.strip().endswith("valid (zigflow dialect)") for r in results)
    refused = await programs.run(RUNNER_PEX, "validate", str(INVALID))
    assert refused.code == 1 and ABORTED not in refused.stderr
    assert "ERR_INVALID_TASK_QUEUE" in refused.stderr and "/document/taskQueue" in refused.stderr


async def test_run_and_migrate_zigflow_documents(
    programs: Programs, tmp_path: pathlib.Path
) -> None:
    queue = f"packaged-zigflow-{uuid.uuid4()}"
    worker = programs.process(
        "workflow-runner worker", RUNNER_PEX, ["worker", "--task-queue", queue], tmp_path / "w.log"
    )
    worker.start()
    try:
        await wait_for_log(worker, "worker started")
        runs = [
            ["run", str(FIXTURES / "zigflow/hello-world/workflow.yaml")],
            [
                "run",
                str(FIXTURES / "zigflow/data-flow/workflow.yaml"),
                "--input",
                json.dumps({"orderId": "order-123", "quantity": 3, "unitPrice": 14}),
            ],
            [
                "run",
                str(FIXTURES / "zigflow/child-workflows/workflow.yaml"),
                "--workflow-type",
                "parentWorkflow",
            ],
            ["run", str(FIXTURES / "golden/01-operation-basic.yaml")],
        ]
        results = await programs.run_all(
            RUNNER_PEX, ([*args, "--task-queue", queue] for args in runs), at_once=4
        )
    finally:
        worker.stop()
    assert_clean(results)
    hello, data_flow, children, golden = (json.loads(r.stdout) for r in results)
    assert hello == {"data": {"message": "Hello from Ziggy"}}
    assert {k: data_flow[k] for k in ("orderId", "total", "complete")} == {
        "orderId": "order-123",
        "total": 42,
        "complete": True,
    }
    assert children == {"completed": True}
    assert golden == {"workflow_completed": True}
    assert worker.popen is not None and worker.popen.returncode == 0, worker.log_tail()

    unknown = await programs.run(
        RUNNER_PEX,
        "run",
        str(FIXTURES / "zigflow/child-workflows/workflow.yaml"),
        "--workflow-type",
        "nope",
        "--task-queue",
        queue,
    )
    assert unknown.code == 1 and "--workflow-type: unknown workflow type 'nope'" in unknown.stderr

    migrated = tmp_path / "hello.yaml"
    done = await programs.run(
        RUNNER_PEX,
        "migrate",
        str(FIXTURES / "zigflow/hello-world/workflow.yaml"),
        "--output",
        str(migrated),
    )
    assert done.code == 0 and ABORTED not in done.stderr, done.stderr
    assert yaml.safe_load(migrated.read_text())["document"]["name"] == "hello-world"
    checked = await programs.run(RUNNER_PEX, "validate", "--dialect", "standard", str(migrated))
    assert_clean([checked])
