"""What the observability tests share: their agent, its one-call workflow, metrics scraping."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support import documents
from tests.support.agents import ORG
from tests.support.eventually import eventually

AGENT = "observed"


def one_call(message: str) -> dict[str, Any]:
    """A DSL document with one call of this folder's agent; its output is the agent's answer."""
    return documents.one_call(AGENT, ORG, message, namespace="observability")


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

    async def reached() -> str:
        page = await scrape(address)
        assert (
            sample(page, name, labels) == expected
        ), f"{name}{{{labels}}} is not {expected}:\n{page}"
        return page

    return await eventually(reached, timeout=timeout, every=0.2)
