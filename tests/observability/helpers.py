"""What the observability tests share: an agent, a one-call workflow, metrics scraping."""

from __future__ import annotations

import asyncio
import re
import time

import grpc
import httpx
import yaml
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.commons.apiresource import metadata_pb2

ORG = "acme"
AGENT = "observed"


def one_call(message: str) -> dict[str, object]:
    """A DSL document with one agent call whose task output is the agent's answer."""
    document = yaml.safe_load(
        f"""
document: {{dsl: 1.0.0, namespace: observability, name: one-call, version: 1.0.0}}
do:
  - ask:
      call: agent
      with:
        agent: {AGENT}
        org: {ORG}
        message: placeholder
        config: {{model: offline/echo, timeout: PT2M}}
      output:
        as: '${{ {{answer: .output, execution: .execution_id}} }}'
"""
    )
    document["do"][0]["ask"]["with"]["message"] = message
    return dict(document)


async def create_agent(endpoint: str) -> None:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        await agent_command_grpc.AgentCommandServiceStub(channel).CreateAgent(
            agent_command_pb2.CreateAgentRequest(
                agent=agent_api_pb2.Agent(
                    metadata=metadata_pb2.ApiResourceMetadata(name=AGENT, slug=AGENT, org=ORG),
                    spec=agent_spec_pb2.AgentSpec(instructions="Answer.", model="offline/echo"),
                )
            ),
            timeout=10,
        )


async def scrape(address: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(f"http://{address}/metrics")
        reply.raise_for_status()
        return reply.text


def sample(page: str, name: str, labels: str = "") -> float | None:
    """The value of `name{labels}` on a Prometheus text page, None when absent."""
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, page, re.MULTILINE)
    return None if match is None else float(match.group(1))


async def wait_sample(
    address: str, name: str, labels: str, expected: float, timeout: float = 20.0
) -> str:
    """Scrapes until `name{labels}` equals `expected`; returns that page."""
    deadline = time.monotonic() + timeout
    page = ""
    while time.monotonic() < deadline:
        page = await scrape(address)
        if sample(page, name, labels) == expected:
            return page
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name}{{{labels}}} never became {expected}:\n{page}")
