"""`$env` of the Zigflow dialect: the worker's environment variables an operator lets documents
read, and nothing else.

As in Zigflow, only variables with a prefix (`ZIGGY_` unless STIGMER_WORKFLOW_ENV_PREFIX says
otherwise) are visible, without their prefix: `ZIGGY_API_URL` is `$env.API_URL`. A workflow reads
them once, through this activity, so a replay on another worker sees the same values. They are
in the workflow's history: secrets belong in `use.secrets`, never here.
"""

from __future__ import annotations

import os

from temporalio import activity

READ_ENV_ACTIVITY = "read_workflow_env"
PREFIX_VARIABLE = "STIGMER_WORKFLOW_ENV_PREFIX"
DEFAULT_PREFIX = "ZIGGY_"
# Bounds on what a run carries, whatever the operator's environment holds.
MAX_VARIABLES = 200
MAX_VALUE_CHARS = 4096


def visible(environ: dict[str, str], prefix: str) -> dict[str, str]:
    """The variables with `prefix`, without it (an empty prefix exposes nothing)."""
    if not prefix:
        return {}
    found = {
        name[len(prefix) :]: value[:MAX_VALUE_CHARS]
        for name, value in sorted(environ.items())
        if name.startswith(prefix) and len(name) > len(prefix)
    }
    return dict(list(found.items())[:MAX_VARIABLES])


def of_this_process() -> dict[str, str]:
    """The variables this process's environment lets documents read."""
    return visible(dict(os.environ), os.environ.get(PREFIX_VARIABLE, DEFAULT_PREFIX))


@activity.defn(name=READ_ENV_ACTIVITY)
async def read_workflow_env() -> dict[str, str]:
    return of_this_process()
