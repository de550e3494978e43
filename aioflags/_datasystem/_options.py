"""DataSystem's options and its presets', declared once: checked from here and tabled in docs/configuration.md.

``DataSystem(...)``'s failover timings (and ``.with_timings()``'s),
``DataSystem.polling()``'s and ``DataSystem.file()``'s options, each an
``aioflags._core._options.Option``; ``DataSystem.flagd()``'s are flagd's
(``_systems/_flagd/_sync/_settings.py``).
"""

from __future__ import annotations

from typing import Final

from aioflags._core._options import Kind, Option

__all__ = ["FILE", "OPTIONS", "POLLING"]

#: The failover timings of ``DataSystem(...)`` (and ``.with_timings()``),
#: declared once: checked from here, tabled in docs/configuration.md.
OPTIONS: Final = (
    Option(
        "initializing_timeout",
        Kind.SECONDS,
        default=10.0,
        doc="fail over when a synchronizer has not reported valid data for this "
        "long; an initializer with no result by then is cancelled for the next",
    ),
    Option(
        "interrupted_timeout",
        Kind.SECONDS,
        default=60.0,
        doc="fail over when a synchronizer stays interrupted this long",
    ),
    Option(
        "recovery_after",
        Kind.SECONDS,
        default=300.0,
        doc="back to the primary after this long valid on a fallback synchronizer",
    ),
    Option(
        "grace_period",
        Kind.SECONDS,
        default=None,
        least=0,
        shown="None (`Config.grace_period`)",
        doc="STALE before ERROR, when the data system says "
        "(`DataSystem.flagd(retry_grace_period=...)`)",
    ),
)
#: ``DataSystem.polling()``'s option.
POLLING: Final = (
    Option(
        "interval",
        Kind.SECONDS,
        default=30.0,
        doc="between polls (FDv2's, and FDv1's after a fallback directive)",
    ),
)
#: ``DataSystem.file()``'s options (after the paths).
FILE: Final = (
    Option(
        "reload",
        Kind.BOOL,
        default=False,
        doc="check the files every `interval` and apply their edits",
    ),
    Option(
        "interval",
        Kind.SECONDS,
        default=1.0,
        doc="between checks of the files, with `reload`",
    ),
    Option(
        "format",
        Kind.OTHER,
        type='`"flagd"`, `"launchdarkly"` or None',
        default=None,
        doc="how every file is read; `None`: told from each file",
    ),
    Option(
        "fractional",
        Kind.OTHER,
        type="3 or 2",
        default=3,
        doc="flagd's `fractional` bucketing: 3 (flagd's newest) or 2 (its older one)",
    ),
)
