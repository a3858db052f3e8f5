"""The event activities a DSL workflow calls: publish an event, register and unregister a listener.

They are registered on every runner worker. The NATS connection is opened on the first call, so
a worker without NATS_URL runs every workflow that uses no events; a workflow that does gets a
non-retryable `EventsNotConfigured` failure naming the variable, rather than a worker that
refuses to start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from backend.workflow_runner import metrics
from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events import contract, registrations
from backend.workflow_runner.events.cloudevent import InvalidEventError

NOT_CONFIGURED_ERROR = "EventsNotConfigured"
INVALID_EVENT_ERROR = "InvalidEvent"
# A registration's backlog travels in its activity result: well under Temporal's payload limit.
BACKLOG_MAX_BYTES = 512 * 1024


class EventActivities:
    """The activities over one lazily opened broker connection."""

    def __init__(self, settings: broker_module.BrokerSettings | None) -> None:
        self._settings = settings
        self._broker: broker_module.Broker | None = None
        self._lock = asyncio.Lock()

    async def broker(self) -> broker_module.Broker:
        if self._settings is None:
            raise ApplicationError(
                f"events are not configured on this worker: set {broker_module.URL_ENV}",
                type=NOT_CONFIGURED_ERROR,
                non_retryable=True,
            )
        async with self._lock:
            if self._broker is None:
                self._broker = await broker_module.connect(self._settings, "workflow-runner worker")
            return self._broker

    async def close(self) -> None:
        if self._broker is not None:
            await self._broker.close()
            self._broker = None

    @activity.defn(name=contract.PUBLISH_EVENT_ACTIVITY)
    async def publish_event(
        self, publish: contract.PublishEventInput
    ) -> contract.PublishEventOutput:
        broker = await self.broker()
        try:
            published = await broker.publish(publish.event)
        except InvalidEventError as invalid:
            metrics.events_published.labels("invalid").inc()
            raise ApplicationError(
                f"not a valid CloudEvent: {invalid}", type=INVALID_EVENT_ERROR, non_retryable=True
            ) from None
        record_publish(published)
        return published

    @activity.defn(name=contract.REGISTER_LISTENER_ACTIVITY)
    async def register_listener(
        self, registration: contract.ListenerRegistration
    ) -> contract.RegisterListenerOutput:
        broker = await self.broker()
        await registrations.put_listener(broker.registrations, registration)
        # Read after the put: an event with a later sequence was published after the
        # registration existed, so the router routes it here.
        since = await broker.last_sequence()
        after, horizon = registration.replay_after, None
        if after is None and registration.replay_since:
            # A run that has seen nothing of the stream: its horizon is where the stream was
            # when it started (the first event stamped at or after then, less one).
            first = await broker.first_sequence_since(registration.replay_since)
            after = horizon = since if first is None else min(first - 1, since)
        if after is None:
            return contract.RegisterListenerOutput(since_sequence=since)
        # Older ones, back to the workflow's horizon, the router may have passed before the
        # registration existed: they come back in the answer (the workflow drops repeats).
        found, more = await broker.replay(after, since, registration.types, BACKLOG_MAX_BYTES)
        backlog = [
            contract.DeliveredEvent(registration.listener_id, event, sequence)
            for sequence, event in found
        ]
        return contract.RegisterListenerOutput(since, backlog, more, horizon)

    @activity.defn(name=contract.UNREGISTER_LISTENER_ACTIVITY)
    async def unregister_listener(self, registration: contract.ListenerRegistration) -> None:
        broker = await self.broker()
        await registrations.delete_listener(
            broker.registrations, registration.workflow_id, registration.listener_id
        )

    def all(self) -> list[Callable[..., Any]]:
        return [self.publish_event, self.register_listener, self.unregister_listener]


def record_publish(published: contract.PublishEventOutput) -> None:
    """Counts one publish, wherever it came from."""
    if published.duplicate:
        metrics.events_published.labels("duplicate").inc()
        metrics.events_deduplicated.inc()
    else:
        metrics.events_published.labels("published").inc()
