"""Issue 17: many waiting callers share the caller sweeper's RPC budget, and each is still
heartbeated well within its own heartbeat timeout (real service, real Temporal dev server)."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest
from temporalio.client import Client

from backend.stigmer_service import app
from tests.stigmer_service import caller
from tests.stigmer_service.test_callbacks import assert_never_timed_out
from tests.support.service import fast_settings, open_stubs

CALLERS = 200
BUDGET = 50.0  # RPCs per second.
BASE_INTERVAL = 1.0
CHECK_INTERVAL = 60.0
# The callers say it (CallerInfo.heartbeat_timeout): a quarter of it, 5 s, bounds their interval.
CALLER_TIMEOUT = 20.0
# 200 callers at 1 s would be 200 heartbeats a second (and 3.3 checks): stretched to the budget.
STRETCHED = CALLERS * (1 / BASE_INTERVAL + 1 / CHECK_INTERVAL) / BUDGET * BASE_INTERVAL

pytestmark = pytest.mark.timeout(300)


def sweeper_rpcs(service: app.Service) -> float:
    registry = service.metrics.registry
    return sum(
        registry.get_sample_value("stigmer_caller_sweeper_rpcs_total", {"kind": kind}) or 0.0
        for kind in ("heartbeat", "workflow_check")
    )


async def test_two_hundred_waiting_callers_share_the_budget_and_none_times_out(
    temporal_client: Client, tmp_path: pathlib.Path, caller_queue: str
) -> None:
    gate = tmp_path / "gate"
    settings = fast_settings(
        tmp_path,
        caller_heartbeat_interval=BASE_INTERVAL,
        caller_heartbeat_rps=BUDGET,
        execution_check_interval=CHECK_INTERVAL,
        default_execution_timeout=240.0,
        # 200 agents wait on the gate meanwhile: their own heartbeats stay few.
        activity_heartbeat_interval=5.0,
        activity_heartbeat_timeout=30.0,
    )
    async with app.running(settings, client=temporal_client) as service:
        stubs = await open_stubs(service)
        try:
            agent = await stubs.agent("echo")
            handles = await asyncio.gather(
                *(
                    caller.start(
                        temporal_client,
                        caller_queue,
                        caller.CallInput(
                            stubs.endpoint,
                            agent.metadata.id,
                            f"#wait-for={gate} #reply=answer {index}",
                            heartbeat_timeout=CALLER_TIMEOUT,
                            activity_timeout=280.0,
                        ),
                    )
                    for index in range(CALLERS)
                )
            )
            for _ in range(CALLERS):
                await asyncio.wait_for(caller.created.get(), 120)
            await asyncio.sleep(2 * STRETCHED)  # Every caller's first heartbeat is due by then.

            began, sent_before = time.monotonic(), sweeper_rpcs(service)
            await asyncio.sleep(CALLER_TIMEOUT + 2)  # Longer than any caller may wait.
            rate = (sweeper_rpcs(service) - sent_before) / (time.monotonic() - began)
            print(f"\nsweeper RPCs per second with {CALLERS} waiting callers: {rate:.1f}")
            # Within the budget (a tenth of a second's burst aside), and not far below it: the
            # callers are heartbeated every ~4 s, not every 1 s and not just once in a while.
            assert rate <= BUDGET * 1.1
            assert rate >= BUDGET * 0.7
            interval = service.metrics.registry.get_sample_value(
                "stigmer_caller_heartbeat_interval_seconds"
            )
            assert interval == pytest.approx(STRETCHED, rel=0.01)
            # The service's heartbeats carry the execution id (these callers never heartbeat
            # themselves): what a caller reads to cancel its execution.
            [pending] = (await handles[0].describe()).raw_description.pending_activities
            [details] = await temporal_client.data_converter.decode(
                list(pending.heartbeat_details.payloads)
            )
            assert set(details) == {"execution_id"}
            assert details["execution_id"].startswith("aex-")

            gate.touch()
            results = await asyncio.wait_for(
                asyncio.gather(*(handle.result() for handle in handles)), 180
            )
            assert sorted(result["output"] for result in results) == sorted(
                f"answer {index}" for index in range(CALLERS)
            )
            # None of them hit its 20 s heartbeat timeout while it waited.
            for handle in handles:
                await assert_never_timed_out(handle)
        finally:
            await stubs.channel.close()
