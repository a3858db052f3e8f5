"""Small Zigflow-dialect documents for the tests: a header, and a run started on the dev server."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import DslWorkflow

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
