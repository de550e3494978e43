"""flagd's ``fractional`` at run time: a rule's weights, and the bucket a context falls in.

The helpers the compiled targeting calls for ``fractional`` (written by
:mod:`._jsonlogic_compiler`): the bucketing value as bytes (its
deterministic CBOR, :func:`cbor`, for version 3; its UTF-8 text for
version 2), hashed with the MurmurHash3 the compiled code hands in (the
``flagd`` extra's ``mmh3``), and looked up in the variants' weights,
weighed once where they are constant (:class:`Fractions`).
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from typing import TYPE_CHECKING, Any, Final

from ._operators import RuleError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aioflags._core._json import JSONValue

__all__ = [
    "MAX_WEIGHT_SUM",
    "Fractions",
    "cbor",
    "fractional",
    "fractional_by",
    "fractional_by2",
    "fractional_data",
    "fractional_key",
    "fractional_key2",
    "fractional_prefix",
    "fractions_of",
]

#: The largest total weight of a ``fractional`` (Go's MaxInt32).
MAX_WEIGHT_SUM: Final = 2_147_483_647


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
