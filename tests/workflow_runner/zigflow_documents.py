"""Small Zigflow-dialect documents for the tests: a header, and a run on the dev server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner.scenarios import FAKE_AGENT_ACTIVITIES

HEADER = """
document:
  dsl: 1.0.0
  taskQueue: zigflow
  workflowType: probe
  version: 0.0.1
"""


def document(tasks: str) -> dict[str, Any]:
    """A validated Zigflow document of HEADER and `tasks` (YAML from `do:` on)."""
    return loader.load_text(HEADER + tasks)


async def start(
    client: Client, task_queue: str, document: dict[str, Any], workflow_input: Any = None
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        DslWorkflow.run,
        DslRunInput(document, workflow_input, "zigflow"),
        id=f"zf-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def run(
    client: Client,
    task_queue: str,
    document: dict[str, Any],
    workflow_input: Any = None,
    timeout: float = 30,
    **worker_options: Any,
) -> tuple[Any, WorkflowHandle[Any, Any]]:
    """Runs `document` to its end on a worker of this process (`worker_options` go to
    build_worker); its result and its handle. Raises WorkflowFailureError when it fails."""
    async with build_worker(
        client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES, **worker_options
    ):
        handle = await start(client, task_queue, document, workflow_input)
        return await asyncio.wait_for(handle.result(), timeout), handle


async def failure(
    client: Client, task_queue: str, document: dict[str, Any], **worker_options: Any
) -> str:
    """The failure that ends `document`'s run, as text (the run must fail)."""
    try:
        await run(client, task_queue, document, **worker_options)
    except WorkflowFailureError as failed:
        return str(failed.cause)
    raise AssertionError("the run did not fail")
