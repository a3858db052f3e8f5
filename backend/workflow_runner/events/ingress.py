"""The CloudEvents HTTP ingress: webhooks and other systems POST events (binary or structured mode).

Answers: 202 with the id and sequence (a repeated id is stored once: the answer says
`duplicate`), 400 naming the bad attribute, 401 without a known bearer token, 403 for a
credential whose role may not publish, 413 past the size bound. Nothing is published unless the
whole event is valid.

Tokens follow the service's model: STIGMER_CREDENTIALS_FILE lists each credential by the sha256
of its token with a role, and STIGMER_API_TOKEN is the operator's. Roles `service` and `runner`
may publish; `user` credentials may not, because the stream is not divided by org and a user's
event would reach every org's listeners. With neither variable set the ingress is in dev mode
(every caller may publish) and serves loopback addresses only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import os
import pathlib
from typing import Any

import structlog
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend.workflow_runner.events import cloudevent
from backend.workflow_runner.events.activities import record_publish
from backend.workflow_runner.events.broker import Broker

CREDENTIALS_FILE_ENV = "STIGMER_CREDENTIALS_FILE"
API_TOKEN_ENV = "STIGMER_API_TOKEN"
PUBLISHING_ROLES = frozenset({"service", "runner"})
# The body may carry a little more than the event (whitespace, binary-mode headers are apart).
MAX_BODY_BYTES = cloudevent.MAX_EVENT_BYTES + 16 * 1024
PATHS = ("/", "/events")

log = structlog.get_logger(__name__)


class CredentialsError(ValueError):
    """The credentials file cannot be read (the message never has a token)."""


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Each configured token's sha256 and role; none: dev mode."""

    entries: tuple[tuple[bytes, str, str], ...] = ()  # (sha256, name, role)

    @property
    def dev_mode(self) -> bool:
        return not self.entries

    @classmethod
    def from_env(cls) -> Tokens:
        entries: list[tuple[bytes, str, str]] = []
        path = os.environ.get(CREDENTIALS_FILE_ENV, "")
        if path:
            entries.extend(_read_credentials(pathlib.Path(path).expanduser()))
        operator = os.environ.get(API_TOKEN_ENV, "")
        if operator:
            entries.append((hashlib.sha256(operator.encode()).digest(), "operator", "service"))
        return cls(tuple(entries))

    def role_of(self, authorization: str) -> tuple[str, str] | None:
        """(name, role) of the bearer token, None when unknown; compared in constant time
        against every entry."""
        if self.dev_mode:
            return ("operator", "service")
        scheme, _, token = authorization.partition(" ")
        given = hashlib.sha256(token.encode()).digest()
        found: tuple[str, str] | None = None
        for digest, name, role in self.entries:
            if hmac.compare_digest(given, digest) and scheme == "Bearer" and token:
                found = (name, role)
        return found


def _read_credentials(path: pathlib.Path) -> list[tuple[bytes, str, str]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise CredentialsError(f"{path}: {type(error).__name__}") from None
    raw = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise CredentialsError(f"{path}: needs a 'credentials' list")
    entries = []
    for i, item in enumerate(raw):
        sha = str(item.get("sha256", "")).lower() if isinstance(item, dict) else ""
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise CredentialsError(f"{path}: credentials[{i}]: sha256 must be 64 hex digits")
        name = str(item.get("name") or sha[:12])
        entries.append((bytes.fromhex(sha), name, str(item.get("role", "user"))))
    return entries


def _problem(
    status: int, error: str, attribute: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if attribute:
        body["attribute"] = attribute
    return JSONResponse(body, status_code=status, headers=headers)


async def _bounded_body(request: Request) -> bytes | None:
    """The body, or None past MAX_BODY_BYTES (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


def app(broker: Broker, tokens: Tokens) -> Starlette:
    """The ASGI app (tests drive it in-process; `serve` runs it on uvicorn)."""

    async def accept(request: Request) -> JSONResponse:
        caller = tokens.role_of(request.headers.get("authorization", ""))
        if caller is None:
            return _problem(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        if caller[1] not in PUBLISHING_ROLES:
            return _problem(403, f"role {caller[1]!r} may not publish events")
        body = await _bounded_body(request)
        if body is None:
            return _problem(413, f"the body exceeds {MAX_BODY_BYTES} bytes", "event")
        try:
            event = cloudevent.from_http(dict(request.headers), body)
        except cloudevent.OversizedEventError as oversized:
            return _problem(413, str(oversized), oversized.attribute)
        except cloudevent.InvalidEventError as invalid:
            return _problem(400, f"not a valid CloudEvent: {invalid}", invalid.attribute)
        published = await broker.publish(event)
        record_publish(published)
        log.info(
            "event accepted",
            event_id=published.id,
            sequence=published.sequence,
            duplicate=published.duplicate,
            caller=caller[0],
        )
        return JSONResponse(dataclasses.asdict(published), status_code=202)

    return Starlette(routes=[Route(path, accept, methods=["POST"]) for path in PATHS])


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(broker: Broker, tokens: Tokens, host: str, port: int) -> None:
    """Serves until SIGTERM or SIGINT (uvicorn's own handlers)."""
    if tokens.dev_mode and not loopback(host):
        raise ValueError(
            f"the ingress serves {host} only with tokens: set {CREDENTIALS_FILE_ENV} or "
            f"{API_TOKEN_ENV} (dev mode serves loopback addresses only)"
        )
    config = uvicorn.Config(
        app(broker, tokens), host=host, port=port, log_config=None, access_log=False
    )
    log.info("ingress listening", address=f"{host}:{port}", dev_mode=tokens.dev_mode)
    await uvicorn.Server(config).serve()
