"""Every docstring example in the package runs (the pure modules document themselves this way)."""

import doctest
import importlib
import pkgutil

import pytest

import rackwatch


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(rackwatch.__path__, "rackwatch."):
        if info.name == "rackwatch.__main__":
            continue
        module = importlib.import_module(info.name)
        if any(t.examples for t in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
