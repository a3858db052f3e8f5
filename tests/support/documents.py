"""Workflow documents the tests run: the one-call document, built once."""

from __future__ import annotations

from typing import Any


def one_call(
    agent: str, org: str, message: str, *, namespace: str, carry: str = ""
) -> dict[str, Any]:
    """A DSL document with one agent call whose output is the answer and the execution id.

    `message` is the task's message (a literal or a `${ ... }` expression); `carry` adds entries of
    jq object syntax to the output (e.g. `n: $input.n, `), so a test can match answers to inputs.
    """
    return {
        "document": {
            "dsl": "1.0.0",
            "namespace": namespace,
            "name": "one-call",
            "version": "1.0.0",
        },
        "do": [
            {
                "ask": {
                    "call": "agent",
                    "with": {
                        "agent": agent,
                        "org": org,
                        "message": message,
                        "config": {"model": "offline/echo", "timeout": "PT2M"},
                    },
                    "output": {
                        "as": "${ {" + carry + "answer: .output, execution: .execution_id} }"
                    },
                }
            }
        ],
    }
