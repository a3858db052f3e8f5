"""The workflow sandbox of our workers, with our own modules passed through.

Temporal's sandbox re-imports, for every new workflow run, each module the workflow imports that is
not passed through: with the DSL engine and its models that was about 500 `compile`/`exec` calls
per run, most of a worker's CPU for a short workflow (see docs/benchmarks.md). Our modules keep no
mutable state at import time, and workflow code stays deterministic by its own rules (no I/O, time
from `workflow.now()`), so they are passed through like the standard library. The sandbox still
checks what workflow code calls at run time.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Top-level packages imported once per process instead of once per workflow run.
PASSTHROUGH = ("backend", "ai", "google.protobuf", "jq", "jsonschema", "uritemplate", "yaml")


def workflow_runner(*extra_passthrough: str) -> SandboxedWorkflowRunner:
    """The sandbox with `PASSTHROUGH` and the caller's own packages (e.g. a benchmark's) passed
    through, so that this module names no package outside `backend`."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            *PASSTHROUGH, *extra_passthrough
        )
    )
