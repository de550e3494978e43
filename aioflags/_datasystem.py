"""DataSystem: which sources run, in what order, and the failover timings.

Sources are async generators built by *factories*: a factory is called with a
:class:`SourceContext` each time the source (re)starts and returns the
generator. An initializer yields :class:`Basis` results; a synchronizer yields
:class:`Update` results for as long as it runs.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, final

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    import os
    import random

    import httpx

    from ._clock import Clock
    from ._config import Config
    from ._datatypes import Basis, Selector, Update

__all__ = [
    "DataSystem",
    "InitializerFactory",
    "SourceContext",
    "SynchronizerFactory",
    "is_local",
    "mark_local",
]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SourceContext:
    """What a source factory receives: the current selector, HTTP, config, clock.

    Attributes:
        selector: returns the store's current selector (read it on every
            request: the basis must be recomputed each time).
        http: the client's shared ``httpx.AsyncClient`` (pooled connections).
        config: the client's configuration.
        clock: the clock to measure durations and sleep with.
        random: the random source for jitter.
    """

    selector: Callable[[], Selector]
    http: httpx.AsyncClient
    config: Config
    clock: Clock
    random: random.Random


InitializerFactory = Callable[[SourceContext], AsyncGenerator["Basis", None]]
SynchronizerFactory = Callable[[SourceContext], AsyncGenerator["Update", None]]
_S = TypeVar("_S", bound=Callable[..., object])


#: Sources that need no SDK key and no flag service (files, in-memory test data).
_LOCAL_SOURCES: weakref.WeakSet[object] = weakref.WeakSet()


def mark_local(source: _S) -> _S:
    """Mark a source factory as local: it needs no SDK key and no flag service."""
    _LOCAL_SOURCES.add(source)
    return source


def is_local(system: DataSystem) -> bool:
    """Whether every source of ``system`` is local (then no events are sent)."""
    sources = (*system.initializers, *system.synchronizers)
    if system.fdv1_fallback is not None:
        sources += (system.fdv1_fallback,)
    return bool(sources) and all(s in _LOCAL_SOURCES for s in sources)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DataSystem:
    """The data system's sources and failover timings.

    Use a preset (:meth:`default`, :meth:`streaming`, :meth:`polling`,
    :meth:`fdv1`, :meth:`file`) or :meth:`custom`.

    Attributes:
        initializers: run in order until one yields data with a defined selector.
        synchronizers: the primary first, then fallbacks.
        fdv1_fallback: the FDv1 synchronizer the server's fallback directive
            switches to, for good; ``None`` means the directive turns the data
            system OFF.
        initializing_timeout: fail over when a synchronizer has not reported
            valid data for this many seconds (10).
        interrupted_timeout: fail over when a synchronizer stays interrupted
            this long (60).
        recovery_after: go back to the primary after this long valid on a
            fallback synchronizer (300).

    Added in version 0.1.0.
    """

    initializers: tuple[InitializerFactory, ...] = ()
    synchronizers: tuple[SynchronizerFactory, ...] = ()
    fdv1_fallback: SynchronizerFactory | None = None
    initializing_timeout: float = 10.0
    interrupted_timeout: float = 60.0
    recovery_after: float = 300.0

    def __post_init__(self) -> None:
        for name in ("initializing_timeout", "interrupted_timeout", "recovery_after"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(
                    f"DataSystem.{name} must be a positive number of seconds"
                )
        for source in (*self.initializers, *self.synchronizers):
            if not callable(source):
                raise ConfigurationError(
                    f"data sources must be callables, got {source!r}"
                )
        if self.fdv1_fallback is not None and not callable(self.fdv1_fallback):
            raise ConfigurationError("fdv1_fallback must be a callable or None")

    @classmethod
    def default(cls) -> DataSystem:
        """The recommended data system: streaming, with polling to fall back on.

        FDv2 polling initializer, then FDv2 streaming (primary) with FDv2
        polling (secondary); FDv1 polling as the directed fallback.
        """
        from . import sources

        return cls(
            initializers=(sources.polling_initializer(),),
            synchronizers=(
                sources.streaming_synchronizer(),
                sources.polling_synchronizer(),
            ),
            fdv1_fallback=sources.fdv1_polling_synchronizer(),
        )

    @classmethod
    def streaming(cls) -> DataSystem:
        """FDv2 streaming only; FDv1 polling as the directed fallback."""
        from . import sources

        return cls(
            synchronizers=(sources.streaming_synchronizer(),),
            fdv1_fallback=sources.fdv1_polling_synchronizer(),
        )

    @classmethod
    def polling(cls, interval: float = 30.0) -> DataSystem:
        """FDv2 polling only, every ``interval`` seconds; FDv1 polling as the directed fallback."""
        from . import sources

        if not interval > 0:
            raise ConfigurationError(
                "the polling interval must be a positive number of seconds"
            )
        return cls(
            synchronizers=(sources.polling_synchronizer(interval=interval),),
            fdv1_fallback=sources.fdv1_polling_synchronizer(interval=interval),
        )

    @classmethod
    def fdv1(cls) -> DataSystem:
        """For services that only speak FDv1 (older relay proxies).

        FDv1 streaming, with FDv1 polling as the secondary synchronizer.
        """
        from . import sources

        return cls(
            synchronizers=(
                sources.fdv1_streaming_synchronizer(),
                sources.fdv1_polling_synchronizer(),
            ),
        )

    @classmethod
    def file(
        cls, *paths: str | os.PathLike[str], reload: bool = False, interval: float = 1.0
    ) -> DataSystem:
        """Offline: flags from files (JSON, or YAML with ``aioflags[yaml]``).

        LaunchDarkly's file-data-source shape: ``flags``, ``flagValues`` and
        ``segments``. A missing or malformed file is reported through the
        status (the last good data keeps being served); with ``reload`` the
        files are checked every ``interval`` seconds and edits are applied.
        """
        from ._sources._file import file_synchronizer

        if not paths:
            raise ConfigurationError("DataSystem.file() needs at least one path")
        if not interval > 0:
            raise ConfigurationError(
                "the reload interval must be a positive number of seconds"
            )
        return cls(
            synchronizers=(
                mark_local(file_synchronizer(*paths, reload=reload, interval=interval)),
            )
        )

    @classmethod
    def custom(
        cls,
        *,
        initializers: list[InitializerFactory] | tuple[InitializerFactory, ...] = (),
        synchronizers: list[SynchronizerFactory] | tuple[SynchronizerFactory, ...] = (),
        fdv1_fallback: SynchronizerFactory | None = None,
    ) -> DataSystem:
        """Any sources: async-generator factories called with a SourceContext."""
        return cls(
            initializers=tuple(initializers),
            synchronizers=tuple(synchronizers),
            fdv1_fallback=fdv1_fallback,
        )

    def with_timings(
        self,
        *,
        initializing_timeout: float | None = None,
        interrupted_timeout: float | None = None,
        recovery_after: float | None = None,
    ) -> DataSystem:
        """A copy with other failover and recovery timings (seconds)."""
        return dataclasses.replace(
            self,
            initializing_timeout=self.initializing_timeout
            if initializing_timeout is None
            else initializing_timeout,
            interrupted_timeout=self.interrupted_timeout
            if interrupted_timeout is None
            else interrupted_timeout,
            recovery_after=self.recovery_after
            if recovery_after is None
            else recovery_after,
        )
