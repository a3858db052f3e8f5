"""Acceptance: a DSL workflow with two agent calls, a switch and a try/catch, on the real service."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import yaml
from temporalio.client import Client

from backend.stigmer_service import app
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow

# The offline model obeys directives in the message: `#reply=<text>` answers the text,
# `#fail=<Type>` fails with that error type.
TRIAGE = yaml.safe_load(
    """
document: {dsl: 1.0.0, namespace: e2e, name: triage, version: 1.0.0}
do:
  - classify:
      call: agent
      with:
        agent: echoer
        org: acme
        message: '${ "Classify. #reply=" + .severity }'
        config: {model: offline/echo, timeout: PT1M}
      output:
        as: '${ {ticket: $input.ticket, category: .output, first: .execution_id} }'
  - route:
      switch:
        - urgent:
            when: ${ .category == "urgent" }
            then: escalate
        - routine:
            then: reply
  - escalate:
      try:
        - page:
            call: agent
            with:
              agent: echoer
              org: acme
              message: '${ "Page about " + .ticket + " #fail=ModelError" }'
            output:
              as: '${ {paged: true} }'
      catch:
        errors:
          with: {type: ModelError}
        as: failure
        do:
          - noteFailure:
              set:
                paged: false
                reason: ${ $failure.type }
      output:
        as: '${ {category: "urgent"} + . }'
      then: end
  - reply:
      call: agent
      with:
        agent: echoer
        org: acme
        message: '${ "Reply to " + .ticket + ". #reply=we are on it" }'
      output:
        as: '${ {category: "routine", reply: .output} }'
"""
)


async def run(client: Client, task_queue: str, service: app.Service, data: Any) -> Any:
    async with build_worker(
        client, task_queue, max_concurrent_activities=2, stigmer_endpoint=service.address
    ):
        handle = await client.start_workflow(
            DslWorkflow.run,
            DslRunInput(TRIAGE, data),
            id=f"triage-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        return await asyncio.wait_for(handle.result(), 60)


async def test_urgent_ticket_switches_to_the_failing_call_and_catches_it(
    temporal_client: Client, task_queue: str, service: app.Service
) -> None:
    result = await run(
        temporal_client, task_queue, service, {"ticket": "site down", "severity": "urgent"}
    )
    assert result == {"category": "urgent", "paged": False, "reason": "ModelError"}


async def test_routine_ticket_switches_to_the_reply_call(
    temporal_client: Client, task_queue: str, service: app.Service
) -> None:
    result = await run(
        temporal_client, task_queue, service, {"ticket": "new email", "severity": "routine"}
    )
    assert result == {"category": "routine", "reply": "we are on it"}
