"""Synthetic sweep logdirs in the contract's layout (docs/design.md 3-4).

Written with TF2 summary ops (`tf.summary.scalar` under
`tf.summary.create_file_writer`), which store tensor summaries the way T5X/clu
do. Curves are plausible, not real: the low-resource task overfits once it
has been repeated for a few epochs, and pre-training on the high-resource task
transfers, so PTJF beats scalarization on the low-resource task as in the paper.
"""
import json
import math
import pathlib

import pytest

HIGH, LOW = "translate_en_fr", "translate_en_ro"
SIZES = {HIGH: 20000, LOW: 200}
BATCH = 16
EVAL_EVERY = 50


def _high_loss(high_examples: float) -> float:
  return 1.5 + 3.5 / math.sqrt(1 + high_examples / 300)


def _low_loss(low_examples: float, high_examples: float) -> float:
  epochs = low_examples / SIZES[LOW]
  transfer = 0.8 * (1 - 1 / (1 + high_examples / 3000))
  return (2.2 + 3.0 / math.sqrt(1 + low_examples / 60) - transfer
          + 0.04 * max(0.0, epochs - 4) ** 1.3)


def write_phase(path: pathlib.Path, meta: dict, start_examples=(0.0, 0.0),
                bleu: bool = False, low_bonus: float = 0.0,
                tasks: tuple[str, ...] = (HIGH, LOW), first_step: int = 0) -> None:
  """One phase logdir: train/, training_eval/, training_eval_train/ and
  (optionally) inference_eval/ event files plus ptjf_phase.json; `low_bonus`
  lowers the low-resource loss (what pre-training buys). `tasks[0]` is the
  high-resource task; every other task gets the low-resource curve. A `continue` phase logs
  steps from `first_step` (its parent's) on."""
  import tensorflow as tf
  path.mkdir(parents=True, exist_ok=True)
  (path / "ptjf_phase.json").write_text(json.dumps(meta))
  (path / "config.gin").write_text(
      f"BATCH_SIZE = {meta['batch_size']}\nTRAIN_STEPS = {meta['steps']}\n")
  rates = meta["rates"]
  writers = {"train": tf.summary.create_file_writer(str(path / "train"))}
  for task in tasks:
    for sub in ("training_eval", "training_eval_train") + (
        ("inference_eval",) if bleu else ()):
      writers[(sub, task)] = tf.summary.create_file_writer(
          str(path / sub / task))
  for step in range(first_step + EVAL_EVERY, meta["steps"] + 1, EVAL_EVERY):
    seen = {t: (step - first_step) * BATCH * rates.get(t, 0.0) for t in tasks}
    high_ex = start_examples[0] + seen[tasks[0]]
    val = {tasks[0]: _high_loss(high_ex)}
    for i, task in enumerate(tasks[1:]):
      val[task] = (_low_loss(start_examples[1] + seen[task], high_ex)
                   - low_bonus + 0.2 * i)
    with writers["train"].as_default(step=step):
      tf.summary.scalar("loss",
                        sum(rates.get(t, 0) * v for t, v in val.items()))
      tf.summary.scalar("learning_rate", 1e-3)
      for t in tasks:
        tf.summary.scalar(f"examples_seen/{t}", seen[t])
    for task in tasks:
      with writers[("training_eval", task)].as_default(step=step):
        tf.summary.scalar("loss", val[task])
      with writers[("training_eval_train", task)].as_default(step=step):
        overfit = 0.3 * min(1.0, seen[task] / 3000)
        tf.summary.scalar("loss", val[task] - 0.1 - overfit)
      if bleu:
        with writers[("inference_eval", task)].as_default(step=step):
          tf.summary.scalar("eval/bleu", max(0.0, 40 - 7 * val[task]))
  for writer in writers.values():
    writer.close()


def _meta(run, method, phase, rates, steps, start_from=None, mode="scratch",
          experiment="nmt"):
  return {"experiment": experiment, "run": run, "method": method,
          "phase": phase,
          "rates": rates, "steps": steps, "batch_size": BATCH,
          "start": {"mode": mode, "from": start_from},
          "corpus_hash": "c0ffee", "engine": "local", "task_sizes": SIZES}


def build_sweep(root: pathlib.Path) -> pathlib.Path:
  """A small scalarization grid (two lengths), PTJF (two pre-training lengths)
  and restart, under root/nmt/<run>/<phase>/."""
  exp = root / "nmt"
  for low_rate in (0.05, 0.15, 0.3, 0.5):  # the low task's rate
    rates = {HIGH: 1 - low_rate, LOW: low_rate}
    write_phase(exp / f"scal_{low_rate}" / "main",
                _meta(f"scal_{low_rate}", "scalarization", "main", rates, 400),
                bleu=low_rate == 0.15)
  for low_rate in (0.05, 0.15):
    rates = {HIGH: 1 - low_rate, LOW: low_rate}
    write_phase(exp / f"scal_long_{low_rate}" / "main",
                _meta(f"scal_long_{low_rate}", "scalarization", "main", rates,
                      500))
  for pre_steps in (200, 300):
    pre = f"pretrain_{pre_steps}"
    write_phase(exp / pre / "pretrain",
                _meta(pre, "ptjf", "pretrain", {HIGH: 1.0}, pre_steps))
    for low_rate in (0.2, 0.5):
      run = f"ptjf_{pre_steps}_{low_rate}"
      write_phase(exp / run / "finetune",
                  _meta(run, "ptjf", "finetune",
                        {HIGH: 1 - low_rate, LOW: low_rate}, 100,
                        f"{pre}/pretrain/checkpoint_{pre_steps}",
                        "params_only"),
                  start_examples=(pre_steps * BATCH, 0.0),
                  bleu=(pre_steps, low_rate) == (300, 0.2),
                  low_bonus=pre_steps / 1000)
  rates = {HIGH: 0.8, LOW: 0.2}
  write_phase(exp / "restart_0.2" / "main",
              _meta("restart_0.2", "restart", "main", rates, 300))
  write_phase(exp / "restart_0.2" / "restart",
              _meta("restart_0.2", "restart", "restart", rates, 100,
                    "restart_0.2/main/checkpoint_300", "params_only"),
              start_examples=(300 * BATCH * 0.8, 300 * BATCH * 0.2))
  return root


def build_schedule_experiment(root: pathlib.Path) -> pathlib.Path:
  """Experiment `sched` under root: scalarization, a schedule run of one phase (local engine)
  and one of two `continue` segments (T5X's), an automatic PTJF pre-training stopped at 250 of
  at most 400 steps and its fine-tune."""
  exp = root / "sched"
  meta = lambda *a, **k: _meta(*a, **k, experiment="sched")
  write_phase(exp / "scal_r0.2" / "main",
              meta("scal_r0.2", "scalarization", "main", {HIGH: 0.8, LOW: 0.2}, 400))
  schedule = {"shape": "linear", "start": {HIGH: 0.9, LOW: 0.1}, "end": {HIGH: 0.5, LOW: 0.5},
              "steps": 400}
  write_phase(exp / "sched_lin_r0.1-0.5" / "main",
              {**meta("sched_lin_r0.1-0.5", "schedule", "main", {HIGH: 0.7, LOW: 0.3}, 400),
               "schedule": schedule})
  run = "sched_t5x_r0.1-0.5"
  write_phase(exp / run / "seg1",
              {**meta(run, "schedule", "seg1", {HIGH: 0.8, LOW: 0.2}, 200),
               "schedule": {**schedule, "segment": [1, 2]}})
  write_phase(exp / run / "seg2",
              {**meta(run, "schedule", "seg2", {HIGH: 0.6, LOW: 0.4}, 400,
                      f"{run}/seg1/checkpoint_200", "continue"),
               "schedule": {**schedule, "segment": [2, 2]}},
              start_examples=(200 * BATCH * 0.8, 200 * BATCH * 0.2), first_step=200)
  pre = "pretrain_auto400_pat2_delta0.01"
  write_phase(exp / pre / "pretrain",
              {**meta(pre, "ptjf", "pretrain", {HIGH: 1.0}, 400), "switch_step": 250,
               "stop_rule": {"task": HIGH, "patience": 2, "min_delta": 0.01,
                             "eval_period": 50, "max_steps": 400}})
  write_phase(exp / "ptjf_auto_r0.2" / "finetune",
              meta("ptjf_auto_r0.2", "ptjf", "finetune", {HIGH: 0.8, LOW: 0.2}, 150,
                   f"{pre}/pretrain/checkpoint_250", "params_only"),
              start_examples=(250 * BATCH, 0.0), low_bonus=0.25)
  return root


LM_TASKS = ("span_corruption_en", "span_corruption_hi", "span_corruption_gd")


def build_lm_experiment(root: pathlib.Path) -> pathlib.Path:
  """A three-language experiment `lm` (tau-like rates, PTJF and restart) under
  root/lm/<run>/<phase>/, without task_sizes."""
  def meta(run, method, phase, rates, steps, start_from=None):
    m = _meta(run, method, phase, rates, steps, start_from,
              "params_only" if start_from else "scratch", experiment="lm")
    del m["task_sizes"]
    return m
  mix = dict(zip(LM_TASKS, (0.6, 0.25, 0.15)))
  exp = root / "lm"
  write_phase(exp / "scal" / "main", meta("scal", "scalarization", "main",
                                          mix, 200), tasks=LM_TASKS)
  write_phase(exp / "pretrain" / "pretrain",
              meta("pretrain", "ptjf", "pretrain", {LM_TASKS[0]: 1.0}, 100),
              tasks=LM_TASKS)
  write_phase(exp / "ptjf" / "finetune",
              meta("ptjf", "ptjf", "finetune", mix, 100,
                   "pretrain/pretrain/checkpoint_100"),
              start_examples=(100 * BATCH, 0.0), low_bonus=0.1, tasks=LM_TASKS)
  return root


def build_plan_shaped(runs_dir: pathlib.Path, low_bonus: float) -> None:
  """A plan-shaped experiment: scal_r<rate>, pretrain_s300 + ptjf_r<rate>."""
  exp = runs_dir / "demo"
  for rate in (0.2, 0.5):
    rates = {HIGH: 1 - rate, LOW: rate}
    write_phase(exp / f"scal_r{rate}" / "main",
                _meta(f"scal_r{rate}", "scalarization", "main", rates, 400))
  write_phase(exp / "pretrain_s300" / "pretrain",
              _meta("pretrain_s300", "ptjf", "pretrain", {HIGH: 1.0}, 300))
  for rate in (0.2, 0.5):
    run = f"ptjf_r{rate}"
    write_phase(exp / run / "finetune",
                _meta(run, "ptjf", "finetune", {HIGH: 1 - rate, LOW: rate}, 100,
                      "pretrain_s300/pretrain/checkpoint_300", "params_only"),
                start_examples=(300 * 16, 0.0), low_bonus=low_bonus)


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory) -> pathlib.Path:
  """A synthetic RUNS_DIR with one experiment `nmt` (see build_sweep)."""
  return build_sweep(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def lm_runs_dir(tmp_path) -> pathlib.Path:
  """A synthetic RUNS_DIR with the three-language experiment `lm`."""
  return build_lm_experiment(tmp_path / "runs")


@pytest.fixture
def plan_shaped_runs():
  """build_plan_shaped: runs named as the built-in plans name them."""
  return build_plan_shaped


@pytest.fixture
def bare_train_runs(tmp_path) -> pathlib.Path:
  """Two logdirs as bare `ptjf train` writes them: no ptjf_phase.json; the
  mixture's evaluation folder `mix_<task>_<rate>_...` beside its tasks'."""
  runs_dir = tmp_path / "runs"
  for name, rates in (("a", {HIGH: 0.7, LOW: 0.3}), ("b", {HIGH: 0.5, LOW: 0.5})):
    bare = runs_dir / name
    write_phase(bare, _meta(name, "scalarization", "main", rates, 100))
    (bare / "ptjf_phase.json").unlink()
    (bare / "training_eval" / f"mix_{HIGH}_{rates[HIGH]}_{LOW}_{rates[LOW]}").mkdir()
  return runs_dir


@pytest.fixture
def schedule_runs_dir(tmp_path) -> pathlib.Path:
  """A synthetic RUNS_DIR with experiment `sched` (see build_schedule_experiment)."""
  return build_schedule_experiment(tmp_path / "runs")
