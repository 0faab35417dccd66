"""`ptjf demo`: the README's main command: real corpus, real training, a report.

1. builds the offline corpus from this machine's gettext catalogs, En-Ro
   subsampled to 0.15% of En-Fr, into data/demo_corpus;
2. runs the built-in plan `demo` (launch/plans/demo.toml: PTJF vs a
   scalarization grid vs the restart baseline) with the local engine into
   runs/demo;
3. writes the report (runs/demo/report/report.html).

Every finished step is reused, so after a kill the same command resumes.
The last line holds each method's best En-Ro validation loss per target token:

  demo: ptjf_best_low=<f> scalar_best_low=<f> restart_best_low=<f> report=<path>
"""
import argparse
import dataclasses
import pathlib
import time


def summary_line(best: dict[str, float], report: pathlib.Path) -> str:
  """The demo's last line from `best_low_resource_losses` output.

  >>> summary_line({"ptjf": 2.5, "scalarization": 2.75}, pathlib.Path("r.html"))
  'demo: ptjf_best_low=2.5000 scalar_best_low=2.7500 restart_best_low=na report=r.html'
  """
  def fmt(method: str) -> str:
    return f"{best[method]:.4f}" if method in best else "na"
  return (f"demo: ptjf_best_low={fmt('ptjf')} scalar_best_low={fmt('scalarization')} "
          f"restart_best_low={fmt('restart')} report={report}")


def run_demo(corpus_dir: pathlib.Path, runs_dir: pathlib.Path, seed: int = 0,
             jobs: int = 2) -> str:
  """Corpus -> sweep -> report; returns the summary line. `seed` seeds init, data and dropout."""
  from ptjf import reproduce
  from ptjf.analysis import report

  start = time.time()
  recipe = dataclasses.replace(reproduce.RECIPES["demo"], corpus_dir=str(corpus_dir))
  print(f"demo: corpus {corpus_dir}, plan {recipe.plan!r} into {runs_dir}, "
        f"{jobs} phase(s) at a time", flush=True)
  page = reproduce.run_seed(recipe, runs_dir, seed, jobs)
  best = report.best_low_resource_losses(runs_dir, recipe.tasks[0])
  print(f"demo finished in {time.time() - start:.0f} s", flush=True)
  return summary_line(best, page)


def _demo(args: argparse.Namespace) -> int:
  runs_dir = args.runs_dir or ("runs/demo" if args.seed == 0 else f"runs/demo_seed{args.seed}")
  print(run_demo(pathlib.Path(args.corpus_dir), pathlib.Path(runs_dir), args.seed, args.jobs))
  return 0


def register(subparsers) -> None:
  """Adds `ptjf demo` to the `ptjf` parser."""
  parser = subparsers.add_parser(
      "demo", help="corpus + PTJF/scalarization/restart sweep (7 phases) + report",
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--corpus-dir", default="data/demo_corpus")
  parser.add_argument("--runs-dir", default=None,
                      help="default runs/demo (seed 0), runs/demo_seed<N> otherwise")
  parser.add_argument("--seed", type=int, default=0,
                      help="RANDOM_SEED of every phase (repeat the demo to see the spread)")
  parser.add_argument("--jobs", type=int, default=2,
                      help="phases trained at the same time (default 2, for 2 cores)")
  parser.set_defaults(func=_demo)
