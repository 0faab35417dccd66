"""The `ptjf` command: one subcommand group per area of the project.

Each area owns a `cli.py` with `register(subparsers)`; heavy imports
(TensorFlow, JAX) happen inside the commands so `ptjf --help` stays fast.
"""
import argparse
import errno
import os
import re
import sys

from ptjf import __version__, startup
from ptjf.errors import UserError

# A full disk, or an output directory that cannot be written: the user's fix.
_STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)
_AREAS = ("ptjf.tasks.cli", "ptjf.engine.cli", "ptjf.launch.cli",
          "ptjf.analysis.cli", "ptjf.demo", "ptjf.reproduce")


def storage_problem(error: BaseException | None) -> str | None:
  """"<what>: <path>" if `error`, or an error it came from, is a full disk or
  an unwritable directory (libraries such as orbax wrap the OSError, some only
  in their message)."""
  while error is not None:
    if isinstance(error, OSError) and error.errno in _STORAGE_ERRORS:
      return f"{os.strerror(error.errno)}: {error.filename or 'its output'}"
    for errno_ in _STORAGE_ERRORS:
      what = os.strerror(errno_)
      if what in str(error):
        path = re.search(rf"{re.escape(what)}: '([^']+)'", str(error))
        return f"{what}: {path[1]}" if path else what
    error = error.__cause__ or error.__context__
  return None


def build_parser() -> argparse.ArgumentParser:
  """The full parser, with every area's subcommands registered."""
  import importlib
  parser = argparse.ArgumentParser(
      prog="ptjf",
      description="Pre-training joint fine-tuning for imbalanced multilingual "
      "training (arXiv 2312.06134).")
  parser.add_argument("--version", action="version", version=__version__)
  subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
  for area in _AREAS:
    try:
      module = importlib.import_module(area)
    except ModuleNotFoundError as e:
      if e.name != area:  # a real missing dependency, not an absent area
        raise
      continue
    module.register(subparsers)
  return parser


def main(argv: list[str] | None = None) -> int:
  """The command line; `argv` None means this process's own (then the
  process may restart itself once with ptjf.engine.allocator's setting)."""
  if argv is None:
    from ptjf.engine import allocator
    startup.die_with_parent()
    allocator.reexec_tuned()
  startup.quiet_tensorflow()
  parser = build_parser()
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  if not getattr(args, "func", None):
    parser.print_help()
    return 2
  try:
    return args.func(args) or 0
  except UserError as e:
    # gin appends "In call to configurable ..." lines to errors raised inside
    # configurables; the user needs only the first line.
    print(f"ptjf: error: {str(e).splitlines()[0]}", file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    problem = storage_problem(e)
    if problem is None:
      raise
    print(f"ptjf: error: {problem}: free some space or make it writable, or "
          "write elsewhere; then re-run the same command to resume",
          file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("ptjf: interrupted; re-run the same command to resume.",
          file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
