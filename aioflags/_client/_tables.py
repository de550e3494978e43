"""docs/configuration.md's tables, made from the options' declarations: ``python -m aioflags._client._tables`` rewrites them.

The page's tables between ``<!-- generated: NAME ... -->`` and
``<!-- end generated -->`` are :func:`render`'s, from ``Config``'s
declarations (``_client/_options.py``), ``DataSystem``'s
(``_datasystem/_options.py``) and ``DataSystem.flagd()``'s
(``_systems/_flagd/_sync/_settings.py``). Run it after changing a
declaration; tests/test_config_options.py compares the page with it. Not
imported with ``aioflags``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aioflags._core._options import UNIT_NAME, Kind, Option, size_words
from aioflags._datasystem._options import FILE, POLLING
from aioflags._datasystem._options import OPTIONS as DATA_SYSTEM
from aioflags._systems._flagd._sync import _settings

from ._options import OPTIONS

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["main", "render", "table", "variables_table"]

#: A generated block of a page: its opening comment (naming it), its text,
#: its closing comment.
_BLOCK: Final = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) [^\n]*-->\n)(?P<text>.*?)"
    r"(<!-- end generated -->)",
    re.S,
)
#: The page whose tables these are.
PAGE: Final = Path(__file__).parents[2] / "docs" / "configuration.md"


def _type(option: Option) -> str:
    return option.type or option.kind


def _default(option: Option) -> str:
    if option.shown:
        return option.shown
    value = option.default
    if isinstance(value, str):
        return f"`{value}`"
    if option.kind == Kind.BYTES and isinstance(value, int) and value >= 1 << 16:
        return f"{value} ({size_words(value)})"
    return repr(value)


def _bounds(option: Option) -> str:
    least, most = option.least, option.most
    if option.kind == Kind.SECONDS:
        low = "> 0" if least is None else f">= {least:g}"
        return low if most is None else f"{low}, <= {most:g}"
    if option.kind in (Kind.COUNT, Kind.BYTES):
        low = f">= {1 if least is None else int(least)}"
        if most is None:
            return low
        if option.kind == Kind.BYTES and least is not None:
            return f"{size_words(least)} to {size_words(most)}"
        return f"{low}, <= {int(most)}"
    if option.kind == Kind.FRACTION:
        return "0 to 1"
    return ""


def _variables(option: Option) -> str:
    unit = " (ms)" if option.env_unit == "ms" else ""
    return ", ".join(f"`{v}`{unit}" for v in option.env)


def table(options: Iterable[Option], *, section: str | None = None) -> str:
    """The Markdown table of ``options`` (those of ``section``, if given).

    Columns: option, type, default, bounds, variable and meaning.
    """
    rows = [
        "| option | type | default | bounds | variable | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in options:
        if section is not None and option.section != section:
            continue
        cells = (
            f"`{option.name}`",
            _type(option),
            _default(option),
            _bounds(option),
            _variables(option),
            option.doc,
        )
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def variables_table(options: Iterable[Option]) -> str:
    """The Markdown table of the environment variables of ``options``."""
    rows = ["| variable | option | unit |", "|---|---|---|"]
    for option in options:
        for variable in option.env:
            unit = (
                UNIT_NAME[option.env_unit]
                if option.kind == Kind.SECONDS
                else ("`true`/`false`, `1`/`0`" if option.kind == Kind.BOOL else "")
            )
            rows.append(f"| `{variable}` | `{option.name}` | {unit} |")
    return "\n".join(rows) + "\n"


def _tables() -> dict[str, str]:
    return {
        "config": table(OPTIONS, section=""),
        "config-events": table(OPTIONS, section="events"),
        "config-environment": variables_table(OPTIONS),
        "flagd": table(_settings.OPTIONS),
        "data-system": table(DATA_SYSTEM),
        "data-system-polling": table(POLLING),
        "data-system-file": table(FILE),
    }


def render(page: str) -> str:
    """``page`` (docs/configuration.md's text) with its generated tables made anew.

    Raises:
        ValueError: a block names no table this module makes.
    """
    tables = _tables()

    def block(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in tables:
            raise ValueError(f"no generated table is called {name!r}")
        return match[1] + "\n" + tables[name] + "\n" + match[4]

    return _BLOCK.sub(block, page)


def main(argv: list[str]) -> int:
    """Rewrite the tables of the page given (docs/configuration.md by default)."""
    page = Path(argv[0]) if argv else PAGE
    text = page.read_text(encoding="utf-8")
    made = render(text)
    if made != text:
        page.write_text(made, encoding="utf-8")
        print(f"{page}: tables rewritten")  # noqa: T201 - a command's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
