"""The service's persistence: one `Store` over agents, executions, phase changes and callbacks."""

from __future__ import annotations

from backend.stigmer_service.store.agents import AgentStore
from backend.stigmer_service.store.callbacks import CallbackStore
from backend.stigmer_service.store.executions import ExecutionStore
from backend.stigmer_service.store.phases import PhaseStore
from backend.stigmer_service.store.sessions import SessionStore
from backend.stigmer_service.store.steps import StepStore


class Store(AgentStore, ExecutionStore, PhaseStore, CallbackStore, StepStore, SessionStore):
    """The service's persistence; every method is one transaction.

    Each concern is a module of its own (`agents`, `executions`, `phases` for the guarded phase
    writes, `callbacks`, `steps`, `sessions` for the order of a session's executions); they share the engine and the cipher through `StoreBase`.
    """
