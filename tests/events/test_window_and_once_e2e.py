"""The delivery window and exactly-once per listener, end to end (DslWorkflow, real NATS, router).

The line (docs/events.md, "Delivery window"): a listen task receives the events published after
the workflow's horizon (the last stream position it saw: its latest emit, consumed event or
registration) or, when it has seen none, after the run started; no older one, even
when a router that was behind routes it there. No sleeps decide either side: the test publishes
before the workflow starts, while its registration is held, or after the workflow's history
shows the registration completed, and starts a router only after that.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client

from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events import contract
from backend.workflow_runner.events.activities import EventActivities
from backend.workflow_runner.worker import build_worker
from tests.events.dsl_events import (
    cloud_event,
    publish_all,
    registered,
    router_idle,
    signalled_event_ids,
    start,
)
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(90)


def listen_document(event_type: str, until: str) -> dict[str, Any]:
    return scenarios.inline(
        f"""
do:
  - wait_for_it:
      listen:
        to:
          any:
            - with:
                type: {event_type}
          until: '{until}'
"""
    )


def new_consumer() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.mark.usefixtures("dsl_worker")
async def test_an_event_before_the_listen_is_not_delivered_one_after_it_is(
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    start_router: Callable[..., Any],
) -> None:
    kind = f"test.window.{uuid.uuid4().hex}"
    before = cloud_event(kind, {"side": "before"})
    after = cloud_event(kind, {"side": "after"})
    await publish_all(broker, [before])  # The workflow does not exist yet.
    handle = await start(temporal_client, task_queue, listen_document(kind, "${ true }"))
    await registered(handle)
    await publish_all(broker, [after])  # The registration has completed.
    # A router that was behind all along: it routes both events, in stream order, to the
    # listener registered now.
    consumer = new_consumer()
    start_router(consumer=consumer)
    output = await asyncio.wait_for(handle.result(), 30)
    assert output == [{"side": "after"}]
    await router_idle(broker, consumer)
    # `before` did reach the workflow, first, and was dropped by the window, not by routing.
    assert await signalled_event_ids(handle) == [before["id"], after["id"]]


@pytest.mark.usefixtures("dsl_worker")
async def test_a_redelivered_or_republished_event_is_consumed_once(
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    start_router: Callable[..., Any],
) -> None:
    kind = f"test.once.{uuid.uuid4().hex}"
    events = [cloud_event(kind, {"n": n}) for n in range(3)]
    handle = await start(
        temporal_client, task_queue, listen_document(kind, "${ (. | length) == 3 }")
    )
    await registered(handle)
    await publish_all(broker, events[:2])
    # The same id published again: the stream stores it once.
    again = await broker.publish(events[0])
    assert again.duplicate
    first = new_consumer()
    start_router(consumer=first)
    await router_idle(broker, first)
    # A second consumer redelivers both events to the same listener, as a router killed after
    # signalling and before acknowledging would.
    second = new_consumer()
    start_router(consumer=second)
    await router_idle(broker, second)
    await publish_all(broker, events[2:])
    output = await asyncio.wait_for(handle.result(), 30)
    assert output == [{"n": 0}, {"n": 1}, {"n": 2}]
    signalled = await signalled_event_ids(handle)
    assert signalled[:4] == [events[0]["id"], events[1]["id"]] * 2
    assert set(signalled[4:]) == {events[2]["id"]}


class HeldRegistrations(EventActivities):
    """The real activities, with each registration held until the test lets it go."""

    def __init__(self, settings: broker_module.BrokerSettings) -> None:
        super().__init__(settings)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @activity.defn(name=contract.REGISTER_LISTENER_ACTIVITY)
    async def register_listener(
        self, registration: contract.ListenerRegistration
    ) -> contract.RegisterListenerOutput:
        self.entered.set()
        await self.release.wait()
        return await super().register_listener(registration)


async def test_a_reply_to_an_emit_published_before_the_listen_registered_is_delivered(
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    settings: broker_module.BrokerSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(broker_module.URL_ENV, settings.url)
    asked, reply = (f"test.horizon.{uuid.uuid4().hex}" for _ in range(2))
    document = scenarios.inline(
        f"""
do:
  - ask:
      emit: {{event: {{with: {{source: /tests, type: {asked}}}}}}}
  - answer:
      listen: {{to: {{one: {{with: {{type: {reply}}}}}}}}}
"""
    )
    stale = cloud_event(reply, {"answer": "stale"})
    await publish_all(broker, [stale])  # Before the workflow: behind its horizon.
    held = HeldRegistrations(settings)
    async with build_worker(temporal_client, task_queue, agent_activities=[], events=held):
        handle = await start(temporal_client, task_queue, document)
        await asyncio.wait_for(held.entered.wait(), 30)  # The emit is done; the listen began.
        quick = cloud_event(reply, {"answer": "quick"})
        await publish_all(broker, [quick])  # A responder faster than the registration.
        held.release.set()
        # No router runs: the registration's backlog (events after the emit) brings it.
        output = await asyncio.wait_for(handle.result(), 30)
    await held.close()
    assert output == [{"answer": "quick"}]


async def test_an_event_after_the_run_started_but_before_its_listen_registered_is_delivered(
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    settings: broker_module.BrokerSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run whose first task is the listen: its horizon is the stream at the run's start, so
    an event that arrives just before the listen registered is not lost (and one from before
    the run is not taken)."""
    monkeypatch.setenv(broker_module.URL_ENV, settings.url)
    kind = f"test.start.{uuid.uuid4().hex}"
    await publish_all(broker, [cloud_event(kind, {"answer": "before the run"})])
    held = HeldRegistrations(settings)
    async with build_worker(temporal_client, task_queue, agent_activities=[], events=held):
        handle = await start(temporal_client, task_queue, listen_document(kind, "${ true }"))
        await asyncio.wait_for(held.entered.wait(), 30)  # The run started; the listen began.
        await publish_all(broker, [cloud_event(kind, {"answer": "just before"})])
        held.release.set()
        # No router runs: the registration's backlog (events since the run started) brings it.
        output = await asyncio.wait_for(handle.result(), 30)
    await held.close()
    assert output == [{"answer": "just before"}]


async def test_a_backlog_over_its_bound_comes_in_pages(broker: broker_module.Broker) -> None:
    kind = f"test.pages.{uuid.uuid4().hex}"
    start_at = await broker.last_sequence()
    events = [cloud_event(kind, {"n": n}) for n in range(3)]
    await publish_all(broker, [events[0], cloud_event(f"{kind}.other"), *events[1:]])
    until = await broker.last_sequence()
    pages: list[list[int]] = []
    after, more = start_at, True
    while more:
        found, more = await broker.replay(after, until, [kind], max_bytes=1)
        pages.append([event["data"]["n"] for _, event in found])
        after = found[-1][0]
    # One event a page (each is over the bound alone), the other type skipped.
    assert pages == [[0], [1], [2]]
    everything, more = await broker.replay(start_at, until, [], max_bytes=1 << 20)
    assert len(everything) == 4 and not more
