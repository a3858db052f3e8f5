"""The `call: http` activity: one HTTP request with httpx.

Who retries a failed request: inside a `try`, the document alone (its `catch`/`retry`; the engine
makes one attempt). Elsewhere the engine retries what is safe to send again: 408, 429, 5xx and
transport errors for idempotent methods, and for any method a connection that was never made
(the request did not leave). A POST or PATCH that reached the server is never resent by the
engine; a document that wants it resent says so with `try`/`retry`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.workflow_runner.agent_call import secrets
from backend.workflow_runner.dsl import errors
from backend.workflow_runner.dsl.errors import DslError
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


def retry_policy(call: HttpCallInput) -> RetryPolicy:
    """The engine's retries of one call: none inside a `try`, else HTTP_RETRY_POLICY (of which the
    activity marks unsafe resends non-retryable)."""
    return SINGLE_ATTEMPT if call.document_handles_errors else HTTP_RETRY_POLICY


_DETAIL_LIMIT = 500


@activity.defn(name=CALL_HTTP_ACTIVITY)
async def call_http(call: HttpCallInput) -> HttpCallOutput:
    """Sends the request; what may be retried is in this module's docstring."""
    call = _with_secrets(call, secrets.env_secret_resolver)
    idempotent = call.method in IDEMPOTENT_METHODS
    request_body: dict[str, Any] = {}
    if isinstance(call.body, str | bytes):
        request_body["content"] = call.body
    elif call.body is not None:
        request_body["json"] = call.body
    async with httpx.AsyncClient(follow_redirects=call.redirect) as client:
        try:
            response = await client.request(
                call.method,
                call.uri,
                headers=call.headers,
                params=call.query or None,
                timeout=httpx.Timeout(30.0),
                **request_body,
            )
        except httpx.HTTPError as error:
            failure = DslError(
                errors.COMMUNICATION,
                503,
                "HTTP call failed",
                f"{call.method} {call.uri}: {type(error).__name__}: {error}",
                call.task_path,
            )
            raise ApplicationError(
                failure.describe(),
                failure.to_dict(),
                type=HTTP_TRANSPORT_ERROR_TYPE,
                non_retryable=not (idempotent or isinstance(error, _NOT_SENT)),
                category=ApplicationErrorCategory.BENIGN,
            ) from error
    status = response.status_code
    if status >= 400 or (300 <= status < 400 and not call.redirect):
        failure = DslError(
            errors.COMMUNICATION,
            status,
            "HTTP call failed",
            f"{call.method} {call.uri} returned {status} {response.reason_phrase}: "
            f"{response.text[:_DETAIL_LIMIT]}",
            call.task_path,
        )
        retryable = idempotent and (status in _RETRYABLE_STATUS or status >= 500)
        activity.logger.warning(
            "http call failed", extra={"status": status, "retryable": retryable, "uri": call.uri}
        )
        raise ApplicationError(
            failure.describe(),
            failure.to_dict(),
            type=HTTP_ERROR_TYPE,
            non_retryable=not retryable,
            # Expected: the warning above is its log line, without a traceback.
            category=ApplicationErrorCategory.BENIGN,
        )
    return HttpCallOutput(_shape(call, response))


def _with_secrets(call: HttpCallInput, resolver: secrets.SecretResolver) -> HttpCallInput:
    """The call with `$secrets` placeholders replaced: values exist only here, never in history."""
    texts = [call.uri, *call.headers.values(), *call.query.values(), *_strings(call.body)]
    names = secrets.referenced_secrets(texts)
    if not names:
        return call
    values = secrets.resolve_secrets(names, resolver)

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            return secrets.substitute(value, values)
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    return dataclasses.replace(
        call,
        uri=resolve(call.uri),
        headers=resolve(call.headers),
        query=resolve(call.query),
        body=resolve(call.body),
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _shape(call: HttpCallInput, response: httpx.Response) -> Any:
    if call.output == "raw":
        return base64.b64encode(response.content).decode("ascii")
    content = _content(response)
    if call.output == "response":
        return {
            "request": {
                "method": call.method,
                "uri": str(response.request.url),
                "headers": call.headers,
            },
            "statusCode": response.status_code,
            "headers": dict(response.headers),
            "content": content,
        }
    return content


def _content(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except json.JSONDecodeError:
            pass
    return response.text
