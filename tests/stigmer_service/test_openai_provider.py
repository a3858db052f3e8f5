"""The OpenAI-compatible provider against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from backend.common import contract
from backend.stigmer_service.providers.base import ChatMessage, ModelCallError, ModelRequest
from backend.stigmer_service.providers.openai import OpenAIProvider


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


def request(fake: FakeOpenAI) -> ModelRequest:
    return ModelRequest(
        agent_slug="a",
        model="tiny",
        messages=[ChatMessage("system", "Be brief."), ChatMessage("user", "hi")],
        env={"MY_KEY": "k-123"},
        secret_values=["k-123"],
        temperature=0.2,
        timeout=5,
        base_url=fake.base_url,
        api_key_env="MY_KEY",
    )


def answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


async def test_success(fake: FakeOpenAI) -> None:
    fake.script = [(200, answer("hello"))]
    assert await OpenAIProvider(retry_wait=0.01).complete(request(fake)) == "hello"
    body, auth = fake.requests[0]
    assert body["model"] == "tiny" and body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert auth == "Bearer k-123"  # The key from the env variable the agent names.


async def test_429_then_success(fake: FakeOpenAI) -> None:
    fake.script = [(429, {"error": "slow down"}), (503, {}), (200, answer("finally"))]
    assert await OpenAIProvider(retry_wait=0.01).complete(request(fake)) == "finally"
    assert len(fake.requests) == 3


async def test_persistent_5xx_is_transient(fake: FakeOpenAI) -> None:
    fake.script = [(500, {})] * 3
    with pytest.raises(ModelCallError) as raised:
        await OpenAIProvider(retry_wait=0.01).complete(request(fake))
    assert raised.value.retryable and raised.value.error_type == contract.TRANSIENT_MODEL_ERROR


async def test_400_is_not_retried(fake: FakeOpenAI) -> None:
    fake.script = [(400, {"error": {"message": "bad model"}}), (200, answer("never"))]
    with pytest.raises(ModelCallError) as raised:
        await OpenAIProvider(retry_wait=0.01).complete(request(fake))
    assert not raised.value.retryable
    assert raised.value.error_type == contract.MODEL_ERROR
    assert len(fake.requests) == 1
