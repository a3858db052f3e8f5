"""Loads a workflow document from YAML or JSON and reports every problem with its path."""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
import yaml

from backend.workflow_runner.dsl import (
    budgets,
    dialects,
    event_schema,
    expressions,
    model,
    schema,
    secret_references,
)
from backend.workflow_runner.dsl.dialects import Dialect, zigflow
from backend.workflow_runner.dsl.event_checks import EventChecks
from backend.workflow_runner.dsl.value_checks import ValueChecks

_TASK_SCHEMAS = {**schema.TASK_SCHEMAS, **event_schema.TASK_SCHEMAS}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where (a JSON pointer, `` for the root) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


class InvalidDocumentError(Exception):
    """The document has problems; nothing may run."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false. Under YAML 1.1 (PyYAML's default)
    `on`, `off`, `yes`, `no` are booleans too, which turned `schedule: {on: ...}` into
    `{True: ...}`."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def parse(text: str) -> Any:
    """YAML (of which JSON is a subset) to plain data."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # (a SafeLoader)
    except yaml.YAMLError as error:
        raise InvalidDocumentError([Problem("", f"not valid YAML or JSON: {error}")]) from error


def load_file(path: pathlib.Path, dialect: str | None = None) -> dict[str, Any]:
    """Reads, parses and validates a document; raises InvalidDocumentError listing every problem.
    `dialect`: see `validate`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidDocumentError([Problem("", f"cannot read {path}: {error}")]) from error
    return load_text(text, dialect)


def load_text(text: str, dialect: str | None = None) -> dict[str, Any]:
    document = parse(text)
    problems = validate(document, dialect)
    if problems:
        raise InvalidDocumentError(problems)
    assert isinstance(document, dict)
    return document


def validate(document: Any, dialect: str | None = None) -> list[Problem]:
    """Every structural, expression and reference problem of `document`, in document order.

    `dialect` is `standard`, `zigflow`, or `auto`/None (detected from the document block: see
    dsl/dialects). A Zigflow document is first checked against Zigflow's own schema."""
    try:
        chosen = dialects.resolve(document, dialect)
    except dialects.UnknownDialectError as error:
        return [Problem("", str(error))]
    if chosen is Dialect.ZIGFLOW and isinstance(document, dict):
        document = zigflow.normalized(document)
        structural = zigflow.structural_problems(document)
        if structural:
            return [Problem(path, message) for path, message in structural]
    problems = _Validator(document, chosen).run()
    if isinstance(document, dict):
        problems += [Problem(u.path, u.message) for u in secret_references.undeclared(document)]
    return problems


def validate_input(document: dict[str, Any], value: Any) -> list[Problem]:
    """Checks a workflow input against the document's `input.schema`, if any."""
    definition = document.get("input", {}).get("schema")
    if definition is None:
        return []
    validator = jsonschema.Draft202012Validator(definition["document"])
    return [
        Problem(
            "/input" + "".join(f"/{model.escape_pointer(str(p))}" for p in error.absolute_path),
            f"workflow input does not match input.schema: {error.message}",
        )
        for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
    ]


class _Validator(ValueChecks, EventChecks):
    def __init__(self, document: Any, dialect: Dialect = Dialect.STANDARD) -> None:
        self.document = document
        self.problems: list[Problem] = []
        # Zigflow: its schema checked the structure; tasks may share a name; `run` tasks and
        # `call: activity|grpc` are checked there too; `$data`, `$env` and uuid() & co. exist.
        self.zigflow = dialect is Dialect.ZIGFLOW

    def run(self) -> list[Problem]:
        if not isinstance(self.document, dict):
            return [Problem("", "a workflow document must be a mapping")]
        if not self.zigflow:
            self._schema(self.document, schema.DOCUMENT, "", skip_task_lists=True)
        for path, message in budgets.problems(self.document):
            self._add(path, message)
        variables: tuple[str, ...] = expressions.STANDARD_VARIABLES
        if self.zigflow:
            variables += (*zigflow.VARIABLES, zigflow.FUNCTIONS_VARIABLE)
        workflow_input = self.document.get("input")
        if isinstance(workflow_input, dict):
            self._input_schema(workflow_input.get("schema"), "/input/schema")
            self._transform(workflow_input.get("from"), "/input/from", variables)
        output = self.document.get("output")
        if isinstance(output, dict):
            self._transform(output.get("as"), "/output/as", variables)
        self._duration_at(self.document.get("timeout"), "after", "/timeout", required=False)
        if isinstance(self.document.get("schedule"), dict) and not self.zigflow:
            self._schedule(self.document["schedule"], list(variables))
        uses = self.document.get("use")
        if isinstance(uses, dict) and isinstance(uses.get("retries"), dict):
            for name, policy in uses["retries"].items():
                self._retry_policy(policy, f"/use/retries/{model.escape_pointer(name)}", variables)
        tasks = self.document.get("do")
        if isinstance(tasks, list):
            self._task_list(tasks, "/do", variables)
        return self.problems

    def _add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def _schema(
        self, value: Any, definition: dict[str, Any], path: str, skip_task_lists: bool = False
    ) -> None:
        validator = jsonschema.Draft202012Validator(definition)
        for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path))):
            where = path + "".join(f"/{model.escape_pointer(str(p))}" for p in error.absolute_path)
            # The walk reports the inside of each task itself, with a sharper message.
            if skip_task_lists and len(error.absolute_path) > 2 and error.absolute_path[0] == "do":
                continue
            self._add(where, error.message)

    def _input_schema(self, definition: Any, path: str) -> None:
        if not isinstance(definition, dict) or not isinstance(definition.get("document"), dict):
            return
        try:
            jsonschema.Draft202012Validator.check_schema(definition["document"])
        except jsonschema.SchemaError as error:
            self._add(path + "/document", f"not a valid JSON Schema: {error.message}")

    def _task_list(self, tasks: list[Any], path: str, variables: Iterable[str]) -> None:
        names: list[str] = []
        entries: list[tuple[str, dict[str, Any], str]] = []
        for index, entry in enumerate(tasks):
            if not isinstance(entry, dict) or len(entry) != 1:
                self._add(f"{path}/{index}", "a task must be a single-key map `name: {...}`")
                continue
            ((name, definition),) = entry.items()
            task_path = f"{path}/{index}/{model.escape_pointer(str(name))}"
            if not isinstance(definition, dict):
                self._add(task_path, "a task definition must be a mapping")
                continue
            if name in names and not self.zigflow:
                self._add(task_path, f"duplicate task name {name!r} in this list")
            names.append(str(name))
            entries.append((str(name), definition, task_path))
        for _name, definition, task_path in entries:
            self._task(definition, task_path, list(variables), names)

    def _then(self, target: Any, path: str, siblings: list[str]) -> None:
        if self.zigflow and target in zigflow.workflow_types(self.document):
            return  # Zigflow runs another workflow of the file as a child, in the task's place.
        if isinstance(target, str) and target not in model.FLOW_DIRECTIVES + tuple(siblings):
            self._add(
                path,
                f"then: {target!r} is neither continue, exit, end nor a task of the same list "
                f"({', '.join(siblings)})",
            )

    def _task(
        self, task: dict[str, Any], path: str, variables: list[str], siblings: list[str]
    ) -> None:
        kind = model.task_type(task)
        if kind is None and self.zigflow and "run" in task:
            self._value_expressions(task["run"], path + "/run", variables)
            return
        if kind is None:
            unsupported = [key for key in model.UNSUPPORTED_TASK_TYPES if key in task]
            if unsupported:
                self._add(path, f"task type {unsupported[0]!r} is not supported")
            else:
                self._add(
                    path,
                    f"unknown task type (keys: {', '.join(map(str, task)) or 'none'}); expected "
                    f"one of {', '.join(model.SUPPORTED_TASK_TYPES)}",
                )
            return
        before = len(self.problems)
        self._schema(task, _TASK_SCHEMAS[kind], path)
        if len(self.problems) > before:
            return
        # Common fields.
        if "if" in task:
            self._condition(task["if"], path + "/if", variables)
        for field, key in (("input", "from"), ("output", "as"), ("export", "as")):
            if key in task.get(field, {}):
                self._transform(task[field][key], f"{path}/{field}/{key}", variables)
        for field in ("input", "output"):
            self._input_schema(task.get(field, {}).get("schema"), f"{path}/{field}/schema")
        self._duration_at(task.get("timeout"), "after", path + "/timeout", required=False)
        getattr(self, f"_task_{kind}")(task, path, variables, siblings)
        self._then(task.get("then"), path + "/then", siblings)

    def _task_set(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        self._value_expressions(task["set"], path + "/set", variables)

    def _task_call(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        function = task["call"]
        if self.zigflow and function in ("activity", "grpc"):
            self._value_expressions(task.get("with", {}), path + "/with", variables)
            return
        with_schema = schema.CALL_WITH_SCHEMAS.get(function)
        if with_schema is None:
            self._add(
                path + "/call",
                f"call {function!r} is not supported; expected one of "
                f"{', '.join(schema.CALL_WITH_SCHEMAS)}",
            )
            return
        arguments = task.get("with")
        if arguments is None:
            self._add(path, "call requires `with`")
            return
        before = len(self.problems)
        self._schema(arguments, with_schema, path + "/with")
        if len(self.problems) > before:
            return
        self._value_expressions(arguments, path + "/with", variables)
        if function == "agent":
            config = arguments.get("config", {})
            if "timeout" in config and not expressions.is_expression(config["timeout"]):
                self._duration(config["timeout"], path + "/with/config/timeout")

    def _task_switch(
        self, task: dict[str, Any], path: str, variables: list[str], siblings: list[str]
    ) -> None:
        defaults = 0
        for index, entry in enumerate(task["switch"]):
            ((name, case),) = entry.items()
            case_path = f"{path}/switch/{index}/{model.escape_pointer(name)}"
            if "when" in case:
                self._condition(case["when"], case_path + "/when", variables)
            else:
                defaults += 1
                if defaults > 1:
                    self._add(case_path, "a switch may have only one default case (without when)")
            self._then(case["then"], case_path + "/then", siblings)

    def _task_for(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        loop = task["for"]
        self._condition(loop["in"], path + "/for/in", variables)
        inner = [
            *variables,
            loop.get("each", model.DEFAULT_EACH),
            loop.get("at", model.DEFAULT_AT),
        ]
        if "while" in task:
            self._condition(task["while"], path + "/while", inner)
        self._task_list(task["do"], path + "/do", inner)

    def _task_fork(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        self._task_list(task["fork"]["branches"], path + "/fork/branches", variables)

    def _task_try(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        self._task_list(task["try"], path + "/try", variables)
        catch = task["catch"]
        inner = [*variables, catch.get("as", model.DEFAULT_ERROR_VARIABLE)]
        for key in ("when", "exceptWhen"):
            if key in catch:
                self._condition(catch[key], f"{path}/catch/{key}", inner)
        retry = catch.get("retry")
        if isinstance(retry, str):
            known = self.document.get("use", {}).get("retries", {})
            if retry not in known:
                self._add(
                    path + "/catch/retry", f"unknown retry policy {retry!r} (see use.retries)"
                )
        elif isinstance(retry, dict):
            before = len(self.problems)
            self._schema(retry, schema.RETRY_POLICY, path + "/catch/retry")
            if len(self.problems) == before:
                self._retry_policy(retry, path + "/catch/retry", inner)
        if "do" in catch:
            self._task_list(catch["do"], path + "/catch/do", inner)

    def _task_raise(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        error = task["raise"]["error"]
        if isinstance(error, str):
            if error not in self.document.get("use", {}).get("errors", {}):
                self._add(path + "/raise/error", f"unknown error {error!r} (see use.errors)")
            return
        before = len(self.problems)
        self._schema(error, schema.ERROR_DEFINITION, path + "/raise/error")
        if len(self.problems) == before:
            self._value_expressions(error, path + "/raise/error", variables)

    def _task_wait(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        if self.zigflow and zigflow.is_wait_extension(task["wait"]):
            self._value_expressions(task["wait"], path + "/wait", variables)
            return
        self._duration(task["wait"], path + "/wait")

    def _task_do(self, task: dict[str, Any], path: str, variables: list[str], _: list[str]) -> None:
        self._task_list(task["do"], path + "/do", variables)

    def _retry_policy(self, policy: Any, path: str, variables: Iterable[str]) -> None:
        if not isinstance(policy, dict):
            return
        if "delay" in policy:
            self._duration(policy["delay"], path + "/delay")
        for key in ("when", "exceptWhen"):
            if key in policy:
                self._condition(policy[key], f"{path}/{key}", variables)
        limit = policy.get("limit", {})
        self._duration_at(limit, "duration", path + "/limit", required=False)
        self._duration_at(limit.get("attempt"), "duration", path + "/limit/attempt", required=False)
