"""Prometheus endpoints of both processes: our registry over HTTP, and Temporal's SDK metrics."""

from __future__ import annotations

import dataclasses
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


def split_listen(listen: str) -> tuple[str, int]:
    """("127.0.0.1", 9464) from "127.0.0.1:9464"; raises ValueError on anything else."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


@dataclasses.dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve(listen: str, registry: CollectorRegistry) -> MetricsServer:
    """Serves `registry` at http://LISTEN/metrics (any path, in fact) from a daemon thread."""
    host, port = split_listen(listen)
    # The `_created` timestamp series only double the page; rates need no more than `_total`.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)


def temporal_runtime(listen: str) -> Runtime:
    """A Temporal runtime whose SDK metrics (workers, polls, task latencies) Prometheus scrapes
    at http://LISTEN/metrics; pass it to `Client.connect(runtime=...)`. One per process."""
    split_listen(listen)  # Fails early on a malformed address.
    # Prometheus conventions, so the names say their unit: `_total` counters, and durations in
    # seconds named so (`temporal_activity_schedule_to_start_latency_seconds_bucket`, ...).
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=listen,
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
