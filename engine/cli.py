"""`ptjf train`: one phase of the local engine, configured with gin like `t5x/train.py`."""
import argparse
import os
import re


def rewrite_gin_args(argv: list[str]) -> list[str]:
  """T5X's `--gin.NAME=VALUE` shorthand as `--gin_bindings=NAME = VALUE`.

  >>> rewrite_gin_args(["train", "--gin.TRAIN_STEPS=10", "--gin_file=a.gin"])
  ['train', '--gin_bindings=TRAIN_STEPS = 10', '--gin_file=a.gin']
  """
  out = []
  for arg in argv:
    match = re.fullmatch(r"--gin\.([^=]+)=(.*)", arg, re.DOTALL)
    out.append(f"--gin_bindings={match[1]} = {match[2]}" if match else arg)
  return out


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds `ptjf train --gin_file=F ... --gin_bindings=B ... --gin.MACRO=V ...` (as t5x/train.py)."""
  p = subparsers.add_parser("train", help="train one phase with the local engine (gin-configured)",
                            epilog="--gin.NAME=VALUE is short for --gin_bindings='NAME = VALUE'")
  p.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
  p.add_argument("--gin_bindings", action="append", default=[], help="gin binding (repeatable)")
  p.add_argument("--gin_search_paths", action="append", default=[], help="extra gin search path")
  p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
  """Parses gin (package gin dir on the search path) and runs `engine.train.train`."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  # Phases of a sweep share shapes: JAX's persistent cache skips their recompilation.
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                        os.path.join(os.path.expanduser("~"), ".cache", "ptjf", "jax"))
  import gin
  import tqdm

  import ptjf.gin
  import ptjf.tasks.mixtures  # noqa: F401  (gin configurables)
  from ptjf.engine import train as train_lib
  from ptjf.errors import UserError

  for path in [os.path.dirname(ptjf.gin.__file__), *args.gin_search_paths]:
    gin.add_config_file_search_path(path)
  try:
    gin.parse_config_files_and_bindings(args.gin_file, args.gin_bindings, finalize_config=False)
  except (ValueError, KeyError, OSError) as e:
    raise UserError(f"bad gin configuration ({str(e).splitlines()[0]}): fix the --gin_file or "
                    "--gin_bindings named") from None
  bar = tqdm.tqdm(unit="step")

  def progress(step: int, loss: float) -> None:
    bar.n = step
    bar.set_postfix(loss=f"{loss:.3f}")
    bar.refresh()

  try:
    train_lib.train(progress=progress)
  finally:
    bar.close()
  return 0
