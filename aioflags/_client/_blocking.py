"""The sync face: :class:`aioflags.blocking.Client`, for code that is not async.

The async :class:`~aioflags.Client` runs on an event loop of its own in one
background thread, started and stopped with anyio's blocking portal: the one
place aioflags runs a thread, because a sync caller forces it.

- **Evaluations never cross threads.** They read the async client's current
  immutable snapshot in the calling thread (the store swaps whole snapshots,
  so a read is one reference), costing what ``client.snapshot().variation()``
  costs, from any number of threads at once.
- **Everything that touches the running client** (starting, closing, adding
  handlers, ``wait_ready``) is handed to the loop thread with ``portal.call``;
  a lock keeps handler registration from racing with the portal starting or
  stopping. Called from the loop thread itself (from a handler), it runs
  there directly; ``close()``, ``start()`` and ``wait_ready()`` refuse there.
- **Start and stop are deterministic.** ``start()`` (or ``with``) starts the
  thread and enters ``async with client`` there, waiting for a first status
  outside the lock; ``close()`` leaves it (bounded, like ``aclose()``),
  stops the portal, which cancels what still waits on the loop (a
  ``wait_ready`` or a ``start()`` in another thread return the status),
  and joins the thread and the loop's worker threads.
- **Fork.** In a forked child the loop thread does not exist: the client
  forgets it, so ``close()`` returns at once and ``start()`` starts afresh.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import sys
import threading
import weakref
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

from anyio.from_thread import start_blocking_portal

from aioflags._core._exceptions import ClientClosedError, ConfigurationError
from aioflags._core._renamed import point_to

from ._client import LAUNCHDARKLY_NAMES, hosted, own_tracker
from ._client import Client as _AsyncClient
from ._config import Config

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from types import TracebackType

    from anyio.from_thread import BlockingPortal

    from aioflags._core._json import JSONValue
    from aioflags._datasystem._datatypes import DataSourceStatus
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._migration import OpTracker, Stage
    from aioflags._evaluation._results import EvaluationDetail, FlagsState
    from aioflags._evaluation._snapshot import FlagSnapshot
    from aioflags._guards._scope import Guards

    from ._events import EventDetails, ProviderEvent, ProviderStatus
    from ._hooks import Hook
    from ._listeners import FlagValueChange
    from ._usage import Usage

__all__ = ["Client"]

T = TypeVar("T")
THREAD_NAME: Final = "aioflags-client"
_LIVE_CLIENTS: Final[weakref.WeakSet[Client]] = weakref.WeakSet()
#: How long close() waits for each of the loop's worker threads to end (they
#: have been told to stop and are idle: they end at once).
_JOIN_BOUND: Final = 5.0


class _Running:
    """One start: the portal, its thread's ident, its loop, and how to undo it all."""

    __slots__ = ("entered", "loop", "portal", "stack", "thread")

    portal: BlockingPortal
    thread: int

    def __init__(self) -> None:
        self.stack = ExitStack()
        self.loop: asyncio.AbstractEventLoop | None = None
        #: ``async with client`` as entered on the loop, once start() is done.
        self.entered: AbstractContextManager[object] | None = None

    def join_workers(self) -> None:
        """After the loop has ended: join its worker threads (see _join_workers)."""
        if self.loop is not None:
            _join_workers(self.loop)

    def close(self) -> None:
        """Leave ``async with client`` (bounded), then stop and join everything.

        If start() is still waiting for the client, stopping the portal
        cancels that wait: the client's start-up is cancelled and cleans up.
        """
        try:
            if self.entered is not None:
                self.entered.__exit__(None, None, None)
        finally:
            self.stack.close()


#: What to do instead of waiting for the client on a running event loop's own
#: thread (the OpenFeature provider refuses there too, in the same words):
#: ``{what}`` is the call, ``{wait}`` how long it could wait, ``{call}`` the
#: method to run on a worker thread and ``{instead}`` how to call it without
#: waiting.
_ON_LOOP: Final = {
    "asyncio": (
        "{what} was called on a running asyncio event loop's own thread, where "
        "waiting {wait} for the aioflags client would block the loop: in async "
        "code use `async with aioflags.Client(config)`; or call it on a worker "
        "thread, `await asyncio.to_thread({call})`; or {instead}"
    ),
    "trio": (
        "{what} was called inside trio.run, where waiting {wait} for the "
        "aioflags client would block trio: in async code use `async with "
        "aioflags.Client(config)`; or call it on a worker thread, `await "
        "trio.to_thread.run_sync({call})`; or {instead}"
    ),
}


#: A sync migrator's operation on a running event loop's own thread: ``{what}``.
_MIGRATOR_ON_LOOP: Final = {
    "asyncio": (
        "{what} was called on a running asyncio event loop's own thread, where "
        "waiting for the migration's origins would block the loop: in async "
        "code build the migrator over an aioflags.Client and `await "
        "migrator.read(...)`; or call it on a worker thread, `await "
        "asyncio.to_thread(migrator.read, ...)`"
    ),
    "trio": (
        "{what} was called inside trio.run, where waiting for the migration's "
        "origins would block trio: in async code build the migrator over an "
        "aioflags.Client and `await migrator.read(...)`; or call it on a "
        "worker thread, `await trio.to_thread.run_sync(migrator.read, ...)`"
    ),
}


def running_library() -> str | None:
    """The async library running in this thread: ``"asyncio"``, ``"trio"`` or ``None``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio = sys.modules.get("trio")  # only if the application uses it
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            return None
        return "trio"
    return None


def _identify() -> tuple[int, asyncio.AbstractEventLoop]:
    """On the loop thread: name it, and say which thread and loop it is."""
    threading.current_thread().name = THREAD_NAME
    # The portal runs the asyncio backend (chosen in start()): its loop is the
    # key to the worker threads that close() joins.
    return threading.get_ident(), asyncio.get_running_loop()


def _stop_portal(portal: BlockingPortal) -> None:
    """Stop the portal, cancelling what still runs on it (a pending wait_ready)."""
    portal.call(portal.stop, True)


def _join_workers(loop: asyncio.AbstractEventLoop) -> None:
    """Join the worker threads of a finished loop, so that no thread outlives close().

    anyio stops the worker threads of ``anyio.to_thread.run_sync`` (the client
    loads its TLS certificates on one) when the loop ends, but does not join
    them; each keeps its loop as ``.loop``.
    """
    for thread in threading.enumerate():
        if getattr(thread, "loop", None) is loop:
            thread.join(_JOIN_BOUND)


def _after_fork_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


@final
class Client:
    """The aioflags client for sync code: ``with aioflags.blocking.Client(config) as client:``.

    The same client as :class:`aioflags.Client`, running on an event loop of
    its own in a background thread, with sync methods: for Celery tasks,
    Django and Flask views, scripts, or any mix of sync and async code.

    ``Client(config)`` does no I/O and starts no thread. ``with client:`` (or
    ``client.start()``) starts the thread and the client and waits up to
    ``config.ready_timeout`` for a first status, never raising because the
    network is bad; leaving the block (or ``client.close()``) stops both,
    bounded, leaving no thread behind. A closed client can be started again.

    Evaluations are thread-safe and never wait for the background thread:
    they read the current immutable snapshot in the calling thread. Like the
    async client's, they never raise for bad data, a missing flag, a wrong
    type, an invalid context or a client that is not ready (or not started):
    they return the default with an ``ERROR`` reason.

    Handlers run on the client's background thread: keep them short, and do
    not call :meth:`close` or :meth:`wait_ready` from them.

    Args:
        config: the configuration.

    Added in version 0.1.0.
    """

    __slots__ = ("__weakref__", "_client", "_lock", "_running")

    def __init__(self, config: Config) -> None:
        if not isinstance(config, Config):
            raise ConfigurationError(
                f"aioflags.blocking.Client takes an aioflags.Config, got {config!r}"
            )
        self._client = hosted(config)
        self._lock = threading.Lock()
        self._running: _Running | None = None
        _LIVE_CLIENTS.add(self)

    @classmethod
    def _over(cls, client: _AsyncClient) -> Client:
        """A blocking client that runs an existing async client (the OpenFeature provider's)."""
        self = cls.__new__(cls)
        self._client = client
        self._lock = threading.Lock()
        self._running = None
        _LIVE_CLIENTS.add(self)
        return self

    # ------------------------------------------------------------- lifecycle
    def start(self) -> ProviderStatus:
        """Start the background thread and the client; wait for a first status.

        Waits up to ``config.ready_timeout`` seconds for READY, ERROR or FATAL
        and returns the status then (``ERROR`` if the client was not ready in
        time: it keeps trying). Never raises because the network is bad.

        Raises:
            RuntimeError: the client is already started; or it would wait
                (``ready_timeout`` > 0) on a running event loop's own thread,
                blocking that loop (the message says what to call instead).
            ClientClosedError: the client is FATAL (an invalid SDK key): create
                a new one with the right key.
        """
        self._refuse_on_own_thread("start()")
        self._refuse_on_a_loop(
            "start()",
            self._client.config.ready_timeout,
            "ready_timeout",
            "client.start",
            "pass ready_timeout=0, which does not wait",
        )
        with self._lock:
            if self._running is not None:
                raise RuntimeError(
                    "this aioflags.blocking.Client is already started: "
                    "close() it before starting it again"
                )
            running = _Running()
            with running.stack as stack:
                # Undone in reverse: stop the portal (cancelling what still
                # runs on it: a pending wait_ready, or this start-up), join
                # its thread, then the loop's worker threads.
                stack.callback(running.join_workers)
                portal = stack.enter_context(start_blocking_portal("asyncio"))
                running.portal = portal
                running.thread, running.loop = portal.call(_identify)
                stack.callback(_stop_portal, portal)
                running.stack = stack.pop_all()
            self._running = running
        # The ready wait runs outside the lock: close() from another thread
        # (an OpenFeature shutdown) aborts it rather than waiting for it.
        hosted = portal.wrap_async_context_manager(self._client)
        try:
            hosted.__enter__()
        except BaseException:
            with self._lock:
                closed = self._running is not running
                if not closed:
                    self._running = None
                    running.stack.close()
            if closed:
                return self._client.status  # aborted by close()
            raise
        with self._lock:
            if self._running is running:
                running.entered = hosted
        return self._client.status

    def close(self) -> None:
        """Stop the client and its thread; idempotent and bounded.

        Returns within a few seconds even if the flag service hangs
        mid-response, once the background thread has ended; a :meth:`start`
        still waiting for the client in another thread is aborted (it returns
        the status). Afterwards the status is ``NOT_READY`` (``FATAL`` stays
        ``FATAL``), evaluations return the default with ``CLIENT_NOT_READY``,
        and :meth:`start` can start the client again (unless it is ``FATAL``).

        Unlike :meth:`start`, :meth:`wait_ready` and :meth:`flush`, it is not
        refused on a running event loop's own thread (closing must always
        work), but it blocks that loop while the client stops: briefly, and
        at most the few seconds above.

        Raises:
            RuntimeError: called from a handler, on the client's own thread,
                which cannot wait for itself to end.
        """
        self._refuse_on_own_thread("close()")
        with self._lock:
            running, self._running = self._running, None
            if running is not None:
                running.close()

    def _after_fork(self) -> None:
        """In a forked child: the loop thread is not here; forget it.

        The async client forgets its run by itself (and warns on first use);
        this makes close() a no-op and start() start afresh in the child.
        """
        self._lock = threading.Lock()  # another thread may have held it
        running, self._running = self._running, None
        if running is not None:
            # Let the portal refuse calls at once rather than wait forever for
            # a thread that does not exist here: its context manager calls it
            # when it is finalized (anyio has no public way to say this).
            running.portal._event_loop_thread_id = None

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _refuse_on_own_thread(self, what: str) -> None:
        running = self._running
        if running is not None and running.thread == threading.get_ident():
            raise RuntimeError(
                f"{what} was called on the aioflags client's own thread (from a "
                "handler), where it would wait for itself: call it from another "
                "thread, or from the async client's handler use `await client.aclose()`"
            )

    def _refuse_on_a_loop(
        self, what: str, timeout: float | None, option: str, call: str, instead: str
    ) -> None:
        """Waiting up to ``timeout`` seconds here would block a running event loop: refuse.

        A ``timeout`` of 0 waits for nothing and is allowed; ``None`` is no
        bound. ``option`` names the timeout in the message, ``call`` is what
        to run on a worker thread, and ``instead`` says how not to wait.
        """
        if timeout is not None and timeout <= 0:
            return  # nothing to wait for: a call to the client's loop is quick
        library = running_library()
        if library is not None:
            wait = (
                f"up to {option}={timeout:g} s"
                if timeout is not None
                else f"with no bound ({option}=None)"
            )
            raise RuntimeError(
                _ON_LOOP[library].format(
                    what=what, wait=wait, call=call, instead=instead
                )
            )

    def _call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on the loop thread if the client runs, else here."""
        running = self._running
        if running is not None and running.thread == threading.get_ident():
            return func(*args)  # in a handler: already on the loop thread
        with self._lock:
            running = self._running
            if running is None:
                return func(*args)  # nothing runs that it could race with
            return running.portal.call(func, *args)

    def _call_async(self, func: Callable[[], Awaitable[T]]) -> T:
        """Await ``func()`` on the running loop thread (from another thread)."""
        with self._lock:
            running = self._running
            if running is None:  # closed meanwhile (the provider's shutdown)
                raise ClientClosedError("this aioflags.blocking.Client is not started")
            return running.portal.call(func)

    def _run_migration(self, operation: str, func: Callable[[], Awaitable[T]]) -> T:
        """Run a :class:`~aioflags.migrations.BlockingMigrator`'s ``operation`` on the loop.

        ``func()`` is the async migrator's read or write: awaited on the
        client's loop, where the plain origins run in worker threads.
        """
        what = f"migrator.{operation}()"
        self._refuse_on_own_thread(what)
        library = running_library()
        if library is not None:
            raise RuntimeError(_MIGRATOR_ON_LOOP[library].format(what=what))
        running = self._running
        if running is None:
            raise ClientClosedError(
                f"{what}: this aioflags.blocking.Client is not started: use "
                "`with client:` or client.start() before migrating"
            )
        try:
            return running.portal.call(func)
        except (RuntimeError, concurrent.futures.CancelledError) as exc:
            # Cancelled by close(), or the portal stopped just before the call.
            if self._running is running and isinstance(exc, RuntimeError):
                raise
            raise ClientClosedError(
                f"{what}: the aioflags.blocking.Client was closed during the "
                "operation, which was cancelled"
            ) from None

    def _spawn(
        self, func: Callable[[], Coroutine[Any, Any, None]]
    ) -> concurrent.futures.Future[None] | None:
        """Start ``func()`` on the loop (cancelled by close()); ``None`` if not running."""
        with self._lock:
            running = self._running
            return None if running is None else running.portal.start_task_soon(func)

    # ---------------------------------------------------------------- status
    @property
    def status(self) -> ProviderStatus:
        """The current provider status."""
        return self._client.status

    @property
    def data_source_status(self) -> DataSourceStatus | None:
        """The data system's own status (state, since, last error, FDv1 fallback)."""
        return self._client.data_source_status

    @property
    def status_details(self) -> EventDetails | None:
        """The status event that set the current status (see ``aioflags.Client.status_details``).

        Added in version 0.1.0.
        """
        return self._client.status_details

    @property
    def config(self) -> Config:
        """The configuration this client was constructed with (immutable).

        Added in version 0.1.0.
        """
        return self._client.config

    @property
    def async_client(self) -> _AsyncClient:
        """The :class:`aioflags.Client` this client runs on its background thread.

        Its evaluation methods (``snapshot()`` and the snapshot's methods) and
        ``status`` may be used from any thread; its other methods belong to
        the background thread's event loop.

        Added in version 0.1.0.
        """
        return self._client

    def wait_ready(self, timeout: float | None = None) -> ProviderStatus:
        """Wait until the status is READY (or FATAL), up to ``timeout`` seconds.

        Returns the status then; never raises because the network is bad. If
        the client is closed meanwhile (from another thread), returns at once.

        Raises:
            ClientClosedError: the client is not started.
            RuntimeError: called from a handler, on the client's own thread;
                or it would wait (``timeout`` None or > 0) on a running event
                loop's own thread, blocking that loop (the message says what
                to call instead).
        """
        self._refuse_on_own_thread("wait_ready()")
        self._refuse_on_a_loop(
            "wait_ready()",
            timeout,
            "timeout",
            "client.wait_ready, timeout",
            "read `client.status`, or wait_ready(timeout=0), which does not wait",
        )
        running = self._running
        if running is None:
            raise ClientClosedError(
                "this aioflags.blocking.Client is not started: use "
                "`with client:` or client.start() first"
            )
        try:
            return running.portal.call(self._client.wait_ready, timeout)
        except (RuntimeError, concurrent.futures.CancelledError):
            return self._client.status  # closed meanwhile

    def add_handler(
        self, event: ProviderEvent, handler: Callable[[EventDetails], None]
    ) -> None:
        """Call ``handler(details)`` for every ``event``, in order, on the client's thread.

        If the client is already in the status the event sets, the handler runs
        once at once with the details of the event that set it.
        """
        self._call(self._client.add_handler, event, handler)

    def remove_handler(
        self, event: ProviderEvent, handler: Callable[[EventDetails], None]
    ) -> None:
        """Stop calling ``handler`` for ``event``."""
        self._call(self._client.remove_handler, event, handler)

    def add_flag_change_handler(
        self, handler: Callable[[frozenset[str]], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """Call ``handler(flag_keys)`` on the client's thread whenever flags change.

        The keys include flags changed through segments and prerequisites.
        Returns a function that removes the handler (callable from any thread).
        """
        remove = self._call(self._client.add_flag_change_handler, handler)
        return functools.partial(self._call, remove)

    def add_flag_value_change_handler(
        self,
        key: str,
        context: Context,
        handler: Callable[[FlagValueChange], Awaitable[None] | None],
        *,
        default: JSONValue = None,
    ) -> Callable[[], None]:
        """Call ``handler(FlagValueChange)`` when ``key``'s value for ``context`` changes.

        Runs on the client's thread. Returns a function that removes the
        handler (callable from any thread).
        """
        remove = self._call(
            functools.partial(
                self._client.add_flag_value_change_handler,
                key,
                context,
                handler,
                default=default,
            )
        )
        return functools.partial(self._call, remove)

    # ------------------------------------------------------------ evaluation
    # Each method evaluates the async client's current snapshot
    # (``client.snapshot()``: the store's data, which the loop thread
    # replaces whole, composed with the client's events, hooks, lens and
    # big segments) in the calling thread.
    def snapshot(self) -> FlagSnapshot:
        """The current immutable snapshot, for request-consistent evaluation."""
        return self._client.snapshot()

    def variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value for ``context``, or ``default``."""
        return self._client.snapshot().variation(key, context, default)

    def variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """The value, the variation index and the reason."""
        return self._client.snapshot().variation_detail(key, context, default)

    def bool_variation(self, key: str, context: Context | None, default: bool) -> bool:
        """The flag's value if it is a boolean, else ``default`` (WRONG_TYPE)."""
        return self._client.snapshot().bool_variation(key, context, default)

    def int_variation(self, key: str, context: Context | None, default: int) -> int:
        """The flag's value if it is a number (truncated), else ``default``."""
        return self._client.snapshot().int_variation(key, context, default)

    def float_variation(
        self, key: str, context: Context | None, default: float
    ) -> float:
        """The flag's value if it is a number, else ``default``."""
        return self._client.snapshot().float_variation(key, context, default)

    def string_variation(self, key: str, context: Context | None, default: str) -> str:
        """The flag's value if it is a string, else ``default``."""
        return self._client.snapshot().string_variation(key, context, default)

    def json_variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value, whatever its JSON type."""
        return self._client.snapshot().json_variation(key, context, default)

    def bool_variation_detail(
        self, key: str, context: Context | None, default: bool
    ) -> EvaluationDetail[bool]:
        """Like :meth:`bool_variation`, with the index and reason."""
        return self._client.snapshot().bool_variation_detail(key, context, default)

    def int_variation_detail(
        self, key: str, context: Context | None, default: int
    ) -> EvaluationDetail[int]:
        """Like :meth:`int_variation`, with the index and reason."""
        return self._client.snapshot().int_variation_detail(key, context, default)

    def float_variation_detail(
        self, key: str, context: Context | None, default: float
    ) -> EvaluationDetail[float]:
        """Like :meth:`float_variation`, with the index and reason."""
        return self._client.snapshot().float_variation_detail(key, context, default)

    def string_variation_detail(
        self, key: str, context: Context | None, default: str
    ) -> EvaluationDetail[str]:
        """Like :meth:`string_variation`, with the index and reason."""
        return self._client.snapshot().string_variation_detail(key, context, default)

    def json_variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """Like :meth:`json_variation`, with the index and reason."""
        return self._client.snapshot().json_variation_detail(key, context, default)

    def all_flags_state(
        self,
        context: Context | None,
        *,
        with_reasons: bool = False,
        client_side_only: bool = False,
        details_only_for_tracked_flags: bool = False,
    ) -> FlagsState:
        """Every flag's value for ``context``, in LaunchDarkly's bootstrap shape."""
        return self._client.snapshot().all_flags_state(
            context,
            with_reasons=with_reasons,
            client_side_only=client_side_only,
            details_only_for_tracked_flags=details_only_for_tracked_flags,
        )

    # ------------------------------------------------------------ migrations
    def migration_variation(
        self, key: str, context: Context | None, default_stage: Stage
    ) -> tuple[Stage, OpTracker]:
        """The migration flag's stage and a tracker, as :meth:`aioflags.Client.migration_variation`.

        Evaluated in the calling thread like the other evaluations. Record the
        operation on the tracker and pass it to :meth:`track_migration_op`
        (docs/migrations.md, "In sync code"). Added in version 0.1.0.
        """
        stage, tracker = self._client.snapshot().migration_variation(
            key, context, default_stage
        )
        return stage, own_tracker(self._client, tracker)  # as the async client's

    def track_migration_op(self, tracker: OpTracker) -> None:
        """Send a ``migration_op`` event, as :meth:`aioflags.Client.track_migration_op`.

        Never blocks and never raises; a tracker that lacks what the event
        needs is refused with a logged reason. Added in version 0.1.0.
        """
        self._client.track_migration_op(tracker)

    def add_hook(self, hook: Hook) -> None:
        """Register a hook, as :meth:`aioflags.Client.add_hook`.

        Done on the client's thread, so that it cannot race with a data
        update swapping the snapshot. Added in version 0.1.0.
        """
        self._call(self._client.add_hook, hook)

    def secure_mode_hash(self, context: Context) -> str:
        """HMAC-SHA256 of the context's fully-qualified key with the SDK key, in hex."""
        return self._client.secure_mode_hash(context)

    @property
    def guards(self) -> Guards:
        """The guarded rollouts, as :attr:`aioflags.Client.guards` (``with client.guards.request():``).

        Added in version 0.2.0.
        """
        return self._client.guards

    # ------------------------------------------------------ analytics events
    def track(
        self,
        event_key: str,
        context: Context,
        data: JSONValue = None,
        metric_value: float | None = None,
    ) -> None:
        """Send a custom event, as :meth:`aioflags.Client.track`; never blocks or raises."""
        self._client.track(event_key, context, data, metric_value)

    def identify(self, context: Context) -> None:
        """Send an identify event, as :meth:`aioflags.Client.identify`; never raises."""
        self._client.identify(context)

    def flush(self, *, timeout: float = 5.0) -> None:
        """Send the buffered analytics events now; waits up to ``timeout`` seconds.

        Does nothing when the client is not started; never raises because the
        events endpoint is down. ``timeout=0`` starts the flush and returns.

        Raises:
            RuntimeError: called from a handler, on the client's own thread;
                or it would wait (``timeout`` > 0) on a running event loop's
                own thread, blocking that loop.
        """
        self._refuse_on_own_thread("flush()")
        self._refuse_on_a_loop(
            "flush()",
            timeout,
            "timeout",
            "client.flush",
            "flush(timeout=0), which starts the flush without waiting for it",
        )
        running = self._running
        if running is None:
            return
        try:
            running.portal.call(functools.partial(self._client.flush, timeout=timeout))
        except (RuntimeError, concurrent.futures.CancelledError):
            return  # closed meanwhile

    def usage(self) -> Usage:
        """Each flag's evaluations for the life of the client, as :meth:`aioflags.Client.usage`.

        Evaluations in every thread count. Read on the client's thread (a
        quick call: it waits for no I/O); when the client is not started, in
        the calling thread, with the figures of its life until it closed.

        Added in version 0.1.0.
        """
        return self._call(self._client.usage)

    def __repr__(self) -> str:
        state = "running" if self._running is not None else "stopped"
        return f"<aioflags.blocking.Client {state} status={self.status.name}>"


point_to(Client, "aioflags.blocking.Client", **LAUNCHDARKLY_NAMES)
