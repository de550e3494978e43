"""One process's place on the plane: lead while it holds the lock, else follow the leader.

:class:`PlaneMember` is what the supervisor runs instead of its data
system when ``plane=`` is given: it elects (:mod:`._lock`), serves the
followers while it leads (:mod:`._leader`), and otherwise applies the
leader's updates (:mod:`._follower`). The supervisor lends it what it
needs through :class:`PlaneHost` (its own upstream, the store's state, its
status) and asks it only :meth:`PlaneMember.run` and
:attr:`PlaneMember.role`. The process's guards, if any, ride along
(:mod:`._guardlink`): told each role, their counts sent up while it
follows, and their decisions sent down while it leads.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, final

import anyio

from aioflags._core._exceptions import ProtocolError
from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import ErrorInfo, ErrorKind, SourceState
from aioflags._datasystem._mirror import EventMirror

from ._follower import HELLO_ANSWER, PLANE_SILENCE, Following, answers, follow
from ._guardlink import SafeLink, member_id, send_reports
from ._lock import Lease, PlaneUnusable, try_lead
from ._wire import environment_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from random import Random

    from aioflags._core._clock import Clock
    from aioflags._datasystem._context import SourceContext
    from aioflags._datasystem._datatypes import ChangeSet, DataSourceStatus, Update
    from aioflags._datasystem._mirror import Folding

    from ._config import Plane
    from ._guardlink import GuardLink
    from ._leader import PlaneServer

__all__ = ["SOLO_RETRY", "PlaneHost", "PlaneMember", "StatusBoard"]

logger = client_logger("aioflags.datasource")

#: How long a follower may be without a leader before it says its data may be old.
_LEADERLESS: Final = 1.0
#: How often a process that runs solo tries the plane again.
SOLO_RETRY: Final = 5.0
#: A follower sent what it cannot use tries again after 1 s, doubling to
#: 30 s each time it fails again (less up to ``Config.retry_jitter`` of
#: each), until a leader's data proves usable (:meth:`Following.usable`).
_BROKEN_FIRST: Final = 1.0
_BROKEN_MOST: Final = 30.0
#: How often a follower checks that its leader is not silent; a check this
#: late says that this process itself did not run (stopped, its loop
#: blocked), not that the leader was silent (:meth:`Following.resumed`).
_TICK: Final = 0.5
_LATE: Final = 1.0


@final
class PlaneHost(NamedTuple):
    """What a member of a plane asks of the data system beside it (the supervisor's)."""

    #: Run the configured data system until it is OFF (``resume``: from the
    #: data held, with no initializer); whether it crashed (a bug, not a
    #: configured end).
    run_upstream: Callable[..., Awaitable[bool]]
    #: Apply an update the leader sent, as a source's.
    take: Callable[[Update], Awaitable[object]]
    #: Whether the store holds a data set.
    initialized: Callable[[], bool]
    #: This process came to lead from the data it holds: what it saves starts there.
    adopt: Callable[[EventMirror], None]
    #: Told the environment's id (``X-LD-EnvID``), the leader's or its own.
    environment: Callable[[str], None] | None = None


class StatusBoard(Protocol):
    """The data-source status a member reads, reports to, and (leading) serves."""

    @property
    def status(self) -> DataSourceStatus:
        """The data-source status now."""
        ...

    def update(self, state: SourceState, error: ErrorInfo | None = None) -> None:
        """Report a data-source status."""

    def watch(self, watcher: Callable[[DataSourceStatus], None] | None) -> None:
        """Tell ``watcher`` each new status from now on (None: stop)."""

    def crashed(self, name: str, exc: Exception, state: SourceState) -> None:
        """Report a failure (a bug's with its traceback)."""


class _Retry:
    """A follower's waits between attempts to reach a leader: doubling, capped, less up to ``jitter`` of each.

    5 ms doubling to 500 ms, less up to half of each, by default.
    """

    __slots__ = ("_delay", "_first", "_jitter", "_most", "_random")

    def __init__(
        self,
        random: Random,
        first: float = 0.005,
        most: float = 0.5,
        jitter: float = 0.5,
    ) -> None:
        self._random = random
        self._first, self._most, self._jitter = first, most, jitter
        self._delay = first

    def reset(self) -> None:
        self._delay = self._first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, self._most)
        return delay - self._random.random() * self._jitter * delay


@final
class PlaneMember:
    """Leads or follows on one plane for the supervisor that runs it (docs/scaling.md).

    ``guards``: the process's guards (None: none), which the plane tells
    its role and carries the counts and decisions of (:mod:`._guardlink`).
    """

    def __init__(
        self,
        plane: Plane,
        host: PlaneHost,
        board: StatusBoard,
        context: SourceContext,
        clock: Clock,
        guards: GuardLink | None = None,
    ) -> None:
        self._plane = plane
        self._guards = None if guards is None else SafeLink(guards, member_id())
        self._host = host
        self._board = board
        config = self._config = context.config
        self._clock = clock
        self._random = context.random
        self._environment = environment_of(
            config.sdk_key, config.payload_filter_key, plane.source, plane.system
        )
        #: The applied data as event texts: for followers, and to serve
        #: them at once if this process comes to lead.
        self._mirror = EventMirror()
        self._server: PlaneServer | None = None
        #: The environment's id, once the flag service (or the leader) named it.
        self._environment_id: str | None = None
        #: ``"leader"``, ``"follower"``, ``"solo"`` (on its own upstream until
        #: a leader answers), or None (not on the plane).
        self.role: str | None = None

    def named(self, environment_id: str) -> None:
        """The flag service named its environment's id: to the hooks, and the followers."""
        self._environment_id = environment_id
        if self._host.environment is not None:
            self._host.environment(environment_id)
        server = self._server
        if server is not None and server.environment_id != environment_id:
            server.environment_id = environment_id
            server.publish_status(self._board.status)

    def prepare(self, change_set: ChangeSet) -> Folding:
        """``change_set`` as the plane would carry it; raises what it cannot carry (nothing changed)."""
        return self._mirror.prepare(change_set)

    def applied(self, change_set: ChangeSet, folding: Folding | None = None) -> None:
        """A change set this process applied: folded in, and served if it leads.

        ``folding``: what :meth:`prepare` made of it, when it was prepared
        before the store applied it.
        """
        if folding is None:
            folding = self._mirror.prepare(change_set)
        events = self._mirror.commit(folding)
        if self._server is not None:
            self._server.publish(change_set, events)

    async def run(self) -> None:
        """Lead or follow until cancelled (the client closes); never raises."""
        try:
            await self._run()
        except Exception as exc:  # noqa: BLE001 - crashed() logs the traceback
            # A bug of ours: the last known data stays served.
            self._board.crashed("The aioflags flag plane", exc, SourceState.OFF)

    async def _run(self) -> None:
        """Lead or follow until cancelled.

        Lead while this process holds the lock; else follow the leader's
        socket, and when it closes, try the lock again. A leader that does
        not answer (silent, stopped, a lock held by a process with no
        socket) or sends what this process cannot use: run solo
        (:meth:`_solo`) until one does. A path that cannot be used (not a
        socket, another environment's leader...) is one ERROR, and this
        process runs its own upstream as if it had no plane.
        """
        plane, host = self._plane, self._host
        retry = _Retry(self._random)
        # (a follower whose leader sends what it cannot use)
        broken = _Retry(
            self._random, _BROKEN_FIRST, _BROKEN_MOST, self._config.retry_jitter
        )
        lost: float | None = None  # since when this follower has had no leader
        may_lead = True  # (not once its own data system crashed)
        lease: Lease | None = None
        try:
            while True:
                if lease is None and may_lead:
                    lease = try_lead(plane.lock_path)
                if lease is not None:
                    # A follower that takes the lead goes on from the data it
                    # holds: no initializer, and its followers served at once.
                    resume = self.role is not None and host.initialized()
                    try:
                        await self._lead(resume=resume)
                    finally:
                        lease.release()
                        lease = None
                    may_lead = False  # (it returns only when its data system crashed)
                    lost = self._clock.now()
                self._take_role("follower")
                following = await self._follow()
                now = self._clock.now()
                if following.applied:  # (a leader that only fails is backed off)
                    retry.reset()
                if following.usable(now, self._config.retry_reset_after):
                    broken.reset()  # (not for a data set whose next line breaks)
                if following.cause is not None and may_lead:
                    delay = broken.next() if following.broken else SOLO_RETRY
                    lease = await self._solo(following.cause, delay)
                    lost = None if lease is None else lost
                    continue
                if following.connected:
                    lost = now
                    logger.info(
                        "The leader of the flag plane at %s is gone: taking its"
                        " place, or following the one who does",
                        plane.path,
                    )
                elif lost is None:
                    lost = now
                elif may_lead and now - lost >= HELLO_ANSWER:
                    lease = await self._solo(
                        "another process holds its lock and no leader answers"
                        " on its socket",
                        SOLO_RETRY,
                    )
                    lost = None
                    continue
                if now - lost >= _LEADERLESS:
                    self._leaderless(lost)
                await self._clock.sleep(retry.next())
        except PlaneUnusable as exc:
            logger.error(
                "The flag plane cannot be used: %s. This process reads the flag"
                " service itself, as if it had no plane, until it is restarted",
                exc,
            )
            self._take_role(None)
            await host.run_upstream(resume=host.initialized())

    async def _lead(self, *, resume: bool) -> None:
        """Run the data system, serving what it applies to the followers, until closed.

        ``resume``: from the data it holds (it followed), with no initializer.
        Returns only when the data system crashed: the caller frees the lock
        at once, so that another process leads.
        """
        from ._leader import PlaneServer

        host, board = self._host, self._board
        server = PlaneServer(
            self._plane.path,
            self._environment,
            self._mirror,
            lambda: board.status,
            self._plane.source,
            self._guards,
        )
        server.environment_id = self._environment_id
        listener = await server.listen()
        if resume:  # it saved nothing while it followed: it starts from the data held
            host.adopt(self._mirror)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, listener, self._clock)
            self._server = server
            board.watch(server.publish_status)
            self._take_role("leader")
            try:
                if not await host.run_upstream(resume=resume):
                    await anyio.sleep_forever()  # OFF: its last data stays served
            finally:
                self._server = None
                board.watch(None)
                group.cancel_scope.cancel()
        logger.warning(
            "The data system of the flag plane's leader at %s crashed: this"
            " process stops leading, so that another one can",
            self._plane.path,
        )

    async def _follow(self) -> Following:
        """Follow the leader until its socket closes or it stops answering; what the follower saw."""
        path, clock = self._plane.path, self._clock
        following = Following(clock.now())
        failure: Exception | None = None
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                # The leader answers its hello in time, then is never silent.
                # A check that comes late says that this process did not run
                # (SIGSTOP, a blocked loop): what the leader sent meanwhile
                # is unread, so it is given time to be heard, not blamed.
                while (left := following.deadline() - clock.now()) > 0:
                    step = min(left, _TICK)
                    began = clock.now()
                    await clock.sleep(step)
                    if clock.now() - began - step >= _LATE:
                        following.resumed(clock.now())
                following.cause = (
                    f"its leader sent nothing for {PLANE_SILENCE:g} s"
                    if following.connected
                    else f"its leader did not answer within {HELLO_ANSWER:g} s"
                )
                group.cancel_scope.cancel()

            group.start_soon(watch)
            guards = self._guards
            if guards is not None:
                group.start_soon(send_reports, guards, following, clock)
            try:
                updates = follow(
                    path,
                    self._environment,
                    self._config,
                    clock,
                    following,
                    self._plane.source,
                    None if guards is None else guards.decided,
                )
                async with aclosing(updates):
                    async for update in updates:
                        await self._host.take(update)
            except ProtocolError as exc:
                following.broken = True
                following.cause = f"its leader sent data it cannot use ({exc})"
            except PlaneUnusable as exc:
                failure = exc
            except Exception as exc:  # a bug of ours: never end the client
                logger.exception("Following the flag plane's leader at %s failed", path)
                following.broken = True
                following.cause = f"following it failed ({exc!r})"
            group.cancel_scope.cancel()
        if failure is not None:
            try:
                raise failure
            finally:
                del failure
        return following

    async def _solo(self, cause: str, delay: float) -> Lease | None:
        """Run this process's own upstream until a leader answers or the lock is free.

        It keeps the data it has, and says STALE until its own upstream
        has data; every ``delay`` it tries the lock, then the socket.
        Returns the lease, if it got the lock (None: a leader answered).
        """
        path, clock, board, host = (
            self._plane.path,
            self._clock,
            self._board,
            self._host,
        )
        self._take_role("solo")
        # (the status's own WARNING is the one line that says so)
        board.update(
            SourceState.INTERRUPTED,
            ErrorInfo(
                kind=ErrorKind.NETWORK_ERROR,
                message=f"this process cannot follow the flag plane at {path}:"
                f" {cause}. It reads the flag service itself, keeping its data,"
                f" and tries the plane again in {delay:g} s",
                time=clock.now(),
            ),
        )
        lease: Lease | None = None
        failure: PlaneUnusable | None = None
        async with anyio.create_task_group() as group:

            async def upstream() -> None:
                await host.run_upstream(resume=host.initialized())
                await anyio.sleep_forever()  # OFF: its last data stays served

            group.start_soon(upstream)
            try:
                while lease is None:
                    await clock.sleep(delay)
                    lease = try_lead(self._plane.lock_path)
                    if lease is None and await self._answers():
                        break
            except PlaneUnusable as exc:
                failure = exc
            group.cancel_scope.cancel()
        if failure is not None:
            try:
                raise failure
            finally:
                del failure
        return lease

    async def _answers(self) -> bool:
        """Whether a leader answers on the socket within :data:`HELLO_ANSWER`."""
        answered = False
        failure: PlaneUnusable | None = None
        async with anyio.create_task_group() as group:

            async def timer() -> None:
                await self._clock.sleep(HELLO_ANSWER)
                group.cancel_scope.cancel()

            group.start_soon(timer)
            try:
                answered = await answers(
                    self._plane.path, self._environment, self._plane.source
                )
            except PlaneUnusable as exc:
                failure = exc
            group.cancel_scope.cancel()
        if failure is not None:
            try:
                raise failure
            finally:
                del failure
        return answered

    def _leaderless(self, since: float) -> None:
        """No leader has taken this follower for a while: its data may be old."""
        board = self._board
        if board.status.state is SourceState.VALID:
            board.update(
                SourceState.INTERRUPTED,
                ErrorInfo(
                    kind=ErrorKind.NETWORK_ERROR,
                    message=f"no leader on the flag plane at {self._plane.path} for"
                    f" {self._clock.now() - since:.1f} s",
                    time=self._clock.now(),
                ),
            )

    def _take_role(self, role: str | None) -> None:
        """This process's place on the plane: one INFO line when it changes (solo: :meth:`_solo` warns)."""
        if role == self.role:
            return
        self.role = role
        if self._guards is not None:  # (off the plane, as solo: it decides)
            self._guards.role(role)
        path = self._plane.path
        if role is None:
            logger.info("This process no longer uses the flag plane at %s", path)
        elif role != "solo":
            verb = "leads" if role == "leader" else "follows the leader of"
            logger.info("This process %s the flag plane at %s", verb, path)
