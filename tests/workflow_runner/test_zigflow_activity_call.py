"""Zigflow's activity-call example, unchanged: its `call: activity` tasks run on an activity
worker of another task queue (`activity-call-worker`), as upstream's e2e test runs the example's
Go worker beside Zigflow. Here the worker is a Python port of examples/activity-call/worker
(the same activity names and shapes); the result is checked as upstream checks it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner.scenarios import FAKE_AGENT_ACTIVITIES
from tests.workflow_runner.test_zigflow_fixtures import EXPECTATIONS, FIXTURES, mismatches

pytestmark = pytest.mark.timeout(60)


@activity.defn(name="activitycall.FetchProfile")
async def fetch_profile(user_id: str, request_id: str) -> dict[str, Any]:
    return {
        "userId": user_id,
        "requestId": request_id,
        "tier": "gold",
        "visits": 7,
        "metadata": {"lastLogin": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


@activity.defn(name="activitycall.GenerateWelcome")
async def generate_welcome(profile: dict[str, Any]) -> dict[str, str]:
    message = (
        f"Welcome back {profile['userId']}! Your tier is {profile['tier']} and you've visited "
        f"{int(profile['visits'])} times."
    )
    return {"message": message, "tier": profile["tier"]}


async def test_activity_call_runs_on_the_other_workers_task_queue(temporal_client: Client) -> None:
    entry = next(e for e in EXPECTATIONS if e["fixture"] == "zigflow/activity-call/workflow.yaml")
    document = loader.load_file(FIXTURES / entry["fixture"], "zigflow")
    task_queue = f"zigflow-activity-call-{uuid.uuid4()}"
    activities = Worker(
        temporal_client,
        task_queue="activity-call-worker",  # The document names it.
        activities=[fetch_profile, generate_welcome],
    )
    async with (
        activities,
        build_worker(temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES),
    ):
        handle = await temporal_client.start_workflow(
            DslWorkflow.run,
            DslRunInput(document, entry["input"], "zigflow", entry["workflow_type"]),
            id=f"zigflow-activity-call-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(handle.result(), 40)
    assert mismatches(entry["expected_output"], result) == [], result
    assert result["message"] == "Welcome back u-123! Your tier is gold and you've visited 7 times."
    assert result["profile"]["requestId"] == result["workflowId"]  # The uuid the set task drew.


# examples/agentic-workflow: its activity worker (agent.*) with the answers upstream's mock model
# gives (e2e_test.go: the planner looks up first, then answers; the lookup states the fact).
MOCK_LOOKUP_ANSWER = "Paris is the capital of France."
MOCK_FINAL_ANSWER = "The capital of France is Paris, which has five letters."


@activity.defn(name="agent.PlanNextStep")
async def plan_next_step(request: dict[str, Any]) -> dict[str, Any]:
    if not request.get("observations"):
        return {"tool": "lookup", "arguments": {"query": "capital of France"}}
    return {"tool": "final_answer", "arguments": {"answer": MOCK_FINAL_ANSWER}}


@activity.defn(name="agent.Lookup")
async def lookup(request: dict[str, Any]) -> dict[str, Any]:
    return {"answer": MOCK_LOOKUP_ANSWER, "source": "ollama:mock-model"}


@activity.defn(name="agent.SummarisePartialResult")
async def summarise_partial_result(request: dict[str, Any]) -> dict[str, Any]:
    observations = request.get("observations") or []
    answer = (
        f"I could not complete the agent loop, but I gathered {len(observations)} "
        f"observation(s) for: {request['question']}"
    )
    return {"answer": answer}


async def test_the_agentic_example_loops_routes_to_its_workflows_and_answers(
    temporal_client: Client,
) -> None:
    entry = next(
        e for e in EXPECTATIONS if e["fixture"] == "zigflow/agentic-workflow/workflow.yaml"
    )
    document = loader.load_file(FIXTURES / entry["fixture"], "zigflow")
    task_queue = f"zigflow-agentic-{uuid.uuid4()}"
    activities = Worker(
        temporal_client,
        task_queue="agent-worker",  # The document names it.
        activities=[plan_next_step, lookup, summarise_partial_result],
    )
    async with (
        activities,
        build_worker(temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES),
    ):
        handle = await temporal_client.start_workflow(
            DslWorkflow.run,
            DslRunInput(document, entry["input"], "zigflow", entry["workflow_type"]),
            id=f"zigflow-agentic-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(handle.result(), 40)
    assert mismatches(entry["expected_output"], result) == [], result
    for fragment in entry["output_must_not_contain"]:
        assert fragment not in json.dumps(result)
