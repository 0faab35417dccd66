"""`ptjf train` from the packaged local gin files; bad bindings are one-line errors."""
import os
import subprocess
import sys

import pytest

from ptjf import cli
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
