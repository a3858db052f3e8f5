"""The caller sweeper: started until Temporal takes it; one bad caller does not stop a sweep."""

from __future__ import annotations

from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution import callers, worker
from backend.stigmer_service.store.records import CallerRef, WaitingCaller, WaitingCallers


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


class Handle:
    def __init__(self, token: bytes, beats: list[bytes]) -> None:
        self.token = token
        self.beats = beats

    async def heartbeat(self, **_: Any) -> None:
        if self.token == b"odd":
            raise ValueError("an odd token")
        self.beats.append(self.token)


class Client:
    namespace = "default"

    def __init__(self) -> None:
        self.beats: list[bytes] = []

    def get_async_activity_handle(self, task_token: bytes) -> Handle:
        return Handle(task_token, self.beats)


class Store:
    async def waiting_callers(self) -> WaitingCallers:
        return WaitingCallers(
            [
                WaitingCaller(f"aex-{i}", token, f"hash-{i}", CallerRef())
                for i, token in enumerate([b"first", b"odd", b"last"])
            ]
        )


async def test_one_odd_caller_does_not_stop_the_sweep() -> None:
    client = Client()
    sweeper = callers.CallerHeartbeats(Store(), client, Settings())  # type: ignore[arg-type]
    assert await sweeper.sweep() == 3
    assert sorted(client.beats) == [b"first", b"last"]
