"""The interpreter's Zigflow-dialect tasks: message listeners, loops, the `wait` extension,
`call: activity` and `run`; and the dialect's expression variables.

Kept apart from interpreter.py so that a standard document never reaches this code; see
zigflow_runtime.py for the state these tasks read and write, docs/zigflow.md for the table.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from backend.workflow_runner import calls, zigflow_runtime
from backend.workflow_runner.dsl import durations, errors, model
from backend.workflow_runner.dsl.dialects import zigflow
from backend.workflow_runner.dsl.errors import DslError, DslException
from backend.workflow_runner.models import ActivityCallInput, HttpCallInput, RunProcessInput
from backend.workflow_runner.zigflow_runtime import FreshFunctions, ZigflowRun

RUNTIME = {"name": "stigmer-workflow-runner", "dialect": "zigflow"}
# A run task's process timeout when `activityOptions.startToCloseTimeout` names none.
DEFAULT_RUN_TIMEOUT = 60.0


class ZigflowRunners(zigflow_runtime.MessageRunners, Protocol):
    async def call_http(self, call: HttpCallInput) -> Any: ...

    async def upsert_search_attributes(self, attributes: dict[str, Any], path: str) -> None:
        """`metadata.searchAttributes`: {name: {type, value}} (a null value unsets it)."""
        ...

    async def call_activity(self, call: ActivityCallInput) -> Any:
        """Runs an activity of another worker (`call: activity`); raises DslException."""
        ...

    async def run_process(self, call: RunProcessInput) -> Any:
        """Runs a `run: shell` / `run: script` process on the worker; raises DslException."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Host(Protocol):
    """What these tasks use of the interpreter (interpreter.Interpreter)."""

    context: Any
    secrets: dict[str, str]
    workflow_descriptor: dict[str, Any]
    zigflow: ZigflowRun | None
    document: dict[str, Any]
    secret_scope: Any

    @property
    def runners(self) -> ZigflowRunners: ...

    @property
    def meter(self) -> Any: ...

    def _evaluate(self, value: Any, data: Any, variables: Mapping[str, Any], path: str) -> Any: ...

    def _condition(
        self, value: Any, data: Any, variables: Mapping[str, Any], path: str
    ) -> bool: ...

    def _expression(
        self, value: Any, data: Any, variables: Mapping[str, Any], path: str
    ) -> Any: ...

    def _variables(
        self, scope: Any, data: Any, output: Any, task: dict[str, Any] | None
    ) -> dict[str, Any]: ...

    async def _run_list(self, tasks: list[Any], path: str, data: Any, scope: Any) -> Any: ...

    def root_scope(self) -> Any: ...


def variables(
    host: Host, extras: Mapping[str, Any], task: dict[str, Any] | None, drawing: bool
) -> dict[str, Any]:
    """Zigflow's variables: `$input` is the workflow input, `$output` the latest task's output,
    `$data` and `$env` the run's; uuid() & co. draw from the runners when an expression calls
    them (not in a query: `drawing` False)."""
    run = host.zigflow
    assert run is not None
    values = {
        "context": host.context,
        "input": run.workflow_input,
        "output": run.last_output,
        "secrets": host.secrets,
        "task": task,
        "workflow": host.workflow_descriptor,
        "runtime": RUNTIME,
        **extras,
        **run.variables(),
    }
    return FreshFunctions(values, run.functions(host.runners, drawing))


async def execute(
    host: Host, item: model.TaskItem, data: Any, variables: dict[str, Any], scope: Any
) -> tuple[bool, Any]:
    """(True, output) when the task is one the dialect runs its own way; (False, None) when the
    standard interpreter runs it."""
    task, path = item.definition, item.path
    run = host.zigflow
    assert run is not None
    attributes = task.get("metadata", {}).get("searchAttributes")
    if isinstance(attributes, dict) and attributes:
        evaluated = host._evaluate(attributes, data, variables, path + "/metadata/searchAttributes")
        await host.runners.upsert_search_attributes(evaluated, path)
    if "listen" in task and zigflow_runtime.is_message_listen(task):
        await run.listen(item.name, task, host.runners, path)
        return True, None
    if "wait" in task and zigflow.is_wait_extension(task["wait"]):
        now = host.runners.now()
        try:
            seconds = zigflow_runtime.wait_seconds(
                task["wait"], lambda value: host._evaluate(value, data, variables, path), now
            )
        except ValueError as error:
            raise DslException(
                DslError(errors.VALIDATION, 400, "Invalid wait", str(error), path)
            ) from None
        await host.runners.sleep(seconds)
        return True, data
    if task.get("call") == "http":  # With the document's and the task's activityOptions.
        arguments = host._evaluate(task.get("with", {}), data, variables, path)
        call = calls.http_call(
            task["with"], arguments, data, path, host.secret_scope, inside_try=scope.inside_try
        )
        call.activity_options = zigflow.activity_options(host.document, task)
        return True, await host.runners.call_http(call)
    if task.get("call") == "activity":
        arguments = host._evaluate(task["with"], data, variables, path)
        return True, await host.runners.call_activity(_activity_call(host, task, arguments, path))
    if "for" in task and "do" in task:
        return True, await _for(host, item, data, variables, scope)
    if "run" in task and "workflow" in task["run"] and model.task_type(task) is None:
        target = host._evaluate(task["run"]["workflow"], data, variables, path)
        return True, await run_workflow(host, str(target.get("type", "")), data, path)
    if "run" in task and ({"shell", "script"} & set(task["run"])):
        return True, await host.runners.run_process(
            _run_process_call(host, task, data, variables, path)
        )
    if "run" in task and model.task_type(task) is None:
        # `run: container` (no container runtime on the worker).
        raise DslException(
            DslError(
                errors.CONFIGURATION,
                400,
                "Unsupported task",
                f"run: {', '.join(task['run'])} is not supported by this runner",
                path,
            )
        )
    if task.get("call") == "grpc":
        raise DslException(
            DslError(
                errors.CONFIGURATION, 400, "Unsupported task", "call: grpc is not supported", path
            )
        )
    return False, None


async def _for(
    host: Host, item: model.TaskItem, data: Any, variables: dict[str, Any], scope: Any
) -> Any:
    """Zigflow's loop: over a list, an object (key, value) or a count; `$data.<each>` is the
    element; the output lists every iteration's output (an object, over an object)."""
    task, path = item.definition, item.path
    run = host.zigflow
    assert run is not None
    loop = task["for"]
    collection = host._expression(loop["in"], data, variables, path + "/for/in")
    size = int(collection) if isinstance(collection, int | float) else collection
    if isinstance(size, int) and not isinstance(size, bool):
        # The forItems budget, without building a list as long as the count.
        host.meter.for_collection([None] * min(size, host.meter.budgets["forItems"] + 1), path)
    elif collection is not None:
        host.meter.for_collection(collection, path)
    by_key = isinstance(collection, dict)
    current = data
    run.last_output = None  # `$output` in `while`: the previous iteration's output (none yet).
    # `$context` exported inside the loop is the loop's own: the next iteration sees it, the
    # tasks after the loop do not (Zigflow runs the loop on a copy of the state).
    outer_context = host.context
    try:
        return await _iterate(host, item, collection, current, variables, scope, by_key)
    finally:
        host.context = outer_context


async def _iterate(
    host: Host,
    item: model.TaskItem,
    collection: Any,
    current: Any,
    variables: dict[str, Any],
    scope: Any,
    by_key: bool,
) -> Any:
    task, path = item.definition, item.path
    run = host.zigflow
    assert run is not None
    loop = task["for"]
    each = loop.get("each", model.DEFAULT_EACH)
    at = loop.get("at", model.DEFAULT_AT)
    outputs: dict[str, Any] | list[Any] = {} if by_key else []
    for key, element in zigflow_runtime.iteration(collection if collection is not None else []):
        inner = scope.with_values(**{each: element, at: key})
        run.loop_item(each, at, element, key)
        if "while" in task:
            check = host._variables(inner, current, None, variables["task"])
            if not host._condition(task["while"], current, check, path + "/while"):
                break
        current = await host._run_list(task["do"], path + "/do", current, inner)
        run.data[item.name] = current
        run.last_output = current
        if isinstance(outputs, dict):
            outputs[str(key)] = current
        else:
            outputs.append(current)
    return outputs


async def run_workflow(host: Host, name: str, data: Any, path: str) -> Any:
    """Another workflow of the file, in this task's place (Zigflow starts it as a child workflow
    with a copy of the state): it sees `$data` as it is, its own changes to `$data` stay its own,
    and its output is this task's result."""
    run = host.zigflow
    assert run is not None
    if name not in run.workflows:
        known = ", ".join(run.workflows) or "none"
        raise DslException(
            DslError(
                errors.CONFIGURATION,
                400,
                "Unknown workflow",
                f"{name!r} (this file: {known})",
                path,
            )
        )
    saved = copy.deepcopy(run.data)
    try:
        position = list(run.workflows).index(name)
        where = f"/do/{position}/{model.escape_pointer(name)}/do"
        return await host._run_list(run.workflows[name], where, data, host.root_scope())
    finally:
        run.data = saved


async def resume_point(host: Host, items: list[model.TaskItem], data: Any) -> tuple[int, Any]:
    """Where the top-level list starts: 0, or for a continued run the task its predecessor
    stopped before, after registering again the query listeners it had passed (a query must
    still be answered; Zigflow never skips listen tasks)."""
    run = host.zigflow
    assert run is not None
    if run.resume is None:
        return 0, data
    start = int(run.resume["next"])
    host.context = run.resume.get("context")
    for item in items[:start]:
        task = item.definition
        if "listen" in task and zigflow_runtime.is_message_listen(task) and _only_queries(task):
            await run.listen(item.name, task, host.runners, item.path)
    return start, run.resume.get("value")


def checkpoint(host: Host, index: int, data: Any) -> None:
    """Before a top-level task: continue as new when the history is past the document's
    `canMaxHistoryLength` or Temporal suggests it, carrying the run's state."""
    run = host.zigflow
    assert run is not None
    if run.should_continue_as_new(host.runners):
        raise zigflow_runtime.ContinueAsNew(
            {
                "next": index,
                "value": data,
                "data": {k: v for k, v in run.data.items() if k != "workflow"},
                "context": host.context,
                "output": run.last_output,
            }
        )


def _only_queries(task: dict[str, Any]) -> bool:
    return all(f["with"]["type"] == "query" for f in zigflow_runtime.listen_filters(task))


def _activity_call(
    host: Host, task: dict[str, Any], arguments: dict[str, Any], path: str
) -> ActivityCallInput:
    options = zigflow.activity_options(host.document, task)
    return ActivityCallInput(
        name=str(arguments["name"]),
        task_queue=str(arguments["taskQueue"]),
        arguments=list(arguments.get("arguments") or []),
        task_path=path,
        activity_options=options,
    )


def _run_process_call(
    host: Host, task: dict[str, Any], data: Any, variables: dict[str, Any], path: str
) -> RunProcessInput:
    """`run: shell` / `run: script` as the process the worker runs (run_tasks.py); as in Zigflow
    the arguments, environment and script source are evaluated, the script's code is not."""
    run = task["run"]
    kind = "shell" if "shell" in run else "script"
    if run.get("await") is False:
        raise DslException(
            DslError(
                errors.CONFIGURATION,
                400,
                "Unsupported task",
                f"run: {kind} with await: false (the process would outlive its task)",
                path,
            )
        )
    process = run[kind]

    def evaluated(key: str, default: Any) -> Any:
        value = process.get(key, default)
        return host._evaluate(value, data, variables, f"{path}/run/{kind}/{key}")

    arguments = evaluated("arguments", [])
    if not isinstance(arguments, list):
        raise DslException(
            DslError(errors.VALIDATION, 400, "Invalid run task", "arguments: not a list", path)
        )
    environment = evaluated("environment", {}) or {}
    source = evaluated("source", {}) if "source" in process else {}
    endpoint = source.get("endpoint", "") if isinstance(source, dict) else ""
    stdin = evaluated("stdin", None)
    options = zigflow.activity_options(host.document, task)
    interval = (task.get("metadata") or {}).get("heartbeat")
    return RunProcessInput(
        kind=kind,
        command=str(evaluated("command", "")) if kind == "shell" else "",
        arguments=[calls.text(value) for value in arguments],
        environment={
            str(k): "" if v is None else calls.text(v) for k, v in dict(environment).items()
        },
        language=str(process.get("language", "")),
        code=str(process.get("code") or ""),
        source=str(endpoint.get("uri", "") if isinstance(endpoint, dict) else endpoint),
        stdin=None if stdin is None else calls.text(stdin),
        return_mode=str(run.get("return", "stdout")),
        timeout_seconds=float(options.get("start_to_close_seconds") or DEFAULT_RUN_TIMEOUT),
        heartbeat_seconds=durations.to_seconds(interval) if interval is not None else None,
        heartbeat_timeout_seconds=options.get("heartbeat_seconds"),
        maximum_attempts=_int_or_none(options.get("maximum_attempts")),
        task_path=path,
    )


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)
