"""`--system`: the scale-out comparison, then system capacity for each N, within a time box."""

from __future__ import annotations

import dataclasses
import pathlib
import time

import typer

from benchmarks.system import rig, scale_out, scenarios

# Calls in flight per second assumed for the slow model's first N (this machine reached 29).
ASSUMED_RATE = 5.0
# Scale-out layouts: SQLite 1 + 1 beside PostgreSQL 1 + 1 and 2 + 2.
SCALE_OUT_LAYOUTS = (
    rig.Layout(rig.SQLITE, 1, 1),
    rig.Layout(rig.POSTGRES, 1, 1),
    rig.Layout(rig.POSTGRES, 2, 2),
)


@dataclasses.dataclass
class Options:
    sizes: list[int]
    layout: rig.Layout  # of the capacity runs
    burst: int  # M calls of the scale-out throughput runs
    latency_calls: int
    window: float  # seconds of the waiting sample
    settle: float
    deadline: float  # time.monotonic() of the time box's end
    # Another revision's tree: each one-replica scale-out layout runs its code too, right after.
    baseline: pathlib.Path | None = None
    scale_out_only: bool = False


@dataclasses.dataclass
class SystemResults:
    capacity: list[scenarios.CapacityResult] = dataclasses.field(default_factory=list)
    scale_out: list[scale_out.ScaleOutResult] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def options(
    *,
    quick: bool,
    sizes: list[int] | None,
    layout: rig.Layout,
    burst: int | None,
    latency_calls: int | None,
    minutes: float,
) -> Options:
    return Options(
        sizes=sizes or ([20] if quick else [1000, 10_000]),
        layout=layout,
        burst=burst or (30 if quick else 200),
        latency_calls=latency_calls or (10 if quick else 50),
        # Longer than the sweeper's interval (10 s), so that every caller is heartbeated in it.
        window=3.0 if quick else 30.0,
        settle=0.5 if quick else 5.0,
        deadline=time.monotonic() + minutes * 60,
    )


def _sleep_for(n: int, opts: Options, rate: float | None) -> float:
    """The slow model's S: every call must still sleep once the last one is in flight and the
    waiting has been sampled. `rate`: calls in flight per second in the slow model run of a
    smaller N, divided by 3 (more waiting calls slow the next ones down: on 2 cores, 30/s at
    N = 1000 fell to 12/s at N = 10,000, and lower once the first calls ended); else a guess."""
    per_second = rate / 3 if rate else ASSUMED_RATE
    return round(n / per_second + opts.settle + opts.window + (5 if n <= 100 else 30))


async def measure(results: SystemResults, opts: Options, work_dir: pathlib.Path) -> None:
    """The fixed-size scale-out runs first, then the capacity runs, which grow with N."""
    for layout in _scale_out_layouts(opts):
        if _late(results, opts, f"scale-out {layout.label}"):
            return
        typer.echo(f"system scale-out: {layout.label}, {opts.burst} calls + latency")
        compared = await scale_out.run(layout, work_dir, opts.burst, opts.latency_calls)
        typer.echo(f"  {compared}")
        results.scale_out.append(compared)
    if opts.scale_out_only:
        return
    rate: float | None = None
    for n in opts.sizes:
        # The slow model first: its S is fixed before it starts, while an approval run is
        # bounded by nothing but the time box (its calls come back only once approved).
        for scenario in (scenarios.SLOW_MODEL, scenarios.APPROVAL):
            if _late(results, opts, f"{scenario} N={n}"):
                return
            sleep = _sleep_for(n, opts, rate) if scenario == scenarios.SLOW_MODEL else 0.0
            typer.echo(f"system capacity: {scenario}, N={n}, {opts.layout.label}")
            timing = scenarios.Timing(opts.window, opts.settle, opts.deadline)
            held = await scenarios.run(scenario, n, opts.layout, work_dir, timing, sleep)
            typer.echo(f"  {held}")
            results.capacity.append(held)
            results.notes += held.notes
            if scenario == scenarios.SLOW_MODEL and held.in_flight == n:
                rate = n / held.reach_seconds


def _scale_out_layouts(opts: Options) -> list[rig.Layout]:
    """Each layout, and with a baseline, each one-replica layout again on the baseline's code."""
    layouts = []
    for layout in SCALE_OUT_LAYOUTS:
        layouts.append(layout)
        if opts.baseline is not None and layout.replicas == 1:
            layouts.append(dataclasses.replace(layout, source=opts.baseline))
    return layouts


def _late(results: SystemResults, opts: Options, what: str) -> bool:
    if time.monotonic() < opts.deadline:
        return False
    results.notes.append(f"time box reached: {what} and what follows were not run")
    return True
