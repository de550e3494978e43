"""Client: the SDK's face. Owns the data system's task group and the HTTP client.

Lifecycle (docs/lifecycle.md): ``Client(config)`` does no I/O and needs no
event loop (construct before fork, start per worker). ``async with client``
starts the data system and waits up to ``ready_timeout`` for READY, ERROR or
FATAL, never raising because the network is bad. ``aclose()`` is idempotent,
bounded and callable from any task, the client's own handlers included.

One explicit state machine::

    IDLE ──async with──► STARTING ──first status──► RUNNING
      ▲                     │ cancelled / aclose()     │ aclose() / block exits
      └──── (bounded) ◄── CLOSING ◄────────────────────┘

IDLE covers "constructed" and "closed": a closed client can be started again
unless it is FATAL. After close the status is NOT_READY (FATAL stays FATAL)
and evaluations return the default with ``CLIENT_NOT_READY``: they agree.

Structure: ``async with`` opens a :func:`background_group` around the caller's
block (so the caller's own exceptions leave it unwrapped) with one *runner*
task in it, per start. The runner owns an inner task group where all
background work runs (the supervisor, event delivery, timers), inside a cancel
scope that ``aclose()`` cancels; nothing the runner does can raise into the
caller. A fork is noticed in the child (``os.register_at_fork``): the parent's
run is dropped there, a warning is logged on first use, and the next
``async with`` starts afresh with a new instance id and reseeded jitter.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import hashlib
import hmac
import logging
import os
import random as _random
import ssl
import uuid
import weakref
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, cast, final

import anyio

from ._clock import Clock, MonotonicClock
from ._config import Config
from ._datasystem import DataSystem, SourceContext
from ._events import EventBus, Handler, ProviderEvent, ProviderStatus
from ._exceptions import ClientClosedError, ConfigurationError
from ._http import make_http_client
from ._lifespan import background_group
from ._listeners import FlagValueChange, ValueWatcher, value_changes
from ._status import StatusLayer
from ._store import Store
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    import httpx
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream

    from ._context import Context
    from ._datatypes import DataSourceStatus
    from ._json import JSONValue
    from ._results import EvaluationDetail, FlagsState
    from ._snapshot import FlagSnapshot

__all__ = ["Client"]

logger = logging.getLogger("aioflags")
_CLOSE_BOUND: Final = 1.0  # seconds aclose() may spend closing connections and tasks

#: Set in every task the client runs (inherited by the tasks they start): lets
#: ``aclose()`` know it was called from the client's own work, e.g. a handler.
_OWN_TASK: Final[contextvars.ContextVar[object]] = contextvars.ContextVar(
    "aioflags_client_task", default=None
)
_LIVE_CLIENTS: Final[weakref.WeakSet[Client]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


async def _in_thread(func: Callable[[], object]) -> None:
    """Run ``func`` on a worker thread (a seam for tests).

    Building an httpx client loads the CA bundle: 25-150 ms of blocking file
    and TLS work, so it is done on a worker thread, not on the loop.
    """
    await anyio.to_thread.run_sync(func)


class _Phase(enum.Enum):
    """Where the client is in its life (see the module docstring)."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"


class _Run:
    """One start of the data system: its cancel scope and its end."""

    __slots__ = ("done", "live", "scope")

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.live = False  # the runner task has begun (so ``done`` will be set)


class _ForkedStore:
    """Stands in for the store of a client forked while running: warns on first use.

    Only ``snapshot`` is read before the next start replaces it; reading it is
    an evaluation in the child, which warns once and then sees an empty store.
    """

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def snapshot(self) -> FlagSnapshot:
        client = self._client
        client._warn_forked()
        return client._store.snapshot


@final
class Client:
    """The aioflags client: ``async with aioflags.Client(config) as client: ...``.

    Args:
        config: the configuration.
        clock: the clock for retries, failover and the grace period (tests pass
            ``aioflags.testing.FakeClock``).
        random: the random source for backoff jitter (a fresh one, reseeded
            in a forked child, by default).

    Evaluation methods never raise for bad data, a missing flag, a wrong type,
    an invalid context or a client that is not ready: they return the default
    with an ``ERROR`` reason.

    Added in version 0.1.0.
    """

    __slots__ = (
        "__weakref__",
        "_bus",
        "_clock",
        "_config",
        "_forked_from",
        "_http",
        "_inner",
        "_instance_id",
        "_own_random",
        "_phase",
        "_pid",
        "_random",
        "_run",
        "_span",
        "_span_task",
        "_status_layer",
        "_store",
        "_supervisor",
        "_tg",
    )

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        random: _random.Random | None = None,
    ) -> None:
        if not isinstance(config, Config):
            raise ConfigurationError(f"Client takes an aioflags.Config, got {config!r}")
        system = config.data_system
        if system is None and not config.offline and config.sdk_key is None:
            raise ConfigurationError(
                "an sdk_key is required to connect to the flag service "
                "(or use offline=True, or a data system that needs none such as DataSystem.file)"
            )
        self._config = config
        self._clock: Clock = clock or MonotonicClock()
        self._own_random = random is None
        self._random = random or _random.Random()
        self._instance_id = config.instance_id or str(uuid.uuid4())
        self._bus = EventBus()
        self._store = Store()
        self._phase = _Phase.IDLE
        self._pid = os.getpid()
        self._forked_from: int | None = None
        self._span: AbstractAsyncContextManager[TaskGroup] | None = None
        self._span_task: int | None = None
        self._tg: TaskGroup | None = None
        self._inner: TaskGroup | None = None
        self._run: _Run | None = None
        self._http: httpx.AsyncClient | None = None
        self._status_layer: StatusLayer | None = None
        self._supervisor: Supervisor | None = None
        _LIVE_CLIENTS.add(self)

    # ------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Client:
        self._warn_forked()
        if self._bus.status is ProviderStatus.FATAL:
            raise ClientClosedError(
                "this client is FATAL (e.g. an invalid SDK key): create a new one"
            )
        if self._phase is not _Phase.IDLE:
            raise RuntimeError(
                "this client is already started: use one `async with client:` "
                "at a time (aclose() it, or leave the block, before starting it again)"
            )
        task = anyio.get_current_task().id
        if self._span is not None and self._span_task != task:
            raise RuntimeError(
                "this client's `async with` block is still open in another task: "
                "leave it there before starting the client here"
            )
        self._phase = _Phase.STARTING  # claimed before the first await
        entered = None
        try:
            if self._span is None:
                entered = background_group(self._stop)
                self._tg = await entered.__aenter__()
                self._span, self._span_task = entered, task
            await self._start()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._stop()
            if entered is not None and self._span is entered:
                self._span = self._span_task = self._tg = None
                await entered.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        span, self._span = self._span, None
        self._span_task = self._tg = None
        if span is None:  # closed and forgotten (a fork), or exited twice
            await self.aclose()
            return None
        return await span.__aexit__(exc_type, exc, tb)

    async def _start(self) -> None:
        """Start one run in the open span and wait for its first status."""
        run = _Run()
        self._run = run
        self._store = Store()
        self._bus.reset()
        self._pid = os.getpid()
        self._status_layer = StatusLayer(
            self._bus, self._store, self._clock, self._config.grace_period, self._spawn
        )
        assert self._tg is not None
        self._tg.start_soon(self._runner, run, name="aioflags client")
        timeout = self._config.ready_timeout
        with anyio.move_on_after(timeout):
            await self._bus.wait_status(
                lambda s: s is not ProviderStatus.NOT_READY or run.done.is_set()
            )
        if self._run is not run:  # closed meanwhile (by a handler, say)
            return
        layer = self._status_layer
        if self._bus.status is ProviderStatus.NOT_READY and layer is not None:
            layer.ready_timed_out(timeout)
        self._phase = _Phase.RUNNING

    async def _stop(self) -> None:
        """Cancel the current run and wait for it, within ``_CLOSE_BOUND`` seconds.

        Then NOT_READY (FATAL stays FATAL) and an empty store, even if the run
        had already ended by itself (a crash leaves ERROR until closed).
        """
        run = self._run
        if run is not None:
            self._phase = _Phase.CLOSING
            run.scope.cancel()
            if run.live:
                with anyio.move_on_after(_CLOSE_BOUND, shield=True):
                    await run.done.wait()
            self._finish(run)
        self._reset()

    def _finish(self, run: _Run) -> None:
        """The run has ended: back to IDLE; if it was asked to stop, reset too."""
        if self._run is not run:
            return
        self._run = None
        self._phase = _Phase.IDLE
        if run.scope.cancel_called:
            self._reset()

    def _reset(self) -> None:
        """Status and evaluations agree: NOT_READY and CLIENT_NOT_READY."""
        self._store = Store()
        self._bus.reset()

    async def _runner(self, run: _Run) -> None:
        run.live = True
        _OWN_TASK.set(self)
        try:
            with run.scope:
                await self._run_data_system()
        except Exception as exc:
            # A bug, not a network fault: the caller's task must not see it.
            logger.exception("The aioflags client failed unexpectedly")
            self._bus.emit(
                ProviderEvent.ERROR,
                error_code="GENERAL",
                message=f"internal error: {exc!r}",
            )
        finally:
            self._http = None
            self._finish(run)
            run.done.set()

    async def _run_data_system(self) -> None:
        config = self._config
        made: list[httpx.AsyncClient] = []
        try:
            try:
                await _in_thread(
                    lambda: made.append(make_http_client(config, self._instance_id))
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                message = (
                    f"cannot set up HTTP: {exc} (check Config.verify and Config.proxy)"
                )
                logger.error("aioflags client %s", message)
                self._bus.emit(
                    ProviderEvent.ERROR, error_code="PROVIDER_FATAL", message=message
                )
                return
            http = self._http = made[0]
            layer = self._status_layer
            assert layer is not None
            async with self._inner_group() as inner:
                if config.offline:
                    self._bus.emit(
                        ProviderEvent.READY,
                        message="offline: evaluations return defaults",
                    )
                    await anyio.sleep_forever()
                store = self._store
                context = SourceContext(
                    selector=lambda: store.selector,
                    http=http,
                    config=config,
                    clock=self._clock,
                    random=self._random,
                )
                system = config.data_system or DataSystem.default()
                self._supervisor = Supervisor(
                    system, store, context, layer, self._clock
                )
                inner.start_soon(self._supervisor.run)
        finally:
            if made:
                with anyio.move_on_after(_CLOSE_BOUND, shield=True):
                    await made[0].aclose()

    @asynccontextmanager
    async def _inner_group(self) -> AsyncIterator[TaskGroup]:
        """The runner's task group, with event delivery attached to it."""
        try:
            async with anyio.create_task_group() as inner:
                self._inner = inner
                self._bus.attach(inner)
                yield inner
        finally:
            self._inner = None
            self._bus.release()

    def _spawn(self, func: Callable[[], Coroutine[object, object, None]]) -> None:
        """Start a status timer in the running inner group (never outside a run)."""
        if self._inner is not None:
            self._inner.start_soon(func)

    async def aclose(self) -> None:
        """Stop the data system, close every connection, leave no task behind.

        Idempotent and bounded: returns within about a second even if the
        server hangs mid-response. Callable from any task; from one of the
        client's own handlers it asks the client to stop and returns at once
        (the handler is then cancelled at its next await). Afterwards the
        status is NOT_READY (FATAL stays FATAL), evaluations return the
        default with ``CLIENT_NOT_READY``, and the client can be started
        again unless it is FATAL.
        """
        self._warn_forked()
        run = self._run
        if run is None:
            return
        if _OWN_TASK.get() is self:
            # Waiting here would wait for this very task: request the stop only.
            self._phase = _Phase.CLOSING
            run.scope.cancel()
            return
        with anyio.CancelScope(shield=True):
            await self._stop()

    # ----------------------------------------------------------------- fork
    def _after_fork(self) -> None:
        """In a forked child: forget the parent's run (its loop, sockets and tasks)."""
        self._instance_id = self._config.instance_id or str(uuid.uuid4())
        if self._own_random:
            self._random = _random.Random()
        if self._run is None and self._span is None:
            return  # constructed or closed before the fork: the supported pattern
        self._forked_from = self._pid
        self._run = None
        self._span = self._span_task = self._tg = None
        self._http = None
        self._status_layer = None
        self._supervisor = None
        self._phase = _Phase.IDLE
        self._bus.after_fork()
        self._store = cast("Store", _ForkedStore(self))

    def _warn_forked(self) -> None:
        parent = self._forked_from
        if parent is None:
            return
        self._forked_from = None
        store: object = self._store  # a _ForkedStore in disguise, until now
        if isinstance(store, _ForkedStore):
            self._store = Store()
        logger.warning(
            "aioflags client was running in process %d when it forked; in this "
            "process (%d) it has no connection and no data (status NOT_READY, "
            "evaluations CLIENT_NOT_READY) until it is started here (`async with "
            "client:`, or start() for an aioflags.blocking.Client). Construct "
            "clients before fork and start them in each worker.",
            parent,
            os.getpid(),
        )

    # ---------------------------------------------------------------- status
    @property
    def status(self) -> ProviderStatus:
        """The current provider status."""
        if self._forked_from is not None:
            self._warn_forked()
        return self._bus.status

    @property
    def data_source_status(self) -> DataSourceStatus | None:
        """The data system's own status (state, since, last error, FDv1 fallback)."""
        return self._status_layer.data_source if self._status_layer else None

    # ASYNC109: the public contract (API.md) names the parameter; a status is
    # returned when it passes, never an exception.
    async def wait_ready(self, timeout: float | None = None) -> ProviderStatus:  # noqa: ASYNC109
        """Wait until the status is READY (or FATAL), up to ``timeout`` seconds.

        Returns the status then; never raises because the network is bad.
        """
        with anyio.move_on_after(timeout):
            await self._bus.wait_status(
                lambda s: s is ProviderStatus.READY or s is ProviderStatus.FATAL
            )
        return self._bus.status

    def add_handler(self, event: ProviderEvent, handler: Handler) -> None:
        """Call ``handler(details)`` (sync or async) for every ``event``, in order.

        If the client is already in the status the event sets, the handler runs
        once at once with the details of the event that set it.
        """
        self._bus.add(event, handler)

    def remove_handler(self, event: ProviderEvent, handler: Handler) -> None:
        """Stop calling ``handler`` for ``event``."""
        self._bus.remove(event, handler)

    # ------------------------------------------------------ change listeners
    def add_flag_change_handler(
        self, handler: Callable[[frozenset[str]], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """Call ``handler(flag_keys)`` whenever flags change; returns a remover.

        The keys include flags changed through segments and prerequisites.
        """
        token = self._bus.add(
            ProviderEvent.CONFIGURATION_CHANGED,
            handler,  # type: ignore[arg-type]  # called with the keys: keys_only
            keys_only=True,
        )
        return functools.partial(self._bus.discard, token)

    def add_flag_value_change_handler(
        self,
        key: str,
        context: Context,
        handler: Callable[[FlagValueChange], Awaitable[None] | None],
        *,
        default: JSONValue = None,
    ) -> Callable[[], None]:
        """Call ``handler(FlagValueChange)`` when ``key``'s value for ``context`` changes.

        The value is evaluated now, then again on each change of that flag;
        the handler runs only when it differs. Returns a remover.
        """
        watcher = ValueWatcher(self.snapshot, key, context, default, handler)
        token = self._bus.add(ProviderEvent.CONFIGURATION_CHANGED, watcher)
        return functools.partial(self._bus.discard, token)

    def flag_value_changes(
        self, key: str, context: Context, *, default: JSONValue = None
    ) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[FlagValueChange]]:
        """Changes as an async iterator: ``async with client.flag_value_changes(k, ctx) as it``."""
        return value_changes(
            lambda push: self.add_flag_value_change_handler(
                key, context, push, default=default
            )
        )

    # ------------------------------------------------------------ evaluation
    def snapshot(self) -> FlagSnapshot:
        """The current immutable snapshot, for sync and request-consistent evaluation."""
        return self._store.snapshot

    async def variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value for ``context``, or ``default``."""
        return self._store.snapshot.variation(key, context, default)

    async def variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """The value, the variation index and the reason."""
        return self._store.snapshot.variation_detail(key, context, default)

    async def bool_variation(
        self, key: str, context: Context | None, default: bool
    ) -> bool:
        """The flag's value if it is a boolean, else ``default`` (WRONG_TYPE)."""
        return self._store.snapshot.bool_variation(key, context, default)

    async def int_variation(
        self, key: str, context: Context | None, default: int
    ) -> int:
        """The flag's value if it is a number (truncated), else ``default``."""
        return self._store.snapshot.int_variation(key, context, default)

    async def float_variation(
        self, key: str, context: Context | None, default: float
    ) -> float:
        """The flag's value if it is a number, else ``default``."""
        return self._store.snapshot.float_variation(key, context, default)

    async def string_variation(
        self, key: str, context: Context | None, default: str
    ) -> str:
        """The flag's value if it is a string, else ``default``."""
        return self._store.snapshot.string_variation(key, context, default)

    async def json_variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value, whatever its JSON type."""
        return self._store.snapshot.json_variation(key, context, default)

    async def bool_variation_detail(
        self, key: str, context: Context | None, default: bool
    ) -> EvaluationDetail[bool]:
        """Like :meth:`bool_variation`, with the index and reason."""
        return self._store.snapshot.bool_variation_detail(key, context, default)

    async def int_variation_detail(
        self, key: str, context: Context | None, default: int
    ) -> EvaluationDetail[int]:
        """Like :meth:`int_variation`, with the index and reason."""
        return self._store.snapshot.int_variation_detail(key, context, default)

    async def float_variation_detail(
        self, key: str, context: Context | None, default: float
    ) -> EvaluationDetail[float]:
        """Like :meth:`float_variation`, with the index and reason."""
        return self._store.snapshot.float_variation_detail(key, context, default)

    async def string_variation_detail(
        self, key: str, context: Context | None, default: str
    ) -> EvaluationDetail[str]:
        """Like :meth:`string_variation`, with the index and reason."""
        return self._store.snapshot.string_variation_detail(key, context, default)

    async def json_variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """Like :meth:`json_variation`, with the index and reason."""
        return self._store.snapshot.json_variation_detail(key, context, default)

    async def all_flags_state(
        self,
        context: Context | None,
        *,
        with_reasons: bool = False,
        client_side_only: bool = False,
        details_only_for_tracked_flags: bool = False,
    ) -> FlagsState:
        """Every flag's value for ``context``, in LaunchDarkly's bootstrap shape."""
        return self._store.snapshot.all_flags_state(
            context,
            with_reasons=with_reasons,
            client_side_only=client_side_only,
            details_only_for_tracked_flags=details_only_for_tracked_flags,
        )

    def secure_mode_hash(self, context: Context) -> str:
        """HMAC-SHA256 of the context's fully-qualified key with the SDK key, in hex."""
        key = (self._config.sdk_key or "").encode()
        return hmac.new(
            key, context.fully_qualified_key.encode(), hashlib.sha256
        ).hexdigest()

    def __repr__(self) -> str:
        return f"<aioflags.Client status={self._bus.status.name}>"
