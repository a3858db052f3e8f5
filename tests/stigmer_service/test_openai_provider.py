"""The OpenAI-compatible provider against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import json
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from backend.common import contract
from backend.stigmer_service.providers.base import ChatMessage, ModelCallError, ModelRequest
from backend.stigmer_service.providers.catalog import Kind, ProviderConfig
from backend.stigmer_service.providers.openai import REASON_CHARS, OpenAIProvider


class FakeOpenAI(http.server.ThreadingHTTPServer):
    """Answers /chat/completions with the next scripted (status, body) and records requests."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.requests: list[tuple[dict[str, Any], str]] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(http.server.BaseHTTPRequestHandler):
    server: FakeOpenAI

    def do_POST(self) -> None:
        assert self.path == "/v1/chat/completions"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((body, self.headers.get("Authorization", "")))
        status, answer = self.server.script.pop(0)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


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


def provider(fake: FakeOpenAI, **config: Any) -> OpenAIProvider:
    """The provider as the operator configured it: the fake's URL, the key from MY_KEY."""
    fields: dict[str, Any] = {"base_url": fake.base_url, "api_key_env": "MY_KEY"} | config
    return OpenAIProvider(
        ProviderConfig("local", Kind.OPENAI_COMPATIBLE, **fields), retry_wait=0.01
    )


def answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


async def test_success(fake: FakeOpenAI) -> None:
    fake.script = [(200, answer("hello"))]
    assert await provider(fake).complete(request()) == "hello"
    body, auth = fake.requests[0]
    assert body["model"] == "tiny" and body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    # The key from the variable the operator configured, here from the execution's runtime env.
    assert auth == "Bearer k-123"


async def test_429_then_success(fake: FakeOpenAI) -> None:
    fake.script = [(429, {"error": "slow down"}), (503, {}), (200, answer("finally"))]
    assert await provider(fake).complete(request()) == "finally"
    assert len(fake.requests) == 3


async def test_persistent_5xx_is_transient(fake: FakeOpenAI) -> None:
    fake.script = [(500, {})] * 3
    with pytest.raises(ModelCallError) as raised:
        await provider(fake).complete(request())
    assert raised.value.retryable and raised.value.error_type == contract.TRANSIENT_MODEL_ERROR


async def test_400_is_not_retried(fake: FakeOpenAI) -> None:
    fake.script = [(400, {"error": {"message": "bad model"}}), (200, answer("never"))]
    with pytest.raises(ModelCallError) as raised:
        await provider(fake).complete(request())
    assert not raised.value.retryable
    assert raised.value.error_type == contract.MODEL_ERROR
    assert len(fake.requests) == 1


async def test_the_key_comes_from_the_configured_file(
    fake: FakeOpenAI, tmp_path: pathlib.Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-key-1\n")
    fake.script = [(200, answer("hello"))]
    configured = provider(fake, api_key_env="", api_key_file=str(key_file))
    assert await configured.complete(request()) == "hello"
    assert fake.requests[0][1] == "Bearer file-key-1"


async def test_a_4xx_body_is_not_returned_as_it_came(fake: FakeOpenAI) -> None:
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
    fake: FakeOpenAI,
) -> None:
    fake.script = [(404, {"detail": "secret-ish k-123 and more"})]
    with pytest.raises(ModelCallError) as raised:
        await provider(fake).complete(request())
    assert str(raised.value) == "model endpoint answered HTTP 404: Not Found"
