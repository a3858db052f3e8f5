"""Who is calling: the identity (name, role, orgs) of each API credential, and the current one.

Credentials are operator configuration: a file (`STIGMER_CREDENTIALS_FILE`, YAML or JSON) maps
the sha256 of each bearer token, never the token itself, to a name, a role and the orgs it may
act in; `STIGMER_API_TOKEN` stays the single operator token (every org, every method). With
neither set the service runs in dev mode: every call is the operator.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import hmac
import pathlib
from typing import Any

import yaml

# A user reads and writes its orgs' agents and executions.
ROLE_USER = "user"
# The workflow runner: finds agents, creates executions and cancels the ones it created.
ROLE_RUNNER = "runner"
# The service's own role (and the operator's): everything, status updates and redelivery too.
ROLE_SERVICE = "service"
ROLES = (ROLE_USER, ROLE_RUNNER, ROLE_SERVICE)
ALL_ORGS = "*"
# The name the operator token and dev mode act under (recorded as an execution's creator).
OPERATOR = "operator"

_AGENT_COMMANDS = "/ai.stigmer.agentic.agent.v1.AgentCommandService/"
_AGENT_QUERIES = "/ai.stigmer.agentic.agent.v1.AgentQueryService/"
_EXECUTION_COMMANDS = "/ai.stigmer.agentic.agentexecution.v1.AgentExecutionCommandService/"
_EXECUTION_QUERIES = "/ai.stigmer.agentic.agentexecution.v1.AgentExecutionQueryService/"
_SERVICE_ONLY = frozenset(
    {_EXECUTION_COMMANDS + "UpdateAgentExecutionStatus", _EXECUTION_COMMANDS + "RedeliverCallback"}
)
_RUNNER_METHODS = frozenset(
    {
        _AGENT_QUERIES + "GetAgent",
        _AGENT_QUERIES + "GetAgentByReference",
        _EXECUTION_COMMANDS + "CreateAgentExecution",
        _EXECUTION_COMMANDS + "CancelAgentExecution",
    }
)
_OUR_SERVICES = (_AGENT_COMMANDS, _AGENT_QUERIES, _EXECUTION_COMMANDS, _EXECUTION_QUERIES)


class CredentialsError(ValueError):
    """The credentials file cannot be read or has a bad entry (the message never has a token)."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """The caller: `orgs` None means every org (and platform-scoped resources, org "")."""

    name: str
    role: str
    orgs: frozenset[str] | None

    def sees(self, org: str) -> bool:
        """Whether resources of `org` exist for this caller ("" is the platform's)."""
        return self.orgs is None or org in self.orgs

    def may_call(self, method: str) -> bool:
        """Whether the role allows the gRPC `method` (`/package.Service/Method`)."""
        if self.role == ROLE_SERVICE or not method.startswith(_OUR_SERVICES):
            return True  # Reflection: any authenticated caller.
        if self.role == ROLE_RUNNER:
            return method in _RUNNER_METHODS
        return method not in _SERVICE_ONLY


OPERATOR_IDENTITY = Identity(OPERATOR, ROLE_SERVICE, None)

# Set by the auth interceptor for the duration of each call.
_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "stigmer_identity", default=None
)


def current() -> Identity:
    """The caller of the RPC being handled; outside one (the service's own code), the operator."""
    return _current.get() or OPERATOR_IDENTITY


def bind(identity: Identity) -> contextvars.Token[Identity | None]:
    return _current.set(identity)


def unbind(token: contextvars.Token[Identity | None]) -> None:
    _current.reset(token)


def digest(token: str) -> str:
    """The hex sha256 of a bearer token: what the credentials file names."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Each configured token's digest and identity; empty: dev mode (everything allowed)."""

    entries: tuple[tuple[bytes, Identity], ...] = ()

    @property
    def dev_mode(self) -> bool:
        return not self.entries

    def identify(self, authorization: str) -> Identity | None:
        """The identity of an `authorization` header's bearer token; None when unknown.

        Digests are compared in constant time, against every entry (no early exit)."""
        if self.dev_mode:
            return OPERATOR_IDENTITY
        scheme, _, token = authorization.partition(" ")
        given = hashlib.sha256(token.encode()).digest()
        found: Identity | None = None
        for expected, identity in self.entries:
            if hmac.compare_digest(given, expected) and scheme == "Bearer" and token:
                found = identity
        return found


def _orgs(value: Any, where: str) -> frozenset[str] | None:
    if value == ALL_ORGS:
        return None
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and value:
        return None if ALL_ORGS in value else frozenset(value)
    raise CredentialsError(f"{where}: orgs must be an org, a list of orgs, or '*'")


def _entry(raw: Any, where: str) -> tuple[bytes, Identity]:
    if not isinstance(raw, dict):
        raise CredentialsError(f"{where}: must be a mapping")
    sha = str(raw.get("sha256", "")).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise CredentialsError(f"{where}: sha256 must be the 64 hex digits of the token's sha256")
    role = raw.get("role", ROLE_USER)
    if role not in ROLES:
        raise CredentialsError(f"{where}: role must be one of {', '.join(ROLES)}")
    orgs = _orgs(raw.get("orgs", raw.get("org")), where)
    name = str(raw.get("name") or sha[:12])
    return bytes.fromhex(sha), Identity(name, role, orgs)


def parse(text: str, source: str = "credentials") -> Credentials:
    """`credentials: [{name, sha256, role, orgs}]` (YAML or JSON)."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise CredentialsError(f"{source}: not YAML or JSON ({type(error).__name__})") from None
    raw = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise CredentialsError(f"{source}: needs a 'credentials' list")
    entries = tuple(_entry(item, f"{source}: credentials[{i}]") for i, item in enumerate(raw))
    names = [identity.name for _, identity in entries]
    if len(set(names)) != len(names):
        raise CredentialsError(f"{source}: credential names must be unique")
    return Credentials(entries)


def load(credentials_file: str, api_token: str) -> Credentials:
    """The configured credentials: the file's, plus the operator token when one is set."""
    entries: tuple[tuple[bytes, Identity], ...] = ()
    if credentials_file:
        path = pathlib.Path(credentials_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise CredentialsError(f"{path}: {type(error).__name__}") from None
        entries = parse(text, str(path)).entries
    if api_token:
        entries = (*entries, (hashlib.sha256(api_token.encode()).digest(), OPERATOR_IDENTITY))
    return Credentials(entries)
