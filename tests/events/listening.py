"""A test workflow that listens the way a DSL `listen` does: register, take signals, drop repeats."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from backend.workflow_runner.events import contract

FINISH_SIGNAL = "finish"
RECORD_QUERY = "record"


@dataclasses.dataclass
class ListenArgs:
    types: list[str]
    listener_id: str = "listen-1"


@dataclasses.dataclass
class Record:
    """What the workflow got: each event id once, in order, and how many signals brought them."""

    event_ids: list[str] = dataclasses.field(default_factory=list)
    signals: int = 0
    since_sequence: int = -1


@workflow.defn(name="EventListeningTest")
class ListeningWorkflow:
    def __init__(self) -> None:
        self.record = Record()
        self.finished = False

    @workflow.run
    async def run(self, args: ListenArgs) -> Record:
        registration = contract.ListenerRegistration(
            workflow_id=workflow.info().workflow_id,
            listener_id=args.listener_id,
            types=args.types,
        )
        registered = await workflow.execute_activity(
            contract.REGISTER_LISTENER_ACTIVITY,
            registration,
            start_to_close_timeout=timedelta(seconds=30),
            result_type=contract.RegisterListenerOutput,
        )
        self.record.since_sequence = registered.since_sequence
        await workflow.wait_condition(lambda: self.finished)
        await workflow.execute_activity(
            contract.UNREGISTER_LISTENER_ACTIVITY,
            registration,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return self.record

    @workflow.signal(name=contract.EVENT_SIGNAL)
    def on_event(self, delivered: contract.DeliveredEvent) -> None:
        self.record.signals += 1
        event_id: Any = delivered.event.get("id")
        if event_id not in self.record.event_ids:
            self.record.event_ids.append(event_id)

    @workflow.signal(name=FINISH_SIGNAL)
    def finish(self) -> None:
        self.finished = True

    @workflow.query(name=RECORD_QUERY)
    def current(self) -> Record:
        return self.record
