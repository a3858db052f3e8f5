"""`emit` and `listen` in the interpreter, with fake runners (no Temporal, no broker)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from backend.workflow_runner.dsl import errors, loader
from backend.workflow_runner.dsl.errors import DslException
from backend.workflow_runner.event_inbox import EventInbox
from backend.workflow_runner.events.contract import DeliveredEvent
from backend.workflow_runner.interpreter import Interpreter
from tests.workflow_runner.dsl.fakes import FakeRunners, run

SPEC_EXAMPLES = pathlib.Path(__file__).parent.parent / "spec_examples"
TEMPERATURE = "com.fake-hospital.vitals.measurements.temperature"
BPM = "com.fake-hospital.vitals.measurements.bpm"
CHECKED_OUT = "com.fake-hospital.patient.checked-out"


def event(event_id: str, kind: str, data: Any = None, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "https://hospital.test",
        "type": kind,
        "data": data,
        **attributes,
    }


async def run_example(name: str, runners: FakeRunners, workflow_input: Any = None) -> Any:
    document = loader.load_file(SPEC_EXAMPLES / name)
    return await Interpreter(document, runners, "wf-1").run(workflow_input)


# emit


async def test_emit_ctk_scenario_outputs_the_event_it_published() -> None:
    # ctk/features/emit.feature: the output has id, specversion, time, source, type, data.
    runners = FakeRunners()
    output = await run(
        """
do:
  - emitEvent:
      emit:
        event:
          with:
            source: https://fake-source.com
            type: com.fake-source.user.greeted.v1
            data:
              greetings: ${ "Hello \\(.user.firstName) \\(.user.lastName)!" }
""",
        {"user": {"firstName": "John", "lastName": "Doe"}},
        runners,
    )
    assert output == {
        "specversion": "1.0",
        "id": "event-1",
        "time": "2026-01-02T03:04:05Z",
        "source": "https://fake-source.com",
        "type": "com.fake-source.user.greeted.v1",
        "data": {"greetings": "Hello John Doe!"},
    }
    assert runners.published == [output]


async def test_emit_keeps_a_given_id_time_and_extension_attributes() -> None:
    runners = FakeRunners()
    output = await run(
        """
do:
  - e:
      emit:
        event:
          with:
            id: ${ "order-" + (.n | tostring) }
            source: https://shop.test
            type: order.placed
            time: "2025-05-01T10:00:00Z"
            subject: orders
            tenant: ${ .tenant }
""",
        {"n": 7, "tenant": "acme"},
        runners,
    )
    assert output["id"] == "order-7"
    assert output["time"] == "2025-05-01T10:00:00Z"
    assert output["tenant"] == "acme" and output["subject"] == "orders"
    assert "data" not in output
    assert runners.event_ids == 0  # No id drawn when the document gives one.


async def test_emit_an_extension_attribute_that_is_no_scalar_fails_as_validation() -> None:
    with pytest.raises(DslException) as failure:
        await run(
            """
do:
  - e:
      emit: {event: {with: {source: s, type: t, tenant: "${ {a: 1} }"}}}
"""
        )
    assert failure.value.error.type == errors.VALIDATION
    assert failure.value.error.instance == "/do/0/e"


async def test_emit_spec_example_publishes() -> None:
    runners = FakeRunners()
    output = await run_example("emit.yaml", runners)
    assert output["type"] == "com.petstore.order.placed.v1"
    assert output["data"]["items"] == [{"breed": "dalmatian", "quantity": 101}]
    assert runners.published == [output]


# listen: strategies


async def test_listen_to_one_waits_for_its_type_then_goes_on() -> None:
    runners = FakeRunners(
        http=lambda call: {"started": call.uri},
        incoming=[
            event("1", "other.type", {"x": 1}),
            event("2", "com.virtual-wf-powered-race.events.race.started.v1", {"race": 9}),
        ],
    )
    output = await run_example("listen-to-one.yaml", runners, {"carId": 3})
    # The call's input is the listen task's output (a list of events' data), which has no
    # `carId`: the URI template expands it to nothing, as the README says.
    assert output == {"started": "https://virtual-wf-powered-race.com/api/v4/cars//start"}
    listener = "/do/0/waitForStartup#1"
    assert runners.registered == [
        (listener, ["com.virtual-wf-powered-race.events.race.started.v1"])
    ]
    assert runners.closed == [listener]
    assert runners.http_calls[0].task_path == "/do/1/startup"


async def test_listen_to_any_filter_evaluates_data_expressions_on_the_data() -> None:
    runners = FakeRunners(
        incoming=[
            event("1", TEMPERATURE, {"temperature": 37}),
            event("2", BPM, {"bpm": 72}),
            event("3", BPM, {"bpm": 120}),
            event("4", TEMPERATURE, {"temperature": 39}),
        ]
    )
    assert await run_example("listen-to-any-filter.yaml", runners) == [{"bpm": 120}]
    assert runners.registered == [("/do/0/callDoctor#1", [BPM, TEMPERATURE])]


async def test_listen_to_any_empty_takes_the_first_event_of_any_type() -> None:
    runners = FakeRunners(incoming=[event("1", "a", 1), event("2", "b", 2)])
    assert await run_example("listen-to-any.yaml", runners) == [1]
    assert runners.registered == [("/do/0/callDoctor#1", [])]


async def test_listen_to_all_needs_one_event_per_filter_in_consumption_order() -> None:
    runners = FakeRunners(
        incoming=[
            event("1", BPM, {"bpm": 130}),
            event("2", BPM, {"bpm": 140}),  # Its filter is already met: not consumed.
            event("3", TEMPERATURE, {"temperature": 36}),  # Filtered out.
            event("4", TEMPERATURE, {"temperature": 40}),
            event("5", TEMPERATURE, {"temperature": 41}),
        ]
    )
    assert await run_example("listen-to-all.yaml", runners) == [{"bpm": 130}, {"temperature": 40}]


async def test_listen_read_envelope_outputs_whole_events() -> None:
    hot = event("t", TEMPERATURE, {"temperature": 40})
    slow = event("b", BPM, {"bpm": 50})
    runners = FakeRunners(incoming=[hot, slow])
    assert await run_example("listen-to-all-read-envelope.yaml", runners) == [hot, slow]


async def test_listen_read_raw_is_base64_of_the_payload() -> None:
    runners = FakeRunners(
        incoming=[
            event("1", "t", {"a": 1}),
            event("2", "t", "hé"),
            {**event("3", "t"), "data_base64": "AAE="},
        ]
    )
    output = await run(
        """
do:
  - l:
      listen:
        to: {any: [], until: "(. | length) == 3"}
        read: raw
""",
        runners=runners,
    )
    assert output == ["eyJhIjoxfQ==", "aMOp", "AAE="]


async def test_listen_until_condition_spec_example_stops_after_four_events() -> None:
    runners = FakeRunners(incoming=[event(str(n), "t", n) for n in range(6)])
    assert await run_example("listen-to-any-until-condition.yaml", runners) == [0, 1, 2, 3]


async def test_listen_until_events_are_not_in_the_output() -> None:
    runners = FakeRunners(
        incoming=[
            event("1", TEMPERATURE, {"temperature": 39}),
            event("2", BPM, {"bpm": 80}),
            event("3", BPM, {"bpm": 55}),
            event("4", CHECKED_OUT, {"patient": 1}),
            event("5", BPM, {"bpm": 30}),
        ]
    )
    output = await run_example("listen-to-any-until-consumed.yaml", runners)
    assert output == [{"temperature": 39}, {"bpm": 55}]
    assert runners.registered == [("/do/0/callDoctor#1", [CHECKED_OUT, BPM, TEMPERATURE])]


async def test_a_filter_without_a_literal_type_registers_every_type() -> None:
    runners = FakeRunners(incoming=[event("1", "x", 1), event("2", "order.placed", 2)])
    output = await run(
        """
do:
  - l:
      listen:
        to: {one: {with: {type: "${ $input.kind }"}}}
""",
        {"kind": "order.placed"},
        runners,
    )
    assert output == [2]  # An expression that returns the attribute's value matches it.
    assert runners.registered == [("/do/0/l#1", [])]


async def test_filters_match_other_attributes_nested_data_and_event_expressions() -> None:
    runners = FakeRunners(
        incoming=[
            event("1", "review", {"decision": "approved", "by": "bo"}, subject="doc-2"),
            event("2", "review", {"decision": "approved", "by": "al"}, subject="doc-1"),
            event("3", "review", {"decision": "rejected"}, subject="doc-1", priority="high"),
        ]
    )
    output = await run(
        """
do:
  - l:
      listen:
        to:
          any:
            - with: {type: review, subject: doc-1, data: {decision: approved}}
            - with: {type: review, priority: "${ . == \\"high\\" and $event.subject == $input.doc }"}
          until: "(. | length) == 2"
""",
        {"doc": "doc-1"},
        runners,
    )
    assert output == [{"decision": "approved", "by": "al"}, {"decision": "rejected"}]


# listen: correlation, dedupe, foreach, timeout


async def test_correlate_with_expect_from_the_task_input() -> None:
    runners = FakeRunners(
        incoming=[
            event("1", "payment", {"order": "o-2", "paid": 5}),
            event("2", "payment", {"order": "o-1", "paid": 9}),
        ]
    )
    output = await run(
        """
do:
  - l:
      listen:
        to:
          one:
            with: {type: payment}
            correlate:
              order: {from: .data.order, expect: "${ .orderId }"}
""",
        {"orderId": "o-1"},
        runners,
    )
    assert output == [{"order": "o-1", "paid": 9}]


async def test_correlate_without_expect_holds_every_event_to_the_first_value() -> None:
    runners = FakeRunners(
        incoming=[
            event("1", "shipped", {"order": "o-1"}),
            event("2", "paid", {"order": "o-2"}),  # Another order: not consumed.
            event("3", "paid", {"order": "o-1"}),
        ]
    )
    output = await run(
        """
do:
  - l:
      listen:
        to:
          all:
            - with: {type: paid}
              correlate: {order: {from: "${ .data.order }"}}
            - with: {type: shipped}
              correlate: {order: {from: .data.order}}
""",
        runners=runners,
    )
    assert output == [{"order": "o-1"}, {"order": "o-1"}]


async def test_correlate_constant_expect_matches_numbers_by_their_text() -> None:
    runners = FakeRunners(incoming=[event("1", "t", {"n": 41}), event("2", "t", {"n": 42})])
    output = await run(
        """
do:
  - l:
      listen:
        to: {one: {with: {type: t}, correlate: {n: {from: .data.n, expect: "42"}}}}
""",
        runners=runners,
    )
    assert output == [{"n": 42}]


async def test_an_event_id_is_consumed_once_per_listener() -> None:
    inbox = EventInbox()
    inbox.open("l")
    assert inbox.deliver(DeliveredEvent("l", event("1", "t", "a"), 1))
    assert not inbox.deliver(DeliveredEvent("l", event("1", "t", "a"), 1))
    assert not inbox.deliver(DeliveredEvent("other", event("2", "t", "b"), 2))
    assert inbox.duplicates == 1
    runners = FakeRunners(
        incoming=[event("1", "t", "a"), event("1", "t", "a"), event("2", "t", "b")]
    )
    output = await run(
        'do: [{l: {listen: {to: {any: [], until: "(. | length) == 2"}}}}]', runners=runners
    )
    assert output == ["a", "b"]


async def test_events_at_or_before_the_registrations_sequence_are_dropped() -> None:
    inbox = EventInbox()
    inbox.open("l")
    # Routed before the registration answered (a router that was behind): kept until then.
    assert inbox.deliver(DeliveredEvent("l", event("old", "t", "a"), 5))
    assert inbox.deliver(DeliveredEvent("l", event("new", "t", "b"), 8))
    # The registration's backlog may come after a signal of a newer event: stream order wins.
    assert inbox.deliver(DeliveredEvent("l", event("backlog", "t", "b"), 6))
    inbox.start_after("l", 5)
    assert not inbox.deliver(DeliveredEvent("l", event("older", "t", "c"), 4))
    assert inbox.deliver(DeliveredEvent("l", event("newer", "t", "d"), 9))
    assert inbox.early == 2
    assert [(await inbox.next("l"))["id"] for _ in range(3)] == ["backlog", "new", "newer"]


async def test_foreach_runs_its_tasks_per_event_with_output_and_export() -> None:
    runners = FakeRunners(incoming=[event(str(n), "t", {"v": n}) for n in range(1, 6)])
    output = await run(
        """
do:
  - l:
      listen:
        to: {any: [], until: "${ ($context.seen | length) == 3 }"}
      foreach:
        item: message
        at: i
        do:
          - double: {set: {v2: "${ $message.v * 2 }", at: "${ $i }", input: "${ . }"}}
        output: {as: "${ .v2 }"}
        export: {as: "${ {seen: (($context.seen // []) + [.])} }"}
""",
        runners=runners,
    )
    assert output == [2, 4, 6]


async def test_foreach_spec_example_posts_each_event() -> None:
    posted: list[Any] = []

    def http(call: Any) -> Any:
        posted.append(call.body)
        if len(posted) == 3:
            raise DslException(errors.DslError(errors.COMMUNICATION, 503, "down", "", "/x"))
        return {}

    runners = FakeRunners(http=http, incoming=[event(str(n), "gossip", n) for n in range(5)])
    with pytest.raises(DslException):
        await run_example("listen-to-any-forever-foreach.yaml", runners)
    assert posted == [{"event": 0}, {"event": 1}, {"event": 2}]
    assert runners.closed == ["/do/0/listenToGossips#1"]  # Unregistered after the failure too.


async def test_a_listen_timeout_is_the_dsl_timeout_error_and_try_catches_it() -> None:
    runners = FakeRunners()
    output = await run(
        """
do:
  - guarded:
      try:
        - approval:
            timeout: {after: {milliseconds: 50}}
            listen: {to: {one: {with: {type: approved}}}}
      catch:
        errors: {with: {type: "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"}}
        as: failure
        do:
          - note: {set: {timedOut: "${ $failure.status }", title: "${ $failure.title }"}}
""",
        runners=runners,
    )
    assert output == {"timedOut": 408, "title": "Task timed out"}
    assert runners.closed == ["/do/0/guarded/try/0/approval#1"]


async def test_listener_ids_are_unique_per_execution_of_a_listen_task() -> None:
    runners = FakeRunners(incoming=[event("1", "t", "x")])
    await run(
        """
do:
  - loop:
      for: {in: "${ [1, 2] }"}
      do:
        - l: {listen: {to: {one: {with: {type: t}}}}}
""",
        runners=runners,
    )
    assert runners.closed == ["/do/0/loop/do/0/l#1", "/do/0/loop/do/0/l#2"]
