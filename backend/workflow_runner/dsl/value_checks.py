"""Checks of the values inside a document: durations and expressions (they compile, with the
variables in scope). The loader's _Validator inherits them, as it does EventChecks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from backend.workflow_runner.dsl import durations, expressions, model


class ValueChecks:
    """Mixed into the loader's validator, which provides `_add`."""

    def _add(self, path: str, message: str) -> None:
        raise NotImplementedError

    def _duration_at(self, parent: Any, key: str, path: str, required: bool) -> None:
        if isinstance(parent, dict) and key in parent:
            self._duration(parent[key], f"{path}/{key}")

    def _duration(self, value: Any, path: str) -> None:
        try:
            durations.to_seconds(value)
        except durations.DurationError as error:
            self._add(path, str(error))

    def _condition(self, value: Any, path: str, variables: Iterable[str]) -> None:
        if isinstance(value, bool):
            return
        self._expression(expressions.program_of(str(value)), path, variables)

    def _transform(self, value: Any, path: str, variables: Iterable[str]) -> None:
        """`input.from`, `output.as`, `export.as`: a string is an expression even without `${ }`."""
        if isinstance(value, str):
            self._expression(expressions.program_of(value), path, variables)
        else:
            self._value_expressions(value, path, variables)

    def _value_expressions(self, value: Any, path: str, variables: Iterable[str]) -> None:
        if isinstance(value, str):
            if expressions.is_expression(value):
                self._expression(expressions.program_of(value), path, variables)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._value_expressions(item, f"{path}/{model.escape_pointer(str(key))}", variables)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._value_expressions(item, f"{path}/{index}", variables)

    def _expression(self, program: str, path: str, variables: Iterable[str]) -> None:
        if not program:
            self._add(path, "empty expression")
            return
        error = expressions.check(program, variables)
        if error:
            self._add(path, f"invalid expression: {error}")
