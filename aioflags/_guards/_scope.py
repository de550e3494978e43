"""``client.guards``: the request scope, the app metrics, the status, release and events.

A request's scope (:meth:`Guards.request`, a ``ContextVar`` of the
client's own, as the lens's view) collects the arm each guarded flag
served it (its first evaluation in the scope) and the app metrics
``client.track`` sent in it; when it ends, its outcome (raised or 5xx,
its duration, the metrics' sums) is recorded in each arm. Nested scopes:
the outer one counts. Nothing here ever raises into the request.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
from math import log2
from typing import TYPE_CHECKING, Final, final

from ._counts import LOG2_TINY

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Mapping
    from types import TracebackType

    import anyio

    from ._config import Guard
    from ._status import GuardEvent, GuardStatus
    from ._watch import GuardRun, Lane, Watch

__all__ = ["Guards", "Scope"]

logger = logging.getLogger("aioflags.guards")

#: The decisions kept for late handlers and new iterators.
_KEPT: Final = 1000
#: A metric's non-finite values are said at most once this often (seconds).
_WARN_EVERY: Final = 60.0


@final
class Scope:
    """One request's scope for the guards: ``with`` or ``async with client.guards.request():``.

    An exception leaving the scope (raised again, untouched) or a
    :attr:`status` of 500 or more counts the request as an error.

    Added in version 0.2.0.
    """

    __slots__ = (
        "_done",
        "_guards",
        "_rare",
        "_start",
        "_status",
        "_token",
        "lane",
        "metrics",
        "more",
    )

    def __init__(self, guards: Guards | None) -> None:
        self._guards = guards
        self._token: contextvars.Token[Scope | None] | None = None
        self._start = 0.0
        #: Recorded (or discarded) before the scope is left: leaving records nothing.
        self._done = False
        self._status: int | None = None
        #: Set by what makes a request's end more than one append (a status,
        #: a second guarded flag, an app metric, recorded or discarded
        #: already): its end reads this one slot for all of them.
        self._rare = False
        #: The arm the first guarded flag served in this request (its
        #: watch's :class:`~._watch.Lane`; the guarded head notes it:
        #: ``_evaluation._guarded``), None: none (most requests).
        self.lane: Lane | None = None
        #: The other guarded flags' arms in this request, by watch (rare).
        self.more: dict[Watch, Lane] | None = None
        #: Each app metric's sum in this request (None: none sent).
        self.metrics: dict[str, float] | None = None

    # (``with`` and ``async with`` each written out: a call less a request;
    # a scope inside another does nothing: the outer one counts)
    def __enter__(self) -> Scope:
        guards = self._guards
        if guards is not None and (
            (outer := guards.var.get()) is None or outer._token is None
        ):  # (no scope open here, or one left already: in another task)
            self._token = guards.var.set(self)
            clock = guards.clock  # (an attribute's call: no method lookup)
            self._start = clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is not None:
            self._token = None
            var = token.var
            try:
                var.reset(token)
            except ValueError:  # left in another context than entered: still recorded
                var.set(None)
            lane = self.lane
            if lane is None:  # (most: no guarded flag, nothing to do)
                return
            if exc is not None or self._rare:
                if not self._done:  # (recorded already, or discarded)
                    self._record(lane, exc)  # (an error, a status, metrics, two guards)
                return
            # The common request, inline (no call): one guarded flag, no app
            # metric, no error, no status; its log2 seconds appended to its arm's lane.
            guards: Guards = self._guards  # type: ignore[assignment]  # (entered: guards)
            try:
                lane.ok.append(log2(guards.clock() - self._start))
            except ValueError:  # (<= 0: a clock that did not move, or went back)
                lane.ok.append(LOG2_TINY)
            except Exception:  # noqa: BLE001 - a failing clock: the outcome is lost, said once
                guards.failure("the clock")
                return
            watch = lane.watch
            watch.left -= 1
            if watch.left <= 0:
                try:
                    watch.fold()
                except Exception:  # noqa: BLE001 - logged once per guard
                    guards.failure(watch.guard.config.name)

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @property
    def status(self) -> int | None:
        """The request's HTTP status, if it has one (a middleware sets it).

        500 or more counts the request as an error, as an exception leaving
        the scope does; a status that is not an int counts as none.
        """
        return self._status

    @status.setter
    def status(self, status: int | None) -> None:
        self._status = status
        if status is not None:
            self._rare = True  # (its end reads the status)

    def end(self, status: int | None = None) -> None:
        """Record the request now: its response has gone out (a middleware calls it).

        ``status``, if given, is its :attr:`status`. Its outcome is the
        status (500 or more: an error) and its latency the time until now;
        leaving the scope afterwards records nothing more, whatever it
        raises, and a guarded flag evaluated after this (a background
        task) counts nowhere. Never raises.
        """
        if status is not None:
            self._status = status
        if self._token is not None and not self._done:
            lane = self.lane
            if lane is not None:  # (no guarded flag: no call)
                self._record(lane, None)
            self._done = self._rare = True

    def also(self, lane: Lane) -> None:
        """Note the arm of a second (third...) guarded flag, if its first in this request."""
        more = self.more
        if more is None:
            self._rare = True
            self.more = {lane.watch: lane}
        elif lane.watch not in more:
            more[lane.watch] = lane

    def discard(self) -> None:
        """Count this request nowhere (its client left before its response ended)."""
        self._done = self._rare = True

    def _record(self, lane: Lane, exc: BaseException | None) -> None:
        """Record the request's outcome (``exc``: what left the scope) in its arms' lanes.

        ``lane``: the first guarded flag's arm (the request is not recorded
        yet). The outcome is left in each arm's lane for its watch to fold
        (the ``log2`` of its seconds): no sum here. The general path: an error, a status,
        app metrics, two guarded flags (the common request is recorded
        inline in :meth:`__exit__`, as here). Never raises into the request.
        """
        guards = self._guards
        assert guards is not None  # (entered: with guards)
        status = self._status
        error = (exc is not None and isinstance(exc, Exception)) or (
            isinstance(status, int) and status >= 500
        )  # (None, or a status not a number: not an error)
        try:
            seconds = guards.clock() - self._start
        except Exception:  # noqa: BLE001 - a failing clock: the outcome is lost, said once
            guards.failure("the clock")
            return
        try:
            logged = log2(seconds)
        except ValueError:  # (<= 0: a clock that did not move, or went back)
            logged = LOG2_TINY
        more = self.more
        lanes = [lane]
        if more is not None:  # (attribution: only requests two guards share)
            from ._watch import record_joint  # (loaded: a watch exists)

            try:  # (before the arms: a look they make sees this request's pair)
                arms = {lane.watch: lane.arm}
                arms.update((watch, other.arm) for watch, other in more.items())
                record_joint(arms)
            except Exception:  # noqa: BLE001 - logged once
                guards.failure("the shared requests")
            lanes.extend(more.values())
        metrics = self.metrics
        for each in lanes:
            # (one try per guard, so that one failing spares the others)
            try:
                (each.failed if error else each.ok).append(logged)
                if metrics is not None:
                    each.metrics.append(metrics)
                watch = each.watch
                watch.left -= 1
                if watch.left <= 0:
                    watch.fold()
            except Exception:  # noqa: BLE001, PERF203 - logged once per guard
                guards.failure(each.watch.guard.config.name)


@final
class Guards:
    """A client's guards (``client.guards``): the request scope, status, release, events.

    With no guard configured, everything here is a cheap no-op.

    Added in version 0.2.0.
    """

    __slots__ = (
        "_count",
        "_failed",
        "_handlers",
        "_log",
        "_metric_names",
        "_runs",
        "_told",
        "_waiters",
        "_warned",
        "by_flag",
        "clock",
        "var",
    )

    def __init__(
        self, guards: tuple[Guard, ...], clock: Callable[[], float] | None = None
    ) -> None:
        """``clock``: monotonic seconds (``time.monotonic`` by default)."""
        #: The open request scope (one variable per client: never mixed).
        self.var: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
            "aioflags_guards_scope", default=None
        )
        self.clock: Callable[[], float] = clock or time.monotonic
        self._runs: dict[str, GuardRun] = {}
        if guards:  # (the runtime only for a client with guards: none, no imports)
            from ._watch import GuardRun

            self._runs = {
                guard.name: GuardRun(guard, self.var, self._tell) for guard in guards
            }
        #: What the store hands its snapshots' matchers: guards by flag key
        #: (None: no guards, and no matcher asks).
        self.by_flag: Mapping[str, GuardRun] | None = {
            run.config.flag: run for run in self._runs.values()
        } or None
        self._metric_names = frozenset(
            metric.name
            for guard in guards
            for metric in guard.metrics
            if metric.name not in ("errors", "latency")
        )
        self._log: list[GuardEvent] = []
        self._count = 0  # events told so far (the log keeps the last _KEPT)
        self._handlers: list[Callable[[GuardEvent], object]] = []
        #: What wakes each iterator waiting for an event: its event, the
        #: thread of its loop, and how another thread calls on that loop
        #: (each its own: iterators may wait on other loops, in other threads).
        self._waiters: list[tuple[anyio.Event, int, Callable[..., object] | None]] = []
        #: Held while the log grows or an iterator finds nothing new and
        #: waits: a decision on another thread never falls between the two.
        self._told = threading.Lock()
        self._warned: dict[str, float] = {}
        self._failed: set[str] = set()

    # ------------------------------------------------------------ requests
    def request(self) -> Scope:
        """A request's scope: ``async with client.guards.request():`` (or ``with``).

        Each guarded flag evaluated in it (first evaluation in the scope,
        its tasks included) counts this request in the arm it served, if a
        randomized assignment served it; when the scope ends, the request's
        outcome is recorded: an exception leaving it (raised again,
        untouched) or ``scope.status >= 500`` is an error; its duration is
        its latency. A scope inside another does nothing (the outer one
        counts). Never raises.
        """
        return Scope(self if self._runs else None)

    def failure(self, name: str) -> None:
        """Guard ``name`` failed to record a request: logged with the traceback, once."""
        if name not in self._failed:
            self._failed.add(name)
            logger.exception(
                "Guard %r failed to record a request; it goes on (said once)", name
            )

    def track(self, name: str, value: object) -> None:
        """``client.track(name, ..., metric_value=value)`` in a scope: summed for a guard metric ``name``."""
        if name not in self._metric_names:
            return
        scope = self.var.get()
        if scope is None or value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            now = self.clock()
            last = self._warned.get(name)
            if last is None or now - last >= _WARN_EVERY:
                self._warned[name] = now
                logger.warning(
                    "Guard metric %r: metric_value %r is not a finite number:"
                    " dropped (said at most once a minute)",
                    name,
                    value,
                )
            return
        metrics = scope.metrics
        if metrics is None:
            metrics = scope.metrics = {}
            scope._rare = True
        metrics[name] = metrics.get(name, 0.0) + value

    # -------------------------------------------------------------- status
    @property
    def status(self) -> Mapping[str, GuardStatus]:
        """Each guard's status, by name (empty with no guards)."""
        return {name: run.status() for name, run in self._runs.items()}

    def release(self, name: str) -> bool:
        """Stop guard ``name``'s pin (or alert) for the flag's current version.

        The flag serves its rollout again; the guard keeps counting but
        does not decide again for this version (a new version of the flag
        starts it afresh). Returns whether there was a decision to release.
        On a flag plane's follower it releases this process only (the
        leader decides for the host: release there), and says so in a
        WARNING.

        Raises:
            KeyError: no guard is named ``name``.
        """
        run = self._runs.get(name)
        if run is None:
            raise KeyError(
                f"no guard named {name!r}; the guards are {sorted(self._runs)}"
            )
        watch = run.current
        if watch is None or watch.state not in ("alerted", "pinned"):
            return False
        if run.follows:
            logger.warning(
                "Guard %r released in this process only: it follows a flag"
                " plane's leader, and the host's other processes keep the"
                " decision (%s); release it on the leader to release it everywhere",
                name,
                watch.state,
            )
        return watch.release()

    # -------------------------------------------------------------- events
    def _tell(self, event: GuardEvent) -> None:
        with self._told:
            self._log.append(event)
            self._count += 1
            if len(self._log) > _KEPT:
                del self._log[0]
            waiters, self._waiters = self._waiters, []
        for handler in tuple(self._handlers):
            self._call(handler, event)
        for woken, thread, call_soon in waiters:
            if call_soon is None or threading.get_ident() == thread:
                woken.set()
            else:  # a decision on another thread (aioflags.blocking.Client)
                call_soon(woken.set)

    @staticmethod
    def _call(handler: Callable[[GuardEvent], object], event: GuardEvent) -> None:
        try:
            handler(event)
        except Exception:  # a failing handler never stops the others
            logger.exception("A guard event handler failed: %r", handler)

    def add_handler(self, handler: Callable[[GuardEvent], object]) -> None:
        """Call ``handler(event)`` for each decision and release, in order.

        A handler added late is called at once with the decisions made
        before (the last 1,000). It is called where the decision is made
        (a request's scope ends), so it must be quick and sync; for async
        work, iterate :meth:`events`. A failing handler is logged.

        Raises:
            TypeError: ``handler`` is not callable, or is async.
        """
        import inspect  # (here: slow to import, and add_handler() is rare)

        given: object = handler  # (callers may not be typed)
        if not callable(given) or inspect.iscoroutinefunction(given):
            raise TypeError(
                "client.guards.add_handler() takes a sync callable; for async"
                " work use `async for event in client.guards.events():`"
            )
        for event in tuple(self._log):
            self._call(handler, event)
        self._handlers.append(handler)

    def remove_handler(self, handler: Callable[[GuardEvent], object]) -> None:
        """Stop calling ``handler``."""
        if handler in self._handlers:
            self._handlers.remove(handler)

    async def events(self) -> AsyncGenerator[GuardEvent, None]:
        """Each decision and release, in order: the ones made before (the last 1,000), then as they come.

        ``async for event in client.guards.events():`` never ends by
        itself: break out, or cancel the task.
        """
        import anyio

        from aioflags._datasystem._stores._bigsegments import _call_soon_threadsafe

        with self._told:
            seen = self._count - len(self._log)
        while True:
            with self._told:
                if seen < self._count:
                    first = self._count - len(self._log)
                    seen = max(seen, first)
                    event: GuardEvent | None = self._log[seen - first]
                    seen += 1
                else:  # (nothing new: wait for the next, on this loop)
                    event = None
                    waiter = (
                        anyio.Event(),
                        threading.get_ident(),
                        _call_soon_threadsafe(),
                    )
                    self._waiters.append(waiter)
            if event is not None:
                yield event
            else:
                await waiter[0].wait()
