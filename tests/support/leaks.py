"""Where a secret value or a callback token could leak (workflow histories, process logs, the
service's read responses), read as bytes, and the search for every encoded form of them."""

from __future__ import annotations

import base64
import dataclasses
import pathlib
import urllib.parse
from collections.abc import Iterable, Mapping

import grpc
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, query_pb2_grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory

from backend.stigmer_service import crypto
from backend.stigmer_service.store import db
from backend.stigmer_service.store.repository import Store
from tests.support.stack import Stack


def encodings(value: bytes) -> dict[str, bytes]:
    """`value` by encoding: as it is, hex, base64 (standard and URL-safe, padded or not) and
    percent-encoded (each way a URI or a form would carry it)."""
    standard = base64.b64encode(value)
    urlsafe = base64.urlsafe_b64encode(value)
    named = {
        "raw": value,
        "hex": value.hex().encode(),
        "base64": standard,
        "base64 unpadded": standard.rstrip(b"="),
        "urlsafe base64": urlsafe,
        "urlsafe base64 unpadded": urlsafe.rstrip(b"="),
        "percent-encoded": urllib.parse.quote_from_bytes(value, safe="").encode(),
        "percent-encoded path": urllib.parse.quote_from_bytes(value).encode(),
        "form-encoded": urllib.parse.quote_plus(value).encode(),
    }
    # A form that equals an earlier one (text without reserved characters) is searched once.
    distinct: dict[str, bytes] = {}
    for name, form in named.items():
        if form not in distinct.values():
            distinct[name] = form
    return distinct


def forms(secret: str) -> list[str]:
    """The secret's encodings as text."""
    return [form.decode() for form in encodings(secret.encode()).values()]


def found(blobs: Mapping[str, bytes], values: Mapping[str, bytes]) -> list[str]:
    """`"<value> (<encoding>) in <blob>"` for every encoding of every value in any blob; the
    values themselves stay out of the text, which a failing test prints."""
    return [
        f"{name} ({encoding}) in {where}"
        for name, value in values.items()
        for encoding, form in encodings(value).items()
        for where, blob in blobs.items()
        if form in blob
    ]


def assert_absent(blobs: Mapping[str, bytes], values: Mapping[str, bytes]) -> None:
    assert blobs and values, "a scan of nothing, or for nothing, proves nothing"
    leaks = found(blobs, values)
    assert not leaks, "\n".join(leaks)


def _payloads(message: Message) -> list[bytes]:
    if isinstance(message, Payload):
        return [message.data, *(v for v in message.metadata.values())]
    inside: list[bytes] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif isinstance(value, Message):
            items = [value]
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Message):
                inside.extend(_payloads(item))
    return inside


def history_text(history: WorkflowHistory) -> str:
    """The history as JSON, plus every payload (which the JSON shows base64-encoded) decoded."""
    decoded = [
        data.decode("utf-8", errors="replace")
        for event in history.events
        for data in _payloads(event)
    ]
    return history.to_json() + "\n" + "\n".join(decoded)


async def histories(client: Client) -> dict[str, bytes]:
    """Every workflow run's history in the client's namespace (the runner's and the service's),
    as `history_text`, by `history <workflow id> <run id>`."""
    texts: dict[str, bytes] = {}
    async for run in client.list_workflows():
        history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        texts[f"history {run.id} {run.run_id}"] = history_text(history).encode()
    return texts


def process_logs(stack: Stack) -> dict[str, bytes]:
    """The service's, the worker's and the dev server's logs, by process name."""
    paths = {
        stack.service.name: stack.service.log_path,
        stack.worker.name: stack.worker.log_path,
        "temporal": stack.temporal.log_path,
    }
    return {
        f"{name} log": pathlib.Path(path).read_bytes()
        for name, path in paths.items()
        if path is not None and pathlib.Path(path).exists()
    }


@dataclasses.dataclass(frozen=True)
class Reads:
    """The service's read view: every execution listed, and each response of List, Get and Watch
    as bytes and as JSON, by `<method> <id>`."""

    executions: list[api_pb2.AgentExecution]
    responses: dict[str, bytes]


async def read_responses(address: str) -> Reads:
    executions: list[api_pb2.AgentExecution] = []
    responses: dict[str, bytes] = {}

    def keep(where: str, message: Message) -> None:
        responses[f"{where} (bytes)"] = message.SerializeToString()
        responses[f"{where} (JSON)"] = json_format.MessageToJson(message).encode()

    async with grpc.aio.insecure_channel(address) as channel:
        query = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        page_token = ""
        while True:
            page = await query.ListAgentExecutions(
                query_pb2.ListAgentExecutionsRequest(page_token=page_token), timeout=10
            )
            keep(f"List page {len(executions)}", page)
            executions.extend(page.executions)
            page_token = page.next_page_token
            if not page_token:
                break
        for execution in executions:
            # The read view never carries the token itself, only whether there is one.
            assert not execution.spec.callback_token
            id_ = execution.metadata.id
            got = await query.GetAgentExecution(
                query_pb2.GetAgentExecutionRequest(id=id_), timeout=10
            )
            keep(f"Get {id_}", got)
            updates = query.WatchAgentExecution(
                query_pb2.WatchAgentExecutionRequest(id=id_), timeout=10
            )
            async for update in updates:
                keep(f"Watch {id_} update {len(responses)}", update)
    return Reads(executions, responses)


async def service_tokens(stack: Stack, execution_ids: Iterable[str]) -> list[bytes]:
    """The callback tokens the service stored (encrypted) for these executions, read back with its
    own key from its database."""
    engine = db.create_engine(f"sqlite+aiosqlite:///{stack.state_dir / 'stigmer.db'}")
    store = Store(engine, crypto.Cipher(crypto.load_or_create_key("", stack.state_dir)))
    try:
        tokens = []
        for execution_id in execution_ids:
            token = (await store.for_delivery(execution_id)).token
            if token:
                tokens.append(token)
        return tokens
    finally:
        await engine.dispose()
