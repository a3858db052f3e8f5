"""Writes results.md (Markdown tables, each figure next to its baseline) and chart.png."""

from __future__ import annotations

import dataclasses
import pathlib
from collections import defaultdict
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from benchmarks import event_report, hot_path
from benchmarks.capacity import CapacityResult
from benchmarks.event_delivery import EventResult
from benchmarks.hot_path import HotPathResult
from benchmarks.latency import CALLS_PER_SECOND, END_AFTER_SECONDS, LatencyResult
from benchmarks.models import BARE, HANDSHAKE, HANDSHAKE_SERVICE
from benchmarks.profiling import ProfileRow
from benchmarks.stats import Summary
from benchmarks.system import report as system_report
from benchmarks.system.run import SystemResults
from benchmarks.throughput import DSL, PROCESSES, ThroughputResult

RSS_TARGET_MB = 300.0
LATENCY_TARGET_RATIO = 1.5
THROUGHPUT_TARGET = 50.0
FLOOR = f"{BARE} (floor)"


@dataclasses.dataclass
class Results:
    machine: dict[str, str]
    command: str
    capacity: list[CapacityResult] = dataclasses.field(default_factory=list)
    # One list per repetition, so that ratios pair figures measured together.
    latency: list[list[LatencyResult]] = dataclasses.field(default_factory=list)
    throughput: list[list[ThroughputResult]] = dataclasses.field(default_factory=list)
    profiles: dict[str, list[ProfileRow]] = dataclasses.field(default_factory=dict)
    events: list[EventResult] = dataclasses.field(default_factory=list)
    system: SystemResults = dataclasses.field(default_factory=SystemResults)
    hot_path: list[HotPathResult] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def _capacity_groups(results: Results) -> dict[tuple[int, str], list[CapacityResult]]:
    groups: dict[tuple[int, str], list[CapacityResult]] = defaultdict(list)
    for result in results.capacity:
        groups[(result.n, result.design)].append(result)
    return dict(sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] != HANDSHAKE)))


def _latency_by_design(results: Results) -> dict[str, list[LatencyResult]]:
    by_design: dict[str, list[LatencyResult]] = defaultdict(list)
    for repetition in results.latency:
        for result in repetition:
            by_design[result.design].append(result)
    return by_design


def _latency_ratios(results: Results, design: str) -> list[float]:
    ratios = []
    for repetition in results.latency:
        floor = next(r for r in repetition if r.design == BARE)
        for result in repetition:
            if result.design == design:
                ratios.append(result.p50_ms / floor.p50_ms)
    return ratios


def _throughput_by_design(results: Results) -> dict[str, list[ThroughputResult]]:
    by_design: dict[str, list[ThroughputResult]] = defaultdict(list)
    for repetition in results.throughput:
        for result in repetition:
            by_design[result.design].append(result)
    return by_design


def _throughput_ratios(results: Results) -> list[float]:
    ratios = []
    for repetition in results.throughput:
        rates = {r.design: r.per_second for r in repetition}
        if FLOOR in rates and DSL in rates:
            ratios.append(rates[DSL] / rates[FLOOR])
    return ratios


def targets(results: Results) -> list[str]:
    lines = []
    largest = [r for r in results.capacity if r.design == HANDSHAKE]
    if largest:
        n = max(r.n for r in largest)
        runs = [r for r in largest if r.n == n]
        rss = Summary.of([r.rss_mb for r in runs]).median
        all_waiting = all(r.in_flight == n for r in runs)
        met = n >= 10_000 and all_waiting and rss < RSS_TARGET_MB
        lines.append(
            f"- 10,000 waiting calls on one worker with 4 slots under {RSS_TARGET_MB:.0f} MB RSS: "
            f"**{'met' if met else 'not met'}** (largest N run: {n}, all waiting: {all_waiting}, "
            f"median worker RSS {rss:.0f} MB)"
        )
    ratios = _latency_ratios(results, HANDSHAKE_SERVICE)
    if ratios:
        ratio = Summary.of(ratios).median
        lines.append(
            f"- callback latency p50 within {LATENCY_TARGET_RATIO}x of the floor: "
            f"**{'met' if ratio <= LATENCY_TARGET_RATIO else 'not met'}** "
            f"(median ratio {ratio:.1f}x, agent's answer stored → caller resumed, real service)"
        )
    rates = _throughput_by_design(results).get(DSL, [])
    if rates:
        rate = Summary.of([r.per_second for r in rates]).median
        lines.append(
            f"- at least {THROUGHPUT_TARGET:.0f} complete agent calls per second: "
            f"**{'met' if rate >= THROUGHPUT_TARGET else 'not met'}** (median {rate:.1f}/s)"
        )
    return lines


def _capacity_section(results: Results) -> list[str]:
    if not results.capacity:
        return []
    out: list[str] = []
    out += ["## 1. Waiting capacity (one worker process, K = 4 activity slots)", ""]
    out += [
        "| N | design | in flight at once | worker RSS MB (idle) | worker CPU % while waiting "
        "| s until in flight | runs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (n, design), runs in _capacity_groups(results).items():
        out.append(
            f"| {n} | {design} | {Summary.of([r.in_flight for r in runs]).format(0)} "
            f"| {Summary.of([r.rss_mb for r in runs]).format(0)} "
            f"({Summary.of([r.idle_rss_mb for r in runs]).median:.0f}) "
            f"| {Summary.of([r.cpu_percent for r in runs]).format(1)} "
            f"| {Summary.of([r.reach_seconds for r in runs]).format(1)} | {len(runs)} |"
        )
    out.append("")
    return out


def _latency_section(results: Results) -> list[str]:
    if not results.latency:
        return []
    out: list[str] = []
    out += [
        "## 2. Callback latency (agent's end → caller's workflow resumes), ms",
        "",
        f"Calls start at {CALLS_PER_SECOND:g} per second; each agent ends "
        f"{END_AFTER_SECONDS[0]:g} to {END_AFTER_SECONDS[1]:g} s after its call was created.",
        "",
    ]
    out += [
        "| design | calls/run | p50 | p95 | p99 | p50 / floor p50 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for design, latencies in _latency_by_design(results).items():
        ratio = Summary.of(_latency_ratios(results, design)).format(1)
        out.append(
            f"| {design} | {latencies[0].calls} "
            f"| {Summary.of([r.p50_ms for r in latencies]).format()} "
            f"| {Summary.of([r.p95_ms for r in latencies]).format()} "
            f"| {Summary.of([r.p99_ms for r in latencies]).format()} | {ratio}x |"
        )
    out.append("")
    return out


def _throughput_section(results: Results) -> list[str]:
    if not results.throughput:
        return []
    out: list[str] = []
    out += ["## 3. Throughput (all calls started at once, until the last result)", ""]
    cpu_columns = " | ".join(f"CPU ms/call: {name}" for name in PROCESSES)
    out += [
        f"| design | calls/run | calls per second | ratio to floor | failed calls | {cpu_columns} |",
        "| --- | --- | --- | --- | --- |" + " --- |" * len(PROCESSES),
    ]
    for design, rates in _throughput_by_design(results).items():
        ratio = (
            "1.0x" if design == FLOOR else f"{Summary.of(_throughput_ratios(results)).format(2)}x"
        )
        cpu = " | ".join(
            Summary.of([r.cpu_ms_per_call.get(name, 0.0) for r in rates]).format()
            for name in PROCESSES
        )
        out.append(
            f"| {design} | {rates[0].calls} | {Summary.of([r.per_second for r in rates]).format()} "
            f"| {ratio} | {sum(r.failed for r in rates)} | {cpu} |"
        )
    out += [
        "",
        "CPU per call: user + system seconds of each process over the run, divided by the calls "
        "(`temporal`: the dev server; `worker`: the workflow runner's worker; `service+driver`: "
        "the Stigmer service with its execution worker, and the driver, one process). Two cores "
        "give at most 2,000 CPU ms per second: the sum of a row bounds its calls per second.",
        "",
    ]
    return out


def markdown(results: Results) -> str:
    out = ["# Benchmark results", ""]
    out += ["## Machine", "", "| | |", "| --- | --- |"]
    out += [f"| {key} | {value} |" for key, value in results.machine.items()]
    out += [f"| wall time of the run | {results.seconds:.0f} s |", ""]
    out += [f"Command: `{results.command}`", ""]
    out += ["Figures: median [min..max] over the repetitions.", ""]
    met = targets(results)
    if met:
        out += ["## Targets", "", *met, ""]

    out += _capacity_section(results)
    out += _latency_section(results)
    out += _throughput_section(results)
    out += event_report.markdown(results.events)
    out += system_report.markdown(results.system)
    out += hot_path.markdown(results.hot_path)
    for name, rows in results.profiles.items():
        out += [f"## Profile: {name} (top by own time)", ""]
        out += ["| function | calls | own s | cumulative s |", "| --- | --- | --- | --- |"]
        out += [
            f"| `{r.function}` | {r.calls} | {r.own_seconds:.2f} | {r.cumulative_seconds:.2f} |"
            for r in rows
        ]
        out.append("")
    if results.notes:
        out += ["## Notes", "", *[f"- {note}" for note in results.notes], ""]
    return "\n".join(out)


def chart(results: Results, path: pathlib.Path) -> None:
    figure, (capacity_axis, latency_axis, throughput_axis) = plt.subplots(1, 3, figsize=(16, 5))
    by_design: dict[str, dict[int, list[CapacityResult]]] = defaultdict(lambda: defaultdict(list))
    for result in results.capacity:
        by_design[result.design][result.n].append(result)
    for design, by_n in by_design.items():
        sizes = sorted(by_n)
        in_flight = [Summary.of([r.in_flight for r in by_n[n]]).median for n in sizes]
        rss = [Summary.of([r.rss_mb for r in by_n[n]]).median for n in sizes]
        capacity_axis.plot(sizes, in_flight, marker="o", label=f"{design}: in flight")
        capacity_axis.plot(sizes, rss, marker="x", linestyle="--", label=f"{design}: RSS MB")
    capacity_axis.set_xscale("log")
    capacity_axis.set_yscale("log")
    capacity_axis.set_xlabel("N waiting calls (K = 4 slots)")
    capacity_axis.set_title("Waiting capacity")
    capacity_axis.legend(fontsize=7)

    latency = _latency_by_design(results)
    _bars(
        latency_axis,
        list(latency),
        {
            "p50": [Summary.of([r.p50_ms for r in runs]).median for runs in latency.values()],
            "p95": [Summary.of([r.p95_ms for r in runs]).median for runs in latency.values()],
            "p99": [Summary.of([r.p99_ms for r in runs]).median for runs in latency.values()],
        },
    )
    latency_axis.set_ylabel("ms (log scale)")
    # Polling's second-scale bars would flatten the milliseconds of the other two.
    latency_axis.set_yscale("log")
    latency_axis.set_title("Callback latency")

    throughput = _throughput_by_design(results)
    _bars(
        throughput_axis,
        list(throughput),
        {
            "calls/s": [
                Summary.of([r.per_second for r in runs]).median for runs in throughput.values()
            ]
        },
    )
    throughput_axis.axhline(THROUGHPUT_TARGET, color="grey", linestyle=":", label="target")
    throughput_axis.set_title("Throughput")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bars(axis: Axes, labels: Sequence[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        positions = [i + index * width for i in range(len(labels))]
        axis.bar(positions, values, width, label=name)
    axis.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))])
    axis.set_xticklabels([label.replace(" (", "\n(") for label in labels], fontsize=7)
    axis.legend(fontsize=7)
