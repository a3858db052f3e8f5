"""Org scoping, decided here for every RPC: what the caller (`identity.current()`) may see.

Another org's agent or execution does not exist for the caller (NOT_FOUND with the message of
a missing one, so that existence is not revealed); an org the caller may not act in, named in a
request, is PERMISSION_DENIED naming the field. Platform-scoped agents (org "") are readable by
every caller and writable only by credentials of every org.
"""

from __future__ import annotations

import dataclasses

from ai.stigmer.commons.apiresource import reference_pb2

from backend.stigmer_service import identity
from backend.stigmer_service.errors import InvalidArgument, NotFound, PermissionDenied
from backend.stigmer_service.store.records import AgentRecord, ExecutionRecord
from backend.stigmer_service.store.repository import Store

PLATFORM = ""


def require_org(org: str, field: str) -> str:
    """`org` when the caller may act in it (create there)."""
    if not identity.current().sees(org):
        raise PermissionDenied(f"{field}: this credential may not act in org {org!r}")
    return org


def readable_orgs() -> frozenset[str] | None:
    """The orgs whose executions the caller lists; None: every org."""
    return identity.current().orgs


async def execution(store: Store, execution_id: str) -> ExecutionRecord:
    """The execution, when the caller sees its org (a runner: only those it created)."""
    record = await store.get_execution(execution_id)
    caller = identity.current()
    own = caller.role != identity.ROLE_RUNNER or (
        (record.created_by or identity.OPERATOR) == caller.name
    )
    if not caller.sees(record.org) or not own:
        raise NotFound(f"execution {execution_id} not found")
    return record


async def readable_agent(store: Store, agent_id: str) -> AgentRecord:
    record = await store.get_agent(agent_id)
    if record.org != PLATFORM and not identity.current().sees(record.org):
        raise NotFound(f"agent {agent_id} not found")
    return record


async def writable_agent(store: Store, agent_id: str) -> AgentRecord:
    record = await store.get_agent(agent_id)
    if not identity.current().sees(record.org):
        raise NotFound(f"agent {agent_id} not found")
    return record


def reference_visible(org: str) -> bool:
    """Whether a by-reference lookup in `org` may find anything for the caller."""
    return org == PLATFORM or identity.current().sees(org)


async def agent_by_reference(
    store: Store, ref: reference_pb2.ApiResourceReference, field: str
) -> AgentRecord:
    """The agent a reference names, when the caller may see it (`field`: the reference's field
    in the request, for errors)."""
    if ref.kind not in (
        reference_pb2.API_RESOURCE_KIND_UNSPECIFIED,
        reference_pb2.API_RESOURCE_KIND_AGENT,
    ):
        raise InvalidArgument(f"{field}.kind", "must be API_RESOURCE_KIND_AGENT")
    if not ref.slug:
        raise InvalidArgument(f"{field}.slug", "is required")
    if ref.scope == reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION and not ref.org:
        raise InvalidArgument(f"{field}.org", "is required")
    org = PLATFORM if ref.scope == reference_pb2.API_RESOURCE_OWNER_SCOPE_PLATFORM else ref.org
    record = await store.find_agent(org, ref.slug) if reference_visible(org) else None
    if record is None:
        raise NotFound(f"agent {org or '(platform)'}/{ref.slug} not found")
    return record


@dataclasses.dataclass(frozen=True)
class Placement:
    """The org a new execution belongs to and the agent it runs."""

    org: str
    agent_id: str
    agent: AgentRecord  # As read for the check: the create starts its run from it.


async def place_execution(
    store: Store,
    requested_org: str,
    agent_id: str,
    session_id: str,
    agent: AgentRecord | None = None,
) -> Placement:
    """An execution runs an agent of its own org or a platform one. Without `agent_id` the
    agent is `agent` (found by reference), else the session's (found by org and session id);
    an org left empty is the session's, else the agent's, else the caller's only org."""
    caller = identity.current()
    if agent is not None:
        agent_id = agent.id
    elif not agent_id:
        orgs = frozenset({requested_org}) if requested_org else caller.orgs
        start = await store.session_start(session_id, orgs)
        if start is None:
            raise NotFound(f"session {session_id} has no executions to take the agent from")
        agent_id, requested_org = start.agent_id, requested_org or start.org
    if agent is None:
        agent = await readable_agent(store, agent_id)
    only = next(iter(caller.orgs)) if caller.orgs is not None and len(caller.orgs) == 1 else ""
    org = require_org(requested_org or agent.org or only, "execution.metadata.org")
    if agent.org not in (org, PLATFORM):
        raise NotFound(f"agent {agent_id} not found")
    return Placement(org, agent_id, agent)
