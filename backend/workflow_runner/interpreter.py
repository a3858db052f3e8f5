"""The deterministic DSL interpreter: walks the document; side effects go through TaskRunners.

It runs inside the Temporal workflow, so it does no I/O, reads no clock and draws no random
numbers itself: time, sleeping, HTTP and agent calls are the runners' job. Tests drive it with
fake runners, without Temporal.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, TypeVar

from backend.workflow_runner import calls, error_handling, event_tasks, timing, zigflow_tasks
from backend.workflow_runner.agent_call.models import CallAgentInput
from backend.workflow_runner.agent_call.secrets import run_scope
from backend.workflow_runner.dsl import budgets, durations, errors, model
from backend.workflow_runner.dsl.dialects import Dialect, zigflow
from backend.workflow_runner.dsl.errors import DslError, DslException
from backend.workflow_runner.evaluation import Evaluation
from backend.workflow_runner.models import HttpCallInput, ProgressEntry
from backend.workflow_runner.scope import Scope as _Scope
from backend.workflow_runner.zigflow_runtime import ContinueAsNew, ZigflowRun

_T = TypeVar("_T")

RUNTIME_NAME = "stigmer-workflow-runner"
RUNTIME_VERSION = "0.1.0"


class TaskRunners(event_tasks.EventRunners, zigflow_tasks.ZigflowRunners, Protocol):
    """The side effects the interpreter needs; they raise DslException on failure."""

    async def call_http(self, call: HttpCallInput) -> Any: ...

    async def call_agent(self, call: CallAgentInput) -> dict[str, Any]: ...

    async def sleep(self, seconds: float) -> None: ...


class _EndWorkflow(Exception):
    """`then: end`: stops every task list up to the workflow, which returns `output`."""

    def __init__(self, output: Any) -> None:
        super().__init__("end")
        self.output = output


class Interpreter(Evaluation):
    """Runs one workflow document once; `progress` lists the tasks that finished, in order.

    Any exception other than a DslException becomes a `runtime` DslException naming the task,
    except those of `passthrough` (what the runners raise for the workflow itself, such as
    its cancellation), which pass unchanged.
    """

    def __init__(
        self,
        document: dict[str, Any],
        runners: TaskRunners,
        workflow_id: str,
        passthrough: tuple[type[Exception], ...] = (),
        dialect: Dialect = Dialect.STANDARD,
        workflow_facts: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        workflows: dict[str, list[Any]] | None = None,
    ) -> None:
        self.document = document
        self.runners = runners
        self.workflow_id = workflow_id
        self.passthrough: tuple[type[Exception], ...] = (
            _EndWorkflow,
            DslException,
            ContinueAsNew,
            *passthrough,
        )
        self.budgets = budgets.Budgets.of(document)
        self.meter = budgets.Meter(self.budgets)
        self.context: Any = {}
        self.progress: list[ProgressEntry] = []
        # `$secrets.NAME` is a placeholder sealed for this run; only activities resolve it.
        self.secret_scope = run_scope(model.secret_names(document))
        self.secrets = self.secret_scope.placeholders()
        self.workflow_descriptor: dict[str, Any] = {}
        self.listens: dict[str, int] = {}  # Listen tasks started, by path: their listener ids.
        self.dialect = dialect
        # The Zigflow dialect's state ($data, $env, messages); None for a standard document.
        self.zigflow: ZigflowRun | None = None
        if dialect is Dialect.ZIGFLOW:
            self.zigflow = ZigflowRun(workflow_facts or {}, env or {}, workflows or {})
            self.zigflow.max_history = zigflow.max_history_length(document)
            self.zigflow.evaluator = self

    async def run(self, workflow_input: Any) -> Any:
        """The workflow's output, or DslException with the error that ended it."""
        self.workflow_descriptor = {
            "id": self.workflow_id,
            "definition": self.document,
            "input": workflow_input,
            "startedAt": timing.date_time(self.runners.now()),
        }
        if self.zigflow is not None:
            self.zigflow.begin(workflow_input)
        try:
            timeout = self.document.get("timeout", {}).get("after")
            if timeout is None:
                return await self._run(workflow_input)
            seconds = durations.to_seconds(timeout)
            return await timing.deadline(self._run(workflow_input), seconds, "Workflow", "/")
        except self.passthrough:
            raise
        except Exception as unexpected:  # Outside any task: input, output, the deadline.
            raise error_handling.unexpected_error(unexpected, "/") from unexpected

    async def _run(self, workflow_input: Any) -> Any:
        spec = self.document.get("input", {})
        self._check_schema(spec.get("schema"), workflow_input, "/input", "workflow input")
        variables = self._variables(_Scope(), workflow_input, None, None)
        data = self._transform(spec.get("from"), workflow_input, variables, "/input/from")
        try:
            output = await self._run_list(self.document["do"], "/do", data, _Scope())
        except _EndWorkflow as end:
            output = end.output
        result_spec = self.document.get("output", {})
        variables = self._variables(_Scope(), data, output, None)
        output = self._transform(result_spec.get("as"), output, variables, "/output/as")
        self._check_schema(result_spec.get("schema"), output, "/output", "workflow output")
        return output

    # Task lists and flow directives.

    async def _run_list(self, tasks: list[Any], path: str, data: Any, scope: _Scope) -> Any:
        items = model.task_items(tasks, path)
        names = frozenset(item.name for item in items)
        index = start = 0
        top = self.zigflow is not None and path == "/do"  # Zigflow continues as new here.
        if top:
            start, data = await zigflow_tasks.resume_point(self, items, data)
            index = start
        while index < len(items):
            item = items[index]
            if top and index != start:
                zigflow_tasks.checkpoint(self, index, data)
            data, directive = await self._run_task(item, data, scope, names)
            if directive in (None, "continue"):
                index += 1
            elif directive == "exit":
                break
            elif directive == "end":
                raise _EndWorkflow(data)
            else:
                self.meter.jump(directive, item.path)
                index = next(i for i, other in enumerate(items) if other.name == directive)
        return data

    async def _run_task(
        self,
        item: model.TaskItem,
        raw_input: Any,
        scope: _Scope,
        siblings: frozenset[str] = frozenset(),
    ) -> tuple[Any, Any]:
        task = item.definition
        if self.zigflow is not None:
            raw_input = None  # Zigflow: `.` is null in a task's own fields (see zigflow_runtime).
            self.zigflow.task_started(item.name, self.runners)
        if self.meter.task_started():
            await self.runners.sleep(budgets.MIN_RETRY_DELAY_SECONDS)
        descriptor: dict[str, Any] = {
            "name": item.name,
            "reference": item.path,
            "definition": task,
            "input": raw_input,
            "startedAt": timing.date_time(self.runners.now()),
        }
        variables = self._variables(scope, raw_input, None, descriptor)
        if "if" in task and not self._condition(task["if"], raw_input, variables, item.path):
            self.progress.append(ProgressEntry(item.path, "skipped"))
            return raw_input, None
        try:
            self._check_schema(task.get("input", {}).get("schema"), raw_input, item.path, "input")
            data = self._transform(
                task.get("input", {}).get("from"), raw_input, variables, item.path
            )
            descriptor["input"] = data
            variables = self._variables(scope, data, None, descriptor)
            timeout = task.get("timeout", {}).get("after")
            execution = self._execute(item, data, variables, scope)
            if timeout is None:
                raw_output, directive = await execution
            else:
                seconds = durations.to_seconds(timeout)
                raw_output, directive = await timing.deadline(execution, seconds, "Task", item.path)
            if self.zigflow is not None and self.zigflow.redirects(directive, siblings):
                raw_output = await zigflow_tasks.run_workflow(self, str(directive), data, item.path)
                directive = None
            descriptor["output"] = raw_output
            if self.zigflow is not None:
                kind = model.task_type(task) or ("run" if "run" in task else None)
                self.zigflow.task_produced(item.name, kind, raw_output)
            variables = self._variables(scope, data, raw_output, descriptor)
            output = self._transform(
                task.get("output", {}).get("as"), raw_output, variables, item.path
            )
            self._check_schema(task.get("output", {}).get("schema"), output, item.path, "output")
            if "as" in task.get("export", {}):
                variables = self._variables(scope, data, output, descriptor)
                self.context = self._transform(task["export"]["as"], output, variables, item.path)
        except DslException as failure:
            self.progress.append(ProgressEntry(item.path, "failed", failure.error.type))
            raise
        except self.passthrough:
            raise
        except Exception as unexpected:
            converted = error_handling.unexpected_error(unexpected, item.path)
            self.progress.append(ProgressEntry(item.path, "failed", converted.error.type))
            raise converted from unexpected
        self.progress.append(ProgressEntry(item.path, "completed"))
        if self.zigflow is not None:
            self.zigflow.task_completed(model.task_type(task), output)
        return output, directive if directive is not None else task.get("then")

    async def _execute(
        self, item: model.TaskItem, data: Any, variables: dict[str, Any], scope: _Scope
    ) -> tuple[Any, str | None]:
        task, path = item.definition, item.path
        if self.zigflow is not None:
            handled, result = await zigflow_tasks.execute(self, item, data, variables, scope)
            if handled:
                return result, None
        kind = model.task_type(task)
        if kind == "set":
            return self._evaluate(task["set"], data, variables, path), None
        if kind == "call":
            return await self._call(task, data, variables, scope, path), None
        if kind == "switch":
            return data, self._switch(task, data, variables, path)
        if kind == "for":
            return await self._for(task, data, variables, scope, path), None
        if kind == "fork":
            return await self._fork(task, data, scope, path), None
        if kind == "try":
            return await self._try(task, data, variables, scope, path), None
        if kind == "raise":
            raise DslException(self._raised_error(task, data, variables, path))
        if kind == "wait":
            await self.runners.sleep(durations.to_seconds(task["wait"]))
            return data, None
        if kind == "do":
            return await self._run_list(task["do"], path + "/do", data, scope), None
        if kind == "emit":
            return await event_tasks.emit(self, task, data, variables, path), None
        if kind == "listen":
            return await event_tasks.listen(self, task, data, variables, scope, path), None
        raise DslException(DslError(errors.CONFIGURATION, 400, "Unsupported task", str(kind), path))

    # Task kinds.

    async def _call(
        self, task: dict[str, Any], data: Any, variables: dict[str, Any], scope: _Scope, path: str
    ) -> Any:
        arguments = self._evaluate(task.get("with", {}), data, variables, path)
        if task["call"] == "http":
            call = calls.http_call(
                task["with"], arguments, data, path, self.secret_scope, inside_try=scope.inside_try
            )
            return await self.runners.call_http(call)
        return await self.runners.call_agent(calls.agent_call(arguments, path, self.secret_scope))

    def _switch(self, task: dict[str, Any], data: Any, variables: dict[str, Any], path: str) -> Any:
        default = None
        for index, entry in enumerate(task["switch"]):
            ((name, case),) = entry.items()
            if "when" not in case:
                default = case["then"]
                continue
            case_path = f"{path}/switch/{index}/{model.escape_pointer(name)}/when"
            if self._condition(case["when"], data, variables, case_path):
                return case["then"]
        return default

    async def _for(
        self, task: dict[str, Any], data: Any, variables: dict[str, Any], scope: _Scope, path: str
    ) -> Any:
        loop = task["for"]
        collection = self._expression(loop["in"], data, variables, path + "/for/in")
        collection = self.meter.for_collection(collection, path)
        each = loop.get("each", model.DEFAULT_EACH)
        at = loop.get("at", model.DEFAULT_AT)
        current = data
        for index, element in enumerate(collection):
            inner = scope.with_values(**{each: element, at: index})
            if "while" in task:
                check = self._variables(inner, current, None, variables["task"])
                if not self._condition(task["while"], current, check, path + "/while"):
                    break
            current = await self._run_list(task["do"], path + "/do", current, inner)
        return current

    async def _fork(self, task: dict[str, Any], data: Any, scope: _Scope, path: str) -> Any:
        items = model.task_items(task["fork"]["branches"], path + "/fork/branches")
        branches = [asyncio.create_task(self._run_task(item, data, scope)) for item in items]
        compete = bool(task["fork"].get("compete", False))
        try:
            pending: set[asyncio.Task[tuple[Any, Any]]] = set(branches)
            while pending:
                _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # Branch order, not set order, decides: a set's order differs between replays.
                for branch in branches:
                    if not branch.done():
                        continue
                    failure = branch.exception()
                    if failure is None and compete:
                        return branch.result()[0]
                    if failure is not None and not compete:
                        raise failure
            if compete:
                # Every branch failed: the first one's error stands for all.
                raise next(b.exception() for b in branches if b.exception() is not None)  # type: ignore[misc]
            outputs = [branch.result()[0] for branch in branches]
            if self.zigflow is not None:  # Zigflow: each branch's output under its name.
                return {item.name: output for item, output in zip(items, outputs, strict=True)}
            return outputs
        finally:
            for branch in branches:
                if not branch.done():
                    branch.cancel()
            await asyncio.gather(*branches, return_exceptions=True)

    async def _try(
        self, task: dict[str, Any], data: Any, variables: dict[str, Any], scope: _Scope, path: str
    ) -> Any:
        catch = task["catch"]
        retry = catch.get("retry")
        if isinstance(retry, str):
            retry = self.document["use"]["retries"][retry]
        error_name = catch.get("as", model.DEFAULT_ERROR_VARIABLE)
        retries = 0
        while True:
            try:
                return await self._run_list(task["try"], path + "/try", data, scope.trying())
            except budgets.BudgetExceeded:
                raise
            except DslException as failure:
                error = failure.error.to_dict()
                inner = scope.with_values(**{error_name: error})
                checks = self._variables(inner, data, None, variables["task"])
                condition = self._conditions(data, checks)
                if not error_handling.catches(catch, error, condition, path):
                    raise
                limit = self.meter.retry_limit(retry) if retry is not None else 0
                if retry is not None and error_handling.should_retry(
                    retry, retries, limit, condition, path
                ):
                    retries += 1
                    await self.runners.sleep(error_handling.retry_delay(retry, retries))
                    continue
                if "do" not in catch:
                    return data
                return await self._run_list(catch["do"], path + "/catch/do", data, inner)

    def _raised_error(
        self, task: dict[str, Any], data: Any, variables: dict[str, Any], path: str
    ) -> DslError:
        definition = task["raise"]["error"]
        if isinstance(definition, str):
            definition = self.document["use"]["errors"][definition]
        value = self._evaluate(definition, data, variables, path)
        return error_handling.raised_error(value, path)

    # Expressions and data.

    def _variables(
        self,
        scope: _Scope,
        data: Any,
        output: Any,
        task: dict[str, Any] | None,
        drawing: bool = True,
    ) -> dict[str, Any]:
        if self.zigflow is not None:
            return zigflow_tasks.variables(self, scope.extras, task, drawing)
        return {
            "context": self.context,
            "input": data,
            "output": output,
            "secrets": self.secrets,
            "task": task,
            "workflow": self.workflow_descriptor,
            "runtime": {"name": RUNTIME_NAME, "version": RUNTIME_VERSION},
            **scope.extras,
        }

    def root_scope(self) -> _Scope:
        return _Scope()

    def evaluate(self, value: Any, path: str) -> Any:
        """`value` with the run's variables as they are now (Zigflow's listeners; `.` is null)."""
        return self._evaluate(value, None, self._variables(_Scope(), None, None, None, False), path)
