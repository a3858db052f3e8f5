"""Thousands of requests to every RPC, through gRPC against a served service process on SQLite
and on PostgreSQL: plausible ones around a real agent and real executions (so that they reach
past the first lookups), with hostile field values and undecodable bodies mixed in. Every answer
is a canonical client-error status (or OK), never INTERNAL or UNKNOWN, and the service keeps
serving. `python -m tests.system.fuzz` runs the same fuzz longer."""

from __future__ import annotations

import pathlib

from backend.common import temporal_dev_server
from tests.system import fuzz

# Per database; with both, the run makes 10,000 requests (about a minute on 2 cores).
REQUESTS = 5_000


async def test_ten_thousand_requests_get_client_errors_on_sqlite_and_postgresql(
    temporal_server: temporal_dev_server.DevServer, tmp_path: pathlib.Path
) -> None:
    tallies = {
        kind: await fuzz.run(temporal_server.address, kind, REQUESTS, tmp_path / kind)
        for kind in fuzz.DATABASES
    }
    for kind, tally in tallies.items():
        print(f"{kind}: {tally.total} requests: {tally.histogram()}")
    assert sum(t.total for t in tallies.values()) >= 10_000
    for kind, tally in tallies.items():
        assert tally.codes["INTERNAL"] == 0 and tally.codes["UNKNOWN"] == 0, tally.histogram()
        assert tally.wrong == [], f"{kind}:\n" + "\n".join(tally.wrong[:20])
        assert tally.crashes == [], f"{kind}: the service logged a crash"
        # The requests reached past the lookups: creates and updates succeeded.
        assert tally.codes["OK"] > REQUESTS // 20, tally.histogram()
