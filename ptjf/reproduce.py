"""`ptjf reproduce NAME`: one experiment of the small-scale reproduction suite.

Each entry of `RECIPES` names a built-in plan (launch/plans/<plan>.toml), the
corpus it trains on (built from this machine's gettext catalogs, with the
low-resource pairs subsampled as the paper's ratios ask) and the tasks whose
validation loss it reports. For every seed the plan runs into
RUNS_DIR/<name>/seed<N> (RANDOM_SEED = N: initialisation, data order,
dropout), gets its report, and the seeds' best losses go into one markdown
table, RUNS_DIR/<name>/results.md, printed at the end:

    ptjf reproduce --list
    ptjf reproduce small_zh_fr --seeds 0,1,2 --jobs 2

Finished phases are reused, so after a kill the same command resumes.
"""
import argparse
import dataclasses
import pathlib
import re
import statistics
import time

from ptjf.errors import UserError


@dataclasses.dataclass(frozen=True)
class Recipe:
  """One experiment of the suite.

  plan: built-in plan name; corpus_dir / subsample: the corpus it reads
  (`ptjf corpus build` options); tasks: tasks whose best final validation
  loss is tabulated, the low-resource one first; claim: what the paper says;
  experiment: [experiment] keys replaced in the plan (its name, low task).
  """
  plan: str
  corpus_dir: str
  subsample: dict[str, float]
  tasks: tuple[str, ...]
  claim: str
  experiment: dict[str, str] = dataclasses.field(default_factory=dict)


VOCAB_SIZE = 4000  # SentencePiece pieces of every suite corpus
DEMO_CORPUS = ("data/demo_corpus", {"ro": 0.0015})
RECIPES: dict[str, Recipe] = {
    "demo": Recipe(
        "demo", *DEMO_CORPUS, ("translate_en_ro", "translate_en_fr"),
        "En-Ro subsampled to 0.15% of En-Fr: PTJF beats the scalarization front "
        "on En-Ro (paper Fig. 3)"),
    "small_zh_fr": Recipe(
        "demo", *DEMO_CORPUS, ("translate_en_zh_cn", "translate_en_fr"),
        "two high-resource pairs (En-Zh 70% of En-Fr): no PTJF benefit "
        "(paper Fig. 2 left)",
        {"name": "small_zh_fr", "low": "translate_en_zh_cn"}),
    "small_hi_fr": Recipe(
        "demo", "data/corpus_hi", {"ro": 0.0015, "hi": 0.0015},
        ("translate_en_hi", "translate_en_fr"),
        "En-Hi subsampled to 0.15% of En-Fr, as the demo's En-Ro: PTJF "
        "beats the scalarization front (Fig. 2 right)",
        {"name": "small_hi_fr", "low": "translate_en_hi"}),
    "small_hi_fr_natural": Recipe(
        "demo", *DEMO_CORPUS, ("translate_en_hi", "translate_en_fr"),
        "En-Hi at its natural 10% of En-Fr here: a smaller PTJF gain expected",
        {"name": "small_hi_fr_natural", "low": "translate_en_hi"}),
    "small_ro_fr_natural": Recipe(
        "demo", "data/corpus_natural", {}, ("translate_en_ro", "translate_en_fr"),
        "En-Ro at its natural size here: a smaller PTJF gain expected",
        {"name": "small_ro_fr_natural"}),
    "small_lm": Recipe(
        "small_lm", *DEMO_CORPUS,
        ("span_corruption_ro", "span_corruption_gd", "span_corruption_gu",
         "span_corruption_hi", "span_corruption_en"),
        "span corruption, En huge and four small languages, tau 3.33: PTJF "
        "beats temperature sampling and restart on the small ones (Fig. 8)"),
    "small_pretrain_length": Recipe(
        "small_pretrain_length", *DEMO_CORPUS,
        ("translate_en_ro", "translate_en_fr"),
        "longer pre-training helps PTJF on both tasks (Fig. 9 right)"),
    "small_dropout": Recipe(
        "small_dropout", *DEMO_CORPUS, ("translate_en_ro", "translate_en_fr"),
        "more dropout does not give scalarization PTJF's gain (Fig. 5)"),
    "small_transfer": Recipe(
        "small_transfer", *DEMO_CORPUS, ("translate_en_ro", "translate_en_fr"),
        "fine-tuning on En-Ro alone forgets En-Fr and does worse on En-Ro "
        "than PTJF's joint fine-tune (Fig. 6)"),
    "small_schedule": Recipe(
        "small_schedule", *DEMO_CORPUS, ("translate_en_ro", "translate_en_fr"),
        "beyond the paper (its App. C): En-Ro rate schedules (linear, a step at 800) against "
        "scalarization and PTJF at the demo's 800+200 and with an automatic switch (at most "
        "1,600): does a schedule match PTJF, and where does the rule switch?"),
}

_RATE_PART = re.compile(r"_(?:r|t)[0-9.]+(?:-[0-9.]+)?")


def series_name(run: str) -> str:
  """A run's name without its mixing rate: the points of one series.

  >>> [series_name(r) for r in ("scal_r0.5_d0.2", "ptjf_p500_r0.8", "scal_t3.33",
  ...                            "sched_lin_r0.05-0.6")]
  ['scal_d0.2', 'ptjf_p500', 'scal', 'sched_lin']
  """
  return _RATE_PART.sub("", run)


def best_by_series(runs_dir: pathlib.Path, task: str) -> dict[str, float]:
  """Lowest final validation loss on `task` per series of runs under runs_dir."""
  from ptjf.analysis import events, numbers
  phases, rows = events.read_runs(runs_dir)
  best: dict[str, float] = {}
  for point in numbers.run_points(phases, rows):
    loss = numbers.low_loss(point, task)
    if loss is not None:
      name = series_name(point.run)
      best[name] = min(loss, best.get(name, loss))
  return best


def seeds_table(best: dict[int, dict[tuple[str, str], float]]) -> str:
  """Markdown: per (series, task) the seeds' losses, mean and spread.

  >>> print(seeds_table({0: {("ptjf", "ro"): 2.0}, 1: {("ptjf", "ro"): 2.5}}))
  | series | task | seed 0 | seed 1 | mean | spread (max - min) |
  |---|---|---|---|---|---|
  | ptjf | ro | 2.000 | 2.500 | 2.250 | 0.500 |
  """
  seeds = sorted(best)
  keys = sorted({k for losses in best.values() for k in losses},
                key=lambda k: (k[1], k[0]))
  lines = ["| series | task | " + " | ".join(f"seed {s}" for s in seeds)
           + " | mean | spread (max - min) |",
           "|---|---|" + "---|" * len(seeds) + "---|---|"]
  for series, task in keys:
    values = [best[s].get((series, task)) for s in seeds]
    known = [v for v in values if v is not None]
    cells = ["-" if v is None else f"{v:.3f}" for v in values]
    summary = ([f"{statistics.mean(known):.3f}",
                f"{max(known) - min(known):.3f}"] if known else ["-", "-"])
    lines.append(f"| {series} | {task} | " + " | ".join(cells + summary) + " |")
  return "\n".join(lines)


def check_seeds(seeds: list[int]) -> None:
  """Raises UserError for a negative seed (JAX, numpy and the data order need >= 0)."""
  negative = [s for s in seeds if s < 0]
  if negative:
    raise UserError(f"seed {negative[0]} is negative: use seeds >= 0 (e.g. 0,1,2)")


def run_seed(recipe: Recipe, runs_dir: pathlib.Path, seed: int,
             jobs: int = 1) -> pathlib.Path:
  """Corpus (if not built) -> the plan at RANDOM_SEED = seed -> report; returns
  the report's path. Raises UserError if a phase failed."""
  check_seeds([seed])
  from ptjf.analysis import report
  from ptjf.launch import execute, plan
  from ptjf.tasks import corpus
  corpus_dir = pathlib.Path(recipe.corpus_dir)
  corpus.build_corpus(corpus_dir, subsample=recipe.subsample or None,
                      vocab_size=VOCAB_SIZE)
  exp = plan.load_plan(recipe.plan, **recipe.experiment)
  exp.overrides = {**exp.overrides, "RANDOM_SEED": seed}
  summary = execute.run_plan(exp, runs_dir, corpus_dir=str(corpus_dir),
                             jobs=jobs)
  if not summary.ok:
    raise UserError(f"{len(summary.failed) + len(summary.skipped)} phases of "
                    f"{recipe.plan} failed or were skipped (logs listed above): "
                    "re-run the same command to resume them")
  return report.write_report(runs_dir, low_task=recipe.tasks[0])


def reproduce(name: str, seeds: list[int], runs_root: pathlib.Path,
              jobs: int = 1) -> str:
  """Runs every seed of RECIPES[name]; writes and returns the results table."""
  if name not in RECIPES:
    raise UserError(f"unknown experiment {name!r}: choose from "
                    f"{', '.join(RECIPES)} (`ptjf reproduce --list`)")
  check_seeds(seeds)
  recipe = RECIPES[name]
  best: dict[int, dict[tuple[str, str], float]] = {}
  walls: list[str] = []
  for seed in seeds:
    start = time.time()
    runs_dir = runs_root / name / f"seed{seed}"
    print(f"reproduce {name}: seed {seed} into {runs_dir}", flush=True)
    page = run_seed(recipe, runs_dir, seed, jobs)
    walls.append(f"seed {seed} {time.time() - start:.0f} s")
    print(f"reproduce {name}: seed {seed} done ({walls[-1]}), report {page}",
          flush=True)
    best[seed] = {(series, task): loss for task in recipe.tasks
                  for series, loss in best_by_series(runs_dir, task).items()}
  from ptjf.tasks import corpus
  table = (f"# {name}\n\nClaim: {recipe.claim}.\nPlan `{recipe.plan}`, corpus "
           f"`{recipe.corpus_dir}` (hash {corpus.corpus_hash(recipe.corpus_dir)}); "
           f"wall time (this invocation, finished phases reused): "
           f"{', '.join(walls)}, {jobs} phase(s) at a time.\nBest final "
           f"validation loss per series (lowest over its rates), per target "
           f"token.\n\n{seeds_table(best)}\n")
  out = runs_root / name / "results.md"
  out.write_text(table)
  return table


def _reproduce(args: argparse.Namespace) -> int:
  if args.list or not args.name:
    for name, recipe in RECIPES.items():
      print(f"{name:22s} plan {recipe.plan:22s} {recipe.claim}")
    return 0
  try:
    seeds = [int(s) for s in args.seeds.split(",")]
  except ValueError:
    raise UserError(f"--seeds {args.seeds!r}: write integers like 0,1,2") from None
  print(reproduce(args.name, seeds, pathlib.Path(args.runs_dir), args.jobs))
  return 0


def register(subparsers) -> None:
  """Adds `ptjf reproduce` to the `ptjf` parser."""
  parser = subparsers.add_parser(
      "reproduce", help="one experiment of the small-scale reproduction suite, "
      "over seeds", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("name", nargs="?", help="experiment (see --list)")
  parser.add_argument("--list", action="store_true", help="list the suite")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--runs-dir", default="runs")
  parser.add_argument("--jobs", type=int, default=2,
                      help="phases trained at the same time (default 2)")
  parser.set_defaults(func=_reproduce)
