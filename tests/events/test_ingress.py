"""The CloudEvents HTTP ingress (in-process ASGI app on the real broker): what it accepts and refuses."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events import cloudevent, contract, ingress

RUNNER_TOKEN = "runner-token-for-the-ingress-test"
USER_TOKEN = "user-token-for-the-ingress-test"
CE_JSON = {"content-type": "application/cloudevents+json"}


def tokens() -> ingress.Tokens:
    return ingress.Tokens(
        (
            (hashlib.sha256(RUNNER_TOKEN.encode()).digest(), "hooks", "runner"),
            (hashlib.sha256(USER_TOKEN.encode()).digest(), "alice", "user"),
        )
    )


@pytest_asyncio.fixture
async def http(broker: broker_module.Broker) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=ingress.app(broker, tokens()))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://ingress",
        headers={"authorization": f"Bearer {RUNNER_TOKEN}"},
    ) as client:
        yield client


def structured(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/webhooks/test",
        "type": "test.ingress",
        "data": {"approved": True},
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


async def test_structured_and_binary_events_are_accepted(
    http: httpx.AsyncClient, broker: broker_module.Broker
) -> None:
    event = structured(reviewer="ann")
    reply = await http.post("/events", content=json.dumps(event), headers=CE_JSON)
    assert reply.status_code == 202, reply.text
    assert reply.json()["id"] == event["id"] and not reply.json()["duplicate"]
    again = await http.post("/events", content=json.dumps(event), headers=CE_JSON)
    assert again.status_code == 202 and again.json()["duplicate"]
    assert again.json()["sequence"] == reply.json()["sequence"]
    binary_id = str(uuid.uuid4())
    binary = await http.post(
        "/events",
        content=b'{"approved": false}',
        headers={
            "ce-specversion": "1.0",
            "ce-id": binary_id,
            "ce-source": "/webhooks/test",
            "ce-type": "test.ingress",
            "content-type": "application/json",
        },
    )
    assert binary.status_code == 202, binary.text
    stored = await broker.js.get_msg(contract.STREAM, binary.json()["sequence"])
    assert json.loads(stored.data or b"") | {"time": None} == {
        "specversion": "1.0",
        "id": binary_id,
        "source": "/webhooks/test",
        "type": "test.ingress",
        "datacontenttype": "application/json",
        "time": None,
        "data": {"approved": False},
    }


@pytest.mark.parametrize(
    ("body", "headers", "attribute"),
    [
        (b"this is not json", CE_JSON, "event"),
        (b"[1, 2]", CE_JSON, "event"),
        (json.dumps(structured(id=None)).encode(), CE_JSON, "id"),
        (json.dumps(structured(type="")).encode(), CE_JSON, "type"),
        (json.dumps(structured(specversion="0.3")).encode(), CE_JSON, "specversion"),
        (json.dumps(structured(time="yesterday")).encode(), CE_JSON, "time"),
        (json.dumps(structured(BadName="x")).encode(), CE_JSON, "BadName"),
        (b"{}", {"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, "id"),
    ],
)
async def test_a_bad_event_is_a_400_naming_the_attribute_and_nothing_is_published(
    http: httpx.AsyncClient,
    broker: broker_module.Broker,
    body: bytes,
    headers: dict[str, str],
    attribute: str,
) -> None:
    before = await broker.last_sequence()
    reply = await http.post("/events", content=body, headers=headers)
    assert reply.status_code == 400, reply.text
    assert reply.json()["attribute"] == attribute
    assert attribute in reply.json()["error"]
    assert await broker.last_sequence() == before


async def test_an_oversized_event_is_a_413(
    http: httpx.AsyncClient, broker: broker_module.Broker
) -> None:
    before = await broker.last_sequence()
    big = "x" * (cloudevent.MAX_EVENT_BYTES + 1)
    reply = await http.post("/events", content=json.dumps(structured(data=big)), headers=CE_JSON)
    assert reply.status_code == 413
    # Within the body bound, but the event itself is past its own.
    near = "x" * (cloudevent.MAX_EVENT_BYTES - 100)
    reply = await http.post("/events", content=json.dumps(structured(data=near, more="y" * 200)))
    assert reply.status_code == 413, reply.text
    assert await broker.last_sequence() == before


async def test_tokens_are_required_and_users_may_not_publish(
    http: httpx.AsyncClient, broker: broker_module.Broker
) -> None:
    before = await broker.last_sequence()
    body = json.dumps(structured())
    for authorization in ("", "Bearer wrong", f"Basic {RUNNER_TOKEN}"):
        reply = await http.post(
            "/events", content=body, headers={**CE_JSON, "authorization": authorization}
        )
        assert reply.status_code == 401, authorization
        assert reply.headers["www-authenticate"] == "Bearer"
    user = await http.post(
        "/events", content=body, headers={**CE_JSON, "authorization": f"Bearer {USER_TOKEN}"}
    )
    assert user.status_code == 403
    assert await broker.last_sequence() == before
