"""The flagd sync protocol's generated code is what grpcio-tools makes of the .proto kept beside it.

The currency check (as httpcore's ``unasync --check``): the messages are
generated again, with the tools the tests group pins, into a temporary
directory, post-processed as the committed ones were (a private descriptor
pool: tests/flagd_sync_codegen.py, the same code) and compared byte for
byte with the committed files. A changed ``.proto``, an edited generated
file, a changed post-processing or a change of tools fails here; the fix is
to regenerate (aioflags/_systems/_flagd/_sync/README.md).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

import aioflags
from tests.flagd_sync_codegen import DEFAULT_POOL, generate, private_pool

HERE = Path(aioflags.__file__).parent / "_systems" / "_flagd" / "_sync"
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
    for name, made in generate(tmp_path).items():
        assert made == (HERE / name).read_bytes(), f"{name} is not current: regenerate"


def test_the_post_processing_moves_protoc_s_one_registration() -> None:
    made = private_pool(f"x = 1\n{DEFAULT_POOL}b'...')\n")
    assert "Default()" not in made
    assert made.endswith("DESCRIPTOR = _pool.AddSerializedFile(b'...')\n")
    with pytest.raises(ValueError, match="no longer registers"):
        private_pool("DESCRIPTOR = something_else()\n")


#: A process with flagd's own generated module (its provider's
#: ``openfeature/schemas/protobuf/flagd/sync/v1/sync.proto``: the same
#: ``flagd.sync.v1`` names under another file name) and aioflags'.
BESIDE_FLAGD = textwrap.dedent(
    """
    import sys
    from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message_factory import GetMessageClass

    def theirs():
        proto = descriptor_pb2.FileDescriptorProto.FromString(SERIALIZED)
        proto.name = "openfeature/schemas/protobuf/flagd/sync/v1/sync.proto"
        pool = descriptor_pool.Default()
        pool.AddSerializedFile(proto.SerializeToString())
        return GetMessageClass(
            pool.FindMessageTypeByName("flagd.sync.v1.SyncFlagsResponse")
        )

    if sys.argv[1] == "theirs-first":
        Theirs = theirs()
    from aioflags._systems._flagd._sync import sync_pb2
    if sys.argv[1] == "ours-first":
        Theirs = theirs()
    sent = Theirs(flag_configuration='{"flags": {}}')
    sent.sync_context.update({"injectedmetadata": "set"})
    got = sync_pb2.SyncFlagsResponse.FromString(sent.SerializeToString())
    assert MessageToDict(got) == {
        "flagConfiguration": '{"flags": {}}',
        "syncContext": {"injectedmetadata": "set"},
    }, MessageToDict(got)
    back = Theirs.FromString(got.SerializeToString())
    assert back.flag_configuration == '{"flags": {}}'
    # Nothing of aioflags' in the default pool: the names are flagd's.
    found = descriptor_pool.Default().FindMessageTypeByName(
        "flagd.sync.v1.SyncFlagsResponse"
    )
    assert found.file.name.startswith("openfeature/"), found.file.name
    print("both")
    """
)


@pytest.mark.parametrize("order", ["theirs-first", "ours-first"])
def test_the_messages_live_beside_flagd_s_own_in_one_process(order: str) -> None:
    # flagd's provider registers flagd.sync.v1 in protobuf's default pool:
    # aioflags' messages, in a pool of their own, do not collide with it
    # (before, either import after the other failed: "duplicate symbol").
    from aioflags._systems._flagd._sync import sync_pb2

    serialized = sync_pb2.DESCRIPTOR.serialized_pb
    code = f"SERIALIZED = {serialized!r}\n{BESIDE_FLAGD}"
    done = subprocess.run(
        [sys.executable, "-c", code, order],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "both"


def test_the_messages_load_and_round_trip_a_sync_context() -> None:
    from aioflags._systems._flagd._sync import sync_pb2

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
