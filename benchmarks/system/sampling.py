"""What each process costs and what Temporal serves: psutil per process (RSS, CPU) and the dev
server's own request counter (Prometheus `service_requests`, by operation)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping

import psutil  # type: ignore[import-untyped]

# The dev server's counter of the RPCs each of its services handled. Only the frontend's, in
# our namespace: the RPCs the clients (driver, service replicas, workers) made; the matching
# and history services' internal calls, and the system namespace's own workflows, are left out.
COUNTER = "service_requests"
FRONTEND = 'service_name="frontend"'
NAMESPACE = 'namespace="default"'
HEARTBEAT = "RecordActivityTaskHeartbeat"
_OPERATION = re.compile(r'operation="([^"]+)"')


@dataclasses.dataclass
class ProcessUsage:
    rss_mb: float  # peak over the window
    cpu_percent: float  # mean over the window, of one core


@dataclasses.dataclass
class Window:
    """One sampling window over every process of the rig."""

    seconds: float
    usage: dict[str, ProcessUsage]
    rpcs_per_second: dict[str, float]  # by operation, and "total"


def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """User + system CPU seconds so far of each process (0 for one that is gone)."""
    seconds = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
            seconds[name] = times.user + times.system
        except psutil.Error:
            seconds[name] = 0.0
    return seconds


def _rss_mb(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return 0.0


def _scrape(url: str) -> Counter[str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # (our loopback)
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith(COUNTER + "{") and FRONTEND in line and NAMESPACE in line:
            found = _OPERATION.search(line)
            if found:
                counts[found.group(1)] += int(float(line.rsplit(" ", 1)[1]))
    return counts


async def temporal_requests(metrics_url: str) -> Counter[str]:
    """The frontend's request count so far, by operation."""
    return await asyncio.to_thread(_scrape, metrics_url)


async def window(pids: Mapping[str, int], metrics_url: str, seconds: float) -> Window:
    """Every process's peak RSS and mean CPU, and Temporal's RPCs per second, over `seconds`."""
    requests_before = await temporal_requests(metrics_url)
    cpu_before = cpu_seconds(pids)
    began = time.monotonic()
    peaks = dict.fromkeys(pids, 0.0)
    while True:
        for name, pid in pids.items():
            peaks[name] = max(peaks[name], _rss_mb(pid))
        if time.monotonic() - began >= seconds:
            break
        await asyncio.sleep(min(1.0, seconds / 4))
    cpu_after = cpu_seconds(pids)
    elapsed = time.monotonic() - began
    requests_after = await temporal_requests(metrics_url)
    usage = {
        name: ProcessUsage(peaks[name], 100.0 * (cpu_after[name] - cpu_before[name]) / elapsed)
        for name in pids
    }
    rates = {op: (requests_after[op] - requests_before[op]) / elapsed for op in requests_after}
    rates = {op: rate for op, rate in rates.items() if rate > 0}
    rates["total"] = sum(rates.values())
    return Window(elapsed, usage, rates)
