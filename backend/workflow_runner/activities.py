"""The `call: http` activity: one HTTP request with httpx.

Who retries a failed request: inside a `try`, the document alone (its `catch`/`retry`; the engine
makes one attempt). Elsewhere the engine retries what is safe to send again: 408, 429, 5xx and
transport errors for idempotent methods, and for any method a connection that was never made
(the request did not leave). A POST or PATCH that reached the server is never resent by the
engine; a document that wants it resent says so with `try`/`retry`.

Secrets: the activity resolves the run's sealed placeholders into a local request only; error
texts, log lines and `output: response` show placeholders in plain form (`{{secret:NAME}}`) and
any resolved value (also percent-encoded) a server echoes back as `***`. Bounds: the body is
streamed up to WORKFLOW_RUNNER_HTTP_MAX_BODY_BYTES, the whole request (redirects included) has
WORKFLOW_RUNNER_HTTP_TOTAL_TIMEOUT seconds, every connection passes the egress policy
(backend/common/egress.py) and redirects are followed by backend/common/outbound_http.py.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
from datetime import timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.common import egress, outbound_http, secret_placeholders
from backend.workflow_runner.agent_call import secrets
from backend.workflow_runner.agent_call.models import SecretScope
from backend.workflow_runner.dsl import errors
from backend.workflow_runner.dsl.errors import DslError
from backend.workflow_runner.heartbeats import heartbeating
from backend.workflow_runner.models import HttpCallInput, HttpCallOutput

CALL_HTTP_ACTIVITY = "call_http"
HTTP_ERROR_TYPE = "HttpError"
HTTP_TRANSPORT_ERROR_TYPE = "HttpTransportError"
DEFAULT_HTTP_TIMEOUT = timedelta(seconds=60)
HTTP_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
# One attempt: the document's own `try` decides what happens on failure.
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
# Worth another try: the server said so (429), or it or its proxy had trouble (408, 5xx).
_RETRYABLE_STATUS = frozenset({408, 429})
# RFC 9110 section 9.2.2: sending these again has the effect of sending them once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Failures before the request left this process: safe to retry whatever the method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# httpx logs every request line at INFO (the resolved URI, secrets in its query) and httpcore's
# DEBUG traces show response headers (which may echo a credential): keep both to warnings.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def retry_policy(call: HttpCallInput) -> RetryPolicy:
    """The engine's retries of one call: none inside a `try`, else HTTP_RETRY_POLICY (of which the
    activity marks unsafe resends non-retryable)."""
    return SINGLE_ATTEMPT if call.document_handles_errors else HTTP_RETRY_POLICY


_DETAIL_LIMIT = 500
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Below the activity's start-to-close timeout, so that the call ends with its own clear error.
DEFAULT_TOTAL_TIMEOUT_SECONDS = 50.0
MAX_TOTAL_TIMEOUT_SECONDS = DEFAULT_HTTP_TIMEOUT.total_seconds() - 5
# Temporal refuses payloads past 2 MB; an output this large (as JSON) fails the call instead.
MAX_OUTPUT_JSON_BYTES = 1_900_000
HEARTBEAT_SECONDS = 5.0
# A worker that died mid-request is noticed after three missed heartbeats, not the whole timeout.
HTTP_HEARTBEAT_TIMEOUT = timedelta(seconds=3 * HEARTBEAT_SECONDS)
HTTP_CONFIGURATION_ERROR_TYPE = "HttpConfigurationError"


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    """The worker's HTTP bounds, from its environment (README: "HTTP bounds")."""

    max_body_bytes: int
    total_timeout_seconds: float
    policy: egress.EgressPolicy

    @classmethod
    def from_env(cls) -> HttpSettings:
        try:
            max_body = int(os.environ.get("WORKFLOW_RUNNER_HTTP_MAX_BODY_BYTES", "") or 0)
            total = float(os.environ.get("WORKFLOW_RUNNER_HTTP_TOTAL_TIMEOUT", "") or 0)
            policy = egress.EgressPolicy.parse(
                os.environ.get("WORKFLOW_RUNNER_HTTP_EGRESS_DENY", ""),
                os.environ.get("WORKFLOW_RUNNER_HTTP_EGRESS_ALLOW", ""),
            )
        except ValueError as error:
            raise ApplicationError(
                f"the worker's HTTP settings are invalid: {error}",
                type=HTTP_CONFIGURATION_ERROR_TYPE,
                non_retryable=True,
            ) from None
        return cls(
            max_body_bytes=max_body if max_body > 0 else DEFAULT_MAX_BODY_BYTES,
            total_timeout_seconds=min(
                total or DEFAULT_TOTAL_TIMEOUT_SECONDS, MAX_TOTAL_TIMEOUT_SECONDS
            ),
            policy=policy,
        )


@dataclasses.dataclass(frozen=True)
class _Redactor:
    """Turns text bound for errors, logs or outputs into what may leave the activity."""

    scope: SecretScope
    values: list[str]

    def text(self, text: str) -> str:
        shown = secret_placeholders.display(text, self.scope.seal)
        return secret_placeholders.mask(shown, self.values)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(item) for k, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def content(self, content: bytes) -> bytes:
        for value in sorted((v for v in self.values if v), key=len, reverse=True):
            content = content.replace(value.encode(), secret_placeholders.MASK.encode())
        return content


@activity.defn(name=CALL_HTTP_ACTIVITY)
async def call_http(call: HttpCallInput) -> HttpCallOutput:
    """Sends the request; what may be retried is in this module's docstring."""
    settings = HttpSettings.from_env()
    scope = SecretScope(call.secret_seal, tuple(call.secret_names))
    texts = [call.uri, *call.headers.values(), *call.query.values(), *_strings(call.body)]
    values = secrets.resolve_secrets(
        secrets.referenced_secrets(texts, scope), secrets.env_secret_resolver
    )
    redact = _Redactor(scope, list(values.values()))
    request = _resolved_request(call, scope, values)
    query = "&".join(f"{name}={value}" for name, value in call.query.items())
    shown = f"{call.method} {redact.text(call.uri + ('?' + query if query else ''))}"
    idempotent = call.method in IDEMPOTENT_METHODS
    limits = outbound_http.Limits(max_body_bytes=settings.max_body_bytes)
    transport = egress.guarded_transport(settings.policy)
    try:
        async with (
            heartbeating(HEARTBEAT_SECONDS),
            httpx.AsyncClient(transport=transport, follow_redirects=False) as client,
        ):
            async with asyncio.timeout(settings.total_timeout_seconds):
                fetched = await outbound_http.fetch(client, request, limits, call.redirect)
    except TimeoutError:
        detail = f"{shown}: no complete response within {settings.total_timeout_seconds:g}s"
        raise _transport_error(call, detail, retryable=idempotent) from None
    except (
        egress.EgressRefused,
        outbound_http.UnsafeRedirect,
        outbound_http.BodyTooLarge,
    ) as error:
        raise _transport_error(call, redact.text(f"{shown}: {error}"), retryable=False) from None
    except httpx.HTTPError as error:
        detail = redact.text(f"{shown}: {type(error).__name__}: {error}")
        retryable = idempotent or isinstance(error, _NOT_SENT)
        raise _transport_error(call, detail, retryable=retryable) from error
    status = fetched.status_code
    if status >= 400 or (300 <= status < 400 and not call.redirect):
        failure = DslError(
            errors.COMMUNICATION,
            status,
            "HTTP call failed",
            redact.text(
                f"{shown} returned {status} {fetched.reason_phrase}: "
                f"{fetched.text[:_DETAIL_LIMIT]}"
            ),
            call.task_path,
        )
        retryable = idempotent and (status in _RETRYABLE_STATUS or status >= 500)
        activity.logger.warning(
            "http call failed",
            extra={"status": status, "retryable": retryable, "uri": redact.text(call.uri)},
        )
        raise ApplicationError(
            failure.describe(),
            failure.to_dict(),
            type=HTTP_ERROR_TYPE,
            non_retryable=not retryable,
            # Expected: the warning above is its log line, without a traceback.
            category=ApplicationErrorCategory.BENIGN,
        )
    output = _shape(call, fetched, redact)
    size = len(json.dumps(output, separators=(",", ":")))
    if size > MAX_OUTPUT_JSON_BYTES:
        detail = f"{shown}: the output is {size} bytes as JSON, over {MAX_OUTPUT_JSON_BYTES}"
        raise _transport_error(call, detail, retryable=False)
    return HttpCallOutput(output)


def _transport_error(call: HttpCallInput, detail: str, *, retryable: bool) -> ApplicationError:
    """A `communication` error for a request that got no usable response; `detail` is redacted."""
    failure = DslError(errors.COMMUNICATION, 503, "HTTP call failed", detail, call.task_path)
    return ApplicationError(
        failure.describe(),
        failure.to_dict(),
        type=HTTP_TRANSPORT_ERROR_TYPE,
        non_retryable=not retryable,
        category=ApplicationErrorCategory.BENIGN,
    )


def _resolved_request(
    call: HttpCallInput, scope: SecretScope, values: dict[str, str]
) -> outbound_http.OutboundRequest:
    """The request to send, secrets resolved: it lives in this activity only."""

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            return secrets.substitute(value, scope, values)
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    placeholders = [secret_placeholders.sealed(scope.seal, name) for name in values]
    return outbound_http.OutboundRequest(
        method=call.method,
        url=resolve(call.uri),
        headers=resolve(call.headers),
        params=resolve(call.query),
        body=resolve(call.body),
        sensitive_headers=outbound_http.header_names_holding(call.headers, placeholders),
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _shape(call: HttpCallInput, fetched: outbound_http.Fetched, redact: _Redactor) -> Any:
    if call.output == "raw":
        return base64.b64encode(redact.content(fetched.content)).decode("ascii")
    content = redact.value(_content(fetched))
    if call.output == "response":
        return {
            "request": {
                "method": call.method,
                "uri": redact.text(fetched.url),
                "headers": redact.value(call.headers),
            },
            "statusCode": fetched.status_code,
            "headers": {k: redact.text(v) for k, v in fetched.headers.items()},
            "content": content,
        }
    return content


def _content(fetched: outbound_http.Fetched) -> Any:
    if not fetched.content:
        return None
    if "json" in fetched.headers.get("content-type", ""):
        try:
            return json.loads(fetched.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    return fetched.text
