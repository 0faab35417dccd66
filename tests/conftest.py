"""Shared test fixtures."""
import pytest

from ptjf.tasks import layout
from synthetic_corpus import write_synthetic_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> layout.CorpusLayout:
  """Imbalanced synthetic corpus: en-fr 400 train pairs, en-ro 40."""
  root = tmp_path_factory.mktemp("tiny_corpus")
  return write_synthetic_corpus(root, {"fr": 400, "ro": 40})
