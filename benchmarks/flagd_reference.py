"""flagd flags evaluated by aioflags and by flagd's own Python provider, side by side.

Shared by ``bench_flagd_differential.py`` (the randomized comparison) and
``bench_flagd_eval.py`` (instructions per evaluation). The reference is
``openfeature-provider-flagd`` 0.6 (``openfeature-flagd-core`` 2.0 over
``panzi-json-logic``): ``pip install -e '.[flagd,openfeature]' --group
flagd-reference``. It cannot share the tests' environment (its protobuf
floor, 7.35.1, is above what the tests' pinned grpcio-tools allows), so
these scripts run in an environment of their own (``nox -s flagd_bench``).

Both sides resolve through their OpenFeature providers' typed methods
(aioflags: :class:`aioflags.openfeature.AioflagsProvider` over
``DataSystem.file``, which maps the OpenFeature context with
``to_flagd_context``; flagd: ``FlagdCore``, what its in-process provider's
resolver calls), and each answer is read as OpenFeature's client reads a
provider's (:func:`outcome`: an exception is the caller's default with
reason ``ERROR`` and the exception's error code, any other exception
``GENERAL``; a value of the wrong Python type ``TYPE_MISMATCH``).

``$flagd.timestamp`` is frozen in both (:func:`freeze_time`), checked by a
probe flag: a rule that reads it gives the same answer on both sides.
"""

from __future__ import annotations

import json
import math
import types
from typing import TYPE_CHECKING, Any

try:
    import importlib

    from openfeature.contrib.tools.flagd.core import FlagdCore

    reference_targeting = importlib.import_module(
        "openfeature.contrib.tools.flagd.core.targeting.targeting"
    )
except ImportError as missing:  # pragma: no cover - the environment decides
    raise SystemExit(
        "flagd's Python provider is not installed: "
        "pip install -e '.[flagd,openfeature]' --group flagd-reference "
        f"({missing})"
    ) from None
from openfeature.client import _typecheck_flag_value
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError
from openfeature.flag_evaluation import FlagType

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

#: The typed methods, the default each is called with, OpenFeature's type.
METHODS: dict[str, tuple[Any, FlagType]] = {
    "boolean": (False, FlagType.BOOLEAN),
    "string": ("dflt", FlagType.STRING),
    "integer": (7, FlagType.INTEGER),
    "float": (2.5, FlagType.FLOAT),
    "object": ({"dflt": 1}, FlagType.OBJECT),
}

#: ``$flagd.timestamp`` in both, during the comparison (2026-01-01T00:00:00Z).
FROZEN = 1_767_225_600


def freeze_time(at: int = FROZEN) -> None:
    """Both sides read ``$flagd.timestamp`` as ``at`` (flagd's module's ``time`` and aioflags' ``wall_ms``, replaced)."""
    clock = types.SimpleNamespace(time=lambda: float(at))
    reference_targeting.time = clock  # type: ignore[attr-defined]
    from aioflags._systems._flagd._engine import _operators as _flagdops

    _flagdops.wall_ms = lambda: at * 1000


def canon(value: Any) -> Any:
    """``value`` with its JSON types spelled out: ``1``, ``1.0`` and ``True`` differ."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), canon(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(canon(v) for v in value))
    return ("other", repr(value))


def _word(reason: Any) -> str | None:
    return None if reason is None else str(getattr(reason, "value", reason))


def outcome(
    call: Callable[[], Any], default: Any, flag_type: FlagType
) -> tuple[Any, ...]:
    """(value, variant, reason, error code, metadata, exception) as OpenFeature's client gives it."""
    try:
        resolution = call()
    except OpenFeatureError as exc:
        return (
            canon(default),
            None,
            "ERROR",
            exc.error_code.value,
            None,
            type(exc).__name__,
        )
    except Exception as exc:  # (the client's own catch-all: GENERAL)  # noqa: BLE001
        return (canon(default), None, "ERROR", "GENERAL", None, type(exc).__name__)
    code = resolution.error_code
    if code is not None:
        return (
            canon(resolution.value),
            resolution.variant,
            "ERROR",
            _word(code),
            None,
            None,
        )
    mismatch = _typecheck_flag_value(resolution.value, flag_type)
    if mismatch is not None:
        return (canon(resolution.value), None, "ERROR", "TYPE_MISMATCH", None, None)
    metadata = canon(dict(resolution.flag_metadata or {}))
    return (
        canon(resolution.value),
        resolution.variant,
        _word(resolution.reason),
        None,
        metadata,
        None,
    )


class Reference:
    """flagd's Python provider's evaluator over one flagd document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.core = FlagdCore()
        self.core.set_flags(json.dumps(document))
        self.resolvers = {
            "boolean": self.core.resolve_boolean_value,
            "string": self.core.resolve_string_value,
            "integer": self.core.resolve_integer_value,
            "float": self.core.resolve_float_value,
            "object": self.core.resolve_object_value,
        }

    def resolve(
        self, method: str, key: str, context: EvaluationContext
    ) -> tuple[Any, ...]:
        default, flag_type = METHODS[method]
        resolver = self.resolvers[method]
        return outcome(lambda: resolver(key, default, context), default, flag_type)

    def raw(self, key: str, rule: Any, context: EvaluationContext) -> tuple[str, Any]:
        """What ``rule`` gives in flag ``key`` for ``context``, as :func:`our_raw` says it.

        ("value", canon), ("parse error", why): an operator it does not know
        (PARSE_ERROR), ("error", exception): anything else it raises (GENERAL).
        """
        try:
            # (a rule that is not an operator, as an operator's argument is)
            wrapped = rule if isinstance(rule, dict) else {"if": [True, rule, None]}
            return (
                "value",
                canon(reference_targeting.targeting(key, wrapped, context)),
            )
        except ReferenceError as exc:
            return ("parse error", str(exc).split(":")[0])
        except Exception as exc:  # noqa: BLE001
            return ("error", type(exc).__name__)


class Ours:
    """aioflags over one flagd document: its OpenFeature provider, on a client of its own."""

    def __init__(self, path: Path) -> None:
        import aioflags
        from aioflags.openfeature import AioflagsProvider

        config = aioflags.Config(
            data_system=aioflags.DataSystem.file(path), send_events=False
        )
        self.provider = AioflagsProvider(config)
        self.provider.initialize(EvaluationContext())
        self.resolvers = {
            "boolean": self.provider.resolve_boolean_details,
            "string": self.provider.resolve_string_details,
            "integer": self.provider.resolve_integer_details,
            "float": self.provider.resolve_float_details,
            "object": self.provider.resolve_object_details,
        }

    def resolve(
        self, method: str, key: str, context: EvaluationContext
    ) -> tuple[Any, ...]:
        default, flag_type = METHODS[method]
        resolver = self.resolvers[method]
        return outcome(lambda: resolver(key, default, context), default, flag_type)

    def close(self) -> None:
        self.provider.shutdown()


def our_raw(key: str, rule: Any, context: EvaluationContext) -> tuple[str, Any]:
    """What ``rule`` gives in aioflags' compiled targeting (the private compiler, for tracing).

    ("value", canon), ("parse error", why): refused when compiled
    (PARSE_ERROR), ("error", "RuleError"): raised where flagd's provider
    raises (GENERAL), ("crash", exception): anything else.
    """
    from aioflags._systems._flagd._engine._jsonlogic import (
        TargetingError,
        build_targeting,
    )
    from aioflags._systems._flagd._engine._operators import RuleError
    from aioflags.openfeature import to_flagd_context

    wrapped = rule if isinstance(rule, dict) else {"if": [True, rule, None]}
    try:
        run, operands = build_targeting(wrapped, key)
    except TargetingError as exc:
        return ("parse error", str(exc).rsplit(": ", 1)[-1])
    try:
        return ("value", canon(run(operands, to_flagd_context(context), None)))
    except RuleError:
        return ("error", "RuleError")
    except Exception as exc:  # noqa: BLE001
        return ("crash", type(exc).__name__)
