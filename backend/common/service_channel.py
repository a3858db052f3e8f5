"""The connection both processes' clients of the Stigmer service share: one lazily opened gRPC
channel (TLS when configured), the bearer token sent with each call, and a deadline per call."""

from __future__ import annotations

import grpc

from backend.common import grpc_tls, tracing


class ServiceChannel:
    """Base of the service's clients (the CLI's and the runner's agent-call client).

    The channel is opened on first use, so it belongs to the event loop that makes the calls
    (a worker's, a command's), not to whatever loop, if any, constructed the client.
    """

    def __init__(
        self,
        endpoint: str,
        api_token: str | None,
        deadline_seconds: float,
        tls: grpc_tls.ClientTls | None = None,
        *,
        traced: bool = False,
    ) -> None:
        """`tls` None: from the STIGMER_TLS_* variables (plaintext when none is set); `traced`:
        each call carries the caller's trace context to the service."""
        self._endpoint = endpoint
        self._tls = tls if tls is not None else grpc_tls.ClientTls.from_env()
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_token}"),) if api_token else ()
        )
        self._deadline = deadline_seconds
        self._traced = traced
        self._channel: grpc.aio.Channel | None = None

    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            interceptors = tracing.grpc_client_interceptors() if self._traced else None
            self._channel = self._tls.channel(self._endpoint, interceptors=interceptors or None)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
