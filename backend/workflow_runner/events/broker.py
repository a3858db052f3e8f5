"""The connection to NATS JetStream: the events stream and the registrations bucket, and publishing.

Where events live is decided here: one stream (`contract.STREAM`, file storage, so an event
published while no router runs waits for one) with a duplicate window over the `Nats-Msg-Id`
header, which is the event's id, so a retried publish is stored once; and one KV bucket of
registrations (listeners and event-driven starts) that the router watches.

Settings come from the environment (nothing defaults to a NATS on this machine: without
NATS_URL, events are off and saying so is the error):
- NATS_URL: the server(s), e.g. `nats://nats-1:4222,nats://nats-2:4222` (`tls://` for TLS).
- NATS_CREDENTIALS_FILE: a NATS `.creds` file (user JWT and NKey seed).
- NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE: the CA that signs the servers'
  certificates, and this client's certificate and key for servers that require mutual TLS.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import ssl
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from backend.workflow_runner.events import cloudevent, contract, registrations

URL_ENV = "NATS_URL"
CREDENTIALS_ENV = "NATS_CREDENTIALS_FILE"
TLS_CA_ENV = "NATS_TLS_CA_FILE"
TLS_CERT_ENV = "NATS_TLS_CERT_FILE"
TLS_KEY_ENV = "NATS_TLS_KEY_FILE"

REGISTRATIONS_BUCKET = "stigmer_registrations"
# The stream's bounds. The duplicate window is how long a repeated event id is recognised: an
# activity's retries of one publish land well within it.
DUPLICATE_WINDOW_SECONDS = 10 * 60.0
MAX_AGE_SECONDS = 7 * 24 * 3600.0
MAX_BYTES = 1024**3
# Headers (the message id) ride on top of the event itself.
MAX_MESSAGE_BYTES = cloudevent.MAX_EVENT_BYTES + 4096
MSG_ID_HEADER = "Nats-Msg-Id"
# JetStream's "stream name already in use with a different configuration".
_STREAM_CONFIG_DIFFERS = 10058
_UNSAFE_SUBJECT_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")

log = structlog.get_logger(__name__)


class EventsNotConfiguredError(Exception):
    """No NATS_URL: this process runs without the event backbone."""


@dataclasses.dataclass(frozen=True)
class BrokerSettings:
    url: str
    credentials_file: str = ""
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""

    @classmethod
    def from_env(cls) -> BrokerSettings | None:
        """The environment's settings; None when NATS_URL is unset (events off)."""
        url = os.environ.get(URL_ENV, "")
        if not url:
            return None
        return cls(
            url=url,
            credentials_file=os.environ.get(CREDENTIALS_ENV, ""),
            tls_ca_file=os.environ.get(TLS_CA_ENV, ""),
            tls_cert_file=os.environ.get(TLS_CERT_ENV, ""),
            tls_key_file=os.environ.get(TLS_KEY_ENV, ""),
        )

    @classmethod
    def required(cls) -> BrokerSettings:
        settings = cls.from_env()
        if settings is None:
            raise EventsNotConfiguredError(
                f"events are not configured: set {URL_ENV} to the NATS server (JetStream on)"
            )
        return settings

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca_file or self.tls_cert_file):
            return None
        context = ssl.create_default_context(cafile=self.tls_ca_file or None)
        if self.tls_cert_file:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file or None)
        return context


def subject_for(event_type: str) -> str:
    """The subject of an event of `event_type`: the prefix, then the type with characters a
    subject cannot hold (and empty tokens) as `_`."""
    tokens = _UNSAFE_SUBJECT_CHARS.sub("_", event_type).split(".")
    return contract.SUBJECT_PREFIX + ".".join(token or "_" for token in tokens)


@dataclasses.dataclass
class Broker:
    """A connection with the stream and the bucket ensured."""

    client: NatsClient
    js: JetStreamContext
    registrations: KeyValue

    async def publish(self, event: dict[str, Any]) -> contract.PublishEventOutput:
        """Publishes a structured CloudEvent once (validated here; InvalidEventError if not)."""
        normalized = cloudevent.normalize(event)
        ack = await self.js.publish(
            subject_for(normalized["type"]),
            cloudevent.to_json(normalized),
            stream=contract.STREAM,
            headers={MSG_ID_HEADER: normalized["id"]},
        )
        return contract.PublishEventOutput(
            id=normalized["id"], sequence=ack.seq, duplicate=bool(ack.duplicate)
        )

    async def replay(
        self, after: int, until: int, types: list[str], max_bytes: int
    ) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        """The events of `types` (every type when empty) with a sequence in (after, until],
        oldest first, as (sequence, event); stops past `max_bytes` of them and then says so
        (True: more to read after the last one returned)."""
        found: list[tuple[int, dict[str, Any]]] = []
        if until <= after:
            return found, False
        subscription = await self.js.pull_subscribe(
            contract.SUBJECT_PREFIX + ">",
            stream=contract.STREAM,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=after + 1,
                ack_policy=api.AckPolicy.NONE,
                inactive_threshold=30.0,
            ),
        )
        size = 0
        try:
            while True:
                try:
                    messages = await subscription.fetch(256, timeout=2)
                except TimeoutError:  # nats-py's is one: nothing left (aged out, or purged).
                    return found, False
                for message in messages:
                    sequence = message.metadata.sequence.stream
                    if sequence > until:
                        return found, False
                    event = json.loads(message.data)
                    if not registrations.routes(types, str(event.get("type"))):
                        continue
                    size += len(message.data)
                    if size > max_bytes and found:
                        return found, True
                    found.append((sequence, event))
                    if sequence == until:
                        return found, False
        finally:
            await subscription.unsubscribe()

    async def first_sequence_since(self, start: str) -> int | None:
        """The sequence of the stream's first event stored at or after `start` (RFC 3339, as
        NATS stamps events); None when there is none yet."""
        subscription = await self.js.pull_subscribe(
            contract.SUBJECT_PREFIX + ">",
            stream=contract.STREAM,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_TIME,
                opt_start_time=datetime.datetime.fromisoformat(start),
                ack_policy=api.AckPolicy.NONE,
                inactive_threshold=30.0,
            ),
        )
        try:
            messages = await subscription.fetch(1, timeout=1)
        except TimeoutError:  # nats-py's is one: nothing stored since.
            return None
        finally:
            await subscription.unsubscribe()
        return int(messages[0].metadata.sequence.stream) if messages else None

    async def last_sequence(self) -> int:
        info = await self.js.stream_info(contract.STREAM)
        return int(info.state.last_seq)

    async def close(self) -> None:
        await self.client.drain()


async def connect(settings: BrokerSettings, name: str = "workflow-runner") -> Broker:
    """Connects and ensures the stream and the registrations bucket (idempotent)."""
    options: dict[str, Any] = {"name": name, "max_reconnect_attempts": -1}
    if settings.credentials_file:
        options["user_credentials"] = settings.credentials_file
    tls = settings.tls_context()
    if tls is not None:
        options["tls"] = tls
    client = await nats.connect(settings.url.split(","), **options)
    try:
        js = client.jetstream()
        await ensure_stream(js)
        registrations = await _ensure_bucket(js)
    except BaseException:
        await client.close()
        raise
    return Broker(client, js, registrations)


def stream_config() -> api.StreamConfig:
    return api.StreamConfig(
        name=contract.STREAM,
        subjects=[contract.SUBJECT_PREFIX + ">"],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=MAX_AGE_SECONDS,
        max_bytes=MAX_BYTES,
        max_msg_size=MAX_MESSAGE_BYTES,
    )


async def ensure_stream(js: JetStreamContext) -> None:
    """Creates the stream, or brings an existing one to this configuration."""
    config = stream_config()
    try:
        await js.add_stream(config)
    except BadRequestError as error:
        if error.err_code != _STREAM_CONFIG_DIFFERS:
            raise
        await js.update_stream(config)
        log.info("events stream updated", stream=contract.STREAM)


async def _ensure_bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(REGISTRATIONS_BUCKET)
    except NotFoundError:  # BucketNotFoundError is one.
        return await js.create_key_value(
            bucket=REGISTRATIONS_BUCKET,
            history=1,
            storage=api.StorageType.FILE,
            description="Listeners and event-driven starts the event router routes to",
        )
