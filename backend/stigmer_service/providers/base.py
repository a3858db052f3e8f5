"""What a model provider gets and returns, and the errors it raises."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from backend.common import contract


@dataclasses.dataclass
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


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
    async def complete(self, request: ModelRequest) -> str: ...
