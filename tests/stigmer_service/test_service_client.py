"""The typed client (auth, deadlines, each call) and the client commands the CLI test leaves out."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import grpc
import pytest
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, command_pb2, spec_pb2, status_pb2
from temporalio.client import Client
from typer.testing import CliRunner

from backend.stigmer_service import app
from backend.stigmer_service.cli import app as cli
from backend.stigmer_service.client import ServiceClient
from tests.support.service import Stubs, fast_settings


async def _ended(stigmer: Stubs, message: str) -> api_pb2.AgentExecution:
    agent = await stigmer.agent("echo")
    created = await stigmer.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(agent_id=agent.metadata.id, message=message)
            )
        )
    )
    async with ServiceClient(stigmer.endpoint) as client:
        states = [e async for e in client.watch_execution(created.metadata.id)]
    assert states[-1].status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    return states[-1]


async def test_each_call_of_the_client(stigmer: Stubs) -> None:
    done = await _ended(stigmer, "hello")
    async with ServiceClient(stigmer.endpoint) as client:
        agent = await client.get_agent(done.spec.agent_id)
        assert agent.metadata.slug == "echo"
        assert [a.metadata.id for a in await client.list_agents(agent.metadata.org)] == [
            agent.metadata.id
        ]
        assert (await client.get_execution(done.metadata.id)).status.output == done.status.output
        completed = await client.list_executions([status_pb2.EXECUTION_PHASE_COMPLETED])
        assert [e.metadata.id for e in completed] == [done.metadata.id]
        assert await client.list_executions([status_pb2.EXECUTION_PHASE_RUNNING]) == []
        # No caller handed a token, so no caller waits.
        assert (
            await client.list_all_executions(
                [status_pb2.CALLBACK_STATE_WAITING, status_pb2.CALLBACK_STATE_FAILED]
            )
            == []
        )
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await client.cancel_execution(done.metadata.id, "too late")
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as nothing:
            await client.redeliver_callback(done.metadata.id)
        assert nothing.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_watch_list_and_cancel_commands(stigmer: Stubs) -> None:
    done = await _ended(stigmer, "hi there")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, [*args, "--endpoint", stigmer.endpoint])

    watched = await asyncio.to_thread(invoke, "watch", done.metadata.id)
    assert watched.exit_code == 0, watched.output
    assert "[user] hi there" in watched.stdout
    assert watched.stdout.rstrip().endswith("phase: COMPLETED")
    listed = await asyncio.to_thread(invoke, "list", "executions", "--phase", "completed")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.startswith(f"{done.metadata.id}  COMPLETED  agent=")
    unknown = await asyncio.to_thread(invoke, "list", "executions", "--phase", "sleeping")
    assert unknown.exit_code == 2 and "unknown phase" in unknown.output
    cancelled = await asyncio.to_thread(invoke, "cancel", done.metadata.id)
    assert cancelled.exit_code == 1
    assert "error: FAILED_PRECONDITION:" in cancelled.output


async def test_bearer_token_from_the_environment(
    tmp_path: pathlib.Path, temporal_client: Client
) -> None:
    settings = fast_settings(tmp_path, api_token="s3cr3t-api-token")
    async with app.running(settings, client=temporal_client, run_worker=False) as service:
        async with ServiceClient(service.address) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await anonymous.list_agents()
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        async with ServiceClient(service.address, "s3cr3t-api-token") as client:
            assert await client.list_agents() == []
        runner = CliRunner()
        args = ["list", "agents", "--endpoint", service.address]
        without = await asyncio.to_thread(runner.invoke, cli, args)
        assert without.exit_code == 1 and "UNAUTHENTICATED" in without.output
        with_token = await asyncio.to_thread(
            runner.invoke, cli, args, env={"STIGMER_API_TOKEN": "s3cr3t-api-token"}
        )
        assert with_token.exit_code == 0 and with_token.stdout == ""


async def _never_answer(request: Any, context: Any) -> Any:
    await asyncio.Event().wait()


async def test_a_hung_service_fails_the_call_at_its_deadline() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                agent_query_pb2.DESCRIPTOR.services_by_name["AgentQueryService"].full_name,
                {
                    "GetAgent": grpc.unary_unary_rpc_method_handler(
                        _never_answer,
                        agent_query_pb2.GetAgentRequest.FromString,
                        agent_query_pb2.GetAgentRequest.SerializeToString,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with ServiceClient(f"127.0.0.1:{port}", deadline_seconds=0.3) as client:
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await asyncio.wait_for(client.get_agent("agt-x"), timeout=10)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await server.stop(None)
