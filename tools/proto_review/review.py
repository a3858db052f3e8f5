"""Builds the review of an API change: what changed, compatibility verdicts, stubs, and the decision."""

from __future__ import annotations

import dataclasses
import pathlib
import re
import subprocess

import yaml

from tools.proto_review import buf
from tools.proto_review.compare import Change, Kind, changed_files, compare

ACKNOWLEDGEMENTS_FILE = "apis/breaking-changes.yaml"
STUBS_DIR = "apis/stubs/python"
STUB_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
_VERSION = re.compile(r"^(?P<stem>.*)\.v(?P<number>\d+)$")


class AcknowledgementsError(Exception):
    """apis/breaking-changes.yaml is malformed."""


@dataclasses.dataclass(frozen=True)
class Review:
    base: str
    head: str
    changed_protos: list[str]
    changes: list[Change]
    buf_findings: list[buf.BufBreakingFinding]
    stubs_changed: list[str]  # stub files the range changes (git), or that differ in the worktree
    stubs_expected: list[str]  # stub files generated from the changed protos
    acknowledged: dict[str, str]  # change id -> reason
    superseded_packages: dict[str, str]  # old package -> the new version that replaces it

    @property
    def wire_compatible(self) -> bool:
        return not any(c.wire_breaking for c in self.changes)

    @property
    def source_compatible(self) -> bool:
        return not any(c.source_breaking for c in self.changes)

    def allowance(self, change: Change) -> str | None:
        """Why a breaking change may land, or None if it may not."""
        if change.id in self.acknowledged:
            return f"acknowledged: {self.acknowledged[change.id]}"
        if change.package in self.superseded_packages:
            return f"superseded by the new package {self.superseded_packages[change.package]}"
        return None

    @property
    def blocking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking and self.allowance(c) is None]

    def buf_allowance(self, finding: buf.BufBreakingFinding) -> str | None:
        """buf's FILE rules are a second opinion on the same changes: a finding is explained when
        our own analysis found a breaking change in that file (judged above), or acknowledged by
        the id `buf:<RULE>:<path>` for what our analysis does not model (options, json names)."""
        key = f"buf:{finding.rule}:{finding.path}"
        if key in self.acknowledged:
            return f"acknowledged: {self.acknowledged[key]}"
        if any(c.breaking and c.file == finding.path for c in self.changes):
            return "explained by the changes above"
        return None

    @property
    def buf_blocking(self) -> list[buf.BufBreakingFinding]:
        return [f for f in self.buf_findings if self.buf_allowance(f) is None]

    @property
    def passed(self) -> bool:
        return not self.blocking and not self.buf_blocking


def stub_paths(proto: str) -> list[str]:
    stem = proto.removesuffix(".proto")
    return [f"{STUBS_DIR}/{stem}{suffix}" for suffix in STUB_SUFFIXES]


def _git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def _stubs_changed(repo: pathlib.Path, base: str, head: str) -> list[str]:
    if head == buf.WORKTREE:
        output = _git(repo, "diff", "--name-only", base, "--", STUBS_DIR)
        output += _git(repo, "ls-files", "--others", "--exclude-standard", "--", STUBS_DIR)
    else:
        output = _git(repo, "diff", "--name-only", base, head, "--", STUBS_DIR)
    return sorted({line for line in output.splitlines() if line})


def load_acknowledgements(repo: pathlib.Path, head: str) -> dict[str, str]:
    """The acknowledged breaking changes recorded at `head`: change id -> reason."""
    try:
        if head == buf.WORKTREE:
            path = repo / ACKNOWLEDGEMENTS_FILE
            text = path.read_text() if path.exists() else ""
        else:
            text = _git(repo, "show", f"{head}:{ACKNOWLEDGEMENTS_FILE}")
    except subprocess.CalledProcessError:
        text = ""
    document = yaml.safe_load(text) or {}
    entries = document.get("acknowledged") or []
    acknowledged: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("id") or not entry.get("reason"):
            raise AcknowledgementsError(
                f"{ACKNOWLEDGEMENTS_FILE}: acknowledged[{index}] needs an `id` and a `reason`"
            )
        acknowledged[str(entry["id"])] = str(entry["reason"])
    return acknowledged


def _superseded(changes: list[Change]) -> dict[str, str]:
    """Old package versions for which the change adds a newer version (foo.v1 -> foo.v2)."""
    added = [c.subject for c in changes if c.element == "package" and c.kind is Kind.ADDED]
    touched = {c.package for c in changes if c.package}
    superseded: dict[str, str] = {}
    for package in touched:
        match = _VERSION.match(package)
        if not match:
            continue
        for new in added:
            new_match = _VERSION.match(new)
            if (
                new_match
                and new_match["stem"] == match["stem"]
                and int(new_match["number"]) > int(match["number"])
            ):
                superseded[package] = new
    return superseded


def review(repo: pathlib.Path, base: str, head: str) -> Review:
    base_set, head_set = buf.build(repo, base), buf.build(repo, head)
    changes = compare(base_set, head_set)
    protos = changed_files(base_set, head_set)
    return Review(
        base=base,
        head=head,
        changed_protos=protos,
        changes=changes,
        buf_findings=buf.breaking(repo, base, head),
        stubs_changed=_stubs_changed(repo, base, head),
        stubs_expected=[path for proto in protos for path in stub_paths(proto)],
        acknowledged=load_acknowledgements(repo, head),
        superseded_packages=_superseded(changes),
    )
