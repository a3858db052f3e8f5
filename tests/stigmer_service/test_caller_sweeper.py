"""The caller sweeper: started until Temporal takes it; one bad caller does not stop a sweep."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from backend.stigmer_service import states
from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution import callers, worker
from backend.stigmer_service.execution.caller_schedule import CallerSchedule
from backend.stigmer_service.store.records import (
    CallerRef,
    UnreadableToken,
    WaitingCaller,
    WaitingCallers,
)


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

    async def heartbeat(self, *_: Any, **__: Any) -> None:
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


class ScriptedHandle:
    """A caller's activity handle whose heartbeat follows a script: "ok", "hang" (until the
    RPC timeout, which a fake would never enforce itself), or "throttled" answers first."""

    def __init__(self, client: ScriptedClient, token: bytes) -> None:
        self.client = client
        self.token = token

    async def heartbeat(self, *details: Any, **kwargs: Any) -> None:
        self.client.details.append(details)
        self.client.rpc_timeouts.append(kwargs.get("rpc_timeout"))
        self.client.sent.append((time.monotonic(), self.token))
        if self.token == b"hang":
            await asyncio.sleep(3600)
        if self.client.throttled.get(self.token, 0) > 0:
            self.client.throttled[self.token] -= 1
            raise RPCError("namespace rate limit exceeded", RPCStatusCode.RESOURCE_EXHAUSTED, b"")
        self.client.beats.append(self.token)


class ScriptedClient:
    namespace = "default"

    def __init__(self, throttled: dict[bytes, int] | None = None) -> None:
        self.beats: list[bytes] = []
        self.sent: list[tuple[float, bytes]] = []
        self.rpc_timeouts: list[Any] = []
        self.details: list[tuple[Any, ...]] = []
        self.throttled = throttled or {}

    def get_async_activity_handle(self, task_token: bytes) -> ScriptedHandle:
        return ScriptedHandle(self, task_token)


class ScriptedStore:
    def __init__(self, tokens: list[bytes]) -> None:
        self.tokens = tokens

    async def waiting_callers(self) -> WaitingCallers:
        return WaitingCallers(
            [
                WaitingCaller(f"aex-{i}", token, f"hash-{i}", CallerRef())
                for i, token in enumerate(self.tokens)
            ]
        )


def sweeper(store: ScriptedStore, client: ScriptedClient, **settings: Any) -> Any:
    return callers.CallerHeartbeats(store, client, Settings(**settings))  # type: ignore[arg-type]


async def test_a_hanging_heartbeat_is_cut_by_its_rpc_timeout() -> None:
    """Issue 14, finding 16: a heartbeat RPC had no timeout, so one hanging call held the sweep
    (and every caller after it) for as long as it hung."""
    client = ScriptedClient()
    tokens = [b"first", b"hang", b"last"]
    began = time.monotonic()
    await asyncio.wait_for(
        sweeper(ScriptedStore(tokens), client, caller_heartbeat_rpc_timeout=0.2).sweep(), 10
    )
    assert time.monotonic() - began < 5
    assert sorted(client.beats) == [b"first", b"last"]
    assert client.rpc_timeouts == [timedelta(seconds=0.2)] * 3
    # Each heartbeat says its execution (Temporal keeps only the last heartbeat's details).
    assert sorted(d[0]["execution_id"] for d in client.details) == ["aex-0", "aex-1", "aex-2"]
    assert all(len(d) == 1 and set(d[0]) == {"execution_id"} for d in client.details)


async def test_a_sweep_keeps_to_its_rpc_budget() -> None:
    """Issue 14, finding 16: a sweep sent every heartbeat as fast as 64 at a time allowed,
    whatever the namespace's rate limit."""
    client = ScriptedClient()
    tokens = [f"t-{i}".encode() for i in range(30)]
    began = time.monotonic()
    await sweeper(ScriptedStore(tokens), client, caller_heartbeat_rps=40.0).sweep()
    elapsed = time.monotonic() - began
    assert sorted(client.beats) == sorted(tokens)
    # A burst of 4 (a tenth of a second's budget), then 40 a second: 26 more take 0.65 s.
    assert elapsed >= 0.6, elapsed
    for at, _ in client.sent:
        in_any_second = [t for t, _ in client.sent if at <= t < at + 1.0]
        assert len(in_any_second) <= 40 + 4


async def test_resource_exhausted_backs_off_and_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14, finding 16: RESOURCE_EXHAUSTED was logged and the caller went without its
    heartbeat (and every other caller's RPC went on at once); now the whole sweep pauses and
    the caller is heartbeated after all."""
    monkeypatch.setattr(callers, "THROTTLE_BACKOFF", 0.3)
    client = ScriptedClient(throttled={b"busy": 2})
    tokens = [b"busy", b"other"]
    began = time.monotonic()
    await sweeper(ScriptedStore(tokens), client).sweep()
    assert sorted(client.beats) == [b"busy", b"other"]
    # Two back-offs, 0.3 s then 0.6 s, before the busy caller's third try.
    assert time.monotonic() - began >= 0.85
    assert [token for _, token in client.sent].count(b"busy") == 3


async def test_an_unreadable_token_is_counted_and_the_others_heartbeated() -> None:
    """Issue 14, finding 6: the store lists undecryptable tokens apart; the sweep counts them
    (stigmer_caller_tokens_unreadable_total) and heartbeats everyone else."""

    class StoreWithUnreadable(ScriptedStore):
        async def waiting_callers(self) -> WaitingCallers:
            waiting = await super().waiting_callers()
            waiting.unreadable.append(UnreadableToken("aex-foreign", "hash-foreign"))
            return waiting

    client = ScriptedClient()
    heartbeats = sweeper(StoreWithUnreadable([b"first", b"last"]), client)
    clock = [0.0]
    heartbeats.schedule = CallerSchedule(heartbeats.settings, clock=lambda: clock[0])
    assert await heartbeats.sweep() == 2
    clock[0] += heartbeats.settings.caller_heartbeat_interval  # Both are due again.
    await heartbeats.sweep()
    assert sorted(client.beats) == [b"first", b"first", b"last", b"last"]
    counted = heartbeats.metrics.registry.get_sample_value("stigmer_caller_tokens_unreadable_total")
    assert counted == 2


async def test_a_caller_whose_execution_ended_during_the_round_is_left_alone() -> None:
    """A round sends its heartbeats over several seconds: an execution that ended after the
    round read it has had its callback, so the heartbeat's NOT_FOUND is expected, and neither
    the caller's workflow is described nor the execution signalled."""

    class Gone(ScriptedHandle):
        async def heartbeat(self, *details: Any, **kwargs: Any) -> None:
            raise RPCError("activity not found", RPCStatusCode.NOT_FOUND, b"")

    class GoneClient(ScriptedClient):
        def get_async_activity_handle(self, task_token: bytes) -> ScriptedHandle:
            return Gone(self, task_token)

        def get_workflow_handle(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("no describe and no signal for an ended execution")

    class EndedStore(ScriptedStore):
        async def for_delivery(self, execution_id: str) -> Any:
            record = SimpleNamespace(phase=states.PHASE_COMPLETED)
            return SimpleNamespace(execution=record, token_hash="hash-0")

    client = GoneClient()
    store = EndedStore([b"ended"])
    waiting = (await store.waiting_callers()).callers[0]
    waiting.caller = CallerRef(workflow_id="caller-workflow")
    heartbeats = sweeper(store, client)
    await heartbeats._heartbeat(waiting)
