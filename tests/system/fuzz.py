"""The hypothesis fuzz of a served Stigmer service: requests to every RPC, around a real agent
and real executions, counted by status code; none may be INTERNAL, UNKNOWN or any other code a
client error does not explain.

The test (tests/system/test_bad_input.py) runs a few thousand per database; a longer run:

    PYTHONPATH=.:apis/stubs/python python -m tests.system.fuzz --requests 10000 --database both

starts its own Temporal dev server and, per database, a `stigmer-service serve` process (SQLite
in a temporary directory; PostgreSQL in a fresh database on 127.0.0.1:5432), prints each
histogram, and exits 1 when a request got a code outside `ALLOWED`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import pathlib
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_pb2_grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    spec_pb2,
)
from cryptography.fernet import Fernet
from google.protobuf import descriptor, message_factory, text_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings

from backend.common import temporal_dev_server
from tests.support import postgres
from tests.support.agents import OFFLINE_MODEL, ORG
from tests.support.agents import agent as agent_resource
from tests.support.processes import Process, child_env, wait_serving
from tests.system import fuzz_requests

# gRPC's default limit on a received message, which the service keeps.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
ALLOWED = {
    grpc.StatusCode.OK,  # a plausible request is often valid
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,  # a valid create that repeats an earlier one
    grpc.StatusCode.ABORTED,  # an update with a stale version
    grpc.StatusCode.PERMISSION_DENIED,  # another org's resource
}
DATABASES = ("sqlite", "postgresql")
_LIST_EXECUTIONS = query_pb2.DESCRIPTOR.services_by_name[
    "AgentExecutionQueryService"
].methods_by_name["ListAgentExecutions"]
CRASH = "rpc crashed"
# How many live ids of each kind the requests choose among (the newest).
POOL = 40


@dataclasses.dataclass
class Tally:
    """Status codes by name, and the requests whose code no client error explains."""

    codes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    wrong: list[str] = dataclasses.field(default_factory=list)
    # Lines of the service's log that show a crashed RPC.
    crashes: list[str] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    def histogram(self) -> str:
        return ", ".join(f"{code} {count}" for code, count in self.codes.most_common())


@dataclasses.dataclass
class Live:
    """The real resources requests refer to, updated from the answers."""

    pools: dict[str, list[str]]

    def add(self, kind: str, value: str) -> None:
        pool = self.pools[kind]
        if value and value not in pool:
            pool.append(value)
            del pool[:-POOL]

    def learn(self, method: str, request: Message | bytes, answer: Any) -> None:
        if isinstance(answer, agent_api_pb2.Agent):
            self.add("agent", answer.metadata.id)
            self.add("slug", answer.metadata.slug)
        elif isinstance(answer, api_pb2.AgentExecution):
            self.add("execution", answer.metadata.id)
            self.add("session", answer.spec.session_id)
        elif hasattr(answer, "next_page_token"):
            self.add("page", answer.next_page_token)
        elif method.endswith("Delete" + ("Agent" if "agent.v1" in method else "AgentExecution")):
            deleted = getattr(request, "id", "")
            for pool in self.pools.values():
                if deleted in pool:
                    pool.remove(deleted)


def _describe(request: Message | bytes) -> str:
    if isinstance(request, bytes):
        return f"{len(request)} undecodable bytes"
    return text_format.MessageToString(request, as_one_line=True, as_utf8=True)[:300]


def _call(
    channel: grpc.Channel, method: descriptor.MethodDescriptor, body: bytes
) -> tuple[grpc.StatusCode, str, Any]:
    """(code, details, decoded answer or None) of one call with `body` as it is on the wire."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    decode: Callable[[bytes], Any] = _answer_type(method).FromString
    try:
        if method.server_streaming:
            stream: Any = channel.unary_stream(path, response_deserializer=decode)(
                body,  # type: ignore[arg-type]
                timeout=10,
            )
            for first in stream:
                stream.cancel()  # the current state is enough: it was accepted
                return grpc.StatusCode.OK, "", first
            return grpc.StatusCode.OK, "", None
        answer = channel.unary_unary(path, response_deserializer=decode)(
            body,  # type: ignore[arg-type]
            timeout=10,
        )
        return grpc.StatusCode.OK, "", answer
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.CANCELLED:
            return grpc.StatusCode.OK, "", None
        return code, error.details() or "", None


def _answer_type(method: descriptor.MethodDescriptor) -> Any:
    return message_factory.GetMessageClass(method.output_type)


def _seed(channel: grpc.Channel) -> Live:
    """A real agent and two executions (one running for a minute, one that ends at once)."""
    live = Live({"agent": [], "execution": [], "session": [], "slug": [], "page": []})
    agent = agent_command_pb2_grpc.AgentCommandServiceStub(channel).ApplyAgent(
        agent_command_pb2.ApplyAgentRequest(
            agent=agent_resource("fuzz-agent", ORG, model=OFFLINE_MODEL)
        ),
        timeout=10,
    )
    live.learn("ApplyAgent", b"", agent)
    executions = command_pb2_grpc.AgentExecutionCommandServiceStub(channel)
    for message in ("#sleep=60", "hi"):
        spec = spec_pb2.AgentExecutionSpec(agent_id=agent.metadata.id, message=message)
        request = command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(spec=spec)
        )
        live.learn(
            "CreateAgentExecution", b"", executions.CreateAgentExecution(request, timeout=10)
        )
    return live


def fuzz(address: str, requests: int) -> Tally:
    """`requests` requests of the fuzz against the service at `address` (blocking)."""
    tally = Tally()
    with grpc.insecure_channel(
        address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        live = _seed(channel)

        @settings(
            max_examples=requests,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # every example is one counted request; no shrinking
            suppress_health_check=list(HealthCheck),
        )
        @given(fuzz_requests.requests)
        def one(request: fuzz_requests.Request) -> None:
            method, message = request
            if isinstance(message, Message):
                fuzz_requests.resolve(message, live.pools)
                body = message.SerializeToString()
            else:
                body = message
            code, details, answer = _call(channel, method, body)
            tally.codes[code.name] += 1
            live.learn(method.name, message, answer)
            expected = (
                code == grpc.StatusCode.RESOURCE_EXHAUSTED
                if len(body) > MAX_MESSAGE_BYTES
                else code in ALLOWED
            )
            if not expected:
                tally.wrong.append(
                    f"{method.name}: {code.name} {details[:200]!r} for {_describe(message)}"
                )

        one()
    return tally


@contextlib.asynccontextmanager
async def served(
    temporal_address: str, db_url: str, state_dir: pathlib.Path
) -> AsyncIterator[Process]:
    """`stigmer-service serve` on `db_url`, with a task queue of its own, until the block ends."""
    state_dir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{temporal_dev_server.free_port()}"
    service = Process(
        "stigmer-service",
        [sys.executable, "-m", "backend.stigmer_service.main", "serve"],
        child_env(
            {
                "TEMPORAL_ADDRESS": temporal_address,
                "TEMPORAL_NAMESPACE": "default",
                "STIGMER_LISTEN": address,
                "STIGMER_DB_URL": db_url,
                "STIGMER_TASK_QUEUE": f"fuzz-{uuid.uuid4()}",
                # Given, so that a PostgreSQL run never writes a key file to the home directory.
                "STIGMER_SECRETS_KEY": Fernet.generate_key().decode(),
                "STIGMER_OFFLINE_PROVIDER": "1",
            }
        ),
        state_dir / "service.log",
    )
    service.start()
    try:
        await wait_serving(address, service)
        yield service
    finally:
        service.stop()


def address_of(service: Process) -> str:
    return service.env["STIGMER_LISTEN"]


@contextlib.asynccontextmanager
async def database(kind: str, state_dir: pathlib.Path) -> AsyncIterator[str]:
    """The URL of a fresh database of `kind`, dropped (PostgreSQL) afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{state_dir / 'stigmer.db'}"
    else:
        async with postgres.fresh_database("stigmer_fuzz") as url:
            yield url


async def run(temporal_address: str, kind: str, requests: int, state_dir: pathlib.Path) -> Tally:
    """The fuzz against a service of its own on a fresh database of `kind`."""
    async with (
        database(kind, state_dir) as url,
        served(temporal_address, url, state_dir) as service,
    ):
        tally = await asyncio.to_thread(fuzz, address_of(service), requests)
        assert service.running, f"the service exited:\n{service.log_tail()}"
        # A normal request is served as usual afterwards.
        with grpc.insecure_channel(address_of(service)) as channel:
            code, details, _ = _call(channel, _LIST_EXECUTIONS, b"")
        assert code == grpc.StatusCode.OK, details
        # What the error mapping logs when a handler raised something it could not map.
        tally.crashes = [line for line in service.log_text().splitlines() if CRASH in line]
    return tally


async def _main(requests: int, kinds: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="stigmer-fuzz-") as directory:
        state = pathlib.Path(directory)
        temporal = await temporal_dev_server.start(log_path=state / "temporal.log")
        failed = False
        try:
            for kind in kinds:
                began = time.monotonic()
                tally = await run(temporal.address, kind, requests, state / kind)
                took = time.monotonic() - began
                print(f"{kind}: {tally.total} requests in {took:.1f} s: {tally.histogram()}")
                for line in tally.wrong[:20]:
                    print(f"  {line}")
                for line in tally.crashes[:5]:
                    print(f"  service log: {line}")
                failed = failed or bool(tally.wrong) or bool(tally.crashes)
        finally:
            temporal.stop()
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="per database")
    parser.add_argument("--database", choices=[*DATABASES, "both"], default="both")
    arguments = parser.parse_args()
    kinds = list(DATABASES) if arguments.database == "both" else [arguments.database]
    raise SystemExit(asyncio.run(_main(arguments.requests, kinds)))


if __name__ == "__main__":
    main()
