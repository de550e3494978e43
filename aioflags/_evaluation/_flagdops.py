"""flagd's JsonLogic at run time: the helpers the compiled targeting calls.

The generated code of :mod:`._jsonlogic` writes the common forms inline and
calls these for the rest. Their semantics are those of flagd's Python
provider (``openfeature-flagd-core`` 2.0 over ``panzi-json-logic`` 1.0.1):
JavaScript-like coercions (:func:`to_number`, :func:`to_string`,
:func:`truthy`, :func:`loose_equals`), the comparisons with their
three-argument "between" form, and flagd's operators (:func:`fractional`,
:func:`sem_ver`, :func:`starts_with`, :func:`ends_with`), each ``None`` on
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
import struct
import threading
from bisect import bisect_right
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from aioflags._core._clock import wall_ms

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aioflags._core._json import JSONValue

    from ._context import Context

__all__ = [
    "MAX_WEIGHT_SUM",
    "Fractions",
    "RuleError",
    "cbor",
    "flagd_data",
    "fractional",
    "fractions_of",
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
#: The largest total weight of a ``fractional`` (Go's MaxInt32).
MAX_WEIGHT_SUM: Final = 2_147_483_647


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


# ----------------------------------------------------------------- fractional

_HALF: Final = struct.Struct(">e")
_SINGLE: Final = struct.Struct(">f")
_DOUBLE: Final = struct.Struct(">d")


def _head(major: int, n: int) -> bytes:
    """A CBOR item's head: major type and argument, shortest form."""
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return bytes((m | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((m | 26,)) + n.to_bytes(4, "big")
    return bytes((m | 27,)) + n.to_bytes(8, "big")


def _float(value: float) -> bytes:
    if math.isnan(value):
        return b"\xf9\x7e\x00"
    if math.isinf(value):
        return b"\xf9\x7c\x00" if value > 0 else b"\xf9\xfc\x00"
    for tag, form in ((0xF9, _HALF), (0xFA, _SINGLE)):
        try:
            packed = form.pack(value)
        except OverflowError:
            continue
        if form.unpack(packed)[0] == value:
            return bytes((tag,)) + packed
    return b"\xfb" + _DOUBLE.pack(value)


def _int(value: int) -> bytes:
    if 0 <= value < 1 << 64:
        return _head(0, value)
    if -(1 << 64) <= value < 0:
        return _head(1, -1 - value)
    # a bignum: tag 2 (or 3) and the magnitude's bytes
    tag, n = (0xC2, value) if value >= 0 else (0xC3, -1 - value)
    magnitude = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag,)) + _head(2, len(magnitude)) + magnitude


def cbor(value: JSONValue) -> bytes:
    """``value``'s deterministic CBOR encoding (RFC 8949 §4.2.1), numbers normalised.

    A float with no fraction in [-2^63, 2^64-1] is the integer it equals
    (-0.0 is 0), as flagd's bucketing asks; other floats take their
    shortest exact form (half, single, double). Integers take the shortest
    head (bignums past 64 bits), strings are UTF-8, an object's keys are
    sorted by their encoded bytes. Raises ``ValueError`` (a string that is
    not valid Unicode: a lone surrogate) or ``TypeError`` (not JSON).
    """
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: JSONValue, out: list[bytes]) -> None:
    t = type(value)
    if t is str:
        data = value.encode()
        out.append(_head(3, len(data)))
        out.append(data)
    elif t is bool:
        out.append(b"\xf5" if value else b"\xf4")
    elif t is int:
        out.append(_int(value))
    elif t is float:
        if value.is_integer() and -(2**63) <= value <= 2**64 - 1:
            out.append(_int(int(value)))
        else:
            out.append(_float(value))
    elif value is None:
        out.append(b"\xf6")
    elif t is list:
        out.append(_head(4, len(value)))
        for item in value:
            _encode(item, out)
    elif t is dict:
        entries = sorted((cbor(k), cbor(v)) for k, v in value.items())
        out.append(_head(5, len(entries)))
        for k, v in entries:
            out.append(k)
            out.append(v)
    else:
        raise TypeError(f"not a JSON value: {t.__name__}")


class Fractions:
    """A ``fractional``'s variants, weighed once: ``None`` for an invalid list.

    ``thresholds``: the cumulative weights; a bucket ``b`` in
    ``[0, total)`` is the variant at ``bisect_right(thresholds, b)``.
    """

    __slots__ = ("thresholds", "total", "variants")

    def __init__(self, variants: tuple[JSONValue, ...], weights: Sequence[int]) -> None:
        self.variants = variants
        running = 0
        thresholds = []
        for weight in weights:
            running += weight
            thresholds.append(running)
        self.thresholds: tuple[int, ...] = tuple(thresholds)
        self.total = running

    def pick(self, hash32: int) -> JSONValue:  # (the helpers above inline it)
        """The variant of an unsigned 32-bit hash: ``(hash * total) >> 32``'s."""
        bucket = (hash32 * self.total) >> 32
        return self.variants[bisect_right(self.thresholds, bucket)]


def fractions_of(entries: Sequence[JSONValue], version: int) -> Fractions | None:
    """The evaluated variant entries of a ``fractional``; ``None`` if flagd refuses them.

    v3 (the reference's): each ``[variant]`` (weight 1) or ``[variant,
    weight]``, the weight an integer (not a boolean, not a float), a
    negative one 0. v2 (Go flagd's): a variant a string, number, boolean
    or null, a weight a whole number (null: 1), below 2^31, extra items
    ignored. Both: ``None`` when the total is 0 or exceeds 2^31-1.
    """
    variants: list[JSONValue] = []
    weights: list[int] = []
    for entry in entries:
        if not isinstance(entry, list) or not entry:
            return None
        if version == 3 and len(entry) > 2:
            return None
        variant = entry[0]
        weight: Any = 1
        if len(entry) > 1:
            weight = entry[1]
            if version == 3:
                if type(weight) is not int:
                    return None
            elif weight is None:
                weight = 1
            elif not _whole(weight):
                return None
        if version == 2 and isinstance(variant, (list, dict)):
            return None
        variants.append(variant)
        weights.append(max(0, int(weight)))
    fractions = Fractions(tuple(variants), weights)
    if not 0 < fractions.total <= MAX_WEIGHT_SUM:
        return None
    return fractions


def _whole(weight: JSONValue) -> bool:
    """A v2 weight: a number (not a boolean) with no fraction, below 2^31."""
    if type(weight) is bool or not isinstance(weight, (int, float)):
        return False
    if isinstance(weight, float) and not weight.is_integer():
        return False  # (NaN and the infinities too)
    return int(weight) <= MAX_WEIGHT_SUM


def fractional(
    hash_: Callable[..., int],
    flag_key: str,
    key: str | None,
    version: int,
    *args: JSONValue,
) -> JSONValue:
    """``fractional`` with every argument evaluated (the general form).

    ``key`` is the data's ``targetingKey``. v3: the first argument is the
    bucketing value unless it is a list (then every argument is a variant
    entry and the value is ``[flag_key, key]``: a non-empty string key
    needed). v2: the first argument is the bucketing string if it is one,
    else ``flag_key + key`` (a null first argument dropped).
    """
    if not args:
        return None
    data: bytes
    if version == 3:
        if isinstance(args[0], list):
            if type(key) is not str or not key:
                return None
            value: JSONValue = [flag_key, key]
        else:
            value, args = args[0], args[1:]
            if value is None:
                return None
        try:
            data = cbor(value)
        except (ValueError, TypeError):
            return None
    else:
        if type(args[0]) is str:
            text, args = args[0], args[1:]
        else:
            if args[0] is None:
                args = args[1:]
            if type(key) is not str or not key:
                return None
            text = flag_key + key
        try:
            data = text.encode()
        except UnicodeEncodeError:
            return None
    fractions = fractions_of(args, version)
    if fractions is None:
        return None
    return fractions.pick(hash_(data))


#: The CBOR heads of the strings of 0 to 23 bytes.
_SHORT_TEXT: Final = tuple(bytes((0x60 | n,)) for n in range(24))


def fractional_key(
    prefix: bytes, key: str | None, fractions: Fractions, hash_: Callable[[bytes], int]
) -> JSONValue:
    """v3 ``fractional`` by the targeting key, its variants weighed when compiled.

    ``prefix``: the CBOR head of a 2-item array and the flag key's string;
    the key follows as a CBOR string. ``hash_``: unsigned MurmurHash3.
    """
    if type(key) is not str or not key:
        return None
    try:
        data = key.encode()
    except UnicodeEncodeError:
        return None
    n = len(data)
    h = hash_(prefix + (_SHORT_TEXT[n] if n < 24 else _head(3, n)) + data)
    return fractions.variants[
        bisect_right(fractions.thresholds, (h * fractions.total) >> 32)
    ]


def fractional_key2(
    prefix: bytes, key: str | None, fractions: Fractions, hash_: Callable[[bytes], int]
) -> JSONValue:
    """v2 ``fractional`` by the targeting key: ``prefix`` is the flag key's UTF-8."""
    if type(key) is not str or not key:
        return None
    try:
        data = key.encode()
    except UnicodeEncodeError:
        return None
    h = hash_(prefix + data)
    return fractions.variants[
        bisect_right(fractions.thresholds, (h * fractions.total) >> 32)
    ]


def fractional_prefix(flag_key: str, version: int) -> bytes | None:
    """:func:`fractional_key`'s ``prefix`` for ``flag_key`` (``None``: no valid one)."""
    try:
        return b"\x82" + cbor(flag_key) if version == 3 else flag_key.encode()
    except UnicodeEncodeError:
        return None


def fractional_by(
    value: JSONValue, fractions: Fractions, hash_: Callable[[bytes], int]
) -> JSONValue:
    """v3 ``fractional`` by a bucketing value (not a list, not null), weighed when compiled.

    ``None`` for a value that cannot be encoded.
    """
    try:
        if type(value) is str:
            data = value.encode()
            n = len(data)
            data = (_SHORT_TEXT[n] if n < 24 else _head(3, n)) + data
        else:
            data = cbor(value)
    except (ValueError, TypeError):
        return None
    h = hash_(data)
    return fractions.variants[
        bisect_right(fractions.thresholds, (h * fractions.total) >> 32)
    ]


def fractional_by2(
    value: str, fractions: Fractions, hash_: Callable[[bytes], int]
) -> JSONValue:
    """v2 ``fractional`` by a bucketing string, weighed when compiled."""
    try:
        data = value.encode()
    except UnicodeEncodeError:
        return None
    h = hash_(data)
    return fractions.variants[
        bisect_right(fractions.thresholds, (h * fractions.total) >> 32)
    ]


def fractional_data(
    hash_: Callable[..., int], data: JSONValue, version: int, *args: JSONValue
) -> JSONValue:
    """``fractional`` where the data is not the context (in ``map``, ``filter``...).

    The flag key and the targeting key are read from ``data``, as the
    reference reads them; a rule whose data is not an object then fails
    (:class:`RuleError`) where it needs them.
    """
    if not isinstance(data, dict):
        if args and (
            isinstance(args[0], list) if version == 3 else type(args[0]) is not str
        ):
            raise RuleError("fractional: the data is not an object")
        return fractional(hash_, "", None, version, *args)
    flagd = data.get("$flagd")
    flag_key = flagd.get("flagKey", "") if isinstance(flagd, dict) else ""
    return fractional(hash_, flag_key, data.get("targetingKey"), version, *args)


def _valid_text(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
