"""The delivery window and exactly-once per listener, end to end (DslWorkflow, real NATS, router).

The line (docs/events.md, "Delivery window"): a listen task receives the events published after
its registration took effect (sequence above the `since_sequence` register_listener returned),
and no older one, even when a router that was behind routes the older one to it. No sleeps
decide either side: the test publishes before the workflow starts, or after the workflow's
history shows the registration completed, and starts a router only after both.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client

from backend.workflow_runner.events import broker as broker_module
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
