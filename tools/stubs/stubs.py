"""Compares and syncs the committed typed stubs with the ones Pants generates from `apis/`."""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
import shutil

# The committed copy, relative to the repo root (and to a test sandbox's root).
COMMITTED_DIR = pathlib.PurePosixPath("apis/stubs/python")
# The generated package root: every API package lives under it.
ROOT_PACKAGE = "ai.stigmer"
# What protoc, the gRPC plugin and mypy-protobuf write for each .proto file.
STUB_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


class StubsError(Exception):
    """The generated stubs could not be collected."""


@dataclasses.dataclass(frozen=True)
class StubsDiff:
    """How the committed stubs differ from a fresh generation, by path relative to the stub root."""

    missing: tuple[str, ...]  # generated, not committed
    extra: tuple[str, ...]  # committed, no longer generated
    changed: tuple[str, ...]  # both, with different content

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def describe(self) -> str:
        lines: list[str] = []
        for label, paths in (
            ("stale (differs from a fresh generation)", self.changed),
            ("missing (generated but not committed)", self.missing),
            ("extra (committed but no longer generated)", self.extra),
        ):
            lines.extend(f"{label}: {COMMITTED_DIR / path}" for path in paths)
        return "\n".join(lines)


def _is_stub(path: pathlib.Path) -> bool:
    return path.is_file() and path.name.endswith(STUB_SUFFIXES)


def generated_stubs() -> dict[str, bytes]:
    """Returns the stubs Pants generated into this process' import path, keyed by relative path."""
    package = importlib.import_module(ROOT_PACKAGE)
    found: dict[str, bytes] = {}
    for entry in package.__path__:
        base = pathlib.Path(entry)
        # `ai/stigmer` sits two levels below the import root.
        import_root = base.parent.parent
        for path in sorted(p for p in base.rglob("*") if _is_stub(p)):
            relative = path.relative_to(import_root).as_posix()
            content = path.read_bytes()
            if found.setdefault(relative, content) != content:
                raise StubsError(f"two different generated copies of {relative} on the import path")
    if not found:
        raise StubsError(f"no generated stubs found under the {ROOT_PACKAGE} package")
    return found


def committed_stubs(root: pathlib.Path) -> dict[str, bytes]:
    """Returns the stubs committed under `root`, keyed by path relative to it."""
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(p for p in root.rglob("*") if _is_stub(p))
    }


def diff(generated: dict[str, bytes], committed: dict[str, bytes]) -> StubsDiff:
    return StubsDiff(
        missing=tuple(sorted(generated.keys() - committed.keys())),
        extra=tuple(sorted(committed.keys() - generated.keys())),
        changed=tuple(
            sorted(p for p in generated.keys() & committed.keys() if generated[p] != committed[p])
        ),
    )


def write(generated: dict[str, bytes], root: pathlib.Path) -> StubsDiff:
    """Makes `root` hold exactly the generated stubs; returns what it changed."""
    changes = diff(generated, committed_stubs(root))
    if root.exists():
        shutil.rmtree(root)
    for relative, content in generated.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return changes
