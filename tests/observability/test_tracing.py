"""One trace from the caller's workflow through the gRPC create, the execution workflow, the model
call and the callback, with both components in-process and an in-memory span exporter."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from backend.common import temporal_dev_server, tracing
from backend.stigmer_service import app
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from tests.observability.helpers import AGENT, one_call
from tests.stigmer_service import caller
from tests.support import tickets
from tests.support.agents import create_agent
from tests.support.eventually import eventually
from tests.support.service import fast_settings, serving

CREATE = "/ai.stigmer.agentic.agentexecution.v1.AgentExecutionCommandService/CreateAgentExecution"
# (span name, a span it must descend from). Temporal's workflow spans are instants, so what a
# workflow starts hangs off the span that started the workflow, next to RunWorkflow.
EXPECTED_CHAIN = [
    ("StartWorkflow:DslWorkflow", None),
    ("RunWorkflow:DslWorkflow", "StartWorkflow:DslWorkflow"),
    ("StartActivity:call_agent", "StartWorkflow:DslWorkflow"),
    ("RunActivity:call_agent", "StartActivity:call_agent"),
    (CREATE, "RunActivity:call_agent"),
    ("StartWorkflow:AgentExecutionWorkflow", CREATE),
    ("RunWorkflow:AgentExecutionWorkflow", "StartWorkflow:AgentExecutionWorkflow"),
    ("RunActivity:run_agent", "StartWorkflow:AgentExecutionWorkflow"),
    ("model call", "RunActivity:run_agent"),
    # The activity that ran the agent calls the caller back itself.
    ("callback", "RunActivity:run_agent"),
]


@pytest_asyncio.fixture
async def exporter() -> AsyncIterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing.in_memory("observability-test", spans)
    try:
        yield spans
    finally:
        tracing.uninstall()


def tree(spans: Sequence[ReadableSpan]) -> list[str]:
    """`name  <- parent name` lines, in start order, for the closing note."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    lines = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = by_id.get(span.parent.span_id) if span.parent is not None else None
        depth, up = 0, parent
        while up is not None:
            depth += 1
            up = by_id.get(up.parent.span_id) if up.parent is not None else None
        lines.append(
            f"{'  ' * depth}{span.name}  <- {parent.name if parent else '(root)'}"
            f"  [{span.kind.name.lower()}]"
        )
    return lines


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    current = span
    while current.parent is not None and current.parent.span_id in by_id:
        current = by_id[current.parent.span_id]
        names.append(current.name)
    return names


async def test_one_trace_spans_the_caller_and_the_execution_workflow(
    exporter: InMemorySpanExporter,
    temporal_server: temporal_dev_server.DevServer,
    tmp_path: pathlib.Path,
) -> None:
    client = await Client.connect(
        temporal_server.address, interceptors=tracing.temporal_interceptors()
    )
    async with app.running(fast_settings(tmp_path), client=client) as service:
        await create_agent(service.address, AGENT)
        queue = f"traced-{uuid.uuid4()}"
        async with build_worker(client, queue, stigmer_endpoint=service.address):
            handle = await client.start_workflow(
                "DslWorkflow",
                DslRunInput(one_call("trace me"), {}),
                id=f"traced-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            result = await asyncio.wait_for(handle.result(), 40)
        assert result["answer"] == f"{AGENT}: trace me"

        async def callback_span_ended() -> None:
            names = [s.name for s in exporter.get_finished_spans()]
            assert "callback" in names, names

        # The callback span ends right after the caller resumed; give it a moment.
        await eventually(callback_span_ended, timeout=10, every=0.05)

    spans = list(exporter.get_finished_spans())
    print("\n".join(["", "trace:", *tree(spans)]))
    by_name: dict[str, ReadableSpan] = {}
    for span in spans:
        by_name.setdefault(span.name, span)
    missing = [name for name, _ in EXPECTED_CHAIN if name not in by_name]
    assert not missing, f"missing spans {missing}; got {sorted(by_name)}"

    trace_ids = {
        context.trace_id
        for name, _ in EXPECTED_CHAIN
        if (context := by_name[name].get_span_context()) is not None
    }
    assert len(trace_ids) == 1, "the workflow and the execution are in different traces"
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    for name, parent in EXPECTED_CHAIN:
        if parent is None:
            continue
        assert parent in ancestors(by_name[name], by_id), (name, ancestors(by_name[name], by_id))

    model = by_name["model call"]
    assert model.attributes is not None
    assert model.attributes["stigmer.model.provider"] == "offline"
    assert model.attributes["stigmer.model"] == "offline/echo"
    callback = by_name["callback"]
    assert callback.attributes is not None
    assert callback.attributes["stigmer.callback.outcome"] == "completed"
    assert callback.attributes["stigmer.handshake_id"] == model.attributes["stigmer.handshake_id"]


async def test_each_step_of_an_agent_with_tools_is_a_span(
    exporter: InMemorySpanExporter,
    temporal_server: temporal_dev_server.DevServer,
    tmp_path: pathlib.Path,
) -> None:
    """A turn that looks a ticket up, one that delegates to a sub-agent, one that answers: a
    span each ("agent turn", "tool call", "sub-agent"), in one trace with the caller, and the
    sub-agent's own execution going on from its delegation's span."""
    client = await Client.connect(
        temporal_server.address, interceptors=tracing.temporal_interceptors()
    )
    async with (
        serving(fast_settings(tmp_path), client) as stigmer,
        caller.running(client) as queue,
    ):
        await stigmer.agent("helper", model="offline/echo")
        lead = await stigmer.agent(
            "lead",
            model="offline/echo",
            mcp_servers=[tickets.stdio_server()],
            sub_agents=[agent_spec_pb2.SubAgent(name="helper", agent="helper")],
        )
        message = "\n".join(
            [
                '#tool=tickets.lookup_ticket:{"id": "T-1"}',
                '#tool=agents.helper:{"message": "\\u0023reply=noted"}',
            ]
        )
        handle = await caller.start(
            client,
            queue,
            caller.CallInput(
                stigmer.endpoint,
                lead.metadata.id,
                message,
                env=tickets.runtime_env(tmp_path / "comments.jsonl"),
            ),
        )
        result = await asyncio.wait_for(handle.result(), 60)
    parent_id = result["execution_id"]
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    print("\n".join(["", "trace:", *tree(spans)]))

    def of(name: str, execution_id: str) -> list[ReadableSpan]:
        return [
            s
            for s in spans
            if s.name == name
            and s.attributes is not None
            and s.attributes.get("stigmer.execution_id") == execution_id
        ]

    turns = of("agent turn", parent_id)
    assert [t.attributes["stigmer.step.index"] for t in turns if t.attributes] == [0, 1, 2]
    assert [t.attributes["stigmer.turn.tool_calls"] for t in turns if t.attributes] == [1, 1, 0]
    (tool,) = of("tool call", parent_id)
    assert tool.attributes is not None
    assert (tool.attributes["stigmer.step.index"], tool.attributes["stigmer.tool"]) == (
        0,
        "tickets.lookup_ticket",
    )
    (delegation,) = of("sub-agent", parent_id)
    assert delegation.attributes is not None
    assert delegation.attributes["stigmer.step.index"] == 1
    child_id = delegation.attributes["stigmer.sub_execution_id"]
    assert child_id
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    # Each step's span sits in the activity that ran it, and all in the caller's trace.
    assert "RunActivity:model_turn" in ancestors(turns[0], by_id)
    assert "RunActivity:call_tool" in ancestors(tool, by_id)
    assert "RunActivity:delegate" in ancestors(delegation, by_id)
    assert len({s.context.trace_id for s in [*turns, tool, delegation] if s.context}) == 1
    # The sub-agent's own model call descends from the delegation that started it.
    (child_model,) = (
        s
        for s in spans
        if s.name == "model call"
        and s.attributes is not None
        and s.attributes.get("stigmer.execution_id") == child_id
    )
    assert "sub-agent" in ancestors(child_model, by_id)
