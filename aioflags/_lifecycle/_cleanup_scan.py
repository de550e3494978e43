"""What ``aioflags cleanup`` reads of a tree without parsing it: patterns over bytes.

Which files may hold a site (:func:`mentions`), the key's constants other
modules import (:func:`key_constants`), the names codegen gives its
accessor (:func:`accessor_names`), which file takes a name from a module
(:func:`names_taken_from`), the keys evaluated for "did you mean"
(:func:`keys_evaluated`), and the dotted name a file is imported by
(:func:`dotted_name`). No libcst here: a tree is read whole before any of
it is parsed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from aioflags._lifecycle._codegen import HEADER, identifier
from aioflags._lifecycle._pysource import literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "accessor_names",
    "dotted_name",
    "is_generated",
    "key_constants",
    "keys_evaluated",
    "mentions",
    "module_name",
    "names_taken_from",
    "same_module",
    "utf8",
]


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, a stray byte of a file name or an argument (a lone surrogate) as it was."""
    return text.encode("utf-8", "surrogateescape")


def accessor_names(key: str, generated: Iterable[bytes] = ()) -> frozenset[str]:
    """The names ``aioflags codegen`` may give the flag's accessor.

    Its name from the key (a keyword's gets ``_``), and the name the
    ``generated`` modules give it (``--name KEY=IDENT``): the method of
    their ``IDENT_KEY: Final = "KEY"`` constant. A name they give another
    flag is never this one's (``--name New-Checkout=...`` leaves
    ``new_checkout`` to ``new-checkout``).
    """
    base = identifier(key)
    names = {base, f"{base}_"}
    written = utf8(literal(key).flat())
    for source in generated:
        for m in _KEY_CONSTANT.finditer(source):
            name = m.group(1).decode().lower()
            if m.group(2) == written:
                names.add(name)
            else:
                names.discard(name)
    return frozenset(names)


#: A generated module's key constant: its name, and the key's literal.
_KEY_CONSTANT: Final = re.compile(
    rb"^([A-Z][A-Z0-9_]*)_KEY: Final = \(?\s*(.+?)\s*\)?$", re.M
)


def key_constants(
    sources: Iterable[tuple[Path, bytes]], key: str
) -> dict[str, frozenset[str]]:
    """The module constants holding ``key`` (``NAME = "key"``) in ``sources``: their names by module (:func:`dotted_name`).

    A module importing one of them from its module (``from m import NAME``)
    evaluates the flag with it: :func:`clean_source`'s ``imported``.
    """
    pattern = re.compile(
        rb"^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=[ \t]*([\"'])"
        + re.escape(utf8(key))
        + rb"\2[ \t]*(?:#.*)?$",
        re.M,
    )
    out: dict[str, frozenset[str]] = {}
    for path, source in sources:
        names = frozenset(m.group(1).decode() for m in pattern.finditer(source))
        if names:
            module = dotted_name(path)
            out[module] = out.get(module, frozenset()) | names
    return out


def dotted_name(path: Path) -> str:
    """The module ``path`` is, named by its packages (the directories with an ``__init__.py`` around it).

    ``app/views.py`` in a package ``app`` is ``app.views``; a module outside
    any package is its stem. Matched by suffix (:func:`same_module`): a tree
    named below its root still finds its imports.
    """
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def same_module(a: str, b: str) -> bool:
    """Whether two dotted names may be one module (one ends with the other, at a dot)."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def module_name(path: Path) -> tuple[str, str]:
    """A module and package name for ``path`` that relative imports resolve in.

    Made from the whole absolute path, so that ``from .. import x`` always
    has a package to climb; only consistency matters (an import is matched
    against names resolved the same way).
    """
    parts = [part.replace(".", "_") or "_" for part in path.absolute().parent.parts[1:]]
    package = ".".join(parts) or "_"
    return f"{package}.{path.stem.replace('.', '_')}", package


def mentions(
    source: bytes,
    key: str,
    imported: Mapping[str, frozenset[str]],
    accessors: frozenset[str],
) -> bool:
    """Whether ``source`` names the key, its accessor or a key constant it may import.

    A file that names none of them has no site: it is not parsed (most of a
    tree). A key spelt with escapes in a string (a backslash in it) is not
    looked for.
    """
    needles = {utf8(key), *(utf8(name) for name in accessors)}
    needles |= {utf8(name) for names in imported.values() for name in names}
    if not key.isascii() and all(ord(c) < 256 for c in key):
        needles.add(key.encode("latin-1"))  # (a file with a coding cookie)
    return any(needle in source for needle in needles)


def is_generated(source: bytes) -> bool:
    """Whether ``source`` is a module ``aioflags codegen`` wrote (its header)."""
    head = source[:4096].decode("utf-8", errors="replace")
    return any(line.startswith(HEADER) for line in head.splitlines()[:3])


_EVALUATED: Final = re.compile(
    rb"""_?variation(?:_detail)?\(\s*(?:"([^"\\\n]+)"|'([^'\\\n]+)')"""
)


def names_taken_from(
    module: Path, sources: Sequence[tuple[Path, bytes]]
) -> Callable[[str], Path | None]:
    """Which of ``sources`` names ``NAME`` through ``module``, if one does.

    ``app.views.NAME`` (a mock's ``patch("app.views.NAME")``, a string),
    ``from app.views import NAME``, ``from .views import NAME``: the module
    named by its packages (the directories with an ``__init__.py`` around
    it). Read with patterns, not parsed: an import cleanup would remove
    stays when another file takes it from the module.
    """
    dotted = re.escape(utf8(dotted_name(module)))
    stem = re.escape(utf8(module.stem))

    def named(name: str) -> Path | None:
        word = re.escape(utf8(name))
        imports = rb"\s+import\s+(?:\([^)]*|[^\n]*)\b" + word + rb"\b"
        ways = [
            rb"\b" + dotted + rb"\." + word + rb"\b",  # patch("app.views.name")
            rb"\bfrom\s+" + dotted + imports,  # from app.views import name
            rb"\bfrom\s+\.[\w.]*\b" + stem + imports,  # from .views import name
            # patch.object(views, "name"), getattr(app.views, "name")
            rb"\b" + stem + rb"\s*,\s*[rbuRBU]?[\"']" + word + rb"[\"']",
        ]
        if not name.startswith("_"):  # (a star import takes every public name)
            ways.append(
                rb"\bfrom\s+(?:" + dotted + rb"|\.[\w.]*\b" + stem + rb")\s+import\s+\*"
            )
        pattern = re.compile(b"|".join(ways))
        return next(
            (path for path, text in sources if path != module and pattern.search(text)),
            None,
        )

    return named


def keys_evaluated(sources: Iterable[bytes]) -> set[str]:
    """The keys written as a string in the first argument of an evaluation (``variation("k"``...).

    Read with a pattern, not parsed: what "did you mean" offers for a key
    that no site evaluates.
    """
    return {
        (m.group(1) or m.group(2)).decode("utf-8", "replace")
        for source in sources
        for m in _EVALUATED.finditer(source)
    }
