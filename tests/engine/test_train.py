"""Two-phase run of the local engine: scratch phase, then params-only phase reset."""
import os

import orbax.checkpoint as ocp
import pytest

from ptjf.engine import optim, train
from ptjf.tasks import local, mixtures

LENGTHS = {"inputs": 16, "targets": 16}


def _run(tiny_corpus, model_dir, **kw):
  tasks = local.register_local_tasks(tiny_corpus.root)[:2]
  mix = mixtures.rate_mixture(tasks, [0.5, 0.5], corpus_dir=tiny_corpus.root)
  train.train(model_dir=str(model_dir), mixture_or_task_name=mix, task_feature_lengths=LENGTHS,
              batch_size=4, train_steps=4, eval_period=2, checkpoint_period=2, eval_examples=8,
              eval_train_examples=8, model_overrides={"dropout_rate": 0.0},
              schedule=lambda: optim.warmup_cosine_schedule(1e-3, 2, 4), **kw)
  return tasks, mix


@pytest.mark.slow
def test_two_phase_run(tiny_corpus, tmp_path):
  tasks, mix = _run(tiny_corpus, tmp_path / "p1")
  for sub in ["train", *(f"training_eval/{t}" for t in tasks), f"training_eval/{mix}",
              *(f"training_eval_train/{t}" for t in tasks)]:
    assert os.listdir(tmp_path / "p1" / sub), sub
  assert (tmp_path / "p1" / "checkpoint_4").is_dir()
  _run(tiny_corpus, tmp_path / "p2", restore_mode="params_only",
       init_checkpoint=str(tmp_path / "p1" / "checkpoint_4"))
  c2 = ocp.StandardCheckpointer().restore(str(tmp_path / "p2" / "checkpoint_4" / "default"))
  assert int(c2["step"]) == 4
