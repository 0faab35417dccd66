"""The `ptjf` command: its parser is light (`ptjf --help` imports neither TensorFlow nor JAX),
and it quiets TensorFlow's C++ logs."""
import builtins
import errno
import os
import pathlib
import subprocess
import sys

import pytest

from mo_writer import write_mo
from ptjf import cli
from ptjf.tasks import corpus

FIXTURE = pathlib.Path(__file__).parent / "analysis" / "fixtures" / "t5x_real"


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
  out = subprocess.run([sys.executable, "-m", "ptjf.cli", "train",
                        "--gin_file=local/base.gin", "--gin_bindings=nosuch.thing=1"],
                       capture_output=True, text=True, env=env)
  assert out.returncode == 2
  assert out.stderr.splitlines() == [out.stderr.splitlines()[-1]], out.stderr
  assert out.stderr.startswith("ptjf: error: bad gin configuration")


@pytest.fixture
def read_only(tmp_path, monkeypatch) -> pathlib.Path:
  """A folder whose creation or writing fails as on a read-only file system
  (tests run as root, for whom permissions do not stop writes)."""
  ro = tmp_path / "ro"

  def guard(real):
    def wrapped(path, *args, **kwargs):
      if str(path).startswith(str(ro)):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
      return real(path, *args, **kwargs)
    return wrapped
  monkeypatch.setattr(os, "makedirs", guard(os.makedirs))
  monkeypatch.setattr(os, "mkdir", guard(os.mkdir))
  monkeypatch.setattr(builtins, "open", guard(builtins.open))
  return ro


PLAN = """
[experiment]
name = "x"
high = "translate_en_fr"
low = "translate_en_ro"
model = "tiny"
[[sweep]]
kind = "scalarization"
steps = 2
rates = [0.5]
"""


def _one_error_line(capsys) -> str:
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  return err[0]


@pytest.mark.parametrize("command", [
    lambda ro, corpus: ["corpus", "build", "--out", f"{ro}/corpus", "--langs", "fr",
                        "--locale-dir", str(ro.parent / "locale"), "--vocab-size", "300"],
    lambda ro, corpus: ["report", str(FIXTURE), "--out", f"{ro}/report"],
    lambda ro, corpus: ["sweep", str(ro.parent / "plan.toml"), "--runs-dir", f"{ro}/runs",
                        "--corpus-dir", str(corpus.root)],
    lambda ro, corpus: ["train", "--gin_file=local/base.gin", "--gin_file=local/model_tiny.gin",
                        "--gin_file=local/nmt_adam.gin", f"--gin.MODEL_DIR='{ro}/p'",
                        "--gin.MIXTURE_OR_TASK_NAME='translate_en_fr'"],
], ids=["corpus build", "report", "sweep", "train"])
def test_a_read_only_output_directory_is_one_line(read_only, tiny_corpus, capsys, command):
  (read_only.parent / "plan.toml").write_text(PLAN)
  write_mo(read_only.parent / "locale", "fr", "app",
           {f"Message {i}": f"Le message {i}" for i in range(50)})
  assert cli.main(command(read_only, tiny_corpus)) == 2
  line = _one_error_line(capsys)
  assert line.startswith(f"ptjf: error: Read-only file system: {read_only}"), line
  assert "write elsewhere" in line


def test_a_full_disk_reported_only_in_a_library_message_is_one_line(capsys, monkeypatch):
  from ptjf.analysis import report
  def full(*args, **kwargs):
    raise ValueError("tensorstore write failed: [28] No space left on device")
  monkeypatch.setattr(report, "write_report", full)
  assert cli.main(["report", "anywhere"]) == 2
  assert _one_error_line(capsys).startswith("ptjf: error: No space left on device: free some")
