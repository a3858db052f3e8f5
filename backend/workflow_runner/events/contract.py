"""The contract between a workflow that listens or emits and the event backbone (issue 16).

Events are CloudEvents 1.0 in structured JSON form (attributes and `data` in one object), kept
in one NATS JetStream stream. A DSL workflow never talks to NATS: it publishes through the
`publish_event` activity, and it hears events as Temporal signals (`EVENT_SIGNAL`) sent by the
event router, which consumes the stream durably and signals every workflow whose registered
listener routes the event's `type`. The workflow applies the listen task's full filter
(attributes, expressions, correlation) itself, deterministically, and drops an event id it has
already seen, so a redelivered event is handled at most once per listener.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# The DslWorkflow signal that delivers one event to one of its listeners.
EVENT_SIGNAL = "stigmer_event"
# The stream of every event, and the subjects it holds: `<prefix><type with unsafe chars as _>`.
STREAM = "STIGMER_EVENTS"
SUBJECT_PREFIX = "stigmer.events."
# Activity names (registered on the runner's worker by the backbone).
PUBLISH_EVENT_ACTIVITY = "publish_event"
REGISTER_LISTENER_ACTIVITY = "register_listener"
UNREGISTER_LISTENER_ACTIVITY = "unregister_listener"


@dataclasses.dataclass
class PublishEventInput:
    # A structured CloudEvent: specversion, id, source, type (required), time, subject,
    # datacontenttype, dataschema, data, and extension attributes, as the DSL's `emit` built it
    # (expressions already evaluated). `id` is set by the workflow and is the same on every
    # retry, so the stream deduplicates a repeated publish (Nats-Msg-Id).
    event: dict[str, Any]


@dataclasses.dataclass
class PublishEventOutput:
    id: str
    sequence: int  # The event's sequence in the stream.
    duplicate: bool  # The stream already had this id: nothing was published again.


@dataclasses.dataclass
class ListenerRegistration:
    """A listen task waiting for events: the router signals `workflow_id` (its current run)
    with every event whose `type` is one of `types` (every type when empty)."""

    workflow_id: str
    listener_id: str  # Unique within the workflow run: the task's path (and iteration).
    types: list[str]
    namespace: str = "default"
    # The workflow's horizon (docs/events.md, "Delivery window"): the stream sequence it had
    # seen last when the listen task started (its latest emit, consumed event or registration).
    # register_listener returns the routed events after it that the router may have passed
    # before the registration existed. None: the window opens at the registration.
    replay_after: int | None = None
    # For a run without a horizon: when it started (RFC 3339). Its horizon is then the stream's
    # position at that time, so an event published after the run started and before its listen
    # registered is not lost.
    replay_since: str | None = None


@dataclasses.dataclass
class DeliveredEvent:
    """The payload of EVENT_SIGNAL."""

    listener_id: str
    event: dict[str, Any]  # The structured CloudEvent as published.
    sequence: int  # Its sequence in the stream.


@dataclasses.dataclass
class RegisterListenerOutput:
    # The stream's last sequence when the registration took effect: every event after it that
    # the registration routes reaches the listener.
    since_sequence: int
    # The routed events after `replay_after`, up to `since_sequence`, oldest first (bounded:
    # `more` says the workflow registers again with `replay_after` at the last one returned).
    backlog: list[DeliveredEvent] = dataclasses.field(default_factory=list)
    more: bool = False
    # The horizon `replay_since` resolved to (None without one): the window's floor.
    horizon: int | None = None


@dataclasses.dataclass
class StartRegistration:
    """An event-driven schedule (`schedule.on`): the router starts `document` as a DslWorkflow,
    once per matching event, with the workflow id `<schedule_id>-<event id>`, so a redelivered
    event starts nothing twice."""

    schedule_id: str
    types: list[str]  # Routing, as for listeners; the document's `on` filter decides the rest.
    document: dict[str, Any]
    task_queue: str
    namespace: str = "default"
