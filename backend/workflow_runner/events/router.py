"""The event router: consumes the stream durably and hands each event to the workflows it routes to.

Exactly-once is decided here and in the listening workflow together. The router's consumer is
durable (`ROUTER_CONSUMER`), so events published while no router runs wait in the stream, and a
router killed at any point (kill -9) redelivers whatever it had not acknowledged. An event is
acknowledged only after every signal and start it routes to was accepted by Temporal; a failure
naks it (redelivery with a growing delay). A redelivered event may therefore signal a listener
twice: the workflow drops an event id it has already seen (contract.py). A start uses the id
`<schedule_id>-<event id>` with REJECT_DUPLICATE, so a redelivered event starts nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import api
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from backend.workflow_runner import metrics
from backend.workflow_runner.events import contract, registrations
from backend.workflow_runner.events.broker import Broker
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import WORKFLOW_NAME

ROUTER_CONSUMER = "stigmer-router"
DEFAULT_ACK_WAIT_SECONDS = 30.0
FETCH_BATCH = 64
MAX_NAK_DELAY_SECONDS = 30.0

log = structlog.get_logger(__name__)


def consumer_config(name: str, ack_wait: float) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=name,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=1000,
    )


@dataclasses.dataclass
class Router:
    broker: Broker
    temporal: Client
    view: registrations.RegistrationView
    ack_wait: float = DEFAULT_ACK_WAIT_SECONDS
    consumer: str = ROUTER_CONSUMER
    _clients: dict[str, Client] = dataclasses.field(default_factory=dict)

    def client(self, namespace: str) -> Client:
        """A client of `namespace` over the same connection."""
        if namespace == self.temporal.namespace:
            return self.temporal
        if namespace not in self._clients:
            config: Any = {**self.temporal.config(), "namespace": namespace}
            self._clients[namespace] = Client(**config)
        return self._clients[namespace]

    async def run(self, stop: asyncio.Event) -> None:
        """Routes events until `stop` is set."""
        config = consumer_config(self.consumer, self.ack_wait)
        # Creates the durable consumer, or updates an existing one's settings (its position
        # in the stream stays).
        await self.broker.js.add_consumer(contract.STREAM, config)
        subscription = await self.broker.js.pull_subscribe_bind(self.consumer, contract.STREAM)
        log.info("router started", consumer=self.consumer, stream=contract.STREAM)
        while not stop.is_set():
            try:
                messages = await subscription.fetch(FETCH_BATCH, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either.
                continue
            await self.view.caught_up()
            for message in messages:
                await self.handle(message)
        await subscription.unsubscribe()

    async def handle(self, message: Msg) -> None:
        sequence = message.metadata.sequence.stream
        try:
            event = json.loads(message.data)
            event_type = str(event["type"])
        except (ValueError, KeyError, TypeError):
            # Only the backbone's own normalize path publishes; a foreign writer's message can
            # never be delivered, so it is not redelivered either.
            log.warning("unreadable event in the stream", sequence=sequence)
            await message.term()
            return
        listeners, starts = self.view.routing(event_type)
        outcomes = await asyncio.gather(
            *(self._signal(listener, event, sequence) for listener in listeners),
            *(self._start(start, event) for start in starts),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            delay = min(2.0 ** (message.metadata.num_delivered or 1), MAX_NAK_DELAY_SECONDS)
            log.warning(
                "event not delivered; redelivering",
                event_id=event.get("id"),
                sequence=sequence,
                failed=len(failures),
                error=type(failures[0]).__name__,
                delay_seconds=delay,
            )
            await message.nak(delay=delay)
            return
        await message.ack()

    async def _signal(
        self, listener: contract.ListenerRegistration, event: dict[str, Any], sequence: int
    ) -> None:
        handle = self.client(listener.namespace).get_workflow_handle(listener.workflow_id)
        delivered = contract.DeliveredEvent(listener.listener_id, event, sequence)
        try:
            await handle.signal(contract.EVENT_SIGNAL, delivered)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # The workflow ended (or never was): nobody listens there any more.
            log.info(
                "listener's workflow is gone; unregistering",
                workflow_id=listener.workflow_id,
                listener_id=listener.listener_id,
            )
            await registrations.delete_listener(
                self.broker.registrations, listener.workflow_id, listener.listener_id
            )
            return
        metrics.events_delivered.labels("signal").inc()

    async def _start(self, start: contract.StartRegistration, event: dict[str, Any]) -> None:
        workflow_id = f"{start.schedule_id}-{event['id']}"
        try:
            await self.client(start.namespace).start_workflow(
                WORKFLOW_NAME,
                # The input is the list of consumed events, as the specification's example
                # reads it (`$workflow.input[0].data`): one event per start.
                DslRunInput(start.document, [event]),
                id=workflow_id,
                task_queue=start.task_queue,
                # A closed run of this id counts too: a redelivered event starts nothing twice.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            metrics.events_deduplicated.inc()
            return
        metrics.events_delivered.labels("start").inc()
        log.info("workflow started by an event", workflow_id=workflow_id)


async def run_router(
    broker: Broker,
    temporal: Client,
    stop: asyncio.Event,
    ack_wait: float = DEFAULT_ACK_WAIT_SECONDS,
    consumer: str = ROUTER_CONSUMER,
) -> None:
    """Runs a router over `broker` until `stop`: the registrations view, then the consumer."""
    view = registrations.RegistrationView(broker.registrations)
    await view.start()
    try:
        await Router(broker, temporal, view, ack_wait, consumer).run(stop)
    finally:
        await view.stop()
