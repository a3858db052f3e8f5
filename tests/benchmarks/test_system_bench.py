"""Smoke test of the system benchmark: `--system --quick --sizes 10` runs every component as its
own process, reports both capacity scenarios and the three scale-out layouts, gets every call
back, and leaves no process and no PostgreSQL database behind.

No timing is asserted (the machine is shared).
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import subprocess
import sys

import asyncpg  # type: ignore[import-untyped]
import psutil  # type: ignore[import-untyped]

from benchmarks.system.rig import DATABASE_PREFIX
from benchmarks.system.run import SCALE_OUT_LAYOUTS
from benchmarks.system.scenarios import APPROVAL, SLOW_MODEL
from tests.support.postgres import ADMIN_URL
from tests.support.processes import child_env

RUN_TIMEOUT_SECONDS = 300
N = 10


def _rows(report: str, first_cell: str) -> list[list[str]]:
    lines = [line for line in report.splitlines() if line.startswith(f"| {first_cell}")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _first_table_after(report: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after `heading` (other tables follow it)."""
    lines = report.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[start:end][2:]]


def _holding_files_in(folder: pathlib.Path) -> list[str]:
    """Processes that still have a file of `folder` open (each child's log is its stdout)."""
    holders = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(f.path.startswith(str(folder)) for f in process.open_files()):
                holders.append(f"{process.pid}: {' '.join(process.info['cmdline'] or [])}")
        except psutil.Error:
            continue
    return holders


async def _databases_left(runs: set[str]) -> list[str]:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        rows = await admin.fetch("SELECT datname FROM pg_database")
    finally:
        await admin.close()
    return [
        r["datname"]
        for r in rows
        if any(r["datname"].startswith(DATABASE_PREFIX + run) for run in runs)
    ]


def test_quick_system_benchmark_reports_every_run_and_cleans_up(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results"
    argv = ["--system", "--quick", "--sizes", str(N), "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.main", *argv],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = (out / "results.md").read_text()
    assert "## 5. The system at scale" in report, report
    assert "interrupted" not in report and "time box" not in report, report

    # Both scenarios: all N in flight at once, all N back with the agent's answer, none failed.
    for scenario in (APPROVAL, SLOW_MODEL):
        rows = [r for r in _rows(report, scenario) if r[1] == str(N)]
        assert len(rows) == 1, (scenario, report)
        assert rows[0][3] == str(N) and rows[0][4] == f"{N} (0)", rows[0]
        assert rows[0][8] == str(N), rows[0]  # all N waited through the sampling window
    # Every process of the rig measured while they wait.
    for run_row in (f"{APPROVAL} N={N}", f"{SLOW_MODEL} N={N}"):
        cells = _rows(report, run_row)[0]
        assert len(cells) == 6 and all(" MB, " in cell for cell in cells[1:]), cells
    assert _rows(report, "RecordActivityTaskHeartbeat"), report
    # The scale-out layouts, every call back.
    scale_out = _first_table_after(report, "### Scale-out")
    assert [row[0] for row in scale_out] == [layout.label for layout in SCALE_OUT_LAYOUTS]
    for row in scale_out:
        assert row[3] == "0" and "nan" not in " ".join(row), row

    work = out / "work"
    assert _holding_files_in(work) == []
    runs = {
        m.group(1)
        for m in re.finditer(r"-([0-9a-f]{6})-", " ".join(p.name for p in work.iterdir()))
    }
    assert len(runs) == 5, runs  # two capacity runs, three scale-out runs: a rig each
    assert asyncio.run(_databases_left(runs)) == []
