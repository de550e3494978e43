"""Declared options: each option once, checked, read from the environment and documented from that.

An :class:`Option` says an option's name, type (its :class:`Kind`), unit,
default, bounds, environment variables and a one-line doc. ``Config``'s
(``_client/_options.py``), ``DataSystem``'s and its presets'
(``_datasystem/_options.py``) and ``DataSystem.flagd()``'s
(``_systems/_flagd/_sync/_settings.py``) are tuples of them.
:func:`check` checks a value given in code, :func:`parse` reads a
variable's text, and ``_client/_tables.py`` writes docs/configuration.md's
tables from them (``python -m aioflags._client._tables``; a test compares).
Every error names the option, and the variable when the value came from
the environment. What a declaration cannot say (a value checked against
another, an object of a layer above) its owner checks, as before.
"""

from __future__ import annotations

import math
from typing import Final, final

from ._checks import check_bool, check_seconds, check_url, header_value
from ._exceptions import ConfigurationError
from ._frozen import Frozen, set_field

__all__ = [
    "UNIT_NAME",
    "Kind",
    "Option",
    "check",
    "parse",
    "parse_seconds",
    "size_words",
]


class Kind:
    """What an option's value is: how it is checked and read from text.

    Strings, not an ``enum.Enum``: creating an Enum class costs about a
    million instructions, and ``Config``'s declarations are made with
    ``import aioflags`` (as ``_core/_frozen.py`` avoids dataclasses).
    """

    #: A number of seconds: > 0 (``least=0``: >= 0; ``least=N``: >= N), at
    #: most ``most``; infinity is allowed unless ``most`` bounds it.
    SECONDS: Final = "seconds"
    #: ``True`` or ``False`` (not a truthy string).
    BOOL: Final = "bool"
    #: An ``int`` (not a bool) from ``least`` (1) to ``most``.
    COUNT: Final = "integer"
    #: A number of bytes: an ``int`` from ``least`` (1) to ``most``.
    BYTES: Final = "bytes"
    #: An ``http://`` or ``https://`` URL, kept without a trailing ``/``.
    URL: Final = "URL"
    #: A string (or ``None``, when that is the default).
    TEXT: Final = "string"
    #: A string sent as an HTTP header value as it is: visible ASCII, spaces
    #: only inside; ``None`` or ``""``: unset.
    HEADER: Final = "header value"
    #: A number from 0 to 1.
    FRACTION: Final = "fraction"
    #: Checked by its owner (its type is the declaration's ``type``).
    OTHER: Final = "object"


#: Every kind of :class:`Kind`.
_KINDS: Final = frozenset(v for k, v in vars(Kind).items() if k.isupper())
#: Units a variable may be read in, and how many seconds each is.
_SCALE: Final = {"s": 1.0, "ms": 1000.0}
#: Each unit of :data:`_SCALE` in words.
UNIT_NAME: Final = {"s": "seconds", "ms": "milliseconds"}


@final
class Option(Frozen):
    """One option, declared once.

    Attributes:
        name: the keyword argument.
        kind: what its value is (:class:`Kind`).
        default: its default; ``None`` here means ``None`` is accepted.
        doc: one line (Markdown) for the docs' table.
        least: the lowest value allowed (see :class:`Kind`).
        most: the highest value allowed, or ``None``.
        env: the environment variables that set it, first found wins (or,
            for an option made of several, each a part of it).
        env_unit: the unit of a :attr:`Kind.SECONDS` variable: ``"s"`` or
            ``"ms"`` (flagd's ``*_MS`` variables), converted to seconds.
        type: the docs' type, where the kind does not say it.
        shown: the docs' default, where ``repr`` does not say it well.
        section: which of its face's tables it is listed in.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "name",
        "kind",
        "default",
        "doc",
        "least",
        "most",
        "env",
        "env_unit",
        "type",
        "shown",
        "section",
    )
    name: str
    kind: str
    default: object
    doc: str
    least: float | None
    most: float | None
    env: tuple[str, ...]
    env_unit: str
    type: str
    shown: str
    section: str

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        default: object,
        doc: str,
        least: float | None = None,
        most: float | None = None,
        env: tuple[str, ...] = (),
        env_unit: str = "s",
        type: str = "",
        shown: str = "",
        section: str = "",
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of Kind's, got {kind!r}")
        if env_unit not in _SCALE:
            raise ValueError(f"env_unit must be 's' or 'ms', got {env_unit!r}")
        set_field(self, "name", name)
        set_field(self, "kind", kind)
        set_field(self, "default", default)
        set_field(self, "doc", doc)
        set_field(self, "least", least)
        set_field(self, "most", most)
        set_field(self, "env", env)
        set_field(self, "env_unit", env_unit)
        set_field(self, "type", type)
        set_field(self, "shown", shown)
        set_field(self, "section", section)

    def label(self, where: str = "") -> str:
        """How messages name it: ``name``, or ``where(name=...)`` for a factory's argument."""
        return f"{where}({self.name}=...)" if where else self.name


def size_words(count: float) -> str:
    """A byte count in words: ``64 KiB``, ``1 GiB``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size and count % size == 0:
            return f"{int(count // size)} {unit}"
    return f"{count:g} bytes"


def check(
    option: Option,
    value: object,
    where: str = "",
    *,
    text_hint: str = "",
    variable: str = "",
    label: str = "",
) -> object:
    """``value`` checked against ``option``'s declaration: returned (a URL without its trailing ``/``).

    Args:
        option: the declaration.
        value: as given (callers may not be typed).
        where: the factory whose argument it is (``"DataSystem.flagd"``);
            ``""`` for ``Config``'s options.
        text_hint: said after a boolean option's error when given a string.
        variable: the environment variable it was read from (the caller
            names it): no guess that a number is milliseconds then.
        label: how to name the option, if not :meth:`Option.label`'s way.

    Raises:
        ConfigurationError: naming the option (:meth:`Option.label`).
    """
    kind, label = option.kind, label or option.label(where)
    if kind == Kind.OTHER or (value is None and option.default is None):
        return value
    if kind == Kind.BOOL:
        check_bool(label, value, text_hint=text_hint)
    elif kind == Kind.SECONDS:
        _check_seconds(option, label, value, guess=not variable)
    elif kind in (Kind.COUNT, Kind.BYTES):
        _check_count(option, label, value)
    elif kind == Kind.URL:
        return check_url(label, value)
    elif kind == Kind.TEXT:
        if not isinstance(value, str):
            none = " or None" if option.default is None else ""
            raise ConfigurationError(f"{label} must be a string{none}, got {value!r}")
    elif kind == Kind.HEADER:
        if value != "" and not (isinstance(value, str) and header_value(value)):
            raise ConfigurationError(
                f"{label} is sent as an HTTP header value: it must be a string of "
                f"visible ASCII characters (spaces only inside), got {value!r}"
            )
    elif (  # (Kind.FRACTION, the last)
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value <= 1
    ):
        raise ConfigurationError(f"{label} must be between 0 and 1, got {value!r}")
    return value


def _check_seconds(option: Option, label: str, value: object, *, guess: bool) -> None:
    least, most = option.least, option.most
    check_seconds(label, value, allow_zero=least == 0)
    assert isinstance(value, (int, float))  # (checked above)
    if least and value < least:
        raise ConfigurationError(
            f"{label} must be at least {least:g} seconds, got {value!r}"
        )
    if most is not None and value > most:
        hint = ""
        if guess and value / 1000 <= most:  # surely milliseconds (issue 95, row 226)
            ms = option.env_unit == "ms" and option.env
            given = f", as {option.env[0]}" if ms else ""
            hint = (
                f" ({value:g} looks like milliseconds{given}: "
                f"{option.name}={value / 1000:g})"
            )
        raise ConfigurationError(
            f"{label} must be at most {most:g} seconds, got {value!r}{hint}"
        )


def _check_count(option: Option, label: str, value: object) -> None:
    least = 1 if option.least is None else int(option.least)
    most = option.most
    if type(value) is int and value >= least and (most is None or value <= most):
        return
    if most is None and least == 1:
        raise ConfigurationError(f"{label} must be a positive integer, got {value!r}")
    unit = "bytes" if option.kind == Kind.BYTES else "items"
    upper = "" if most is None else f" to {int(most)} ({size_words(most)})"
    raise ConfigurationError(
        f"{label} must be a number of {unit} from {least} ({size_words(least)})"
        f"{upper}, got {value!r}"
    )


def parse(option: Option, variable: str, text: str) -> object:
    """A variable's text as ``option``'s value; ``None``: an empty variable, unset.

    Booleans are ``true``/``false``, ``1``/``0``, ``yes``/``no``,
    ``on``/``off`` (empty: false); durations are numbers in the
    variable's unit (:attr:`Option.env_unit`), converted to seconds; other
    kinds are the text as it is. The value is not checked here:
    :func:`check` does that, where the option is given.

    Raises:
        ConfigurationError: ``VARIABLE='text': expected ...``.
    """
    if option.kind == Kind.BOOL:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigurationError(f"{variable}={text!r}: expected true or false")
    if option.kind == Kind.SECONDS:
        return parse_seconds(variable, text, option.env_unit)
    return text if text.strip() else None


def parse_seconds(variable: str, text: str, unit: str = "s") -> float:
    """A variable's number of ``unit`` (``"s"`` or ``"ms"``) as seconds.

    Raises:
        ConfigurationError: ``VARIABLE='text': expected a number of ...``.
    """
    try:
        value = float(text) / _SCALE[unit]
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigurationError(
            f"{variable}={text!r}: expected a number of {UNIT_NAME[unit]}"
        ) from None
    return value
