"""Running plans (ptjf.launch.execute) with a fake trainer, once for real."""
import fcntl
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import browser

from ptjf import locks
from ptjf.errors import UserError
from ptjf.launch import execute, plan, t5x

# Mimics the engine's contract: resumes from MODEL_DIR's latest checkpoint,
# writes checkpoint_<step> every 2 steps and at the end, and needs its initial
# checkpoint to exist. Each call appends "<model_dir> <first step>" to CALLS;
# it fails when its model dir contains FAIL, and kills itself after writing
# checkpoint_<KILL_AT> when its model dir contains KILL.
FAKE_TRAINER = """
import os, pathlib, re, signal, sys, time
model_dir, steps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
init = sys.argv[3]
calls, fail, kill, kill_at = sys.argv[4:8]
done = [int(m.group(1)) for p in model_dir.glob("checkpoint_*")
        if (m := re.match(r"checkpoint_(\\d+)$", p.name))]
start = max(done, default=0)
with open(calls, "a") as f:
  f.write(f"{model_dir} {start}\\n")
if init and not pathlib.Path(init).is_dir():
  sys.exit(f"no initial checkpoint {init}")
if fail and fail in str(model_dir):
  sys.exit("fake trainer: told to fail")
for step in range(start + 1, steps + 1):
  print(f"step {step}/{steps}", flush=True)
  time.sleep(0.02)  # phases run side by side overlap
  if step % 2 == 0 or step == steps:
    (model_dir / f"checkpoint_{step}").mkdir()
  if kill and kill in str(model_dir) and step == int(kill_at):
    os.kill(os.getpid(), signal.SIGKILL)
"""

PLAN = {"experiment": {"name": "ro_fr", "high": "translate_en_fr",
                       "low": "translate_en_ro", "model": "tiny",
                       "batch_size": 8},
        "sweep": [{"kind": "ptjf", "pretrain_steps": 6, "finetune_steps": 4,
                   "rates": [0.3, 0.5]},
                  {"kind": "scalarization", "steps": 10, "rates": [0.5]}]}


class Fake:
  """A command builder running FAKE_TRAINER; `calls()` lists its runs."""

  def __init__(self, tmp_path: pathlib.Path):
    self.script = tmp_path / "fake_trainer.py"
    self.script.write_text(FAKE_TRAINER)
    self.calls_file = tmp_path / "calls.txt"
    self.fail = self.kill = ""
    self.kill_at = 0

  def __call__(self, job: execute.Job) -> list[str]:
    return [sys.executable, str(self.script), str(job.model_dir),
            str(job.phase.steps), str(job.init_checkpoint or ""),
            str(self.calls_file), self.fail, self.kill, str(self.kill_at)]

  def calls(self) -> list[tuple[str, int]]:
    if not self.calls_file.exists():
      return []
    lines = self.calls_file.read_text().splitlines()
    return [("/".join(pathlib.Path(d).parts[-2:]), int(s))
            for d, s in (l.split() for l in lines)]


@pytest.fixture()
def fake(tmp_path, monkeypatch) -> Fake:
  # No corpus: records carry no task sizes, whatever ./data/corpus holds.
  monkeypatch.setenv("PTJF_CORPUS_DIR", str(tmp_path / "no_corpus"))
  return Fake(tmp_path)


def test_runs_in_order_then_reuses_everything(tmp_path, fake, capsys):
  exp = plan.parse_plan(PLAN)
  runs = tmp_path / "runs"
  summary = execute.run_plan(exp, runs, command_builder=fake)
  assert summary.ok and len(summary.ran) == 4
  assert fake.calls() == [("pretrain_s6/pretrain", 0),
                          ("ptjf_r0.3/finetune", 0),
                          ("ptjf_r0.5/finetune", 0), ("scal_r0.5/main", 0)]
  out = capsys.readouterr().out
  assert "[2/4] ro_fr/ptjf_r0.3/finetune: running (4 steps)" in out
  fine = runs / "ro_fr/ptjf_r0.3/finetune"
  assert "step 4/4" in (fine / "log.txt").read_text()
  record = json.loads((fine / "ptjf_phase.json").read_text())
  assert record == {
      "experiment": "ro_fr", "run": "ptjf_r0.3", "method": "ptjf",
      "phase": "finetune",
      "rates": {"translate_en_fr": 0.7, "translate_en_ro": 0.3}, "steps": 4,
      "batch_size": 8,
      "start": {"mode": "params_only",
                "from": "pretrain_s6/pretrain/checkpoint_6"},
      "corpus_hash": None, "engine": "local", "label_smoothing": 0.1}

  again = execute.run_plan(exp, runs, command_builder=fake)
  assert again.ok and not again.ran and len(again.reused) == 4
  assert len(fake.calls()) == 4
  assert "nothing to do: all 4 phases are finished" in capsys.readouterr().out


def test_only_runs_with_dependencies_and_dry_run(tmp_path, fake, capsys):
  exp = plan.parse_plan(PLAN)
  runs = tmp_path / "runs"
  dry = execute.run_plan(exp, runs, only_runs=["ptjf_r0.5"], dry_run=True,
                         command_builder=fake)
  assert dry.planned == ["ro_fr/pretrain_s6/pretrain",
                         "ro_fr/ptjf_r0.5/finetune"]
  out = capsys.readouterr().out
  assert "total: 10 steps in 2 phases" in out and "nothing was started" in out
  assert not fake.calls() and not runs.exists()
  execute.run_plan(exp, runs, only_runs=["ptjf_r0.5"], command_builder=fake)
  assert [d for d, _ in fake.calls()] == ["pretrain_s6/pretrain",
                                          "ptjf_r0.5/finetune"]
  # The shared pre-training is now reused by the next fine-tune.
  execute.run_plan(exp, runs, only_runs=["ptjf_r0.3"], command_builder=fake)
  assert [d for d, _ in fake.calls()][2:] == ["ptjf_r0.3/finetune"]


def test_failure_skips_dependants_and_the_rest_goes_on(tmp_path, fake, capsys):
  exp = plan.parse_plan(PLAN)
  runs = tmp_path / "runs"
  fake.fail = "pretrain_s6"
  summary = execute.run_plan(exp, runs, command_builder=fake)
  log = runs / "ro_fr/pretrain_s6/pretrain/log.txt"
  assert summary.failed == [("ro_fr/pretrain_s6/pretrain", log)]
  assert [k for k, _ in summary.skipped] == ["ro_fr/ptjf_r0.3/finetune",
                                             "ro_fr/ptjf_r0.5/finetune"]
  assert summary.ran == ["ro_fr/scal_r0.5/main"] and not summary.ok
  assert "told to fail" in log.read_text()
  out = capsys.readouterr().out
  assert "pretrain: FAILED (exit 1: fake trainer: told to fail)" in out
  assert f"failed: ro_fr/pretrain_s6/pretrain: see {log}" in out
  fake.fail = ""
  summary = execute.run_plan(exp, runs, command_builder=fake)
  assert summary.ok and len(summary.ran) == 3 and len(summary.reused) == 1


def test_parallel_jobs_wait_for_their_parent_and_skip_after_a_failure(
    tmp_path, fake, capsys):
  exp = plan.parse_plan(PLAN)
  runs = tmp_path / "runs"
  fake.fail = "pretrain_s6"
  summary = execute.run_plan(exp, runs, command_builder=fake, jobs=2)
  assert [k for k, _ in summary.failed] == ["ro_fr/pretrain_s6/pretrain"]
  assert sorted(k for k, _ in summary.skipped) == [
      "ro_fr/ptjf_r0.3/finetune", "ro_fr/ptjf_r0.5/finetune"]
  assert summary.ran == ["ro_fr/scal_r0.5/main"]
  fake.fail = ""
  # A fine-tune started before its pre-training finished would fail: the
  # fake trainer needs its initial checkpoint.
  summary = execute.run_plan(exp, runs, command_builder=fake, jobs=2)
  assert summary.ok and sorted(summary.ran) == [
      "ro_fr/pretrain_s6/pretrain", "ro_fr/ptjf_r0.3/finetune",
      "ro_fr/ptjf_r0.5/finetune"]
  with pytest.raises(UserError, match="--jobs 0"):
    execute.run_plan(exp, runs, command_builder=fake, jobs=0)


def test_terminal_shows_each_running_phase_in_place(tmp_path, fake, capsys,
                                                    monkeypatch):
  monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
  summary = execute.run_plan(plan.parse_plan(PLAN), tmp_path / "runs",
                             command_builder=fake, jobs=2)
  assert summary.ok
  out = capsys.readouterr().out
  # The pre-training's last line, drawn in place (after a "\r"; the other
  # running phase's line may come first, whichever printed first).
  drawn = out.split("\r")[1:]
  assert any("[1/4] step 6/6" in status for status in drawn)
  lines = [re.sub(r"\x1b\[\w+", "", l.split("\r")[-1]).strip()
           for l in out.split("\n")]
  assert "[4/4] ro_fr/scal_r0.5/main: finished" in lines
  # Side by side, each running phase has a line of its own.
  assert any(re.search(r"\[1/4\] step \d/6\n\[4/4\] step \d+/10", s)
             or re.search(r"\[4/4\] step \d+/10\n\[1/4\] step \d/6", s)
             for s in drawn)


def test_killed_phase_resumes_without_redoing_work(tmp_path, fake, capsys):
  exp = plan.parse_plan(PLAN)
  runs = tmp_path / "runs"
  fake.kill, fake.kill_at = "scal_r0.5", 5
  summary = execute.run_plan(exp, runs, command_builder=fake)
  assert [k for k, _ in summary.failed] == ["ro_fr/scal_r0.5/main"]
  assert "scal_r0.5/main: FAILED (exit -9: step 5/10)" in (
      capsys.readouterr().out)
  fake.kill = ""
  summary = execute.run_plan(exp, runs, command_builder=fake)
  assert summary.ok and summary.ran == ["ro_fr/scal_r0.5/main"]
  assert fake.calls()[-1] == ("scal_r0.5/main", 4)   # from checkpoint_4
  assert "scal_r0.5/main: resuming from checkpoint_4 (10 steps)" in (
      capsys.readouterr().out)
  assert len(fake.calls()) == 5


def test_a_changed_plan_does_not_resume_an_old_phase(tmp_path, fake):
  runs = tmp_path / "runs"
  fake.kill, fake.kill_at = "scal_r0.5", 3
  execute.run_plan(plan.parse_plan(PLAN), runs, command_builder=fake)
  longer = {**PLAN, "sweep": [PLAN["sweep"][0],
                              {**PLAN["sweep"][1], "steps": 12}]}
  with pytest.raises(UserError, match="scal_r0.5/main was started with steps "
                     "10, the plan now says 12: delete .*scal_r0.5/main"):
    execute.run_plan(plan.parse_plan(longer), runs, command_builder=fake,
                     dry_run=True)


def test_local_command_follows_the_engine_contract(tmp_path):
  exp = plan.parse_plan({**PLAN, "experiment": {
      **PLAN["experiment"], "overrides": {"LEARNING_RATE": 0.001}}})
  run, phase = exp.phases()["ptjf_r0.3/finetune"]
  init = tmp_path / "pre/checkpoint_6"
  job = execute.Job(exp, run, phase, tmp_path / "ft", init, "/data/corpus")
  command = execute.local_command(job)
  assert command[:4] == [sys.executable, "-m", "ptjf.cli", "train"]
  assert [a for a in command if a.startswith("--gin_file=")] == [
      "--gin_file=local/base.gin", "--gin_file=local/model_tiny.gin",
      "--gin_file=local/nmt_adam.gin",
      "--gin_file=local/finetune_params_only.gin"]
  for arg in (f'--gin.MODEL_DIR="{tmp_path / "ft"}"', "--gin.TRAIN_STEPS=4",
              "--gin.DATA_SEED=1",  # a fine-tune reads its data in a new order
              "--gin.BATCH_SIZE=8", "--gin.LEARNING_RATE=0.001",
              f'--gin.INITIAL_CHECKPOINT_PATH="{init}"',
              "--gin_bindings=MIXTURE_OR_TASK_NAME = @rate_mixture()",
              "--gin_bindings=rate_mixture.tasks = "
              "['translate_en_fr', 'translate_en_ro']",
              "--gin_bindings=rate_mixture.rates = [0.7, 0.3]",
              '--gin_bindings=rate_mixture.corpus_dir = "/data/corpus"'):
    assert arg in command
  assert not any("also_evaluate" in a for a in command)  # trains on every task
  run, phase = exp.phases()["pretrain_s6/pretrain"]
  command = execute.local_command(execute.Job(exp, run, phase, tmp_path / "p",
                                              None, None))
  assert "--gin_bindings=local_task.name = \"translate_en_fr\"" in command
  assert "--gin.DATA_SEED=0" in command
  # Every task of the experiment is evaluated, trained on or not.
  assert "--gin_bindings=train.also_evaluate = ['translate_en_ro']" in command
  assert not any("INITIAL_CHECKPOINT_PATH" in a or "params_only" in a
                 for a in command)


def test_t5x_command_binds_the_mixture_as_the_local_engine_does(tmp_path):
  exp = plan.parse_plan({**PLAN, "experiment": {**PLAN["experiment"],
                                                "engine": "t5x"},
                         "sweep": [*PLAN["sweep"], {"kind": "scalarization",
                                                    "steps": 10, "taus": [2]}]})
  run, phase = exp.phases()["ptjf_r0.3/finetune"]
  job = execute.Job(exp, run, phase, tmp_path / "ft",
                    tmp_path / "pre/checkpoint_6", None)
  command = execute.t5x_command(job)
  assert command[1:3] == ["-m", "t5x.train"]
  mixture = [f"--gin_bindings={b}" for b in execute._mixture_bindings(job)]
  for arg in ("--gin_file=gin/ptjf_nmt3_finetune.gin",
              "--gin_file=gin/t5x/start/params_only.gin", *mixture,
              "--gin_bindings=rate_mixture.rates = [0.7, 0.3]",
              "--gin.TRAIN_STEPS=4",
              "--gin_bindings=EVAL_MIXTURE_OR_TASK_NAME = "
              "@ptjf_eval/rate_mixture()"):
    assert arg in command
  run, phase = exp.phases()["scal_t2/main"]   # any number of tasks, a tau
  command = execute.t5x_command(execute.Job(exp, run, phase, tmp_path / "t",
                                            None, None))
  assert "--gin_file=gin/ptjf_nmt3_scalarization.gin" in command
  assert "--gin_bindings=temperature_mixture.tau = 2.0" in command


def test_unimax_phase_binds_its_mixture_and_records_its_rates(tmp_path,
                                                             tiny_corpus):
  exp = plan.parse_plan({**PLAN, "sweep": [{"kind": "scalarization",
                                            "steps": 10, "unimax": [1]}]})
  run, phase = exp.phases()["scal_u1/main"]
  job = execute.Job(exp, run, phase, tmp_path / "u", None, None)
  bindings = execute._mixture_bindings(job)
  assert bindings[:3] == ["MIXTURE_OR_TASK_NAME = @unimax_mixture()",
                          "unimax_mixture.tasks = ['translate_en_fr', "
                          "'translate_en_ro']", "unimax_mixture.budget = 80"]
  record = execute.phase_record(job, {"translate_en_fr": 400,
                                      "translate_en_ro": 40}, None)
  # Budget 80 examples: ro gets its uniform half (40, one epoch), fr the rest.
  assert record.rates == {"translate_en_ro": 0.5, "translate_en_fr": 0.5}
  assert record.unimax == {"budget": 80, "max_epochs": 1.0}


def test_every_builtin_local_plan_has_its_gin_files():
  for path in sorted((pathlib.Path(plan.__file__).parent / "plans").glob("*.toml")):
    exp = plan.load_plan(path)
    if exp.engine == "local":
      execute.check_local_gin(exp)


def test_t5x_gin_names_only_known_phase_kinds():
  with pytest.raises(UserError, match="unknown field 'restart' in "
                     r"\[experiment\] t5x_gin"):
    plan.parse_plan({**PLAN, "experiment": {
        **PLAN["experiment"], "t5x_gin": {"restart": "gin/x.gin"}}})


AUTO_PLAN = {"experiment": {**PLAN["experiment"], "overrides": {"EVAL_PERIOD": 2}},
             "sweep": [{"kind": "ptjf", "pretrain_steps": "auto", "max_pretrain_steps": 6,
                        "patience": 2, "min_delta": 0.01, "finetune_steps": 4,
                        "rates": [0.3]},
                       {"kind": "schedule", "steps": 10, "rates": [[0.1, 0.5]],
                        "shape": "step", "switch_step": 4}]}
# What the engine leaves when its plateau rule stops a phase at step 4 (engine/train.py).
STOPS_AT_4 = """import json, pathlib, sys
model_dir = pathlib.Path(sys.argv[1])
(model_dir / "checkpoint_4").mkdir()
(model_dir / "ptjf_stop.json").write_text(json.dumps({"step": 4}))
"""


def test_fine_tunes_start_where_the_automatic_rule_stopped_pre_training(tmp_path, fake, capsys):
  exp = plan.parse_plan(AUTO_PLAN)
  (tmp_path / "stops.py").write_text(STOPS_AT_4)
  builder = lambda job: ([sys.executable, str(tmp_path / "stops.py"), str(job.model_dir)]
                         if job.phase.stop else fake(job))
  runs = tmp_path / "runs"
  assert execute.run_plan(exp, runs, command_builder=builder).ok
  pre = runs / "ro_fr/pretrain_auto6_pat2_delta0.01/pretrain"
  record = json.loads((pre / "ptjf_phase.json").read_text())
  assert record["switch_step"] == 4 and record["steps"] == 6
  assert record["stop_rule"] == {"task": "translate_en_fr", "patience": 2, "min_delta": 0.01,
                                 "eval_period": 2, "max_steps": 6}
  fine = json.loads((runs / "ro_fr/ptjf_auto_r0.3/finetune/ptjf_phase.json").read_text())
  assert fine["start"]["from"] == "pretrain_auto6_pat2_delta0.01/pretrain/checkpoint_4"
  assert ("ptjf_auto_r0.3/finetune", 0) in fake.calls()
  step = json.loads((runs / "ro_fr/sched_step_r0.1-0.5_at4/main/ptjf_phase.json").read_text())
  assert step["schedule"]["switch_step"] == 4 and step["rates"]["translate_en_ro"] == 0.34
  capsys.readouterr()
  again = execute.run_plan(exp, runs, command_builder=builder)
  assert again.ran == [] and "pretrain: done before (checkpoint_4), reused" in (
      capsys.readouterr().out)
  # A launcher killed between the stop and its record: a re-run records the switch step.
  (pre / "ptjf_phase.json").write_text(json.dumps({**record, "switch_step": None}))
  execute.run_plan(exp, runs, command_builder=builder)
  assert json.loads((pre / "ptjf_phase.json").read_text())["switch_step"] == 4


def test_local_command_binds_a_schedule_and_a_stop_rule(tmp_path):
  exp = plan.parse_plan(AUTO_PLAN)
  run, phase = exp.phases()["sched_step_r0.1-0.5_at4/main"]
  command = execute.local_command(execute.Job(exp, run, phase, tmp_path / "s", None, None))
  for arg in ("--gin_bindings=train.sampler = @rate_schedule()",
              "--gin_bindings=rate_schedule.start = [0.9, 0.1]",
              "--gin_bindings=rate_schedule.end = [0.5, 0.5]",
              "--gin_bindings=rate_schedule.switch_step = 4",
              '--gin_bindings=rate_schedule.shape = "step"',
              "--gin_bindings=rate_mixture.rates = [0.66, 0.34]"):   # the mean, for the mixture
    assert arg in command
  run, phase = exp.phases()["pretrain_auto6_pat2_delta0.01/pretrain"]
  command = execute.local_command(execute.Job(exp, run, phase, tmp_path / "p", None, None))
  assert ("--gin_bindings=train.stop_on_plateau = {'task': 'translate_en_fr', 'patience': 2, "
          "'min_delta': 0.01}") in command


def test_a_t5x_schedule_segment_continues_its_predecessor_at_its_rates(tmp_path, monkeypatch,
                                                                      fake, capsys):
  monkeypatch.setattr(t5x, "t5x_install_root", lambda: None)  # as in CI: T5X's macros recorded
  exp = plan.parse_plan({**PLAN, "experiment": {**PLAN["experiment"], "engine": "t5x"},
                         "sweep": [AUTO_PLAN["sweep"][1]]})
  run, phase = exp.phases()["sched_step_r0.1-0.5_at4/seg2"]
  job = execute.Job(exp, run, phase, tmp_path / "seg2", tmp_path / "seg1/checkpoint_4", None)
  command = execute.t5x_command(job)
  for arg in ("--gin_file=gin/ptjf_nmt3_scalarization.gin",   # as seg1: one warmup, one decay
              "--gin_file=gin/t5x/start/continue.gin", "--gin.TRAIN_STEPS=10",
              "--gin.SCHEDULE_STEPS=10", "--gin_bindings=rate_mixture.rates = [0.5, 0.5]",
              f'--gin.INITIAL_CHECKPOINT_PATH="{tmp_path / "seg1/checkpoint_4"}"'):
    assert arg in command
  assert not any("rate_schedule" in a for a in command)
  record = execute.phase_record(job, {}, None)
  assert record.schedule["segment"] == [2, 2] and record.first_step == 4
  execute.run_plan(exp, tmp_path / "runs", dry_run=True)
  assert "sched_step_r0.1-0.5_at4/seg2: would be running (until step 10)" in (
      capsys.readouterr().out)


def test_records_carry_task_sizes_and_corpus_hash(tmp_path, fake, tiny_corpus):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  for sub in ("pairs", "mono", "vocab"):
    (corpus / sub).symlink_to(tiny_corpus.root / sub)
  (corpus / "manifest.json").write_text('{"corpus_hash": "c0ffee"}')
  runs = tmp_path / "runs"
  execute.run_plan(plan.parse_plan(PLAN), runs, only_runs=["scal_r0.5"],
                   command_builder=fake, corpus_dir=str(corpus))
  record = json.loads(
      (runs / "ro_fr/scal_r0.5/main/ptjf_phase.json").read_text())
  assert record["task_sizes"] == {"translate_en_fr": 400, "translate_en_ro": 40}
  assert record["corpus_hash"] == "c0ffee"
  assert record["label_smoothing"] == 0.1   # gin/local/base.gin's LABEL_SMOOTHING
  missing = {**PLAN, "experiment": {**PLAN["experiment"],
                                    "low": "translate_en_de"}}
  with pytest.raises(UserError, match="unknown local task 'translate_en_de'"):
    execute.run_plan(plan.parse_plan(missing), runs, corpus_dir=str(corpus))
  assert not (runs / "ro_fr/pretrain_s6").exists()


def _hashed_corpus(tmp_path, tiny_corpus, corpus_hash: str):
  """The tiny corpus's files under a manifest naming `corpus_hash`; returns (folder, manifest)."""
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  for sub in ("pairs", "mono", "vocab"):
    (corpus / sub).symlink_to(tiny_corpus.root / sub)
  manifest = corpus / "manifest.json"
  manifest.write_text(f'{{"corpus_hash": "{corpus_hash}"}}')
  return corpus, manifest


def test_a_corpus_rebuilt_under_a_sweep_fails_its_later_phases(tmp_path, fake, tiny_corpus):
  corpus, manifest = _hashed_corpus(tmp_path, tiny_corpus, "c0ffee")

  def rebuild_after_pretraining(job):
    if job.phase.name != "pretrain":
      manifest.write_text('{"corpus_hash": "beef00"}')   # another build, mid-sweep
    return fake(job)

  runs = tmp_path / "runs"
  summary = execute.run_plan(plan.parse_plan(PLAN), runs, command_builder=rebuild_after_pretraining,
                             corpus_dir=str(corpus))
  assert summary.ran == ["ro_fr/pretrain_s6/pretrain"]
  assert fake.calls() == [("pretrain_s6/pretrain", 0)]   # no phase trained on the new corpus
  assert len(summary.failed) == 3
  log = (runs / "ro_fr/scal_r0.5/main" / execute.LOG_FILE)
  assert "was rebuilt since this sweep started (hash c0ffee... -> beef00...)" in log.read_text()


def test_a_phase_finished_on_another_corpus_is_not_reused(tmp_path, fake, tiny_corpus):
  corpus, manifest = _hashed_corpus(tmp_path, tiny_corpus, "c0ffee")
  runs = tmp_path / "runs"
  assert execute.run_plan(plan.parse_plan(PLAN), runs, command_builder=fake,
                          corpus_dir=str(corpus)).ok
  manifest.write_text('{"corpus_hash": "beef00"}')   # rebuilt: another subsample
  with pytest.raises(UserError, match=r"pretrain_s6/pretrain was trained on another corpus "
                     r"\(hash c0ffee\.\.\. -> beef00\.\.\.\).*new --runs-dir"):
    execute.run_plan(plan.parse_plan(PLAN), runs, command_builder=fake,
                     corpus_dir=str(corpus), dry_run=True)


def test_a_sweep_holds_its_corpus_so_no_build_changes_it_under_its_phases(
    tmp_path, fake, tiny_corpus):
  corpus, _ = _hashed_corpus(tmp_path, tiny_corpus, "c0ffee")
  users = []

  def builder(job):
    users.append(locks.users(corpus))   # what a `ptjf corpus build` of it is refused for
    return fake(job)

  runs = tmp_path / "runs"
  execute.run_plan(plan.parse_plan(PLAN), runs, only_runs=["ptjf_r0.3"], command_builder=builder,
                   corpus_dir=str(corpus))
  assert users == [[f"ptjf sweep of ro_fr into {runs} (pid {os.getpid()})"]] * 2
  assert not locks.users(corpus)   # let go when the sweep ends


def test_cli_dry_run_of_a_plan_file_and_one_run(tmp_path, capsys):
  from ptjf import cli  # pylint: disable=g-import-not-at-top
  plan_file = tmp_path / "mine.toml"
  plan_file.write_text("""
[experiment]
name = "mine"
high = "translate_en_fr"
low = "translate_en_ro"

[[sweep]]
kind = "ptjf"
pretrain_steps = 200
finetune_steps = 100
rates = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
""")
  runs = str(tmp_path / "runs")
  assert cli.main(["sweep", str(plan_file), "--dry-run", "--runs-dir",
                   runs]) == 0
  out = capsys.readouterr().out
  assert "total: 1100 steps in 10 phases (2700 if nothing were shared)" in out
  assert cli.main(["run", str(plan_file), "--run", "ptjf_r0.9", "--dry-run",
                   "--runs-dir", runs]) == 0
  out = capsys.readouterr().out
  assert "[2/2] mine/ptjf_r0.9/finetune: would be running (100 steps)" in out
  assert cli.main(["run", str(plan_file), "--run", "ptjf_r1"]) == 2
  assert "ptjf: error: no run 'ptjf_r1' in plan 'mine'" in (
      capsys.readouterr().err)


def _wait_for(path: pathlib.Path, proc, timeout: float = 600) -> None:
  deadline = time.time() + timeout
  while not path.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)


def _tiny_plan(name: str, checkpoint_period: int) -> str:
  """The [experiment] table of a plan for the tiny model, evaluated every 2 steps."""
  return f"""
[experiment]
name = "{name}"
model = "tiny"
optimizer = "nmt_adam"
high = "translate_en_fr"
low = "translate_en_ro"
batch_size = 4
feature_lengths = {{inputs = 16, targets = 16}}
overrides = {{EVAL_PERIOD = 2, CHECKPOINT_PERIOD = {checkpoint_period}, WARMUP_STEPS = 1}}
"""


@pytest.mark.slow
def test_sweep_with_the_real_engine_survives_kill_9(tmp_path, tiny_corpus):
  """PTJF + scalarization + restart through `ptjf sweep`; killed mid-way, re-run, re-run."""
  plan_file = tmp_path / "e2e.toml"
  plan_file.write_text(_tiny_plan("e2e", 2) + """
[[sweep]]
kind = "ptjf"
pretrain_steps = 4
finetune_steps = 2
rates = [0.3, 0.7]
[[sweep]]
kind = "scalarization"
steps = 6
rates = [0.3]
[[sweep]]
kind = "restart"
pretrain_steps = 4
finetune_steps = 2
rates = [0.3]
""")
  runs = tmp_path / "runs"
  command = [sys.executable, "-m", "ptjf.cli", "sweep", str(plan_file), "--runs-dir",
             str(runs), "--corpus-dir", str(tiny_corpus.root)]
  proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  _wait_for(runs / "e2e/ptjf_r0.3/finetune/checkpoint_2", proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  subprocess.run(command, check=True, capture_output=True)
  logs = {p.parent.relative_to(runs / "e2e").as_posix(): p.read_text()
          for p in (runs / "e2e").glob("*/*/log.txt")}
  assert sorted(logs) == ["pretrain_s4/pretrain", "ptjf_r0.3/finetune", "ptjf_r0.7/finetune",
                          "restart_r0.3/main", "restart_r0.3/restart", "scal_r0.3/main"]
  # The shared pre-training ran once, to completion, before the kill: never started again.
  assert logs["pretrain_s4/pretrain"].count("=== 20") == 1
  for key, steps in {"pretrain_s4/pretrain": 4, "ptjf_r0.7/finetune": 2,
                       "scal_r0.3/main": 6, "restart_r0.3/restart": 2}.items():
    assert (runs / "e2e" / key / f"checkpoint_{steps}").is_dir(), key
  again = subprocess.run(command, check=True, capture_output=True, text=True).stdout
  assert "nothing to do: all 6 phases are finished" in again
  assert all(p.read_text() == logs[k] for k, p in
             ((p.parent.relative_to(runs / "e2e").as_posix(), p)
              for p in (runs / "e2e").glob("*/*/log.txt")))
  page = subprocess.run([sys.executable, "-m", "ptjf.cli", "report", str(runs)], check=True,
                        capture_output=True, text=True).stdout.strip().splitlines()[-1]
  html = pathlib.Path(page).read_text()
  assert "<img" in html and "translate_en_ro" in html
  if browser.CHROMIUM.exists():
    assert browser.screenshot_colours(pathlib.Path(page), tmp_path) > 200


@pytest.mark.slow
def test_a_schedule_and_an_automatic_switch_run_through_ptjf_sweep(tmp_path, tiny_corpus):
  plan_file = tmp_path / "auto.toml"
  plan_file.write_text(_tiny_plan("auto", 100) + """
[[sweep]]
kind = "schedule"
steps = 4
shape = "step"
switch_step = 2
rates = [[0.1, 0.9]]
[[sweep]]
kind = "ptjf"
pretrain_steps = "auto"
max_pretrain_steps = 8
patience = 1
min_delta = 100.0   # no evaluation improves by that: stops at the first after step 0
finetune_steps = 2
rates = [0.5]
""")
  runs = tmp_path / "runs"
  command = [sys.executable, "-m", "ptjf.cli", "sweep", str(plan_file), "--runs-dir",
             str(runs), "--corpus-dir", str(tiny_corpus.root)]
  out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
  assert "3 phases ran" in out
  pre = runs / "auto/pretrain_auto8_pat1_delta100/pretrain"
  assert json.loads((pre / "ptjf_phase.json").read_text())["switch_step"] == 2
  fine = json.loads((runs / "auto/ptjf_auto_r0.5/finetune/ptjf_phase.json").read_text())
  assert fine["start"]["from"] == "pretrain_auto8_pat1_delta100/pretrain/checkpoint_2"
  assert (runs / "auto/ptjf_auto_r0.5/finetune/checkpoint_2").is_dir()
  sched = runs / "auto/sched_step_r0.1-0.9_at2/main"
  assert json.loads((sched / "ptjf_phase.json").read_text())["schedule"]["switch_step"] == 2
  assert "rate_schedule.switch_step = 2" in (sched / "config.gin").read_text()
  again = subprocess.run(command, check=True, capture_output=True, text=True).stdout
  assert "nothing to do: all 3 phases are finished" in again
  subprocess.run([sys.executable, "-m", "ptjf.cli", "report", str(runs)], check=True,
                 capture_output=True)
  md = (runs / "report" / "report.md").read_text()
  assert "| schedule |" in md and "stopped pre-training at step 2 of at most 8" in md


@pytest.mark.parametrize("engine", ["local", "t5x"])
@pytest.mark.parametrize("where, table", [
    ("experiment", {"overrides": {"WARMUP_STPES": 5}}),
    ("sweep", {"finetune_overrides": {"WARMUP_STPES": 5}}),
    ("sweep", {"pretrain_overrides": {"WARMUP_STPES": 5}}),
    ("sweep", {"lrs": [0.1], "overrides": {"WARMUP_STPES": 5}}),
])
def test_unknown_macro_in_plan_overrides_is_refused_before_any_work(
    tmp_path, fake, capsys, monkeypatch, where, table, engine):
  monkeypatch.setattr(t5x, "t5x_install_root", lambda: None)  # as in CI: T5X's macros recorded
  data = {**PLAN, "experiment": {**PLAN["experiment"], "engine": engine},
          "sweep": [PLAN["sweep"][0]]}
  if where == "experiment":
    data["experiment"] = {**data["experiment"], **table}
  else:
    data["sweep"] = [{**PLAN["sweep"][0], **table}]
  for dry_run in (True, False):
    with pytest.raises(UserError, match="unknown gin macro WARMUP_STPES in the "
                       "plan's overrides of .*: did you mean WARMUP_STEPS"):
      execute.run_plan(plan.parse_plan(data), tmp_path / "runs",
                       command_builder=fake, dry_run=dry_run)
  assert not fake.calls() and not (tmp_path / "runs").exists()
  assert not capsys.readouterr().out


def test_without_a_terminal_each_phase_prints_progress_lines(tmp_path, fake,
                                                             capsys):
  execute.run_plan(plan.parse_plan(PLAN), tmp_path / "runs",
                   command_builder=fake)
  lines = capsys.readouterr().out.splitlines()
  progress = [l for l in lines if ": step " in l]
  # The first line of each phase, then one per PROGRESS_PERIOD (30 s).
  assert progress[0] == "[1/4] ro_fr/pretrain_s6/pretrain: step 1/6"
  assert len(progress) == 4


def test_a_phase_another_launcher_holds_is_waited_for_not_trained_twice(
    tmp_path, fake, capsys):
  runs = tmp_path / "runs"
  exp = plan.parse_plan(PLAN)
  held = runs / "ro_fr/scal_r0.5/main"
  held.mkdir(parents=True)
  lock = open(held / execute.LOCK_FILE, "w")
  fcntl.flock(lock, fcntl.LOCK_EX)
  summaries = []
  thread = threading.Thread(target=lambda: summaries.append(
      execute.run_plan(exp, runs, command_builder=fake)))
  thread.start()
  deadline = time.time() + 60
  while len(fake.calls()) < 3 and time.time() < deadline:
    time.sleep(0.05)
  time.sleep(0.5)
  assert thread.is_alive() and len(fake.calls()) == 3  # waiting for the lock
  (held / "checkpoint_10").mkdir()  # the other launcher finishes the phase
  lock.close()
  thread.join(60)
  assert "scal_r0.5/main" not in [d for d, _ in fake.calls()]
  out = capsys.readouterr().out
  assert "ro_fr/scal_r0.5/main: another launcher or `ptjf train` is training it; waiting" in out
  assert "[4/4] ro_fr/scal_r0.5/main: finished by another launcher, reused" in out
  assert summaries[0].reused == ["ro_fr/scal_r0.5/main"] and summaries[0].ok


def test_two_launchers_at_once_train_each_phase_once(tmp_path, fake):
  runs, exp = tmp_path / "runs", plan.parse_plan(PLAN)
  threads = [threading.Thread(target=execute.run_plan, args=(exp, runs),
                              kwargs={"command_builder": fake, "jobs": 2})
             for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(120)
  assert sorted(d for d, _ in fake.calls()) == [
      "pretrain_s6/pretrain", "ptjf_r0.3/finetune", "ptjf_r0.5/finetune",
      "scal_r0.5/main"]


LAUNCHER = """
import pathlib, sys
from ptjf.launch import execute
child = ("from ptjf import startup; startup.die_with_parent(); import os, time;"
         "print(os.getpid(), flush=True); time.sleep(120)")
execute._run_logged([sys.executable, "-c", child], pathlib.Path(sys.argv[1]),
                    print)
"""


def _alive(pid: int) -> bool:
  try:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
  except FileNotFoundError:
    return False
  return "\nState:\tZ" not in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl")
def test_a_trainer_dies_with_its_killed_launcher(tmp_path):
  log = tmp_path / "log.txt"
  launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(log)],
                              stdout=subprocess.PIPE, text=True)
  trainer = int(launcher.stdout.readline())
  assert _alive(trainer)
  launcher.send_signal(signal.SIGKILL)
  launcher.wait()
  deadline = time.time() + 10
  while _alive(trainer) and time.time() < deadline:
    time.sleep(0.05)
  assert not _alive(trainer)


def test_a_failed_phase_is_blamed_on_its_error_line_not_exit_noise(tmp_path):
  log = tmp_path / "log.txt"
  log.write_text("=== 2026-01-01T00:00:00+00:00 old run\nptjf: error: old problem\n"
                 "=== exit 2\n=== 2026-01-02T00:00:00+00:00 train ...\nstep 10/100\n"
                 "ptjf: error: No space left on device: /runs/x: free some space\n"
                 "Exception ignored in: <function _at_exit>\n"
                 "ImportError: sys.meta_path is None, Python is likely shutting down\n"
                 "=== exit 2\n")
  assert execute._last_line(log) == (
      "ptjf: error: No space left on device: /runs/x: free some space")
  log.write_text("=== 2026-01-02T00:00:00+00:00 train ...\nstep 10/100\nKilled\n=== exit -9\n")
  assert execute._last_line(log) == "Killed"


def _children(pid: int) -> list[int]:
  return [int(c) for task in pathlib.Path(f"/proc/{pid}/task").iterdir()
          for c in (task / "children").read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl")
def test_kill_9_of_a_sweep_launcher_leaves_no_trainer(tiny_corpus, tmp_path):
  plan_file = tmp_path / "plan.toml"
  plan_file.write_text("""
[experiment]
name = "x"
high = "translate_en_fr"
low = "translate_en_ro"
model = "tiny"
batch_size = 4
feature_lengths = {inputs = 16, targets = 16}
[[sweep]]
kind = "scalarization"
steps = 100000
rates = [0.5]
""")
  command = [sys.executable, "-m", "ptjf.cli", "sweep", str(plan_file),
             "--runs-dir", str(tmp_path / "runs"), "--corpus-dir", str(tiny_corpus.root)]
  launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL)
  log = tmp_path / "runs" / "x" / "scal_r0.5" / "main" / "log.txt"
  deadline = time.time() + 300
  while not (log.is_file() and "at step 0" in log.read_text()) and time.time() < deadline:
    time.sleep(0.5)
  trainers = _children(launcher.pid)
  assert len(trainers) == 1 and _alive(trainers[0])
  launcher.send_signal(signal.SIGKILL)
  launcher.wait()
  deadline = time.time() + 10
  while _alive(trainers[0]) and time.time() < deadline:
    time.sleep(0.1)
  assert not _alive(trainers[0])
  # A re-run finds no stray writer: the phase's lock is free (once the kernel
  # has finished closing the dead trainer's files).
  with open(log.parent / execute.LOCK_FILE) as lock:
    deadline = time.time() + 10
    while True:
      try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        assert time.time() < deadline, "the lock is still held"
        time.sleep(0.1)
