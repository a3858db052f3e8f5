"""Finding 12: TLS and mTLS between the service and its clients (the CLI's ServiceClient, the
runner's StigmerClient), with certificates made here; and `serve` refusing a non-loopback
address without authentication."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.commons.apiresource import reference_pb2
from temporalio.client import Client
from typer.testing import CliRunner

from backend.common.grpc_tls import ClientTls
from backend.stigmer_service import app, server
from backend.stigmer_service.cli import app as cli
from backend.stigmer_service.client import ServiceClient
from backend.stigmer_service.config import Settings
from backend.workflow_runner.agent_call.client import StigmerClient
from tests.security import certs
from tests.support.agents import ORG, agent
from tests.support.processes import child_env
from tests.support.service import fast_settings


@pytest.fixture
def pki(tmp_path: pathlib.Path) -> dict[str, Any]:
    ca = certs.authority(tmp_path, "service-ca")
    clients_ca = certs.authority(tmp_path, "clients-ca")
    return {
        "ca": ca,
        "server": ca.issue(tmp_path, "service", server=True),
        "other_ca": certs.authority(tmp_path, "other-ca"),
        "clients_ca": clients_ca,
        "client": clients_ca.issue(tmp_path, "runner", server=False),
        "stranger": certs.authority(tmp_path, "stranger-ca").issue(
            tmp_path, "stranger", server=False
        ),
    }


async def _serve(
    tmp_path: pathlib.Path, temporal_client: Client, **tls: str
) -> AsyncIterator[app.Service]:
    async with app.running(
        fast_settings(tmp_path, **tls), client=temporal_client, run_worker=False
    ) as service:
        yield service


@pytest_asyncio.fixture
async def tls_service(
    tmp_path: pathlib.Path, temporal_client: Client, pki: dict[str, Any]
) -> AsyncIterator[app.Service]:
    async for service in _serve(
        tmp_path,
        temporal_client,
        tls_cert_file=str(pki["server"].cert),
        tls_key_file=str(pki["server"].key),
    ):
        yield service


@pytest_asyncio.fixture
async def mtls_service(
    tmp_path: pathlib.Path, temporal_client: Client, pki: dict[str, Any]
) -> AsyncIterator[app.Service]:
    async for service in _serve(
        tmp_path,
        temporal_client,
        tls_cert_file=str(pki["server"].cert),
        tls_key_file=str(pki["server"].key),
        tls_client_ca_file=str(pki["clients_ca"].cert_file),
    ):
        yield service


async def list_agents(address: str, tls: ClientTls) -> list[Any]:
    async with ServiceClient(address, deadline_seconds=5, tls=tls) as client:
        return await client.list_agents(ORG)


async def fails(address: str, tls: ClientTls) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await list_agents(address, tls)
    return raised.value.code()


async def test_tls_a_client_with_the_ca_succeeds_one_without_fails(
    tls_service: app.Service, pki: dict[str, Any]
) -> None:
    address = tls_service.address
    async with ServiceClient(address, tls=ClientTls(ca_file=str(pki["ca"].cert_file))) as client:
        applied = await client.apply_agent(agent("over-tls", model="offline/echo"))
        assert [a.metadata.slug for a in await client.list_agents(ORG)] == ["over-tls"]
    # Plaintext to a TLS port, or TLS trusting another CA: no answer.
    assert await fails(address, ClientTls()) == grpc.StatusCode.UNAVAILABLE
    assert (
        await fails(address, ClientTls(ca_file=str(pki["other_ca"].cert_file)))
        == grpc.StatusCode.UNAVAILABLE
    )
    # The runner's agent-call client, configured by the same env vars.
    runner = StigmerClient(address, tls=ClientTls(ca_file=str(pki["ca"].cert_file)))
    try:
        found = await runner.get_agent_by_reference(
            reference_pb2.ApiResourceReference(
                scope=reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION,
                kind=reference_pb2.API_RESOURCE_KIND_AGENT,
                org=ORG,
                slug="over-tls",
            )
        )
        assert found.metadata.id == applied.metadata.id
    finally:
        await runner.close()


async def test_the_cli_reads_the_ca_from_the_environment(
    tls_service: app.Service, pki: dict[str, Any]
) -> None:
    runner = CliRunner()

    def invoke(env: dict[str, str]) -> Any:
        return runner.invoke(
            cli, ["list", "agents", "--org", ORG, "--endpoint", tls_service.address], env=env
        )

    ok = await asyncio.to_thread(invoke, {"STIGMER_TLS_CA": str(pki["ca"].cert_file)})
    assert ok.exit_code == 0, ok.output
    plain = await asyncio.to_thread(invoke, {"STIGMER_TLS_CA": ""})
    assert plain.exit_code == 1 and "UNAVAILABLE" in plain.output


async def test_mtls_needs_a_client_certificate_of_the_client_ca(
    mtls_service: app.Service, pki: dict[str, Any]
) -> None:
    ca = str(pki["ca"].cert_file)
    address = mtls_service.address
    assert await fails(address, ClientTls(ca_file=ca)) == grpc.StatusCode.UNAVAILABLE
    stranger = pki["stranger"]
    assert (
        await fails(
            address, ClientTls(ca_file=ca, cert_file=str(stranger.cert), key_file=str(stranger.key))
        )
        == grpc.StatusCode.UNAVAILABLE
    )
    client = pki["client"]
    mutual = ClientTls(ca_file=ca, cert_file=str(client.cert), key_file=str(client.key))
    assert await list_agents(address, mutual) == []


def test_serve_refuses_a_public_address_without_authentication(tmp_path: pathlib.Path) -> None:
    env = child_env(
        {
            "STIGMER_API_TOKEN": "",
            "STIGMER_CREDENTIALS_FILE": "",
            "STIGMER_TLS_CLIENT_CA": "",
            "STIGMER_ALLOW_INSECURE_PUBLIC": "",
            "STIGMER_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'stigmer.db'}",
            # Nothing listens here: a serve that got past the check would fail differently.
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "backend.stigmer_service.main", "serve", "--listen", "0.0.0.0:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to listen on 0.0.0.0:0 without authentication" in done.stderr
    assert "--allow-insecure-public" in done.stderr
    assert not (tmp_path / "stigmer.db").exists()  # Refused before anything was opened.


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.9.0.1:1", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("unix:/tmp/stigmer.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.0.0.5:50051", False),
        ("stigmer.internal:50051", False),
        (":50051", False),
    ],
)
def test_loopback_addresses(listen: str, loopback: bool) -> None:
    assert server.is_loopback(listen) is loopback


def test_a_public_address_is_served_with_auth_or_when_allowed() -> None:
    public = "0.0.0.0:50051"
    with pytest.raises(server.InsecureBindError):
        server.check_exposure(Settings(listen=public))
    server.check_exposure(Settings(listen=public, api_token="t"))
    server.check_exposure(Settings(listen=public, tls_client_ca_file="ca.pem"))
    server.check_exposure(Settings(listen=public, allow_insecure_public=True))
    server.check_exposure(Settings(listen="127.0.0.1:50051"))
