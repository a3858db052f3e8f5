"""The service with an OpenAI-compatible provider at the scripted model server
(tests/support/model_server.py), and Chat Completions function calling as OpenAI documents it:
the answers a test scripts and the requests it reads back."""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import Client

from tests.support.model_server import ModelServer
from tests.support.service import Stubs, fast_settings, serving

# The provider's name in the service's providers file: agents name their model "fake/<model>".
PROVIDER = "fake"


@contextlib.asynccontextmanager
async def served_by(
    fake: ModelServer, tmp_path: pathlib.Path, client: Client
) -> AsyncIterator[Stubs]:
    """The service in-process whose provider `fake` (kind openai-compatible) is `fake`."""
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        f"providers:\n  {PROVIDER}: {{kind: openai-compatible, base_url: '{fake.base_url}'}}\n",
        encoding="utf-8",
    )
    async with serving(fast_settings(tmp_path, providers_file=str(providers)), client) as stubs:
        yield stubs


def tool_calls(*calls: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """An answer whose assistant message calls tools, each `(id, function name, arguments)`;
    the arguments travel as a JSON string, as OpenAI sends them."""
    return {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)},
                        }
                        for call_id, name, arguments in calls
                    ],
                },
            }
        ]
    }


def requests(fake: ModelServer) -> list[dict[str, Any]]:
    """The JSON bodies of every Chat Completions request the fake received, in order."""
    assert all(seen.path.endswith("/chat/completions") for seen in fake.seen)
    return [json.loads(seen.body) for seen in fake.seen]


def functions(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request's tools by function name, each checked to be a function tool."""
    tools = request.get("tools") or []
    assert all(tool["type"] == "function" for tool in tools), tools
    return {tool["function"]["name"]: tool["function"] for tool in tools}


def assistant_calls(message: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """An assistant message's tool calls as `(id, function name, arguments)`, each checked to
    be a function call whose arguments are a JSON string."""
    assert message["role"] == "assistant", message
    found = []
    for call in message["tool_calls"]:
        assert call["type"] == "function", call
        assert isinstance(call["function"]["arguments"], str), call
        found.append(
            (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"]))
        )
    return found
