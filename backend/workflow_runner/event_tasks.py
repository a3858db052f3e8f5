"""The `emit` and `listen` tasks: the part of the interpreter that publishes and consumes events.

Deterministic, like the interpreter it belongs to: an event id comes from the runners (backed by
`workflow.uuid4()` in a workflow, so a retried publish carries the same id), and events arrive
through the runners' per-listener queue (the `stigmer_event` signal in a workflow), already
deduplicated by id. Matching (filters, correlation, one/any/all, until) happens here.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from backend.workflow_runner.dsl import events, expressions, model
from backend.workflow_runner.dsl.errors import DslException


class EventRunners(Protocol):
    """The side effects of `emit` and `listen`; the interpreter's TaskRunners include them."""

    def now(self) -> datetime: ...

    def new_event_id(self) -> str:
        """A fresh event id, the same when the workflow replays."""
        ...

    async def publish_event(self, event: dict[str, Any]) -> None:
        """Publishes a structured CloudEvent (raises DslException when it cannot)."""
        ...

    async def open_listener(self, listener_id: str, types: list[str]) -> None:
        """Starts queueing the events delivered to `listener_id`, then registers it for `types`
        (every type when empty)."""
        ...

    async def next_event(self, listener_id: str) -> dict[str, Any]:
        """The next event queued for the listener, waiting for one (first in, first out; an id
        seen before by this listener never comes twice)."""
        ...

    async def close_listener(self, listener_id: str) -> None:
        """Unregisters the listener and drops its queue; also after a timeout or cancellation."""
        ...


class Host(Protocol):
    """What these tasks use of the interpreter (interpreter.Interpreter)."""

    context: Any
    listens: dict[str, int]

    @property
    def runners(self) -> EventRunners: ...

    def _evaluate(self, value: Any, data: Any, variables: Mapping[str, Any], path: str) -> Any: ...

    def _condition(
        self, value: Any, data: Any, variables: Mapping[str, Any], path: str
    ) -> bool: ...

    def _expression(
        self, value: Any, data: Any, variables: Mapping[str, Any], path: str
    ) -> Any: ...

    def _transform(self, spec: Any, data: Any, variables: Mapping[str, Any], path: str) -> Any: ...

    def _variables(
        self, scope: Any, data: Any, output: Any, task: dict[str, Any] | None
    ) -> dict[str, Any]: ...

    async def _run_list(self, tasks: list[Any], path: str, data: Any, scope: Any) -> Any: ...


async def emit(
    host: Host, task: dict[str, Any], data: Any, variables: dict[str, Any], path: str
) -> dict[str, Any]:
    """Publishes the event; the task's output is the event as published (id, time included)."""
    attributes = host._evaluate(task["emit"]["event"]["with"], data, variables, path)
    runners = host.runners
    # An id is drawn only when the document gives none, so other runs' draws stay as they were.
    given = isinstance(attributes, dict) and attributes.get("id") is not None
    event_id = "" if given else runners.new_event_id()
    event = events.build_event(attributes, event_id, runners.now(), path)
    with _at(path):
        await runners.publish_event(event)
    return event


async def listen(
    host: Host,
    task: dict[str, Any],
    data: Any,
    variables: dict[str, Any],
    scope: Any,
    path: str,
) -> list[Any]:
    """Consumes events as `listen.to` says; the output lists the consumed events in order, read
    as `listen.read` says, each through `foreach` when there is one. Events consumed by an
    `until` strategy end the listening and are not in the output."""
    strategy = task["listen"]["to"]
    mode = task["listen"].get("read", "data")
    count = host.listens.get(path, 0) + 1
    host.listens[path] = count
    listener_id = f"{path}#{count}"
    matcher = _Matcher(host, data, variables)
    main = _Strategy(strategy, path + "/listen/to")
    until = strategy.get("until")
    stopper = _Strategy(until, path + "/listen/to/until") if isinstance(until, dict) else None
    consumed: list[Any] = []
    outputs: list[Any] = []
    runners = host.runners
    with _at(path):
        await runners.open_listener(listener_id, events.routing_types(strategy))
    try:
        while True:
            event = await runners.next_event(listener_id)
            if stopper is not None and stopper.offer(matcher, event):
                if stopper.complete:
                    break
                continue
            if not main.offer(matcher, event):
                continue
            item = events.read_event(event, mode)
            consumed.append(item)
            if "foreach" in task:
                outputs.append(
                    await _iterate(host, task, item, len(outputs), variables, scope, path)
                )
            else:
                outputs.append(item)
            if until is None:
                if main.complete:
                    break
            elif isinstance(until, str | bool):
                checks = {**variables, "context": host.context}
                if host._condition(until, consumed, checks, path + "/listen/to/until"):
                    break
    finally:
        await runners.close_listener(listener_id)
    return outputs


@contextlib.contextmanager
def _at(path: str) -> Iterator[None]:
    """A runner's error without an instance happened at this task."""
    try:
        yield
    except DslException as failure:
        failure.error.instance = failure.error.instance or path
        raise


async def _iterate(
    host: Host,
    task: dict[str, Any],
    item: Any,
    index: int,
    variables: dict[str, Any],
    scope: Any,
    path: str,
) -> Any:
    """One `foreach` iteration: its `do` gets the event as input (and as `$item`, `$index` or
    the names it gives); `output.as` shapes its output, `export.as` sets the context."""
    foreach = task["foreach"]
    inner = scope.with_values(
        **{
            foreach.get("item", model.DEFAULT_EACH): item,
            foreach.get("at", model.DEFAULT_AT): index,
        }
    )
    output = item
    if "do" in foreach:
        output = await host._run_list(foreach["do"], path + "/foreach/do", item, inner)
    shaped = host._variables(inner, item, output, variables["task"])
    if "as" in foreach.get("output", {}):
        output = host._transform(
            foreach["output"]["as"], output, shaped, path + "/foreach/output/as"
        )
    if "as" in foreach.get("export", {}):
        shaped = host._variables(inner, item, output, variables["task"])
        host.context = host._transform(
            foreach["export"]["as"], output, shaped, path + "/foreach/export/as"
        )
    return output


@dataclasses.dataclass
class _Matcher:
    """Event filters and correlation, for one listen task. A correlation without `expect`
    expects the first value it extracted from a consumed event, in every filter of the task."""

    host: Host
    data: Any  # The task's input: what an `expect` expression reads.
    variables: dict[str, Any]
    correlations: dict[str, Any] = dataclasses.field(default_factory=dict)

    def match(
        self, item: dict[str, Any], event: dict[str, Any], path: str
    ) -> dict[str, Any] | None:
        """The correlation values the event brings if it passes the filter, else None."""
        with_event = {**self.variables, model.EVENT_VARIABLE: event}
        for name, expected in item["with"].items():
            if name not in event:
                return None
            at = f"{path}/with/{model.escape_pointer(name)}"
            if not self._matches(expected, event[name], with_event, at):
                return None
        found: dict[str, Any] = {}
        for name, correlation in item.get("correlate", {}).items():
            at = f"{path}/correlate/{model.escape_pointer(name)}"
            value = self.host._expression(correlation["from"], event, with_event, at + "/from")
            if "expect" in correlation:
                expected = self.host._evaluate(
                    correlation["expect"], self.data, self.variables, at + "/expect"
                )
            elif name in self.correlations:
                expected = self.correlations[name]
            else:
                found[name] = value
                continue
            if not events.same_value(value, expected):
                return None
            found[name] = value
        return found

    def commit(self, found: dict[str, Any]) -> None:
        for name, value in found.items():
            self.correlations.setdefault(name, value)

    def _matches(self, expected: Any, actual: Any, variables: dict[str, Any], path: str) -> bool:
        """An expression is evaluated with the attribute's value as input and matches when it
        returns true or that value; a mapping matches a mapping having its keys (recursively);
        anything else matches an equal value."""
        if expressions.is_expression(expected):
            result = self.host._evaluate(expected, actual, variables, path)
            return result is True or (result == actual and not isinstance(result, bool))
        if isinstance(expected, dict):
            return isinstance(actual, dict) and all(
                key in actual
                and self._matches(
                    value, actual[key], variables, f"{path}/{model.escape_pointer(key)}"
                )
                for key, value in expected.items()
            )
        return bool(expected == actual)


class _Strategy:
    """One consumption strategy without its `until`: which filters are still waiting."""

    def __init__(self, strategy: dict[str, Any], path: str) -> None:
        self.kind = next(kind for kind in ("one", "any", "all") if kind in strategy)
        self.filters = events.strategy_filters(strategy)
        self.pending = list(range(len(self.filters or [])))
        self.path = path
        self.consumed = 0

    @property
    def complete(self) -> bool:
        return not self.pending if self.kind == "all" else self.consumed > 0

    def offer(self, matcher: _Matcher, event: dict[str, Any]) -> bool:
        """Whether the strategy consumes the event (under `all`, for a filter not yet met)."""
        if self.filters is None:
            self.consumed += 1
            return True
        for index, item in enumerate(self.filters):
            if self.kind == "all" and index not in self.pending:
                continue
            at = self.path + ("/one" if self.kind == "one" else f"/{self.kind}/{index}")
            found = matcher.match(item, event, at)
            if found is None:
                continue
            matcher.commit(found)
            if self.kind == "all":
                self.pending.remove(index)
            self.consumed += 1
            return True
        return False
