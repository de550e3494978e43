"""A follower's data source: the leader's data and status, from the plane's socket.

:func:`follow` connects, says hello, and yields an :class:`Update` for
each payload the leader sends (read by FDv2's own event code, into the
same change sets a network source makes) and for each status it reports.
It ends when the leader goes (its socket closes: a close, a crash, a
``kill -9``), or when nobody listens yet; the member then tries to lead,
or follows again. It notes in :class:`Following` when it last heard from
the leader: the member (:mod:`._member`) watches that the leader answers
its hello within :data:`HELLO_ANSWER` and is never silent for
:data:`PLANE_SILENCE` (the leader's heartbeat), and runs its own upstream
if not. :func:`answers` asks a plane whether a leader answers there now.
"""

from __future__ import annotations

import math
import os
import stat
from typing import TYPE_CHECKING, Final, final

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream

from aioflags._datasystem._datatypes import ErrorInfo, ErrorKind, SourceState, Update
from aioflags._datasystem._payloads import ChangeSetBuilder, _poll_event
from aioflags._datasystem._sources._common import parse_json
from aioflags._datasystem._sources._sse import LineSplitter

from . import _wire as wire
from ._lock import PlaneUnusable, other_user
from ._socket import transported

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

    from anyio.abc import SocketStream

    from aioflags._core._clock import Clock
    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._core._settings import Settings

__all__ = ["HELLO_ANSWER", "PLANE_SILENCE", "Following", "answers", "follow"]

#: How long the leader has to answer a hello: a process starting beside a
#: leader that does not answer is READY from its own upstream within 2 s of
#: its normal start (this, and the upstream's connect).
HELLO_ANSWER: Final = 1.5
#: A leader that sends nothing for this long is gone, for now (it sends a
#: heartbeat at least every second).
PLANE_SILENCE: Final = 3.0
_KINDS: Final = {kind.value: kind for kind in ErrorKind}
_HEARTBEAT: Final = wire.HEARTBEAT.decode().rstrip("\n")


@final
class Following:
    """What one :func:`follow` saw: whether it reached a leader that took it, and when it last heard from it."""

    __slots__ = (
        "answered",
        "applied",
        "applied_at",
        "beats",
        "broken",
        "cause",
        "connected",
        "heard",
        "payloads",
        "send",
        "started",
    )

    def __init__(self, now: float) -> None:
        self.started = now
        #: The leader answered its hello, and took it.
        self.connected = False
        #: Set when it did: then :attr:`send` writes a line to the leader.
        self.answered = anyio.Event()
        self.send: Callable[[bytes], Awaitable[None]] | None = None
        #: It got a payload from the leader (not only a hello or a status).
        self.applied = False
        #: When it got the first (None: none yet), and how many it got.
        self.applied_at: float | None = None
        self.payloads = 0
        #: When the leader last sent anything (its hello, data, a heartbeat).
        self.heard = now
        #: Why this process could not go on following (None: the leader went).
        self.cause: str | None = None
        #: The leader sent what this process cannot use (it backs off longer).
        self.broken = False
        #: Whether the leader sends heartbeats (False: its status said it
        #: does not, a leader from before them, whose silence says nothing).
        self.beats = True

    def deadline(self) -> float:
        """When the leader is gone for now if it sends nothing more."""
        if not self.connected:
            return self.started + HELLO_ANSWER
        return self.heard + PLANE_SILENCE if self.beats else math.inf

    def resumed(self, now: float) -> None:
        """This process itself did not run for a while (stopped, its loop blocked): no silence of the leader's is known.

        What the leader sent meanwhile waits in the socket, unread: it gets
        :data:`HELLO_ANSWER` from ``now`` to be heard, as a new leader has.
        """
        self.started = max(self.started, now)
        self.heard = max(self.heard, now - PLANE_SILENCE + HELLO_ANSWER)

    def took(self, now: float) -> None:
        """A payload of the leader's was applied."""
        self.applied = True
        if self.applied_at is None:
            self.applied_at = now
        self.payloads += 1

    def usable(self, now: float, period: float) -> bool:
        """Whether the leader's data proved usable past its first payload, or for ``period`` seconds.

        A leader whose whole data set applies and whose next line cannot
        be used is no usable leader: a follower backs off from it as from
        one that sends nothing usable at all.
        """
        if self.payloads >= 2:
            return True
        return self.applied_at is not None and now - self.applied_at >= period


async def follow(
    path: str,
    environment: str,
    config: Settings,
    clock: Clock,
    following: Following,
    source: str | None = None,
    decided: Callable[[JSONObject], None] | None = None,
) -> AsyncGenerator[Update, None]:
    """The leader's payloads and statuses as updates, until its socket closes.

    Ends at once when nothing listens at ``path`` (no leader yet).
    ``source``: this process's flag source in words, if not the SDK key's
    (``Plane.source``). ``decided``: told the leader's guard decisions
    (``guard-decisions``; ignored without it). Once the leader answers,
    ``following.send`` writes to it (:func:`._guardlink.send_reports`).

    Raises:
        PlaneUnusable: something that is not a socket is at ``path``, or the
            leader refused this process (another environment or wire version).
        ProtocolError: the leader sent what FDv2's event code cannot use.
    """
    stream = await _connect(path)
    if stream is None:
        return  # nobody listens (a leader starting, or gone)
    async with stream:
        reader = BufferedByteReceiveStream(stream)
        try:
            await stream.send(wire.hello(environment, source=source))
            line = await reader.receive_until(b"\n", wire.MAX_HELLO)
        except (*wire.GONE, anyio.IncompleteRead, anyio.DelimiterNotFound):
            return  # the leader went as it was reached
        _check_hello(path, wire.read_hello(line), environment, source)
        following.connected = True
        following.heard = clock.now()
        following.send = stream.send
        following.answered.set()
        builder = ChangeSetBuilder(
            max_changes=config.max_payload_changes, max_bytes=config.max_payload_bytes
        )
        lines = LineSplitter(config.max_payload_bytes)
        pending = b""  # (what came after the hello, the reader gives first)
        while True:
            for text in lines.feed(pending):
                if text and text != _HEARTBEAT:
                    update = await _update(builder, text, clock, following, decided)
                    if update is not None:
                        if update.change_set is not None:
                            following.took(clock.now())
                        yield update
            try:
                pending = await reader.receive()
            except wire.GONE:
                return  # the leader went
            following.heard = clock.now()


async def answers(path: str, environment: str, source: str | None = None) -> bool:
    """Whether a leader that takes this process answers at ``path`` now (its hello, at once).

    The caller bounds the wait (:data:`HELLO_ANSWER`).

    Raises:
        PlaneUnusable: as for :func:`follow`.
    """
    stream = await _connect(path)
    if stream is None:
        return False
    async with stream:
        reader = BufferedByteReceiveStream(stream)
        try:
            await stream.send(wire.hello(environment, source=source))
            line = await reader.receive_until(b"\n", wire.MAX_HELLO)
        except (*wire.GONE, anyio.IncompleteRead, anyio.DelimiterNotFound):
            return False
    _check_hello(path, wire.read_hello(line), environment, source)
    return True


async def _connect(path: str) -> SocketStream | None:
    """A connection to the leader's socket at ``path`` (None: nobody listens there).

    Raises:
        PlaneUnusable: something that is not a socket is at ``path``, or
            the process listening there runs as another user.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(found.st_mode):
        raise PlaneUnusable(f"the plane's path {path} is not a socket: left as it is")
    try:
        stream = await anyio.connect_unix(path)
    except OSError:
        return None
    if other_user(stream.extra(SocketAttribute.raw_socket)):
        await stream.aclose()
        raise PlaneUnusable(
            f"the leader of the flag plane at {path} runs as another user:"
            " this process takes no flag data from it"
        )
    try:
        return await transported(stream)
    except OSError:
        return None  # (no descriptor left: as if nobody listened, tried again)


def _check_hello(
    path: str, said: wire.Hello | None, environment: str, source: str | None
) -> None:
    """Raise :class:`PlaneUnusable` unless the leader's hello takes this process."""
    if said is None:
        raise PlaneUnusable(f"what listens at {path} is no flag plane's leader")
    if said.refused is not None:
        raise PlaneUnusable(
            f"the leader of the flag plane at {path} refused: {said.refused}"
        )
    if said.version != wire.VERSION:
        raise PlaneUnusable(
            f"the leader of the flag plane at {path} speaks wire version"
            f" {said.version}, and this process {wire.VERSION}"
        )
    if said.environment == environment:
        return
    if said.source is None and source is None:
        raise PlaneUnusable(
            f"the leader of the flag plane at {path} serves another environment"
            " (another SDK key)"
        )
    raise PlaneUnusable(
        f"on the flag plane at {path}, {wire.mismatch(said.source, source)}"
    )


async def _update(
    builder: ChangeSetBuilder,
    text: str,
    clock: Clock,
    following: Following,
    decided: Callable[[JSONObject], None] | None,
) -> Update | None:
    """One line of the leader's: a payload's end or a status as an update (None: neither).

    Guard decisions go to ``decided`` (None: dropped).
    """
    item = await parse_json(text)
    if type(item) is dict:
        event = item.get("event")
        if event == "plane-status":
            data = item.get("data")
            following.beats = type(data) is dict and data.get("heartbeat") is True
            return _status(data, clock)
        if event == "guard-decisions":
            decisions = item.get("data")
            if decided is not None and type(decisions) is dict:
                decided(decisions)
            return None
    change_set = _poll_event(builder, item, text)
    if change_set is None:
        return None
    return Update(state=SourceState.VALID, change_set=change_set)


def _status(data: JSONValue, clock: Clock) -> Update | None:
    """The leader's status as this follower's: VALID, or INTERRUPTED with its error.

    With the environment's id the leader learned, if it did (for the hooks).

    A leader that is OFF, or starting with an error (its upstream down), is
    INTERRUPTED for its followers: their data is no fresher than its.
    """
    if type(data) is not dict:
        return None
    named = data.get("environment_id")
    environment_id = named if type(named) is str and named else None
    state = data.get("state")
    if state == SourceState.VALID.value:
        return Update(state=SourceState.VALID, environment_id=environment_id)
    error = data.get("error")
    if state == SourceState.INITIALIZING.value and error is None:
        return None  # a leader starting: nothing to say yet
    if state not in (
        SourceState.INITIALIZING.value,  # (its upstream failed as it started)
        SourceState.INTERRUPTED.value,
        SourceState.OFF.value,
    ):
        return None
    said: dict[str, JSONValue] = error if type(error) is dict else {}
    name, code, message = said.get("kind"), said.get("status_code"), said.get("message")
    kind = _KINDS.get(name) if type(name) is str else None
    return Update(
        state=SourceState.INTERRUPTED,
        error=ErrorInfo(
            kind=kind or ErrorKind.UNKNOWN,
            status_code=code if type(code) is int else 0,
            message=f"the flag plane's leader: {message or state}",
            time=clock.now(),
        ),
        environment_id=environment_id,
    )
