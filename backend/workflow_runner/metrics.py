"""The runner's Prometheus metrics (one registry per process), served when the worker asks."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

AGENT_CALL_OUTCOMES = ("created", "agent_not_found", "error")

agent_calls = Counter(
    "workflow_runner_agent_calls",
    "Agent calls started by the call_agent activity, by outcome: `created` (the execution "
    "exists and the activity waits for its callback), `agent_not_found`, `error` (the service "
    "could not be reached or refused; retried when transient).",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in AGENT_CALL_OUTCOMES:
    agent_calls.labels(_outcome)

agent_call_create_seconds = Histogram(
    "workflow_runner_agent_call_create_seconds",
    "Time the call_agent activity took to resolve the agent and create the execution.",
    registry=REGISTRY,
)

agent_calls_cancelled = Counter(
    "workflow_runner_agent_calls_cancelled",
    "Agent executions cancelled because their calling workflow went away.",
    registry=REGISTRY,
)
