"""DataSystem: which sources run, in what order, and the failover timings.

Sources are async generators built by *factories*: a factory is called with a
:class:`SourceContext` each time the source (re)starts and returns the
generator. An initializer yields :class:`Basis` results; a synchronizer yields
:class:`Update` results for as long as it runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, final

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field
from aioflags._core._options import check
from aioflags._evaluation._model import formats, registered, system_named

from ._context import is_local_source, mark_local, source_flag_system
from ._options import FILE, OPTIONS, POLLING
from ._plane._config import Plane, plane_of
from ._stores._mode import StoreMode

if TYPE_CHECKING:
    from aioflags._evaluation._system_parts import SystemConfiguration

    from ._context import InitializerFactory, SynchronizerFactory
    from ._sources._saved import SavedState
    from ._stores._base import PersistentStore

__all__ = [
    "DataSystem",
    "check_file_reading",
    "configuration_named",
    "configurations",
    "data_system_made",
    "flag_system_of",
    "grace_period_of",
    "is_local",
    "uses_flag_service",
]


def _saved(given: str | os.PathLike[str] | SavedState | None) -> SavedState | None:
    """``saved_state=``: a path (defaults for the rest), or a ``SavedState``."""
    if given is None:
        return None
    from ._sources._saved import SavedState

    return given if isinstance(given, SavedState) else SavedState(given)


def check_file_reading(what: str, format: object, fractional: object) -> None:
    """Refuse a file format or a ``fractional`` bucketing aioflags does not know.

    The formats are the registered flag systems' (``formats()``: each
    system with a document format of its own, and the reader's own shape).
    """
    names = sorted(formats())
    if format is not None and format not in names:
        said = ", ".join(f'"{name}"' for name in names)
        raise ConfigurationError(
            f"{what}(format=...) must be {said} or None "
            f"(told from each file), not {format!r}"
        )
    if type(fractional) is not int or fractional not in (2, 3):
        raise ConfigurationError(
            f"{what}(fractional=...) must be 3 (flagd's bucketing) or 2 "
            f"(its older one), not {fractional!r}"
        )


def _no_saved_state(preset: str, saved_state: object, why: str) -> None:
    """A clear error for ``saved_state=`` given to a preset that reads no network."""
    if saved_state is not None:
        raise ConfigurationError(
            f"DataSystem.{preset}() takes no saved_state: {why}, and nothing is"
            " fetched from the flag service to save. Saved state is for the"
            " presets that are: DataSystem.default(), .streaming(), .polling()"
            " and .custom()"
        )


def _no_plane(preset: str, plane: object, why: str) -> None:
    """A clear error for ``plane=`` given to a preset that reads no network."""
    if plane is not None:
        raise ConfigurationError(
            f"DataSystem.{preset}() takes no plane: {why}, so there is no upstream"
            " for the processes of a host to share. The flag plane is for the"
            " presets that read the flag service: DataSystem.default(),"
            " .streaming(), .polling() and .custom()"
        )


def _is_saved_state(value: object) -> bool:
    from ._sources._saved import SavedState

    return isinstance(value, SavedState)


def grace_period_of(system: DataSystem | None, config_grace_period: float) -> float:
    """The grace period a client runs with: its data system's, else its Config's.

    The one place it is decided (the client's status layer reads it).
    """
    if system is not None and system.grace_period is not None:
        return system.grace_period
    return config_grace_period


def is_local(system: DataSystem) -> bool:
    """Whether every source of ``system`` is local (then no events are sent)."""
    sources = (*system.initializers, *system.synchronizers)
    if system.fdv1_fallback is not None:
        sources += (system.fdv1_fallback,)
    return bool(sources) and all(is_local_source(s) for s in sources)


def uses_flag_service(system: DataSystem) -> bool:
    """Whether a source of ``system`` may talk to the flag service's ``base_uri``/``stream_uri``.

    Not when every source is local or serves another flag system's flags
    (``mark_flag_system``: a flagd sync server, a gRPC connection of its
    own): the client then sets up no TLS for those URIs.
    """
    sources = (*system.initializers, *system.synchronizers)
    if system.fdv1_fallback is not None:
        sources += (system.fdv1_fallback,)
    return not sources or not all(
        is_local_source(s) or source_flag_system(s) is not None for s in sources
    )


def flag_system_of(system: DataSystem) -> str | None:
    """The flag system whose flags every source of ``system`` serves (None: LaunchDarkly's, or several).

    ``DataSystem.flagd``'s sources are flagd's (``mark_flag_system``).
    """
    sources = (*system.initializers, *system.synchronizers)
    names = {source_flag_system(s) for s in sources}
    return names.pop() if len(names) == 1 else None


def configurations() -> tuple[tuple[str, SystemConfiguration], ...]:
    """The registered flag systems' configurations (``FlagSystem.configuration``), with each system's name.

    In the order the systems registered; a system with none (LaunchDarkly's:
    its options are ``Config``'s own) is left out.
    """
    return tuple(
        (system.name, system.configuration)
        for system in registered()
        if system.configuration is not None
    )


def configuration_named(name: str | None) -> SystemConfiguration | None:
    """The configuration of the registered flag system ``name`` (None: none, or no such system)."""
    system = None if name is None else system_named(name)
    return None if system is None else system.configuration


def data_system_made(made: object, name: str) -> DataSystem:
    """``made``, a data system flag system ``name``'s configuration made, as one.

    Raises:
        TypeError: it is no ``DataSystem`` (the system's bug).
    """
    if not isinstance(made, DataSystem):
        raise TypeError(
            f"the {name} flag system's configuration made {made!r}, not a DataSystem"
        )
    return made


def _preset(name: str, *args: object, **options: object) -> DataSystem:
    """``DataSystem.<name>(...)``: the preset flag system ``name`` declares (``SystemConfiguration.preset``).

    Raises:
        ConfigurationError: no flag system of that name with a preset is
            registered.
    """
    configuration = configuration_named(name)
    preset = None if configuration is None else configuration.preset
    if preset is None:
        raise ConfigurationError(
            f"DataSystem.{name}() needs the {name} flag system, which is not"
            " registered: import aioflags before its modules"
        )
    return data_system_made(preset(*args, **options), name)


@final
class DataSystem(Frozen):
    """The data system's sources and failover timings.

    Use a preset (:meth:`default`, :meth:`streaming`, :meth:`polling`,
    :meth:`fdv1`, :meth:`file`, :meth:`daemon`) or :meth:`custom`.

    Attributes:
        initializers: run in order until one yields data with a defined selector.
        synchronizers: the primary first, then fallbacks.
        fdv1_fallback: the FDv1 synchronizer the server's fallback directive
            switches to, for good; ``None`` means the directive turns the data
            system OFF.
        initializing_timeout: fail over when a synchronizer has not reported
            valid data for this many seconds (10); an initializer that has
            given no result by then is cancelled for the next source.
        interrupted_timeout: fail over when a synchronizer stays interrupted
            this long (60).
        recovery_after: go back to the primary after this long valid on a
            fallback synchronizer (300).
        store: the persistent store (``aioflags.stores.RedisStore``) the
            presets read and, in read-write mode, write; ``None``: none.
        store_mode: ``StoreMode.READ_WRITE``: every applied change set is
            written to ``store``; ``StoreMode.READ_ONLY``: never written.
        saved_state: where the last good flag data is kept on disk
            (``aioflags.sources.saved_state``): read first, as the first
            initializer, and written as the network's data arrives; ``None``:
            none. Added in version 0.2.0.
        plane: the flag plane this process shares its upstream on with the
            other processes of its host (the presets' ``plane=PATH``;
            docs/scaling.md); ``None``: none. Added in version 0.2.0.
        grace_period: how long the client stays STALE after its connection
            is lost before it is ERROR, when this data system says
            (``DataSystem.flagd(retry_grace_period=...)``); ``None`` (every
            other preset): ``Config.grace_period`` says. The one the client
            uses is :func:`grace_period_of`'s. Added in version 0.2.0.

    Added in version 0.1.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "initializers",
        "synchronizers",
        "fdv1_fallback",
        "initializing_timeout",
        "interrupted_timeout",
        "recovery_after",
        "store",
        "store_mode",
        "saved_state",
        "plane",
        "grace_period",
    )
    initializers: tuple[InitializerFactory, ...]
    synchronizers: tuple[SynchronizerFactory, ...]
    fdv1_fallback: SynchronizerFactory | None
    initializing_timeout: float
    interrupted_timeout: float
    recovery_after: float
    store: PersistentStore | None
    store_mode: StoreMode
    saved_state: SavedState | None
    plane: Plane | None
    grace_period: float | None

    def __init__(
        self,
        *,
        initializers: Iterable[InitializerFactory] = (),
        synchronizers: Iterable[SynchronizerFactory] = (),
        fdv1_fallback: SynchronizerFactory | None = None,
        initializing_timeout: float = 10.0,
        interrupted_timeout: float = 60.0,
        recovery_after: float = 300.0,
        store: PersistentStore | None = None,
        store_mode: StoreMode = StoreMode.READ_ONLY,
        saved_state: SavedState | None = None,
        plane: Plane | None = None,
        grace_period: float | None = None,
    ) -> None:
        initializers = _sources(initializers)
        if saved_state is not None and not _is_saved_state(saved_state):
            raise ConfigurationError(
                "saved_state must be aioflags.sources.saved_state(path, ...) (the "
                f"presets also take a path), got {saved_state!r}"
            )
        if saved_state is not None and saved_state not in initializers:
            initializers = (saved_state, *initializers)  # (read first)
        set_field(self, "initializers", initializers)
        set_field(self, "synchronizers", _sources(synchronizers))
        set_field(self, "fdv1_fallback", fdv1_fallback)
        set_field(self, "initializing_timeout", initializing_timeout)
        set_field(self, "interrupted_timeout", interrupted_timeout)
        set_field(self, "recovery_after", recovery_after)
        set_field(self, "store", store)
        set_field(self, "store_mode", store_mode)
        set_field(self, "saved_state", saved_state)
        set_field(self, "plane", plane_of(plane, "custom"))
        set_field(self, "grace_period", grace_period)
        self._validate()

    def _validate(self) -> None:
        for option in OPTIONS:
            value = getattr(self, option.name)
            check(option, value, label=f"DataSystem {option.name}")
        for name in ("initializers", "synchronizers"):
            sources = getattr(self, name)
            if not isinstance(sources, tuple):
                raise ConfigurationError(
                    f"DataSystem {name} must be a list (or another iterable) of "
                    f"source factories, got {sources!r}"
                )
        for source in (*self.initializers, *self.synchronizers):
            if not callable(source):
                raise ConfigurationError(
                    f"data sources must be callables, got {source!r}"
                )
        if self.fdv1_fallback is not None and not callable(self.fdv1_fallback):
            raise ConfigurationError("fdv1_fallback must be a callable or None")
        if not isinstance(self.store_mode, StoreMode):
            raise ConfigurationError(
                f"store_mode must be a StoreMode, got {self.store_mode!r}"
            )
        if self.store is not None and not callable(
            getattr(self.store, "connect", None)
        ):
            raise ConfigurationError(
                f"store must be a persistent store such as "
                f"aioflags.stores.RedisStore, got {self.store!r}"
            )

    @classmethod
    def default(
        cls,
        *,
        store: PersistentStore | None = None,
        saved_state: str | os.PathLike[str] | SavedState | None = None,
        plane: str | os.PathLike[str] | None = None,
    ) -> DataSystem:
        """The recommended data system: streaming, with polling to fall back on.

        FDv2 polling initializer, then FDv2 streaming (primary) with FDv2
        polling (secondary); FDv1 polling as the directed fallback.

        With ``store`` (read-write mode): the store is read beside the network
        sources and, if it is initialised, served until the network delivers;
        every change set applied from the network is written to it.

        With ``saved_state`` (a path, or ``aioflags.sources.saved_state(path,
        max_age=..., interval=...)``): the client starts from the data saved
        there, if recent enough, before the network answers, and the data
        from the network is saved there (docs/data-system.md).

        With ``plane`` (a Unix socket's path): the processes of this host
        given the same path share one upstream: one of them leads and runs
        this data system, the others follow its data over the socket
        (docs/scaling.md, "The flag plane").
        """
        from ._sources import _polling, _streaming

        return cls(
            initializers=(_polling.polling_initializer(),),
            synchronizers=(
                _streaming.streaming_synchronizer(),
                _polling.polling_synchronizer(),
            ),
            fdv1_fallback=_polling.fdv1_polling_synchronizer(),
            saved_state=_saved(saved_state),
            plane=plane_of(plane, "default"),
        )._with_store(store)

    @classmethod
    def streaming(
        cls,
        *,
        store: PersistentStore | None = None,
        saved_state: str | os.PathLike[str] | SavedState | None = None,
        plane: str | os.PathLike[str] | None = None,
    ) -> DataSystem:
        """FDv2 streaming only; FDv1 polling as the directed fallback.

        ``store``, ``saved_state``, ``plane``: as for :meth:`default`.
        """
        from ._sources import _polling, _streaming

        return cls(
            synchronizers=(_streaming.streaming_synchronizer(),),
            fdv1_fallback=_polling.fdv1_polling_synchronizer(),
            saved_state=_saved(saved_state),
            plane=plane_of(plane, "streaming"),
        )._with_store(store)

    @classmethod
    def polling(
        cls,
        interval: float = 30.0,
        *,
        store: PersistentStore | None = None,
        saved_state: str | os.PathLike[str] | SavedState | None = None,
        plane: str | os.PathLike[str] | None = None,
    ) -> DataSystem:
        """FDv2 polling only, every ``interval`` seconds; FDv1 polling as the directed fallback.

        ``store``, ``saved_state``, ``plane``: as for :meth:`default`.
        """
        from ._sources import _polling

        check(POLLING[0], interval, "DataSystem.polling")
        return cls(
            synchronizers=(_polling.polling_synchronizer(interval=interval),),
            fdv1_fallback=_polling.fdv1_polling_synchronizer(interval=interval),
            saved_state=_saved(saved_state),
            plane=plane_of(plane, "polling"),
        )._with_store(store)

    @classmethod
    def daemon(
        cls, store: PersistentStore, *, saved_state: None = None, plane: None = None
    ) -> DataSystem:
        """Daemon mode: flags only from ``store``, never from the network.

        Another process (LaunchDarkly's Relay Proxy, an SDK or an aioflags
        client in read-write mode) keeps the store current. The whole store is
        read into memory and read again when its ``cache_ttl`` expires (once
        only with an infinite TTL); evaluation never waits on the store. The
        store is never written. The store being the only source, there is
        nothing to fail over to: the failover timeouts are infinite, and an
        outage or a store that lost its data is retried every 0.5 s while the
        data read last stays served. Flags need no SDK key here, but analytics
        events do: give ``Config`` the key (without it the client sends no
        events and warns at start), or ``send_events=False``.
        ``saved_state`` and ``plane`` are refused: the store keeps the data
        itself, and is what the processes share.

        Added in version 0.1.0.
        """
        if store is None:
            raise ConfigurationError("DataSystem.daemon() needs a store")
        _no_saved_state("daemon", saved_state, "the store keeps the data itself")
        _no_plane("daemon", plane, "every process reads the store itself")
        # No sources and a store: the supervisor runs the store as the only
        # synchronizer (stores.md: no data sources configured = daemon mode).
        return cls(
            store=store,
            store_mode=StoreMode.READ_ONLY,
            initializing_timeout=math.inf,
            interrupted_timeout=math.inf,
        )

    def _with_store(
        self, store: PersistentStore | None, mode: StoreMode = StoreMode.READ_WRITE
    ) -> DataSystem:
        """This system serving ``store`` until its sources deliver; writing it in read-write mode."""
        if store is None:
            return self
        return self.__replace__(store=store, store_mode=mode)

    @classmethod
    def fdv1(cls, *, plane: None = None) -> DataSystem:
        """For services that only speak FDv1 (older relay proxies).

        FDv1 streaming, with FDv1 polling as the secondary synchronizer.
        ``plane`` is refused, saying where it goes (:meth:`custom`).
        """
        from ._sources import _polling, _streaming

        if plane is not None:
            raise ConfigurationError(
                "DataSystem.fdv1() takes no plane=: for a flag plane on FDv1, give"
                " it to DataSystem.custom(synchronizers=[fdv1_streaming_synchronizer(),"
                " fdv1_polling_synchronizer()], plane=...) (aioflags.sources)"
            )

        return cls(
            synchronizers=(
                _streaming.fdv1_streaming_synchronizer(),
                _polling.fdv1_polling_synchronizer(),
            ),
        )

    @classmethod
    def file(
        cls,
        *paths: str | os.PathLike[str],
        reload: bool = False,
        interval: float = 1.0,
        saved_state: None = None,
        plane: None = None,
        format: str | None = None,
        fractional: int = 3,
    ) -> DataSystem:
        """Offline: flags from files (JSON, or YAML with ``aioflags[yaml]``).

        LaunchDarkly's file-data-source shape: ``flags``, ``flagValues`` and
        ``segments``; or flagd's flag definitions (``flags`` with ``state``
        and ``variants``, ``$evaluators``, ``metadata``), told from what a
        file holds (a ``$schema`` naming flagd, ``$evaluators``, or a flag
        with ``state`` and ``variants``), or every file read as flagd's
        with ``format="flagd"`` (``"launchdarkly"``: every file as
        LaunchDarkly's). ``fractional``: the bucketing flagd's
        ``fractional`` uses, 3 (flagd's newest) or 2 (its older one, for
        fleets whose other evaluators still use it). With ``reload`` the files are checked every
        ``interval`` seconds and edits are applied; each announces exactly
        the flags whose content it changes. An edit applies only once the
        files have settled; an empty file is an error; an edit that drops a
        flag, or follows a truncated or deleted file, is held until the files
        have stayed as they are for 2 s from the check that first saw it, so
        that a save written in pieces is not served half written (see
        :mod:`aioflags._datasystem._sources._watch`).

        Files that cannot be loaded at start fail at once: without
        ``reload`` the client is FATAL (nothing reads them again); with it,
        ERROR until they load, then READY. A bad edit later keeps the last
        good data. The status's error message names the file and the cause.
        ``saved_state`` is refused: the files are the data on disk.
        """
        from ._sources._file import file_synchronizer

        if not paths:
            raise ConfigurationError("DataSystem.file() needs at least one path")
        _no_saved_state("file", saved_state, "the flag files are the data on disk")
        _no_plane("file", plane, "every process reads the flag files itself")
        for path in paths:
            if not isinstance(path, (str, os.PathLike)):
                raise ConfigurationError(
                    f"DataSystem.file() takes file paths, got {path!r}"
                )
        for option, value in zip(FILE[:2], (reload, interval), strict=True):
            check(option, value, "DataSystem.file")
        check_file_reading("DataSystem.file", format, fractional)
        return cls(
            synchronizers=(
                mark_local(
                    file_synchronizer(
                        *paths,
                        reload=reload,
                        interval=interval,
                        format=format,
                        fractional=fractional,
                    )
                ),
            )
        )

    @classmethod
    def flagd(
        cls,
        target: str | None = None,
        *,
        selector: str | None = None,
        provider_id: str | None = None,
        tls: bool = False,
        cert_path: str | os.PathLike[str] | None = None,
        socket_path: str | os.PathLike[str] | None = None,
        fatal_status_codes: Iterable[str] = (),
        retry_grace_period: float = 5.0,
        deadline: float = 0.5,
        stream_deadline: float = 600.0,
        keepalive: float | None = None,
        retry_backoff: tuple[float, float] = (1.0, 5.0),
        fractional: int = 3,
        max_message_size: int = 16 * 1024 * 1024,
        plane: str | os.PathLike[str] | None = None,
        saved_state: None = None,
        host: None = None,
        port: None = None,
    ) -> DataSystem:
        """Flags from a flagd sync server (flagd's ``flagd.sync.v1`` over gRPC), evaluated in process.

        Needs the ``flagd`` extra (``pip install 'aioflags[flagd]'``) and
        asyncio (gRPC's ``grpc.aio``: refused under trio when the client
        starts). ``FetchAllFlags`` gives the configuration to start from,
        then the ``SyncFlags`` stream each new one; every message is the
        whole flag set (docs/flagd.md). Built by flagd's system (its
        ``FlagSystem.configuration.preset``), to which this hands over.

        Args:
            target: ``host:port`` of the sync server (``localhost:8015``,
                flagd's sync port, by default), or any gRPC target
                (``dns:///...``, ``unix:PATH``). A URL (``http://...``) is
                refused, naming the ``host:port`` to give.
            selector: which flags the server sends (flagd's
                ``source=...``/``flagSetId=...``): the ``flagd-selector``
                header, and the request's deprecated field for older servers.
            provider_id: sent in each request, for servers that filter or
                authorise by it.
            tls: connect with TLS, trusting the system's roots, or
                ``cert_path``'s CA (a PEM file).
            cert_path: the CA to trust with ``tls=True``: a PEM file of at
                most 1 MiB, checked now; read at the first connection and
                again only when it changes.
            socket_path: connect over this Unix socket (instead of
                ``target``); at most 107 bytes long (103 on macOS and BSD).
            fatal_status_codes: gRPC status names (``"PERMISSION_DENIED"``,
                ``"UNAUTHENTICATED"``) that end the source at once: no more
                calls; the client is FATAL if it was never READY (ERROR
                after, the last data kept).
            retry_grace_period: seconds the client stays STALE after the
                connection is lost before it is ERROR (0: ERROR at once).
                It replaces ``Config.grace_period`` for this data system.
                5 s, as this project's contract (after flagd's specification
                of that time) says; flagd's specification has since moved
                to 10 s: pass 10.0 to match its newest providers.
            deadline: seconds each attempt has to connect and bring the
                first byte of an answer (``FetchAllFlags``'s; the stream's).
                0.5, flagd's specification's ``deadlineMs``, in seconds: at
                most 60 (more is surely milliseconds). A server that cannot
                be reached makes the client ERROR at the first failed attempt
                (within ``deadline``), and the source keeps trying. A
                configuration that began in time has ``stream_deadline`` to
                arrive whole.
            stream_deadline: seconds after which the stream is opened anew
                (flagd's ``streamDeadlineMs``, 600 s; 0 or ``math.inf``: never).
            keepalive: seconds between HTTP/2 keepalive pings; ``None``
                (flagd's default, 0): none. flagd's sync server refuses
                pings more often than every 5 minutes by default.
            retry_backoff: ``(first, most)``: seconds between attempts,
                doubling from ``first`` up to ``most``, less up to
                ``Config.retry_jitter`` of each (flagd's ``retryBackoffMs``
                and ``retryBackoffMaxMs``: 1 s and 5 s).
            fractional: flagd's ``fractional`` bucketing: 3, or 2 (as
                :meth:`file`).
            max_message_size: the largest flag configuration received, in
                bytes: 16 MiB (gRPC's own limit is 4 MiB), from 64 KiB to
                1 GiB. A larger one fails, the error naming this option.
            plane: as for :meth:`default`: the processes of a host share one
                sync stream.
            saved_state: refused: the sync server brings the whole
                configuration at every start.
            host: refused, as ``port``: flagd's provider's names; give
                ``target="host:port"``.
            port: refused (see ``host``).

        Raises:
            ConfigurationError: an argument is invalid, or the ``flagd``
                extra is not installed (the message says what to install).

        Added in version 0.2.0.
        """
        return _preset(
            "flagd",
            target,
            selector=selector,
            provider_id=provider_id,
            tls=tls,
            cert_path=cert_path,
            socket_path=socket_path,
            fatal_status_codes=fatal_status_codes,
            retry_grace_period=retry_grace_period,
            deadline=deadline,
            stream_deadline=stream_deadline,
            keepalive=keepalive,
            retry_backoff=retry_backoff,
            fractional=fractional,
            max_message_size=max_message_size,
            plane=plane,
            saved_state=saved_state,
            host=host,
            port=port,
        )

    @classmethod
    def custom(
        cls,
        *,
        initializers: Iterable[InitializerFactory] = (),
        synchronizers: Iterable[SynchronizerFactory] = (),
        fdv1_fallback: SynchronizerFactory | None = None,
        store: PersistentStore | None = None,
        store_mode: StoreMode = StoreMode.READ_WRITE,
        saved_state: str | os.PathLike[str] | SavedState | None = None,
        plane: str | os.PathLike[str] | None = None,
    ) -> DataSystem:
        """Any sources: async-generator factories called with a SourceContext.

        With ``store``, the store is served until the sources deliver (as in
        read-write mode) and, in ``StoreMode.READ_WRITE``, every applied change
        set is written to it; ``StoreMode.READ_ONLY`` reads it but never writes. A store with no
        sources at all is daemon mode (:meth:`daemon`). ``saved_state``: as
        for :meth:`default` (its initializer first). ``plane``: as for
        :meth:`default`; refused when every source is local (files).
        """
        initializers, synchronizers = _sources(initializers), _sources(synchronizers)
        if store is not None and not initializers and not synchronizers:
            return cls.daemon(store, plane=plane)  # type: ignore[arg-type]  # (refused there)
        system = cls(
            initializers=initializers,
            synchronizers=synchronizers,
            fdv1_fallback=fdv1_fallback,
            saved_state=_saved(saved_state),
            plane=plane_of(plane, "custom"),
        )._with_store(store, store_mode)
        if system.plane is not None and is_local(system):
            _no_plane("custom", plane, "every source of this one is local")
        return system

    def with_timings(
        self,
        *,
        initializing_timeout: float | None = None,
        interrupted_timeout: float | None = None,
        recovery_after: float | None = None,
    ) -> DataSystem:
        """A copy with other failover and recovery timings (seconds)."""
        return self.__replace__(
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


def _sources(given: object) -> Any:
    """A list or another iterable of source factories as a tuple.

    Anything else (a single factory, a string, a mapping) as it is, for
    :meth:`DataSystem._validate` to refuse with a message naming it.
    """
    if isinstance(given, Iterable) and not isinstance(given, (str, bytes, Mapping)):
        return tuple(given)
    return given
