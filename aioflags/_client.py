"""Client: the SDK's face. Owns the data system's task group and the HTTP client.

Lifecycle: ``Client(config)`` does no I/O and needs no event loop (construct
before fork, start per worker); ``async with client`` starts the data system
and waits up to ``ready_timeout`` for READY, ERROR or FATAL, never raising
because the network is bad; ``aclose()`` is idempotent and bounded.

Structure: ``__aenter__`` opens a task group around the caller's block with a
single *runner* task in it; the runner owns an inner task group where all
background work runs (the supervisor, event consumers, timers). ``aclose()``
cancels only the inner group, never the caller's code.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import random as _random
from typing import TYPE_CHECKING, Final, final

import anyio

from ._analytics._processor import EventProcessor
from ._clock import Clock, MonotonicClock
from ._config import Config
from ._datasystem import DataSystem, SourceContext
from ._events import EventBus, Handler, ProviderEvent, ProviderStatus
from ._exceptions import ClientClosedError, ConfigurationError
from ._http import make_http_client
from ._listeners import FlagValueChange, ValueWatcher, value_changes
from ._status import StatusLayer
from ._store import Store
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    import httpx
    from anyio.abc import TaskGroup, TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream

    from ._context import Context
    from ._datatypes import DataSourceStatus
    from ._events import EventDetails
    from ._json import JSONValue
    from ._results import EvaluationDetail, FlagsState
    from ._snapshot import FlagSnapshot

__all__ = ["Client"]

logger = logging.getLogger("aioflags")
_CLOSE_BOUND: Final = 1.0  # seconds aclose() may spend closing connections and tasks


@final
class Client:
    """The aioflags client: ``async with aioflags.Client(config) as client: ...``.

    Args:
        config: the configuration.
        clock: the clock for retries, failover and the grace period (tests pass
            ``aioflags.testing.FakeClock``).
        random: the random source for backoff jitter.

    Evaluation methods never raise for bad data, a missing flag, a wrong type,
    an invalid context or a client that is not ready: they return the default
    with an ``ERROR`` reason.

    Added in version 0.1.0.
    """

    __slots__ = (
        "_bus",
        "_clock",
        "_closing",
        "_config",
        "_http",
        "_inner",
        "_outer",
        "_pid",
        "_random",
        "_runner_done",
        "_status_layer",
        "_store",
        "_supervisor",
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
        self._random = random or _random.Random()
        self._bus = EventBus()
        self._store = Store()
        self._pid: int | None = None
        self._outer: TaskGroup | None = None
        self._inner: TaskGroup | None = None
        self._http: httpx.AsyncClient | None = None
        self._runner_done: anyio.Event | None = None
        self._status_layer: StatusLayer | None = None
        self._supervisor: Supervisor | None = None
        self._closing = False

    # ------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Client:
        if self._bus.status is ProviderStatus.FATAL:
            raise ClientClosedError(
                "this client is FATAL (e.g. an invalid SDK key): create a new one"
            )
        if self._outer is not None:
            raise RuntimeError("this client is already started")
        pid = os.getpid()
        if self._pid is not None and self._pid != pid:
            logger.warning(
                "aioflags client started in process %d is being started again in process %d "
                "(after a fork): construct it before fork and start it once per worker",
                self._pid,
                pid,
            )
        self._pid = pid
        self._closing = False
        self._store = Store()
        self._bus.reset()
        outer = anyio.create_task_group()
        await outer.__aenter__()
        self._outer = outer
        self._runner_done = anyio.Event()
        try:
            await outer.start(self._runner)
        except BaseException:
            await self._exit_outer(None, None, None)
            raise
        await self._wait_first_status()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return await self._exit_outer(exc_type, exc, tb)

    async def _exit_outer(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        outer, self._outer = self._outer, None
        if outer is None:
            return None
        return await outer.__aexit__(exc_type, exc, tb)

    @contextlib.asynccontextmanager
    async def _inner_group(self) -> AsyncIterator[TaskGroup]:
        """The runner's task group; the event bus lets go of it the moment it exits.

        Between the group's exit and the end of the runner (closing HTTP is
        awaited) a handler added then must not be started in a dead group.
        """
        try:
            async with anyio.create_task_group() as inner:
                yield inner
        finally:
            self._bus.release()

    async def _runner(self, *, task_status: TaskStatus[None]) -> None:
        config = self._config
        try:
            # Building an httpx client loads the CA bundle: 25-150 ms of blocking
            # file and TLS work, so it is done on a worker thread, not the loop.
            http = await anyio.to_thread.run_sync(make_http_client, config)
            async with http, self._inner_group() as inner:
                self._http = http
                self._inner = inner
                self._bus.attach(inner)
                layer = StatusLayer(
                    self._bus,
                    self._store,
                    self._clock,
                    config.grace_period,
                    inner.start_soon,
                )
                self._status_layer = layer
                # -- analytics events: start the processor (it stops with `inner`) --
                if config.events_enabled:
                    processor = EventProcessor(
                        config, http, self._store, self._clock, self._random
                    )
                    await inner.start(processor.run)
                # -- end of analytics events --
                if config.offline:
                    self._bus.emit(
                        ProviderEvent.READY,
                        message="offline: evaluations return defaults",
                    )
                    task_status.started()
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
                await inner.start(self._supervisor.run)
                task_status.started()
        finally:
            self._bus.detach()
            self._inner = None
            self._http = None
            assert self._runner_done is not None
            self._runner_done.set()

    async def _wait_first_status(self) -> None:
        timeout = self._config.ready_timeout
        with anyio.move_on_after(timeout):
            await self._bus.wait_status(lambda s: s is not ProviderStatus.NOT_READY)
        if (
            self._bus.status is ProviderStatus.NOT_READY
            and self._status_layer is not None
        ):
            self._status_layer.ready_timed_out(timeout)

    async def aclose(self) -> None:
        """Stop the data system, close every connection, leave no task behind.

        Idempotent and bounded: returns within about a second even if the
        server hangs mid-response. Afterwards the status is NOT_READY (FATAL
        stays FATAL) and the client can be started again unless it is FATAL.
        """
        if self._closing or self._outer is None:
            return
        self._closing = True
        inner, done = self._inner, self._runner_done
        with anyio.move_on_after(_CLOSE_BOUND, shield=True):
            if inner is not None:
                inner.cancel_scope.cancel()
            if done is not None:
                await done.wait()
        self._bus.reset()
        if self._pid is not None and self._pid != os.getpid():
            logger.warning(
                "aioflags client closed in a different process than the one that started it"
            )

    # ---------------------------------------------------------------- status
    @property
    def status(self) -> ProviderStatus:
        """The current provider status."""
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

        def on_change(details: EventDetails) -> Awaitable[None] | None:
            return handler(details.flags_changed)

        self._bus.add(ProviderEvent.CONFIGURATION_CHANGED, on_change)
        return lambda: self._bus.remove(ProviderEvent.CONFIGURATION_CHANGED, on_change)

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
        self._bus.add(ProviderEvent.CONFIGURATION_CHANGED, watcher)
        return lambda: self._bus.remove(ProviderEvent.CONFIGURATION_CHANGED, watcher)

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

    # ------------------------------------------------------ analytics events
    def track(
        self,
        event_key: str,
        context: Context,
        data: JSONValue = None,
        metric_value: float | None = None,
    ) -> None:
        """Send a custom event (a metric, a conversion) for ``context``.

        Never blocks and never raises: the event is buffered and sent with
        the next flush; bad input is logged and dropped. Does nothing while
        events are off (see ``Config.events_enabled``) or the client is closed.

        Args:
            event_key: the event's key, as the metric in LaunchDarkly names it.
            context: who did it.
            data: any JSON value to attach.
            metric_value: a number, for numeric metrics.

        Added in version 0.1.0.
        """
        events = self._store.events
        if events is not None:
            try:
                events.track(event_key, context, data, metric_value)
            except Exception:  # never raises into the application
                logger.exception("track(%r) failed", event_key)

    def identify(self, context: Context) -> None:
        """Tell LaunchDarkly about ``context`` (an ``identify`` event).

        Never blocks and never raises; does nothing while events are off.

        Added in version 0.1.0.
        """
        events = self._store.events
        if events is not None:
            try:
                events.identify(context)
            except Exception:  # never raises into the application
                logger.exception("identify() failed")

    # ASYNC109: a bound that is part of the contract ("flush is bounded"),
    # as in wait_ready(); nothing is raised when it passes.
    async def flush(self, *, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Send the buffered analytics events now, waiting up to ``timeout`` seconds.

        Returns when the delivery (with its one retry) is over, or at the
        deadline, whichever comes first; never raises because the events
        endpoint is down. Closing the client flushes too.

        Added in version 0.1.0.
        """
        events = self._store.events
        if events is not None:
            await events.flush(timeout)

    def secure_mode_hash(self, context: Context) -> str:
        """HMAC-SHA256 of the context's fully-qualified key with the SDK key, in hex."""
        key = (self._config.sdk_key or "").encode()
        return hmac.new(
            key, context.fully_qualified_key.encode(), hashlib.sha256
        ).hexdigest()

    def __repr__(self) -> str:
        return f"<aioflags.Client status={self._bus.status.name}>"
