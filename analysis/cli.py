"""`ptjf report RUNS_DIR [--out DIR] [--low-task T]`: the analysis command."""
import argparse


def _report(args: argparse.Namespace) -> int:
  """Write the report; the page's path is the last line printed."""
  import warnings
  from ptjf.analysis import report
  with warnings.catch_warnings():
    warnings.simplefilter("default")
    path = report.write_report(args.runs_dir, args.out, args.low_task)
  print((path.parent / "report.md").read_text())
  print(path)
  return 0


def register(subparsers) -> None:
  """Add `report` to the `ptjf` command."""
  parser = subparsers.add_parser(
      "report", help="event files -> HTML report with Pareto fronts, figures "
      "and numbers",
      description="Read every phase logdir under RUNS_DIR "
      "(<experiment>/<run>/<phase>/ or bare T5X model dirs) and write "
      "report.html, report.md and PNG/SVG figures.")
  parser.add_argument("runs_dir", metavar="RUNS_DIR")
  parser.add_argument("--out", default=None,
                      help="output directory (default RUNS_DIR/report; "
                      "./report for a bucket, gs://...)")
  parser.add_argument("--low-task", default=None,
                      help="the low-resource task (default: fewest training "
                      "examples, else smallest scalarization rate)")
  parser.set_defaults(func=_report)
