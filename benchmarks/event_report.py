"""The event delivery section of results.md: each DSL figure beside the bare signal's of its run."""

from __future__ import annotations

from collections import defaultdict

from benchmarks.event_delivery import SIGNAL, EventResult
from benchmarks.event_stack import PROCESSES
from benchmarks.stats import Summary


def _groups(results: list[EventResult]) -> dict[tuple[str, float, str], list[EventResult]]:
    groups: dict[tuple[str, float, str], list[EventResult]] = defaultdict(list)
    for result in results:
        groups[(result.scenario, result.rate, result.design)].append(result)
    return groups


def _ratios(
    results: list[EventResult], design: str, scenario: str, rate: float, field: str
) -> list[float]:
    """DSL / signal of one figure, pairing each run with the baseline run just before it."""
    ratios = []
    baseline: EventResult | None = None
    for result in results:
        if result.scenario != scenario or result.rate != rate:
            continue
        if result.design == SIGNAL:
            baseline = result
        elif result.design == design and baseline is not None:
            ratios.append(getattr(result, field) / getattr(baseline, field))
    return ratios


def _ratio(
    results: list[EventResult], key: tuple[str, float, str], field: str, digits: int = 1
) -> str:
    scenario, rate, design = key
    if design == SIGNAL:
        return "1.0x"
    return f"{Summary.of(_ratios(results, design, scenario, rate, field)).format(digits)}x"


def markdown(results: list[EventResult]) -> list[str]:
    if not results:
        return []
    groups = _groups(results)
    paced = {key: runs for key, runs in groups.items() if key[1] > 0}
    bursts = {key: runs for key, runs in groups.items() if key[1] == 0}
    out = ["## 4. Event delivery (sent → the listening workflow's task started), ms", ""]
    out += [
        "Latency at a steady rate each design sustains (the baseline: a bare Temporal signal "
        "carrying the same CloudEvent, sent by the driver).",
        "",
        "| scenario | design | events | sent per second | p50 | p99 | p50 / signal | "
        "p99 / signal | load (1 min) at start |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, runs in paced.items():
        scenario, rate, design = key
        out.append(
            f"| {scenario} | {design} | {runs[0].events} | {rate:g} "
            f"| {Summary.of([r.p50_ms for r in runs]).format()} "
            f"| {Summary.of([r.p99_ms for r in runs]).format()} "
            f"| {_ratio(results, key, 'p50_ms')} | {_ratio(results, key, 'p99_ms')} "
            f"| {Summary.of([r.load for r in runs]).format(2)} |"
        )
    cpu_columns = " | ".join(f"CPU ms/event: {name}" for name in PROCESSES)
    out += [
        "",
        "Throughput: all events sent at once (64 at a time), events consumed per second from "
        "the first send to the last consumption; latency under that burst.",
        "",
        f"| scenario | design | events | events per second | ratio to signal | p50 | p99 "
        f"| {cpu_columns} |",
        "| --- | --- | --- | --- | --- | --- | --- |" + " --- |" * len(PROCESSES),
    ]
    for key, runs in bursts.items():
        scenario, _, design = key
        cpu = " | ".join(
            Summary.of([r.cpu_ms_per_event.get(name, 0.0) for r in runs]).format()
            for name in PROCESSES
        )
        out.append(
            f"| {scenario} | {design} | {runs[0].events} "
            f"| {Summary.of([r.per_second for r in runs]).format()} "
            f"| {_ratio(results, key, 'per_second', 2)} "
            f"| {Summary.of([r.p50_ms for r in runs]).format()} "
            f"| {Summary.of([r.p99_ms for r in runs]).format()} | {cpu} |"
        )
    out += [
        "",
        "CPU per event: user + system seconds of each process from the first send until every "
        "workflow ended, divided by the events (`driver`: publishes or signals, this process).",
        "",
    ]
    return out
