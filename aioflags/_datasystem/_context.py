"""What a source factory receives (``SourceContext``) and the factories' types.

Below the sources in the layers: every source names these types, and the
``DataSystem`` presets above build sources from them (docs/architecture.md).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, TypeVar, final

from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    import random as _random

    import httpx

    from aioflags._core._clock import Clock
    from aioflags._core._settings import Settings

    from ._datatypes import Basis, Selector, Update

__all__ = [
    "PROGRESS_BYTES",
    "InitializerFactory",
    "Progress",
    "SourceContext",
    "SynchronizerFactory",
    "at_run_end",
    "end_run",
    "is_local_source",
    "is_streaming",
    "mark_flag_system",
    "mark_local",
    "mark_streaming",
    "progress_of",
    "source_flag_system",
]

#: The bytes a response must bring in each of its deadline's windows for the
#: deadline to move on rather than cut it (:meth:`Progress.moved`): a big
#: payload on a slow link is slow, not stalled; a server that trickles a
#: byte now and then is stalled.
PROGRESS_BYTES: Final = 16 * 1024


@final
class SourceContext(Frozen):
    """What a source factory receives: the current selector, HTTP, config, clock.

    Attributes:
        selector: returns the store's current selector (read it on every
            request: the basis must be recomputed each time).
        http: the client's shared ``httpx.AsyncClient`` (pooled connections).
            A client whose sources are all local or another flag system's
            (``mark_flag_system``: a connection of their own), with no events
            to send, makes none: reading it then raises ``RuntimeError``.
        config: the client's configuration (its ``Config``), typed by the
            options a source may read: every one but ``data_system``,
            ``hooks`` and ``big_segments``.
        clock: the clock to measure durations and sleep with.
        random: the random source for jitter.
    """

    __slots__ = ("selector", "_http", "config", "clock", "random", "_ends", "_progress")  # noqa: RUF023 - fields in order
    selector: Callable[[], Selector]
    _http: httpx.AsyncClient | None
    config: Settings
    clock: Clock
    random: _random.Random
    _ends: _RunEnd
    _progress: Progress

    def __init__(
        self,
        *,
        selector: Callable[[], Selector],
        http: httpx.AsyncClient | None,
        config: Settings,
        clock: Clock,
        random: _random.Random,
    ) -> None:
        set_field(self, "selector", selector)
        set_field(self, "_http", http)
        set_field(self, "config", config)
        set_field(self, "clock", clock)
        set_field(self, "random", random)
        set_field(self, "_ends", _RunEnd())
        set_field(self, "_progress", Progress())

    @property
    def http(self) -> httpx.AsyncClient:
        """The client's shared ``httpx.AsyncClient`` (pooled connections)."""
        if self._http is None:
            raise RuntimeError(
                "this client made no HTTP client: every source of its data "
                "system is local or another flag system's, and it sends no events"
            )
        return self._http


class Progress:
    """The bytes of responses a run's sources have received: slow is not stalled (issue 95, K1).

    The HTTP sources count each chunk of a body as it arrives
    (``body_pieces``' ``on_bytes``). One source of a run reads at a time,
    so what arrives while one runs is its own. A deadline that would cut a
    response asks :meth:`moved` first (the supervisor's failover timer, a
    poll's deadline): while the response brings :data:`PROGRESS_BYTES`
    each window, it is given another window.
    """

    __slots__ = ("open", "received")

    def __init__(self) -> None:
        #: Bytes received so far, by every source of the run.
        self.received = 0
        #: Responses being read now (:meth:`receiving`).
        self.open = 0

    def add(self, count: int) -> None:
        """``count`` more bytes arrived."""
        self.received += count

    @contextmanager
    def receiving(self) -> Iterator[None]:
        """While a response's body is read: only an open one is progressing."""
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1

    def mark(self) -> int:
        """Where it is now: the start of a window for :meth:`moved`."""
        return self.received

    def moved(self, since: int) -> bool:
        """Whether a response is being read, and :data:`PROGRESS_BYTES` arrived since ``since``.

        (Bodies that came and ended, a malformed payload polled again and
        again, are no progress: the source is failing, not slow.)
        """
        return self.open > 0 and self.received - since >= PROGRESS_BYTES


def progress_of(context: SourceContext) -> Progress:
    """The :class:`Progress` of the run ``context`` belongs to."""
    return context._progress


class _RunEnd:
    """What sources of one run leave to be closed as the run ends (:func:`at_run_end`).

    Compared by identity (a ``SourceContext`` field that changes nothing
    of its equality but its own).
    """

    __slots__ = ("closers",)

    def __init__(self) -> None:
        self.closers: list[Callable[[], Awaitable[None]]] = []


def at_run_end(context: SourceContext, close: Callable[[], Awaitable[None]]) -> None:
    """Await ``close`` as the run ``context`` belongs to ends (after its sources have).

    For what one source of a run leaves to another (flagd's initializer's
    connection, for its synchronizer): closed at the end if nobody took it.
    ``close`` must do nothing once what it closes is gone.
    """
    context._ends.closers.append(close)


async def end_run(context: SourceContext) -> None:
    """Await what the run's sources left to close (:func:`at_run_end`), last first."""
    closers = context._ends.closers
    while closers:
        await closers.pop()()


InitializerFactory = Callable[[SourceContext], AsyncGenerator["Basis", None]]
SynchronizerFactory = Callable[[SourceContext], AsyncGenerator["Update", None]]
_S = TypeVar("_S", bound=Callable[..., object])


#: Sources that need no SDK key and no flag service (files, in-memory test data).
_LOCAL_SOURCES: weakref.WeakSet[object] = weakref.WeakSet()


def is_local_source(source: object) -> bool:
    """Whether ``source`` was marked local (:func:`mark_local`)."""
    return source in _LOCAL_SOURCES


def mark_local(source: _S) -> _S:
    """Mark a source factory as local: it needs no SDK key and no flag service."""
    _LOCAL_SOURCES.add(source)
    return source


#: The flag system whose flags a source serves, by source (unmarked:
#: LaunchDarkly's, the default). Another system's sources (flagd's: a sync
#: server) have no LaunchDarkly behind them, so no analytics events unless
#: the app names a recorder of its own: ``Config`` asks the system
#: (``events_recorded``); and they talk to no flag service of LaunchDarkly's.
_SOURCE_SYSTEMS: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()


def mark_flag_system(source: _S, name: str) -> _S:
    """Mark a source factory as one that serves the flags of the flag system ``name``.

    Unmarked, a source serves LaunchDarkly's flags, from its flag service.
    """
    _SOURCE_SYSTEMS[source] = name
    return source


def source_flag_system(source: object) -> str | None:
    """The flag system whose flags ``source`` serves (None: unmarked, LaunchDarkly's)."""
    try:
        return _SOURCE_SYSTEMS.get(source)
    except TypeError:  # (a source no weak reference can name: never marked)
        return None


#: The streaming synchronizers (what diagnostic events call "streaming").
_STREAMING_SOURCES: weakref.WeakSet[object] = weakref.WeakSet()


def mark_streaming(source: _S) -> _S:
    """Mark a source factory as a streaming synchronizer."""
    _STREAMING_SOURCES.add(source)
    return source


def is_streaming(source: object) -> bool:
    """Whether ``source`` is one of the streaming synchronizers."""
    return source in _STREAMING_SOURCES
