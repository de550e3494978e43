"""flagd's JsonLogic at run time: the helpers the compiled targeting calls.

The generated code of :mod:`._jsonlogic` writes the common forms inline and
calls these for the rest. Their semantics are those of flagd's Python
provider (``openfeature-flagd-core`` 2.0 over ``panzi-json-logic`` 1.0.1):
JavaScript-like coercions (:func:`to_number`, :func:`to_string`,
:func:`truthy`, :func:`loose_equals`), the comparisons with their
three-argument "between" form, and flagd's operators (:func:`sem_ver`,
:func:`starts_with`, :func:`ends_with`; ``fractional`` is
:mod:`._fractional`'s), each ``None`` on
error as flagd has them. Where the reference departs from JsonLogic,
JavaScript and Go flagd, these take flagd's side; each such place says
"correction" below and is listed in docs/flagd.md.

Where the reference *raises* (a division by zero, an integer too large for
a float), these raise :class:`RuleError`: the reference's OpenFeature client
turns any such exception into the error ``GENERAL``, and so does the flag's
head.
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from aioflags._core._clock import wall_ms

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context

__all__ = [
    "RuleError",
    "flagd_data",
    "loose_equals",
    "parse_version",
    "sem_ver",
    "strict_equals",
    "to_number",
    "to_string",
    "truthy",
]


class RuleError(Exception):
    """A rule that fails while it runs, where flagd's Python provider raises.

    A division or a modulo by zero, a number too large for a float: the
    reference's OpenFeature client gives the error ``GENERAL`` for these (it
    maps any exception a resolution raises but its own so), and the flag's
    head does the same with this one.
    """


NAN: Final = float("nan")


# --------------------------------------------------------------- the context


def flagd_data(
    ctx: Context, flag_key: str, static: dict[str, JSONValue] | None = None
) -> dict[str, JSONValue]:
    """The whole data a rule of flag ``flag_key`` sees for ``ctx`` (flagd's context).

    A single-kind context: its attributes (``kind``, ``key``, ``name``,
    ``anonymous`` and the custom ones, as given), then ``$flagd``
    (``flagKey``, ``timestamp``: Unix seconds), then ``targetingKey``: the
    context's key, ``None`` for a keyless one. Both override attributes of
    those names, as in flagd. A multi-kind context (a documented choice):
    each kind's attributes under its kind, with its key as their
    ``targetingKey``, and the fully qualified key as ``targetingKey``.

    ``static``: flagd's static context (a sync server's ``sync_context``),
    under the context's own attributes.

    The generated code reads a literal ``var`` path without building this
    (``{"var": "email"}`` is one ``dict.get``); it builds it for what needs
    the whole (``{"var": ""}``, a computed path, ``missing``).
    """
    data: dict[str, JSONValue]
    if ctx._kind == "multi":
        data = {
            kind: {**part._values, "targetingKey": part._key}
            for kind, part in ctx._parts.items()
        }
        key: str | None = ctx._fq_key
    else:
        data = dict(ctx._values)
        key = ctx._key or None
    if static:
        data = {**static, **data}
    data["$flagd"] = {"flagKey": flag_key, "timestamp": now()}
    data["targetingKey"] = key
    return data


def attributes(
    ctx: Context, flag_key: str, static: dict[str, JSONValue] | None = None
) -> Callable[[str], JSONValue]:
    """The lookup of a top-level attribute: ``ctx._get``, or a multi-kind context's data's.

    With a ``static`` context (:func:`flagd_data`), the context's
    attributes over it. (``targetingKey`` and ``$flagd`` are read
    otherwise: see :func:`targeting_key`.)
    """
    if ctx._kind == "multi":
        return flagd_data(ctx, flag_key, static).get
    if static:
        # (the context's attribute, else the static one: no merged copy,
        # whose cost would be the static context's size per evaluation)
        values = ctx._values
        return lambda name: values[name] if name in values else static.get(name)
    return ctx._get


def targeting_key(ctx: Context) -> str | None:
    """The ``targetingKey`` of a context whose own key is empty (keyless, or multi-kind)."""
    return ctx._fq_key if ctx._kind == "multi" else None


def now() -> int:
    """``$flagd.timestamp``: Unix time in whole seconds."""
    # (flagd's timestamp is the wall clock's by definition, not a duration)
    return wall_ms() // 1000


def fail(message: str) -> JSONValue:
    """Raise :class:`RuleError` (a form the reference raises on when it runs)."""
    raise RuleError(message)


# ----------------------------------------------------------------- coercions


def to_number(a: JSONValue) -> Any:
    """JavaScript's ``Number(a)``, as the reference computes it (``NaN`` when none)."""
    if isinstance(a, (int, float)):
        return a
    if a is None:
        return 0
    if isinstance(a, list):
        if not a:
            return 0
        return NAN if len(a) > 1 else to_number(a[0])
    if isinstance(a, dict):
        return NAN
    if isinstance(a, str) and a.strip().lower() in ("inf", "-inf", "+inf"):
        return NAN
    try:
        return float(a)
    except ValueError:
        return NAN


def to_string(value: JSONValue) -> str:
    """JavaScript's ``String(value)``, as the reference computes it.

    Correction: ``true``/``false`` for booleans (the reference writes
    Python's ``True``/``False``).
    """
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return f"{value:.15g}"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, list):
        return ",".join(to_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def truthy(value: JSONValue) -> bool:
    """JsonLogic's truthiness: false for ``null``, ``false``, 0, NaN, ``""``, ``[]``.

    An object is true (``{}`` too), as in JavaScript and the reference.
    """
    if value is None:
        return False
    if type(value) is bool:
        return value
    if isinstance(value, float):
        return not math.isnan(value) and value != 0.0
    if isinstance(value, (str, int, list)):
        return bool(value)
    return True


def not_(value: JSONValue = None, *ignored: JSONValue) -> bool:
    """``!``: the negation of :func:`truthy` (its first argument's)."""
    return not truthy(value)


def bool_(value: JSONValue = None, *ignored: JSONValue) -> bool:
    """``!!``: :func:`truthy` of the first argument (false without one)."""
    return truthy(value)


# --------------------------------------------------------------- comparisons


def loose_equals(a: JSONValue = None, b: JSONValue = None, *ignored: JSONValue) -> bool:
    """``==``: JavaScript's loose equality, as the reference computes it."""
    ta = type(a)
    if ta is type(b):
        if ta is list or ta is dict:
            return a is b
        return bool(a == b)
    if isinstance(a, (int, float)):
        if isinstance(b, (int, float)):
            return bool(a == b)
        return bool(a == to_number(b))
    if isinstance(b, (int, float)):
        return bool(to_number(a) == b)
    if a is None or b is None:
        return False
    if isinstance(a, str):
        # (b: a list or an object; a bool is an int above)
        return a == to_string(b)
    # a: a list or an object; b: a string or the other container
    if isinstance(b, str):
        return to_string(a) == b
    return False


def not_loose_equals(
    a: JSONValue = None, b: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``!=``."""
    return not loose_equals(a, b)


def strict_equals(
    a: JSONValue = None, b: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``===``: equal and of the same JSON type.

    Correction: a boolean is not a number (the reference compares with
    Python's ``==``, where ``true === 1``); ``1 === 1.0`` stays true (one
    number type in JSON). Lists and objects compare by content, as in the
    reference.
    """
    if (type(a) is bool) is not (type(b) is bool):
        return False
    return bool(a == b)


def not_strict_equals(
    a: JSONValue = None, b: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``!==``."""
    return not strict_equals(a, b)


def _less(a: JSONValue, b: JSONValue) -> bool:
    if isinstance(a, (int, float)):
        return bool(a < to_number(b))
    if isinstance(b, (int, float)):
        return bool(to_number(a) < b)
    if isinstance(a, str):
        return a < to_string(b)
    if isinstance(b, str):
        return to_string(a) < b
    return bool(to_number(a) < to_number(b))


def _less_equal(a: JSONValue, b: JSONValue) -> bool:
    if isinstance(a, (int, float)):
        return bool(a <= to_number(b))
    if isinstance(b, (int, float)):
        return bool(to_number(a) <= b)
    if isinstance(a, str):
        return a <= to_string(b)
    if isinstance(b, str):
        return to_string(a) <= b
    return bool(to_number(a) <= to_number(b))


def less(
    a: JSONValue = None, b: JSONValue = None, c: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``<``; with a third argument (not null), ``a < b < c``."""
    if c is None:
        return _less(a, b)
    return _less(a, b) and _less(b, c)


def less_equal(
    a: JSONValue = None, b: JSONValue = None, c: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``<=``; with a third argument (not null), ``a <= b <= c``."""
    if c is None:
        return _less_equal(a, b)
    return _less_equal(a, b) and _less_equal(b, c)


def greater(
    a: JSONValue = None, b: JSONValue = None, c: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``>``; with a third argument (not null), ``a > b > c``."""
    if c is None:
        return _less(b, a)
    return _less(b, a) and _less(c, b)


def greater_equal(
    a: JSONValue = None, b: JSONValue = None, c: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``>=``; with a third argument (not null), ``a >= b >= c``."""
    if c is None:
        return _less_equal(b, a)
    return _less_equal(b, a) and _less_equal(c, b)


def _member(needle: JSONValue, haystack: list[JSONValue]) -> bool:
    # Correction: JavaScript's indexOf (strict equality): a boolean is not
    # a number (the reference's Python ``in`` finds ``true`` in ``[1]``).
    if type(needle) is bool:
        return any(item is needle for item in haystack)
    return any(type(item) is not bool and item == needle for item in haystack)


def in_(
    needle: JSONValue = None, haystack: JSONValue = None, *ignored: JSONValue
) -> bool:
    """``in``: a member of a list, or a substring of a string (the needle stringified)."""
    if isinstance(haystack, list):
        return _member(needle, haystack)
    if isinstance(haystack, str):
        return to_string(needle) in haystack
    return False


# ---------------------------------------------------------------- arithmetic


def _arithmetic(name: str, exc: ArithmeticError) -> RuleError:
    return RuleError(f"{name}: {exc}")


def add(*args: JSONValue) -> Any:
    """``+``: the sum of the arguments as numbers (0 without any)."""
    value: Any = 0
    try:
        for arg in args:
            value += to_number(arg)
    except ArithmeticError as exc:
        raise _arithmetic("+", exc) from None
    return value


def multiply(*args: JSONValue) -> Any:
    """``*``: the product of the arguments as numbers (1 without any)."""
    value: Any = 1
    try:
        for arg in args:
            value *= to_number(arg)
    except ArithmeticError as exc:
        raise _arithmetic("*", exc) from None
    return value


def subtract(a: JSONValue = None, b: JSONValue = None, *ignored: JSONValue) -> Any:
    """``-``: ``a - b``; the negation of ``a`` when ``b`` is absent or null."""
    try:
        return -to_number(a) if b is None else to_number(a) - to_number(b)
    except ArithmeticError as exc:
        raise _arithmetic("-", exc) from None


def divide(a: JSONValue = None, b: JSONValue = None, *ignored: JSONValue) -> Any:
    """``/``: a :class:`RuleError` on a division by zero, as the reference raises."""
    try:
        return to_number(a) / to_number(b)
    except ArithmeticError as exc:
        raise _arithmetic("/", exc) from None


def modulo(a: JSONValue = None, b: JSONValue = None, *ignored: JSONValue) -> Any:
    """``%`` (Python's: the sign of the divisor, as in the reference)."""
    try:
        return to_number(a) % to_number(b)
    except ArithmeticError as exc:
        raise _arithmetic("%", exc) from None


def minimum(*args: JSONValue) -> Any:
    """``min`` of the arguments as numbers (NaN without any)."""
    return min(to_number(arg) for arg in args) if args else NAN


def maximum(*args: JSONValue) -> Any:
    """``max`` of the arguments as numbers (NaN without any)."""
    return max(to_number(arg) for arg in args) if args else NAN


# ------------------------------------------------------------------- strings


def cat(*args: JSONValue) -> str:
    """``cat``: the arguments as strings, joined."""
    return "".join([arg if type(arg) is str else to_string(arg) for arg in args])


def substr(
    string: JSONValue = None,
    index: JSONValue = None,
    length: JSONValue = None,
    *ignored: JSONValue,
) -> str:
    """``substr``: JavaScript's ``substr``, with negative index and length from the end."""
    text = to_string(string)
    start = to_number(index)
    size = len(text)
    try:
        if math.isnan(start):
            start = 0
        elif start < 0:
            start = 0 if -start >= size else size - int(-start)
        else:
            start = min(int(start), size)
        if length is None:
            end = size
        else:
            count = to_number(length)
            if math.isnan(count):
                end = start
            else:
                count = int(count)
                end = max(size + count, start) if count < 0 else start + count
    except (ArithmeticError, ValueError) as exc:
        raise RuleError(f"substr: {exc}") from None
    return text[start:end]


def merge(*args: JSONValue) -> list[JSONValue]:
    """``merge``: the arguments' items (a list's) or themselves, in one list."""
    items: list[JSONValue] = []
    for arg in args:
        if isinstance(arg, list):
            items.extend(arg)
        else:
            items.append(arg)
    return items


def log(value: JSONValue = None, *ignored: JSONValue) -> JSONValue:
    """``log``: its argument. Correction: nothing is written (the reference prints it)."""
    return value


# ----------------------------------------------------------------------- var


def var(data: JSONValue, key: JSONValue = None, default: JSONValue = None) -> JSONValue:
    """``var``: the value at ``key`` (a dotted path, or an index) in ``data``.

    The whole of ``data`` for a null or empty key; ``default`` where the
    path leads nowhere or to null.
    """
    if key is None or key == "":
        return data
    if isinstance(key, (int, float)):
        if isinstance(data, (list, str)):
            try:
                index = int(key)
            except ValueError:
                return default
            except OverflowError as exc:
                raise RuleError(f"var: {exc}") from None
            if index != key or index < 0 or index >= len(data):
                return default
            return data[index]
        if isinstance(data, dict):
            data = data.get(key)
            if data is None:
                return default
        else:
            return default
    return walk(data, to_string(key).split("."), default)


def walk(data: JSONValue, props: Sequence[str], default: JSONValue = None) -> JSONValue:
    """``data`` followed along ``props`` (object keys, list or string indexes, ``length``)."""
    for prop in props:
        if isinstance(data, (list, str)):
            if prop == "length":
                return len(data)
            try:
                index = int(prop, 10)
            except ValueError:
                return default
            if prop != str(index) or index < 0 or index >= len(data):
                return default
            data = data[index]
        elif isinstance(data, dict):
            data = data.get(prop)
        else:
            return default
    return default if data is None else data


def missing(data: JSONValue, *args: JSONValue) -> list[JSONValue]:
    """``missing``: the keys (the arguments, or the first if a list) null or ``""`` in ``data``."""
    keys: Sequence[JSONValue] = args[0] if args and isinstance(args[0], list) else args
    out: list[JSONValue] = []
    for key in keys:
        value = var(data, key)
        if value is None or value == "":
            out.append(key)
    return out


def missing_some(
    data: JSONValue, need: JSONValue = 0, keys: JSONValue = None, *ignored: JSONValue
) -> list[JSONValue]:
    """``missing_some``: the missing ``keys``, or none when at least ``need`` are present."""
    if not isinstance(keys, list):
        return []
    absent = missing(data, keys)
    if len(keys) - len(absent) >= to_number(need):
        return []
    return absent


# ------------------------------------------------------ the forms over lists


def map_(items: JSONValue, each: Callable[[JSONValue], JSONValue]) -> list[JSONValue]:
    """``map``: ``each`` of every item of a list (``[]`` for anything else)."""
    if not isinstance(items, list):
        return []
    return [each(item) for item in items]


def filter_(
    items: JSONValue, each: Callable[[JSONValue], JSONValue]
) -> list[JSONValue]:
    """``filter``: the items of a list for which ``each`` is truthy."""
    if not isinstance(items, list):
        return []
    return [item for item in items if truthy(each(item))]


def reduce_(
    items: JSONValue, each: Callable[[JSONValue], JSONValue], initial: JSONValue
) -> JSONValue:
    """``reduce``: ``each`` over ``{"current": item, "accumulator": ...}``.

    ``initial`` is the rule's third argument as written (the reference does
    not evaluate it), and the result when ``items`` is not a list.
    """
    if not isinstance(items, list):
        return initial
    accumulator = initial
    for item in items:
        accumulator = each({"accumulator": accumulator, "current": item})
    return accumulator


def all_(items: JSONValue, each: Callable[[JSONValue], JSONValue]) -> bool:
    """``all``: a non-empty list whose every item makes ``each`` truthy."""
    if not isinstance(items, list) or not items:
        return False
    return all(truthy(each(item)) for item in items)


def some(items: JSONValue, each: Callable[[JSONValue], JSONValue]) -> bool:
    """``some``: a list with an item that makes ``each`` truthy."""
    if not isinstance(items, list):
        return False
    return any(truthy(each(item)) for item in items)


def none(items: JSONValue, each: Callable[[JSONValue], JSONValue]) -> bool:
    """``none``: not :func:`some` (true for anything but a list)."""
    if not isinstance(items, list):
        return True
    return not any(truthy(each(item)) for item in items)


# ------------------------------------------------------- flagd's own operators


def starts_with(*args: JSONValue) -> bool | None:
    """``starts_with [value, prefix]``: both strings, else ``None``."""
    if len(args) != 2:
        return None
    a, b = args
    if type(a) is not str or type(b) is not str:
        return None
    return a.startswith(b)


def ends_with(*args: JSONValue) -> bool | None:
    """``ends_with [value, suffix]``: both strings, else ``None``."""
    if len(args) != 2:
        return None
    a, b = args
    if type(a) is not str or type(b) is not str:
        return None
    return a.endswith(b)


#: A version as :func:`parse_version` gives it: a key that orders versions
#: as semantic versioning does (build metadata left out), then its major
#: and minor numbers.
Version = tuple[tuple[Any, ...], int, int]

_ID = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    rf"(?:-({_ID}(?:\.{_ID})*))?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)


@lru_cache(maxsize=1)
def _semver_pattern() -> re.Pattern[str]:
    # (compiled at the first sem_ver met, not at import)
    return re.compile(_SEMVER, re.ASCII)


def _identifier(part: str) -> tuple[int, int, str]:
    # numeric identifiers first, by value; others by their text
    if part.isdigit():
        digits = part.lstrip("0") or "0"
        return (0, len(digits), digits)
    return (1, 0, part)


#: The versions ``sem_ver`` keeps parsed: at most this many, each of at
#: most :data:`CACHED_VERSION_LENGTH` characters (a version comes from the
#: evaluation context: a longer one is parsed each time, never kept).
#: About 4 MB at most (docs/flagd.md, "Limits").
CACHED_VERSIONS: Final = 512
CACHED_VERSION_LENGTH: Final = 128
#: The kept versions, oldest first (a hit is one dict lookup).
_versions: dict[str, Version | None] = {}
_versions_lock: Final = threading.Lock()


def parse_version(text: str) -> Version | None:
    """A version of ``sem_ver``, or ``None`` if ``text`` is none.

    A leading ``v``/``V`` dropped, a missing minor or patch padded with
    ``.0``; then strict semantic versioning. (A number is read as its
    Python ``str``, as in the reference: :func:`version_of`.) The last
    :data:`CACHED_VERSIONS` short versions parsed are kept.
    """
    try:
        return _versions[text]
    except KeyError:
        return _parse_and_keep(text)


def _parse_and_keep(text: str) -> Version | None:
    version = _parse_version(text)
    if len(text) <= CACHED_VERSION_LENGTH:
        with _versions_lock:
            _versions[text] = version
            if len(_versions) > CACHED_VERSIONS:
                del _versions[next(iter(_versions))]
    return version


def _parse_version(text: str) -> Version | None:
    if text.startswith(("v", "V")):
        text = text[1:]
    numeric = text.split("-")[0].split("+")[0]
    dots = numeric.count(".")
    if dots < 2:
        text = numeric + ".0" * (2 - dots) + text[len(numeric) :]
    match = _semver_pattern().fullmatch(text)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    release: tuple[Any, ...] = (
        (1,) if pre is None else (0, tuple(_identifier(p) for p in pre.split(".")))
    )
    return ((int(major), int(minor), int(patch), *release), int(major), int(minor))


def version_of(value: JSONValue) -> Version | None:
    """:func:`parse_version` of any JSON value (a list or an object is none)."""
    if isinstance(value, str):
        try:
            return _versions[value]
        except KeyError:
            return _parse_and_keep(value)
    if isinstance(value, (list, dict)):
        return None
    return parse_version(str(value))


_SEMVER_TESTS: Final[dict[str, Callable[[Version, Version], bool]]] = {
    "=": lambda a, b: a[0] == b[0],
    "!=": lambda a, b: a[0] != b[0],
    "<": lambda a, b: a[0] < b[0],
    "<=": lambda a, b: a[0] <= b[0],
    ">": lambda a, b: a[0] > b[0],
    ">=": lambda a, b: a[0] >= b[0],
    "^": lambda a, b: a[1] == b[1],
    "~": lambda a, b: a[1] == b[1] and a[2] == b[2],
}


def sem_ver(*args: JSONValue) -> bool | None:
    """``sem_ver [value, operator, target]``: ``None`` on any error."""
    if len(args) != 3:
        return None
    value, op, target = args
    a = version_of(value)
    b = version_of(target)
    if a is None or b is None:
        return None
    test = _SEMVER_TESTS.get(op) if type(op) is str else None
    return None if test is None else test(a, b)


def sem_ver_to(
    value: JSONValue, test: Callable[[Version, Version], bool], target: Version
) -> bool | None:
    """``sem_ver`` against a target and an operator known when the rule was compiled."""
    a = version_of(value)
    return None if a is None else test(a, target)


def semver_test(op: str) -> Callable[[Version, Version], bool] | None:
    """The test of ``sem_ver``'s operator ``op`` (``None``: not one)."""
    return _SEMVER_TESTS.get(op)
