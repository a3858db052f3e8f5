"""A `call` task's evaluated `with:` block as the activity input it becomes (http or agent)."""

from __future__ import annotations

import json
from typing import Any

from backend.workflow_runner.agent_call.models import CallAgentInput, SecretScope
from backend.workflow_runner.dsl import durations, expressions, uri_templates
from backend.workflow_runner.models import HttpCallInput


def http_call(
    written: dict[str, Any],
    arguments: dict[str, Any],
    data: Any,
    path: str,
    secrets: SecretScope,
    *,
    inside_try: bool,
) -> HttpCallInput:
    """`written` is the `with:` block as the document has it, `arguments` the same evaluated;
    `data` is the task's input, from which a literal endpoint's URI template is expanded."""
    endpoint = arguments["endpoint"]
    uri = str(endpoint["uri"] if isinstance(endpoint, dict) else endpoint)
    if not _is_expression_uri(written["endpoint"]) and uri_templates.is_template(uri):
        uri = uri_templates.expand(uri, data, path)
    return HttpCallInput(
        method=str(arguments["method"]).upper(),
        uri=uri,
        headers={str(k): str(v) for k, v in (arguments.get("headers") or {}).items()},
        query={str(k): str(v) for k, v in (arguments.get("query") or {}).items()},
        body=arguments.get("body"),
        output=str(arguments.get("output", "content")),
        redirect=bool(arguments.get("redirect", False)),
        task_path=path,
        document_handles_errors=inside_try,
        secret_seal=_seal(secrets),
        secret_names=list(secrets.names),
    )


def agent_call(arguments: dict[str, Any], path: str, secrets: SecretScope) -> CallAgentInput:
    config = arguments.get("config") or {}
    timeout = config.get("timeout")
    temperature = config.get("temperature")
    return CallAgentInput(
        agent=str(arguments["agent"]),
        message=text(arguments["message"]),
        org=str(arguments.get("org") or ""),
        scope=str(arguments.get("scope") or "organization"),
        env={str(k): text(v) for k, v in (arguments.get("env") or {}).items()},
        model=str(config.get("model") or ""),
        timeout_seconds=durations.to_seconds(timeout) if timeout is not None else None,
        temperature=float(temperature) if temperature is not None else None,
        session_id=str(arguments.get("session") or ""),
        task_path=path,
        secret_seal=_seal(secrets),
        secret_names=list(secrets.names),
    )


def text(value: Any) -> str:
    """A value where the activity wants text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _seal(secrets: SecretScope) -> str:
    """The seal, when the document declares secrets (without, nothing can resolve; leaving it
    out keeps such inputs as they were)."""
    return secrets.seal if secrets.names else ""


def _is_expression_uri(endpoint: Any) -> bool:
    """Whether the document wrote the endpoint's URI as a runtime expression (whose result is
    used as it is) rather than as a literal URI template."""
    uri = endpoint.get("uri") if isinstance(endpoint, dict) else endpoint
    return expressions.is_expression(uri)
