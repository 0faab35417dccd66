"""The report on a synthetic sweep: numbers, figures, page, CLI, screenshot."""
import csv
import json
import pathlib
import re
import shutil

import pytest

import browser

from ptjf import cli
from ptjf.analysis import events
from ptjf.analysis import numbers
from ptjf.analysis import report
from ptjf.errors import UserError

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "t5x_real"


def test_sweep_numbers(sweep_dir):
  phases, rows = events.read_runs(sweep_dir)
  n = numbers.experiment_numbers(phases, rows)
  assert n["low_task"] == "translate_en_ro"  # fewest examples (task_sizes)
  # Two scalarization lengths are told apart by total steps.
  assert set(n["best_low_loss"]) == {"ptjf", "restart", "scalarization 400",
                                     "scalarization 500"}
  assert n["best_run"]["ptjf"] == "ptjf_300_0.5"
  scal_best = min(n["best_low_loss"]["scalarization 400"],
                  n["best_low_loss"]["scalarization 500"])
  assert n["ptjf_gain_abs"] == pytest.approx(
      scal_best - n["best_low_loss"]["ptjf"])
  assert n["ptjf_gain_pct"] == pytest.approx(
      100 * n["ptjf_gain_abs"] / scal_best)
  assert n["ptjf_gain_abs"] > 0
  # Both pre-trainings (200 + 300) once, plus 4 fine-tunes of 100.
  assert n["compute_steps"]["ptjf"] == 900
  assert n["compute_steps"]["scalarization 400"] == 4 * 400
  assert n["compute_steps"]["restart"] == 400
  assert n["ptjf_points"] == 4 and 1 <= n["ptjf_non_dominated"] <= 4
  assert n["reach_target"] == scal_best  # the higher of the two bests
  assert 0 < n["ptjf_examples_to_reach"] < n["scalarization_examples_to_reach"]


def test_low_task_override_and_bad_name(sweep_dir):
  losses = report.best_low_resource_losses(sweep_dir)
  assert set(losses) == {"ptjf", "restart", "scalarization"}
  assert losses["ptjf"] < losses["scalarization"]
  high = report.best_low_resource_losses(sweep_dir, low_task="translate_en_fr")
  assert high["scalarization"] < losses["scalarization"]
  with pytest.raises(UserError, match="not a task of these runs"):
    report.best_low_resource_losses(sweep_dir, low_task="xx")


def test_write_report_page_figures_tables(sweep_dir, tmp_path):
  page = report.write_report(sweep_dir, tmp_path / "out")
  assert page == tmp_path / "out" / "report.html"
  html = page.read_text()
  for kind in ("tradeoff", "efficiency", "pretrain_ablation", "bleu"):
    assert (tmp_path / "out" / f"nmt_{kind}.png").stat().st_size > 5000
    assert (tmp_path / "out" / f"nmt_{kind}.svg").is_file()
  assert html.count("data:image/png;base64,") == 4
  assert "<details>" in html and "c0ffee" in html and "BATCH_SIZE" in html
  assert "scal_long_0.15" in html
  # The runs table marks runs no scalarization run dominates: scal_0.5 is
  # dominated (worse on both tasks than scal_0.15), the best PTJF run is not.
  row = lambda run: re.search(f"<tr><td>{run}</td>.*?</tr>", html).group(0)
  assert row("scal_0.5").endswith("<td></td></tr>")
  assert row("ptjf_300_0.5").endswith("<td>yes</td></tr>")
  with open(tmp_path / "out" / "scalars.csv") as f:
    table = list(csv.DictReader(f))
  ro = [r for r in table if r["run"] == "ptjf_300_0.5" and r["metric"] == "loss"
        and r["split"] == "validation" and r["task"] == "translate_en_ro"]
  assert [int(r["global_step"]) for r in ro] == [350, 400]
  assert json.loads(ro[0]["rates"])["translate_en_ro"] == 0.5
  md = (tmp_path / "out" / "report.md").read_text()
  assert "| ptjf |" in md and "lower (" in md
  # The first line after the title says whether PTJF won, and by how much.
  assert md.splitlines()[2].startswith("**nmt: PTJF won on translate_en_ro: best validation loss")
  assert html.index("class=verdict>nmt: PTJF won") < html.index("<h2>")


def test_cli_prints_page_path_last(sweep_dir, tmp_path, capsys):
  assert cli.main(["report", str(sweep_dir), "--out",
                   str(tmp_path / "r")]) == 0
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert last == str(tmp_path / "r" / "report.html")


def test_cli_no_runs_is_one_line_error(tmp_path, capsys):
  assert cli.main(["report", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "no runs" in err[0]


def test_multi_language_experiment_gets_language_bars(lm_runs_dir):
  runs_dir = lm_runs_dir
  phases, rows = events.read_runs(runs_dir)
  # No task_sizes: the low task is the smallest mean scalarization rate.
  assert numbers.low_resource_task(phases) == "span_corruption_gd"
  page = report.write_report(runs_dir)
  assert page == runs_dir / "report" / "report.html"
  assert (runs_dir / "report" / "lm_languages.png").stat().st_size > 5000
  assert (runs_dir / "report" / "lm_tradeoff.png").is_file()


def test_report_on_real_t5x_logdir(tmp_path):
  page = report.write_report(FIXTURE, tmp_path)
  assert "rate_0.7" in page.read_text()
  assert report.best_low_resource_losses(FIXTURE)["ptjf"] > 0


@pytest.mark.slow
@browser.needs_chromium
def test_page_screenshot_is_not_blank(sweep_dir, tmp_path):
  page = report.write_report(sweep_dir, tmp_path / "out")
  assert browser.screenshot_colours(page, tmp_path) > 200


def test_single_task_experiment_is_listed_not_fatal(sweep_dir, tmp_path):
  runs_dir = tmp_path / "runs"
  shutil.copytree(sweep_dir, runs_dir, ignore=shutil.ignore_patterns("report"))
  solo = runs_dir / "solo" / "fr_only" / "main"
  shutil.copytree(FIXTURE / "pretrain", solo)
  (solo / "ptjf_phase.json").write_text(json.dumps(
      {"experiment": "solo", "run": "fr_only", "method": "transfer",
       "phase": "main", "rates": {"translate_en_fr": 1.0}, "steps": 6,
       "batch_size": 8}))
  html = report.write_report(runs_dir).read_text()
  assert ("<h2>solo</h2><p>not analysed: cannot tell the low-resource task"
          in html)
  assert "nmt_tradeoff" in html
  assert "transfer" not in report.best_low_resource_losses(runs_dir)
  with pytest.raises(UserError, match="pass --low-task"):
    report.write_report(runs_dir / "solo")


def test_report_on_bare_ptjf_train_logdirs(bare_train_runs):
  """`ptjf train` alone writes no ptjf_phase.json: tasks and rates come from the
  mixture's evaluation folder, and --low-task can name one of them."""
  high, low = "translate_en_fr", "translate_en_ro"
  phases, rows = events.read_runs(bare_train_runs)
  assert {p.path.name: p.rates for p in phases} == {"a": {high: 0.7, low: 0.3},
                                                     "b": {high: 0.5, low: 0.5}}
  assert numbers.experiment_numbers(phases, rows)["low_task"] == low
  assert numbers.experiment_numbers(phases, rows, high)["low_task"] == high
  report.write_report(bare_train_runs, low_task=low)


def test_schedules_and_the_automatic_switch_are_methods_of_their_own(schedule_runs_dir,
                                                                     tmp_path):
  runs_dir = schedule_runs_dir
  phases, rows = events.read_runs(runs_dir)
  n = numbers.experiment_numbers(phases, rows)
  assert set(n["best_low_loss"]) == {"scalarization", "schedule", "ptjf auto"}
  # Local 400 steps, and T5X's two segments 200 + 200 (the second counts on from 200).
  assert n["compute_steps"]["schedule"] == 800
  assert n["compute_steps"]["ptjf auto"] == 250 + 150   # pre-training to its switch step
  assert n["switch_steps"] == {"pretrain_auto400_pat2_delta0.01": (250, 400)}
  points = {p.run: p for p in numbers.run_points(phases, rows)}
  assert points["sched_t5x_r0.1-0.5"].total_steps == 400
  assert points["ptjf_auto_r0.2"].total_steps == 400 and points["ptjf_auto_r0.2"].parent_steps == 250
  seg2 = [r for r in rows if r.run == "sched_t5x_r0.1-0.5" and r.phase == "seg2"]
  assert max(r.global_step for r in seg2) == 400
  assert min(r.examples_seen for r in seg2 if r.task == "translate_en_ro") == 50 * 16 * 0.4
  page = report.write_report(runs_dir, tmp_path / "out")
  md = (tmp_path / "out" / "report.md").read_text()
  assert "| schedule |" in md and "| ptjf auto |" in md
  assert ("automatic switch: pretrain_auto400_pat2_delta0.01 stopped pre-training at step 250 "
          "of at most 400") in md
  assert (tmp_path / "out" / "sched_efficiency.png").is_file() and page.is_file()


def test_summary_names_methods_below_ptjf_and_a_switch_that_never_fired():
  """A schedule that beat PTJF is said, not hidden under "PTJF won"; a pre-training that
  reached its maximum is not reported as stopped by its rule."""
  n = {"experiment": "s", "low_task": "ro", "ptjf_best_low": 4.65,
       "scalarization_best_low": 5.29, "ptjf_gain_abs": 0.64, "ptjf_gain_pct": 12.1,
       "reach_target": 5.29, "ptjf_examples_to_reach": 650,
       "scalarization_examples_to_reach": 1260, "below_ptjf": {"schedule": 4.58},
       "switch_steps": {"pretrain_auto1600": (1600, 1600), "pretrain_auto800": (500, 800)}}
  assert numbers.verdict(n).endswith("(0.64 lower, 12.1%), but lower than PTJF: schedule 4.58")
  lines = numbers.summary_lines(n)
  assert "best low-resource validation loss below PTJF's (4.65): schedule 4.58" in lines
  assert ("automatic switch: pretrain_auto1600 ran to its maximum, 1600 steps (the high "
          "task's loss never stopped improving)") in lines
  assert "automatic switch: pretrain_auto800 stopped pre-training at step 500 of at most 800" in lines
