"""OpenAI-compatible Chat Completions provider (`openai/<model>`): OpenAI, Ollama, vLLM."""

from __future__ import annotations

import os
from typing import Any

import httpx
import tenacity

from backend.stigmer_service.providers.base import (
    ModelCallError,
    ModelRequest,
    permanent,
    transient,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# In-call retries; the agent activity's own retries come on top, across a longer backoff.
ATTEMPTS = 3


class OpenAIProvider:
    def __init__(self, *, retry_wait: float = 0.5) -> None:
        self._retry_wait = retry_wait

    async def complete(self, request: ModelRequest) -> str:
        base_url = (
            request.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        key_env = request.api_key_env or "OPENAI_API_KEY"
        api_key = request.env.get(key_env) or os.environ.get(key_env, "")
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        for name in ("temperature", "max_tokens", "top_p"):
            if (value := getattr(request, name)) is not None:
                body[name] = value
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, ModelCallError) and e.retryable
            ),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_exponential(multiplier=self._retry_wait, max=10),
            reraise=True,
        )
        async with httpx.AsyncClient(timeout=httpx.Timeout(request.timeout)) as client:
            async for attempt in retrying:
                with attempt:
                    return await self._call(client, f"{base_url}/chat/completions", body, headers)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    @staticmethod
    async def _call(
        client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> str:
        try:
            response = await client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as error:
            raise transient(f"model call timed out: {type(error).__name__}") from error
        except httpx.TransportError as error:
            raise transient(f"model endpoint unreachable: {type(error).__name__}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise transient(f"model endpoint answered HTTP {response.status_code}")
        if response.status_code >= 400:
            # The body explains a 4xx (bad model name, bad request); it never holds our key.
            raise permanent(
                f"model endpoint answered HTTP {response.status_code}: {response.text[:500]}"
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise permanent("model endpoint returned an unexpected body") from error
        if not isinstance(content, str):
            raise permanent("model endpoint returned no text content")
        return content
