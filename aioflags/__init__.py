"""aioflags: the asyncio-native SDK for server-side feature flags.

It speaks LaunchDarkly's flag-delivery protocols (FDv2 streaming and polling,
with the server-directed fallback to FDv1), evaluates flags locally in a few
microseconds, and reports its status with OpenFeature semantics.
"""

from __future__ import annotations

import typing as _typing

from ._client._client import Client as Client
from ._client._config import Config as Config
from ._client._events import EventDetails as EventDetails
from ._client._events import ProviderEvent as ProviderEvent
from ._client._events import ProviderStatus as ProviderStatus
from ._client._hooks import EvaluationSeriesContext as EvaluationSeriesContext
from ._client._hooks import Hook as Hook
from ._client._hooks import HookMetadata as HookMetadata
from ._client._hooks import TrackSeriesContext as TrackSeriesContext
from ._client._listeners import FlagValueChange as FlagValueChange
from ._client._usage import FlagUsage as FlagUsage
from ._client._usage import Usage as Usage
from ._client._usage import VariationUsage as VariationUsage
from ._core._exceptions import AioflagsError as AioflagsError
from ._core._exceptions import ClientClosedError as ClientClosedError
from ._core._exceptions import ConfigurationError as ConfigurationError
from ._datasystem._config import DataSystem as DataSystem
from ._datasystem._datatypes import DataSourceStatus as DataSourceStatus
from ._datasystem._datatypes import ErrorInfo as ErrorInfo
from ._datasystem._datatypes import ErrorKind as ErrorKind
from ._datasystem._datatypes import SourceState as SourceState
from ._datasystem._stores._bigsegments import BigSegmentsConfig as BigSegmentsConfig
from ._evaluation._context import Context as Context
from ._evaluation._results import EvaluationDetail as EvaluationDetail
from ._evaluation._results import FlagsState as FlagsState
from ._evaluation._results import Reason as Reason
from ._evaluation._snapshot import FlagSnapshot as FlagSnapshot
from ._guards._config import Guard as Guard
from ._version import __version__ as __version__

# The flag systems register (aioflags/_systems/): every flag compiled gets one.
from . import _systems  # noqa: F401  # isort: skip

if _typing.TYPE_CHECKING:
    from . import guards as guards  # the documented module of guarded rollouts
    from . import sources as sources  # the documented module of network sources
    from . import stores as stores  # the documented module of persistent stores


__all__ = [
    "AioflagsError",
    "BigSegmentsConfig",
    "Client",
    "ClientClosedError",
    "Config",
    "ConfigurationError",
    "Context",
    "DataSourceStatus",
    "DataSystem",
    "ErrorInfo",
    "ErrorKind",
    "EvaluationDetail",
    "EvaluationSeriesContext",
    "EventDetails",
    "FlagSnapshot",
    "FlagUsage",
    "FlagValueChange",
    "FlagsState",
    "Guard",
    "Hook",
    "HookMetadata",
    "ProviderEvent",
    "ProviderStatus",
    "Reason",
    "SourceState",
    "TrackSeriesContext",
    "Usage",
    "VariationUsage",
    "__version__",
]

# No handler and no level of our own (docs/logging.md): the application's
# configuration decides, and when it configured nothing, Python's last-resort
# handler prints WARNING and above to stderr (as httpx's logs do), so a failure
# is not silent under a server that configures only its own loggers (uvicorn).

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "aioflags"
del _name, _obj


#: Submodules loaded on first use: ``aioflags.sources`` works after a plain
#: ``import aioflags``, but only a program that uses it pays for importing
#: it (the network sources import httpx; the stores, redis-py).
_LAZY_SUBMODULES = frozenset({"guards", "sources", "stores"})


if not _typing.TYPE_CHECKING:
    # Hidden from type checkers: a module __getattr__ would make them accept
    # any name (``from aioflags import Cleint``); they see the names above.

    def __getattr__(name: str) -> object:
        if name in _LAZY_SUBMODULES:
            import importlib

            # import_module binds the attribute: this runs once per submodule.
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBMODULES})
