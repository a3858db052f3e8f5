"""Zigflow's activity-call example, unchanged: its `call: activity` tasks run on an activity
worker of another task queue (`activity-call-worker`), as upstream's e2e test runs the example's
Go worker beside Zigflow. Here the worker is a Python port of examples/activity-call/worker
(the same activity names and shapes); the result is checked as upstream checks it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from tests.workflow_runner.test_zigflow_fixtures import EXPECTATIONS, run_as_upstream

pytestmark = pytest.mark.timeout(60)


async def _run_with(
    client: Client, example: str, activity_queue: str, activities: list[Callable[..., Any]]
) -> Any:
    """Runs the example as upstream does, with `activities` served on the task queue its
    document names; checks and returns its result (test_zigflow_fixtures.run_as_upstream)."""
    entry = next(e for e in EXPECTATIONS if e["fixture"] == f"zigflow/{example}/workflow.yaml")
    async with Worker(client, task_queue=activity_queue, activities=activities):
        return await run_as_upstream(client, entry, f"zigflow-{example}-{uuid.uuid4()}")


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
    result = await _run_with(
        temporal_client, "activity-call", "activity-call-worker", [fetch_profile, generate_welcome]
    )
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
    activities = [plan_next_step, lookup, summarise_partial_result]
    await _run_with(temporal_client, "agentic-workflow", "agent-worker", activities)
