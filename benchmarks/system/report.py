"""Section 5 of results.md: system capacity and scale-out, every component its own process."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.system import sampling
from benchmarks.system.run import SystemResults
from benchmarks.system.scale_out import ScaleOutResult
from benchmarks.system.scenarios import APPROVAL, CapacityResult


def _f(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def _run_label(result: CapacityResult) -> str:
    return f"{result.scenario} N={result.n}"


def _capacity_rows(results: Sequence[CapacityResult]) -> list[str]:
    out = [
        "| scenario | N | layout | in flight at once | back (failed) | s until in flight "
        "| s until all back | decide → back s | waiting in window | Temporal RPC/s while waiting "
        "| heartbeat RPC/s | heartbeats per waiting call per hour | DB MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rates = r.waiting.rpcs_per_second
        scenario = (
            r.scenario if r.scenario == APPROVAL else f"{r.scenario} (S = {r.sleep_seconds:g} s)"
        )
        out.append(
            f"| {scenario} | {r.n} | {r.layout} | {r.in_flight} | {r.back} ({r.failed}) "
            f"| {_f(r.reach_seconds)} | {_f(r.back_seconds)} "
            f"| {_f(r.release_seconds) if r.scenario == APPROVAL else '-'} | {r.sampled} "
            f"| {_f(rates.get('total', 0.0))} | {_f(rates.get(sampling.HEARTBEAT, 0.0))} "
            f"| {_f(r.heartbeats_per_call_hour, 2)} | {_f(r.db_bytes / 2**20)} |"
        )
    return out


def _process_rows(results: Sequence[CapacityResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [name for name in r.waiting.usage if name not in names]
    out = [
        "| run | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for r in results:
        cells = []
        for name in names:
            usage = r.waiting.usage.get(name)
            cells.append(f"{usage.rss_mb:.0f} MB, {usage.cpu_percent:.1f} %" if usage else "-")
        out.append(f"| {_run_label(r)} | " + " | ".join(cells) + " |")
    return out


def _operation_rows(results: Sequence[CapacityResult]) -> list[str]:
    operations: list[str] = []
    for r in results:
        ranked = sorted(r.waiting.rpcs_per_second.items(), key=lambda item: -item[1])
        operations += [op for op, _ in ranked if op != "total" and op not in operations]
    out = [
        "| operation | " + " | ".join(_run_label(r) for r in results) + " |",
        "| --- |" + " --- |" * len(results),
    ]
    for op in [*operations, "total"]:
        cells = [_f(r.waiting.rpcs_per_second.get(op, 0.0), 2) for r in results]
        out.append(f"| {op} | " + " | ".join(cells) + " |")
    return out


def _sum(result: ScaleOutResult, prefix: str) -> float:
    return sum(ms for name, ms in result.cpu_ms_per_call.items() if name.startswith(prefix))


def _scale_out_rows(results: Sequence[ScaleOutResult]) -> list[str]:
    out = [
        "| layout | calls | calls per second | failed | CPU ms/call: temporal | services "
        "| workers | driver | all | each service and worker | latency calls | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        cpu = r.cpu_ms_per_call
        each = ", ".join(
            f"{name} {ms:.1f}"
            for name, ms in cpu.items()
            if name.startswith(("service-", "worker-"))
        )
        out.append(
            f"| {r.layout} | {r.calls} | {_f(r.per_second)} | {r.failed} "
            f"| {_f(cpu.get('temporal', 0.0))} | {_f(_sum(r, 'service-'))} "
            f"| {_f(_sum(r, 'worker-'))} | {_f(cpu.get('driver', 0.0))} "
            f"| {_f(sum(cpu.values()))} | {each} | {r.latency_calls} "
            f"| {_f(r.p50_ms)} | {_f(r.p99_ms)} |"
        )
    return out


def _cost_rows(results: Sequence[ScaleOutResult]) -> list[str]:
    out = [
        "| layout | Temporal RPCs per call | of which (the largest) | history events per call "
        "| history KB per call | database KB per call |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if r.costs is None:
            continue
        largest = sorted(r.costs.rpcs.items(), key=lambda item: -item[1])[:6]
        out.append(
            f"| {r.layout} | {_f(r.costs.rpcs_total)} "
            f"| {', '.join(f'{op} {n:.1f}' for op, n in largest)} | {r.costs.history_events} "
            f"| {_f(r.costs.history_bytes / 1024)} | {_f(r.costs.db_bytes / 1024)} |"
        )
    return out


def markdown(results: SystemResults) -> list[str]:
    if not results.capacity and not results.scale_out:
        return []
    out = ["## 5. The system at scale (every component its own process)", ""]
    if results.capacity:
        out += [
            "### System capacity: N calls waiting at once, then all back",
            "",
            "In flight: approval, executions whose tool call awaits a decision; slow model, "
            "executions whose agent runs (a SQL count on the service's database). Back: DSL "
            "workflows completed with the agent's answer (Temporal's visibility, then each "
            "result read). Seconds from the first start. Rates while waiting: Temporal "
            f"frontend `{sampling.COUNTER}` in namespace default, over the sampling window.",
            "",
            *_capacity_rows(results.capacity),
            "",
            "Each process while the calls wait (peak RSS, mean CPU % of one core over the "
            "window):",
            "",
            *_process_rows(results.capacity),
            "",
            "Temporal frontend RPCs per second while the calls wait, by operation:",
            "",
            *_operation_rows(results.capacity),
            "",
        ]
    if results.scale_out:
        out += [
            "### Scale-out: throughput and callback latency",
            "",
            "A burst of one-call DSL workflows (64 starts in flight) until the last result; CPU "
            "ms per call of each process over the burst. Latency: calls at 5/s, each agent "
            "answering 0.5 to 2.5 s after its start; from its stored answer to the caller's "
            "next workflow task started (its history).",
            "",
            *_scale_out_rows(results.scale_out),
            "",
            "What one call costs besides CPU, over the same burst: Temporal frontend requests "
            "per call (the dev server's counter, every process's requests), the workflow "
            "history of one call (the caller's DSL workflow and the execution workflow), and "
            "the database's growth per call (SQLite: file + WAL; PostgreSQL: "
            "pg_database_size, which grows in whole pages):",
            "",
            *_cost_rows(results.scale_out),
            "",
        ]
    if results.notes:
        out += ["Notes:", "", *[f"- {note}" for note in results.notes], ""]
    return out
