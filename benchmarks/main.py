"""`./pants bench`: runs every measurement against its baseline and writes results.md + chart.png."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import datetime
import os
import pathlib
import pstats
import signal
import sys
import time
from typing import Annotated

import typer

from backend.common import logs
from benchmarks import (
    capacity,
    event_delivery,
    event_stack,
    latency,
    machine,
    profiling,
    report,
    stack,
    throughput,
)
from benchmarks import hot_path as hot_path_bench
from benchmarks.models import HANDSHAKE, POLLING
from benchmarks.system import baseline as system_baseline
from benchmarks.system import rig as system_rig
from benchmarks.system import run as system_run

app = typer.Typer(add_completion=False, help=__doc__)
SLOTS = 4


def _sizes(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",") if part.strip()]


async def _capacity(
    results: report.Results,
    sizes: list[int],
    repeat: int,
    window: float,
    full_slots_up_to: int,
    work_dir: pathlib.Path,
    deadline: float,
) -> None:
    for n in sizes:
        designs = [(HANDSHAKE, SLOTS), (POLLING, SLOTS)]
        if n <= full_slots_up_to:
            # What polling needs to hold N calls in flight: N slots, each busy polling.
            designs.append((POLLING, n))
        for repetition in range(repeat):
            if time.monotonic() > deadline and repetition > 0:
                results.notes.append(
                    f"capacity N={n}: {repetition} of {repeat} repetitions (time box reached)"
                )
                break
            for design, slots in designs:
                typer.echo(f"capacity: N={n} {design} K={slots} run {repetition + 1}/{repeat}")
                result = await capacity.run(design, n, slots, window, work_dir)
                typer.echo(f"  {result}")
                results.capacity.append(result)


async def _latency_and_throughput(
    results: report.Results,
    repeat: int,
    latency_calls: int,
    throughput_calls: int,
    work_dir: pathlib.Path,
    out: pathlib.Path,
) -> None:
    async with stack.running(work_dir) as rig:
        for repetition in range(repeat):
            typer.echo(f"latency: {latency_calls} calls per design, run {repetition + 1}/{repeat}")
            results.latency.append(await latency.run(rig, latency_calls))
            typer.echo(f"  {results.latency[-1]}")
            typer.echo(f"throughput: {throughput_calls} calls, run {repetition + 1}/{repeat}")
            results.throughput.append(
                [
                    await throughput.run_bare(rig, throughput_calls),
                    await throughput.run_dsl(rig, throughput_calls),
                ]
            )
            typer.echo(f"  {results.throughput[-1]}")
        # One extra run under the profiler (slower, so not counted): service and driver here,
        # the worker in its own process.
        typer.echo("profile: one more throughput run under cProfile")
        worker_profile = out / "profile-worker.pstats"
        await rig.start_worker(profile=worker_profile)
        profiler = cProfile.Profile()
        profiler.enable()
        await throughput.run_dsl(rig, throughput_calls)
        profiler.disable()
        rig.stop_worker()
    service_stats = pstats.Stats(profiler)
    service_stats.dump_stats(str(out / "profile-service.pstats"))
    profiling.write_text(service_stats, out / "profile-service.txt")
    results.profiles["service + driver process"] = profiling.top_rows(service_stats)
    if worker_profile.exists():
        worker_stats = pstats.Stats(str(worker_profile))
        profiling.write_text(worker_stats, out / "profile-worker.txt")
        results.profiles["worker process"] = profiling.top_rows(worker_stats)


async def _events(results: report.Results, count: int, rate: float, work_dir: pathlib.Path) -> None:
    async with event_stack.running(work_dir) as rig:
        for scenario in (event_delivery.ONE_WORKFLOW, event_delivery.MANY_WORKFLOWS):
            for pace in (rate, 0.0):
                for design in (event_delivery.SIGNAL, event_delivery.DSL):
                    mode = f"{pace:g}/s" if pace else "burst"
                    typer.echo(f"events: {scenario}, {design}, {count} events, {mode}")
                    result = await event_delivery.run(rig, scenario, design, count, pace)
                    typer.echo(f"  {result}")
                    results.events.append(result)


@app.command()
def main(
    quick: Annotated[bool, typer.Option(help="small N, two repetitions (a few minutes)")] = False,
    repeat: Annotated[int | None, typer.Option(help="repetitions of every measurement")] = None,
    sizes: Annotated[str | None, typer.Option(help="N waiting calls, comma separated")] = None,
    out: Annotated[pathlib.Path | None, typer.Option(help="results folder")] = None,
    latency_calls: Annotated[int | None, typer.Option(help="calls per latency run")] = None,
    throughput_calls: Annotated[int | None, typer.Option(help="calls per throughput run")] = None,
    capacity_only: Annotated[
        bool, typer.Option(help="only the waiting-capacity runs (e.g. one big N)")
    ] = False,
    events_only: Annotated[
        bool, typer.Option(help="only the event delivery runs (measurement 4)")
    ] = False,
    events: Annotated[
        int | None, typer.Option(help="N events per event delivery run (1000; 50 with --quick)")
    ] = None,
    event_rate: Annotated[
        float, typer.Option(help="events per second of the paced event delivery runs")
    ] = event_delivery.PACED_RATE,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            help="time box of the capacity runs (6; later repetitions are skipped), or of the "
            "whole --system run (30; what is left is skipped, a run in progress stops waiting)"
        ),
    ] = None,
    system: Annotated[
        bool,
        typer.Option(
            help="only the system measurements (measurement 5): every component its own "
            "process; system capacity for each N (--sizes 1000,10000) and the scale-out "
            "comparison (--throughput-calls M, 200; --latency-calls, 50)"
        ),
    ] = False,
    database: Annotated[
        str, typer.Option(help="--system capacity runs: postgres or sqlite")
    ] = system_rig.POSTGRES,
    replicas: Annotated[
        int, typer.Option(help="--system capacity runs: Stigmer service replicas (1 or 2)")
    ] = 1,
    workers: Annotated[
        int, typer.Option(help="--system capacity runs: workflow runner workers (1 or 2)")
    ] = 1,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="--system: a git revision whose service and runner also run each one-replica "
            "scale-out layout, beside this code (before/after in one run)"
        ),
    ] = None,
    scale_out_only: Annotated[
        bool, typer.Option(help="--system: the scale-out runs only (no capacity runs)")
    ] = False,
    hot_path: Annotated[
        bool,
        typer.Option(
            "--hot-path",
            help="the handshake against the floor on SQLite and PostgreSQL (throughput, latency "
            "at 5/s and at 80%% of the maximum); alone, or first with --system",
        ),
    ] = False,
) -> None:
    """Waiting capacity, callback latency, throughput and event delivery, each against its
    baseline."""
    started = time.monotonic()
    # Checked before anything starts (SQLite with two replicas is refused here).
    system_options = (
        system_run.options(
            quick=quick,
            sizes=_sizes(sizes) if sizes else None,
            layout=system_rig.Layout(database, replicas, workers),
            burst=throughput_calls,
            latency_calls=latency_calls,
            minutes=max_minutes or 30.0,
        )
        if system
        else None
    )
    repeat = repeat or (2 if quick else 3)
    size_list = _sizes(sizes) if sizes else ([50] if quick else [100, 1000, 10_000])
    # Below 100 concurrent calls: the service's worker has 100 activity slots, and each running
    # execution holds one with its caller_heartbeat activity (see docs/benchmarks.md).
    latency_calls = latency_calls or (10 if quick else 50)
    throughput_calls = throughput_calls or (30 if quick else 80)
    # Polling with K = N slots (what it takes polling to hold N calls) only where it is cheap.
    full_slots_up_to = 0 if quick else 1000
    events = events or (50 if quick else 1000)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (out or pathlib.Path("dist/benchmarks") / stamp).resolve()
    work_dir = out / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    # The in-process service logs as in production (JSON), to a file rather than the terminal.
    log_file = open(out / "service.log", "a")  # noqa: SIM115
    logs.configure(stream=log_file)
    results = report.Results(
        machine=machine.describe(),
        command="./pants bench " + " ".join(sys.argv[1:]) if sys.argv[1:] else "./pants bench",
    )
    typer.echo(f"results in {out}")

    async def everything() -> None:
        # The fixed-size measurements first, the capacity runs (which grow with N) last.
        if hot_path:
            for database in (stack.SQLITE, stack.POSTGRES):
                typer.echo(f"hot path: {database}, {throughput_calls} calls + latency")
                results.hot_path.append(
                    await hot_path_bench.run(database, work_dir, throughput_calls, latency_calls)
                )
            if system_options is None:
                return
        if system_options is not None:
            with contextlib.ExitStack() as trees:
                if baseline:
                    system_options.baseline = trees.enter_context(
                        system_baseline.checkout(baseline, work_dir)
                    )
                system_options.scale_out_only = scale_out_only
                await system_run.measure(results.system, system_options, work_dir)
            return
        if events_only:
            await _events(results, events, event_rate, work_dir)
            return
        if not capacity_only:
            await _latency_and_throughput(
                results, repeat, latency_calls, throughput_calls, work_dir, out
            )
            await _events(results, events, event_rate, work_dir)
        deadline = started + (max_minutes or 6.0) * 60
        await _capacity(
            results, size_list, repeat, 2.0 if quick else 5.0, full_slots_up_to, work_dir, deadline
        )

    # A SIGTERM (a time box around the run) unwinds like Ctrl-C: workers and servers are
    # stopped and whatever was measured is still written.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(everything())
    except KeyboardInterrupt:
        results.notes.append("The run was interrupted; the tables hold what was measured.")
    finally:
        results.seconds = time.monotonic() - started
        # Other work on the machine shows here (the run itself keeps the cores busy).
        results.notes.append(
            "Load average at the end of the run: "
            + " ".join(f"{value:.2f}" for value in os.getloadavg())
        )
        (out / "results.md").write_text(report.markdown(results))
        if results.capacity or results.latency or results.throughput:
            report.chart(results, out / "chart.png")
        log_file.close()
    typer.echo((out / "results.md").read_text())
    typer.echo(f"wrote {out / 'results.md'}")


if __name__ == "__main__":
    app()
