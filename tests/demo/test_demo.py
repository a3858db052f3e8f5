"""The one-command demo as a user runs it: a child process, its output, its exit, no leftovers."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.support.processes import child_env

# Lines as the demo prints them, so the test reads them as they come.
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}
SLOW_WORKFLOW = pathlib.Path(__file__).parent / "workflows" / "slow.yaml"
# The researcher's answer: the offline model repeats the ticket desk's answer to its tool call.
RELATED = "ticket-researcher: " + json.dumps(
    {"id": "T-1", "priority": "high", "status": "open", "title": "Checkout fails with a 502"},
    sort_keys=True,
)
# An urgent ticket is linked to the incident too, once the demo approved that call.
LINKED = RELATED + " | T-1042 linked to T-1"
REASON = "linking to the open incident is safe"
ROUTINE_TICKET = {
    "ticket": {
        "id": "T-7",
        "customer": "Initech",
        "subject": "Invoice address",
        "body": "Please change the billing address on our next invoice.",
    }
}


def demo_command(state_dir: pathlib.Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "examples.demo", "--state-dir", str(state_dir), *args]


def run_demo(state_dir: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        demo_command(state_dir, *args),
        env=child_env(UNBUFFERED),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the state dir), like `ps | grep`."""
    found = []
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command:
            found.append(f"{cmdline.parent.name}: {command}")
    return found


def assert_nothing_left(state_dir: pathlib.Path, output: str) -> None:
    printed_pid = re.search(r"pid (\d+)\)", output)
    assert printed_pid, output
    server_pid = int(printed_pid[1])
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    assert processes_mentioning(str(state_dir)) == []
    assert not (state_dir / "temporal.pid").exists()
    assert not (state_dir / "demo.pid").exists()


def printed_output(stdout: str) -> object:
    """The pretty JSON block the demo prints after `Output:`."""
    block = stdout.split("Output:\n", 1)[1].split("\n\n", 1)[0]
    return json.loads(block)


def test_demo_runs_the_example_end_to_end(tmp_path: pathlib.Path) -> None:
    state_dir = tmp_path / "state"
    started = time.monotonic()
    result = run_demo(state_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    # The triage, then the two reply reviews (the second waits out its 15 s listen).
    assert time.monotonic() - started < 90
    out = result.stdout
    assert_reviews(out, "T-1042")
    triage = out.split("\nReply review of", 1)[0]
    # Each task's progress, in order, including the caught failure.
    progress = re.findall(r"^\s+[\d.]+s  (\w+)\s+(\S+)", triage, re.MULTILINE)
    assert progress == [
        ("completed", "/do/0/classify"),
        ("completed", "/do/1/summarize"),
        ("completed", "/do/2/research"),
        ("completed", "/do/3/route"),
        ("failed", "/do/4/escalate/try/0/pageOnCall"),
        ("completed", "/do/4/escalate/catch/do/0/queueForOnCall"),
        ("completed", "/do/4/escalate"),
        ("completed", "/do/5/draftReply"),
        ("completed", "/do/6/closeOut"),
    ]
    assert "(ModelError)" in out
    # The switch took the urgent branch; the catch queued the ticket instead of paging.
    assert printed_output(out) == {
        "ticket": "T-1042",
        "category": "urgent",
        "summary": "Globex reports: Dashboard down for all our users.",
        "related": LINKED,
        "linkedToIncident": True,
        "escalation": {
            "paged": False,
            "fallback": "top of the on-call queue",
            "reason": "ModelError: offline model told to fail with ModelError",
        },
        "reply": "Hi Globex, thanks for reporting this. An engineer is looking into it now and "
        "we will update you within the hour. Acme Support",
    }
    # Where to look: the UI's page of this run, its ids, the agent executions it caused.
    workflow_id = re.search(r"workflow id\s+(support-triage-\w+)$", out, re.MULTILINE)
    run_id = re.search(r"run id\s+([0-9a-f-]{36})$", out, re.MULTILINE)
    assert workflow_id and run_id
    assert re.search(
        rf"http://127\.0\.0\.1:\d+/namespaces/default/workflows/{workflow_id[1]}/{run_id[1]}/history",
        out,
    )
    executions = re.findall(r"^\s+(aex-[0-9a-f]+)\s+(\w+)\s+(\S+)", out, re.MULTILINE)
    assert [(phase, agent) for _, phase, agent in executions] == [
        ("COMPLETED", "acme/ticket-classifier"),
        ("COMPLETED", "acme/ticket-summarizer"),
        ("COMPLETED", "acme/ticket-researcher"),
        ("FAILED", "acme/on-call-pager"),
        ("COMPLETED", "acme/reply-writer"),
    ]
    # The researcher's steps, under its execution: the tool calls on the MCP server, the answer.
    steps = re.findall(r"^\s+(\d+) (tool|message) +(.*) \(\d+\.\d\ds\)$", out, re.MULTILINE)
    assert [(index, kind) for index, kind, _ in steps] == [
        ("0", "tool"),
        ("1", "tool"),
        ("2", "message"),
    ]
    assert steps[0][2].startswith('tickets.lookup_ticket {"id": "T-1"} -> {"id": "T-1", ')
    # The gated link ran once approved: who approved (the CLI's credential; the demo's service
    # runs without credentials, so every caller is the operator) and why.
    assert steps[1][2] == (
        'tickets.link_ticket {"id": "T-1", "related": "T-1042"} -> T-1042 linked to T-1 '
        f"[approved by operator: {REASON}]"
    )
    assert steps[2][2].startswith("ticket-researcher: ")
    assert_approved_with_the_cli(out, state_dir, researcher=executions[2][0])
    assert str(state_dir / "demo.log") in out
    # Calm terminal: component logs went to the file.
    assert result.stderr == ""
    assert "execution created" in (state_dir / "demo.log").read_text()
    assert_nothing_left(state_dir, out)


def assert_reviews(out: str, ticket: str) -> None:
    """The reply review ran twice: reviewed through `workflow-runner emit` (the event reached the
    waiting listen), then unreviewed (the listen timed out and the catch queued the reply)."""
    reviewed, unreviewed = out.split("\nReply review of ")[1:3]
    command = re.search(
        r"^    \$ NATS_URL=nats://127\.0\.0\.1:\d+ workflow-runner emit (.*)$", reviewed, re.M
    )
    assert command, reviewed
    assert "--type com.acme.support.reply.reviewed" in command[1]
    assert re.search(r"published event [0-9a-f-]{36} \(stream sequence \d+\)", reviewed)
    outputs = [
        json.loads(line.split("Output: ", 1)[1])
        for part in (reviewed, unreviewed)
        for line in part.splitlines()
        if line.startswith("Output: ")
    ]
    assert outputs == [
        {"ticket": ticket, "verdict": "approved", "reviewer": "dana", "note": "", "send": True},
        {
            "ticket": "T-1043",
            "verdict": "queued",
            "reviewer": "nobody",
            "note": "no reviewer answered within 15 seconds",
            "send": False,
        },
    ]
    assert (
        "failed     /do/0/review/try/0/awaitReviewer  (https://serverlessworkflow.io/spec/1.0.0/errors/timeout)"
        in unreviewed
    )


def assert_approved_with_the_cli(out: str, state_dir: pathlib.Path, researcher: str) -> None:
    """The demo saw the researcher's link wait, ran `stigmer-service approve` for it as a child
    process, and printed the step as the command's answer shows it: approved, by whom, why."""
    waiting = re.findall(
        r"^  approval: step (\d+) of (aex-\w+), (\S+) .* waits for a person", out, re.M
    )
    assert waiting == [("1", researcher, "tickets.link_ticket")], out
    command = re.findall(r"^    \$ (stigmer-service approve .*)$", out, re.MULTILINE)
    assert len(command) == 1, out
    assert re.fullmatch(
        rf"stigmer-service approve {researcher} 1 --reason '{REASON}' "
        r"--endpoint 127\.0\.0\.1:\d+ --output json",
        command[0],
    ), command
    answer = out.split(command[0] + "\n", 1)[1].splitlines()[0]
    assert answer == f"    [approved by operator: {REASON}]"
    # While the workflow ran: the approval comes before the research task finished.
    assert out.index(command[0]) < out.index("completed  /do/2/research")
    # The service's log: one decision, through the API (DecideToolCall, which the CLI calls).
    logged = [
        json.loads(line)
        for line in (state_dir / "demo.log").read_text().splitlines()
        if line.startswith("{")
    ]
    decided = [r for r in logged if r.get("event") == "tool call decided"]
    assert [(r["execution_id"], r["step"], r["approved"]) for r in decided] == [
        (researcher, 1, True)
    ]
    rpcs = [r for r in logged if str(r.get("method", "")).endswith("/DecideToolCall")]
    assert [r["status"] for r in rpcs] == ["OK"]


def test_routine_ticket_takes_the_other_branch(tmp_path: pathlib.Path) -> None:
    state_dir = tmp_path / "state"
    result = run_demo(state_dir, "--input", json.dumps(ROUTINE_TICKET))
    assert result.returncode == 0, result.stdout + result.stderr
    output = printed_output(result.stdout)
    assert_reviews(result.stdout, "T-7")
    assert output == {
        "ticket": "T-7",
        "category": "routine",
        "summary": "Initech reports: Invoice address.",
        "related": RELATED,
        "linkedToIncident": False,
        "escalation": {"needed": False},
        "reply": "Hi Initech, thanks for reporting this. We will get back to you within one "
        "business day. Acme Support",
    }
    assert "/do/4/escalate" not in result.stdout
    # Nothing to link, so no call waited for approval.
    assert "approval:" not in result.stdout and "stigmer-service approve" not in result.stdout
    assert len(re.findall(r"^\s+aex-[0-9a-f]+\s+COMPLETED", result.stdout, re.MULTILINE)) == 4
    assert_nothing_left(state_dir, result.stdout)


class LineReader:
    """The child's stdout lines as they come, each within a bound (a thread does the blocking)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, pattern: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while (line := self.lines.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            self.seen.append(line)
            if re.search(pattern, line):
                return True
        return False

    def everything(self) -> str:
        """All the output, once the child has exited."""
        self.until(r"(?!)", timeout=10)
        return "".join(self.seen)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_run_stops_everything(tmp_path: pathlib.Path, signum: int) -> None:
    state_dir = tmp_path / "state"
    process = subprocess.Popen(
        demo_command(state_dir, "--workflow", str(SLOW_WORKFLOW)),
        env=child_env(UNBUFFERED),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader = LineReader(process)
    try:
        assert reader.until(r"^\s+[\d.]+s  completed\s+/do/0/start"), "".join(reader.seen)
        # The agent call (60 s on the offline model) is in flight now.
        interrupted = time.monotonic()
        process.send_signal(signum)
        returncode = process.wait(timeout=45)
        stopped_in = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = reader.everything()
    assert returncode == 130, out
    assert stopped_in < 30, out
    assert f"{signal.Signals(signum).name}: stopping" in out
    assert "Stopped everything." in out
    assert "Traceback" not in out
    assert_nothing_left(state_dir, out)


def test_dev_mode_fails_in_one_line_when_a_port_is_taken(tmp_path: pathlib.Path) -> None:
    state_dir = tmp_path / "state"
    with socket.socket() as holder:
        # If somebody else holds it, the demo must refuse all the same.
        with contextlib.suppress(OSError):
            holder.bind(("127.0.0.1", 7233))
        holder.listen()
        result = run_demo(state_dir, "dev")
    assert result.returncode == 1
    assert "error: port 127.0.0.1:7233 (Temporal) is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert processes_mentioning(str(state_dir)) == []
