"""One outbound HTTP request, bounded: the body is streamed up to a limit, redirects are followed
here (not by httpx) so that nothing sensitive crosses to another origin.

httpx itself drops only `Authorization` on a cross-origin redirect; a custom header carrying a
token, a cookie, or a 307/308's body would follow. Here a redirect to another origin (scheme,
host or port) drops `Authorization`, `Proxy-Authorization`, `Cookie` and every header the caller
marks sensitive, and one that would resend a body there is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import httpx

_ALWAYS_SENSITIVE = frozenset({"authorization", "proxy-authorization", "cookie"})
# Headers that describe a body, dropped when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding"}
)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"response body exceeds {limit} bytes")
        self.limit = limit


class UnsafeRedirect(Exception):
    """A redirect that cannot be followed safely (another origin for a body, a bad Location)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_redirects: int = 10
    phase_timeout: float = 30.0  # httpx's connect/read/write/pool timeout, each.


@dataclasses.dataclass
class OutboundRequest:
    method: str
    url: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None  # str/bytes sent as they are; anything else as JSON.
    # Header names (any case) that must not reach another origin.
    sensitive_headers: frozenset[str] = frozenset()


@dataclasses.dataclass
class Fetched:
    """A response whose body was read within the limit."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    url: str  # The last request's URL (after redirects).
    content: bytes
    encoding: str

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")


async def fetch(
    client: httpx.AsyncClient, request: OutboundRequest, limits: Limits, follow_redirects: bool
) -> Fetched:
    """Sends the request (the client must not follow redirects itself); raises BodyTooLarge,
    UnsafeRedirect, or httpx.HTTPError."""
    timeout = httpx.Timeout(limits.phase_timeout)
    body: dict[str, Any] = {}
    if isinstance(request.body, str | bytes):
        body["content"] = request.body
    elif request.body is not None:
        body["json"] = request.body
    current = client.build_request(
        request.method,
        request.url,
        headers=request.headers,
        params=request.params or None,
        timeout=timeout,
        **body,
    )
    sensitive = _ALWAYS_SENSITIVE | {name.lower() for name in request.sensitive_headers}
    for _hop in range(limits.max_redirects + 1):
        response = await client.send(current, stream=True)
        try:
            if not (follow_redirects and response.has_redirect_location):
                content = await _read(response, limits.max_body_bytes)
                return Fetched(
                    response.status_code,
                    response.reason_phrase,
                    response.headers,
                    str(response.request.url),
                    content,
                    response.encoding or "utf-8",
                )
        finally:
            await response.aclose()
        current = _redirect(client, current, response, sensitive, timeout)
    raise httpx.TooManyRedirects(f"more than {limits.max_redirects} redirects", request=current)


def _redirect(
    client: httpx.AsyncClient,
    previous: httpx.Request,
    response: httpx.Response,
    sensitive: frozenset[str],
    timeout: httpx.Timeout,
) -> httpx.Request:
    try:
        url = previous.url.join(response.headers["location"])
    except httpx.InvalidURL as error:
        raise UnsafeRedirect(f"redirect to an invalid location: {error}") from None
    if url.scheme not in ("http", "https"):
        raise UnsafeRedirect(f"redirect to a {url.scheme!r} URL")
    method, content = previous.method, previous.content
    status = response.status_code
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, content = "GET", b""  # As browsers and httpx do.
    headers = {k: v for k, v in previous.headers.items() if k.lower() not in ("host", "cookie")}
    if not content:
        headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
    if _origin(url) != _origin(previous.url):
        if content:
            raise UnsafeRedirect(
                f"a {status} redirect to another origin ({_origin_text(url)}) would resend the "
                "request body there"
            )
        headers = {k: v for k, v in headers.items() if k.lower() not in sensitive}
    elif "cookie" in previous.headers:
        headers["cookie"] = previous.headers["cookie"]
    return client.build_request(
        method, url, headers=headers, content=content or None, timeout=timeout
    )


async def _read(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    # Decoded bytes count: a small compressed body may inflate past the limit.
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _origin_text(url: httpx.URL) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


def header_names_holding(headers: Mapping[str, str], needles: list[str]) -> frozenset[str]:
    """The names of the headers whose value contains any of the needles."""
    return frozenset(
        name for name, value in headers.items() if any(n and n in value for n in needles)
    )
