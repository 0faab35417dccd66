"""The `ptjf` command: its parser is light (`ptjf --help` imports neither TensorFlow nor JAX),
and it quiets TensorFlow's C++ logs."""
import os
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


def test_corpus_help_names_the_defaults(capsys):
  with pytest.raises(SystemExit):
    cli.main(["corpus", "build", "--help"])
  help_text = " ".join(capsys.readouterr().out.split())
  assert " ".join(corpus.DEFAULT_LANGS) in help_text
  assert str(corpus.DEFAULT_LOCALE_DIR) in help_text


def test_main_quiets_tensorflow_logs_unless_the_user_set_them(monkeypatch, capsys):
  environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  monkeypatch.setattr(os, "environ", environ)  # main's setdefault stays in this test
  assert cli.main([]) == 2  # no command: help
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
  cli.main([])
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def test_a_command_importing_tensorflow_prints_only_its_own_line():
  """TensorFlow's absl start-up lines (oneDNN, CUDA drivers) are not printed."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  out = subprocess.run([sys.executable, "-P", "-m", "ptjf.cli", "train",
                        "--gin_file=local/base.gin", "--gin_bindings=nosuch.thing=1"],
                       capture_output=True, text=True, env=env)
  assert out.returncode == 2
  assert out.stderr.splitlines() == [out.stderr.splitlines()[-1]], out.stderr
  assert out.stderr.startswith("ptjf: error: bad gin configuration")
