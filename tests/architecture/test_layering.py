"""The import graph of `backend/`: no cycles, and no module importing up its stack.

Read from the sources' syntax trees (every import, also those inside functions and
TYPE_CHECKING blocks), so the rule holds for what the code says, not for what happens to run.
"""

from __future__ import annotations

import ast
import collections
import pathlib

BACKEND = pathlib.Path(__file__).resolve().parents[2] / "backend"

# Within each component, a module may import its own rank or below, never above. A component's
# modules not listed here fail the test: a new module gets a rank when it is added.
RANKS: dict[str, int] = {
    # backend/common: shared by both components, imports neither.
    "backend.common": 0,
    # The Stigmer service, from its vocabulary up to its entry point.
    "backend.stigmer_service.states": 1,
    "backend.stigmer_service.errors": 1,
    "backend.stigmer_service.ids": 1,
    "backend.stigmer_service.crypto": 1,
    "backend.stigmer_service.placeholders": 1,
    "backend.stigmer_service.logs": 1,
    "backend.stigmer_service.config": 1,
    "backend.stigmer_service.manifests": 1,
    "backend.stigmer_service.identity": 1,
    "backend.stigmer_service.store": 2,
    "backend.stigmer_service.providers": 2,
    "backend.stigmer_service.tools": 2,
    "backend.stigmer_service.convert": 3,
    "backend.stigmer_service.metrics": 3,
    "backend.stigmer_service.execution": 4,
    "backend.stigmer_service.api": 5,
    "backend.stigmer_service.server": 6,
    "backend.stigmer_service.app": 7,
    "backend.stigmer_service.client": 7,
    "backend.stigmer_service.cli_render": 7,
    "backend.stigmer_service.cli_client": 8,
    "backend.stigmer_service.cli": 9,
    "backend.stigmer_service.main": 10,
    # The workflow runner.
    "backend.workflow_runner.metrics": 1,
    "backend.workflow_runner.models": 1,
    "backend.workflow_runner.timing": 1,
    "backend.workflow_runner.dsl": 1,
    # Claim check (issue 18): the codec and its blob stores, below every client that uses them.
    "backend.workflow_runner.claim_check": 1,
    # Events (issue 16): the contract and the CloudEvent check at the bottom, the broker and the
    # registrations over them, the activities beside the HTTP ones, the router and the ingress
    # (which start DslWorkflows) above the workflows, their commands beside the CLI.
    "backend.workflow_runner.events": 1,
    "backend.workflow_runner.events.broker": 2,
    "backend.workflow_runner.events.registrations": 2,
    "backend.workflow_runner.events.activities": 4,
    "backend.workflow_runner.events.router": 7,
    "backend.workflow_runner.events.ingress": 7,
    "backend.workflow_runner.events.cli": 8,
    "backend.workflow_runner.agent_call": 2,
    "backend.workflow_runner.event_inbox": 2,
    "backend.workflow_runner.calls": 3,
    "backend.workflow_runner.error_handling": 4,
    "backend.workflow_runner.activities": 4,
    "backend.workflow_runner.event_tasks": 4,
    # The Zigflow dialect (issue 18): its state under its tasks, both under the interpreter.
    "backend.workflow_runner.zigflow_runtime": 3,
    "backend.workflow_runner.zigflow_tasks": 4,
    "backend.workflow_runner.workflow_env": 4,
    "backend.workflow_runner.search_attributes": 1,
    "backend.workflow_runner.run_tasks": 4,
    "backend.workflow_runner.evaluation": 4,
    "backend.workflow_runner.scope": 1,
    "backend.workflow_runner.heartbeats": 1,
    "backend.workflow_runner.interpreter": 5,
    "backend.workflow_runner.workflow_runners": 6,
    "backend.workflow_runner.zigflow_schedule": 7,
    "backend.workflow_runner.workflows": 6,
    "backend.workflow_runner.worker": 7,
    "backend.workflow_runner.schedule_cli": 8,
    "backend.workflow_runner.migrate_cli": 8,
    "backend.workflow_runner.cli": 8,
    "backend.workflow_runner.main": 9,
}
PACKAGES = ("backend.common", "backend.stigmer_service", "backend.workflow_runner")


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in BACKEND.rglob("*.py"):
        parts = path.relative_to(BACKEND.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _component(module: str) -> str | None:
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), None)


def rank(module: str) -> int | None:
    """The rank of the longest listed prefix; a component's package `__init__` ranks lowest."""
    best = max(
        (p for p in RANKS if module == p or module.startswith(p + ".")), default=None, key=len
    )
    if best is not None:
        return RANKS[best]
    return 0 if module in PACKAGES or module == "backend" else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            source, destination = _component(module), _component(target)
            if destination not in (source, "backend.common") and module != "backend":
                problems.append(f"{module} -> {target} (across components)")
            elif destination == source and (rank(module) or 0) < (rank(target) or 0):
                problems.append(f"{module} (rank {rank(module)}) -> {target} (rank {rank(target)})")
    return problems


def test_backend_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50, "the backend's sources were found"
    assert cycles(graph) == []


def test_every_backend_module_has_a_rank() -> None:
    unranked = [m for m in import_graph() if rank(m) is None]
    assert unranked == [], "give each new module a rank in RANKS"


def test_nothing_imports_up_the_stack() -> None:
    assert upward_imports(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    graph = collections.defaultdict(set, import_graph())
    graph["backend.stigmer_service.store.agents"].add("backend.stigmer_service.api.agents")
    graph["backend.common.logs"].add("backend.workflow_runner.cli")
    graph["backend.workflow_runner.dsl.errors"].add("backend.workflow_runner.interpreter")
    assert ["backend.workflow_runner.dsl.errors", "backend.workflow_runner.interpreter"] in [
        sorted(
            set(c) & {"backend.workflow_runner.dsl.errors", "backend.workflow_runner.interpreter"}
        )
        for c in cycles(graph)
    ]
    problems = upward_imports(graph)
    assert (
        "backend.stigmer_service.store.agents (rank 2) -> backend.stigmer_service.api.agents (rank 5)"
        in problems
    )
    assert "backend.common.logs -> backend.workflow_runner.cli (across components)" in problems
