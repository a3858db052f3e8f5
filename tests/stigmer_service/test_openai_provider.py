"""The OpenAI-compatible provider against a real HTTP server on loopback."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from backend.common import contract
from backend.stigmer_service.providers.base import (
    ChatMessage,
    ModelCallError,
    ModelRequest,
    Usage,
)
from backend.stigmer_service.providers.catalog import Kind, ProviderConfig
from backend.stigmer_service.providers.openai import REASON_CHARS, OpenAIProvider
from tests.support import model_server
from tests.support.model_server import ModelServer, answer


@pytest.fixture
def fake() -> Iterator[ModelServer]:
    with model_server.serving() as server:
        yield server


def request() -> ModelRequest:
    return ModelRequest(
        agent_slug="a",
        model="tiny",
        messages=[ChatMessage("system", "Be brief."), ChatMessage("user", "hi")],
        env={"MY_KEY": "k-123"},
        secret_values=["k-123"],
        temperature=0.2,
        timeout=5,
    )


def provider(fake: ModelServer, **config: Any) -> OpenAIProvider:
    """The provider as the operator configured it: the fake's URL, the key from MY_KEY."""
    fields: dict[str, Any] = {"base_url": fake.base_url, "api_key_env": "MY_KEY"} | config
    return OpenAIProvider(
        ProviderConfig("local", Kind.OPENAI_COMPATIBLE, **fields), retry_wait=0.01
    )


async def test_success(fake: ModelServer) -> None:
    fake.script = [(200, answer("hello"))]
    assert await provider(fake).complete(request()) == "hello"
    seen = fake.seen[0]
    assert seen.path == "/v1/chat/completions"
    body, auth = json.loads(seen.body), seen.authorization
    assert body["model"] == "tiny" and body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    # The key from the variable the operator configured, here from the execution's runtime env.
    assert auth == "Bearer k-123"


async def test_429_then_success(fake: ModelServer) -> None:
    fake.script = [(429, {"error": "slow down"}), (503, {}), (200, answer("finally"))]
    assert await provider(fake).complete(request()) == "finally"
    assert len(fake.seen) == 3


async def test_persistent_5xx_is_transient(fake: ModelServer) -> None:
    fake.script = [(500, {})] * 3
    with pytest.raises(ModelCallError) as raised:
        await provider(fake).complete(request())
    assert raised.value.retryable and raised.value.error_type == contract.TRANSIENT_MODEL_ERROR


async def test_400_is_not_retried(fake: ModelServer) -> None:
    fake.script = [(400, {"error": {"message": "bad model"}}), (200, answer("never"))]
    with pytest.raises(ModelCallError) as raised:
        await provider(fake).complete(request())
    assert not raised.value.retryable
    assert raised.value.error_type == contract.MODEL_ERROR
    assert len(fake.seen) == 1


async def test_the_key_comes_from_the_configured_file(
    fake: ModelServer, tmp_path: pathlib.Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-key-1\n")
    fake.script = [(200, answer("hello"))]
    configured = provider(fake, api_key_env="", api_key_file=str(key_file))
    assert await configured.complete(request()) == "hello"
    assert fake.seen[0].authorization == "Bearer file-key-1"


async def test_a_4xx_body_is_not_returned_as_it_came(fake: ModelServer) -> None:
    """Finding 2: the error message (which Get returns) keeps the status and a short, masked
    reason; neither the key the body echoes nor the rest of the body."""
    leaked = "Incorrect API key provided: k-123. Internal trace: " + "x" * 2000
    fake.script = [(401, {"error": {"message": leaked}, "debug": "internal-host-10.0.0.7"})]
    with pytest.raises(ModelCallError) as raised:
        await provider(fake).complete(request())
    message = str(raised.value)
    assert message.startswith("model endpoint answered HTTP 401: Incorrect API key provided: ***")
    assert "k-123" not in message and "internal-host" not in message
    assert len(message) < REASON_CHARS + 40
    assert not raised.value.retryable


async def test_a_4xx_without_a_json_error_keeps_the_status_and_reason_phrase(
    fake: ModelServer,
) -> None:
    fake.script = [(404, {"detail": "secret-ish k-123 and more"})]
    with pytest.raises(ModelCallError) as raised:
        await provider(fake).complete(request())
    assert str(raised.value) == "model endpoint answered HTTP 404: Not Found"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}, Usage(12, 3)),
        (None, Usage()),
        ({"prompt_tokens": "12", "completion_tokens": 3}, Usage()),
        ({"prompt_tokens": True, "completion_tokens": 3}, Usage()),
        ({"prompt_tokens": -1, "completion_tokens": 3}, Usage()),
    ],
)
async def test_usage_is_what_the_endpoint_reported(
    fake: ModelServer, usage: dict[str, Any] | None, expected: Usage
) -> None:
    """OpenAI's `usage` object, as documented; anything malformed counts as none reported."""
    body = answer("hello")
    if usage is not None:
        body["usage"] = usage
    fake.script = [(200, body)]
    sent = request()
    assert await provider(fake).complete(sent) == "hello"
    assert sent.usage == expected
