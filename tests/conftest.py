"""Shared test fixtures."""
import pathlib
import sys

# `python -m pytest` puts the repo root on sys.path, where gin/ (ptjf.gin)
# would shadow the gin-config package; ptjf is importable through its install.
_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _ROOT]

import pytest  # pylint: disable=g-import-not-at-top

from ptjf.tasks import layout
from synthetic_corpus import write_synthetic_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> layout.CorpusLayout:
  """Imbalanced synthetic corpus: en-fr 400 train pairs, en-ro 40."""
  root = tmp_path_factory.mktemp("tiny_corpus")
  return write_synthetic_corpus(root, {"fr": 400, "ro": 40})
