"""The leader's side: its data, then each change set and its status, to every follower.

:class:`PlaneServer` listens on the plane's socket (``0600``). A follower
that names the same environment and wire version gets a hello, the
leader's status and, once the leader has a whole data set, that data set;
then every change set the leader applies and every status it reports, in
order, as :mod:`._wire` writes them (each written once, the same bytes
queued for every follower), and what the leader's guards decide (the
latest, after the status, to a follower that connects too). A follower
sends only its guards' reports (:mod:`._guardlink`), read by a task of
its own beside its writer: a line that is not a JSON object, or longer
than :data:`._wire.MAX_GUARD_LINE`, drops that follower (one WARNING a
minute). A follower that stops reading has at most
:data:`BEHIND_BYTES` of changes queued for it; past that it is
disconnected, and reconnects to the whole data set. A full transfer
replaces what was queued. Nothing a follower does reaches the leader's
evaluations or the other followers.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import TYPE_CHECKING, Final, final

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream

from aioflags._core._exceptions import ProtocolError
from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import IntentCode
from aioflags._datasystem._sources._common import parse_json

from . import _wire as wire
from ._lock import PlaneUnusable, inherit_not, other_user, socket_at
from ._socket import transported

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import SocketListener, SocketStream

    from aioflags._core._clock import Clock
    from aioflags._datasystem._datatypes import ChangeSet, DataSourceStatus
    from aioflags._datasystem._mirror import EventMirror

    from ._guardlink import SafeLink

__all__ = ["BEHIND_BYTES", "STUCK_SECONDS", "PlaneServer"]

logger = client_logger("aioflags.datasource")

#: How far a follower may fall behind, in bytes of change sets queued for it.
BEHIND_BYTES: Final = 16 * 1024 * 1024
#: How often the leader sends each follower a heartbeat, checks that its
#: socket is still there, and that each follower drains what it is sent.
_GUARD_SECONDS: Final = 0.5
#: How long a follower has to send its hello.
_HELLO_SECONDS: Final = 5.0
#: A follower whose queue has not drained for this long is dropped.
STUCK_SECONDS: Final = 30.0
#: What is handed to a follower's socket at once: a full transfer is sent
#: in pieces, so that what waits for a slow follower is the one shared copy.
_CHUNK: Final = 64 * 1024
#: A refusal's cause is logged at most once in this many seconds.
_QUIET_SECONDS: Final = 60.0


@final
class _Outbox:
    """What is queued for one follower: its first bytes, then change sets (bounded), then the last status.

    The first bytes (the hello, the data set, the status) are sent before
    anything; a full transfer replaces the change sets queued, never them;
    of the statuses, the last one is sent, after the change sets queued
    before it; a heartbeat goes when nothing else is queued. Change sets
    queued past :data:`BEHIND_BYTES` disconnect it, as does a queue that
    has not drained for :data:`STUCK_SECONDS` (:meth:`drop`). The pieces
    are the leader's own bytes, shared by every follower: nothing is copied
    for one.
    """

    __slots__ = (
        "_beat",
        "_decisions",
        "_first",
        "_pieces",
        "_scope",
        "_size",
        "_status",
        "_wake",
        "idle",
        "over",
        "since",
    )

    def __init__(self, *first: bytes, now: float = 0.0) -> None:
        self._first: tuple[bytes, ...] = first
        self._pieces: deque[bytes] = deque()
        self._size = 0
        self._status: bytes | None = None
        self._decisions: bytes | None = None
        self._beat = False
        self._wake = anyio.Event()
        self._scope = anyio.CancelScope()  # the pump's: a send stuck on it ends
        self.over = False  # fell behind past the bound: to be disconnected
        #: Whether everything queued has been sent (the pump waits for more).
        self.idle = False
        #: When it was last seen idle (by the leader's guard).
        self.since = now

    def put(self, data: bytes, *, full: bool = False) -> None:
        """Queue a change set (a full transfer replaces those queued)."""
        if full:
            self._pieces.clear()
            self._size = 0
        elif self._size + len(data) > BEHIND_BYTES:
            self.drop()
            return
        self._pieces.append(data)
        self._size += len(data)
        self._wake.set()

    def put_status(self, data: bytes) -> None:
        """The leader's status now (it replaces one not sent yet)."""
        self._status = data
        self._wake.set()

    def put_decisions(self, data: bytes) -> None:
        """The leader's guard decisions now (they replace those not sent yet)."""
        self._decisions = data
        self._wake.set()

    def beat(self) -> None:
        """A heartbeat, sent if nothing else is by then (one at most is pending)."""
        self._beat = True
        self._wake.set()

    def drop(self) -> None:
        """Disconnect it: it fell too far behind (what it holds is dropped with it)."""
        self.over = True
        self._pieces.clear()
        self._size = 0
        self._scope.cancel()  # (its pump may wait on a send it never reads)

    async def pump(self, stream: SocketStream) -> None:
        """Send what is queued as it comes, until the follower falls too far behind or goes."""
        with self._scope, contextlib.suppress(*wire.GONE):
            first, self._first = self._first, ()
            if sum(map(len, first)) <= _CHUNK:  # (one write: read at once, status too)
                first = (b"".join(first),)
            for data in first:
                if data:  # (no data set yet: nothing between hello and status)
                    await _send(stream, data)
            while not self.over:
                self.idle = True
                await self._wake.wait()
                self.idle = False
                self._wake = anyio.Event()
                sent = False
                while self._pieces and not self.over:
                    data = self._pieces.popleft()
                    self._size -= len(data)
                    await _send(stream, data)
                    sent = True
                status, self._status = self._status, None
                if status is not None and not self.over:
                    await stream.send(status)
                    sent = True
                decisions, self._decisions = self._decisions, None
                if decisions is not None and not self.over:
                    await stream.send(decisions)
                    sent = True
                beat, self._beat = self._beat, False
                if beat and not sent and not self.over:
                    await stream.send(wire.HEARTBEAT)


async def _send(stream: SocketStream, data: bytes) -> None:
    """``data`` in pieces of :data:`_CHUNK`: the socket's buffer never holds a copy of it all."""
    if len(data) <= _CHUNK:
        await stream.send(data)
        return
    view = memoryview(data)
    for start in range(0, len(data), _CHUNK):
        await stream.send(view[start : start + _CHUNK])  # type: ignore[arg-type]  # (bytes-like)


@final
class PlaneServer:
    """Serves the leader's data to the followers on the plane's socket.

    ``environment``: this process's (:func:`._wire.environment_of`);
    ``mirror``: the applied data as event texts; ``status``: the current
    data-source status; ``source``: its flag source in words, if not the
    SDK key's (``Plane.source``); ``guards``: this process's guards (None:
    none; followers' reports are read and dropped). :meth:`publish` and
    :meth:`publish_status` are synchronous and never block: they queue.
    """

    __slots__ = (
        "_decisions",
        "_environment",
        "_followers",
        "_full",
        "_guards",
        "_mirror",
        "_now",
        "_path",
        "_refused",
        "_source",
        "_status",
        "_unguarded_said",
        "environment_id",
    )

    def __init__(
        self,
        path: str,
        environment: str,
        mirror: EventMirror,
        status: Callable[[], DataSourceStatus],
        source: str | None = None,
        guards: SafeLink | None = None,
    ) -> None:
        self._path = path
        self._guards = guards
        #: Said that followers report guards this leader does not run.
        self._unguarded_said = False
        #: The guards' decisions as last sent (None: none yet).
        self._decisions: bytes | None = None
        self._environment = environment
        self._source = source
        self._mirror = mirror
        self._status = status
        self._followers: set[_Outbox] = set()
        #: The whole data set as sent on connect, made once per change and
        #: shared by every follower that connects before the next.
        self._full: bytes | None = None
        #: The environment's id the flag service named (``X-LD-EnvID``), if any.
        self.environment_id: str | None = None
        #: The clock's time, as the guard last read it.
        self._now = 0.0
        #: When each cause of refusal was last logged.
        self._refused: dict[str, float] = {}

    @property
    def followers(self) -> int:
        """How many followers are connected now."""
        return len(self._followers)

    def publish(self, change_set: ChangeSet, events: list[str]) -> None:
        """A change set the leader applied (``events``: what it changed, :meth:`EventMirror.fold`)."""
        if change_set.intent is IntentCode.TRANSFER_NONE:
            return
        self._full = None  # (made again when a follower next connects)
        if not self._followers:
            return
        full = change_set.intent is IntentCode.TRANSFER_FULL
        data = wire.changes(change_set.intent, events, self._mirror.selector)
        for outbox in self._followers:
            outbox.put(data, full=full)

    def decide(self) -> None:
        """Send what the guards decide to every follower, if it changed."""
        if self._guards is None:
            return
        line = self._guards.decisions_line()
        if line is None or line == self._decisions:
            return
        self._decisions = line
        for outbox in self._followers:
            outbox.put_decisions(line)

    def publish_status(self, status: DataSourceStatus) -> None:
        """The leader's data-source status changed."""
        if self._followers:
            data = wire.status(status, self.environment_id)
            for outbox in self._followers:
                outbox.put_status(data)

    async def listen(self) -> SocketListener:
        """The plane's socket, made (``0600``) for this leader.

        A socket left there by a leader that is gone is replaced (the
        caller holds the lock: no leader serves it); one something still
        listens on is another program's, and left as it is.

        Raises:
            PlaneUnusable: something that is not a socket is at the path,
                or a socket something listens on (left as they are), or
                the socket cannot be made there.
        """
        path = self._path
        if socket_at(path) and _listened(path):
            raise PlaneUnusable(
                f"something that is no leader of this plane listens on {path}:"
                " left as it is"
            )
        try:
            listener = await anyio.create_unix_listener(path, mode=0o600)
        except OSError as exc:
            raise PlaneUnusable(
                f"cannot make the plane's socket {path} ({exc.strerror or exc})"
            ) from None
        inherit_not(listener.extra(SocketAttribute.raw_socket))
        return listener

    async def serve(self, listener: SocketListener, clock: Clock) -> None:
        """Serve followers on ``listener`` until cancelled; the socket is removed as it ends.

        A socket deleted under it is made again (checked every
        :data:`_GUARD_SECONDS`): new followers find the leader again. What
        goes wrong with the socket (a folder deleted, no descriptor left to
        accept with) is a WARNING and tried again: the leader's own data
        system goes on whatever happens here.
        """
        async with anyio.create_task_group() as group:
            made = _inode(self._path)
            self._now = clock.now()
            self.decide()
            group.start_soon(self._serve_on, listener, made, clock)
            while True:
                await clock.sleep(_GUARD_SECONDS)
                self._beat(clock.now())
                self.decide()
                now = _inode(self._path)
                if made is not None and now == made:
                    continue
                if now is not None:
                    if made is not None:
                        logger.warning(
                            "Something replaced the flag plane's socket %s:"
                            " followers that start now cannot reach this leader;"
                            " it is left as it is",
                            self._path,
                        )
                    made = None  # (said once; checked again, in case it goes)
                    continue
                try:
                    listener = await self.listen()
                except PlaneUnusable as exc:
                    logger.warning("The flag plane's socket is gone: %s", exc)
                    made = None
                    continue
                logger.warning(
                    "The flag plane's socket %s was deleted: made again", self._path
                )
                made = _inode(self._path)
                group.start_soon(self._serve_on, listener, made, clock)

    def _beat(self, now: float) -> None:
        """A heartbeat to every follower; one that has not drained for too long is dropped."""
        self._now = now
        for outbox in list(self._followers):
            if outbox.idle:
                outbox.since = now
            elif now - outbox.since >= STUCK_SECONDS:
                logger.info(
                    "A follower of the flag plane at %s read nothing of what it was"
                    " sent for %g s: disconnected",
                    self._path,
                    STUCK_SECONDS,
                )
                outbox.drop()
                continue
            outbox.beat()

    async def _serve_on(
        self, listener: SocketListener, made: int | None, clock: Clock
    ) -> None:
        """Accept followers on ``listener`` until cancelled (a failed accept is retried)."""
        try:
            async with listener:
                while not await self._accepting(listener):
                    await clock.sleep(_GUARD_SECONDS)
        finally:
            if made is not None and _inode(self._path) == made:  # still ours
                with contextlib.suppress(OSError):
                    os.unlink(self._path)

    async def _accepting(self, listener: SocketListener) -> bool:
        """Accept followers until cancelled; False: an accept failed (said)."""
        try:
            await listener.serve(self._follower)
        except (anyio.BrokenResourceError, OSError) as exc:
            logger.warning(
                "The flag plane's leader could not accept a follower (%s):"
                " trying again",
                exc,
            )
            return False
        return True  # (never: serve() returns only when cancelled)

    async def _follower(self, accepted: SocketStream) -> None:
        """One follower's connection, start to end (never raises)."""
        try:
            stream = await transported(accepted)
        except OSError:
            return  # (no descriptor left: it comes again)
        async with stream:
            try:
                await self._serve_one(stream)
            except wire.GONE:
                pass  # it went away
            except Exception:  # a bug of ours: this follower reconnects
                logger.exception("The flag plane's leader failed serving a follower")

    async def _serve_one(self, stream: SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        line: bytes | None = None
        with anyio.move_on_after(_HELLO_SECONDS):
            try:
                line = await reader.receive_until(b"\n", wire.MAX_HELLO)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound):
                return
        if line is None:
            return  # no hello in time
        said = wire.read_hello(line)
        refused = _refusal(said, self._environment, self._source)
        if other_user(stream.extra(SocketAttribute.raw_socket)):
            refused = "a process of another user"
        if refused is not None:
            self._say_refused(refused)
            await stream.send(wire.hello(self._environment, refused, self._source))
            return
        # What it gets first and what comes after, with no await between:
        # the hello, the data set, then the status the data is in.
        mirror = self._mirror
        full = self._full
        if full is None and mirror.full:
            full = self._full = wire.changes(
                IntentCode.TRANSFER_FULL, mirror.full_events(), mirror.selector
            )
        outbox = _Outbox(
            wire.hello(self._environment, source=self._source),
            full or b"",
            wire.status(self._status(), self.environment_id),
            self._decisions or b"",
            now=self._now,
        )
        self._followers.add(outbox)
        try:
            async with anyio.create_task_group() as group:

                async def heard() -> None:
                    # What it sends after its hello, until its end (or junk).
                    with contextlib.suppress(*wire.GONE):
                        await self._read(reader)
                    group.cancel_scope.cancel()

                group.start_soon(heard)
                await outbox.pump(stream)
                group.cancel_scope.cancel()
            if outbox.over:
                logger.info(
                    "A follower of the flag plane at %s fell more than %d MiB"
                    " behind: disconnected (it reconnects to the whole data set)",
                    self._path,
                    BEHIND_BYTES // (1024 * 1024),
                )
        finally:
            self._followers.discard(outbox)

    async def _read(self, reader: BufferedByteReceiveStream) -> None:
        """A follower's lines after its hello, until it goes or sends junk (said).

        A guard report goes to the guards, and what they decide then to
        every follower; an event it does not know (a later version's) is
        skipped.

        Raises:
            anyio.EndOfStream: the follower went (or another of :data:`._wire.GONE`).
        """
        while True:
            try:
                line = await reader.receive_until(b"\n", wire.MAX_GUARD_LINE)
            except anyio.IncompleteRead:
                return  # it went in the middle of a line
            except anyio.DelimiterNotFound:
                self._say_dropped(
                    f"a line longer than {wire.MAX_GUARD_LINE // 1024} KiB"
                )
                return
            try:
                item = await parse_json(line)
            except ProtocolError:
                item = None
            if type(item) is not dict or type(item.get("event")) is not str:
                self._say_dropped("a line that is not a JSON event")
                return
            if item["event"] != "guard-report":
                continue  # (a later version's event)
            report = wire.read_guard_report(item)
            if report is None:
                self._say_dropped("a guard report without a member and counts")
                return
            if self._guards is not None:
                self._guards.reported(*report)
                self.decide()
            elif not self._unguarded_said:
                self._unguarded_said = True
                logger.warning(
                    "A follower of the flag plane at %s reports guards, but its"
                    " leader (this process) runs none: they count and decide"
                    " nothing on this host. Only a leader decides for a plane: let"
                    " a process with the same guards lead (not the `aioflags plane`"
                    " command, which runs none). Said once",
                    self._path,
                )

    def _say_dropped(self, what: str) -> None:
        """A follower sent junk: it is disconnected (one line per cause a minute)."""
        self._say(
            what,
            f"The flag plane's leader at {self._path} dropped a follower: it sent"
            f" {what}",
        )

    def _say_refused(self, why: str) -> None:
        """One line per cause of refusal per minute, never a traceback."""
        self._say(
            why.split(",")[0],
            f"The flag plane's leader at {self._path} refused a process: {why}",
        )

    def _say(self, cause: str, message: str) -> None:
        """``message`` as a WARNING, unless ``cause`` was said in the last minute."""
        last = self._refused.get(cause)
        if last is not None and self._now - last < _QUIET_SECONDS:
            return
        self._refused[cause] = self._now
        logger.warning("%s", message)


def _listened(path: str) -> bool:
    """Whether something accepts connections on the socket at ``path`` (at once: it is local)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except BlockingIOError:
            return True  # (its backlog is full: it listens)
        except OSError:
            return False  # refused: a socket file nobody listens on
    return True


def _inode(path: str) -> int | None:
    """The inode at ``path`` (a link not followed); None: nothing there."""
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


def _refusal(
    said: wire.Hello | None, environment: str, source: str | None
) -> str | None:
    """Why a follower's hello is refused (None: it is not); ``source``: the leader's."""
    if said is None:
        return "no aioflags-plane hello"
    if said.version != wire.VERSION:
        return f"wire version {said.version}, and this leader speaks {wire.VERSION}"
    if said.environment != environment:
        return wire.mismatch(source, said.source)
    return None
