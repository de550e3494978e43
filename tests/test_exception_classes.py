"""The package defines no exception outside ``Exception``'s tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import aioflags


def test_no_base_exception_of_ours_outside_exception() -> None:
    """Only the standard library's BaseExceptions (cancellation, exit) cross our code.

    A ``BaseException`` that is not cancellation, crossing task-group code,
    is what anyio and trio forbid; control flow goes by values.
    """
    modules = [aioflags] + [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(aioflags.__path__, "aioflags.")
    ]
    assert len(modules) > 50  # the walk did reach the subpackages
    outside = sorted(
        f"{module.__name__}.{name}"
        for module in modules
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and value.__module__.startswith("aioflags")
        and issubclass(value, BaseException)
        and not issubclass(value, Exception)
    )
    assert outside == []
