"""The local engine's training loop: phase reset, resume after kill -9, devices, NaN, freeze, BLEU."""
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ptjf.analysis import events, runs
from ptjf.engine import losses, optim, train
from ptjf import logdir
from ptjf.errors import UserError
from ptjf.tasks import local, mixtures, sampling

LENGTHS = {"inputs": 16, "targets": 16}


def _translation_tasks(corpus) -> list[str]:
  return [t for t in local.register_local_tasks(corpus.root) if t.startswith("translate")]


def _schedule():
  return optim.warmup_cosine_schedule(1e-3, 2, 4)


def _run(corpus, model_dir, **kw):
  tasks = _translation_tasks(corpus)
  mix = mixtures.rate_mixture(tasks, [0.5, 0.5], corpus_dir=corpus.root)
  args = dict(model_dir=str(model_dir), mixture_or_task_name=mix, task_feature_lengths=LENGTHS,
              batch_size=4, train_steps=4, eval_period=2, checkpoint_period=2, log_period=1,
              eval_examples=8, eval_train_examples=8, model_overrides={"dropout_rate": 0.0},
              schedule=_schedule)
  train.train(**{**args, **kw})
  return tasks, mix


def _scalars(directory: pathlib.Path, tag: str) -> dict[int, float]:
  return {step: value for path in sorted(directory.glob("events.out.tfevents*"))
          for step, t, value in events.read_scalars(path) if t == tag}


def _restore(checkpoint: pathlib.Path) -> dict:
  return ocp.StandardCheckpointer().restore(str(checkpoint / "default"))


class _FirstTaskOnly:
  def __init__(self, tasks):
    self.tasks = tuple(sorted(tasks))

  def rates(self, step):
    return {t: float(i == 0) for i, t in enumerate(self.tasks)}


def test_the_sampler_decides_what_each_step_draws(tiny_corpus, tmp_path):
  tasks = sorted(_translation_tasks(tiny_corpus))
  with pytest.raises(UserError, match="the sampler draws .* give the sampler the mixture's tasks"):
    _run(tiny_corpus, tmp_path / "other", sampler=sampling.Static({"translate_en_xx": 1}))
  _run(tiny_corpus, tmp_path / "first", sampler=_FirstTaskOnly(tasks))
  seen = {t: _scalars(tmp_path / "first" / "train", f"examples_seen/{t}")[4] for t in tasks}
  assert seen == {tasks[0]: 16, tasks[1]: 0}


def test_a_schedule_resumed_mid_phase_draws_as_one_run_straight_through(tiny_corpus, tmp_path):
  tasks = sorted(_translation_tasks(tiny_corpus))
  schedule = lambda: sampling.Linear({tasks[0]: 0.9, tasks[1]: 0.1},
                                     {tasks[0]: 0.1, tasks[1]: 0.9}, steps=4)
  _run(tiny_corpus, tmp_path / "whole", sampler=schedule())
  _run(tiny_corpus, tmp_path / "cut", sampler=schedule(), train_steps=2)  # as if killed at 2
  _run(tiny_corpus, tmp_path / "cut", sampler=schedule())                  # resumed
  for tag in ("loss", *(f"examples_seen/{t}" for t in tasks)):
    whole, cut = (_scalars(tmp_path / d / "train", tag) for d in ("whole", "cut"))
    assert cut[4] == pytest.approx(whole[4], rel=1e-5), tag
  seen = {t: _scalars(tmp_path / "whole" / "train", f"examples_seen/{t}") for t in tasks}
  # 16 examples drawn at rates 0.2, 0.4, 0.6, 0.8 of tasks[1]: the second half draws more of it.
  assert seen[tasks[1]][4] - seen[tasks[1]][2] > seen[tasks[1]][2]


_RULE = {"task": "translate_en_fr", "patience": 2, "min_delta": 100.0}  # never improves enough


def test_the_plateau_rule_stops_with_a_checkpoint_at_its_step(tiny_corpus, tmp_path, capsys):
  _run(tiny_corpus, tmp_path / "p", train_steps=8, checkpoint_period=100, stop_on_plateau=_RULE)
  # Evaluations at 0, 2, 4: two without improving by 100, so it stops at 4.
  assert logdir.finished_step(tmp_path / "p", 8) == 4
  assert logdir.checkpoint_steps(tmp_path / "p") == [4]
  assert "stopped at step 4" in capsys.readouterr().out
  # Killed after that checkpoint but before its stop file: the logged evaluations decide again.
  (tmp_path / "p" / logdir.STOP_FILE).unlink()
  _run(tiny_corpus, tmp_path / "p", train_steps=8, checkpoint_period=100, stop_on_plateau=_RULE)
  assert logdir.finished_step(tmp_path / "p", 8) == 4
  assert logdir.checkpoint_steps(tmp_path / "p") == [4]


def test_a_resumed_phase_stops_where_a_straight_run_does(tiny_corpus, tmp_path):
  _run(tiny_corpus, tmp_path / "cut", train_steps=2, stop_on_plateau=_RULE)  # as if killed at 2
  _run(tiny_corpus, tmp_path / "cut", train_steps=8, stop_on_plateau=_RULE)
  assert logdir.finished_step(tmp_path / "cut", 8) == 4
  evals = _scalars(tmp_path / "cut" / "training_eval" / "translate_en_fr", losses.PLAIN_CROSS_ENT)
  assert sorted(evals) == [0, 2, 4]


def test_two_phase_reset(tiny_corpus, tmp_path, capsys):
  tasks, mix = _run(tiny_corpus, tmp_path / "p1", bleu_examples=3, bleu_period=2, beam_size=2)
  for sub in ["train", *(f"training_eval/{t}" for t in tasks), f"training_eval/{mix}",
              *(f"training_eval_train/{t}" for t in tasks), *(f"inference_eval/{t}" for t in tasks)]:
    assert os.listdir(tmp_path / "p1" / sub), sub
  translate = tasks[0]
  assert _scalars(tmp_path / "p1" / "inference_eval" / translate, "bleu").keys() == {2, 4}
  assert (tmp_path / "p1" / "inference_eval" / f"{translate}-4.jsonl").is_file()
  p1 = _restore(tmp_path / "p1" / "checkpoint_4")
  assert int(p1["step"]) == 4 and p1["seen"].sum() > 0

  _run(tiny_corpus, tmp_path / "p2", restore_mode="params_only",
       init_checkpoint=str(tmp_path / "p1" / "checkpoint_4"), train_steps=3, checkpoint_period=100,
       bleu_examples=3, beam_size=2)
  assert "params_only at step 0" in capsys.readouterr().out
  # Without a BLEU period, BLEU is decoded at the last step only.
  assert _scalars(tmp_path / "p2" / "inference_eval" / translate, "bleu").keys() == {3}
  p2 = _restore(tmp_path / "p2" / "checkpoint_3")
  assert int(p2["step"]) == 3
  # Phase 2's first step used phase 1's final parameters: its step-0 eval equals them.
  eval1 = _scalars(tmp_path / "p1" / "training_eval" / mix, "loss")
  eval2 = _scalars(tmp_path / "p2" / "training_eval" / mix, "loss")
  assert eval2[0] == pytest.approx(eval1[4], rel=1e-5)
  # LR restarts at the warmup (schedule step 0), and Adam's state is fresh: count 3 after 3 steps.
  lr1 = _scalars(tmp_path / "p1" / "train", "learning_rate")
  lr2 = _scalars(tmp_path / "p2" / "train", "learning_rate")
  assert lr2[1] == pytest.approx(lr1[1]) and lr2[1] < lr1[2]
  counts = [leaf for leaf in jax.tree.leaves(p2["opt_state"]) if np.ndim(leaf) == 0]
  assert counts and all(int(c) == 3 for c in counts)


def test_a_phase_draws_its_own_dropout_masks():
  from ptjf.engine import dropout
  masks = {seed: np.asarray(dropout.mask_bits(train.dropout_key(0, seed), (64,)))
           for seed in (0, 1)}
  assert not np.array_equal(masks[0], masks[1])   # a fine-tune (DATA_SEED 1) vs its parent
  again = np.asarray(dropout.mask_bits(train.dropout_key(0, 1), (64,)))
  assert np.array_equal(masks[1], again)


def test_params_only_load_is_exact_and_fresh(tiny_corpus, tmp_path):
  _run(tiny_corpus, tmp_path / "p1", train_steps=2)
  params = _restore(tmp_path / "p1" / "checkpoint_2")["params"]
  tx = optim.adam(_schedule())
  fresh = train._checkpoint(0, 0, jax.tree.map(np.zeros_like, params), tx.init(params),
                            np.zeros((2, 2), np.int64))
  mgr = ocp.CheckpointManager(str(tmp_path / "p2"))
  state = train._initial_state(mgr, None, fresh, tx, "params_only", str(tmp_path / "p1" / "checkpoint_2"))
  assert state["step"] == 0 and state["position"] == 0
  jax.tree.map(np.testing.assert_array_equal, state["params"], params)
  jax.tree.map(np.testing.assert_array_equal, state["opt_state"], tx.init(params))


def _saved(model_dir: pathlib.Path, steps=(2, 4)) -> ocp.CheckpointManager:
  """A MODEL_DIR holding checkpoint_<step> of a small state whose weight is the step."""
  mgr = ocp.CheckpointManager(str(model_dir), options=ocp.CheckpointManagerOptions(
      step_prefix="checkpoint"))
  for step in steps:
    mgr.save(step, args=ocp.args.StandardSave({"params": {"w": np.full(3, float(step))}}))
  mgr.wait_until_finished()
  return mgr


@pytest.mark.parametrize("damage", ["_METADATA", "manifest.ocdbt"])
def test_a_damaged_initial_checkpoint_is_one_line(tmp_path, damage):
  _saved(tmp_path / "p1")
  (tmp_path / "p1" / "checkpoint_4" / "default" / damage).unlink()
  with pytest.raises(UserError, match=r"checkpoint .*checkpoint_4 cannot be read \(.*\): it is "
                     "damaged or incomplete; start from another checkpoint_<step>$"):
    train._read(str(tmp_path / "p1" / "checkpoint_4"))


def test_a_model_dir_as_initial_checkpoint_starts_from_its_latest(tmp_path, capsys):
  _saved(tmp_path / "p1")
  chosen = train._checkpoint_folder(str(tmp_path / "p1"))
  assert chosen == str(tmp_path / "p1" / "checkpoint_4")
  assert f"is a MODEL_DIR: starting from its latest checkpoint, {chosen}" in capsys.readouterr().out
  assert train._checkpoint_folder(chosen) == chosen


def test_a_damaged_latest_checkpoint_is_moved_aside_and_the_one_before_resumed(tmp_path, capsys):
  mgr = _saved(tmp_path / "p1")
  for chunk in (tmp_path / "p1" / "checkpoint_4" / "default").rglob("d/*"):
    chunk.unlink()  # the array data
  state = train._resume(mgr, {"params": {"w": np.zeros(3)}})
  np.testing.assert_array_equal(state["params"]["w"], np.full(3, 2.0))
  assert mgr.latest_step() == 2 and (tmp_path / "p1" / "damaged_checkpoint_4").is_dir()
  assert ("checkpoint_4 cannot be read" in capsys.readouterr().out)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_corpus, tmp_path):
  def exploding():
    return lambda step: jnp.where(step >= 3, jnp.nan, 1e-3)
  with pytest.raises(UserError, match="not finite|loss is nan") as e:
    _run(tiny_corpus, tmp_path / "p1", schedule=exploding, train_steps=8, checkpoint_period=1)
  kept = sorted(p.name for p in (tmp_path / "p1").glob("checkpoint_*"))
  assert kept and kept[-1] == "checkpoint_3"
  assert f"checkpoint_3 in {tmp_path / 'p1'}, is kept" in str(e.value)
  params = _restore(tmp_path / "p1" / "checkpoint_3")["params"]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_finite_divergence_stops_and_the_last_good_checkpoint_survives_rotation(tiny_corpus,
                                                                                tmp_path):
  """LEARNING_RATE 1e6 from step 12: the loss grows huge but finite. Keeping 2 checkpoints,
  one every step, the run stops before any blown-up step is saved."""
  def blow_up():
    return lambda step: jnp.where(step >= 12, 1e6, 3e-3)
  with pytest.raises(UserError, match=r"training diverged between steps \d+ and \d+ \(loss "
                     r".* is above 10 x its best .*\): lower LEARNING_RATE; the last good "
                     r"checkpoint, checkpoint_(\d+) in") as e:
    _run(tiny_corpus, tmp_path / "p1", schedule=blow_up, train_steps=40, checkpoint_period=1,
         keep_checkpoints=2)
  named = int(re.search(r"checkpoint_(\d+) in", str(e.value))[1])
  kept = sorted(int(p.name.split("_")[1]) for p in (tmp_path / "p1").glob("checkpoint_*"))
  assert kept[-1] == named and 12 <= named < 40
  losses = _scalars(tmp_path / "p1" / "train", "loss")
  assert losses[named] < 10 * min(losses.values())


@pytest.mark.slow
def test_divergence_before_any_checkpoint_says_none_is_kept(tiny_corpus, tmp_path):
  def blow_up():
    return lambda step: jnp.where(step >= 2, 1e6, 3e-3)
  with pytest.raises(UserError, match="no checkpoint of this phase was saved before it"):
    _run(tiny_corpus, tmp_path / "p1", schedule=blow_up, train_steps=40, checkpoint_period=100)
  assert not list((tmp_path / "p1").glob("checkpoint_*"))


def test_negative_seed_is_a_one_line_error_before_any_output(tiny_corpus, tmp_path):
  with pytest.raises(UserError, match="negative seed"):
    _run(tiny_corpus, tmp_path / "p", random_seed=-1)
  assert not (tmp_path / "p").exists()


def test_freeze_leaves_embedding_untouched(tiny_corpus, tmp_path):
  _run(tiny_corpus, tmp_path / "p1", train_steps=2)
  before = _restore(tmp_path / "p1" / "checkpoint_2")["params"]
  _run(tiny_corpus, tmp_path / "p2", train_steps=2, restore_mode="params_only",
       init_checkpoint=str(tmp_path / "p1" / "checkpoint_2"), freeze=["^embedding"])
  after = _restore(tmp_path / "p2" / "checkpoint_2")["params"]
  np.testing.assert_array_equal(after["embedding"]["embedding"], before["embedding"]["embedding"])
  assert not np.array_equal(after["decoder_norm"]["scale"], before["decoder_norm"]["scale"])


def test_also_evaluate_measures_a_task_not_trained_on(tiny_corpus, tmp_path):
  tasks = _translation_tasks(tiny_corpus)
  trained, other = tasks[1], tasks[0]
  both = mixtures.rate_mixture(tasks, [0.5, 0.5], corpus_dir=tiny_corpus.root)
  train.train(model_dir=str(tmp_path / "p"), mixture_or_task_name=trained,
              task_feature_lengths=LENGTHS, batch_size=4, train_steps=2, eval_period=2,
              checkpoint_period=2, eval_examples=8, eval_train_examples=8,
              schedule=_schedule, also_evaluate=[other, both])   # a mixture: its tasks
  for split in ("training_eval", "training_eval_train"):
    assert _scalars(tmp_path / "p" / split / other, "cross_ent_loss").keys() == {0, 2}
  seen = _restore(tmp_path / "p" / "checkpoint_2")["seen"]
  assert seen.shape == (1, 2)   # examples are counted for the trained task only


def test_eval_tags_are_t5x_s_and_analysis_reads_the_plain_cross_entropy(tiny_corpus, tmp_path):
  task = _translation_tasks(tiny_corpus)[0]
  train.train(model_dir=str(tmp_path / "p"), mixture_or_task_name=task,
              task_feature_lengths=LENGTHS, batch_size=4, train_steps=2, eval_period=2,
              checkpoint_period=2, eval_examples=8, eval_train_examples=8,
              schedule=_schedule, label_smoothing=0.1)
  folder = tmp_path / "p" / "training_eval" / task
  tag = lambda name: _scalars(folder, name)[2]
  # As T5X with label smoothing: loss is smoothed, and per all target tokens divides the
  # per-batch losses (2 batches of 4) again by every position (2 x 4 x 16).
  assert tag("cross_ent_loss") == tag("loss") != pytest.approx(tag(losses.PLAIN_CROSS_ENT))
  assert tag("cross_ent_loss_per_all_target_tokens") == pytest.approx(tag("loss") * 2 / 128)
  assert events.LOSS == losses.PLAIN_CROSS_ENT
  phase = runs.read_phase(tmp_path / "p", tmp_path)
  read = [r.value for r in events.read_phase_rows(phase) if r.split == "validation"
          and r.metric == events.LOSS and r.step == 2]
  assert read == [pytest.approx(tag(losses.PLAIN_CROSS_ENT))]


# --- the trainer as a process: kill -9 and resume; two devices ---------------------------------

def _command(corpus, model_dir, steps=30):
  return [sys.executable, "-m", "ptjf.cli", "train", "--gin_file=local/base.gin",
          "--gin_file=local/model_tiny.gin", "--gin_file=local/nmt_adam.gin",
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.CORPUS_DIR='{corpus.root}'",
          f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=4", "--gin.WARMUP_STEPS=5",
          "--gin.CHECKPOINT_PERIOD=5", "--gin.EVAL_PERIOD=10", "--gin.DROPOUT_RATE=0.1",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 16}",
          "--gin.MIXTURE_OR_TASK_NAME=@rate_mixture()",
          f"--gin_bindings=rate_mixture.tasks={_translation_tasks(corpus)}",
          "--gin_bindings=rate_mixture.rates=[0.7, 0.3]", "--gin_bindings=train.log_period=1"]


def _env(devices=1):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


@pytest.mark.slow
def test_kill_9_resumes_on_the_same_curve(tiny_corpus, tmp_path):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  subprocess.run(_command(tiny_corpus, whole), env=_env(), check=True, capture_output=True)
  proc = subprocess.Popen(_command(tiny_corpus, killed), env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not (killed / "checkpoint_10").is_dir() and time.time() < deadline:
    time.sleep(0.2)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not (killed / "checkpoint_30").exists()
  subprocess.run(_command(tiny_corpus, killed), env=_env(), check=True, capture_output=True)
  expected = _scalars(whole / "train", "loss")
  got = _scalars(killed / "train", "loss")
  assert set(range(11, 31)) <= set(got)
  for step in range(11, 31):
    assert got[step] == pytest.approx(expected[step], rel=1e-4), step
  tag = "examples_seen/" + _translation_tasks(tiny_corpus)[1]
  assert _scalars(killed / "train", tag)[30] == _scalars(whole / "train", tag)[30]


@pytest.mark.slow
def test_two_devices_follow_the_one_device_curve(tiny_corpus, tmp_path):
  for devices in (1, 2):
    subprocess.run(_command(tiny_corpus, tmp_path / f"d{devices}", steps=10), env=_env(devices),
                   check=True, capture_output=True)
  one = _scalars(tmp_path / "d1" / "train", "loss")
  two = _scalars(tmp_path / "d2" / "train", "loss")
  assert one.keys() == two.keys() == set(range(1, 11))
  for step in one:
    assert two[step] == pytest.approx(one[step], rel=1e-4), step
