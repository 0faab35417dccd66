"""The worked examples in the docstrings are true: every module of ptjf that has any."""
import doctest
import importlib
import pkgutil

import pytest

# The packages of setup.py's namespace (each its own top-level folder).
PACKAGES = ("ptjf", "ptjf.tasks", "ptjf.engine", "ptjf.launch", "ptjf.analysis", "ptjf.gin")


def _modules_with_examples() -> list[str]:
  names = []
  for package in PACKAGES:
    path = importlib.import_module(package).__path__
    for info in pkgutil.iter_modules(path, f"{package}."):
      module = importlib.import_module(info.name)
      if any(t.examples for t in doctest.DocTestFinder().find(module)):
        names.append(info.name)
  return names


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples(name):
  result = doctest.testmod(importlib.import_module(name))
  assert result.attempted > 0 and result.failed == 0
