"""`--hot-path`: the handshake's targets against Temporal's floor, on SQLite and on PostgreSQL.

One in-process rig (`stack.py`) per database. In each: throughput of the floor and of the
handshake (a burst, measurement 3), then callback latency of both at 5 calls per second and at
80 % of the handshake's measured maximum (measurement 2's method, at that rate). The CPU columns
are measurement 3's: the service runs in the driver's process, so its column is the service plus
the driver, whose own share is about the floor's column (the floor runs no service code).
"""

from __future__ import annotations

import dataclasses
import pathlib

import typer

from benchmarks import latency, stack, throughput
from benchmarks.latency import LatencyResult
from benchmarks.models import BARE
from benchmarks.throughput import ThroughputResult

# The targets, as ratios to the floor measured in the same rig.
LATENCY_P50_TARGET = 1.2
LATENCY_P99_TARGET = 2.0
THROUGHPUT_TARGET = 0.45
SERVICE_CPU_TARGET_MS = 8.0
LOAD_FRACTION = 0.8


@dataclasses.dataclass
class HotPathResult:
    database: str
    floor: ThroughputResult
    handshake: ThroughputResult
    # (calls per second, floor, handshake) for each rate measured.
    latencies: list[tuple[float, LatencyResult, LatencyResult]]


async def run(
    database: str, work_dir: pathlib.Path, burst: int, latency_calls: int
) -> HotPathResult:
    async with stack.running(work_dir, database) as rig:
        await throughput.run_dsl(rig, 10)  # Warm: the agent, the caches, the first workflows.
        floor = await throughput.run_bare(rig, burst)
        handshake = await throughput.run_dsl(rig, burst)
        typer.echo(
            f"  {database}: floor {floor.per_second:.1f}/s, handshake {handshake.per_second:.1f}/s"
        )
        latencies = []
        for rate in (latency.CALLS_PER_SECOND, LOAD_FRACTION * handshake.per_second):
            floor_latency = await latency.run_fake_side(rig, BARE, latency_calls, rate)
            service_latency = await latency.run_service(rig, latency_calls, rate)
            latencies.append((rate, floor_latency, service_latency))
            typer.echo(
                f"  {database} at {rate:.1f}/s: p50 {service_latency.p50_ms:.1f} ms "
                f"(floor {floor_latency.p50_ms:.1f})"
            )
        return HotPathResult(database, floor, handshake, latencies)


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def markdown(results: list[HotPathResult]) -> list[str]:
    """Section 6 of results.md: every figure beside the floor of the same rig."""
    if not results:
        return []
    lines = [
        "## 6. The hot path against Temporal's floor (service in the driver's process)",
        "",
        "Throughput: a burst of one-call DSL workflows against the floor's bare activity. "
        "Latency: from the agent's end to the caller resuming, at 5 calls/s and at "
        f"{LOAD_FRACTION:.0%} of the handshake's measured maximum.",
        "",
        "| database | figure | floor | handshake | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        ratio = result.handshake.per_second / result.floor.per_second
        lines.append(
            f"| {result.database} | calls per second | {result.floor.per_second:.1f} "
            f"| {result.handshake.per_second:.1f} | {ratio:.2f}x "
            f"| >= {THROUGHPUT_TARGET}x: {_verdict(ratio >= THROUGHPUT_TARGET)} |"
        )
        for name in throughput.PROCESSES:
            lines.append(
                f"| {result.database} | CPU ms/call: {name} "
                f"| {result.floor.cpu_ms_per_call.get(name, 0.0):.1f} "
                f"| {result.handshake.cpu_ms_per_call.get(name, 0.0):.1f} | | |"
            )
        service = result.handshake.cpu_ms_per_call.get("service+driver", 0.0) - (
            result.floor.cpu_ms_per_call.get("service+driver", 0.0)
        )
        lines.append(
            f"| {result.database} | CPU ms/call: service (less the driver's share) | "
            f"| {service:.1f} | | <= {SERVICE_CPU_TARGET_MS:g} ms: "
            f"{_verdict(service <= SERVICE_CPU_TARGET_MS)} |"
        )
        for rate, floor, handshake in result.latencies:
            p50 = handshake.p50_ms / floor.p50_ms
            p99 = handshake.p99_ms / floor.p99_ms
            lines.append(
                f"| {result.database} | latency p50 ms at {rate:.1f}/s ({floor.calls} calls) "
                f"| {floor.p50_ms:.1f} | {handshake.p50_ms:.1f} | {p50:.2f}x "
                f"| <= {LATENCY_P50_TARGET}x: {_verdict(p50 <= LATENCY_P50_TARGET)} |"
            )
            lines.append(
                f"| {result.database} | latency p99 ms at {rate:.1f}/s | {floor.p99_ms:.1f} "
                f"| {handshake.p99_ms:.1f} | {p99:.2f}x "
                f"| <= {LATENCY_P99_TARGET}x: {_verdict(p99 <= LATENCY_P99_TARGET)} |"
            )
    return [*lines, ""]
