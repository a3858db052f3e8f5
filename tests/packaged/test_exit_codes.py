"""The packaged PEXes as users run them: many separate processes at once against a real dev server
and a real service; every one exits 0 and none aborts at exit ("Fatal Python error")."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import sys
import uuid
from collections.abc import AsyncIterator, Iterable

import pytest
import pytest_asyncio

from backend.common import temporal_dev_server
from tests.support.processes import Process, wait_for_log, wait_serving

pytestmark = pytest.mark.timeout(540)

RUNNER_PEX = "backend.workflow_runner/workflow-runner.pex"
SERVICE_PEX = "backend.stigmer_service/stigmer-service.pex"
ABORTED = "Fatal Python error"

TRIVIAL = """
document: {dsl: '1.0.0', namespace: packaged, name: trivial, version: '1.0.0'}
do:
  - greet:
      set: {greeting: '${ "hello " + (.name | tostring) }'}
"""

AGENTS = """
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: packaged-agent, org: packaged}
spec: {instructions: Answer., model: offline/echo}
"""


def pex(relative: str) -> pathlib.Path:
    """The PEX Pants put in this test's sandbox, or the one `./pants package` left in dist/."""
    for root in (pathlib.Path.cwd(), pathlib.Path.cwd() / "dist"):
        if (root / relative).is_file():
            return root / relative
    raise FileNotFoundError(
        f"{relative} not found: run under `./pants test` (which builds it) or `./pants package ::`"
    )


@dataclasses.dataclass
class Finished:
    argv: list[str]
    code: int
    stdout: str
    stderr: str


@dataclasses.dataclass
class Programs:
    env: dict[str, str]

    async def run(self, program: str, *args: str) -> Finished:
        argv = [sys.executable, str(pex(program)), *args]
        child = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await child.communicate()
        assert child.returncode is not None
        return Finished(argv, child.returncode, out.decode(), err.decode())

    async def run_all(
        self, program: str, commands: Iterable[list[str]], at_once: int
    ) -> list[Finished]:
        gate = asyncio.Semaphore(at_once)

        async def one(args: list[str]) -> Finished:
            async with gate:
                return await self.run(program, *args)

        return list(await asyncio.gather(*(one(args) for args in commands)))

    def process(self, name: str, program: str, args: list[str], log: pathlib.Path) -> Process:
        return Process(name, [sys.executable, str(pex(program)), *args], self.env, log)


def assert_clean(results: list[Finished]) -> None:
    failures = [r for r in results if r.code != 0 or ABORTED in r.stderr]
    assert not failures, "\n\n".join(
        f"{' '.join(r.argv[2:])}: exit {r.code}\n{r.stderr[-2000:]}" for r in failures[:3]
    )


@pytest_asyncio.fixture
async def programs(
    temporal_server: temporal_dev_server.DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Programs]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env |= {
        # The PEXes carry their own code and requirements; one unpacked copy serves every run.
        "PEX_ROOT": str(tmp_path_factory.getbasetemp() / "pex_root"),
        "TEMPORAL_ADDRESS": temporal_server.address,
        "TEMPORAL_NAMESPACE": "default",
    }
    programs = Programs(env)
    # Unpack each PEX once before the crowd starts.
    for program in (RUNNER_PEX, SERVICE_PEX):
        assert_clean([await programs.run(program, "--help")])
    yield programs


async def test_workflow_runner_runs_exit_0_many_at_once(
    programs: Programs, tmp_path: pathlib.Path
) -> None:
    document = tmp_path / "trivial.yaml"
    document.write_text(TRIVIAL)
    started = await programs.run_all(
        RUNNER_PEX,
        (["run", str(document), "--no-wait", "--input", '{"name": "x"}'] for _ in range(50)),
        at_once=8,
    )
    assert_clean(started)
    ids = {json.loads(result.stdout)["workflow_id"] for result in started}
    assert len(ids) == 50

    queue = f"packaged-{uuid.uuid4()}"
    worker = programs.process(
        "workflow-runner worker", RUNNER_PEX, ["worker", "--task-queue", queue], tmp_path / "w.log"
    )
    worker.start()
    try:
        await wait_for_log(worker, "worker started")
        waited = await programs.run_all(
            RUNNER_PEX,
            (
                ["run", str(document), "--task-queue", queue, "--input", json.dumps({"name": i})]
                for i in range(20)
            ),
            at_once=4,
        )
    finally:
        worker.stop()
    assert_clean(waited)
    assert sorted(json.loads(r.stdout)["greeting"] for r in waited) == sorted(
        f"hello {i}" for i in range(20)
    )
    assert worker.popen is not None and worker.popen.returncode == 0, worker.log_tail()
    assert ABORTED not in worker.log_text()


async def test_stigmer_service_client_commands_exit_0_many_at_once(
    programs: Programs, tmp_path: pathlib.Path
) -> None:
    address = f"127.0.0.1:{temporal_dev_server.free_port()}"
    service = programs.process(
        "stigmer-service serve", SERVICE_PEX, ["serve"], tmp_path / "service.log"
    )
    service.env = service.env | {
        "STIGMER_LISTEN": address,
        "STIGMER_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'stigmer.db'}",
        "STIGMER_TASK_QUEUE": f"packaged-{uuid.uuid4()}",
        "STIGMER_OFFLINE_PROVIDER": "1",
    }
    service.start()
    try:
        await wait_serving(address, service)
        manifest = tmp_path / "agents.yaml"
        manifest.write_text(AGENTS)
        endpoint = ["--endpoint", address]
        applied = await programs.run(SERVICE_PEX, "apply", "-f", str(manifest), *endpoint)
        assert_clean([applied])
        commands = [
            ["list", "agents", "--org", "packaged", *endpoint],
            ["list", "agents", "--org", "packaged", "-o", "json", *endpoint],
            ["list", "executions", "--org", "packaged", *endpoint],
            ["callers", *endpoint],
            ["apply", "-f", str(manifest), *endpoint],
        ] * 4
        assert_clean(await programs.run_all(SERVICE_PEX, commands, at_once=8))
    finally:
        service.stop()
    assert service.popen is not None and service.popen.returncode == 0, service.log_tail()
    assert ABORTED not in service.log_text()
