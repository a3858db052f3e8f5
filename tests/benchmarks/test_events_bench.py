"""Smoke test of the event delivery benchmark: `--events-only --quick` runs and reports every row.

No timing is asserted (the machine is shared); the run itself checks that every event reached
its workflow, and the report must hold each scenario in each design.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

from benchmarks.event_delivery import DSL, MANY_WORKFLOWS, ONE_WORKFLOW, SIGNAL
from tests.support.processes import child_env

RUN_TIMEOUT_SECONDS = 480


def test_quick_event_benchmark_reports_both_scenarios_against_the_signal(
    tmp_path: pathlib.Path,
) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.main", "--events-only", "--quick", "--out", str(out)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = (out / "results.md").read_text()
    assert "## 4. Event delivery" in report, report
    assert "interrupted" not in report, report
    rows = [line for line in report.splitlines() if line.startswith(("| A:", "| B:"))]
    # Two tables (paced, burst), each with both scenarios in both designs, 50 events each.
    assert len(rows) == 8, report
    for scenario in (ONE_WORKFLOW, MANY_WORKFLOWS):
        for design in (SIGNAL, DSL):
            matching = [r for r in rows if r.startswith(f"| {scenario} | {design} | 50 |")]
            assert len(matching) == 2, (scenario, design, report)
            assert all("nan" not in r for r in matching), matching
