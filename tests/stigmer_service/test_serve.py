"""`serve` reports its address when ready and shuts down gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from temporalio.client import Client

from backend.stigmer_service import app
from tests.support.service import fast_settings


async def test_sigterm_stops_the_service(tmp_path: pathlib.Path, temporal_client: Client) -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    serving = asyncio.ensure_future(
        app.serve(
            fast_settings(tmp_path),
            run_worker=True,
            on_ready=ready.put_nowait,
            client=temporal_client,
        )
    )
    address = await asyncio.wait_for(ready.get(), 30)
    async with grpc.aio.insecure_channel(address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 30)
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        else:
            raise AssertionError("the server still answers after SIGTERM")
