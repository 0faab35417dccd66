"""`ptjf sweep PLAN` and `ptjf run PLAN --run NAME` (plus `ptjf tpu run`).

PLAN is a TOML plan file or the name of a built-in plan (launch/plans/):

    ptjf sweep demo --dry-run             step cost per run, shared phases once
    ptjf sweep ro_fr.toml --runs-dir runs --corpus-dir data/corpus
    ptjf sweep ro_fr.toml --only ptjf_r0.3 scal_r0.3
    ptjf sweep demo --jobs 2              two phases at a time
    ptjf run ro_fr.toml --run ptjf_r0.3   one run and the phases it starts from

Finished phases are reused, interrupted ones resume; re-run the same command
after a kill or a failure. Exit status 1 when a phase failed or was skipped.
"""
import argparse

from ptjf.launch import tpu


def _add_common(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("plan", metavar="PLAN",
                      help="plan .toml file, or a built-in plan name "
                      "(e.g. demo)")
  parser.add_argument("--runs-dir", default="runs",
                      help="where RUNS_DIR/<experiment>/<run>/<phase>/ go "
                      "(default: ./runs)")
  parser.add_argument("--corpus-dir", default=None,
                      help="corpus directory (default: the plan's corpus_dir, "
                      "else $PTJF_CORPUS_DIR or ./data/corpus)")
  parser.add_argument("--dry-run", action="store_true",
                      help="print the phases and their step cost; run nothing")
  parser.add_argument("--jobs", type=int, default=1,
                      help="phases trained at the same time (default 1; 2 on "
                      "a 2-core machine trains small models ~1.2x faster)")


def _execute(args: argparse.Namespace, only_runs) -> int:
  from ptjf.launch import execute, plan  # pylint: disable=g-import-not-at-top
  exp = plan.load_plan(args.plan)
  summary = execute.run_plan(exp, args.runs_dir, only_runs=only_runs,
                             dry_run=args.dry_run, corpus_dir=args.corpus_dir,
                             jobs=args.jobs)
  return 0 if summary.ok else 1


def _sweep(args: argparse.Namespace) -> int:
  return _execute(args, args.only)


def _run(args: argparse.Namespace) -> int:
  return _execute(args, [args.run])


def register(subparsers) -> None:
  """Adds `ptjf sweep`, `ptjf run` and `ptjf tpu` to the `ptjf` command."""
  sweep = subparsers.add_parser(
      "sweep", help="run every phase of an experiment plan (idempotent)",
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _add_common(sweep)
  sweep.add_argument("--only", nargs="+", metavar="RUN", default=None,
                     help="only these runs (and the phases they start from)")
  sweep.set_defaults(func=_sweep)
  run = subparsers.add_parser(
      "run", help="run one run of a plan, with the phases it starts from",
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _add_common(run)
  run.add_argument("--run", required=True, metavar="NAME",
                   help="the run's name, as `ptjf sweep PLAN --dry-run` lists")
  run.set_defaults(func=_run)
  tpu.register_tpu(subparsers)
