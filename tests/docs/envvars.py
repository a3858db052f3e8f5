"""Finds the environment variables a Python module reads, from its syntax tree (no import)."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator

# Calls that read a variable whose name is their first argument.
_GETENV_FUNCTIONS = frozenset({"getenv"})
_MAPPING_READS = frozenset({"get", "pop", "setdefault"})


@dataclasses.dataclass(frozen=True)
class EnvRead:
    """A variable the code reads: `name` exactly, or every name that starts with it."""

    name: str
    prefix: bool
    where: str


@dataclasses.dataclass(frozen=True)
class UnresolvedRead:
    """A read whose variable name the scan cannot work out; it needs a look by a person."""

    expression: str
    where: str


@dataclasses.dataclass
class Scan:
    reads: list[EnvRead] = dataclasses.field(default_factory=list)
    unresolved: list[UnresolvedRead] = dataclasses.field(default_factory=list)


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _is_os_environ(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == "environ"


def _parameters(function: Function) -> list[ast.arg]:
    args = function.args
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


def _defaults(function: Function) -> dict[str, ast.expr]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    found = dict(
        zip(
            (a.arg for a in positional[len(positional) - len(args.defaults) :]),
            args.defaults,
            strict=True,
        )
    )
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is not None:
            found[arg.arg] = default
    return found


def _argument(call: ast.Call, function: Function, parameter: str) -> ast.expr | None:
    """The expression `call` passes for `function`'s `parameter`, if any."""
    for keyword in call.keywords:
        if keyword.arg == parameter:
            return keyword.value
    names = [a.arg for a in [*function.args.posonlyargs, *function.args.args]]
    if isinstance(call.func, ast.Attribute) and names[:1] in (["self"], ["cls"]):
        names = names[1:]  # A method called on self: its first parameter is not in the call.
    if parameter in names and names.index(parameter) < len(call.args):
        return call.args[names.index(parameter)]
    return None


class _Module:
    """One module's constants, functions, and which names in which function hold the environment."""

    def __init__(self, tree: ast.Module, path: str) -> None:
        self.tree = tree
        self.path = path
        self.constants: dict[str, ast.expr] = {}
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name):
                    self.constants[target.id] = statement.value
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                if statement.value is not None:
                    self.constants[statement.target.id] = statement.value
        self.functions: dict[str, Function] = {
            node.name: node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.parents: dict[ast.AST, Function] = {}
        for function in self.functions.values():
            for node in ast.walk(function):
                self.parents.setdefault(node, function)
        # Parameters that hold os.environ: a default of os.environ, or passed one by a caller.
        self.env_parameters: set[tuple[str, str]] = {
            (name, parameter)
            for name, function in self.functions.items()
            for parameter, default in _defaults(function).items()
            if _is_os_environ(default)
        }
        self._propagate_env_parameters()
        # Helpers: functions that read the variable their parameter names (`_float(name, ...)`).
        self.helpers: set[tuple[str, str]] = set()
        for node in ast.walk(tree):
            key = self._read_key(node)
            if isinstance(key, ast.Name) and node in self.parents:
                function = self.parents[node]
                if key.id in {a.arg for a in _parameters(function)}:
                    self.helpers.add((function.name, key.id))

    def is_env(self, node: ast.expr) -> bool:
        if _is_os_environ(node):
            return True
        function = self.parents.get(node)
        return (
            isinstance(node, ast.Name)
            and function is not None
            and (function.name, node.id) in self.env_parameters
        )

    def _propagate_env_parameters(self) -> None:
        changed = True
        while changed:
            changed = False
            for call in (n for n in ast.walk(self.tree) if isinstance(n, ast.Call)):
                callee = self._callee(call)
                if callee is None:
                    continue
                for parameter in _parameters(callee):
                    argument = _argument(call, callee, parameter.arg)
                    key = (callee.name, parameter.arg)
                    fresh = argument is not None and key not in self.env_parameters
                    if fresh and argument is not None and self.is_env(argument):
                        self.env_parameters.add(key)
                        changed = True

    def _callee(self, call: ast.Call) -> Function | None:
        func = call.func
        if isinstance(func, ast.Name):
            return self.functions.get(func.id)
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in {"self", "cls"}
        ):
            return self.functions.get(func.attr)  # A method called on self or cls.
        return None

    def _read_key(self, node: ast.AST) -> ast.expr | None:
        """The expression naming the variable, when `node` reads the environment."""
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            of_os = isinstance(func, ast.Name) or (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "os"
            )
            if name in _GETENV_FUNCTIONS and node.args and of_os:
                return node.args[0]
            if (
                isinstance(func, ast.Attribute)
                and func.attr in _MAPPING_READS
                and node.args
                and self.is_env(func.value)
            ):
                return node.args[0]
        if isinstance(node, ast.Subscript) and self.is_env(node.value):
            return node.slice
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and self.is_env(node.comparators[0])
        ):
            return node.left
        return None

    def resolve(self, node: ast.expr, scope: Function | None, depth: int = 0) -> list[EnvRead]:
        """The names `node` evaluates to; [] when it cannot tell."""
        where = f"{self.path}:{getattr(node, 'lineno', 0)}"
        if depth > 5:
            return []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [EnvRead(node.value, False, where)]
        if isinstance(node, ast.Name):
            local = self._local_value(node.id, scope)
            if local is not None:
                return self.resolve(local, scope, depth + 1)
            if node.id in self.constants:
                return self.resolve(self.constants[node.id], None, depth + 1)
            return []
        if isinstance(node, ast.BoolOp):  # `configured or "DEFAULT_NAME"`
            return [r for value in node.values for r in self.resolve(value, scope, depth + 1)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return [
                EnvRead(r.name, True, where)
                for r in self.resolve(node.left, scope, depth + 1)
                if not r.prefix
            ]
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return [EnvRead(first.value, len(node.values) > 1, where)]
            return []
        if isinstance(node, ast.List | ast.Tuple):
            return [r for element in node.elts for r in self.resolve(element, scope, depth + 1)]
        if isinstance(node, ast.Call):
            callee = self._callee(node)
            if callee is not None:
                returns = [
                    r.value
                    for r in ast.walk(callee)
                    if isinstance(r, ast.Return) and r.value is not None
                ]
                if len(returns) == 1:
                    return self.resolve(returns[0], callee, depth + 1)
        return []

    def _local_value(self, name: str, scope: Function | None) -> ast.expr | None:
        if scope is None:
            return None
        value: ast.expr | None = None
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                value = node.value
        return value

    def scan(self) -> Scan:
        scan = Scan()
        for node in ast.walk(self.tree):
            for expression, scope in self._names_read(node):
                found = self.resolve(expression, scope)
                where = f"{self.path}:{getattr(node, 'lineno', 0)}"
                if found:
                    scan.reads.extend(dataclasses.replace(r, where=where) for r in found)
                else:
                    scan.unresolved.append(UnresolvedRead(ast.unparse(expression), where))
        return scan

    def _names_read(self, node: ast.AST) -> Iterator[tuple[ast.expr, Function | None]]:
        scope = self.parents.get(node)
        key = self._read_key(node)
        # A helper's own read of its parameter is resolved at the helper's call sites.
        in_helper = (
            isinstance(key, ast.Name) and scope is not None and (scope.name, key.id) in self.helpers
        )
        if key is not None and not in_helper:
            yield key, scope
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "envvar":  # click / typer options
                    yield keyword.value, scope
            callee = self._callee(node)
            if callee is not None:
                for function_name, parameter in self.helpers:
                    if function_name == callee.name:
                        argument = _argument(node, callee, parameter)
                        if argument is not None:
                            yield argument, scope


def scan_source(source: str, path: str) -> Scan:
    """Every environment variable `source` reads: `os.environ.get("X")`, `os.environ["X"]`,
    `os.getenv("X")`, `"X" in os.environ`, typer/click `envvar="X"`, reads through a parameter
    defaulting to (or passed) `os.environ`, and calls of helpers that read their argument
    (`_float("X", ...)`). Names come from literals, module constants, local assignments,
    `a or "X"`, and prefixes (`"X_" + name`, f"X_{name}") of one-return helper functions."""
    return _Module(ast.parse(source, filename=path), path).scan()
