"""Dataclasses that cross the Temporal boundary: the workflow's input, and the HTTP activity's."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class DslRunInput:
    """One run: the whole (validated) document travels with it, so workers never need a restart."""

    document: dict[str, Any]
    input: Any = None
    # `standard` or `zigflow` (dsl/dialects): how the document is read; chosen by the client.
    dialect: str = "standard"
    # Zigflow: which workflow of a file that defines several (None: the first); the whole file
    # travels, since its workflows can run one another (`run: workflow`, `then: <workflow>`).
    workflow_type: str | None = None
    # Zigflow: the state a run continued as new starts from (zigflow_tasks.checkpoint).
    resume: dict[str, Any] | None = None


@dataclasses.dataclass
class ActivityCallInput:
    """A Zigflow `call: activity`: an activity of another worker, by name, on its task queue;
    `metadata.activityOptions` (absent ones: the runner's defaults)."""

    name: str
    task_queue: str
    arguments: list[Any] = dataclasses.field(default_factory=list)
    task_path: str = ""
    activity_options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunProcessInput:
    """A Zigflow `run: shell` or `run: script` task with every expression evaluated: one process
    on the worker (run_tasks.py), which runs it only when its operator allows the kind."""

    kind: str  # shell | script
    # shell: the program, run with `arguments` as its argv (never through a shell).
    command: str = ""
    arguments: list[str] = dataclasses.field(default_factory=list)
    # The process's whole environment besides PATH: the worker's own never reaches it.
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    # script: `js` or `python`, and either its code or a `file://` source.
    language: str = ""
    code: str = ""
    source: str = ""
    stdin: str | None = None
    # stdout | stderr | code | all | none (the DSL's `run.return`).
    return_mode: str = "stdout"
    timeout_seconds: float = 60.0
    heartbeat_seconds: float | None = None
    heartbeat_timeout_seconds: float | None = None
    maximum_attempts: int | None = None
    task_path: str = ""


@dataclasses.dataclass
class RunProcessOutput:
    """The task's raw output, already shaped by the return mode."""

    value: Any


@dataclasses.dataclass
class ProgressEntry:
    """A task that finished (completed, skipped or failed), as the `progress` query reports it."""

    path: str
    status: str
    error_type: str = ""


@dataclasses.dataclass
class HttpCallInput:
    """A `call: http` task with every expression evaluated."""

    method: str
    uri: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None
    output: str = "content"  # raw | content | response
    redirect: bool = False
    task_path: str = ""
    # Inside a `try`: the document's own catch and retry govern this call's errors, so the
    # engine makes one attempt and hands any failure to it at once.
    document_handles_errors: bool = False
    # The run's seal and the names `use.secrets` declares: the activity resolves only
    # placeholders that carry both (agent_call.models.SecretScope).
    secret_seal: str = ""
    secret_names: list[str] = dataclasses.field(default_factory=list)
    # Zigflow: `metadata.activityOptions` (dsl/dialects/zigflow.py::activity_options) replace the
    # engine's defaults for this call's activity.
    activity_options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class HttpCallOutput:
    """The task's raw output, already shaped by the `output` mode."""

    value: Any
