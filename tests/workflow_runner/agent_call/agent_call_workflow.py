"""A tiny workflow that makes one agent call through `run_agent_call`, as the DSL engine does."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from backend.workflow_runner.agent_call.models import CallAgentInput
    from backend.workflow_runner.agent_call.workflow_api import run_agent_call


@workflow.defn
class AgentCallWorkflow:
    @workflow.run
    async def run(self, call: CallAgentInput) -> dict[str, Any]:
        return await run_agent_call(call)
