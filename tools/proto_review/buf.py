"""Runs the `buf` binary from the buf-bin wheel: builds descriptor sets and checks breaking changes."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

from google.protobuf import descriptor_pb2

BUF_ENV_VAR = "STIGMER_BUF"
# The proto root inside the repository.
PROTO_DIR = "apis"
# Stands for the working tree (uncommitted changes included) where a git ref is expected.
WORKTREE = "WORKTREE"


class BufError(Exception):
    """buf could not be found or failed to build an input."""


def find_buf() -> pathlib.Path:
    override = os.environ.get(BUF_ENV_VAR)
    if override:
        return pathlib.Path(override)
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        distribution = importlib.metadata.distribution("buf-bin")
        for file in distribution.files or []:
            if file.name == "buf":
                path = pathlib.Path(str(distribution.locate_file(file))).resolve()
                if path.is_file():
                    return path
    on_path = shutil.which("buf")
    if on_path:
        return pathlib.Path(on_path)
    raise BufError(f"buf not found: install the buf-bin package or set {BUF_ENV_VAR}")


def buf_input(repo: pathlib.Path, ref: str) -> str:
    """The buf input for the protos at a git ref (or the working tree)."""
    if ref == WORKTREE:
        return str(repo / PROTO_DIR)
    return f"{repo / '.git'}#ref={ref},subdir={PROTO_DIR}"


def build(repo: pathlib.Path, ref: str) -> descriptor_pb2.FileDescriptorSet:
    """The descriptors of every proto file of the repo at `ref`, without their imports."""
    with tempfile.TemporaryDirectory(prefix="proto-review-") as tmp:
        output = pathlib.Path(tmp) / "image.binpb"
        result = subprocess.run(
            [
                str(find_buf()),
                "build",
                buf_input(repo, ref),
                "--exclude-imports",
                "--as-file-descriptor-set",
                "-o",
                str(output),
            ],
            capture_output=True,
            text=True,
            cwd=repo,
        )
        if result.returncode != 0:
            raise BufError(f"buf build at {ref} failed: {result.stderr.strip()}")
        return descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())


@dataclasses.dataclass(frozen=True)
class BufBreakingFinding:
    """One finding of `buf breaking` (its FILE rules)."""

    path: str
    line: int
    rule: str
    message: str


def breaking(repo: pathlib.Path, base: str, head: str) -> list[BufBreakingFinding]:
    """buf's own breaking-change check of `head` against `base`, with the rules in buf.yaml."""
    result = subprocess.run(
        [
            str(find_buf()),
            "breaking",
            buf_input(repo, head),
            "--against",
            buf_input(repo, base),
            "--error-format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=repo,
    )
    findings = []
    for line in result.stdout.splitlines():
        if line.strip():
            item = json.loads(line)
            findings.append(
                BufBreakingFinding(
                    # buf names files from the repo root; descriptors, from the proto root.
                    path=item.get("path", "").removeprefix(f"{PROTO_DIR}/"),
                    line=int(item.get("start_line", 0)),
                    rule=item.get("type", ""),
                    message=item.get("message", ""),
                )
            )
    if result.returncode != 0 and not findings:
        raise BufError(f"buf breaking failed: {result.stderr.strip()}")
    return findings
