"""The worked examples in the docstrings are true: every module of ptjf that has any."""
import doctest
import importlib
import pathlib
import pkgutil
from distutils import core  # setuptools' own copy: it reads setup.py without building

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _code_packages() -> list[str]:
  """setup.py's packages that hold Python (gin/ is shipped as data)."""
  dist = core.run_setup(str(_ROOT / "setup.py"), stop_after="init")
  return [name for name in dist.packages
          if (_ROOT / dist.package_dir[name] / "__init__.py").is_file()]


def _modules_with_examples() -> list[str]:
  names = []
  for package in _code_packages():
    path = importlib.import_module(package).__path__
    for info in pkgutil.iter_modules(path, f"{package}."):
      module = importlib.import_module(info.name)
      if any(t.examples for t in doctest.DocTestFinder().find(module)):
        names.append(info.name)
  return names


def test_the_searched_packages_are_setup_py_s_code_packages():
  packages = _code_packages()
  assert "ptjf.engine" in packages and "ptjf.gin" not in packages   # gin/ is data


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples(name):
  result = doctest.testmod(importlib.import_module(name))
  assert result.attempted > 0 and result.failed == 0
