"""Deterministic offline model provider (`offline/<anything>`): no network, for tests and demos.

The operator enables it (`STIGMER_OFFLINE_PROVIDER`, or `kind: offline` in the providers file);
a service without configuration has no offline provider. It answers `"<agent slug>: <message>"`,
with secret placeholders resolved and then every secret value masked as `***`, so a reply never
leaks a secret. Directives in the message steer it:

- `#sleep=<seconds>`: sleeps that long, at most `max_sleep` (the activity heartbeats meanwhile);
- `#wait-for=<path>`: waits until that file exists before answering (a gate that system tests
  open once every call is in flight); only with the test setting `STIGMER_TEST_OFFLINE_GATES`,
  since it probes the service's own file system; otherwise the call fails;
- `#fail=<ErrorType>`: fails, non-retryably, with that error type, one of `FAIL_TYPES` (the type
  is a metric label, so the set stays small); another type fails as `ModelError`;
- `#transient-fail=<n>`: fails the first n attempts with a transient error, then answers;
- `#reply=<text>`: answers exactly the text up to the end of the line;
- `#recall`: answers with the session's earlier user messages, joined by " | ";
- `#history`: answers with the session's earlier messages, each as `<role>: <content>` (the
  first line of it), joined by " | " (what a later execution of a session sees).

Its usage is a stand-in count, deterministic for tests: one input token per word of the messages
it was given, one output token per word of its reply.

An agent with tools (`turn`) is scripted one model turn at a time, deterministically:

- `#tool=<server>.<tool>:<JSON arguments>`: one per line; turn n (from 0) calls the n-th
  listed tool with those arguments (`{}` when none are given), as the only call of that turn;
- once every `#tool=` line has had its turn, the model answers: `#reply=<text>` if given, else
  `"<agent slug>: "` and the results of the tool calls it saw, in order, joined by " | " (an
  error result as `error: <text>`), so a test sees what went back to the model.
"""

from __future__ import annotations

import asyncio
import os
import re

from backend.common import contract
from backend.stigmer_service import placeholders
from backend.stigmer_service.providers.base import (
    ModelReply,
    ModelRequest,
    ToolCall,
    Usage,
    permanent,
    transient,
)
from backend.stigmer_service.providers.catalog import DEFAULT_LIMITS, OfflineLimits

_SLEEP = re.compile(r"#sleep=([0-9]+(?:\.[0-9]*)?)")
_FAIL = re.compile(r"#fail=([A-Za-z_][A-Za-z0-9_]*)")
_TRANSIENT = re.compile(r"#transient-fail=([0-9]+)")
_REPLY = re.compile(r"#reply=([^\n]*)")
_GATE = re.compile(r"#wait-for=(\S+)")
_TOOL = re.compile(r"^#tool=([a-z0-9-]+)\.([^:\s]+)(?::(.*))?$", re.MULTILINE)
GATE_POLL_SECONDS = 0.2
# The error types `#fail=` may name: the ones the demo and the tests use.
FAIL_TYPES = frozenset({contract.MODEL_ERROR, "QuotaExceeded", "ToolExploded", "Boom"})


class OfflineProvider:
    def __init__(self, limits: OfflineLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits

    async def turn(self, request: ModelRequest) -> ModelReply:
        user = max(i for i, m in enumerate(request.messages) if m.role == "user")
        message = request.messages[user].content
        await self._directives(message, request)
        since = request.messages[user + 1 :]
        turn = sum(1 for m in since if m.role == "assistant" and m.tool_calls)
        scripted = _TOOL.findall(message)
        if turn < len(scripted):
            server, tool, arguments = scripted[turn]
            name = next(
                (t.name for t in request.tools if t.server == server and t.tool == tool),
                f"{server}__{tool}",
            )
            call = ToolCall(f"call_{turn}", name, (arguments or "").strip() or "{}")
            _count(request, f"{name} {call.arguments}")
            return ModelReply("", [call])
        if reply := _REPLY.search(message):
            text = reply.group(1)
        else:
            results = [m.content for m in since if m.role == "tool"]
            text = f"{request.agent_slug}: {' | '.join(results)}"
        text = placeholders.mask(text, request.secret_values)
        _count(request, text)
        return ModelReply(text)

    async def complete(self, request: ModelRequest) -> str:
        message = request.messages[-1].content
        await self._directives(message, request)
        if reply := _REPLY.search(message):
            text = reply.group(1)
        elif "#recall" in message:
            earlier = [m.content for m in request.messages[:-1] if m.role == "user"]
            text = " | ".join(earlier)
        elif "#history" in message:
            seen = [m for m in request.messages[:-1] if m.role in ("user", "assistant")]
            text = " | ".join(f"{m.role}: {m.content.splitlines()[0]}" for m in seen)
        else:
            text = f"{request.agent_slug}: {message}"
        text = placeholders.mask(text, request.secret_values)
        _count(request, text)
        return text

    async def _directives(self, message: str, request: ModelRequest) -> None:
        """The directives that delay or fail a call, the same for both kinds of call."""
        if sleep := _SLEEP.search(message):
            await asyncio.sleep(min(float(sleep.group(1)), self._limits.max_sleep))
        if gate := _GATE.search(message):
            if not self._limits.gates:
                raise permanent("offline model: #wait-for is a test directive and is off here")
            while not os.path.exists(gate.group(1)):
                await asyncio.sleep(GATE_POLL_SECONDS)
        if fail := _FAIL.search(message):
            if fail.group(1) not in FAIL_TYPES:
                raise permanent(
                    f"offline model: #fail= takes one of {', '.join(sorted(FAIL_TYPES))}"
                )
            raise permanent(f"offline model told to fail with {fail.group(1)}", fail.group(1))
        if (flaky := _TRANSIENT.search(message)) and request.attempt <= int(flaky.group(1)):
            raise transient(f"offline model transient failure on attempt {request.attempt}")


def _count(request: ModelRequest, reply: str) -> None:
    """The offline model's stand-in usage: words in, words out."""
    words_in = sum(len(m.content.split()) for m in request.messages)
    request.usage = Usage(input_tokens=words_in, output_tokens=len(reply.split()))
