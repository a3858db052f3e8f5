"""OpenAI-compatible Chat Completions provider (OpenAI, Ollama, vLLM) at an operator-configured
endpoint, with the key from the operator-configured source (providers/catalog.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import tenacity

from backend.stigmer_service import placeholders
from backend.stigmer_service.providers.base import (
    ChatMessage,
    ModelCallError,
    ModelReply,
    ModelRequest,
    ToolCall,
    Usage,
    permanent,
    transient,
)
from backend.stigmer_service.providers.catalog import ProviderConfig

# In-call retries; the agent activity's own retries come on top, across a longer backoff.
ATTEMPTS = 3
# An error reason ends in the execution's error_message, which Get returns: short, one line.
REASON_CHARS = 160
# Long opaque runs (keys, tokens, signatures) are masked in a reason even when not ours.
_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/=.]{24,}")


class OpenAIProvider:
    def __init__(self, config: ProviderConfig, *, retry_wait: float = 0.5) -> None:
        self._config = config
        self._retry_wait = retry_wait

    async def complete(self, request: ModelRequest) -> str:
        message = await self._message(request, _body(request))
        content = message.get("content")
        if not isinstance(content, str):
            raise permanent("model endpoint returned no text content")
        return content

    async def turn(self, request: ModelRequest) -> ModelReply:
        """One turn with function calling, in the Chat Completions wire format: `tools` of type
        "function" in the request, `tool_calls` in the assistant's reply, and each result sent
        back as a `role: "tool"` message with its `tool_call_id`."""
        body = _body(request)
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters or {"type": "object", "properties": {}},
                    },
                }
                for tool in request.tools
            ]
        return _reply(await self._message(request, body))

    async def _message(self, request: ModelRequest, body: dict[str, Any]) -> dict[str, Any]:
        """The first choice's `message` of the endpoint's answer to `body`; the answer's
        `usage` (`prompt_tokens`, `completion_tokens`) goes to `request.usage`."""
        message, request.usage = await self._answer(request, body)
        return message

    async def _answer(
        self, request: ModelRequest, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        url = f"{self._config.base_url.rstrip('/')}/chat/completions"
        api_key = self._config.api_key(request.env)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        hidden = [api_key, *request.secret_values] if api_key else list(request.secret_values)
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, ModelCallError) and e.retryable
            ),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_exponential(multiplier=self._retry_wait, max=10),
            reraise=True,
        )
        # No redirects: a redirect would carry the key to wherever the endpoint points.
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(request.timeout), follow_redirects=False
        ) as client:
            async for attempt in retrying:
                with attempt:
                    return await self._call(client, url, body, headers, hidden)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    @staticmethod
    async def _call(
        client: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        hidden: list[str],
    ) -> tuple[dict[str, Any], Usage]:
        try:
            response = await client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as error:
            raise transient(f"model call timed out: {type(error).__name__}") from error
        except httpx.TransportError as error:
            raise transient(f"model endpoint unreachable: {type(error).__name__}") from error
        status = response.status_code
        if status == 429 or status >= 500:
            raise transient(f"model endpoint answered HTTP {status}")
        if status >= 400:
            raise permanent(f"model endpoint answered HTTP {status}: {reason(response, hidden)}")
        if status >= 300:
            raise permanent(f"model endpoint answered HTTP {status} (redirects are not followed)")
        try:
            document = response.json()
            message = document["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise permanent("model endpoint returned an unexpected body") from error
        if not isinstance(message, dict):
            raise permanent("model endpoint returned an unexpected body")
        return message, _usage(document.get("usage"))


def _usage(document: Any) -> Usage:
    """OpenAI's `usage` object; anything else (absent, malformed) counts as none reported."""
    if not isinstance(document, dict):
        return Usage()
    prompt, completion = document.get("prompt_tokens"), document.get("completion_tokens")
    # bool is an int subclass: `true` is no count.
    counts = [
        c for c in (prompt, completion) if isinstance(c, int) and not isinstance(c, bool) and c >= 0
    ]
    if len(counts) != 2:
        return Usage()
    return Usage(input_tokens=counts[0], output_tokens=counts[1])


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    """A chat message as Chat Completions takes it."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # An assistant turn that only called tools has null content on the wire.
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _body(request: ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_wire_message(m) for m in request.messages],
    }
    for name in ("temperature", "max_tokens", "top_p"):
        if (value := getattr(request, name)) is not None:
            body[name] = value
    return body


def _reply(message: dict[str, Any]) -> ModelReply:
    """The assistant `message` of an answer as a provider-neutral reply."""
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise permanent("model endpoint returned malformed tool_calls")
    found: list[ToolCall] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise permanent("model endpoint returned malformed tool_calls")
        arguments = function.get("arguments")
        found.append(
            ToolCall(
                id=str(call.get("id") or f"call_{len(found)}"),
                name=function["name"],
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
            )
        )
    if not found and not isinstance(content, str):
        raise permanent("model endpoint returned neither text nor tool calls")
    return ModelReply(text, found)


def reason(response: httpx.Response, hidden: list[str]) -> str:
    """A short, one-line, secret-masked reason of an error answer: the OpenAI-style
    `error.message` when there is one, else the reason phrase; never the body as it came."""
    text = ""
    try:
        document = json.loads(response.content)
    except ValueError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str):
            text = message
    text = " ".join((text or response.reason_phrase or "no reason given").split())
    text = _OPAQUE.sub("***", placeholders.mask(text, hidden))
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."
