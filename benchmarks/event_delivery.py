"""Measurement 4: event delivery through NATS and the router to a DSL `listen`, against a bare
Temporal signal, in two shapes: N events to one workflow, and one event each to N workflows.

Latency of one event: from the driver's clock just before it publishes the event (or sends the
baseline's signal) to the start of the workflow task that got it, read from the workflow's
history: the first WorkflowTaskStarted after the signal that brought it. That start is the
workflow's `workflow.now()` when it consumed the event, and it is stamped by the Temporal
server, which runs on this machine: one clock for both ends, the same reading for both designs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js.errors import NoKeysError
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from backend.workflow_runner.events import registrations
from backend.workflow_runner.models import DslRunInput
from benchmarks import driver, process
from benchmarks.event_stack import PROCESSES, EventRig
from benchmarks.stats import percentile
from benchmarks.workflows import BENCH_SIGNAL, BenchSignalWorkflow
from tests.support.eventually import eventually

ONE_WORKFLOW = "A: N events → 1 workflow"
MANY_WORKFLOWS = "B: 1 event each → N workflows"
DSL = "DSL listen (NATS → router → signal)"
SIGNAL = "bare Temporal signal"
# Concurrent publishes (or signals) of a burst, as the other measurements' starts.
SEND_CONCURRENCY = driver.START_CONCURRENCY
HISTORY_CONCURRENCY = 32
# The paced runs' rate: one both designs sustain in both shapes on two cores (the bursts show
# where they stop), so their latency is delivery, not queueing.
PACED_RATE = 20.0


@dataclasses.dataclass
class EventResult:
    scenario: str
    design: str
    events: int
    rate: float  # events sent per second; 0 for a burst (all at once)
    p50_ms: float
    p99_ms: float
    per_second: float  # events consumed / (last consumed - first sent)
    load: float  # the 1-minute load average when the run started
    cpu_ms_per_event: dict[str, float] = dataclasses.field(default_factory=dict)


def _header(name: str) -> dict[str, str]:
    return {"dsl": "1.0.0", "namespace": "bench", "name": name, "version": "1.0.0"}


def listen_for_many(event_type: str, count: int) -> dict[str, Any]:
    """One listen that consumes `count` events of one type (`any` until the count is reached)."""
    until = f"${{ length >= {count} }}"
    to = {"any": [{"with": {"type": event_type}}], "until": until}
    return {
        "document": _header("listen-many"),
        "do": [{"wait": {"listen": {"to": to, "read": "data"}}}],
    }


def listen_for_one(event_type: str) -> dict[str, Any]:
    """One listen for one event correlated by its `benchkey` attribute with the input's key.

    The type is the workflow's own: the router routes on `type` alone, so a type shared by N
    listeners would signal every one of them with every event (N x N signals)."""
    correlate = {"key": {"from": "${ .benchkey }", "expect": "${ .key }"}}
    to = {"one": {"with": {"type": event_type}, "correlate": correlate}}
    return {
        "document": _header("listen-one"),
        "do": [{"wait": {"listen": {"to": to, "read": "data"}}}],
    }


def _event(event_type: str, index: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/benchmarks/events",
        "type": event_type,
        "benchkey": str(index),
        "data": {"i": index},
    }


async def _send_all(count: int, send: Callable[[int], Awaitable[None]], rate: float) -> None:
    """Sends `count` items: `rate` per second, or all at once (bounded concurrency) for 0."""
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    began = time.monotonic()

    async def one(index: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
        async with gate:
            await send(index)

    await asyncio.gather(*(one(index) for index in range(count)))


def _signalled_id(payload: Any) -> str:
    """The event id a signal carried: a DeliveredEvent from the router, the event itself else."""
    event = payload.get("event", payload)
    return str(event["id"])


async def consumed_at(handle: WorkflowHandle[Any, Any]) -> dict[str, float]:
    """Each signalled event id → the start (epoch seconds) of the first workflow task after it."""
    history = await handle.fetch_history()
    waiting: list[str] = []
    consumed: dict[str, float] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            payload = event.workflow_execution_signaled_event_attributes.input.payloads[0]
            waiting.append(_signalled_id(json.loads(payload.data)))
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = event.event_time.ToNanoseconds() / 1e9
            for event_id in waiting:
                # A redelivered event (a second signal with its id) counts its first arrival.
                consumed.setdefault(event_id, started)
            waiting.clear()
    return consumed


async def _all_consumed(handles: list[WorkflowHandle[Any, Any]]) -> dict[str, float]:
    gate = asyncio.Semaphore(HISTORY_CONCURRENCY)

    async def one(handle: WorkflowHandle[Any, Any]) -> dict[str, float]:
        async with gate:
            return await consumed_at(handle)

    merged: dict[str, float] = {}
    for part in await asyncio.gather(*(one(h) for h in handles)):
        merged.update(part)
    return merged


async def _listeners_registered(rig: EventRig, workflow_ids: list[str]) -> None:
    """Waits until every workflow's listener is in the registrations bucket."""
    # A listener's key is `<prefix of its workflow>.<listener>`; ids are base64url (no dots).
    wanted = {registrations.listener_key(workflow_id, "") for workflow_id in workflow_ids}

    async def registered() -> None:
        try:
            keys = await rig.broker.registrations.keys()
        except NoKeysError:
            keys = []
        present = {key[: key.rindex(".") + 1] for key in keys}
        missing = wanted - present
        assert not missing, f"{len(missing)} listeners not registered yet"

    await eventually(registered, timeout=120 + len(workflow_ids) * 0.2, every=0.2)


async def _start(
    rig: EventRig, ids: list[str], start: Callable[[int, str], Awaitable[WorkflowHandle[Any, Any]]]
) -> list[WorkflowHandle[Any, Any]]:
    return await driver.start_all(len(ids), lambda index: start(index, ids[index]))


async def run(rig: EventRig, scenario: str, design: str, count: int, rate: float) -> EventResult:
    """One scenario in one design: start the waiting workflow(s), send, wait, read histories."""
    run_id = uuid.uuid4().hex[:8]
    workflows = 1 if scenario == ONE_WORKFLOW else count
    types = [f"bench.events.{run_id}.{i if workflows > 1 else 'all'}" for i in range(workflows)]
    ids = [f"events-{run_id}-{i}" for i in range(workflows)]

    async def start(index: int, workflow_id: str) -> WorkflowHandle[Any, Any]:
        if design == SIGNAL:
            expected = count if workflows == 1 else 1
            return await rig.client.start_workflow(
                BenchSignalWorkflow.run, expected, id=workflow_id, task_queue=rig.queue
            )
        document = (
            listen_for_many(types[0], count) if workflows == 1 else listen_for_one(types[index])
        )
        return await rig.client.start_workflow(
            "DslWorkflow",
            DslRunInput(document, {"key": str(index)}),
            id=workflow_id,
            task_queue=rig.queue,
        )

    handles = await _start(rig, ids, start)
    if design == DSL:
        await _listeners_registered(rig, ids)
    # Every workflow waiting and the worker idle: the sends measure delivery, not the starts.
    await process.wait_quiet(rig.worker.pid, threshold=10.0, timeout=120.0)

    events = [_event(types[0 if workflows == 1 else i], i) for i in range(count)]
    sent: dict[str, float] = {}

    async def send(index: int) -> None:
        event = events[index]
        sent[event["id"]] = time.time()
        if design == DSL:
            await rig.broker.publish(event)
        else:
            target = handles[0 if workflows == 1 else index]
            await target.signal(BENCH_SIGNAL, event)

    load = os.getloadavg()[0]
    cpu_before = rig.cpu_seconds()
    await _send_all(count, send, rate)
    await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 120 + count)
    cpu_after = rig.cpu_seconds()
    consumed = await _all_consumed(handles)
    missing = [e["id"] for e in events if e["id"] not in consumed]
    if missing:
        raise AssertionError(f"{len(missing)} of {count} events never reached a workflow")
    latencies_ms = [(consumed[e] - sent[e]) * 1000 for e in sent]
    elapsed = max(consumed[e] for e in sent) - min(sent.values())
    cpu = {name: (cpu_after[name] - cpu_before[name]) * 1000 / count for name in PROCESSES}
    return EventResult(
        scenario,
        design,
        count,
        rate,
        percentile(latencies_ms, 50),
        percentile(latencies_ms, 99),
        count / elapsed,
        load,
        cpu,
    )
