"""The exactly-once callback, in one place: every delivery attempt and what it leaves recorded.

An ended execution's outcome reaches the caller's activity through its task token, once:
- `run_agent` makes the first attempt right after it records the end (`first_attempt`);
- the workflows retry a failed attempt through the `deliver_callback` activity (`retry`): they
  decide only when, and how many attempts are left;
- a NOT_FOUND answer means the caller's activity has closed: either one of our own earlier
  attempts closed it and only its answer was lost (recorded DELIVERED, see `landed`), or it
  timed out or was closed otherwise (recorded ALREADY_CLOSED);
- every attempt is recorded against the hash of the token it went to, so an attempt to a token
  that has since been replaced changes nothing.
The wire format of one attempt (complete, fail or report cancellation) is in `callback`.
"""

from __future__ import annotations

import dataclasses

from opentelemetry.trace import StatusCode
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError, RPCStatusCode

from backend.common import tracing
from backend.stigmer_service import logs, states
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.execution import callback
from backend.stigmer_service.execution.fault_injection import FaultInjection, from_settings
from backend.stigmer_service.execution.fields import log_fields
from backend.stigmer_service.execution.heartbeating import heartbeating
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.store.records import Delivery, ExecutionRecord, StepRecord
from backend.stigmer_service.store.repository import Store

# The failure of a delivery attempt that Temporal retries (the workflow's deliver_callback).
CALLBACK_ATTEMPT_FAILED = "CallbackAttemptFailed"

log = logs.get(__name__)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """Where a delivery attempt left the callback, and its error when it failed (the state is
    then WAITING, or FAILED after the last attempt)."""

    state: int
    error: Exception | None = None


class Deliveries:
    def __init__(
        self,
        store: Store,
        client: Client,
        settings: Settings,
        metrics: ServiceMetrics,
        faults: FaultInjection | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self.faults = faults or from_settings(settings)

    async def first_attempt(
        self,
        ended: Delivery,
        *,
        attempt: int,
        agent_slug: str | None = None,
        steps: list[StepRecord] | None = None,
    ) -> int:
        """The first of the `callback_max_attempts` delivery attempts of a recorded end (the
        workflow makes the others); returns the callback state it leaves. `attempt`: the
        activity's own attempt number; `agent_slug`: the agent's, when known (saves a query)."""
        state = ended.execution.callback_state
        if state == states.CALLBACK_WAITING and ended.token:
            state = (
                await self._attempt(
                    ended,
                    attempt=attempt,
                    last_attempt=self.settings.callback_max_attempts <= 1,
                    agent_slug=agent_slug,
                    steps=steps,
                )
            ).state
        return state

    async def retry(self, execution_id: str, *, attempt: int, max_attempts: int) -> int:
        """One of the workflow's delivery attempts to the current token; returns the callback
        state, or raises the attempt's error so that Temporal retries it (up to `max_attempts`)."""
        made = await self._deliver(
            execution_id, attempt=attempt, last_attempt=attempt >= max_attempts
        )
        if made.error is not None and made.state != states.CALLBACK_FAILED:
            # Expected while Temporal is unreachable: logged above as "callback attempt failed";
            # BENIGN keeps the SDK from logging it again with a traceback. Temporal retries it.
            raise ApplicationError(
                f"callback attempt {attempt} of {max_attempts} failed: "
                f"{type(made.error).__name__}: {made.error}",
                type=CALLBACK_ATTEMPT_FAILED,
                category=ApplicationErrorCategory.BENIGN,
            ) from made.error
        return made.state

    async def _deliver(self, execution_id: str, *, attempt: int, last_attempt: bool) -> Attempt:
        try:
            ended = await self.store.for_delivery(execution_id)
        except NotFound:
            # Deleted (it had no callback owed, or an older service let it go): retrying cannot
            # bring it back, so the delivery ends here.
            log.info(
                "execution no longer exists; no callback to deliver", execution_id=execution_id
            )
            return Attempt(states.CALLBACK_NOT_REQUESTED)
        if not ended.token:
            return Attempt(states.CALLBACK_NOT_REQUESTED)
        state = ended.execution.callback_state
        if state in (states.CALLBACK_DELIVERED, states.CALLBACK_ALREADY_CLOSED):
            return Attempt(state)  # This token has had its callback.
        return await self._attempt(ended, attempt=attempt, last_attempt=last_attempt)

    async def _attempt(
        self,
        ended: Delivery,
        *,
        attempt: int,
        last_attempt: bool,
        agent_slug: str | None = None,
        steps: list[StepRecord] | None = None,
    ) -> Attempt:
        execution, hashed = ended.execution, ended.token_hash
        fields = log_fields(execution) | {"token_hash": hashed}
        if attempt == 1:
            await self.faults.before_first_attempt(fields)
        with tracing.tracer(__name__).start_as_current_span(
            "callback",
            attributes={
                "stigmer.execution_id": execution.id,
                "stigmer.handshake_id": fields["handshake_id"],
                "stigmer.token_hash": hashed,
                "stigmer.phase": execution.phase,
                "stigmer.attempt": attempt,
            },
        ) as span:
            try:
                await heartbeating(
                    callback.send(
                        self.client,
                        self.store,
                        ended.token,
                        execution,
                        self.settings.callback_rpc_timeout,
                        agent_slug,
                        steps,
                    ),
                    self.settings.activity_heartbeat_interval,
                )
            except Exception as error:
                not_found = isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND
                if not_found and not await landed(self.client, execution):
                    await self.store.record_callback(
                        execution.id, for_token_hash=hashed, state=states.CALLBACK_ALREADY_CLOSED
                    )
                    self.metrics.callback_already_closed()
                    span.set_attribute("stigmer.callback.outcome", "already_closed")
                    log.info("callback found the caller already closed", **fields)
                    return Attempt(states.CALLBACK_ALREADY_CLOSED)
                if not_found:
                    # An earlier attempt of ours closed it; only its answer was lost.
                    log.info("an earlier callback attempt had been delivered", **fields)
                else:
                    span.set_attribute("stigmer.callback.outcome", "error")
                    span.set_status(StatusCode.ERROR, type(error).__name__)
                    return await self._failed(execution.id, hashed, error, last_attempt, fields)
            await self.store.record_callback(
                execution.id, for_token_hash=hashed, state=states.CALLBACK_DELIVERED
            )
            self.metrics.callback_delivered(execution.phase, execution.completed_at)
            outcome = states.OUTCOME_NAMES.get(execution.phase, "")
            span.set_attribute("stigmer.callback.outcome", outcome)
        log.info("callback delivered", outcome=outcome, **fields)
        return Attempt(states.CALLBACK_DELIVERED)

    async def _failed(
        self,
        execution_id: str,
        hashed: str,
        error: Exception,
        last: bool,
        fields: dict[str, str],
    ) -> Attempt:
        description = f"{type(error).__name__}: {error}"
        state = states.CALLBACK_FAILED if last else states.CALLBACK_WAITING
        await self.store.record_callback(
            execution_id, for_token_hash=hashed, state=state, last_error=description
        )
        self.metrics.callback_error()
        log.warning("callback attempt failed", error=description, final=last, **fields)
        return Attempt(state, error)


async def landed(client: Client, execution: ExecutionRecord) -> bool:
    """After NOT_FOUND: did one of our own deliveries close the caller's activity?

    A completion can be applied by Temporal while its answer is lost (a server restart, an RPC
    timeout): the retry then finds the activity closed. The caller's history tells the two
    cases apart: our deliveries close the activity with this execution's id in the result, the
    failure details or the cancellation details; a timeout or another closer does not.
    """
    activity_id = execution.caller.activity_id
    handle = callback.caller_workflow(client, execution.caller)
    if handle is None or not activity_id:
        return False
    try:
        history = await handle.fetch_history()
    except RPCError:
        return False
    scheduled = {
        event.event_id
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_id == activity_id
    }
    for event in history.events:
        if event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            closes, payloads = completed.scheduled_event_id, completed.result.payloads
        elif event.HasField("activity_task_failed_event_attributes"):
            failed = event.activity_task_failed_event_attributes
            closes = failed.scheduled_event_id
            payloads = failed.failure.application_failure_info.details.payloads
        elif event.HasField("activity_task_canceled_event_attributes"):
            canceled = event.activity_task_canceled_event_attributes
            closes, payloads = canceled.scheduled_event_id, canceled.details.payloads
        else:
            continue
        if closes not in scheduled or not payloads:
            continue
        try:
            values = await client.data_converter.decode(list(payloads))
        except Exception:
            continue
        if any(isinstance(v, dict) and v.get("execution_id") == execution.id for v in values):
            return True
    return False
