"""The interpreter's evaluation of expressions, transforms and schemas, with its budgets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from backend.workflow_runner import error_handling
from backend.workflow_runner.dsl import budgets, errors, expressions


class Evaluation:
    """Mixed into the Interpreter: every evaluation names the document path it fails at."""

    budgets: budgets.Budgets

    def _evaluate(self, value: Any, data: Any, variables: Mapping[str, Any], path: str) -> Any:
        try:
            return expressions.evaluate_value(value, data, variables, self.budgets.limits)
        except expressions.ExpressionError as error:
            raise budgets.expression_failure(error, path) from None

    def _condition(self, value: Any, data: Any, variables: Mapping[str, Any], path: str) -> bool:
        try:
            return expressions.evaluate_condition(value, data, variables, self.budgets.limits)
        except expressions.ExpressionError as error:
            raise budgets.expression_failure(error, path) from None

    def _conditions(self, data: Any, variables: Mapping[str, Any]) -> error_handling.Condition:
        """Conditions on `data` with `variables`, each evaluated where the document writes it."""
        return lambda value, path: self._condition(value, data, variables, path)

    def _expression(self, value: Any, data: Any, variables: Mapping[str, Any], path: str) -> Any:
        """A field that is always an expression, with or without `${ }`."""
        program = expressions.program_of(str(value))
        try:
            return expressions.evaluate(program, data, variables, self.budgets.limits)
        except expressions.ExpressionError as error:
            raise budgets.expression_failure(error, path) from None

    def _transform(self, spec: Any, data: Any, variables: Mapping[str, Any], path: str) -> Any:
        if spec is None:
            return data
        try:
            return expressions.evaluate_transform(spec, data, variables, self.budgets.limits)
        except expressions.ExpressionError as error:
            raise budgets.expression_failure(error, path) from None

    def _check_schema(self, spec: Any, value: Any, path: str, what: str) -> None:
        if spec is None:
            return
        validator = jsonschema.Draft202012Validator(spec["document"])
        problem = next(iter(validator.iter_errors(value)), None)
        if problem is not None:
            raise errors.validation_error(
                f"{what} does not match its schema: {problem.message}", path
            )
