"""A Zigflow document's `schedule` as a Temporal Schedule (Zigflow's schedules.go): `every` and
`cron` together in one spec, the id `metadata.scheduleId` (default `zigflow_<workflowType>`),
the workflow `metadata.scheduleWorkflowName`, the input `metadata.scheduleInput` (a list, as
Zigflow's arguments; its first item is the run's input) evaluated with `$env`. Zigflow starts
these when its worker starts; here `workflow-runner schedule apply FILE` does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

from backend.workflow_runner import workflow_env
from backend.workflow_runner.dsl import durations, expressions
from backend.workflow_runner.dsl.dialects import zigflow
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import WORKFLOW_NAME


class ScheduleError(ValueError):
    """The document's schedule cannot be made (the message names the field)."""


def schedule_id(document: dict[str, Any]) -> str:
    block = zigflow.normalized(document)["document"]
    return str(
        (block.get("metadata") or {}).get("scheduleId") or f"zigflow_{block['workflowType']}"
    )


def temporal_schedule(document: dict[str, Any], task_queue: str) -> Schedule:
    normalized = zigflow.normalized(document)
    metadata = normalized["document"].get("metadata") or {}
    written = normalized["schedule"]
    for unsupported in ("after", "on"):
        if unsupported in written:
            raise ScheduleError(f"schedule.{unsupported} is not supported in the Zigflow dialect")
    workflow_type = metadata.get("scheduleWorkflowName")
    if not isinstance(workflow_type, str) or not workflow_type:
        raise ScheduleError(
            "document.metadata.scheduleWorkflowName: the workflow to start is required"
        )
    try:
        zigflow.select(normalized, workflow_type)
    except KeyError as unknown:
        raise ScheduleError(f"document.metadata.scheduleWorkflowName: {unknown.args[0]}") from None
    arguments = metadata.get("scheduleInput", [])
    if not isinstance(arguments, list):
        raise ScheduleError("document.metadata.scheduleInput must be a list")
    env = workflow_env.of_this_process()
    try:
        arguments = expressions.evaluate_value(arguments, None, {"env": env})
    except expressions.ExpressionError as error:
        raise ScheduleError(f"document.metadata.scheduleInput: {error}") from None
    spec = ScheduleSpec(
        intervals=(
            [ScheduleIntervalSpec(every=timedelta(seconds=durations.to_seconds(written["every"])))]
            if "every" in written
            else []
        ),
        cron_expressions=[written["cron"]] if "cron" in written else [],
    )
    action = ScheduleActionStartWorkflow(
        WORKFLOW_NAME,
        DslRunInput(document, arguments[0] if arguments else None, "zigflow", workflow_type),
        id=schedule_id(document),
        task_queue=task_queue,
    )
    return Schedule(action=action, spec=spec)
