"""Settings of the Stigmer service, read from the environment (and overridden by CLI flags)."""

from __future__ import annotations

import dataclasses
import os
import pathlib

EXECUTION_TASK_QUEUE = "stigmer-agent-executions"
DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"
DEFAULT_STATE_DIR = pathlib.Path("~/.local/state/stigmer")


def default_db_url() -> str:
    path = (DEFAULT_STATE_DIR / "stigmer.db").expanduser()
    return f"sqlite+aiosqlite:///{path}"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw else default


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclasses.dataclass
class Settings:
    """Everything the server, the worker and the activities need to know."""

    listen: str = DEFAULT_LISTEN
    db_url: str = dataclasses.field(default_factory=default_db_url)
    temporal_address: str = DEFAULT_TEMPORAL_ADDRESS
    temporal_namespace: str = "default"
    task_queue: str = EXECUTION_TASK_QUEUE
    api_token: str = ""
    # YAML/JSON file of credentials (token sha256 -> name, role, orgs); see docs/security.md.
    credentials_file: str = ""
    secrets_key: str = ""  # A Fernet key; empty means the key file next to the database.
    # The execution's own timeout when its config sets none.
    default_execution_timeout: float = 600.0
    # How often the service heartbeats each caller's activity while its budget allows (more
    # callers stretch it; a quarter of the caller's own heartbeat timeout bounds it), and the
    # longest round of the sweeper: a cancelled caller is noticed within it.
    caller_heartbeat_interval: float = 10.0
    # How often the agent activity heartbeats, and the timeout Temporal enforces on it.
    activity_heartbeat_interval: float = 2.0
    activity_heartbeat_timeout: float = 30.0
    # Attempts of the agent activity on transient provider errors, and their first backoff.
    model_max_attempts: int = 3
    model_retry_initial_interval: float = 1.0
    # Attempts and first backoff of callback delivery; RPC timeout of each completion call.
    callback_max_attempts: int = 5
    callback_retry_initial_interval: float = 1.0
    callback_rpc_timeout: float = 10.0
    # The caller sweeper's budget of Temporal RPCs per second (heartbeats and workflow checks)
    # for the whole deployment (there is one sweeper); the RPC timeout of each; how often it
    # checks that a waiting execution's own workflow still runs (stretched as the heartbeats
    # are). 100/s keeps the base cadence up to about 850 waiting callers and spends the same
    # 100/s on 10,000 of them (a heartbeat every ~2 min within their 10 min timeout): idle
    # callers should not take a large share of the namespace's rate limit (Temporal's default
    # is 2,400 RPS per frontend host), which the executions' own work needs.
    caller_heartbeat_rps: float = 100.0
    caller_heartbeat_rpc_timeout: float = 5.0
    execution_check_interval: float = 60.0
    # RPC timeout of starting an execution's workflow, so an unreachable Temporal fails fast.
    start_rpc_timeout: float = 5.0
    # Watches are pushed (store/changes.py); this is their safety poll: how late an update whose
    # notification was lost can be at most.
    watch_poll_interval: float = 5.0
    # Concurrent watch streams per process (RESOURCE_EXHAUSTED past it), and how long one may
    # last (DEADLINE_EXCEEDED then: the client watches again).
    max_watches: int = 200
    max_watch_seconds: float = 3600.0
    grace_period: float = 10.0
    # Activity slots of the execution worker: one per running agent (`run_agent` awaits the model)
    # plus the short activities; size it for the concurrent calls one replica should carry.
    max_concurrent_activities: int = 2000
    # Database connections per replica (PostgreSQL; a SQLite file keeps SQLAlchemy's default):
    # the pool and what it may open beyond it under a burst. 5 + 10 (SQLAlchemy's default) ran
    # dry at 1,000 agent calls going in flight at once (`./pants bench --system`): activities
    # waited 30 s for a connection and failed. 20 + 20 per replica leaves PostgreSQL's default
    # 100 connections for two replicas and the operator.
    db_pool_size: int = 20
    db_max_overflow: int = 20
    # HOST:PORT of the Prometheus endpoint of our metrics, and of Temporal's SDK metrics;
    # empty: not served.
    metrics_listen: str = ""
    temporal_metrics_listen: str = ""
    # Test hook: seconds the first callback delivery attempt waits. Never set in production.
    test_callback_delay: float = 0.0
    # Model providers (providers/catalog.py): a YAML file of named providers (endpoint, key
    # source); the offline provider, off unless the operator enables it; the model of an agent
    # that names none (empty: offline/echo when the offline provider is on, else none).
    providers_file: str = ""
    offline_provider: bool = False
    default_model: str = ""
    # The longest `#sleep=` the offline provider honours.
    offline_max_sleep: float = 60.0
    # Test hook: the offline provider's `#wait-for=<path>` gate. Never set in production.
    test_offline_gates: bool = False
    # TLS of the gRPC server (PEM files); a client CA makes it mTLS (client certificates
    # required). Binding a non-loopback address without auth is refused unless allowed.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    allow_insecure_public: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        defaults = cls()
        return cls(
            listen=os.environ.get("STIGMER_LISTEN") or defaults.listen,
            db_url=os.environ.get("STIGMER_DB_URL") or defaults.db_url,
            temporal_address=os.environ.get("TEMPORAL_ADDRESS") or defaults.temporal_address,
            temporal_namespace=os.environ.get("TEMPORAL_NAMESPACE") or defaults.temporal_namespace,
            task_queue=os.environ.get("STIGMER_TASK_QUEUE") or defaults.task_queue,
            api_token=os.environ.get("STIGMER_API_TOKEN", ""),
            credentials_file=os.environ.get("STIGMER_CREDENTIALS_FILE", ""),
            secrets_key=os.environ.get("STIGMER_SECRETS_KEY", ""),
            default_execution_timeout=_float(
                "STIGMER_EXECUTION_TIMEOUT", defaults.default_execution_timeout
            ),
            caller_heartbeat_interval=_float(
                "STIGMER_CALLER_HEARTBEAT_INTERVAL", defaults.caller_heartbeat_interval
            ),
            caller_heartbeat_rps=_float(
                "STIGMER_CALLER_HEARTBEAT_RPS", defaults.caller_heartbeat_rps
            ),
            caller_heartbeat_rpc_timeout=_float(
                "STIGMER_CALLER_HEARTBEAT_RPC_TIMEOUT", defaults.caller_heartbeat_rpc_timeout
            ),
            execution_check_interval=_float(
                "STIGMER_EXECUTION_CHECK_INTERVAL", defaults.execution_check_interval
            ),
            # How soon the agent's work is retried on another worker after a crash of this one.
            activity_heartbeat_timeout=_float(
                "STIGMER_ACTIVITY_HEARTBEAT_TIMEOUT", defaults.activity_heartbeat_timeout
            ),
            grace_period=_float("STIGMER_GRACE_PERIOD", defaults.grace_period),
            watch_poll_interval=_float("STIGMER_WATCH_POLL_INTERVAL", defaults.watch_poll_interval),
            max_watches=int(_float("STIGMER_MAX_WATCHES", defaults.max_watches)),
            max_watch_seconds=_float("STIGMER_MAX_WATCH_SECONDS", defaults.max_watch_seconds),
            max_concurrent_activities=int(
                _float("STIGMER_MAX_CONCURRENT_ACTIVITIES", defaults.max_concurrent_activities)
            ),
            db_pool_size=int(_float("STIGMER_DB_POOL_SIZE", defaults.db_pool_size)),
            db_max_overflow=int(_float("STIGMER_DB_MAX_OVERFLOW", defaults.db_max_overflow)),
            metrics_listen=os.environ.get("STIGMER_METRICS_LISTEN", ""),
            temporal_metrics_listen=os.environ.get("STIGMER_TEMPORAL_METRICS_LISTEN", ""),
            test_callback_delay=_float("STIGMER_TEST_CALLBACK_DELAY", 0.0),
            providers_file=os.environ.get("STIGMER_PROVIDERS_FILE", ""),
            offline_provider=_flag("STIGMER_OFFLINE_PROVIDER"),
            default_model=os.environ.get("STIGMER_DEFAULT_MODEL", ""),
            offline_max_sleep=_float("STIGMER_OFFLINE_MAX_SLEEP", defaults.offline_max_sleep),
            test_offline_gates=_flag("STIGMER_TEST_OFFLINE_GATES"),
            tls_cert_file=os.environ.get("STIGMER_TLS_CERT", ""),
            tls_key_file=os.environ.get("STIGMER_TLS_KEY", ""),
            tls_client_ca_file=os.environ.get("STIGMER_TLS_CLIENT_CA", ""),
            allow_insecure_public=_flag("STIGMER_ALLOW_INSECURE_PUBLIC"),
        )

    def state_dir(self) -> pathlib.Path:
        """Where the key file lives: next to a SQLite database, else the user's state dir."""
        prefix = "sqlite+aiosqlite:///"
        if self.db_url.startswith(prefix) and ":memory:" not in self.db_url:
            return pathlib.Path(self.db_url[len(prefix) :]).expanduser().parent
        return DEFAULT_STATE_DIR.expanduser()
