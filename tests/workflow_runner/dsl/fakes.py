"""Fake task runners for driving the interpreter without Temporal."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from backend.workflow_runner.agent_call.models import CallAgentInput
from backend.workflow_runner.dsl import loader
from backend.workflow_runner.event_inbox import EventInbox
from backend.workflow_runner.events.contract import DeliveredEvent
from backend.workflow_runner.interpreter import Interpreter
from backend.workflow_runner.models import ActivityCallInput, HttpCallInput, RunProcessInput

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclasses.dataclass
class FakeRunners:
    """Records every side effect; `agent` and `http` decide the results."""

    agent: Callable[[CallAgentInput], dict[str, Any]] | None = None
    http: Callable[[HttpCallInput], Any] | None = None
    sleeps: list[float] = dataclasses.field(default_factory=list)
    agent_calls: list[CallAgentInput] = dataclasses.field(default_factory=list)
    http_calls: list[HttpCallInput] = dataclasses.field(default_factory=list)
    # Events: `incoming` is delivered (in order) to each listener when it opens.
    incoming: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    inbox: EventInbox = dataclasses.field(default_factory=EventInbox)
    published: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    registered: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)
    closed: list[str] = dataclasses.field(default_factory=list)
    event_ids: int = 0

    async def call_http(self, call: HttpCallInput) -> Any:
        self.http_calls.append(call)
        assert self.http is not None
        return self.http(call)

    async def call_agent(self, call: CallAgentInput) -> dict[str, Any]:
        self.agent_calls.append(call)
        assert self.agent is not None
        return self.agent(call)

    # The Zigflow dialect's side effects: these fakes run standard documents only.

    async def call_activity(self, call: ActivityCallInput) -> Any:
        raise AssertionError(f"unexpected call: activity {call.name}")

    async def run_process(self, call: RunProcessInput) -> Any:
        raise AssertionError("unexpected run task")

    async def upsert_search_attributes(self, attributes: dict[str, Any], path: str) -> None:
        raise AssertionError("unexpected search attributes")

    def history_length(self) -> int:
        return 0

    def continue_as_new_suggested(self) -> bool:
        return False

    async def wait_condition(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        return ready()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def now(self) -> datetime:
        return START

    def new_event_id(self) -> str:
        self.event_ids += 1
        return f"event-{self.event_ids}"

    async def publish_event(self, event: dict[str, Any]) -> None:
        self.published.append(event)

    async def open_listener(self, listener_id: str, types: list[str]) -> None:
        self.inbox.open(listener_id)
        self.registered.append((listener_id, types))
        for event in self.incoming:
            self.inbox.deliver(DeliveredEvent(listener_id, event, 0))

    async def next_event(self, listener_id: str) -> dict[str, Any]:
        return await self.inbox.next(listener_id)

    async def close_listener(self, listener_id: str) -> None:
        self.inbox.close(listener_id)
        self.closed.append(listener_id)


def document(text: str) -> dict[str, Any]:
    """A validated document from YAML; `do:` may be given alone, the header is added."""
    data = yaml.safe_load(text)
    data.setdefault("document", {"dsl": "1.0.0", "namespace": "test", "name": "t", "version": "1"})
    problems = loader.validate(data)
    assert not problems, problems
    return dict(data)


async def run(text: str, workflow_input: Any = None, runners: FakeRunners | None = None) -> Any:
    return await Interpreter(document(text), runners or FakeRunners(), "wf-1").run(workflow_input)
