"""The console's guards: a client's guarded rollouts as the page's banners, and their release.

``FlagServer.show_guards(client.guards)`` hands the console a client's
guards (issue 98): ``/ui/api/state`` then carries each guard's row
(:meth:`ShownGuards.rows`), the page shows a banner for each alerted or
pinned one, and ``POST /ui/api/guards/<name>/release`` releases it. Each
decision or release of the guards tells the console's pages at once;
their counts are otherwise as of the state's last change (the page is
not a live dashboard of counts).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, final

from . import _words as words
from ._shown import cut, visible

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioflags._core._json import JSONObject
    from aioflags._guards._scope import Guards
    from aioflags._guards._status import GuardEvent, GuardStatus

__all__ = ["ShownGuards"]


@final
class ShownGuards:
    """A client's guards as the console shows them, telling it of each decision.

    ``changed`` is called (on the event loop this is made on) after each
    decision or release: it invalidates the console's state and wakes its
    pages.
    """

    __slots__ = ("_changed", "_guards", "_metrics")

    def __init__(self, guards: Guards, changed: Callable[[], None]) -> None:
        from aioflags._datasystem._stores._bigsegments import _call_soon_threadsafe

        self._guards = guards
        self._changed = changed
        #: The metric of each guard's last decision, by the guard's name.
        self._metrics: dict[str, str] = {}
        call_soon = _call_soon_threadsafe()
        thread = threading.get_ident()

        def told(event: GuardEvent) -> None:
            if event.metric is not None:
                self._metrics[event.name] = event.metric
            if call_soon is None or threading.get_ident() == thread:
                changed()
            else:  # (a decision on another thread: aioflags.blocking.Client)
                call_soon(changed)

        guards.add_handler(told)

    def rows(self) -> list[JSONObject]:
        """Each guard's row for the page, by name."""
        status = self._guards.status
        return [_row(status[name], self._metrics.get(name)) for name in sorted(status)]

    def release(self, name: str) -> JSONObject:
        """Release guard ``name``'s pin or alert; its row afterwards.

        Raises:
            KeyError: no guard is named ``name``.
        """
        released = self._guards.release(name)
        row = _row(self._guards.status[name], self._metrics.get(name))
        row["released"] = released
        return row


def _row(status: GuardStatus, metric: str | None) -> JSONObject:
    """One guard as the page shows it: its flag, state, metric, arms' figures."""
    arms: list[JSONObject] = [
        {
            "value": cut(words.written(arm.value)),
            "control": arm.control,
            "requests": arm.requests,
            "errors": arm.errors,
            "error_rate": arm.error_rate,
            "latency": arm.latency,
            "metrics": dict(arm.metrics),
        }
        for arm in status.arms
    ]
    decided = next((e.metric for e in status.evidence if e.decided), None)
    return {
        "name": status.name,
        "label": visible(status.name),
        "flag": status.flag,
        "flag_label": visible(status.flag),
        "version": status.version,
        "state": status.state,
        "metric": decided or metric,
        "control": next((arm["value"] for arm in arms if arm["control"]), None),
        "arms": arms,
        "message": cut(status.message),
    }
