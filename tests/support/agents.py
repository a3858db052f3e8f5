"""The test agent: one way to describe it, one way to create it on a running service."""

from __future__ import annotations

from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_pb2_grpc
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.commons.apiresource import metadata_pb2

ORG = "acme"
# The offline provider answers "<agent slug>: <message>" and obeys directives in the message.
OFFLINE_MODEL = "offline/echo"


def agent(slug: str, org: str = ORG, **spec: Any) -> agent_api_pb2.Agent:
    """An agent named and slugged `slug` in `org`, with `spec`'s fields."""
    return agent_api_pb2.Agent(
        metadata=metadata_pb2.ApiResourceMetadata(name=slug, slug=slug, org=org),
        spec=agent_spec_pb2.AgentSpec(**spec),
    )


async def create_agent(
    endpoint: str, slug: str, org: str = ORG, instructions: str = "Answer."
) -> None:
    """Creates the offline agent the workflow documents of the tests call."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        await agent_command_pb2_grpc.AgentCommandServiceStub(channel).CreateAgent(
            agent_command_pb2.CreateAgentRequest(
                agent=agent(slug, org, instructions=instructions, model=OFFLINE_MODEL)
            ),
            timeout=10,
        )
