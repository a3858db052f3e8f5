"""Fake task runners for driving the interpreter without Temporal."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from backend.workflow_runner.agent_call.models import CallAgentInput
from backend.workflow_runner.dsl import loader
from backend.workflow_runner.interpreter import Interpreter
from backend.workflow_runner.models import HttpCallInput

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclasses.dataclass
class FakeRunners:
    """Records every side effect; `agent` and `http` decide the results."""

    agent: Callable[[CallAgentInput], dict[str, Any]] | None = None
    http: Callable[[HttpCallInput], Any] | None = None
    sleeps: list[float] = dataclasses.field(default_factory=list)
    agent_calls: list[CallAgentInput] = dataclasses.field(default_factory=list)
    http_calls: list[HttpCallInput] = dataclasses.field(default_factory=list)

    async def call_http(self, call: HttpCallInput) -> Any:
        self.http_calls.append(call)
        assert self.http is not None
        return self.http(call)

    async def call_agent(self, call: CallAgentInput) -> dict[str, Any]:
        self.agent_calls.append(call)
        assert self.agent is not None
        return self.agent(call)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def now(self) -> datetime:
        return START


def document(text: str) -> dict[str, Any]:
    """A validated document from YAML; `do:` may be given alone, the header is added."""
    data = yaml.safe_load(text)
    data.setdefault("document", {"dsl": "1.0.0", "namespace": "test", "name": "t", "version": "1"})
    problems = loader.validate(data)
    assert not problems, problems
    return dict(data)


async def run(text: str, workflow_input: Any = None, runners: FakeRunners | None = None) -> Any:
    return await Interpreter(document(text), runners or FakeRunners(), "wf-1").run(workflow_input)
