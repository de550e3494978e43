"""The flagd sync protocol's generated code is what grpcio-tools makes of the .proto kept beside it.

The currency check (as httpcore's ``unasync --check``): the messages are
generated again, with the tools the tests group pins, into a temporary
directory and compared byte for byte with the committed files. A changed
``.proto``, an edited generated file or a change of tools fails here; the
fix is to regenerate (aioflags/_datasystem/_sources/_flagd/README.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import aioflags

HERE = Path(aioflags.__file__).parent / "_datasystem" / "_sources" / "_flagd"
#: The grpcio-tools release the committed code was made with (README.md there).
TOOLS = "1.72.2"


def test_the_pinned_tools_are_the_ones_that_generated_the_code() -> None:
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    assert f"grpcio-tools **{TOOLS}**" in readme
    assert version("grpcio-tools") == TOOLS, (
        "the tests group pins the grpcio-tools that generated the flagd sync code"
    )


@pytest.mark.slow
def test_the_generated_code_is_current(tmp_path: Path) -> None:
    source = tmp_path / "proto" / "flagd" / "sync" / "v1"
    source.mkdir(parents=True)
    shutil.copy(HERE / "sync.proto", source / "sync.proto")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path / 'proto'}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            "flagd/sync/v1/sync.proto",
        ],
        check=True,
        capture_output=True,
    )
    for name in ("sync_pb2.py", "sync_pb2.pyi"):
        made = (out / "flagd" / "sync" / "v1" / name).read_bytes()
        assert made == (HERE / name).read_bytes(), f"{name} is not current: regenerate"


def test_the_messages_load_and_round_trip_a_sync_context() -> None:
    from aioflags._datasystem._sources._flagd import sync_pb2

    response = sync_pb2.SyncFlagsResponse(flag_configuration='{"flags": {}}')
    assert not response.HasField("sync_context")
    response.sync_context.update({"injectedmetadata": "set", "n": 1})
    again = sync_pb2.SyncFlagsResponse.FromString(response.SerializeToString())
    assert again.HasField("sync_context")
    assert dict(again.sync_context) == {"injectedmetadata": "set", "n": 1.0}
    assert sync_pb2.DESCRIPTOR.name == "flagd/sync/v1/sync.proto"


def test_the_proto_is_flagd_schemas_own_with_its_notice() -> None:
    proto = (HERE / "sync.proto").read_text(encoding="utf-8")
    assert "package flagd.sync.v1;" in proto
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    assert "741a7f8e7dc309a6e3a9c4259edbe52c89488ea9" in readme
    assert "Apache License, Version 2.0" in readme
