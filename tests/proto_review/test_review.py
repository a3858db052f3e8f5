"""The proto review on a scratch repository: each kind of change is reported and judged."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from tools.proto_review import buf, render
from tools.proto_review.compare import Kind
from tools.proto_review.main import default_base
from tools.proto_review.review import Review, review

BUF_YAML = """\
version: v2
modules:
  - path: .
    excludes: [stubs]
lint:
  use: [STANDARD]
breaking:
  use: [FILE]
"""

WIDGET_V1 = """\
syntax = "proto3";

package acme.widget.v1;

// A widget.
message Widget {
  // Its id.
  string id = 1;
  // Its name.
  string name = 2;
  // Its size.
  int32 size = 3;
}

// Gets a widget.
message GetWidgetRequest {
  // The id.
  string id = 1;
}

// Widgets.
service WidgetService {
  // Gets one.
  rpc GetWidget(GetWidgetRequest) returns (Widget);
}
"""

STUB = "apis/stubs/python/acme/widget/v1/widget_pb2.py"


def _git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def _commit(repo: pathlib.Path, files: dict[str, str], message: str) -> str:
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "test@example.com")
    _git(tmp_path, "config", "user.name", "test")
    _commit(
        tmp_path,
        {
            "apis/buf.yaml": BUF_YAML,
            "apis/acme/widget/v1/widget.proto": WIDGET_V1,
            STUB: "# generated v1\n",
        },
        "v1",
    )
    return tmp_path


def _change(repo: pathlib.Path, new_proto: str, extra: dict[str, str] | None = None) -> Review:
    base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "scratch")
    files = {"apis/acme/widget/v1/widget.proto": new_proto, STUB: "# regenerated\n"}
    head = _commit(repo, files | (extra or {}), "change")
    return review(repo, base, head)


def _only(result: Review, kind: Kind, element: str) -> str:
    found = [c for c in result.changes if c.kind is kind and c.element == element]
    assert len(found) == 1, result.changes
    return found[0].subject


def test_renumbering_a_field_is_wire_breaking_and_fails(repo: pathlib.Path) -> None:
    result = _change(repo, WIDGET_V1.replace("int32 size = 3;", "int32 size = 4;"))
    assert _only(result, Kind.RENUMBERED, "field") == "acme.widget.v1.Widget.size"
    assert not result.wire_compatible
    assert result.buf_findings, "buf's FILE rules should flag it too"
    assert not result.passed
    assert "renumbered" in render.text(result) and "Result: FAIL" in render.text(result)


def test_removing_a_field_fails_and_says_whether_the_number_is_reserved(repo: pathlib.Path) -> None:
    result = _change(repo, WIDGET_V1.replace("  // Its size.\n  int32 size = 3;\n", ""))
    assert _only(result, Kind.REMOVED, "field") == "acme.widget.v1.Widget.size"
    assert not result.wire_compatible and not result.source_compatible
    assert "NOT reserved" in render.text(result)
    assert not result.passed


def test_renaming_a_method_is_reported_as_a_rename_and_fails(repo: pathlib.Path) -> None:
    result = _change(repo, WIDGET_V1.replace("rpc GetWidget(", "rpc FetchWidget("))
    assert _only(result, Kind.RENAMED, "method") == "acme.widget.v1.WidgetService.GetWidget"
    assert "GetWidget -> FetchWidget" in render.text(result)
    assert not result.passed


def test_renaming_a_field_keeps_the_wire_but_breaks_source(repo: pathlib.Path) -> None:
    result = _change(repo, WIDGET_V1.replace("string name = 2;", "string title = 2;"))
    assert _only(result, Kind.RENAMED, "field") == "acme.widget.v1.Widget.name"
    assert result.wire_compatible and not result.source_compatible
    assert not result.passed


def test_adding_a_field_passes_is_listed_and_shows_the_stubs(repo: pathlib.Path) -> None:
    added = WIDGET_V1.replace(
        "  int32 size = 3;\n", "  int32 size = 3;\n  // Its colour.\n  string colour = 4;\n"
    )
    result = _change(repo, added)
    assert _only(result, Kind.ADDED, "field") == "acme.widget.v1.Widget.colour"
    assert result.wire_compatible and result.source_compatible and result.passed
    assert result.changed_protos == ["acme/widget/v1/widget.proto"]
    assert result.stubs_changed == [STUB]
    report = render.text(result)
    assert STUB in report and "Result: PASS" in report
    # The stubs this proto generates but the change did not touch are named as suspicious.
    assert "apis/stubs/python/acme/widget/v1/widget_pb2.pyi" in report
    markdown = render.markdown(result)
    assert "| added | field | `acme.widget.v1.Widget.colour`" in markdown
    assert f"- `{STUB}`" in markdown


def test_an_acknowledged_break_passes(repo: pathlib.Path) -> None:
    acknowledgement = (
        "acknowledged:\n"
        "  - id: 'field-removed:acme.widget.v1.Widget.size'\n"
        "    reason: no client ever set it\n"
    )
    result = _change(
        repo,
        WIDGET_V1.replace("  // Its size.\n  int32 size = 3;\n", "  reserved 3;\n"),
        {"apis/breaking-changes.yaml": acknowledgement},
    )
    assert not result.source_compatible
    assert result.passed, render.text(result)
    assert "acknowledged: no client ever set it" in render.text(result)


def test_a_break_that_comes_with_a_new_package_version_passes(repo: pathlib.Path) -> None:
    v2 = WIDGET_V1.replace("acme.widget.v1", "acme.widget.v2")
    result = _change(
        repo,
        WIDGET_V1.replace("rpc GetWidget(", "rpc FetchWidget("),
        {"apis/acme/widget/v2/widget.proto": v2},
    )
    assert result.superseded_packages == {"acme.widget.v1": "acme.widget.v2"}
    assert result.passed, render.text(result)


def test_a_malformed_acknowledgement_is_an_error(repo: pathlib.Path) -> None:
    from tools.proto_review.review import AcknowledgementsError

    with pytest.raises(AcknowledgementsError, match=r"acknowledged\[0\]"):
        _change(repo, WIDGET_V1, {"apis/breaking-changes.yaml": "acknowledged:\n  - id: x\n"})


def test_default_base_is_the_merge_base_or_the_previous_commit_on_main(
    repo: pathlib.Path,
) -> None:
    first = _git(repo, "rev-parse", "HEAD")
    second = _commit(repo, {"README": "x"}, "second on main")
    assert default_base(repo, "HEAD", "main") == first
    _git(repo, "checkout", "-q", "-b", "feature")
    _commit(repo, {"README": "y"}, "on a branch")
    assert default_base(repo, "HEAD", "main") == second
    assert default_base(repo, buf.WORKTREE, "main") == second
