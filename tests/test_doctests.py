"""The runnable examples in the package's docstrings are true (each module's examples are
one test; a module that has none is not listed)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import leads_api


def modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(leads_api.__path__, "leads_api."):
        if ".migrations" in info.name:
            continue  # Alembic scripts: run by the migration tests, not importable alone
        module = importlib.import_module(info.name)
        if doctest.DocTestFinder().find(module) and _examples(module):
            names.append(info.name)
    return names


def _examples(module: ModuleType) -> int:
    return sum(len(t.examples) for t in doctest.DocTestFinder().find(module))


MODULES = modules_with_examples()


def test_the_package_has_examples() -> None:
    """The collection itself works: the parser's examples, at least, are found."""
    assert "leads_api.query.parser" in MODULES and len(MODULES) >= 5


@pytest.mark.parametrize("name", MODULES)
def test_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.attempted == _examples(module) > 0
    assert result.failed == 0
