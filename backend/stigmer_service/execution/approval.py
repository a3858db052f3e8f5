"""Human approval of tool calls: which calls wait, and what the model hears when one does not run.

Pure functions, used by the workflow (deterministic: they read only the policy fixed at its
start), by the model-turn activity (which records a gated call as awaiting) and by the API (which
records a rejection as the model will hear it): one home for the rules and the wording.
"""

from __future__ import annotations

from typing import Any

from backend.stigmer_service.execution.models import ApprovalPolicy, LoopToolCall
from backend.stigmer_service.store import documents

# How long a gated call waits for a decision when the agent sets no timeout.
DEFAULT_TIMEOUT_SECONDS = 3600.0


def policy(spec: dict[str, Any]) -> ApprovalPolicy | None:
    """The approval policy of a stored agent spec (proto JSON); None when no call waits."""
    document = spec.get("toolApproval") or {}
    mode = document.get("mode", "")
    if mode not in ("TOOL_APPROVAL_MODE_LISTED", "TOOL_APPROVAL_MODE_ALL"):
        return None
    timeout = documents.duration(document.get("timeout"))
    return ApprovalPolicy(
        every_tool=mode == "TOOL_APPROVAL_MODE_ALL",
        tools=[str(t) for t in document.get("tools", [])],
        timeout_seconds=timeout.total_seconds() if timeout else DEFAULT_TIMEOUT_SECONDS,
        fail_on_timeout=document.get("onTimeout") == "APPROVAL_TIMEOUT_ACTION_FAIL",
    )


def gated(policy: ApprovalPolicy | None, call: LoopToolCall) -> bool:
    """Whether the call waits for approval. A name that is no tool of the agent's (empty
    server) never runs anyway, so it never waits."""
    if policy is None or not call.server:
        return False
    return policy.every_tool or f"{call.server}.{call.tool}" in policy.tools


def rejection(decided_by: str, reason: str) -> str:
    """The tool result the model gets for a rejected call."""
    text = f"the tool call was rejected by {decided_by or 'a reviewer'}"
    return f"{text}: {reason}" if reason else text


def timed_out(timeout_seconds: float) -> str:
    """The tool result (or the execution's error) when nobody decided in time."""
    return f"the tool call was not approved within {timeout_seconds:g}s"
