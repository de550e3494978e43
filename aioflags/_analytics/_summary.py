"""The summary event's ``features``, written as JSON text straight from the counters.

The flush's cost per flag counted (events.md §3, issue 59): each flag's
entry is read off its :class:`~aioflags._analytics._recorder.Counter` and
written as text in the same step, with no dict per row or per entry and no
second walk by the JSON encoder. A flag counted once in the window (one
counter: the common case) is written in one go; a flag with several (two
ledgers, or flag objects of a transfer) has its rows merged first, by
version and variation, as :func:`aioflags._analytics._format.features`
describes them.

The text is what ``json.dumps(..., separators=(",", ":"), allow_nan=False)``
writes for :func:`~aioflags._analytics._format.features`'s dict, byte for
byte (``tests/test_analytics_encoding.py`` holds the two together). A value
that is not JSON (a caller's default) is written as ``null`` and named in
``odd``, as deep in the event as the dict form would have it.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Final

from ._mend import NOT_WRITTEN, as_json

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Set as AbstractSet

    from aioflags._core._json import JSONValue

    from ._recorder import Counter

__all__ = ["SummaryWriter", "unique"]

_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
# The containers around a value in the dict form, for mending it as deep as
# that form would: {features: {key: {default}}} and {... [counters] {value}}.
_AT_DEFAULT: Final = frozenset({-1, -2})
_AT_ROW: Final = frozenset({-1, -2, -3, -4})
#: Texts of combinations of context kinds kept from one flush to the next.
_KINDS_KEPT: Final = 1_000


def _value(value: JSONValue, odd: list[str], within: frozenset[int]) -> str:
    """``value`` as compact JSON; ``null`` in place of any part that is not JSON."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    kind = value.__class__
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)
    try:
        return _ENCODE(value)
    except NOT_WRITTEN:
        return _ENCODE(as_json(value, odd, within))


def _kinds(kinds: AbstractSet[str]) -> str:
    return "[" + ",".join(encode_basestring_ascii(k) for k in sorted(kinds)) + "]"


def unique(counters: list[tuple[str, Counter]]) -> bool:
    """Whether each key has one counter (one C-level pass: no grouping needed)."""
    return len(dict(counters)) == len(counters)


class SummaryWriter:
    """Writes a summary's ``features`` entries, a slice of flags at a time.

    The writer keeps nothing of a flag from one flush to the next (a cache
    of each flag's text cost more to fill, at the flush after a change of
    the flag data, than it saved, and it kept thousands of objects alive for
    the collector); only the text of each combination of context kinds. A
    counter keeps the head of each row it has written (``Counter.heads``,
    strings: nothing for the collector), which serves as long as the counter
    does: the loop's serve again from window to window, for one flag object.
    A row whose value is not JSON is written afresh at each flush (its name
    goes to ``odd`` each time).
    """

    __slots__ = ("_kinds",)

    def __init__(self) -> None:
        self._kinds: dict[AbstractSet[str], str] = {}

    def done(self) -> None:
        """The summary is written (the kinds' texts are kept, up to a bound)."""
        if len(self._kinds) > _KINDS_KEPT:
            self._kinds.clear()

    def grouped(
        self, groups: Iterable[tuple[str, list[Counter]]], odd: list[str]
    ) -> str:
        """The entries of flags with one or more counters each (see :meth:`entries`)."""
        out = []
        for key, counters in groups:
            if len(counters) > 1:
                out.append(_merged(key, counters, odd))
            else:
                out.append(self.entries([(key, counters[0])], odd))
        return ",".join(out)

    def entries(self, counted: Iterable[tuple[str, Counter]], odd: list[str]) -> str:
        """The ``features`` entries of flags counted once each, without the braces.

        In their order. Joined with ``,``, the entries of consecutive slices
        of a summary's flags are the text of its whole ``features`` object.
        """
        out: list[str] = []
        append = out.append
        kinds_texts = self._kinds
        for key, counter in counted:
            default = counter.default
            if default is False:
                default_text = "false"
            elif default is True:
                default_text = "true"
            else:
                default_text = _value(default, odd, _AT_DEFAULT)
            kinds = counter.kinds
            kinds_text = kinds_texts.get(kinds)
            if kinds_text is None:
                kinds_text = kinds_texts[kinds] = _kinds(kinds)
            flag = counter.flag
            none = counter.none
            if flag is None:  # unknown: one default row
                value = _value(counter.none_value, odd, _AT_ROW)
                rows = f'{{"unknown":true,"value":{value},"count":{none}}}'
            else:
                # (the version's text only for a row written afresh: a
                # counter's heads hold it)
                version_text = None
                counts = counter.counts
                heads = counter.heads
                if heads is None:
                    heads = counter.heads = [None] * len(counts)
                rows = ""
                index = 0
                for count in counts:
                    if count:
                        head = heads[index]
                        if head is None:
                            mended = len(odd)
                            if version_text is None:
                                version_text = _value(flag.version, odd, _AT_ROW)
                            value = flag.variations[index]
                            if value is True:
                                value_text = "true"
                            elif value is False:
                                value_text = "false"
                            else:
                                value_text = _value(value, odd, _AT_ROW)
                            head = (
                                f'{{"variation":{index},"version":{version_text},'
                                f'"value":{value_text},"count":'
                            )
                            if len(odd) == mended:  # else: named at every flush
                                heads[index] = head
                        rows += f"{',' if rows else ''}{head}{count}}}"
                    index += 1  # noqa: SIM113 (enumerate: a tuple per variation)
                if none:
                    if version_text is None:
                        version_text = _value(flag.version, odd, _AT_ROW)
                    value = _value(counter.none_value, odd, _AT_ROW)
                    rows += (
                        f'{"," if rows else ""}{{"version":{version_text},'
                        f'"value":{value},"count":{none}}}'
                    )
            append(
                f'{encode_basestring_ascii(key)}:{{"default":{default_text},'
                f'"contextKinds":{kinds_text},"counters":[{rows}]}}'
            )
        return ",".join(out)


def _made(counter: Counter) -> int:
    return counter.order


def _merged(key: str, counters: list[Counter], odd: list[str]) -> str:
    """One flag's entry from several counters: rows summed by version and variation.

    In the order the counters were made; the default is the first one's.
    """
    counters = sorted(counters, key=_made)
    kinds: set[str] = set()
    # (version, variation index or None) -> [value, count, unknown]
    rows: dict[tuple[int | None, int | None], list[JSONValue]] = {}
    for counter in counters:
        kinds |= counter.kinds
        flag = counter.flag
        version = None if flag is None else flag.version
        for index, count in enumerate(counter.counts):
            if count:
                assert flag is not None
                row = rows.get((version, index))
                if row is None:
                    row = rows[version, index] = [flag.variations[index], 0]
                row[1] += count
        if counter.none:
            row = rows.get((version, None))
            if row is None:
                row = rows[version, None] = [counter.none_value, 0]
            row[1] += counter.none
    default = _value(counters[0].default, odd, _AT_DEFAULT)
    parts = []
    for (served, variation), (value, count) in rows.items():
        if variation is not None:
            written = _value(served, odd, _AT_ROW)
            head = f'{{"variation":{variation},"version":{written},'
        elif served is None:
            head = '{"unknown":true,'
        else:
            head = f'{{"version":{_value(served, odd, _AT_ROW)},'
        parts.append(f'{head}"value":{_value(value, odd, _AT_ROW)},"count":{count}}}')
    return (
        f'{encode_basestring_ascii(key)}:{{"default":{default},'
        f'"contextKinds":{_kinds(kinds)},"counters":[{",".join(parts)}]}}'
    )
