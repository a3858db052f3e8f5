"""Rewrites a Zigflow-dialect document into standard DSL 1.0 where a standard form exists, and
names every construct that has none (`workflow-runner migrate`; table in docs/zigflow.md).

Pure functions over plain data. Paths are JSON pointers into the migrated document (for a
multi-workflow file: into the chosen workflow, whose tasks become the document's `do`).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from backend.workflow_runner.dsl import model
from backend.workflow_runner.dsl.dialects import migrate_expressions as scan
from backend.workflow_runner.dsl.dialects import zigflow

# The standard's name pattern (`document.name`, `document.namespace`).
NAME_PATTERN = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")

# Zigflow metadata with a runtime meaning that standard DSL 1.0 lacks: kept (metadata is
# free-form) but named, since a standard runner ignores it.
_DOCUMENT_METADATA_GAPS = {
    "activityOptions": "Temporal activity options; standard DSL has only a task `timeout` and "
    "`try.catch.retry`",
    "canMaxHistoryLength": "continue-as-new after N history events; standard DSL has no "
    "continue-as-new",
    "scheduleWorkflowName": "the worker creates a Temporal schedule starting this workflow; a "
    "standard `schedule` starts the document itself (workflow-runner schedule apply)",
    "scheduleId": "the id of the schedule the Zigflow worker creates; no standard form",
    "scheduleInput": "the input of scheduled runs; a standard `schedule` has no input",
}
_TASK_METADATA_GAPS = {
    "activityOptions": _DOCUMENT_METADATA_GAPS["activityOptions"],
    "heartbeat": "activity heartbeat interval; standard DSL has no heartbeats",
    "searchAttributes": "Temporal search attributes; standard DSL has no equivalent",
}
_RUN_REASON = (
    "standard DSL has `run` (container, script, shell, workflow), but this runner does not run "
    "`run` tasks in standard mode"
)


@dataclasses.dataclass(frozen=True)
class Change:
    """A construct rewritten into its standard form."""

    path: str
    construct: str
    action: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.construct}: {self.action}"


@dataclasses.dataclass(frozen=True)
class Gap:
    """A construct left as it was because standard DSL 1.0 (or this runner) has no form for it."""

    path: str
    construct: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.construct}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class Migration:
    document: dict[str, Any]
    changes: list[Change]
    unmigrated: list[Gap]


def migrate(document: dict[str, Any], workflow_type: str | None = None) -> Migration:
    """`document` (a valid Zigflow-dialect document) in standard DSL 1.0 where possible.

    A multi-workflow file becomes the one workflow `workflow_type` (default: the first); raises
    KeyError naming the known types when there is no such workflow."""
    state = _Migrator(document, workflow_type)
    state.run()
    return Migration(state.result, state.changes, state.gaps)


def covered(path: str, gaps: list[Gap]) -> bool:
    """Whether `path` is at or under the path of a gap (a problem there is already named)."""
    return any(path == gap.path or path.startswith(gap.path + "/") for gap in gaps)


class _Migrator:
    def __init__(self, document: dict[str, Any], workflow_type: str | None) -> None:
        self.raw = document
        self.source = zigflow.normalized(document)
        self.workflow_type = workflow_type
        self.result: dict[str, Any] = {}
        self.changes: list[Change] = []
        self.gaps: list[Gap] = []
        self.other_workflows: set[str] = set()
        self.input_exempt_prefix: str | None = None

    def change(self, path: str, construct: str, action: str) -> None:
        self.changes.append(Change(path, construct, action))

    def gap(self, path: str, construct: str, reason: str) -> None:
        self.gaps.append(Gap(path, construct, reason))

    def run(self) -> None:
        types = zigflow.workflow_types(self.source)
        selected = zigflow.select(self.source, self.workflow_type)
        self.result = copy.deepcopy(selected)
        if len(types) > 1 or types != [self.source.get("document", {}).get("workflowType")]:
            chosen = selected["document"]["workflowType"]
            self.other_workflows = set(types) - {chosen}
            note = f"the file defines {len(types)} workflows ({', '.join(types)}); "
            if self.workflow_type is None:
                self.gap(
                    "/do",
                    "multi-workflow file",
                    note + f"standard DSL has one per document: migrated {chosen!r} only "
                    "(choose with --workflow-type)",
                )
            else:
                self.change("/do", "multi-workflow file", note + f"migrated {chosen!r} only")
        self._header()
        self._schedule()
        tasks = self.result.get("do")
        if isinstance(tasks, list):
            self._first_task_exemption(tasks)
            self._task_list(tasks, "/do", "do")
        for key in list(self.result):
            if key not in ("document", "do", "schedule"):
                self.result[key] = self._expressions(self.result[key], f"/{key}")

    # -- the document block ----------------------------------------------------------------

    def _header(self) -> None:
        block = dict(self.result.get("document") or {})
        raw = self.raw.get("document")
        raw_block: dict[str, Any] = raw if isinstance(raw, dict) else {}
        metadata = dict(block.pop("metadata", None) or {})
        original: dict[str, Any] = {}
        names = {"taskQueue": "namespace", "workflowType": "name"}
        header: dict[str, Any] = {"dsl": block.pop("dsl", "1.0.0")}
        for zig_key, std_key in names.items():
            value = block.pop(zig_key, None)
            raw_key = zig_key if zig_key in raw_block else std_key
            new = scan.standard_name(value) if value is not None else "default"
            if raw_key != std_key or new != value:
                original[raw_key] = value
                became = f"became {std_key} {new!r}" if new != value else f"moved to {std_key}"
                self.change(
                    f"/document/{std_key}",
                    f"document.{raw_key}",
                    f"{value!r} {became} (original in document.metadata.zigflow)",
                )
            header[std_key] = new
        header.update(block)
        description = raw_block.get("description")
        if description is not None:
            if metadata.get("description") == description:
                del metadata["description"]  # put there by zigflow.normalized
            if "summary" not in header:
                header["summary"] = description
                self.change("/document/summary", "document.description", "moved to summary")
            else:
                metadata["description"] = description
                self.change(
                    "/document/metadata/description",
                    "document.description",
                    "moved to metadata (the document has a summary)",
                )
        for key, reason in _DOCUMENT_METADATA_GAPS.items():
            if key in metadata:
                self.gap(f"/document/metadata/{key}", f"metadata.{key}", reason)
        if original:
            metadata["zigflow"] = original
        if metadata:
            header["metadata"] = metadata
        self.result["document"] = header

    def _schedule(self) -> None:
        schedule = self.result.get("schedule")
        if isinstance(schedule, dict) and "every" in schedule and "cron" in schedule:
            self.gap(
                "/schedule",
                "schedule with every and cron",
                "Zigflow puts both on one Temporal schedule; a standard schedule has exactly "
                "one of every, cron, after, on",
            )

    # -- tasks ------------------------------------------------------------------------------

    def _first_task_exemption(self, tasks: list[Any]) -> None:
        # In the first task, the spec's `$input` is the workflow input too (unless an
        # `input.from` changed it), so Zigflow's `$input` can stay there.
        if not tasks or not isinstance(tasks[0], dict) or len(tasks[0]) != 1:
            return
        ((name, task),) = tasks[0].items()
        has_from = "from" in (self.result.get("input") or {}) or (
            isinstance(task, dict) and "from" in (task.get("input") or {})
        )
        if not has_from:
            self.input_exempt_prefix = f"/do/0/{model.escape_pointer(str(name))}"

    def _task_list(self, tasks: list[Any], path: str, kind: str) -> None:
        names = [next(iter(e)) for e in tasks if isinstance(e, dict) and len(e) == 1]
        targets = scan.then_targets(tasks)
        seen: dict[str, int] = {}
        after_other = False
        for index, entry in enumerate(tasks):
            if not isinstance(entry, dict) or len(entry) != 1:
                continue
            ((name, task),) = entry.items()
            task_path = f"{path}/{index}/{model.escape_pointer(str(name))}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                if name in targets:
                    self.gap(
                        task_path,
                        "duplicate task name",
                        f"{name!r} is a `then` target; which task it means is ambiguous",
                    )
                else:
                    new_name = scan.unused_name(f"{name}-{seen[name]}", names)
                    names.append(new_name)
                    tasks[index] = {new_name: task}
                    task_path = f"{path}/{index}/{model.escape_pointer(new_name)}"
                    self.change(task_path, "duplicate task name", f"{name!r} renamed {new_name!r}")
            if not isinstance(task, dict):
                continue
            is_plain_do = "do" in task and zigflow._is_plain_do(task)
            if kind == "do" and is_plain_do and after_other:
                self.gap(
                    task_path,
                    "do after a non-do task",
                    "Zigflow registers it as a workflow of its own, run only when named by "
                    "`then`; standard DSL runs it in sequence",
                )
                self.other_workflows.add(str(name))
            after_other = after_other or not is_plain_do
        for index, entry in enumerate(tasks):
            if isinstance(entry, dict) and len(entry) == 1:
                ((name, task),) = entry.items()
                if isinstance(task, dict):
                    self._task(task, f"{path}/{index}/{model.escape_pointer(str(name))}")

    def _task(self, task: dict[str, Any], path: str) -> None:
        metadata = task.get("metadata")
        if isinstance(metadata, dict):
            for key, reason in _TASK_METADATA_GAPS.items():
                if key in metadata:
                    self.gap(f"{path}/metadata/{key}", f"metadata.{key}", reason)
            if "listen" in task and "timeout" in metadata:
                self._listen_timeout(task, metadata, path)
        if task.get("call") in ("activity", "grpc"):
            reason = (
                "a Temporal activity; standard DSL has no activities"
                if task["call"] == "activity"
                else "standard DSL has call: grpc, but this runner supports only http and agent"
            )
            self.gap(path, f"call: {task['call']}", reason)
        if "run" in task:
            kinds = [k for k in ("container", "script", "shell", "workflow") if k in task["run"]]
            self.gap(path, f"run: {'/'.join(kinds) or '?'}", _RUN_REASON)
        if "listen" in task:
            self._listen(task["listen"], path)
        if "wait" in task and zigflow.is_wait_extension(task["wait"]):
            self.gap(
                f"{path}/wait",
                "wait with expressions or until",
                "a standard wait is a literal duration",
            )
        self._then(task.get("then"), f"{path}/then")
        for index, case in enumerate(task.get("switch") or []):
            for case_name, definition in case.items():
                if isinstance(definition, dict):
                    self._then(
                        definition.get("then"),
                        f"{path}/switch/{index}/{model.escape_pointer(case_name)}/then",
                    )
        for key, value in list(task.items()):
            if key in ("metadata", "do", "try", "catch", "fork"):
                continue
            task[key] = self._expressions(value, f"{path}/{key}")
        for key, sub_path, kind in (
            ("do", "/do", "do"),
            ("try", "/try", "do"),
        ):
            if isinstance(task.get(key), list):
                self._task_list(task[key], path + sub_path, kind)
        fork = task.get("fork")
        if isinstance(fork, dict):
            for key in fork:
                if key != "branches":
                    fork[key] = self._expressions(fork[key], f"{path}/fork/{key}")
            if isinstance(fork.get("branches"), list):
                self._task_list(fork["branches"], f"{path}/fork/branches", "branches")
        catch = task.get("catch")
        if isinstance(catch, dict):
            for key in catch:
                if key != "do":
                    catch[key] = self._expressions(catch[key], f"{path}/catch/{key}")
            if isinstance(catch.get("do"), list):
                self._task_list(catch["do"], f"{path}/catch/do", "do")

    def _listen(self, listen: Any, path: str) -> None:
        if not isinstance(listen, dict):
            return
        for spec in (listen.get("to") or {}).values():
            filters = spec if isinstance(spec, list) else [spec]
            for item in filters:
                if isinstance(item, dict) and item.get("with", {}).get("type") in (
                    zigflow.MESSAGE_TYPES
                ):
                    self.gap(
                        path,
                        f"listen type: {item['with']['type']}",
                        "a Temporal signal/query/update; a standard listen waits for "
                        "CloudEvents",
                    )
                    return

    def _listen_timeout(self, task: dict[str, Any], metadata: dict[str, Any], path: str) -> None:
        value = metadata["timeout"]
        if "timeout" in task:
            self.gap(f"{path}/metadata/timeout", "metadata.timeout", "the task has a timeout")
            return
        try:
            after = scan.go_duration_to_iso(str(value))
        except ValueError as error:
            self.gap(f"{path}/metadata/timeout", "metadata.timeout", str(error))
            return
        del metadata["timeout"]
        if not metadata:
            del task["metadata"]
        task["timeout"] = {"after": after}
        self.change(f"{path}/timeout/after", "listen metadata.timeout", f"{value!r} as {after}")

    def _then(self, target: Any, path: str) -> None:
        if isinstance(target, str) and target in self.other_workflows:
            self.gap(
                path,
                "then: <other workflow>",
                f"Zigflow runs workflow {target!r} as a child and continues; standard `then` "
                "jumps within the task list",
            )

    # -- expressions ------------------------------------------------------------------------

    def _expressions(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {
                k: self._expressions(v, f"{path}/{model.escape_pointer(str(k))}")
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._expressions(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, str) and (scan.is_expression_at(value, path)):
            return self._expression(value, path)
        return value

    def _expression(self, text: str, path: str) -> str:
        found = scan.scan(text)
        for construct, reason in found.gaps:
            self.gap(path, construct, reason)
        if (
            found.reads_dot
            and not path.endswith(("/output/as", "/export/as"))
            and ("/output/as/" not in path and "/export/as/" not in path)
        ):
            self.gap(
                path,
                ". (input)",
                "Zigflow evaluates a task's own fields with `.` null; standard DSL reads the "
                "task's input there, so the same expression would see other data",
            )
        if not found.reads_input or self._input_exempt(path):
            return text
        self.change(path, "$input", "Zigflow's $input is the workflow input: $workflow.input")
        return scan.workflow_input(text)

    def _input_exempt(self, path: str) -> bool:
        prefix = self.input_exempt_prefix
        if prefix is None or not path.startswith(prefix + "/"):
            return False
        rest = path[len(prefix) :]
        # Not in `if` or `input.from` (the spec gives them no $input), nor in nested tasks.
        nested = ("/do/", "/try/", "/fork/branches/", "/catch/do/", "/if", "/input/from")
        return not any(rest.startswith(start) for start in nested)
