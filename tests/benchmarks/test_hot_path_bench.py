"""Smoke test of `--hot-path` and `--baseline`: the handshake against the floor on SQLite and
PostgreSQL, and the one-replica scale-out layouts run again on another revision's code (HEAD
here, which every clone has), from a worktree that is removed afterwards.

No timing is asserted (the machine is shared).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

from benchmarks.system.baseline import repository
from tests.support.processes import child_env

RUN_TIMEOUT_SECONDS = 420


def _rows(report: str, first_cell: str) -> list[list[str]]:
    lines = [line for line in report.splitlines() if line.startswith(f"| {first_cell}")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _worktrees() -> str:
    return subprocess.run(
        ["git", "-C", str(repository()), "worktree", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_hot_path_and_a_baseline_revision_are_measured_side_by_side(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results"
    head = subprocess.run(
        ["git", "-C", str(repository()), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    argv = [
        *(sys.executable, "-m", "benchmarks.main", "--hot-path", "--system", "--scale-out-only"),
        *("--baseline", "HEAD", "--quick", "--throughput-calls", "8", "--latency-calls", "4"),
        *("--out", str(out)),
    ]
    done = subprocess.run(
        argv, env=child_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (out / "results.md").read_text()

    # Section 6: each database's throughput beside the floor, and latency at two rates.
    for database in ("sqlite", "postgres"):
        [rates] = [r for r in _rows(report, database) if r[1] == "calls per second"]
        floor, handshake = float(rates[2]), float(rates[3])
        assert floor > 0 and handshake > 0, rates
        assert len([r for r in _rows(report, database) if r[1].startswith("latency p50")]) == 2

    # The one-replica layouts again on HEAD's code, every call back (the scale-out table's rows:
    # the cost table below it names the same layouts, with fewer columns).
    scale_out = report.split("### Scale-out", 1)[1].split("What one call costs", 1)[0]
    baseline_rows = [r for r in _rows(scale_out, "") if f"code of {head}" in r[0]]
    assert [r[0].split(",")[0] for r in baseline_rows] == ["sqlite", "postgres"], report
    assert all(r[3] == "0" for r in baseline_rows), baseline_rows
    assert f"baseline-{head}" not in _worktrees()
