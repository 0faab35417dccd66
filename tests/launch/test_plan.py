"""Experiment plans (ptjf.launch.plan): sweep kinds, costs, validation."""
import pathlib

import pytest

from ptjf.errors import UserError
from ptjf.launch import plan

EXPERIMENT = {"name": "ro_fr", "high": "translate_en_fr",
              "low": "translate_en_ro", "model": "tiny", "batch_size": 8}
RATES9 = [i / 10 for i in range(1, 10)]


def make(*sweeps, runs=(), **experiment) -> plan.Experiment:
  data = {"experiment": {**EXPERIMENT, **experiment}, "sweep": list(sweeps)}
  if runs:
    data["run"] = list(runs)
  return plan.parse_plan(data)


def test_ptjf_grid_shares_one_pretraining_and_counts_it_once():
  exp = make({"kind": "ptjf", "pretrain_steps": 400, "finetune_steps": 50,
              "rates": RATES9})
  assert [r.name for r in exp.runs] == ["pretrain_s400"] + [
      f"ptjf_r{r:g}" for r in RATES9]
  fine = exp.runs[3].phases[0]   # ptjf_r0.3
  assert fine.start == "params_only" and fine.parent == "pretrain_s400/pretrain"
  assert fine.tasks == ("translate_en_fr", "translate_en_ro")
  assert fine.rates == (0.7, 0.3)
  lines = plan.cost_lines(exp, plan.order(exp))
  assert lines[-1] == ("total: 850 steps in 10 phases "
                       "(4050 if nothing were shared)")
  assert lines[3].split() == ["ptjf_r0.3", "50", "steps", "(+", "400", "in",
                              "pretrain_s400)"]


def test_pretraining_is_shared_between_sweeps_and_high_task_only():
  exp = make({"kind": "ptjf", "pretrain_steps": 40, "finetune_steps": 10,
              "rates": [0.5]},
             {"kind": "transfer", "pretrain_steps": 40, "finetune_steps": 10})
  names = [r.name for r in exp.runs]
  assert names == ["pretrain_s40", "ptjf_r0.5", "transfer"]
  pre = exp.runs[0].phases[0]
  assert pre.tasks == ("translate_en_fr",) and pre.rates is None
  transfer = exp.runs[2]
  assert (exp.runs[0].method, exp.runs[1].method, transfer.method) == (
      "ptjf", "ptjf", "transfer")
  assert transfer.phases[0].tasks == ("translate_en_ro",)
  assert transfer.phases[0].parent == "pretrain_s40/pretrain"


def test_scalarization_lengths_and_restart_phases():
  exp = make({"kind": "scalarization", "steps": [40, 50], "rates": [0.2]},
             {"kind": "restart", "pretrain_steps": 40, "finetune_steps": 10,
              "rates": [0.2]})
  assert [r.name for r in exp.runs] == ["scal_r0.2_s40", "scal_r0.2_s50",
                                        "restart_r0.2"]
  main, again = exp.runs[2].phases
  assert (main.start, main.steps, main.rates) == ("scratch", 40, (0.8, 0.2))
  assert (again.start, again.parent, again.steps, again.rates) == (
      "params_only", "restart_r0.2/main", 10, (0.8, 0.2))


def test_cross_grids_set_macros_and_name_runs():
  exp = make({"kind": "scalarization", "steps": 10, "rates": [0.5],
              "lrs": [1e-3, 5e-4], "dropouts": [0.1, 0.3]})
  assert [r.name for r in exp.runs] == [
      "scal_r0.5_lr0.001_d0.1", "scal_r0.5_lr0.001_d0.3",
      "scal_r0.5_lr0.0005_d0.1", "scal_r0.5_lr0.0005_d0.3"]
  assert dict(exp.runs[1].phases[0].overrides) == {
      "LEARNING_RATE": 1e-3, "DROPOUT_RATE": 0.3}


def test_phase_overrides_and_prefixes():
  ptjf = {"kind": "ptjf", "pretrain_steps": 40, "finetune_steps": 10,
          "rates": [0.5], "overrides": {"LEARNING_RATE": 0.01},
          "finetune_overrides": {"WARMUP_STEPS": 5}}
  exp = make(ptjf, {**ptjf, "kind": "restart"})
  phases = {k: dict(p.overrides) for k, (_, p) in exp.phases().items()}
  assert phases == {
      "pretrain_s40/pretrain": {"LEARNING_RATE": 0.01},
      "ptjf_r0.5/finetune": {"LEARNING_RATE": 0.01, "WARMUP_STEPS": 5},
      "restart_r0.5/main": {"LEARNING_RATE": 0.01},
      "restart_r0.5/restart": {"LEARNING_RATE": 0.01, "WARMUP_STEPS": 5}}
  with pytest.raises(UserError, match="two different runs are named "
                     "'pretrain_s40': give one of the sweeps a prefix"):
    make(ptjf, {**ptjf, "overrides": {}, "rates": [0.3]})
  exp = make(ptjf, {**ptjf, "overrides": {}, "rates": [0.3], "prefix": "base"})
  assert [r.name for r in exp.runs] == ["pretrain_s40", "ptjf_r0.5",
                                        "base_pretrain_s40", "base_r0.3"]


def test_pretrain_length_with_fixed_total():
  exp = make({"kind": "pretrain_length", "pretrain_steps": [10, 30],
              "total_steps": 50, "rates": [0.5]})
  steps = {f"{r.name}/{p.name}": p.steps for r in exp.runs for p in r.phases}
  assert steps == {"pretrain_s10/pretrain": 10, "ptjf_p10_r0.5/finetune": 40,
                   "pretrain_s30/pretrain": 30, "ptjf_p30_r0.5/finetune": 20}


def test_many_tasks_take_a_temperature():
  exp = make({"kind": "ptjf", "pretrain_steps": 20, "finetune_steps": 10,
              "taus": [3.33]},
             high="span_corruption_en",
             low=["span_corruption_gd", "span_corruption_sw"])
  fine = exp.runs[1].phases[0]
  assert exp.runs[1].name == "ptjf_t3.33"
  assert fine.tau == 3.33 and fine.rates is None and len(fine.tasks) == 3


def test_explicit_runs_and_dependency_order():
  runs = [{"name": "b", "phase": [{"name": "ft", "tasks": ["translate_en_ro"],
                                   "steps": 5, "from": "a/pre"}]},
          {"name": "a", "phase": [
              {"name": "pre", "tasks": "translate_en_fr", "steps": 5},
              {"name": "more", "tasks": "translate_en_fr", "steps": 5,
               "start": "continue", "from": "pre"}]}]
  exp = plan.parse_plan({"experiment": EXPERIMENT, "run": runs})
  assert plan.order(exp) == ["a/pre", "b/ft", "a/more"]
  assert plan.order(exp, plan.run_keys(exp, ["b"])) == ["a/pre", "b/ft"]


@pytest.mark.parametrize("sweep, message", [
    ({"kind": "ptjfx"}, "unknown sweep kind 'ptjfx'"),
    ({"kind": "ptjf", "pretrain_steps": 10, "finetune_steps": 5,
      "rates": [0.5], "rate": 3}, "unknown field 'rate'"),
    ({"kind": "ptjf", "pretrain_steps": 0, "finetune_steps": 5,
      "rates": [0.5]}, "pretrain_steps = 0 is not a positive"),
    ({"kind": "scalarization", "steps": 10, "rates": [1.0]},
     "rate 1.0 is outside (0, 1)"),
    ({"kind": "scalarization", "steps": 10, "rates": [0]},
     "rate 0 is outside (0, 1)"),
    ({"kind": "scalarization", "steps": 10}, "has no mixture grid"),
    ({"kind": "pretrain_length", "pretrain_steps": [10, 60], "total_steps": 50,
      "rates": [0.5]}, "total_steps - pretrain_steps 60 = -10"),
])
def test_sweep_errors_are_one_line(sweep, message):
  with pytest.raises(UserError, match=None) as e:
    make(sweep)
  assert message in str(e.value) and "\n" not in str(e.value)


SCHEDULE = {"kind": "schedule", "steps": 1000, "rates": [[0.05, 0.6]]}
AUTO = {"kind": "ptjf", "pretrain_steps": "auto", "max_pretrain_steps": 1600,
        "patience": 3, "min_delta": 0.01, "finetune_steps": 200, "rates": [0.1]}


@pytest.mark.parametrize("sweep, message", [
    ({**SCHEDULE, "rates": [[0.05, 1.2]]}, "rate 1.2 is outside (0, 1)"),
    ({**SCHEDULE, "rates": [0.05, 0.6]}, "a list of [start, end] low-task rates"),
    ({**SCHEDULE, "shape": "cosine"}, "unknown schedule shape 'cosine': use one of linear, step"),
    ({**SCHEDULE, "shape": "step"}, "needs switch_step"),
    ({**SCHEDULE, "shape": "step", "switch_step": 1000},
     "switch_step 1000 is outside the phase's steps: give a whole number between 1 and 999"),
    ({**SCHEDULE, "switch_step": 500}, "switch_step is for shape = \"step\""),
    ({**SCHEDULE, "segments": 0}, "segments = 0 is not a positive"),
    ({"kind": "scalarization", "steps": 10, "rates": [0.5], "shape": "step"},
     "shape is a key of kind = \"schedule\": drop it, or use that kind"),
    ({**AUTO, "patience": 0}, "patience = 0: give the number of evaluations"),
    ({**AUTO, "min_delta": -0.1}, "min_delta = -0.1: give the least loss decrease"),
    ({**AUTO, "max_pretrain_steps": 50},
     "max_pretrain_steps = 50 is below EVAL_PERIOD (100), so the rule never looks"),
    ({**AUTO, "pretrain_steps": 400}, "max_pretrain_steps, min_delta, patience go with "
     "pretrain_steps = \"auto\""),
    ({"kind": "restart", "pretrain_steps": 10, "finetune_steps": 5, "rates": [0.5],
      "patience": 2}, "patience is a key of kind = \"ptjf\""),
])
def test_schedule_and_auto_errors_are_one_line(sweep, message):
  with pytest.raises(UserError) as e:
    make(sweep)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_automatic_switch_is_refused_on_t5x_naming_the_alternative():
  with pytest.raises(UserError, match="runs on the local engine only; on engine \"t5x\" give "
                     "pretrain_steps the step a local run chose"):
    make(AUTO, engine="t5x")


def test_a_schedule_is_one_phase_locally_holding_its_mean_rates():
  exp = make(SCHEDULE, {**SCHEDULE, "rates": [[0.1, 0.4]], "shape": "step", "switch_step": 800})
  assert [r.name for r in exp.runs] == ["sched_lin_r0.05-0.6", "sched_step_r0.1-0.4_at800"]
  (linear,), (step,) = (r.phases for r in exp.runs)
  assert exp.runs[0].method == "schedule" and linear.steps == 1000
  assert linear.rates == (0.675, 0.325) and step.rates == (0.84, 0.16)
  assert linear.schedule.record(linear.tasks) == {
      "shape": "linear", "start": {"translate_en_fr": 0.95, "translate_en_ro": 0.05},
      "end": {"translate_en_fr": 0.4, "translate_en_ro": 0.6}, "steps": 1000}
  assert step.schedule.sampler(step.tasks).rates(799)["translate_en_ro"] == 0.1
  assert "  linear schedule: translate_en_ro rate 0.05 -> 0.6 over 1000 steps" in (
      plan.cost_lines(exp, plan.order(exp)))


def test_on_t5x_a_schedule_is_chained_continue_phases_holding_each_segment_s_rates():
  exp = make({**SCHEDULE, "segments": 4}, {**SCHEDULE, "rates": [[0.1, 0.4]], "shape": "step",
                                           "switch_step": 800}, engine="t5x")
  linear = exp.runs[0].phases
  assert [(p.name, p.start, p.parent, p.steps) for p in linear] == [
      ("seg1", "scratch", None, 250),
      ("seg2", "continue", "sched_lin_r0.05-0.6/seg1", 500),
      ("seg3", "continue", "sched_lin_r0.05-0.6/seg2", 750),
      ("seg4", "continue", "sched_lin_r0.05-0.6/seg3", 1000)]
  # Each holds its segment's mean: the schedule at the segment's middle (0.05 + 0.55 x 1/8 ...).
  assert [p.rates[1] for p in linear] == pytest.approx([0.11875, 0.25625, 0.39375, 0.53125])
  assert all(dict(p.overrides)["SCHEDULE_STEPS"] == 1000 for p in linear)  # one LR schedule
  assert [(p.steps, p.rates[1]) for p in exp.runs[1].phases] == [(800, 0.1), (1000, 0.4)]
  lines = plan.cost_lines(exp, plan.order(exp))
  assert "sched_lin_r0.05-0.6                1000 steps" in lines   # counted once, not 2,500
  assert any("as 4 `continue` phases on T5X holding translate_en_ro rates 0.119, 0.256, "
             "0.394, 0.531" in l for l in lines)


def test_auto_pretraining_names_its_rule_and_counts_its_most():
  exp = make(AUTO, {"kind": "ptjf", "pretrain_steps": 800, "finetune_steps": 200,
                    "rates": [0.1]}, overrides={"EVAL_PERIOD": 100})
  assert [r.name for r in exp.runs] == ["pretrain_auto1600_pat3_delta0.01", "ptjf_auto_r0.1",
                                        "pretrain_s800", "ptjf_r0.1"]
  pre = exp.runs[0].phases[0]
  assert pre.steps == 1600 and pre.stop == plan.Plateau("translate_en_fr", 3, 0.01, 100)
  assert exp.runs[1].phases[0].parent == "pretrain_auto1600_pat3_delta0.01/pretrain"
  lines = plan.cost_lines(exp, plan.order(exp))
  assert ("  pretrain: stops at the first evaluation (every 100 steps) where translate_en_fr "
          "validation loss has not improved by >= 0.01 for 3 evaluations, else at 1600 "
          "(counted above at its most, 1600)") in lines


def test_unimax_budget_is_what_each_phase_draws():
  exp = make({"kind": "ptjf", "pretrain_steps": 40, "finetune_steps": 10,
              "unimax": [1, 4]},
             {"kind": "scalarization", "steps": 30, "unimax": [1],
              "unimax_budget": 240})
  assert exp.phases()["ptjf_u4/finetune"][1].unimax == (10 * 8, 4.0)
  assert exp.phases()["scal_u1/main"][1].unimax == (240, 1.0)
  (run,) = make(runs=[{"name": "mine", "phase": [
      {"tasks": ["a", "b"], "steps": 5, "unimax": {"max_epochs": 2}}]}]).runs
  assert run.phases[0].unimax == (40, 2.0)
  with pytest.raises(UserError, match="UniMax budget 100 examples, but the "
                     "phase draws 30 steps x batch 8 = 240: drop the budget"):
    make({"kind": "scalarization", "steps": 30, "unimax": [1],
          "unimax_budget": 100})
  with pytest.raises(UserError, match="has taus and unimax: give one"):
    make({"kind": "scalarization", "steps": 3, "unimax": [1], "taus": [2]})


def test_plan_errors():
  with pytest.raises(UserError, match="has no 'low'"):
    plan.parse_plan({"experiment": {"name": "x", "high": "a"},
                     "sweep": [{"kind": "scalarization"}]})
  with pytest.raises(UserError, match="unknown field 'modle' in"):
    make({"kind": "scalarization", "steps": 1, "rates": [0.5]}, modle="x")
  with pytest.raises(UserError, match="feature_lengths = {'inputs': 0}"):
    make({"kind": "scalarization", "steps": 1, "rates": [0.5]},
         feature_lengths={"inputs": 0})
  with pytest.raises(UserError, match="unknown engine 'tpu'"):
    make({"kind": "scalarization", "steps": 1, "rates": [0.5]}, engine="tpu")
  with pytest.raises(UserError, match="give one positive rate per task"):
    plan.parse_plan({"experiment": EXPERIMENT, "run": [
        {"name": "b", "phase": [{"tasks": ["a", "b"], "steps": 5,
                                 "rates": [1, "x"]}]}]})
  with pytest.raises(UserError, match="has 2 tasks but no rates, tau or unimax"):
    plan.parse_plan({"experiment": EXPERIMENT, "run": [
        {"name": "b", "phase": [{"tasks": ["a", "b"], "steps": 5}]}]})
  with pytest.raises(UserError, match="unknown phase 'nope/pre'"):
    plan.parse_plan({"experiment": EXPERIMENT, "run": [
        {"name": "b", "phase": [{"tasks": "t", "steps": 5,
                                 "from": "nope/pre"}]}]})
  with pytest.raises(UserError, match="cycle: a/x -> b/y -> a/x"):
    plan.parse_plan({"experiment": EXPERIMENT, "run": [
        {"name": "a", "phase": [{"name": "x", "tasks": "t", "steps": 5,
                                 "from": "b/y"}]},
        {"name": "b", "phase": [{"name": "y", "tasks": "t", "steps": 5,
                                 "from": "a/x"}]}]})
  with pytest.raises(UserError,
                     match="two different runs are named 'scal_r0.5'"):
    make({"kind": "scalarization", "steps": 1, "rates": [0.5]},
         {"kind": "scalarization", "steps": 2, "rates": [0.5]})
  exp = make({"kind": "scalarization", "steps": 1, "rates": [0.5]})
  with pytest.raises(UserError, match="no run 'scal_r0.4'.*scal_r0.5"):
    plan.run_keys(exp, ["scal_r0.4"])


def test_builtin_plans_load_and_overrides_apply(tmp_path):
  names = sorted(p.stem for p in
                 (pathlib.Path(plan.__file__).parent / "plans").glob("*.toml"))
  assert {"demo", "ro_fr", "hi_fr", "zh_fr", "mc4_lm", "pretrain_length",
          "dropout_control", "transfer_only"} <= set(names)
  for name in names:
    assert plan.load_plan(name).runs
  demo = plan.load_plan("demo", corpus_dir=str(tmp_path))
  assert demo.corpus_dir == str(tmp_path)
  transfer = plan.load_plan("transfer_only")
  pretrains = [r for r in transfer.runs if r.phases[0].name == "pretrain"]
  assert len(pretrains) == 1   # shared by the transfer and PTJF fine-tunes
  with pytest.raises(UserError, match="no plan file or built-in plan 'dem'"):
    plan.load_plan("dem")
  bad = tmp_path / "bad.toml"
  bad.write_text("[experiment\n")
  with pytest.raises(UserError, match="not valid TOML"):
    plan.load_plan(bad)
