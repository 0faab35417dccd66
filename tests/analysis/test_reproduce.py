"""`ptjf reproduce`: seeds' best losses per series, the results table, errors."""
import pytest

from ptjf import cli, reproduce

HIGH, LOW = "translate_en_fr", "translate_en_ro"


def test_best_by_series_takes_the_lowest_final_loss_over_rates(tmp_path, plan_shaped_runs):
  plan_shaped_runs(tmp_path, low_bonus=0.0)
  best = reproduce.best_by_series(tmp_path, LOW)
  assert set(best) == {"scal", "ptjf"}   # a pre-training is part of its PTJF runs
  assert best["scal"] == min(reproduce.best_by_series(tmp_path / "demo" / "scal_r0.2", LOW)["scal"],
                             reproduce.best_by_series(tmp_path / "demo" / "scal_r0.5", LOW)["scal"])


def test_reproduce_writes_one_table_over_seeds(tmp_path, monkeypatch, capsys,
                                               plan_shaped_runs):
  def fake_run_seed(recipe, runs_dir, seed, jobs):
    assert recipe.plan == "demo" and jobs == 2
    plan_shaped_runs(runs_dir, low_bonus=0.1 * seed)
    return runs_dir / "report" / "report.html"
  monkeypatch.setattr(reproduce, "run_seed", fake_run_seed)
  from ptjf.tasks import corpus
  monkeypatch.setattr(corpus, "corpus_hash", lambda corpus_dir: "c0ffee")
  assert cli.main(["reproduce", "demo", "--seeds", "0,1",
                   "--runs-dir", str(tmp_path)]) == 0
  table = (tmp_path / "demo" / "results.md").read_text()
  assert table in capsys.readouterr().out
  rows = {tuple(c.strip() for c in line.split("|")[1:3]): line
          for line in table.splitlines() if line.startswith("| ")}
  ptjf = rows[("ptjf", LOW)].split("|")
  seed0, seed1, spread = float(ptjf[3]), float(ptjf[4]), float(ptjf[6])
  assert seed0 - seed1 == pytest.approx(0.1, abs=1e-3)
  assert spread == pytest.approx(0.1, abs=1e-3)
  assert ("scal", HIGH) in rows and "| seed 0 | seed 1 |" in table
  assert "(hash c0ffee)" in table and "2 phase(s) at a time" in table


def test_unknown_experiment_and_bad_seeds_are_one_line_errors(tmp_path, capsys):
  assert cli.main(["reproduce", "small_zh", "--runs-dir", str(tmp_path)]) == 2
  assert "unknown experiment 'small_zh'" in capsys.readouterr().err
  assert cli.main(["reproduce", "demo", "--seeds", "a"]) == 2
  assert "--seeds 'a'" in capsys.readouterr().err
  assert cli.main(["reproduce", "demo", "--seeds", "0,-1", "--runs-dir", str(tmp_path)]) == 2
  assert "seed -1 is negative" in capsys.readouterr().err
  assert cli.main(["demo", "--seed", "-1", "--runs-dir", str(tmp_path / "d")]) == 2
  assert "seed -1 is negative" in capsys.readouterr().err
  assert not any(tmp_path.iterdir())  # nothing built or trained
  assert cli.main(["reproduce", "--list"]) == 0
  listed = capsys.readouterr().out
  assert all(name in listed for name in reproduce.RECIPES)


def test_every_recipe_loads_its_plan_and_names_real_tasks():
  from ptjf.launch import plan
  from ptjf.tasks import corpus, layout
  langs = (*corpus.DEFAULT_LANGS, "en")
  real = ({layout.translate_task_name(lang) for lang in langs}
          | {layout.span_corruption_task_name(lang) for lang in langs})
  for name, recipe in reproduce.RECIPES.items():
    assert set(recipe.tasks) <= real, name
    exp = plan.load_plan(recipe.plan, **recipe.experiment)
    tasks = {t for run in exp.runs for p in run.phases for t in p.tasks}
    assert set(recipe.tasks) <= tasks, name


def test_demo_never_rebuilds_a_corpus_another_process_s_sweep_reads(
    tmp_path, monkeypatch, capsys, corpus_reader):
  import functools
  from mo_writer import write_mo
  from ptjf.tasks import corpus
  locale = tmp_path / "locale"
  for lang, n in (("fr", 300), ("ro", 200)):
    write_mo(locale, lang, "one", {f"Message number {i}": f"{lang} message {i}" for i in range(n)})
  build = functools.partial(corpus.build_corpus, langs=["fr", "ro"], locale_dir=locale,
                            validation_size=10, test_size=10)
  root = tmp_path / "demo_corpus"
  build(root, vocab_size=400)   # built before the catalogs or options changed
  manifest = (root / "manifest.json").read_text()
  proc = corpus_reader(root)    # another process's sweep trains on it
  monkeypatch.setattr(corpus, "build_corpus", build)
  monkeypatch.setattr(reproduce, "VOCAB_SIZE", 300)   # so the demo's corpus is out of date
  runs = tmp_path / "runs"
  assert cli.main(["demo", "--corpus-dir", str(root), "--runs-dir", str(runs)]) == 2
  assert capsys.readouterr().err.strip() == (
      f"ptjf: error: corpus {root} is in use by training runs/x/main (pid {proc.pid}): build "
      "into another folder (ptjf corpus build --out, ptjf demo --corpus-dir), or wait until "
      "they finish")
  assert (root / "manifest.json").read_text() == manifest and not runs.exists()
