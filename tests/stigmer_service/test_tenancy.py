"""Finding 5: every RPC is scoped to its caller's org and role (credentials from a file)."""

from __future__ import annotations

import grpc
import pytest
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)
from ai.stigmer.commons.apiresource import metadata_pb2, reference_pb2

from tests.support.agents import OFFLINE_MODEL
from tests.support.agents import agent as agent_resource
from tests.support.eventually import eventually
from tests.support.service import Stubs
from tests.support.tenants import (
    A_RUNNER,
    A_USER,
    A_USER2,
    B_SERVICE,
    B_USER,
    bearer,
    code_of,
)


async def watch_code(stubs: Stubs, execution_id: str, token: str) -> grpc.StatusCode:
    stream = stubs.queries.WatchAgentExecution(
        query_pb2.WatchAgentExecutionRequest(id=execution_id), metadata=bearer(token)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stream:
            pass
    return raised.value.code()


def execution(
    agent_id: str, org: str = "acme", key: str = "", token: bytes = b"", session: str = ""
) -> command_pb2.CreateAgentExecutionRequest:
    return command_pb2.CreateAgentExecutionRequest(
        execution=api_pb2.AgentExecution(
            metadata=metadata_pb2.ApiResourceMetadata(org=org),
            spec=spec_pb2.AgentExecutionSpec(
                agent_id=agent_id,
                message="hello",
                idempotency_key=key,
                callback_token=token,
                session_id=session,
            ),
        )
    )


async def acme_agent(stubs: Stubs, slug: str = "echo") -> str:
    created = await stubs.agents.ApplyAgent(
        agent_command_pb2.ApplyAgentRequest(
            agent=agent_resource(slug, "acme", instructions="Answer.", model=OFFLINE_MODEL)
        ),
        metadata=bearer(A_USER),
    )
    return created.metadata.id


async def test_another_orgs_execution_does_not_exist_for_the_caller(scoped: Stubs) -> None:
    agent_id = await acme_agent(scoped)
    created = await scoped.executions.CreateAgentExecution(
        execution(agent_id), metadata=bearer(A_USER)
    )
    eid, b, s = created.metadata.id, bearer(B_USER), bearer(B_SERVICE)
    not_found = grpc.StatusCode.NOT_FOUND
    q, x = scoped.queries, scoped.executions
    assert (
        await code_of(q.GetAgentExecution(query_pb2.GetAgentExecutionRequest(id=eid), metadata=b))
        == not_found
    )
    assert await watch_code(scoped, eid, B_USER) == not_found
    assert (
        await code_of(
            x.CancelAgentExecution(command_pb2.CancelAgentExecutionRequest(id=eid), metadata=b)
        )
        == not_found
    )
    assert (
        await code_of(
            x.DeleteAgentExecution(command_pb2.DeleteAgentExecutionRequest(id=eid), metadata=b)
        )
        == not_found
    )
    # Another org's service role cannot forge an answer nor redeliver.
    forged = command_pb2.UpdateAgentExecutionStatusRequest(
        id=eid, phase=status_pb2.EXECUTION_PHASE_COMPLETED, output="forged"
    )
    assert await code_of(x.UpdateAgentExecutionStatus(forged, metadata=s)) == not_found
    assert (
        await code_of(x.RedeliverCallback(command_pb2.RedeliverCallbackRequest(id=eid), metadata=s))
        == not_found
    )
    listed = await q.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest(), metadata=b)
    assert list(listed.executions) == []
    mine = await q.ListAgentExecutions(
        query_pb2.ListAgentExecutionsRequest(), metadata=bearer(A_USER)
    )
    assert [e.metadata.id for e in mine.executions] == [eid]
    # The owner sees it, untouched.
    got = await q.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=eid), metadata=bearer(A_USER)
    )
    assert got.status.output != "forged"


async def test_another_orgs_agent_cannot_be_read_changed_or_used(scoped: Stubs) -> None:
    agent_id = await acme_agent(scoped)
    b = bearer(B_USER)
    not_found = grpc.StatusCode.NOT_FOUND
    aq, ac = scoped.agent_queries, scoped.agents
    assert (
        await code_of(aq.GetAgent(agent_query_pb2.GetAgentRequest(id=agent_id), metadata=b))
        == not_found
    )
    by_ref = agent_query_pb2.GetAgentByReferenceRequest(
        ref=reference_pb2.ApiResourceReference(
            scope=reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION, org="acme", slug="echo"
        )
    )
    assert await code_of(aq.GetAgentByReference(by_ref, metadata=b)) == not_found
    listed = await aq.ListAgents(agent_query_pb2.ListAgentsRequest(org="acme"), metadata=b)
    assert list(listed.agents) == []
    assert (
        await code_of(ac.DeleteAgent(agent_command_pb2.DeleteAgentRequest(id=agent_id), metadata=b))
        == not_found
    )
    update = agent_command_pb2.UpdateAgentRequest(agent=agent_resource("echo", "acme"))
    update.agent.metadata.id = agent_id
    assert await code_of(ac.UpdateAgent(update, metadata=b)) == not_found
    # An execution of org beta may not run acme's agent; org acme is not beta's to create in.
    x = scoped.executions
    assert (
        await code_of(x.CreateAgentExecution(execution(agent_id, org="beta"), metadata=b))
        == not_found
    )
    assert await code_of(x.CreateAgentExecution(execution(agent_id), metadata=b)) == not_found
    own = await ac.ApplyAgent(
        agent_command_pb2.ApplyAgentRequest(agent=agent_resource("mine", "beta")), metadata=b
    )
    in_acme = execution(own.metadata.id, org="acme")
    assert (
        await code_of(x.CreateAgentExecution(in_acme, metadata=b))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        await code_of(
            ac.ApplyAgent(
                agent_command_pb2.ApplyAgentRequest(agent=agent_resource("x", "acme")), metadata=b
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )


async def test_sessions_are_found_by_org_and_session_id(scoped: Stubs) -> None:
    agent_id = await acme_agent(scoped)
    first = await scoped.executions.CreateAgentExecution(
        execution(agent_id, session="ses-shared"), metadata=bearer(A_USER)
    )
    assert first.spec.session_id == "ses-shared"
    # Beta names acme's session without an agent: the session does not exist in beta.
    request = execution("", org="beta", session="ses-shared")
    assert (
        await code_of(scoped.executions.CreateAgentExecution(request, metadata=bearer(B_USER)))
        == grpc.StatusCode.NOT_FOUND
    )
    # With an agent of its own, beta's execution of that session id sees no acme history.
    beta_agent = await scoped.agents.ApplyAgent(
        agent_command_pb2.ApplyAgentRequest(
            agent=agent_resource("echo", "beta", instructions="Answer.", model=OFFLINE_MODEL)
        ),
        metadata=bearer(B_USER),
    )
    beta = await scoped.executions.CreateAgentExecution(
        execution(beta_agent.metadata.id, org="beta", session="ses-shared"), metadata=bearer(B_USER)
    )
    store = scoped.service.store
    history = await store.session_history(await store.get_execution(beta.metadata.id))
    assert history == []


async def test_roles_limit_the_methods(scoped: Stubs) -> None:
    agent_id = await acme_agent(scoped)
    created = await scoped.executions.CreateAgentExecution(
        execution(agent_id), metadata=bearer(A_RUNNER)
    )
    eid = created.metadata.id
    denied = grpc.StatusCode.PERMISSION_DENIED
    update = command_pb2.UpdateAgentExecutionStatusRequest(
        id=eid, phase=status_pb2.EXECUTION_PHASE_COMPLETED, output="forged"
    )
    # Status updates and redelivery are the service role's.
    assert (
        await code_of(scoped.executions.UpdateAgentExecutionStatus(update, metadata=bearer(A_USER)))
        == denied
    )
    assert (
        await code_of(
            scoped.executions.UpdateAgentExecutionStatus(update, metadata=bearer(A_RUNNER))
        )
        == denied
    )
    # The runner creates and cancels; it reads no executions.
    get = query_pb2.GetAgentExecutionRequest(id=eid)
    assert await code_of(scoped.queries.GetAgentExecution(get, metadata=bearer(A_RUNNER))) == denied
    # A runner cancels only what it created.
    other = await scoped.executions.CreateAgentExecution(
        execution(agent_id), metadata=bearer(A_USER)
    )
    cancel = command_pb2.CancelAgentExecutionRequest(id=other.metadata.id)
    assert (
        await code_of(scoped.executions.CancelAgentExecution(cancel, metadata=bearer(A_RUNNER)))
        == grpc.StatusCode.NOT_FOUND
    )
    # No token or an unknown one: UNAUTHENTICATED.
    assert await code_of(scoped.queries.GetAgentExecution(get)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        await code_of(scoped.queries.GetAgentExecution(get, metadata=bearer("nope")))
        == grpc.StatusCode.UNAUTHENTICATED
    )


async def test_a_listed_idempotency_key_does_not_take_over_the_callback(scoped: Stubs) -> None:
    agent_id = await acme_agent(scoped)
    request = execution(agent_id, key="wf/run/1", token=b"caller-token-1")
    first = await scoped.executions.CreateAgentExecution(request, metadata=bearer(A_RUNNER))
    stolen = execution(agent_id, key="wf/run/1", token=b"attacker-token")
    assert (
        await code_of(scoped.executions.CreateAgentExecution(stolen, metadata=bearer(A_USER2)))
        == grpc.StatusCode.ALREADY_EXISTS
    )
    # Another org's same key is its own execution, never this one.
    b_agent = await scoped.agents.ApplyAgent(
        agent_command_pb2.ApplyAgentRequest(
            agent=agent_resource("echo", "beta", instructions="Answer.", model=OFFLINE_MODEL)
        ),
        metadata=bearer(B_USER),
    )
    other = execution(b_agent.metadata.id, org="beta", key="wf/run/1", token=b"attacker-token")
    theirs = await scoped.executions.CreateAgentExecution(other, metadata=bearer(B_USER))
    assert theirs.metadata.id != first.metadata.id
    delivery = await scoped.service.store.for_delivery(first.metadata.id)
    assert delivery.token == b"caller-token-1"
    # The same credential re-creating (a retried caller) still replaces its token.
    again = execution(agent_id, key="wf/run/1", token=b"caller-token-2")
    same = await scoped.executions.CreateAgentExecution(again, metadata=bearer(A_RUNNER))
    assert same.metadata.id == first.metadata.id

    async def replaced() -> None:
        assert (
            await scoped.service.store.for_delivery(first.metadata.id)
        ).token == b"caller-token-2"

    await eventually(replaced, timeout=5)


def by_reference(
    org: str, slug: str, scope: reference_pb2.ApiResourceOwnerScope.ValueType
) -> command_pb2.CreateAgentExecutionRequest:
    """A create naming its agent by reference (what the workflow runner sends: one RPC)."""
    request = execution("", org=org)
    request.execution.spec.agent_ref.CopyFrom(
        reference_pb2.ApiResourceReference(scope=scope, org=org, slug=slug)
    )
    return request


async def test_a_create_by_reference_finds_only_what_the_caller_may_see(scoped: Stubs) -> None:
    agent_id = await acme_agent(scoped)
    org_scope = reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION
    created = await scoped.executions.CreateAgentExecution(
        by_reference("acme", "echo", org_scope), metadata=bearer(A_RUNNER)
    )
    assert created.spec.agent_id == agent_id and created.metadata.org == "acme"
    # Another org's agent by reference does not exist for the caller, as by id.
    foreign = by_reference("acme", "echo", org_scope)
    foreign.execution.metadata.org = "beta"
    assert (
        await code_of(scoped.executions.CreateAgentExecution(foreign, metadata=bearer(B_USER)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        await code_of(
            scoped.executions.CreateAgentExecution(
                by_reference("acme", "nope", org_scope), metadata=bearer(A_USER)
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )


async def test_a_bad_reference_names_its_field(scoped: Stubs) -> None:
    request = by_reference("acme", "", reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scoped.executions.CreateAgentExecution(request, metadata=bearer(A_USER))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.agent_ref.slug" in (raised.value.details() or "")
