"""LaunchDarkly SDK names that aioflags spells differently: an ``AttributeError`` that says how.

Someone coming from LaunchDarkly's SDK writes ``client.is_initialized()`` or
``Context.builder("k")``; Python's own message ("has no attribute") leaves
them to search. :func:`point_to` puts a descriptor under each such name, on
the class and after its creation: reading it, from the class or from an
instance, raises an ``AttributeError`` that names the aioflags equivalent
(``hasattr`` is still ``False``). Type checkers, ``pyright --verifytypes`` and
the API reference never see these names (they are not in the class body),
and attribute reads that succeed cost nothing more.
"""

from __future__ import annotations

from typing import NoReturn, final

__all__ = ["point_to"]


@final
class _Renamed:
    """A LaunchDarkly name on an aioflags class: reading it raises, naming the equivalent."""

    __slots__ = ("_instead", "_name", "_owner")

    def __init__(self, owner: str, name: str, instead: str) -> None:
        self._owner = owner
        self._name = name
        self._instead = instead

    def __get__(self, obj: object, objtype: type | None = None) -> NoReturn:
        raise AttributeError(
            f"{self._owner} has no attribute {self._name!r} (a LaunchDarkly SDK "
            f"name): {self._instead} (see docs/migration.md)",
            name=self._name,
            obj=obj if obj is not None else objtype,
        )

    def __repr__(self) -> str:
        return f"<LaunchDarkly name {self._owner}.{self._name}: see docs/migration.md>"


def point_to(cls: type, owner: str, **names: str) -> None:
    """Make each ``cls.<name>`` raise an ``AttributeError`` that says ``names[name]``.

    ``owner`` is how the message names the class (``"aioflags.Client"``).
    """
    for name, instead in names.items():
        if name in vars(cls):
            raise TypeError(f"{owner}.{name} exists: it is not a renamed name")
        setattr(cls, name, _Renamed(owner, name, instead))
