"""The client's public seams that the OpenFeature provider and the pytest plugin use.

``status_details``, ``config`` and ``wait_for_status`` on both clients, and
``FlagSnapshot.openfeature_reason``. The last test holds those two modules
to the public API of the client, the snapshot and the context.
"""

from __future__ import annotations

import ast
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import aioflags
from aioflags import Client, Config, Context, DataSystem, ProviderStatus
from aioflags.blocking import Client as BlockingClient
from aioflags.sources import Update
from aioflags.testing import FlagData, clause
from tests.sources import Scripted, put, valid

USER = Context.create("u1", attributes={"email": "u1@example.com"})


def details_of(client: Client) -> aioflags.EventDetails | None:
    # A call, not the property: mypy would narrow the property for good.
    return client.status_details


@pytest.mark.asyncio
async def test_status_details_config_and_wait_for_status() -> None:
    sync = Scripted[Update]("sync")
    config = Config(
        "k",
        data_system=DataSystem.custom(synchronizers=[sync]),
        send_events=False,
        ready_timeout=0.01,
    )
    client = Client(config)
    assert client.config is config
    assert details_of(client) is None  # NOT_READY, as constructed
    with pytest.raises(ValueError, match="at least one"):
        await client.wait_for_status()
    with pytest.raises(TypeError, match="ProviderStatus values, got 'READY'"):
        await client.wait_for_status("READY")  # type: ignore[arg-type]
    async with client:
        # Not ready in time: ERROR, and the details say why.
        assert client.status is ProviderStatus.ERROR
        details = details_of(client)
        assert details is not None
        assert (details.status, details.error_code) == (
            ProviderStatus.ERROR,
            "PROVIDER_NOT_READY",
        )
        # Already one of those asked: returns at once.
        assert (
            await client.wait_for_status(ProviderStatus.ERROR, ProviderStatus.FATAL)
            is ProviderStatus.ERROR
        )
        got: list[ProviderStatus] = []
        with anyio.fail_after(30):  # a guard, not a timing
            async with anyio.create_task_group() as tg:

                async def waiter() -> None:
                    got.append(await client.wait_for_status(ProviderStatus.READY))

                tg.start_soon(waiter)
                await anyio.lowlevel.checkpoint()
                assert got == []  # still ERROR: it waits
                await sync.put(valid(put("a")))
        assert got == [ProviderStatus.READY]
        ready = details_of(client)
        assert ready is not None
        assert ready.status is ProviderStatus.READY
        assert ready.seq > details.seq
    assert details_of(client) is None  # closed: NOT_READY again


def test_a_wait_ended_on_one_event_loop_leaves_the_next_loop_free() -> None:
    # A client outlives event loops (tests, scripts calling asyncio.run twice):
    # an abandoned wait must not tie the next wait to the old loop.
    client = Client(Config("k", offline=True))

    async def wait_briefly() -> bool:
        async with client:  # READY: a wait for ERROR is abandoned
            with anyio.move_on_after(0.01) as scope:
                await client.wait_for_status(ProviderStatus.ERROR)
        return scope.cancelled_caught

    assert anyio.run(wait_briefly) is True  # the wait timed out
    assert anyio.run(wait_briefly) is True  # not "bound to a different loop"

    async def started() -> ProviderStatus:
        async with client:
            return await client.wait_for_status(ProviderStatus.READY)

    assert anyio.run(started) is ProviderStatus.READY


def test_the_blocking_client_shows_the_same_seams() -> None:
    data = FlagData()
    data.update(data.flag("f").value_for_all(True))
    config = Config("k", data_system=data.data_system(), send_events=False)
    with BlockingClient(config) as client:
        assert client.config is config
        assert isinstance(client.async_client, Client)
        assert client.async_client.config is config
        details = client.status_details
        assert details is not None
        assert details.status is ProviderStatus.READY is client.status


def _snapshot_of(data: FlagData) -> aioflags.FlagSnapshot:
    snapshots: list[aioflags.FlagSnapshot] = []

    async def main() -> None:
        config = Config("k", data_system=data.data_system(), send_events=False)
        async with Client(config) as client:
            snapshots.append(client.snapshot())

    anyio.run(main)
    return snapshots[0]


def test_openfeature_reason_classifies_every_reason_kind() -> None:
    data = FlagData()
    data.update(
        data.flag("off").off(),
        data.flag("static").value_for_all("same"),
        data.flag("target").variations("x", "y").target("y", "u1"),
        data.flag("rule").rule(clause("email", "endsWith", "@example.com"), serve=True),
        data.flag("split-rule")
        .variations("a", "b")
        .rule(clause("key", "in", "u1"), rollout={"a": 100}),
        data.flag("split")
        .variations("red", "green")
        .fallthrough_rollout({"red": 50, "green": 50}),
        data.flag("targeted-default").variations("x", "y").target("y", "other"),
        data.flag("prereq").prerequisite("off", True).fallthrough(True),
    )
    snapshot = _snapshot_of(data)
    expected = {
        "off": "DISABLED",
        "static": "STATIC",
        "target": "TARGETING_MATCH",
        "rule": "TARGETING_MATCH",
        "split-rule": "SPLIT",
        "split": "SPLIT",
        "targeted-default": "DEFAULT",
        "prereq": "PREREQUISITE_FAILED",
        "missing": "ERROR",
    }
    got = {
        key: snapshot.openfeature_reason(
            key, snapshot.variation_detail(key, USER, None)
        )
        for key in expected
    }
    assert got == expected


#: The blocking client's hooks for running a provider on its thread: one
#: release, one package, not a seam an application sees.
_FRIENDS = frozenset({"_over", "_call_async", "_spawn"})


@pytest.mark.parametrize("module", ["openfeature.py", "pytest_plugin.py"])
def test_integrations_use_only_public_seams(module: str) -> None:
    """No private attribute of anything but ``self`` (and the friends above)."""
    tree = ast.parse((Path(aioflags.__file__).parent / module).read_text("utf-8"))
    private = sorted(
        {
            f"{ast.unparse(node.value)}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            )
            and node.attr not in _FRIENDS
        }
    )
    assert private == []


def test_the_blocking_client_reaches_the_async_client_by_public_names_alone() -> None:
    """``aioflags.blocking.Client`` evaluates through ``client.snapshot()`` (issue 87).

    No private attribute of the async client it runs (``self._client``):
    what it needs of it beyond the public API, it gets from functions of
    the client's module (``hosted``, ``own_tracker``).
    """
    path = Path(aioflags.__file__).parent / "_client" / "_blocking.py"
    tree = ast.parse(path.read_text("utf-8"))
    reached = sorted(
        {
            f"{ast.unparse(node.value)}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and ast.unparse(node.value) == "self._client"
            and node.attr.startswith("_")
        }
    )
    assert reached == []
