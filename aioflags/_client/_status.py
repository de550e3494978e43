"""From data-system reports to provider status and events (status-and-events.md §2-§3).

The status is derived only from what the data system reports; nothing is
synthesised: NOT_READY until the first data or a terminal failure; READY on
the first data; STALE as soon as a ready client's connection is interrupted,
ERROR if that lasts past the grace period; READY again on recovery (with
CONFIGURATION_CHANGED if the data changed meanwhile); ERROR when the data
system goes OFF, when ``ready_timeout`` passes while sources are still trying,
or at once when a source reports an error that waiting will not fix
(``ErrorInfo.action_required``: a watched flag file that is missing); FATAL
when initialisation ends on a fatal error with no source left. A start that
does not wait (``ready_timeout=0``) reaches ERROR the same way, the grace
period being its deadline (:meth:`StatusLayer.unwaited`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import DataSourceStatus, SourceState

from ._events import EventBus, ProviderEvent, ProviderStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from aioflags._core._clock import Clock
    from aioflags._datasystem._datatypes import ErrorInfo
    from aioflags._datasystem._store import Store

__all__ = ["StatusLayer"]

logger = client_logger("aioflags.datasource")


class StatusLayer:
    """The data system's listener: turns its reports into provider events."""

    def __init__(
        self,
        bus: EventBus,
        store: Store,
        clock: Clock,
        grace_period: float,
        spawn: Callable[[Callable[[], Coroutine[object, object, None]]], object],
    ) -> None:
        self._bus = bus
        self._store = store
        self._clock = clock
        self._grace_period = grace_period
        self._spawn = spawn
        self._ever_ready = False
        self._unwaited = False  # ready_timeout=0: the grace period is the deadline
        self._pending: set[str] = set()
        self._grace: anyio.CancelScope | None = None
        self.data_source: DataSourceStatus | None = None
        self._data_source_changed = anyio.Event()
        self._started = anyio.current_time()  # for "READY in N ms" (real time)
        #: READY from data that did not come from a source (the saved state),
        #: and no source has been valid since: a source's failure is STALE.
        self._unconfirmed = False

    # ------------------------------------------------------- from the data system
    def data_changed(self, flags: frozenset[str], origin: str | None = None) -> None:
        status = self._bus.status
        if not self._ever_ready:
            if self._store.initialized:
                self._unconfirmed = origin is not None
                self._ready("flag data received", origin)
            return
        if status is ProviderStatus.READY:
            if flags:
                self._bus.emit(
                    ProviderEvent.CONFIGURATION_CHANGED,
                    flags_changed=flags,
                    message=f"{len(flags)} flag(s) changed",
                )
        else:
            self._pending |= flags

    async def wait_data_source(
        self, predicate: Callable[[DataSourceStatus | None], bool]
    ) -> None:
        """Wait until ``predicate(data_source)`` holds (re-checked on each report)."""
        while not predicate(self.data_source):
            await self._data_source_changed.wait()

    def data_source_status(self, status: DataSourceStatus) -> None:
        self.data_source = status
        self._data_source_changed.set()
        self._data_source_changed = anyio.Event()
        state, error = status.state, status.error
        current = self._bus.status
        if state is SourceState.VALID:
            self._unconfirmed = False
            if self._ever_ready and current in (
                ProviderStatus.STALE,
                ProviderStatus.ERROR,
            ):
                self._cancel_grace()
                logger.info("aioflags client recovered: READY again")
                self._bus.emit(ProviderEvent.READY, message="connection recovered")
                if self._pending:
                    changed, self._pending = frozenset(self._pending), set()
                    self._bus.emit(
                        ProviderEvent.CONFIGURATION_CHANGED,
                        flags_changed=changed,
                        message=f"{len(changed)} flag(s) changed while disconnected",
                    )
            elif not self._ever_ready and self._store.initialized:
                self._ready("flag data received")
        elif state is SourceState.INITIALIZING and self._unconfirmed:
            # Serving saved data, and the flag service cannot be reached: as
            # an interrupted connection is (STALE, then ERROR after grace).
            if error is not None and current is ProviderStatus.READY:
                self._interrupted(error)
        elif state is SourceState.INITIALIZING:
            if error is not None and current is ProviderStatus.NOT_READY:
                if error.action_required:
                    logger.error("aioflags cannot initialise yet: %s", error.message)
                    self._error(f"initialisation failed: {error.message}")
                elif self._unwaited and self._grace_period == 0:
                    # Not waited, no grace: a failure that waiting may fix
                    # is ERROR at once (with a grace period, at its end).
                    message = f"not ready: {error.message}; still trying"
                    logger.warning("aioflags client %s", message)
                    self._bus.emit(
                        ProviderEvent.ERROR,
                        error_code="PROVIDER_NOT_READY",
                        message=message,
                    )
        elif state is SourceState.INTERRUPTED:
            if current is ProviderStatus.READY:
                self._interrupted(error)
        elif state is SourceState.OFF:
            self._cancel_grace()
            message = error.message if error else "the data system stopped"
            if status.fdv1_fallback and error is None:
                message = "the flag service directed a fallback to FDv1 and none is configured"
            if not self._ever_ready and error is not None and error.fatal:
                logger.error("aioflags cannot initialise: %s (fatal)", message)
                self._bus.emit(
                    ProviderEvent.ERROR, error_code="PROVIDER_FATAL", message=message
                )
            elif current is not ProviderStatus.ERROR:
                self._error(
                    message if self._ever_ready else f"initialisation failed: {message}"
                )

    def _interrupted(self, error: ErrorInfo | None) -> None:
        """READY, and the data cannot be kept fresh: STALE, ERROR after the grace period."""
        message = error.message if error else "connection interrupted"
        self._bus.emit(
            ProviderEvent.STALE, message=f"{message}; serving last known data"
        )
        if self._grace_period == 0:
            self._error(f"{message}; no grace period")
        else:
            self._spawn(self._grace_timer)

    # ---------------------------------------------------------------- timers
    def ready_timed_out(self, timeout: float, waiting_for: str = "") -> None:
        """``ready_timeout`` passed: ERROR while sources keep trying (READY may follow).

        ``waiting_for`` says what has not answered, when no error says more.
        """
        if self._bus.status is ProviderStatus.NOT_READY:
            error = self.data_source.error if self.data_source else None
            detail = (
                f" (last error: {error.message})"
                if error
                else f" ({waiting_for})"
                if waiting_for
                else ""
            )
            message = f"not ready after {timeout:g} s; still trying{detail}"
            logger.warning("aioflags client %s", message)
            self._bus.emit(
                ProviderEvent.ERROR, error_code="PROVIDER_NOT_READY", message=message
            )

    async def unwaited(self, waiting_for: str) -> None:
        """A start that did not wait (``ready_timeout=0``): ERROR when not ready in time.

        As a waited start at its ``ready_timeout``, with the grace period as
        the deadline (on the client's clock): failures that waiting may fix
        (a refused connection, a 503) leave it NOT_READY until then; those
        it will not fix end it at once, as for a waited start (ERROR for an
        ``action_required`` error or a data system that stops, FATAL for a
        fatal status such as 401). With no grace period, the first failure is
        ERROR. So a health check tells "starting" (NOT_READY) from "broken"
        (ERROR). Sources keep trying: READY follows data.
        """
        self._unwaited = True
        if self._grace_period > 0:
            await self._clock.sleep(self._grace_period)
            self.ready_timed_out(self._grace_period, waiting_for)

    async def _grace_timer(self) -> None:
        with anyio.CancelScope() as scope:
            self._grace = scope
            await self._clock.sleep(self._grace_period)
            if self._bus.status is ProviderStatus.STALE:
                self._error(
                    f"still disconnected after the {self._grace_period:g} s grace period"
                )
        if self._grace is scope:
            self._grace = None

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    # --------------------------------------------------------------- helpers
    def _ready(self, message: str, origin: str | None = None) -> None:
        """READY; ``origin``: where the data came from, when not the network."""
        self._ever_ready = True
        self._pending.clear()
        elapsed_ms = (anyio.current_time() - self._started) * 1000
        flags = self._store.flag_count
        logger.info(
            "aioflags client READY in %.0f ms with %d flags%s",
            elapsed_ms,
            flags,
            "" if origin is None else f" {origin}",
            extra={"elapsed_ms": round(elapsed_ms), "flags": flags},
        )
        if origin is not None:
            message = f"{message} {origin}"
        self._bus.emit(ProviderEvent.READY, message=message)

    def _error(self, message: str) -> None:
        self._bus.emit(ProviderEvent.ERROR, error_code="GENERAL", message=message)
