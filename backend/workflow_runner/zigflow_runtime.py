"""What the Zigflow dialect means when it runs: the part of the interpreter that differs.

Deterministic, like the interpreter: values come from the runners (workflow.uuid4(),
workflow.now()), messages from the workflow's dynamic signal, query and update handlers.

- `$data`: the run's accumulated state. It starts as the workflow input (an object) plus
  `$data.workflow`; a `set` task merges its keys into it and is also kept under its name (the
  original system's golden tests read both); every other task that produces a result (a call,
  a `run`, a loop) is kept under its name; a loop's `each`/`at` are in it while it runs; `$data.task.name`
  names the running task.
- `$input` is the workflow input, unchanged; `$output` the latest task's output; `.` is null in a
  task's own fields (`set`, `with`, `if`, ...: Zigflow and the Stigmer fork evaluate them without
  an input) and the task's result in its `output.as` and `export.as`.
- `listen` to `signal`, `query` or `update` (with an `id`) means Temporal messages, not events
  (see `Messages`).
"""

from __future__ import annotations

import collections
import dataclasses
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from backend.workflow_runner.dsl import durations, errors
from backend.workflow_runner.dsl.dialects import zigflow
from backend.workflow_runner.dsl.errors import DslError, DslException

# A listen task waits this long for its messages unless `metadata.timeout` says otherwise.
DEFAULT_LISTEN_TIMEOUT_SECONDS = 60.0
# Signals kept for a listener that has not started yet, per name and in all: beyond this a
# sender cannot grow the run's memory; the oldest is dropped (and logged by the workflow).
MAX_BUFFERED_SIGNALS_PER_NAME = 100
MAX_SIGNAL_NAMES = 100

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ContinueAsNew(Exception):  # - Temporal's name for what it asks for
    """The run continues as a new one from `state` (Zigflow's `canMaxHistoryLength`)."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__("continue as new")
        self.state = state


class MessageRunners(Protocol):
    def now(self) -> datetime: ...

    def new_event_id(self) -> str: ...

    def history_length(self) -> int:
        """The run's history length so far."""
        ...

    def continue_as_new_suggested(self) -> bool: ...

    async def wait_condition(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Waits until `ready()` (True) or the timeout passes (False)."""
        ...


class Evaluator(Protocol):
    def evaluate(self, value: Any, path: str) -> Any:
        """`value`'s expressions, evaluated with the run's variables as they are now."""
        ...


def go_duration_seconds(text: str) -> float:
    """Zigflow's `metadata.timeout` is a Go duration (`10s`, `1m30s`)."""
    parts = _GO_DURATION.findall(text.strip())
    if not parts or "".join(a + u for a, u in parts) != text.strip():
        raise ValueError(f"{text!r} is not a duration like 10s or 1m30s")
    return sum(float(amount) * _GO_UNITS[unit] for amount, unit in parts)


class FreshFunctions(dict[str, Any]):
    """Expression variables whose `__zigflow` entry (uuid, timestamp, ...) is drawn anew each
    time an expression reads it; only expressions that call one of the functions read it."""

    def __init__(self, values: Mapping[str, Any], draw: Callable[[], dict[str, Any]]) -> None:
        super().__init__(values)
        self[zigflow.FUNCTIONS_VARIABLE] = None
        self._draw = draw

    def __getitem__(self, key: str) -> Any:
        if key == zigflow.FUNCTIONS_VARIABLE:
            return self._draw()
        return super().__getitem__(key)


@dataclasses.dataclass
class _UpdateListener:
    accept_if: Any
    reply: Any
    path: str
    accepted: bool = False


class ZigflowRun:
    """The Zigflow state of one run, and the handling of its messages."""

    def __init__(
        self,
        workflow_facts: dict[str, Any],
        env: dict[str, str],
        workflows: dict[str, list[Any]] | None = None,
    ) -> None:
        # The other workflows of a multi-workflow file: `run: workflow` and `then: <name>`.
        self.workflows = workflows or {}
        # `document.metadata.canMaxHistoryLength` (0: only when Temporal suggests it); `resume`,
        # the state a continued run starts from (DslRunInput.resume).
        self.max_history = 0
        self.resume: dict[str, Any] | None = None
        self.workflow_input: Any = None
        self.data: dict[str, Any] = {"workflow": dict(workflow_facts)}
        self.env = dict(env)
        self.last_output: Any = None
        self.signals: dict[str, collections.deque[Any]] = {}
        self.queries: dict[str, tuple[Any, str]] = {}
        self.updates: dict[str, _UpdateListener] = {}
        self.dropped_signals = 0
        self.evaluator: Evaluator | None = None

    # Variables and state.

    def begin(self, workflow_input: Any) -> None:
        """`$data` starts as the workflow input (when an object) and `$data.workflow`; a
        continued run's, as its predecessor left it (with this run's workflow facts)."""
        self.workflow_input = workflow_input
        if self.resume is not None:
            self.data = {**self.resume["data"], "workflow": self.data["workflow"]}
            self.last_output = self.resume.get("output")
        elif isinstance(workflow_input, dict):
            self.data = {**workflow_input, "workflow": self.data["workflow"]}

    def should_continue_as_new(self, runners: MessageRunners) -> bool:
        if runners.continue_as_new_suggested():
            return True
        return self.max_history > 0 and runners.history_length() > self.max_history

    def variables(self) -> dict[str, Any]:
        return {"data": self.data, "env": self.env}

    def functions(
        self, runners: MessageRunners, drawing: bool = True
    ) -> Callable[[], dict[str, Any]]:
        def draw() -> dict[str, Any]:
            now = runners.now().astimezone(UTC)
            # A query must not advance the run's random sequence: it draws a name-based id.
            drawn = (
                runners.new_event_id()
                if drawing
                else str(uuid.uuid5(uuid.NAMESPACE_URL, now.isoformat()))
            )
            return {
                "uuid": drawn,
                "timestamp": int(now.timestamp()),
                "timestamp_iso8601": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "now": now.timestamp(),
            }

        return draw

    def task_started(self, name: str, runners: MessageRunners) -> None:
        self.data["task"] = {"name": name}
        self.data["workflow"]["now"] = runners.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def task_produced(self, name: str, kind: str | None, raw_output: Any) -> None:
        """A task's result, before its `output.as` (which may read `$data`): a `set` merges its
        keys; a set, call, run or loop is kept under the task's name."""
        if kind == "set" and isinstance(raw_output, dict):
            self.data.update(raw_output)
        if kind in ("set", "call", "run", "for"):
            self.data[name] = raw_output

    def task_completed(self, kind: str | None, output: Any) -> None:
        # A switch only routes: the output before it stays the latest (as in Zigflow).
        if kind != "switch":
            self.last_output = output

    def redirects(self, directive: Any, siblings: frozenset[str]) -> bool:
        """`then: <name>` naming another workflow of the file (and no task beside this one)."""
        return (
            isinstance(directive, str) and directive in self.workflows and directive not in siblings
        )

    def loop_item(self, each: str, at: str, element: Any, index: Any) -> None:
        """The original's loops read their item from `$data` (`$data.item`)."""
        self.data[each] = element
        self.data[at] = index

    # Messages.

    def on_signal(self, name: str, payload: Any) -> bool:
        """Queues a signal for the listener of `name` (now or later); False when one was dropped."""
        queue = self.signals.get(name)
        if queue is None:
            if len(self.signals) >= MAX_SIGNAL_NAMES:
                self.dropped_signals += 1
                return False
            queue = self.signals[name] = collections.deque(maxlen=MAX_BUFFERED_SIGNALS_PER_NAME)
        full = len(queue) == queue.maxlen
        queue.append(payload)
        if full:
            self.dropped_signals += 1
        return not full

    def on_query(self, name: str) -> Any:
        """The reply of a query listener (its `data`, evaluated now); KeyError when none."""
        template, path = self.queries[name]
        assert self.evaluator is not None
        return self.evaluator.evaluate(template, path)

    def check_update(self, name: str) -> None:
        """Refuses an update that no listen task has asked for (the caller gets an error)."""
        if name not in self.updates:
            raise KeyError(f"no listener for update {name!r}")

    def on_update(self, name: str, payload: Any) -> Any:
        listener = self.updates[name]
        self.data[name] = payload
        assert self.evaluator is not None
        if _accepted(self.evaluator.evaluate(listener.accept_if, listener.path + "/acceptIf")):
            listener.accepted = True
        return self.evaluator.evaluate(listener.reply, listener.path + "/data")

    async def listen(
        self, name: str, task: dict[str, Any], runners: MessageRunners, path: str
    ) -> None:
        """A listen task on Temporal messages: registers its queries (which do not block) and
        waits for its signals and updates (all of them for `one`/`all`, any one for `any`) until
        `metadata.timeout` (default 60 s), then fails with a timeout error."""
        filters = listen_filters(task)
        wait_all = "any" not in task["listen"]["to"]
        waiting: list[Callable[[], bool]] = []
        for index, event_filter in enumerate(filters):
            attributes = event_filter["with"]
            kind, message = attributes["type"], str(attributes["id"])
            where = f"{path}/listen/to/{index}/with"
            if kind == "query":
                self.queries[message] = (attributes.get("data"), where + "/data")
            elif kind == "update":
                listener = _UpdateListener(
                    attributes.get("acceptIf", True), attributes.get("data"), where
                )
                self.updates[message] = listener
                waiting.append(_accepted_check(listener))
            else:
                waiting.append(
                    self._signal_waiter(name, message, attributes.get("acceptIf", True), where)
                )
        if not waiting:
            return
        timeout = DEFAULT_LISTEN_TIMEOUT_SECONDS
        if "timeout" in task.get("metadata", {}):
            timeout = go_duration_seconds(str(task["metadata"]["timeout"]))

        def ready() -> bool:
            done = [check() for check in waiting]
            return all(done) if wait_all else any(done)

        if not await runners.wait_condition(ready, timeout):
            raise DslException(
                DslError(
                    errors.TIMEOUT, 408, "Listen timed out", f"no message after {timeout:g} s", path
                )
            )

    def _signal_waiter(
        self, name: str, signal: str, accept_if: Any, path: str
    ) -> Callable[[], bool]:
        """Consumes queued `signal`s as the condition is checked: each one is `$data.<task>`
        while `acceptIf` is evaluated; the first accepted one ends the wait."""
        accepted = False

        def check() -> bool:
            nonlocal accepted
            queue = self.signals.get(signal)
            while not accepted and queue:
                self.data[name] = queue.popleft()
                assert self.evaluator is not None
                accepted = _accepted(self.evaluator.evaluate(accept_if, path + "/acceptIf"))
            return accepted

        return check


def _accepted_check(listener: _UpdateListener) -> Callable[[], bool]:
    return lambda: listener.accepted


def listen_filters(task: dict[str, Any]) -> list[Any]:
    """A listen task's event filters, whichever of `one`, `all` or `any` holds them."""
    to = task.get("listen", {}).get("to", {})
    return [to["one"]] if "one" in to else list(to.get("all") or to.get("any") or [])


def is_message_listen(task: dict[str, Any]) -> bool:
    """A listen task whose filters are all Temporal messages (`type` signal, query or update)."""
    filters = listen_filters(task)
    return bool(filters) and all(
        isinstance(f, dict) and f.get("with", {}).get("type") in zigflow.MESSAGE_TYPES
        for f in filters
    )


def iteration(collection: Any) -> Iterator[tuple[Any, Any]]:
    """(index or key, element) of what a Zigflow loop runs over: a list, an object, or a count."""
    if isinstance(collection, list):
        yield from enumerate(collection)
    elif isinstance(collection, dict):
        yield from collection.items()
    elif isinstance(collection, int | float) and not isinstance(collection, bool):
        for index in range(int(collection)):
            yield index, index
    else:
        raise DslException(
            DslError(
                errors.VALIDATION,
                400,
                "Invalid loop",
                "for.in must be a list, an object or a number",
                "",
            )
        )


def wait_seconds(wait: dict[str, Any], evaluate: Callable[[Any], Any], now: datetime) -> float:
    """Zigflow's `wait` extension: until a time (RFC 3339), or a duration from expressions."""
    if "until" in wait:
        text = str(evaluate(wait["until"]))
        try:
            until = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"wait.until: {text!r} is not an RFC 3339 time") from None
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        return max(0.0, (until - now).total_seconds())
    return durations.to_seconds({unit: _number(evaluate(value)) for unit, value in wait.items()})


def _number(value: Any) -> float:
    return float(value) if isinstance(value, str) else value


def _accepted(value: Any) -> bool:
    # Zigflow completes only on a boolean true (an absent acceptIf counts as true).
    return value is True
