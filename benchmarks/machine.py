"""What the benchmark ran on, read at run time."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

import psutil  # type: ignore[import-untyped]

from backend.common import temporal_dev_server


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _temporal_version() -> str:
    try:
        cli = temporal_dev_server.find_temporal_cli()
        out = subprocess.run(
            [str(cli), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        return out.stdout.strip() or out.stderr.strip()
    except (temporal_dev_server.TemporalCliNotFoundError, OSError, subprocess.SubprocessError):
        return "unknown"


def describe() -> dict[str, str]:
    load = os.getloadavg()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": f"{psutil.cpu_count(logical=True)} logical ({_cpu_model()})",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporal CLI": _temporal_version(),
        "load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }
