"""Two orgs' worth of credentials for tenancy tests: the tokens, the credentials file the service
reads (sha256 of each token, role, orgs), and how a call presents one."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

A_USER, A_USER2, A_RUNNER, B_USER, B_SERVICE = (
    "tok-a-user",
    "tok-a-user-2",
    "tok-a-runner",
    "tok-b-user",
    "tok-b-service",
)
CREDENTIALS = [
    ("a-user", A_USER, "user", ["acme"]),
    ("a-user-2", A_USER2, "user", "acme"),
    ("a-runner", A_RUNNER, "runner", ["acme"]),
    ("b-user", B_USER, "user", ["beta"]),
    ("b-service", B_SERVICE, "service", ["beta"]),
]


def credentials_file(path: pathlib.Path) -> pathlib.Path:
    lines = ["credentials:"]
    for name, token, role, orgs in CREDENTIALS:
        lines += [
            f"  - name: {name}",
            f"    sha256: {hashlib.sha256(token.encode()).hexdigest()}",
            f"    role: {role}",
            f"    orgs: {orgs!r}".replace("'", '"'),
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code()
