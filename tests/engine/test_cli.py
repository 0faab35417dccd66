"""`ptjf train` from the packaged local gin files; bad bindings are one-line errors."""
import os
import re
import subprocess
import sys

import pytest

from ptjf import cli, gin_files, locks
from ptjf.engine import cli as engine_cli
from ptjf.tasks import local


@pytest.mark.slow
def test_train_cli_scratch_phase(tiny_corpus, tmp_path):
  task = local.register_local_tasks(tiny_corpus.root)[0]
  rc = cli.main(["train", "--gin_file=local/base.gin", "--gin_file=local/model_tiny.gin",
                 "--gin_file=local/nmt_adam.gin", f"--gin.MODEL_DIR='{tmp_path}/p1'",
                 f"--gin_bindings=CORPUS_DIR='{tiny_corpus.root}'", "--gin_bindings=TRAIN_STEPS=2",
                 "--gin_bindings=BATCH_SIZE=4", "--gin_bindings=WARMUP_STEPS=1",
                 "--gin_bindings=TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 16}",
                 "--gin_bindings=MIXTURE_OR_TASK_NAME=@local_task()",
                 f"--gin_bindings=local_task.name='{task}'"])
  assert rc == 0
  assert (tmp_path / "p1" / "checkpoint_2").is_dir()


def test_bad_binding_is_one_line(capsys):
  assert cli.main(["train", "--gin_file=local/base.gin", "--gin_bindings=nosuch.thing=1"]) == 2
  assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_gin_macro_shorthand_as_t5x():
  assert engine_cli.rewrite_gin_args(["train", "--gin.X={'a': 1}", "--gin_file=f.gin"]) == [
      "train", "--gin_bindings=X = {'a': 1}", "--gin_file=f.gin"]
  args = cli.build_parser().parse_args(["train", "--gin.TRAIN_STEPS=10", "--gin_bindings=A = 1"])
  assert args.gin_bindings == ["TRAIN_STEPS = 10", "A = 1"]   # the train command's own parser


def test_gin_file_resolved_on_the_search_path(tmp_path):
  (tmp_path / "local").mkdir()
  (tmp_path / "local" / "x.gin").write_text("")
  found = engine_cli.resolve_gin_file("local/x.gin", [str(tmp_path / "none"), str(tmp_path)])
  assert found == str(tmp_path / "local" / "x.gin")
  assert engine_cli.resolve_gin_file("missing.gin", [str(tmp_path)]) == "missing.gin"


def test_jax_cache_is_bounded(tmp_path):
  """JAX caches `ptjf train`'s programs and can evict them (an `-atime` file per entry)."""
  env = {**os.environ, **engine_cli.jax_cache_defaults(), "JAX_COMPILATION_CACHE_DIR": str(tmp_path)}
  subprocess.run([sys.executable, "-c", "import jax; jax.jit(lambda x: x + 1)(1.0)"],
                 env=env, check=True, capture_output=True)
  names = [p.name for p in tmp_path.iterdir()]
  assert any(n.endswith("-atime") for n in names), names


def _refused(capsys, *flags: str) -> str:
  """The one error line of `ptjf train` with the packaged local gin files and `flags`."""
  assert cli.main(["train", "--gin_file=local/base.gin", "--gin_file=local/model_tiny.gin",
                   "--gin_file=local/nmt_adam.gin", *flags]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  return err[0]


@pytest.mark.parametrize("flag, message", [
    ("--gin.TRAIN_STESP=20", "unknown gin macro TRAIN_STESP .*did you mean TRAIN_STEPS"),
    ("--gin_bindings=WARMUP_STPES = 5", "unknown gin macro WARMUP_STPES .*did you mean WARMUP_STEPS"),
    ("--gin.EVAL_PERIOD=%EVAL_PERIDO", "%EVAL_PERIDO is used but never defined: did you mean "
     "%EVAL_PERIOD"),
    ("--gin_bindings=train.eval_period = (", "--gin_bindings .train.eval_period = \\(. is not valid gin"),
    ("--gin_bindings=rate_mixture.rates = [nan, 0.3]", "not valid gin .*nan, inf and calls are not gin"),
])
def test_unknown_macro_or_bad_binding_is_refused_before_any_work(capsys, tmp_path, flag, message):
  line = _refused(capsys, f"--gin.MODEL_DIR='{tmp_path}/p'", flag)
  assert re.search(message, line), line
  assert not (tmp_path / "p").exists()


def test_gin_file_that_does_not_parse_is_one_line(capsys, tmp_path):
  bad = tmp_path / "bad.gin"
  bad.write_text("TRAIN_STEPS = 10\ntrain.batch_size = = 3\n")
  assert re.search(r"bad.gin is not valid gin \(line 2", _refused(capsys, f"--gin_file={bad}"))


def test_a_new_macro_used_by_a_binding_is_accepted():
  gin_files.check([engine_cli.resolve_gin_file("local/base.gin", [str(gin_files.gin_dir())])],
                  ["MY_STEPS = 3", "TRAIN_STEPS = %MY_STEPS"])


def test_progress_without_a_terminal_is_a_plain_line_every_period(capsys, monkeypatch):
  clock = iter([100.0, 101.0, 110.0, 111.0])
  monkeypatch.setattr(engine_cli.time, "time", lambda: next(clock))
  progress = engine_cli.ProgressLine(terminal=False, period=5)
  for step, loss in ((10, 8.0), (20, 7.0), (110, 6.0), (120, 5.5)):
    progress(step, 120, loss)
  assert capsys.readouterr().out.splitlines() == [
      "step 10/120, 0.00 steps/s, loss 8, ETA ?",
      "step 110/120, 10.00 steps/s, loss 6, ETA 0m01s",
      "step 120/120, 10.00 steps/s, loss 5.5, ETA 0m00s"]   # the last step always


def test_a_missing_optimizer_gin_is_one_line(capsys, tmp_path):
  assert cli.main(["train", "--gin_file=local/base.gin", "--gin_file=local/model_tiny.gin",
                   f"--gin.MODEL_DIR='{tmp_path}/p'", "--gin.MIXTURE_OR_TASK_NAME='x'"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "['schedule']: add the --gin_file that binds them" in err[0], err
  assert not (tmp_path / "p").exists()


def test_a_second_train_into_a_model_dir_in_use_waits_for_it(tiny_corpus, tmp_path):
  model_dir = tmp_path / "p1"
  command = [sys.executable, "-P", "-m", "ptjf.cli", "train", "--gin_file=local/base.gin",
             "--gin_file=local/model_tiny.gin", "--gin_file=local/nmt_adam.gin",
             f"--gin.MODEL_DIR='{model_dir}'", f"--gin.CORPUS_DIR='{tiny_corpus.root}'",
             "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=4", "--gin.WARMUP_STEPS=1",
             "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 16}",
             "--gin.MIXTURE_OR_TASK_NAME=@local_task()", "--gin.local_task.name='translate_en_ro'"]
  with locks.exclusive(model_dir, lambda _: None):  # another `ptjf train` (or sweep) holds it
    second = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              text=True)
    assert second.stderr.readline().strip() == (
        f"{model_dir}: another process is training it; waiting for it")
    assert sorted(p.name for p in model_dir.iterdir()) == [locks.LOCK_FILE]  # nothing written
    second.kill()  # (once the lock is free it trains: `ptjf sweep` phases are such trainers)
    second.wait()
