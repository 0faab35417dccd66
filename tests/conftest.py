"""Shared test fixtures."""
import subprocess
import sys

import pytest

from ptjf.tasks import layout
from synthetic_corpus import write_synthetic_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> layout.CorpusLayout:
  """Imbalanced synthetic corpus: en-fr 400 train pairs, en-ro 40."""
  root = tmp_path_factory.mktemp("tiny_corpus")
  return write_synthetic_corpus(root, {"fr": 400, "ro": 40})


# Another process reading a corpus folder (as a sweep or trainer does) until its stdin closes.
_READER = """import sys
from ptjf import locks
locks.read_until_exit(sys.argv[1], print, "training runs/x/main")
print("reading", flush=True)
sys.stdin.read()
"""


@pytest.fixture()
def corpus_reader():
  """start(corpus folder) -> the process of _READER, reading it (its lock held)."""
  started = []

  def start(root) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-P", "-c", _READER, str(root)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    started.append(proc)
    assert proc.stdout.readline() == "reading\n"
    return proc
  yield start
  for proc in started:
    proc.stdin.close()
    proc.wait()
