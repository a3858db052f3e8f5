"""RFC 6570 URI templates of endpoints (`uri: https://host/pet/{petId}`), as the DSL reference's
"URI Template" section defines them: variables are the task input's top-level properties, named
verbatim (`{pet.id}` is the property "pet.id"); a missing one expands to nothing; only strings,
numbers, booleans and null may be substituted."""

from __future__ import annotations

import json
from typing import Any

import uritemplate

from backend.workflow_runner.dsl import errors
from backend.workflow_runner.dsl.errors import DslException


def is_template(uri: str) -> bool:
    return "{" in uri


def expand(template: str, data: Any, path: str) -> str:
    """`template` with its variables taken from `data`, percent-encoded as RFC 6570 requires."""
    try:
        parsed = uritemplate.URITemplate(template)
    except ValueError as error:
        raise errors.expression_error(f"invalid URI template {template!r}: {error}", path) from None
    properties = data if isinstance(data, dict) else {}
    values: dict[str, Any] = {}
    for name in parsed.variable_names:
        if name not in properties or properties[name] is None:
            continue  # Undefined: RFC 6570 expands it to the empty string.
        value = properties[name]
        if isinstance(value, dict | list):
            raise DslException(
                errors.DslError(
                    errors.EXPRESSION,
                    400,
                    "URI template variable is not a scalar",
                    f"{{{name}}} in {template!r} is a {type(value).__name__}; only strings, "
                    "numbers, booleans and null can be substituted",
                    path,
                )
            )
        # JSON's spelling for booleans and numbers (true, 1.5), the text itself for strings.
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return str(parsed.expand(values))
