"""The committed stubs in apis/stubs/python equal what Pants generates from apis/ right now."""

from __future__ import annotations

import pathlib

from tools.stubs import stubs


def test_committed_stubs_equal_a_fresh_generation() -> None:
    generated = stubs.generated_stubs()
    committed = stubs.committed_stubs(pathlib.Path(stubs.COMMITTED_DIR))
    difference = stubs.diff(generated, committed)
    assert difference.clean, (
        "the committed stubs are out of date; run `./pants generate` and commit the result:\n"
        + difference.describe()
    )


def test_every_proto_produces_all_four_stub_kinds() -> None:
    generated = stubs.generated_stubs()
    protos = {path.rsplit("_pb2", 1)[0] for path in generated}
    for proto in sorted(protos):
        kinds = {path[len(proto) :] for path in generated if path.startswith(proto + "_pb2")}
        # Messages-only packages get no gRPC modules; service packages get all four.
        assert {"_pb2.py", "_pb2.pyi"} <= kinds, proto
        if "_pb2_grpc.py" in kinds:
            assert "_pb2_grpc.pyi" in kinds, proto


def test_diff_names_stale_missing_and_extra_files() -> None:
    difference = stubs.diff(
        {"a_pb2.py": b"new", "b_pb2.py": b"same"},
        {"b_pb2.py": b"same", "c_pb2.py": b"old", "a_pb2.py": b"old"},
    )
    assert difference == stubs.StubsDiff(missing=(), extra=("c_pb2.py",), changed=("a_pb2.py",))
    assert "apis/stubs/python/a_pb2.py" in difference.describe()
    assert "apis/stubs/python/c_pb2.py" in difference.describe()
