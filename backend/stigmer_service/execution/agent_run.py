"""The model call of an execution: the chat built from the agent and the session, secrets
resolved only here and masked in what comes back."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from opentelemetry.trace import StatusCode
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.common import contract, tracing
from backend.stigmer_service import logs, placeholders, states
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.execution.heartbeating import heartbeating
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.providers import catalog, registry
from backend.stigmer_service.providers.base import (
    ChatMessage,
    ModelCallError,
    ModelReply,
    ModelRequest,
    Provider,
    ToolSpec,
)
from backend.stigmer_service.store.records import AgentRecord, ExecutionRecord, TokenUsage
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

_ROLE_NAMES = {states.ROLE_USER: "user", states.ROLE_ASSISTANT: "assistant"}


# The model call's timeout when the agent sets none.
DEFAULT_TIMEOUT = 60.0


T = TypeVar("T")


@dataclasses.dataclass
class Context:
    """What a model call of an execution starts from; holds secrets in clear: never log it."""

    execution: ExecutionRecord
    agent: AgentRecord
    env: dict[str, str]
    secrets: dict[str, str]  # By name.
    chat: list[ChatMessage]  # Instructions, session history, the execution's message.

    @property
    def secret_values(self) -> list[str]:
        return list(self.secrets.values())


@dataclasses.dataclass(frozen=True)
class Answer:
    reply: str  # Secrets masked.
    agent_slug: str
    usage: TokenUsage  # The model call's.


class AgentRun:
    def __init__(self, store: Store, settings: Settings, metrics: ServiceMetrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        # The endpoints and keys are the operator's; an agent only names a provider.
        self.catalog = catalog.from_settings(settings)

    async def answer(
        self, execution: ExecutionRecord, fields: dict[str, str], *, fresh_session: bool = False
    ) -> Answer:
        """The model's answer to the execution's message; raises ApplicationError when the
        agent is gone or the model call failed (retryable or not, as the provider says).
        `fresh_session`: the session was drawn for this execution (no history to read)."""
        context = await self.context(execution, fresh_session=fresh_session)
        reply, usage = await self.call(context, fields, complete)
        return Answer(placeholders.mask(reply, context.secret_values), context.agent.slug, usage)

    async def agent(self, execution: ExecutionRecord) -> AgentRecord:
        """The execution's agent; a gone agent is a non-retryable ApplicationError."""
        try:
            return await self.store.get_agent(execution.agent_id)
        except NotFound as error:
            raise ApplicationError(
                str(error),
                type=contract.AGENT_NOT_FOUND,
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            ) from None

    async def context(self, execution: ExecutionRecord, *, fresh_session: bool = False) -> Context:
        """The agent, the env in clear and the chat up to the execution's own message."""
        agent = await self.agent(execution)
        env, secrets = self.store.decrypt_env(execution)
        chat: list[ChatMessage] = []
        if agent.instructions:
            chat.append(ChatMessage("system", agent.instructions))
        earlier_messages = [] if fresh_session else await self.store.session_history(execution)
        for earlier in earlier_messages:
            chat.append(ChatMessage(_ROLE_NAMES[earlier.role], earlier.content))
        chat.append(ChatMessage("user", placeholders.substitute(execution.message, secrets)))
        return Context(execution, agent, env, secrets, chat)

    async def call(
        self,
        context: Context,
        fields: dict[str, str],
        make: Callable[[Provider, ModelRequest], Awaitable[T]],
        tools: list[ToolSpec] | None = None,
    ) -> tuple[T, TokenUsage]:
        """One model call on `context.chat` (with `tools`, if any) through `make`, traced,
        measured and heartbeating, and what it used; a failure is an ApplicationError of the
        provider's type."""
        execution, agent = context.execution, context.agent
        secret_values = context.secret_values
        options = agent.model_options
        temperature = (
            execution.temperature if execution.temperature is not None else options.temperature
        )
        model = execution.model_name or agent.model or self.catalog.default_model
        provider_name = registry.provider_label(model, self.catalog)
        attempt = activity.info().attempt
        started = time.monotonic()
        with tracing.tracer(__name__).start_as_current_span(
            "model call",
            attributes={
                "stigmer.model.provider": provider_name,
                "stigmer.model": model,
                "stigmer.execution_id": execution.id,
                "stigmer.handshake_id": fields["handshake_id"],
                "stigmer.attempt": attempt,
            },
        ) as span:
            try:
                resolved = registry.resolve(model, self.catalog)
                request = ModelRequest(
                    agent_slug=agent.slug,
                    model=resolved.model,
                    messages=context.chat,
                    env=context.env,
                    secret_values=secret_values,
                    attempt=attempt,
                    temperature=temperature,
                    max_tokens=options.max_tokens,
                    top_p=options.top_p,
                    timeout=(
                        DEFAULT_TIMEOUT
                        if options.timeout is None
                        else options.timeout.total_seconds()
                    ),
                    tools=list(tools or []),
                )
                log.info("model call", model=model, attempt=attempt, **fields)
                answered = await heartbeating(
                    make(resolved.provider, request), self.settings.activity_heartbeat_interval
                )
                used = request.usage
                span.set_attribute("stigmer.tokens.input", used.input_tokens)
                span.set_attribute("stigmer.tokens.output", used.output_tokens)
                return answered, TokenUsage(used.input_tokens, used.output_tokens, 1)
            except ModelCallError as error:
                message = placeholders.mask(str(error), secret_values)
                self.metrics.model_errors.labels(provider_name, error.error_type).inc()
                span.set_attribute("stigmer.error_type", error.error_type)
                span.set_status(StatusCode.ERROR, error.error_type)
                log.warning(
                    "model call failed", error_type=error.error_type, error=message, **fields
                )
                raise ApplicationError(
                    message,
                    type=error.error_type,
                    non_retryable=not error.retryable,
                    # Expected: our own warning above is its one log line; no traceback.
                    category=ApplicationErrorCategory.BENIGN,
                ) from None
            finally:
                self.metrics.model_call.labels(provider_name).observe(time.monotonic() - started)


def complete(provider: Provider, request: ModelRequest) -> Awaitable[str]:
    return provider.complete(request)


def turn(provider: Provider, request: ModelRequest) -> Awaitable[ModelReply]:
    return provider.turn(request)
