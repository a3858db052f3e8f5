"""A fake of the Stigmer API on a real gRPC server: the fake's servicers on a loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

# A generated `add_<Service>Servicer_to_server` function.
AddServicer = Callable[[Any, grpc.aio.Server], None]


@contextlib.asynccontextmanager
async def serving(fake: object, *servicers: AddServicer) -> AsyncIterator[str]:
    """Serves `fake` as each of `servicers` on a fresh loopback port; yields the endpoint."""
    server = grpc.aio.server()
    for add in servicers:
        add(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)
