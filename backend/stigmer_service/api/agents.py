"""Agent command and query servicers."""

from __future__ import annotations

from typing import Any

from ai.stigmer.agentic.agent.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from google.protobuf import empty_pb2, field_mask_pb2

from backend.stigmer_service import convert, ids
from backend.stigmer_service.api import paging, tenancy, validation
from backend.stigmer_service.errors import InvalidArgument
from backend.stigmer_service.providers import agent_options
from backend.stigmer_service.store.records import PageCursor
from backend.stigmer_service.store.repository import Store

_UPDATABLE = ("metadata.name", "metadata.labels", "metadata.annotations", "spec")


def _writable(agent: api_pb2.Agent, field: str) -> dict[str, Any]:
    """The writable fields of an agent in a create/apply request, checked."""
    if not agent.HasField("metadata"):
        raise InvalidArgument(f"{field}.metadata", "is required")
    slug = agent.metadata.slug or ids.slugify(agent.metadata.name)
    if not slug:
        raise InvalidArgument(f"{field}.metadata.name", "must not be empty (or set metadata.slug)")
    validation.slug(slug, f"{field}.metadata.slug")
    validation.model(agent.spec.model, f"{field}.spec.model")
    agent_options.check(agent.spec.model_options, f"{field}.spec.model_options")
    validation.agent_tools(agent.spec, f"{field}.spec")
    return {
        "org": tenancy.require_org(agent.metadata.org, f"{field}.metadata.org"),
        "slug": slug,
        "name": agent.metadata.name or slug,
        "labels": dict(agent.metadata.labels),
        "annotations": dict(agent.metadata.annotations),
        "spec": convert.to_json(agent.spec),
    }


@validation.checked
class AgentCommandService(command_pb2_grpc.AgentCommandServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def CreateAgent(
        self, request: command_pb2.CreateAgentRequest, context: Any
    ) -> api_pb2.Agent:
        fields = _writable(request.agent, "agent")
        return convert.agent_to_proto(await self.store.create_agent(**fields))

    async def ApplyAgent(
        self, request: command_pb2.ApplyAgentRequest, context: Any
    ) -> api_pb2.Agent:
        fields = _writable(request.agent, "agent")
        return convert.agent_to_proto(await self.store.apply_agent(**fields))

    async def UpdateAgent(
        self, request: command_pb2.UpdateAgentRequest, context: Any
    ) -> api_pb2.Agent:
        agent_id = validation.required(request.agent.metadata.id, "agent.metadata.id")
        agent_options.check(request.agent.spec.model_options, "agent.spec.model_options")
        current = convert.agent_to_proto(await tenancy.writable_agent(self.store, agent_id))
        paths = validation.update_mask(
            request.update_mask.paths or _UPDATABLE,
            api_pb2.Agent.DESCRIPTOR,
            _UPDATABLE,
            "update_mask",
        )
        field_mask_pb2.FieldMask(paths=paths).MergeMessage(
            request.agent, current, replace_message_field=True, replace_repeated_field=True
        )
        validation.model(current.spec.model, "agent.spec.model")
        validation.agent_tools(current.spec, "agent.spec")
        fields = {
            "name": current.metadata.name,
            "labels": dict(current.metadata.labels),
            "annotations": dict(current.metadata.annotations),
            "spec": convert.to_json(current.spec),
        }
        record = await self.store.update_agent(
            agent_id, fields, expected_version=request.agent.metadata.version
        )
        return convert.agent_to_proto(record)

    async def DeleteAgent(
        self, request: command_pb2.DeleteAgentRequest, context: Any
    ) -> empty_pb2.Empty:
        agent_id = validation.required(request.id, "id")
        await tenancy.writable_agent(self.store, agent_id)
        await self.store.delete_agent(agent_id)
        return empty_pb2.Empty()


@validation.checked
class AgentQueryService(query_pb2_grpc.AgentQueryServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def GetAgent(self, request: query_pb2.GetAgentRequest, context: Any) -> api_pb2.Agent:
        return convert.agent_to_proto(
            await tenancy.readable_agent(self.store, validation.required(request.id, "id"))
        )

    async def GetAgentByReference(
        self, request: query_pb2.GetAgentByReferenceRequest, context: Any
    ) -> api_pb2.Agent:
        return convert.agent_to_proto(
            await tenancy.agent_by_reference(self.store, request.ref, "ref")
        )

    async def ListAgents(
        self, request: query_pb2.ListAgentsRequest, context: Any
    ) -> query_pb2.ListAgentsResponse:
        page = paging.request(request.page_size, request.page_token)
        if not tenancy.reference_visible(request.org):
            return query_pb2.ListAgentsResponse()  # Another org's agents do not exist here.
        records, more = await self.store.list_agents(
            org=request.org, labels=dict(request.label_selector), after=page.after, limit=page.limit
        )
        last = PageCursor(records[-1].created_at, records[-1].id) if records else None
        return query_pb2.ListAgentsResponse(
            agents=[convert.agent_to_proto(r) for r in records],
            next_page_token=paging.next_token(last, more),
        )
