"""MCP tools over real servers: the example ticket desk (stdio and streamable HTTP) and a probe."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from backend.common.temporal_dev_server import free_port
from backend.stigmer_service.tools import content, mcp
from backend.stigmer_service.tools.mcp import McpServer, ToolError
from examples.mcp import tickets_server
from tests.stigmer_service.tools import probe_server
from tests.support.eventually import eventually

TICKET_TOOLS = ["lookup_ticket", "add_comment", "escalate_ticket", "link_ticket"]
TIMEOUT = 15.0
# What the child Python needs to import the SDK and this repo: no more of this process's env.
PYTHONPATH = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def tickets(comments: pathlib.Path, enabled: tuple[str, ...] = ()) -> McpServer:
    return McpServer(
        name="tickets",
        transport="stdio",
        command=sys.executable,
        args=("-m", tickets_server.__name__),
        env={**PYTHONPATH, tickets_server.COMMENTS_FILE_ENV: str(comments)},
        enabled_tools=enabled,
    )


def probe(**env: str) -> McpServer:
    return McpServer(
        name="probe",
        transport="stdio",
        command=sys.executable,
        args=("-m", probe_server.__name__),
        env={**PYTHONPATH, **env},
    )


def comments_in(path: pathlib.Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_gone(pid: int) -> None:
    """Not running and not a zombie: a reaped process is no longer in the process table."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_lists_every_tool_with_its_schema(tmp_path: pathlib.Path) -> None:
    specs = await mcp.list_tools(tickets(tmp_path / "comments"), TIMEOUT)

    assert [spec.name for spec in specs] == TICKET_TOOLS
    assert {spec.server for spec in specs} == {"tickets"}
    add_comment = specs[1]
    assert add_comment.description == "Add a comment to a ticket."
    assert add_comment.input_schema["required"] == ["id", "text"]


async def test_calls_return_the_tools_text_and_act_once_per_call(tmp_path: pathlib.Path) -> None:
    comments = tmp_path / "comments"
    server = tickets(comments)

    found = await mcp.call_tool(server, "lookup_ticket", {"id": "T-1"}, TIMEOUT)
    added = await mcp.call_tool(server, "add_comment", {"id": "T-2", "text": "on it"}, TIMEOUT)

    assert not found.is_error
    assert json.loads(found.text)["title"] == "Checkout fails with a 502"
    assert added == mcp.ToolResult(text="comment added to T-2", is_error=False)
    assert comments_in(comments) == [{"id": "T-2", "text": "on it"}]


async def test_a_repeated_call_with_the_same_idempotency_key_acts_once(
    tmp_path: pathlib.Path,
) -> None:
    """The key travels in the request's `_meta`; the example desk keeps it, so a retried call
    whose first answer was lost adds its comment once (and a call under another key again)."""
    comments = tmp_path / "comments"
    server = tickets(comments)
    arguments = {"id": "T-1", "text": "once"}
    first = await mcp.call_tool(server, "add_comment", arguments, TIMEOUT, idempotency_key="e/3")
    again = await mcp.call_tool(server, "add_comment", arguments, TIMEOUT, idempotency_key="e/3")
    other = await mcp.call_tool(server, "add_comment", arguments, TIMEOUT, idempotency_key="e/4")
    assert first == again == other == mcp.ToolResult(text="comment added to T-1", is_error=False)
    assert comments_in(comments) == [arguments, arguments]


async def test_a_tool_that_fails_is_an_error_result(tmp_path: pathlib.Path) -> None:
    server = tickets(tmp_path / "comments")

    failed = await mcp.call_tool(server, "escalate_ticket", {"id": "T-1"}, TIMEOUT)

    assert failed.is_error and "pager service is unavailable" in failed.text


async def test_a_disabled_tool_is_refused_and_never_runs(tmp_path: pathlib.Path) -> None:
    comments = tmp_path / "comments"
    server = tickets(comments, enabled=("lookup_ticket",))

    with pytest.raises(ToolError, match="not enabled") as refused:
        await mcp.call_tool(server, "add_comment", {"id": "T-1", "text": "sneaky"}, TIMEOUT)

    assert not refused.value.retryable
    assert not refused.value.call_sent
    assert comments_in(comments) == []


async def test_a_command_that_does_not_exist_is_not_retryable() -> None:
    server = McpServer(name="ghost", transport="stdio", command="/nonexistent/mcp-server")

    with pytest.raises(ToolError, match="cannot start '/nonexistent/mcp-server'") as failed:
        await mcp.list_tools(server, TIMEOUT)

    assert not failed.value.retryable


async def test_a_server_that_exits_is_retryable_and_its_stderr_quoted() -> None:
    crash = "import sys; print('config file missing', file=sys.stderr); sys.exit(3)"
    server = McpServer(name="crash", transport="stdio", command=sys.executable, args=("-c", crash))

    with pytest.raises(ToolError, match="config file missing") as failed:
        await mcp.list_tools(server, TIMEOUT)

    assert failed.value.retryable


async def test_a_server_that_never_answers_is_killed_at_the_timeout(
    tmp_path: pathlib.Path,
) -> None:
    pid_file = tmp_path / "pid"
    # It ignores SIGTERM too: only the SIGKILL at the end of the SDK's escalation stops it.
    server = probe(
        **{probe_server.PID_FILE_ENV: str(pid_file), probe_server.HANG_AT_START_ENV: "1"}
    )
    started = time.monotonic()

    with pytest.raises(ToolError, match="did not answer within 1s") as failed:
        await mcp.list_tools(server, 1.0)

    assert failed.value.retryable and not failed.value.call_sent
    assert time.monotonic() - started < 10
    assert_gone(int(pid_file.read_text()))


async def test_a_tool_call_that_hangs_is_cut_off_and_its_server_stopped(
    tmp_path: pathlib.Path,
) -> None:
    pid_file = tmp_path / "pid"
    server = probe(**{probe_server.PID_FILE_ENV: str(pid_file)})

    with pytest.raises(ToolError, match="did not answer within 3s") as failed:
        await mcp.call_tool(server, "sleep", {"seconds": 60}, 3.0)

    # The call was sent: the tool may have acted, which the caller weighs before a retry.
    assert failed.value.retryable and failed.value.call_sent
    assert_gone(int(pid_file.read_text()))


async def test_a_cancelled_call_stops_its_server(tmp_path: pathlib.Path) -> None:
    """Temporal cancels an activity with a plain asyncio cancel: the server must not outlive it."""
    pid_file = tmp_path / "pid"
    server = probe(**{probe_server.PID_FILE_ENV: str(pid_file)})
    call = asyncio.create_task(mcp.call_tool(server, "sleep", {"seconds": 60}, TIMEOUT))

    async def sleeping() -> None:
        assert pid_file.exists()

    await eventually(sleeping, timeout=TIMEOUT)
    await asyncio.sleep(0.5)  # Into the call, past the start.
    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    assert_gone(int(pid_file.read_text()))


async def test_the_server_sees_only_its_configured_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_SECRETS_KEY", "service-only-secret-value")
    server = probe(TICKETS_API_TOKEN="the-agents-own-secret")

    result = await mcp.call_tool(server, "environment", {}, TIMEOUT)

    seen = json.loads(result.text)
    assert "STIGMER_SECRETS_KEY" not in seen
    assert "service-only-secret-value" not in result.text
    assert seen["TICKETS_API_TOKEN"] == "the-agents-own-secret"
    assert seen["PATH"] == os.environ["PATH"]
    # Besides what was configured, only the SDK's fixed list of harmless variables.
    allowed = {
        "PATH",
        "PYTHONPATH",
        "TICKETS_API_TOKEN",
        "HOME",
        "LOGNAME",
        "SHELL",
        "TERM",
        "USER",
    }
    assert set(seen) - {"LC_CTYPE"} <= allowed  # LC_CTYPE: set by Python itself (PEP 538)


async def test_a_long_answer_is_cut_to_the_bound() -> None:
    result = await mcp.call_tool(probe(), "long_text", {"chars": 200_000}, TIMEOUT)

    assert result.text.startswith("x" * content.MAX_TEXT_CHARS + "\n")
    assert result.text.endswith(f"[... {200_000 - content.MAX_TEXT_CHARS} more characters cut]")


@pytest.fixture(scope="module")
def http_tickets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ticket desk over streamable HTTP on a loopback port: its endpoint's URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("http") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", tickets_server.__name__, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **PYTHONPATH},
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def test_http_lists_and_calls(http_tickets: str) -> None:
    server = McpServer(
        name="desk",
        transport="http",
        url=http_tickets,
        headers={"Authorization": "Bearer not-checked-by-the-example"},
        enabled_tools=("lookup_ticket", "escalate_ticket"),
    )

    specs = await mcp.list_tools(server, TIMEOUT)
    found = await mcp.call_tool(server, "lookup_ticket", {"id": "T-3"}, TIMEOUT)
    failed = await mcp.call_tool(server, "escalate_ticket", {"id": "T-3"}, TIMEOUT)

    assert [(spec.server, spec.name) for spec in specs] == [
        ("desk", "lookup_ticket"),
        ("desk", "escalate_ticket"),
    ]
    assert json.loads(found.text)["status"] == "closed" and not found.is_error
    assert failed.is_error and "pager service is unavailable" in failed.text
    with pytest.raises(ToolError, match="not enabled"):
        await mcp.call_tool(server, "add_comment", {"id": "T-3", "text": "x"}, TIMEOUT)


async def test_http_wrong_path_is_not_retryable(http_tickets: str) -> None:
    server = McpServer(name="desk", transport="http", url=http_tickets.replace("/mcp", "/nope"))

    with pytest.raises(ToolError, match="Not Found") as failed:
        await mcp.list_tools(server, TIMEOUT)

    assert not failed.value.retryable


async def test_http_nobody_listening_is_retryable() -> None:
    server = McpServer(name="desk", transport="http", url=f"http://127.0.0.1:{free_port()}/mcp")

    with pytest.raises(ToolError, match="desk") as failed:
        await mcp.list_tools(server, TIMEOUT)

    assert failed.value.retryable
