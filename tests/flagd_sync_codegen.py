"""Regenerate flagd's sync messages: grpcio-tools' protoc, then one post-processing step.

    python -m tests.flagd_sync_codegen

protoc's output registers ``flagd/sync/v1/sync.proto`` in protobuf's default
descriptor pool, where flagd's own providers register the same file:
importing both in one process fails ("duplicate symbol"). aioflags' copy
is built in a private pool instead (:func:`private_pool`): gRPC's method
paths are plain strings, so nothing else needs the default pool.
``tests/test_flagd_generated.py`` runs :func:`generate` into a temporary
directory and compares byte for byte (aioflags/_systems/_flagd/_sync/README.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = (
    Path(__file__).resolve().parent.parent
    / "aioflags"
    / "_systems"
    / "_flagd"
    / "_sync"
)
NAMES = ("sync_pb2.py", "sync_pb2.pyi")

#: protoc's registration in the default pool (exactly one line of its output).
DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
PRIVATE_POOL = (
    "# aioflags: a private descriptor pool, not protobuf's default one, where\n"
    "# flagd's own providers register the same file (tests/flagd_sync_codegen.py).\n"
    "_pool = _descriptor_pool.DescriptorPool()\n"
    "_pool.AddSerializedFile(google_dot_protobuf_dot_struct__pb2.DESCRIPTOR.serialized_pb)\n"
    "DESCRIPTOR = _pool.AddSerializedFile("
)


def private_pool(source: str) -> str:
    """protoc's ``sync_pb2.py`` with its file added to a private pool (struct.proto with it)."""
    if source.count(DEFAULT_POOL) != 1:
        raise ValueError("protoc's output no longer registers its file as expected")
    return source.replace(DEFAULT_POOL, PRIVATE_POOL)


def generate(out: Path) -> dict[str, bytes]:
    """The generated files' bytes, by name, made in ``out`` from the committed ``sync.proto``."""
    source = out / "proto" / "flagd" / "sync" / "v1"
    source.mkdir(parents=True)
    shutil.copy(HERE / "sync.proto", source / "sync.proto")
    made = out / "out"
    made.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{out / 'proto'}",
            f"--python_out={made}",
            f"--pyi_out={made}",
            "flagd/sync/v1/sync.proto",
        ],
        check=True,
        capture_output=True,
    )
    files = {
        name: (made / "flagd" / "sync" / "v1" / name).read_bytes() for name in NAMES
    }
    files["sync_pb2.py"] = private_pool(files["sync_pb2.py"].decode("utf-8")).encode(
        "utf-8"
    )
    return files


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in generate(Path(tmp)).items():
            (HERE / name).write_bytes(content)


if __name__ == "__main__":
    main()
