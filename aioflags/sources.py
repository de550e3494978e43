"""The network data sources, for composing a custom data system.

Each function returns a *source factory* that ``DataSystem.custom`` accepts::

    from aioflags import DataSystem, sources

    system = DataSystem.custom(
        initializers=[sources.polling_initializer()],
        synchronizers=[sources.streaming_synchronizer(), sources.polling_synchronizer(interval=60)],
        fdv1_fallback=sources.fdv1_polling_synchronizer(),
    )

Every option defaults to the client's :class:`~aioflags.Config`.
Writing a source of your own (docs/data-system.md, "Writing a source"): a
source factory takes a :class:`SourceContext` and returns an async
generator. An initializer yields one :class:`Basis`; a synchronizer yields
:class:`Update` values, each with a :class:`ChangeSet` of :class:`Change`
values (or a :class:`SourceState` with an :class:`ErrorInfo` and no data).
``InitializerFactory`` and
``SynchronizerFactory`` are the factories' types. A source may raise
:class:`SourceError` (or :class:`ProtocolError` for data it cannot use) to
end with a reason rather than a traceback.

Added in version 0.1.0.
"""

from __future__ import annotations

import os  # noqa: TC003 - typing.get_type_hints() resolves annotations here

from ._core._exceptions import ProtocolError as ProtocolError
from ._core._exceptions import SourceError as SourceError
from ._datasystem._context import InitializerFactory as InitializerFactory
from ._datasystem._context import SourceContext as SourceContext
from ._datasystem._context import SynchronizerFactory as SynchronizerFactory
from ._datasystem._datatypes import Basis as Basis
from ._datasystem._datatypes import Change as Change
from ._datasystem._datatypes import ChangeKind as ChangeKind
from ._datasystem._datatypes import ChangeSet as ChangeSet
from ._datasystem._datatypes import DataSourceStatus as DataSourceStatus
from ._datasystem._datatypes import ErrorInfo as ErrorInfo
from ._datasystem._datatypes import ErrorKind as ErrorKind
from ._datasystem._datatypes import IntentCode as IntentCode
from ._datasystem._datatypes import ObjectKind as ObjectKind
from ._datasystem._datatypes import Selector as Selector
from ._datasystem._datatypes import SourceState as SourceState
from ._datasystem._datatypes import Update as Update
from ._datasystem._sources._polling import (
    fdv1_polling_synchronizer as fdv1_polling_synchronizer,
)
from ._datasystem._sources._polling import (
    polling_initializer as polling_initializer,
)
from ._datasystem._sources._polling import (
    polling_synchronizer as polling_synchronizer,
)
from ._datasystem._sources._saved import SavedState as SavedState
from ._datasystem._sources._streaming import (
    fdv1_streaming_synchronizer as fdv1_streaming_synchronizer,
)
from ._datasystem._sources._streaming import (
    streaming_synchronizer as streaming_synchronizer,
)

__all__ = [
    "Basis",
    "Change",
    "ChangeKind",
    "ChangeSet",
    "DataSourceStatus",
    "ErrorInfo",
    "ErrorKind",
    "InitializerFactory",
    "IntentCode",
    "ObjectKind",
    "ProtocolError",
    "SavedState",
    "Selector",
    "SourceContext",
    "SourceError",
    "SourceState",
    "SynchronizerFactory",
    "Update",
    "fdv1_polling_synchronizer",
    "fdv1_streaming_synchronizer",
    "polling_initializer",
    "polling_synchronizer",
    "saved_state",
    "streaming_synchronizer",
]


def saved_state(
    path: str | os.PathLike[str], *, max_age: float = 86400.0, interval: float = 30.0
) -> SavedState:
    """Start from the flag data saved in ``path``, and save the network's there.

    For ``DataSystem.default(saved_state=...)`` (and ``streaming``,
    ``polling``, ``custom``): read first, as the first initializer, the
    client is READY from the file when it was saved less than ``max_age``
    seconds ago (a day by default), before the flag service answers; the
    network's data then replaces it. The data applied from the network is
    written to ``path`` atomically, at most every ``interval`` seconds, in a
    worker thread, never on the evaluation path; a failed write is a
    WARNING. A missing, corrupt, truncated, foreign or too old file is
    skipped with one line saying why. See docs/data-system.md.

    Added in version 0.2.0.
    """
    return SavedState(path, max_age=max_age, interval=interval)


# The names documented here (not in ``aioflags.__all__``) name this module as
# theirs: reprs and the API reference say ``aioflags.sources.Basis``. Done
# here, not by ``aioflags``, so that annotations resolve in this namespace
# (``typing.get_type_hints``): it holds every name they use.
for _cls in (
    Basis,
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    ProtocolError,
    Selector,
    SavedState,
    SourceContext,
    SourceError,
    Update,
):
    _cls.__module__ = __name__
del _cls
