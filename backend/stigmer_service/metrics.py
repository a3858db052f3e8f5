"""The service's Prometheus metrics: callbacks and model calls counted as they happen, executions
and waiting callers read from the database at scrape time (so every replica reports the truth)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backend.stigmer_service import logs, states
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

CALLBACK_OUTCOMES = ("completed", "failed", "cancelled", "already_closed", "error")
SWEEPER_RPC_KINDS = ("heartbeat", "workflow_check")
PHASE_NAMES = {
    states.PHASE_PENDING: "PENDING",
    states.PHASE_RUNNING: "RUNNING",
    states.PHASE_COMPLETED: "COMPLETED",
    states.PHASE_FAILED: "FAILED",
    states.PHASE_CANCELLED: "CANCELLED",
}
# Callback latency spans a database write and one Temporal RPC, or a crash and a retry.
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
_MODEL_BUCKETS = (0.005, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServiceMetrics:
    """One registry per service instance (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.callbacks = Counter(
            "stigmer_callbacks",
            "Callback deliveries to callers' activities, by outcome; `error` counts failed "
            "attempts (retried, or final: see stigmer_callbacks_failed).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in CALLBACK_OUTCOMES:
            self.callbacks.labels(outcome)  # Present at 0, so rates and alerts work at once.
        self.callback_latency = Histogram(
            "stigmer_callback_latency_seconds",
            "From the execution's terminal phase written to the caller's activity closed.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_call = Histogram(
            "stigmer_model_call_seconds",
            "Duration of model calls, by provider (failed ones included).",
            ["provider"],
            buckets=_MODEL_BUCKETS,
            registry=self.registry,
        )
        self.model_errors = Counter(
            "stigmer_model_call_errors",
            "Failed model calls, by provider and error type.",
            ["provider", "error_type"],
            registry=self.registry,
        )
        self.unreadable_tokens = Counter(
            "stigmer_caller_tokens_unreadable",
            "Waiting callers the sweeper skipped because their stored token does not decrypt "
            "with this replica's key (counted once per sweep).",
            registry=self.registry,
        )
        self.sweeper_rpcs = Counter(
            "stigmer_caller_sweeper_rpcs",
            "Temporal RPCs the caller sweeper sent, by kind: `heartbeat` (a waiting caller's "
            "activity, retries after RESOURCE_EXHAUSTED included) or `workflow_check` (is a "
            "waiting execution's own workflow still running).",
            ["kind"],
            registry=self.registry,
        )
        for kind in SWEEPER_RPC_KINDS:
            self.sweeper_rpcs.labels(kind)
        self.heartbeat_interval = Gauge(
            "stigmer_caller_heartbeat_interval_seconds",
            "How often the caller sweeper heartbeats each waiting caller now: the base "
            "interval, stretched to keep many callers within the RPC budget (a caller with a "
            "short heartbeat timeout is heartbeated more often).",
            registry=self.registry,
        )
        self._store_collector: StoreCollector | None = None

    def callback_delivered(self, phase: int, completed_at: datetime.datetime | None) -> None:
        self.callbacks.labels(states.OUTCOME_NAMES.get(phase, "completed")).inc()
        if completed_at is not None:
            latency = (datetime.datetime.now(datetime.UTC) - completed_at).total_seconds()
            self.callback_latency.observe(max(latency, 0.0))

    def callback_already_closed(self) -> None:
        self.callbacks.labels("already_closed").inc()

    def callback_error(self) -> None:
        self.callbacks.labels("error").inc()

    def caller_tokens_unreadable(self, count: int) -> None:
        self.unreadable_tokens.inc(count)

    def caller_sweeper_rpc(self, kind: str) -> None:
        self.sweeper_rpcs.labels(kind).inc()

    def caller_heartbeat_interval(self, seconds: float) -> None:
        self.heartbeat_interval.set(seconds)

    def observe_store(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        """Adds the database-backed gauges, read on `loop` when Prometheus scrapes."""
        self.forget_store()
        self._store_collector = StoreCollector(store, loop)
        self.registry.register(self._store_collector)

    def forget_store(self) -> None:
        if self._store_collector is not None:
            with contextlib.suppress(KeyError):
                self.registry.unregister(self._store_collector)
            self._store_collector = None


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "executions": GaugeMetricFamily(
            "stigmer_executions", "Executions in the database, by phase.", labels=["phase"]
        ),
        "waiting": GaugeMetricFamily(
            "stigmer_callers_waiting",
            "Executions whose caller's activity still waits for its callback.",
        ),
        "oldest": GaugeMetricFamily(
            "stigmer_oldest_waiting_caller_age_seconds",
            "Age of the oldest execution whose caller still waits (0 when none).",
        ),
        "failed": GaugeMetricFamily(
            "stigmer_callbacks_failed",
            "Executions whose callback could not be delivered (see `stigmer-service callers`).",
        ),
    }


class StoreCollector(Collector):
    """Gauges computed from the database on the service's event loop at scrape time."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop, timeout: float = 5.0) -> None:
        self.store = store
        self.loop = loop
        self.timeout = timeout

    def describe(self) -> Iterator[Metric]:
        # Without describe(), registering would call collect() on the loop's own thread.
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is self.loop:
                return  # Would deadlock: the query needs this very thread's loop.
        try:
            overview = asyncio.run_coroutine_threadsafe(
                self.store.callback_overview(), self.loop
            ).result(self.timeout)
        except Exception as error:  # A scrape must not fail because the database hiccupped.
            log.warning("metrics: database read failed", error=type(error).__name__)
            return
        families = _families()
        for phase, name in PHASE_NAMES.items():
            families["executions"].add_metric([name], overview.phases.get(phase, 0))
        families["waiting"].add_metric([], overview.waiting)
        age = 0.0
        if overview.oldest_waiting is not None:
            now = datetime.datetime.now(datetime.UTC)
            age = max((now - overview.oldest_waiting).total_seconds(), 0.0)
        families["oldest"].add_metric([], age)
        families["failed"].add_metric([], overview.failed)
        yield from families.values()
