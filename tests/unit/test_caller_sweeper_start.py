"""The service keeps trying to start its caller sweeper while Temporal is unreachable."""

from __future__ import annotations

from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution import callers, worker


class FlakyClient:
    """Refuses the first starts as an unreachable frontend would, then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts: list[dict[str, Any]] = []

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        self.starts.append(kwargs)
        if len(self.starts) <= self.failures:
            raise RPCError("unreachable", RPCStatusCode.UNAVAILABLE, b"")


async def test_the_sweeper_start_is_retried_until_it_succeeds() -> None:
    settings = Settings(task_queue="queue-a")
    client = FlakyClient(failures=2)
    await worker.keep_starting_caller_heartbeats(client, settings)  # type: ignore[arg-type]
    assert len(client.starts) == 3
    # Every attempt names the one sweeper of the queue and joins it if it runs.
    assert {start["id"] for start in client.starts} == {callers.workflow_id("queue-a")}
    assert all(start["task_queue"] == "queue-a" for start in client.starts)
    assert all(start["id_conflict_policy"].name == "USE_EXISTING" for start in client.starts)
