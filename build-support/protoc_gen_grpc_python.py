"""A protoc plugin that emits gRPC Python code with the generator inside PyPI's grpcio-tools.

Pants runs a ``grpc_python_plugin`` executable next to protoc. The prebuilt binary it would
download lives on a host this project cannot reach, so the launcher installs this script, with a
shebang pointing at a private interpreter that has ``grpcio-tools``, in its place. The script hands
the request's descriptors to grpcio-tools' embedded protoc and returns what it writes, which is
byte for byte what the upstream plugin of the same version produces.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory(prefix="grpc-plugin-") as tmp:
        root = pathlib.Path(tmp)
        descriptor_set = root / "descriptors.pb"
        descriptor_set.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = root / "out"
        out.mkdir()
        target = f"{request.parameter}:{out}" if request.parameter else str(out)
        exit_code = protoc.main(
            [
                "grpc_tools.protoc",
                f"--descriptor_set_in={descriptor_set}",
                f"--grpc_python_out={target}",
                *request.file_to_generate,
            ]
        )
        if exit_code != 0:
            response.error = f"grpcio-tools protoc exited with {exit_code}"
            return response
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            response.file.add(name=path.relative_to(out).as_posix(), content=path.read_text())
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
