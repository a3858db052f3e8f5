"""The runner's Prometheus metrics (one registry per process), served when the worker asks."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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

# Events (issue 16). The publish counters move in whichever process publishes (the worker's
# publish_event activity, `workflow-runner emit`, the ingress); delivery and the waiting gauge
# in the router process (`workflow-runner router`).
EVENT_PUBLISH_OUTCOMES = ("published", "duplicate", "invalid")

events_published = Counter(
    "workflow_runner_events_published",
    "Events offered to the stream, by outcome: `published` (stored), `duplicate` (the stream "
    "already had the id: stored once), `invalid` (not a well-formed CloudEvent: refused).",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in EVENT_PUBLISH_OUTCOMES:
    events_published.labels(_outcome)

EVENT_DELIVERY_KINDS = ("signal", "start")

events_delivered = Counter(
    "workflow_runner_events_delivered",
    "Events the router handed over, by kind: `signal` (accepted by a listening workflow), "
    "`start` (a workflow started by an event-driven schedule).",
    ["kind"],
    registry=REGISTRY,
)
for _kind in EVENT_DELIVERY_KINDS:
    events_delivered.labels(_kind)

events_deduplicated = Counter(
    "workflow_runner_events_deduplicated",
    "Repeats recognised by the backbone: a publish of an id the stream already had, or a "
    "redelivered event whose start had already started its workflow.",
    registry=REGISTRY,
)

event_listeners_waiting = Gauge(
    "workflow_runner_event_listeners_waiting",
    "Listener registrations the router currently routes to (0 outside the router process).",
    registry=REGISTRY,
)
