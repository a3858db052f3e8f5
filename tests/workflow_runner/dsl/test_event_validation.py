"""Validation of `emit`, `listen` and `schedule`: the specification's examples pass, mistakes are
reported with their path."""

from __future__ import annotations

import pathlib

import pytest

from backend.workflow_runner.dsl import loader

SPEC_EXAMPLES = pathlib.Path(__file__).parent.parent / "spec_examples"
HEADER = "document: {dsl: 1.0.0, namespace: test, name: t, version: '1'}\n"


@pytest.mark.parametrize("name", sorted(path.name for path in SPEC_EXAMPLES.glob("*.yaml")))
def test_every_emit_listen_and_schedule_example_of_the_specification_is_valid(name: str) -> None:
    loader.load_file(SPEC_EXAMPLES / name)


def test_yaml_on_is_a_key_not_a_boolean() -> None:
    # YAML 1.1 reads `on:` as True; the specification's `schedule.on` needs YAML 1.2.
    document = loader.load_file(SPEC_EXAMPLES / "schedule-event-driven.yaml")
    assert "on" in document["schedule"]
    assert loader.parse("a: yes\nb: off\nc: true") == {"a": "yes", "b": "off", "c": True}


def problems(text: str) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in loader.validate(loader.parse(HEADER + text))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "do: [{l: {listen: {to: {one: {with: {type: a}}, any: []}}}}]",
            ("/do/0/l/listen/to", "needs exactly one of one, any, all (found: one, any)"),
        ),
        (
            "do: [{l: {listen: {to: {one: {with: {type: a}}, until: 'true'}}}}]",
            ("/do/0/l/listen/to/until", "`until` applies only to `any`, not to `one`"),
        ),
        (
            "do: [{l: {listen: {to: {any: [], until: {any: [], until: 'true'}}}}}]",
            (
                "/do/0/l/listen/to/until/until",
                "the events of an `until` cannot have an `until` of their own",
            ),
        ),
        (
            "do: [{l: {listen: {to: {any: [], until: '${ .x + }'}}}}]",
            ("/do/0/l/listen/to/until", "invalid expression"),
        ),
        (
            "do: [{l: {listen: {to: {one: {with: {}}}}}}]",
            ("/do/0/l/listen/to/one/with", "{} should be non-empty"),
        ),
        (
            "do: [{l: {listen: {to: {any: []}, read: body}}}]",
            ("/do/0/l/listen/read", "'body' is not one of ['data', 'envelope', 'raw']"),
        ),
        (
            "do: [{l: {listen: {to: {one: {with: {type: a}, correlate: {k: {expect: x}}}}}}}]",
            ("/do/0/l/listen/to/one/correlate/k", "'from' is a required property"),
        ),
        (
            "do: [{l: {listen: {to: {one: {with: {type: a}, correlate: {k: {from: '.a +'}}}}}}}]",
            ("/do/0/l/listen/to/one/correlate/k/from", "invalid expression"),
        ),
        (
            "do: [{l: {listen: {to: {any: []}}, foreach: {item: e, do: [{s: {set: {x: '${ $nope }'}}}]}}}]",
            ("/do/0/l/foreach/do/0/s/set/x", "invalid expression"),
        ),
        (
            "do: [{e: {emit: {event: {with: {type: t}}}}}]",
            ("/do/0/e/emit/event/with", "'source' is a required property"),
        ),
        (
            "do: [{e: {emit: {event: {with: {source: s, type: t, Tenant: x}}}}}]",
            ("/do/0/e/emit/event/with/Tenant", "extension attribute 'Tenant'"),
        ),
        (
            "do: [{e: {emit: {event: {with: {source: s, type: t, time: yesterday}}}}}]",
            ("/do/0/e/emit/event/with/time", "time 'yesterday' is not an RFC 3339 date-time"),
        ),
        (
            "do: [{e: {emit: {event: {with: {source: s, type: t, specversion: '0.3'}}}}}]",
            ("/do/0/e/emit/event/with/specversion", "specversion must be '1.0'"),
        ),
        (
            "schedule: {every: PT1M, cron: '* * * * *'}\ndo: [{s: {set: {}}}]",
            ("/schedule", "needs exactly one of every, cron, after, on (found: every, cron)"),
        ),
        (
            "schedule: {cron: 'every day'}\ndo: [{s: {set: {}}}]",
            ("/schedule/cron", "'every day' is not a cron expression of 5 fields"),
        ),
        (
            "schedule: {after: soon}\ndo: [{s: {set: {}}}]",
            ("/schedule/after", "soon"),
        ),
        (
            "schedule: {on: {all: [{with: {type: a}}], until: 'true'}}\ndo: [{s: {set: {}}}]",
            ("/schedule/on/until", "`until` applies only to `any`, not to `all`"),
        ),
        (
            "schedule: {at: noon}\ndo: [{s: {set: {}}}]",
            ("/schedule", "Additional properties are not allowed ('at' was unexpected)"),
        ),
    ],
)
def test_event_mistakes_are_reported_with_their_path(text: str, expected: tuple[str, str]) -> None:
    found = problems(text)
    path, message = expected
    assert any(p == path and message in m for p, m in found), found


def test_foreach_variables_and_event_in_filters_are_known() -> None:
    assert (
        problems(
            """
do:
  - l:
      listen:
        to:
          any:
            - with: {source: "${ . == $event.source and $input.ok }"}
              correlate: {k: {from: "${ $event.id }", expect: "${ .k }"}}
          until: "${ length > 1 }"
      foreach:
        item: e
        at: n
        do: [{s: {set: {x: "${ $e }", y: "${ $n }"}}}]
        output: {as: "${ $e }"}
        export: {as: "${ $n }"}
"""
        )
        == []
    )
