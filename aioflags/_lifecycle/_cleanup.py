"""``aioflags cleanup``: remove a flag from code, on evidence, with libcst.

``cleanup FLAG --keep VALUE PATHS...`` rewrites the code that evaluates FLAG
as if it always answered VALUE (docs/lifecycle-tools.md):

- The sites: ``[await] R.variation(KEY, ...)`` and the typed methods
  (``bool_variation``...), on any receiver (the client, the blocking
  client, a ``FlagSnapshot``), KEY the key as a string or a module constant
  holding it (defined there, or imported from a module among the paths); and the generated accessors ``[await] R.name(ctx)``, ``name``
  the key as ``aioflags codegen`` names it.
- Each site (its ``await`` too) becomes the Python literal of VALUE, and
  what that makes dead folds: ``if``/``elif``/``else``, conditional
  expressions, ``and``/``or``/``not``, comparisons with a literal; a
  function's local variable assigned once from a site and used only where
  it folds away goes with it. Only what a site made constant folds: code
  that was constant before stays as it was.
- What it cannot prove safe it leaves as it is and lists (``file:line``,
  lines as they were before the rewrite, and why): a dynamic key, a
  ``*_detail`` evaluation, another argument with side effects, a value of
  another type than the method returns, the key used as data, a module
  ``codegen`` wrote.

It is a libcst codemod (:class:`FlagCleanup`, a
:class:`~libcst.codemod.CodemodCommand`) in two passes: the sites found
(``_cleanup_sites.py``), then made constant and folded
(``_cleanup_fold.py``); imports that only the code it took out used go
with it (libcst's ``RemoveImportsVisitor``). The evidence is read first
(``_evidence.py``); the files are found, read and written back by
``_tree.py``; ``_cleanup_run.py`` drives the command.
"""

from __future__ import annotations

import ast
import difflib
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import libcst as cst
import libcst.matchers as m
from libcst.codemod import (
    CodemodCommand,
    CodemodContext,
    TransformFailure,
    TransformSuccess,
    transform_module,
)
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.metadata import ParentNodeProvider, PositionProvider, ScopeProvider

from aioflags._lifecycle._cleanup_fold import Rewriter, names_used, surviving, tidy
from aioflags._lifecycle._cleanup_sites import Finder, receivers, variables
from aioflags._lifecycle._codegen import HEADER, identifier
from aioflags._lifecycle._nesting import too_deep
from aioflags._lifecycle._pysource import literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from libcst.metadata import Scope

    from aioflags._core._json import JSONValue

__all__ = [
    "FileResult",
    "FlagCleanup",
    "Left",
    "accessor_names",
    "clean_source",
    "is_generated",
    "key_constants",
]

#: A line holding an import statement.
_IMPORT_LINE: Final = m.SimpleStatementLine(
    body=[m.ZeroOrMore(), m.Import() | m.ImportFrom(), m.ZeroOrMore()]
)


@dataclass(frozen=True)
class Left:
    """A site or a use of the key left as it is, and why."""

    path: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.why}"


@dataclass
class FileResult:
    """One file's rewrite: its text before and after, and what was left."""

    path: Path
    before: bytes
    after: bytes
    rewritten: int = 0
    left: list[Left] = field(default_factory=list)
    note: str | None = None
    #: why the file could not be read, parsed or walked (it is left as it was)
    failed: str | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """The rewrite as a unified diff."""
        old = self.before.decode("utf-8", errors="replace")
        new = self.after.decode("utf-8", errors="replace")
        return "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=str(self.path),
                tofile=f"{self.path} (cleaned up)",
            )
        )


def _utf8(text: str) -> bytes:
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
    written = _utf8(literal(key).flat())
    for source in generated:
        for found in _KEY_CONSTANT.finditer(source):
            name = found.group(1).decode().lower()
            if found.group(2) == written:
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
        + re.escape(_utf8(key))
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
    any package is its stem. Matched by suffix (``_cleanup_sites._same_module``): a tree
    named below its root still finds its imports.
    """
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def _module_name(path: Path) -> tuple[str, str]:
    """A module and package name for ``path`` that relative imports resolve in.

    Made from the whole absolute path, so that ``from .. import x`` always
    has a package to climb; only consistency matters (an import is matched
    against names resolved the same way).
    """
    parts = [part.replace(".", "_") or "_" for part in path.absolute().parent.parts[1:]]
    package = ".".join(parts) or "_"
    return f"{package}.{path.stem.replace('.', '_')}", package


def _mentions(
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
    needles = {_utf8(key), *(_utf8(name) for name in accessors)}
    needles |= {_utf8(name) for names in imported.values() for name in names}
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
    dotted = re.escape(_utf8(dotted_name(module)))
    stem = re.escape(_utf8(module.stem))

    def named(name: str) -> Path | None:
        word = re.escape(_utf8(name))
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


def _decode(source: bytes) -> tuple[str, str] | str:
    """The text of a Python source and its encoding (PEP 263), or why it cannot be read."""
    lines = iter(source.splitlines(keepends=True))
    try:
        encoding, _ = tokenize.detect_encoding(lambda: next(lines, b""))
        return source.decode(encoding), encoding
    except SyntaxError as exc:
        return f"cannot read it: {exc.msg}"
    except (UnicodeDecodeError, LookupError):
        return (
            "cannot read it: not UTF-8, and no coding cookie (`# -*- coding: ... -*-`) "
            "says its encoding"
        )


def _failure(error: Exception) -> str:
    """Why libcst could not parse or walk a file, in one line."""
    if isinstance(error, cst.ParserSyntaxError):
        return f"cannot parse it: {error.message} (line {error.raw_line})"
    if isinstance(error, RecursionError):
        return "nested too deep for libcst to walk (an expression or elif chain)"
    if isinstance(error, MemoryError):
        return "too large for libcst to walk"
    return f"libcst cannot walk it: {type(error).__name__}: {error}"


class FlagCleanup(CodemodCommand):
    """The rewrite of one module, on libcst's codemod framework.

    Its transform finds FLAG's sites (``Finder``), makes them VALUE and
    folds what that makes dead (``Rewriter``, until no local variable it
    substituted is left behind), and schedules the nodes it took out with
    :class:`~libcst.codemod.visitors.RemoveImportsVisitor`, which
    :class:`~libcst.codemod.CodemodCommand` runs after it: an import only
    they used goes. In an ``__init__.py`` imports stay (a package's names
    are its interface: other modules may import them from it), and so does
    an import whose name ``named_elsewhere`` says another file takes from
    this module (``patch("app.views.ld_client")``, ``from app.views import
    ld_client``).
    """

    DESCRIPTION = "Rewrite a flag's evaluations as one value and fold what goes dead."
    METADATA_DEPENDENCIES = (PositionProvider, ScopeProvider)

    def __init__(
        self,
        context: CodemodContext,
        key: str,
        value: JSONValue,
        imported: Mapping[str, frozenset[str]] | None = None,
        named_elsewhere: Callable[[str], Path | None] | None = None,
        accessors: frozenset[str] | None = None,
    ) -> None:
        super().__init__(context)
        self.named_elsewhere = named_elsewhere
        self.accessors = accessors if accessors is not None else accessor_names(key)
        self.key = key
        self.value = value
        self.imported = imported or {}
        self.rewritten = 0
        self.left: list[Left] = []

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        path = self.context.filename or "<module>"
        wrapper = self.context.wrapper
        assert wrapper is not None  # (transform_module made it)
        finder = Finder(
            self.key,
            self.value,
            self.imported,
            self.accessors,
            dotted_name(Path(path)),
            lambda: wrapper.resolve(ParentNodeProvider),
        )
        wrapper.visit(finder)
        source = tree.code
        for site in finder.sites.values():
            # (a dynamic key is worth a word where the file names the key)
            if site.why is not None and (
                "dynamic key" not in site.why or self.key in source or finder.constants
            ):
                self.left.append(Left(path, self._line(site.call), site.why))
        self.left += [Left(path, self._line(node), why) for node, why in finder.data]
        self.left.sort(key=lambda left: left.line)
        if not any(site.why is None for site in finder.sites.values()):
            return tree
        out, rewriter = self._rewrite(tree, finder, wrapper.resolve(ScopeProvider))
        self.rewritten = rewriter.rewritten
        why = (
            "the condition still evaluates what is beside the flag's value (it "
            "may have effects): fold it by hand"
        )
        self.left += [Left(path, self._line(node), why) for node in rewriter.stuck]
        if Path(path).name != "__init__.py":
            for node in rewriter.dropped:
                self.remove_unused_import_by_node(node)
            self._keep_imports_named_elsewhere(tree, out)
        self.left.sort(key=lambda left: left.line)
        return out

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def _rewrite(
        self,
        tree: cst.Module,
        finder: Finder,
        scopes: Mapping[cst.CSTNode, Scope | None],
    ) -> tuple[cst.Module, Rewriter]:
        """The sites made constant, until no local variable substituted is left behind.

        Each use of a variable holding a site's value is replaced by the
        value where that folds away; the uses that do not fold stay as they
        were (a pass again without them), and the assignment stays for them.
        """
        held = variables(finder.assignments, scopes, finder.sites)
        folding = {use: assign for assign, uses in held.items() for use in uses}
        unused = receivers(finder.assignments, scopes, finder.sites)
        while True:
            removed = unused | {
                assign
                for assign, uses in held.items()
                if all(use in folding for use in uses)
            }
            rewriter = Rewriter(self.value, finder.sites, folding, removed)
            out = tree.visit(rewriter)
            kept = surviving(out, rewriter.uses)
            if not kept:
                return out, rewriter
            for use in kept:
                del folding[use]

    def _keep_imports_named_elsewhere(self, tree: cst.Module, out: cst.Module) -> None:
        """Take back the removals of imports that must stay, and list those now unused.

        An import stays when another file takes its name from this module,
        or when its statement holds a comment (``# noqa``: imported for its
        effect?; a comment on a name kept: libcst would move or drop it).
        """
        key = RemoveImportsVisitor.CONTEXT_KEY
        scheduled = self.context.scratch.get(key)
        if not scheduled:
            return
        kept: list[tuple[str, str | None, str | None]] = []
        used = names_used(out)
        for module, obj, alias in dict.fromkeys(scheduled):
            local = alias or obj or module.split(".")[0]
            found = _import_of(tree, local)
            other = self.named_elsewhere(local) if self.named_elsewhere else None
            if other is not None:
                why = (
                    f"{other} takes it from this module (a mock.patch target?): "
                    "left; remove both by hand"
                )
            elif found is not None and m.findall(found[1], m.Comment()):
                why = (
                    "its import statement holds a comment (# noqa: imported for "
                    "its effect?): left; remove it by hand"
                )
            else:
                kept.append((module, obj, alias))
                continue
            if local not in used:
                self.left.append(
                    Left(
                        self.context.filename or "<module>",
                        self._line(found[0]) if found is not None else 1,
                        f"the import of {local} is unused now, but {why}",
                    )
                )
        if kept:
            self.context.scratch[key] = kept
        else:  # (nothing to remove: libcst's visitor need not walk the module)
            del self.context.scratch[key]

    def transform_module(self, tree: cst.Module) -> cst.Module:
        return tidy(tree, super().transform_module(tree))


def _import_of(
    tree: cst.Module, local: str
) -> tuple[cst.ImportAlias, cst.SimpleStatementLine] | None:
    """The name of the import that binds ``local`` in ``tree``, and its statement, if one does."""
    for line in m.findall(tree, _IMPORT_LINE):
        for found in m.findall(line, m.ImportAlias()):
            alias = cst.ensure_type(found, cst.ImportAlias)
            if (alias.evaluated_alias or alias.evaluated_name.split(".")[0]) == local:
                return alias, cst.ensure_type(line, cst.SimpleStatementLine)
    return None


def _kept(source: bytes) -> set[str] | None:
    """What a function's kind and names hang on, in ``source``; None if it does not parse here.

    ``f() yields`` for a generator (a ``yield`` of its own), ``f() global
    x`` for each ``global``/``nonlocal`` declaration: a fold that takes the
    last of them changes what the function is, or which ``x`` it binds.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found: set[str] = set()

    def walk(node: ast.AST, prefix: str, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(child, f"{prefix}{child.name}.", f"{prefix}{child.name}")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.", None)
            elif isinstance(child, ast.Lambda):
                walk(child, prefix, None)
            else:
                if isinstance(child, (ast.Yield, ast.YieldFrom)) and function:
                    found.add(f"{function}() yields")
                if isinstance(child, (ast.Global, ast.Nonlocal)):
                    kind = "global" if isinstance(child, ast.Global) else "nonlocal"
                    where = f"{function}()" if function else prefix or "the module"
                    found.update(f"{where} {kind} {name}" for name in child.names)
                walk(child, prefix, function)

    try:
        walk(tree, "", None)
    except RecursionError:
        return None
    return found


def _lost(before: bytes, after: bytes) -> list[str]:
    """What ``after`` would lose of ``before``'s generators and declarations (:func:`_kept`)."""
    was, now = _kept(before), _kept(after)
    if was is None or now is None:
        return []
    return sorted(was - now)


def _compiles(source: bytes, path: Path) -> bool:
    """Whether this Python parses ``source`` (the check a rewrite passes before it is written)."""
    try:
        ast.parse(source, str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def clean_source(
    path: Path,
    source: bytes,
    key: str,
    value: JSONValue,
    imported: Mapping[str, frozenset[str]] | None = None,
    named_elsewhere: Callable[[str], Path | None] | None = None,
    accessors: frozenset[str] | None = None,
) -> FileResult:
    """``source`` (the file at ``path``) with FLAG's sites made ``value``, and what was left.

    ``imported``: the names of key constants other modules define
    (:func:`key_constants`), recognised where this one imports them.
    ``named_elsewhere(name)``: the other file that takes ``name`` from
    this module, if one does. ``accessors``: the names of the flag's
    accessor (:func:`accessor_names`, with the generated modules) (its import then stays; :class:`FlagCleanup`). A
    file that cannot be read, parsed or walked comes back unchanged with
    :attr:`FileResult.failed` saying why; so does a rewrite that would not
    parse (never written).
    """
    result = FileResult(path, source, source)
    if is_generated(source):
        if _utf8(key) in source:
            result.note = (
                f"{path}: written by `aioflags codegen`, left alone: remove "
                f"{key!r} from the flag file and regenerate it (the command in "
                "its header)"
            )
        return result
    if accessors is None:
        accessors = accessor_names(key)
    imported = imported or {}
    if not _mentions(source, key, imported, accessors):
        return result
    decoded = _decode(source)
    if isinstance(decoded, str):
        result.failed = decoded
        return result
    text, encoding = decoded
    result.failed = too_deep(text, path)  # (libcst's parser would crash the process)
    if result.failed is not None:
        return result
    module, package = _module_name(path)
    command = FlagCleanup(
        CodemodContext(
            filename=str(path), full_module_name=module, full_package_name=package
        ),
        key,
        value,
        imported,
        named_elsewhere,
        accessors,
    )
    outcome = transform_module(command, text)
    if isinstance(outcome, TransformFailure):
        result.failed = _failure(outcome.error)
        return result
    if not isinstance(outcome, TransformSuccess):  # (Ctrl-C: TransformExit)
        raise KeyboardInterrupt
    result.left = command.left
    if outcome.code != text:
        result.failed = _refused(source, outcome.code, encoding, path)
        if result.failed is None:
            result.after = outcome.code.encode(encoding)
            result.rewritten = command.rewritten
        else:
            result.left = []
    return result


def _refused(before: bytes, code: str, encoding: str, path: Path) -> str | None:
    """Why the rewrite ``code`` of ``before`` must not be written (None: it may)."""
    try:
        after = code.encode(encoding)
    except UnicodeEncodeError:
        return (
            f"the value cannot be written in the file's encoding ({encoding}): "
            "left as it is"
        )
    lost = _lost(before, after)
    if lost:
        return (
            f"the rewrite would take away {'; '.join(lost)} (a generator would "
            "no longer be one, a name would bind elsewhere): left as it is; "
            "rewrite it by hand"
        )
    if not _compiles(after, path) and _compiles(before, path):
        return (
            "the rewrite would not parse: left as it is (a bug: please report "
            "it with the file)"
        )
    return None
