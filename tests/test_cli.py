"""The `ptjf` command's parser is light: `ptjf --help` imports neither TensorFlow nor JAX."""
import subprocess
import sys

import pytest

from ptjf import cli
from ptjf.tasks import corpus


def test_help_imports_no_tensorflow():
  code = ("import sys; from ptjf import cli; cli.build_parser(); "
          "print(sorted({'tensorflow', 'jax', 'seqio'} & set(sys.modules)))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_corpus_help_names_the_default_languages(capsys):
  with pytest.raises(SystemExit):
    cli.main(["corpus", "build", "--help"])
  assert " ".join(corpus.DEFAULT_LANGS) in " ".join(capsys.readouterr().out.split())
