"""What a model provider gets and returns, and the errors it raises."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from backend.common import contract


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call, as every provider is told about it."""

    name: str  # The name the model calls it by: "<server>__<tool>" (OpenAI's function names).
    description: str
    parameters: dict[str, Any]  # A JSON Schema object of the arguments.
    server: str  # The MCP server's name in the agent.
    tool: str  # The tool's own name on that server.


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """A call the model asked for; `arguments` is the JSON text the model wrote."""

    id: str
    name: str  # A `ToolSpec.name`.
    arguments: str


@dataclasses.dataclass
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    # An assistant message that called tools: the calls (their results follow as "tool" ones).
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)
    # A "tool" message: the id of the call it answers.
    tool_call_id: str = ""


@dataclasses.dataclass
class ModelReply:
    """One model turn: either tool calls to make (and maybe some text), or the final text."""

    text: str
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Usage:
    """The tokens of one model call, as the endpoint reported them (0 when it reports none)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclasses.dataclass
class ModelRequest:
    agent_slug: str
    model: str  # The part after "provider/".
    messages: list[ChatMessage]  # Instructions, session history, then the user message.
    env: dict[str, str]  # Runtime env in clear (secrets included): never log it.
    secret_values: list[str]
    attempt: int = 1
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    timeout: float = 60.0
    # The tools the model may call; empty: a plain chat completion.
    tools: list[ToolSpec] = dataclasses.field(default_factory=list)
    # Set by the provider once the call has answered: what the endpoint reported it used.
    usage: Usage = dataclasses.field(default_factory=Usage)


class ModelCallError(Exception):
    """A failed model call; `error_type` becomes the ExecutionError type."""

    def __init__(self, error_type: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.retryable = retryable


def transient(message: str) -> ModelCallError:
    return ModelCallError(contract.TRANSIENT_MODEL_ERROR, message, retryable=True)


def permanent(message: str, error_type: str = contract.MODEL_ERROR) -> ModelCallError:
    return ModelCallError(error_type, message, retryable=False)


class Provider(Protocol):
    async def complete(self, request: ModelRequest) -> str:
        """The model's text answer (an agent without tools)."""
        ...

    async def turn(self, request: ModelRequest) -> ModelReply:
        """One turn of an agent with tools: the final text, or the tool calls it asks for."""
        ...
