"""``async with client`` entered in one task and left in another (issue 62).

pytest-asyncio runs a yield fixture's setup and its teardown in different
tasks, so a client (or an app whose lifespan holds one) entered in a
fixture is left by another task: on asyncio that works, once the task that
entered has ended, with every guarantee of a block left where it was
entered: nothing left running, no fault in the caller's task, bounded.
While that task still runs, and under trio, the error says why and what
works. docs/testing.md shows these patterns; they are the tests here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request

from aioflags import Client, Config, Context, ProviderStatus
from aioflags.testing import FlagData
from tests.processes import HTTP_GUARD
from tests.test_lifecycle import sdk_tasks

USER = Context.create("user-1")


def data() -> FlagData:
    flags = FlagData()
    flags.update(flags.flag("f").variations("on", "off").fallthrough("on"))
    return flags


# ---------------------------------------------------- a client in a fixture
@pytest_asyncio.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(Config(data_system=data().data_system())) as client:
        yield client


@pytest.mark.asyncio
async def test_a_yield_fixture_enters_and_another_task_leaves(client: Client) -> None:
    assert client.status is ProviderStatus.READY
    assert await client.variation("f", USER, "?") == "on"


# ------------------------------------------------ a FastAPI app's lifespan
def make_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with Client(Config(data_system=data().data_system())) as client:
            yield {"flags": client}

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home(request: Request) -> dict[str, Any]:
        flags: Client = request.state.flags
        return {"f": await flags.variation("f", USER, "?")}

    return app


@pytest_asyncio.fixture
async def lifespan_app() -> AsyncIterator[FastAPI]:
    app = make_app()
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        app.state.flags = state["flags"]
        yield app


@pytest.mark.asyncio
async def test_an_apps_lifespan_in_a_yield_fixture(lifespan_app: FastAPI) -> None:
    client: Client = lifespan_app.state.flags
    assert await client.variation("f", USER, "?") == "on"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = make_app()
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            timeout=HTTP_GUARD, transport=transport, base_url="http://app"
        ) as http:
            yield http


@pytest.mark.asyncio
async def test_asgi_lifespans_lifespan_manager(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.json() == {"f": "on"}


# ------------------------------------------- what leaving elsewhere keeps
@pytest_asyncio.fixture
async def watched() -> AsyncIterator[list[Client]]:
    """The clients of the fixtures that need it, checked once they are torn down."""
    clients: list[Client] = []
    yield clients
    # (torn down after them: they depend on this fixture)
    assert clients
    assert sdk_tasks() == set()  # every task of theirs ended
    for client in clients:
        assert client.status is ProviderStatus.NOT_READY


@pytest_asyncio.fixture
async def left_with_an_error(watched: list[Client]) -> AsyncIterator[Client]:
    client = Client(Config(data_system=data().data_system()))
    watched.append(client)
    await client.__aenter__()
    yield client
    error = KeyError("mine")
    with anyio.fail_after(30):  # bounded
        # not swallowed, not wrapped: the caller raises it on
        assert await client.__aexit__(KeyError, error, None) is False
    # It starts again, in this task, and leaves as usual.
    async with client:
        assert await client.variation("f", USER, "?") == "on"


@pytest.mark.asyncio
async def test_leaving_elsewhere_stops_everything_and_is_bounded(
    left_with_an_error: Client,
) -> None:
    assert sdk_tasks()  # the client runs on after its setup task ended
    assert await left_with_an_error.variation("f", USER, "?") == "on"


@pytest.mark.asyncio
async def test_while_the_entering_task_runs_the_error_says_why() -> None:
    client = Client(Config(data_system=data().data_system()))
    done = anyio.Event()

    async def hold() -> None:
        async with client:
            await done.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        with anyio.fail_after(30):
            while client.status is not ProviderStatus.READY:
                await anyio.lowlevel.checkpoint()
        with pytest.raises(RuntimeError, match="it is still running"):
            await client.__aexit__(None, None, None)
        done.set()
    assert sdk_tasks() == set()


def test_under_trio_the_error_says_why_and_what_works() -> None:
    async def main() -> None:
        client = Client(Config(data_system=data().data_system()))
        async with anyio.create_task_group() as tg:
            await tg.start(_enter_and_report, client)
            with pytest.raises(RuntimeError, match=r"under trio.*pytest-trio"):
                await client.__aexit__(None, None, None)
            await client.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main, backend="trio")


async def _enter_and_report(client: Client, *, task_status: Any) -> None:
    async with client:
        task_status.started()
        await anyio.sleep_forever()
