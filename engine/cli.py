"""`ptjf train`: one phase of the local engine, configured with gin like `t5x/train.py`."""
import argparse
import contextlib
import os
import re
import sys
import time


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


def resolve_gin_file(name: str, search_paths: list[str]) -> str:
  """`name` joined to the first of `search_paths` holding it ('' first: as given), else as is.

  gin tries a relative name as a package resource before its search paths and logs a false
  "Path not found" error on the way; a resolved path skips that.
  """
  for base in ["", *search_paths]:
    if os.path.isfile(os.path.join(base, name)):
      return os.path.join(base, name)
  return name


def jax_cache_defaults() -> dict[str, str]:
  """JAX's persistent compilation cache for `ptjf train`, as environment variables.

  Phases of a sweep share shapes: the cache skips their recompilation, small programs
  included (together they cost more than the train step's compile). JAX evicts the least
  recently used programs once the directory passes 1 GiB (with `filelock` installed).
  """
  return {
      "JAX_COMPILATION_CACHE_DIR": os.path.join(os.path.expanduser("~"), ".cache", "ptjf", "jax"),
      "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
      "JAX_COMPILATION_CACHE_MAX_SIZE": str(2**30),
  }


class ProgressLine:
  """The trainer's progress: a bar on a terminal, else a plain line at most every `period` s
  (and at the last step), which `ptjf sweep` relays:

      step 450/1300, 3.1 steps/s, loss 4.210, ETA 4m35s
  """

  def __init__(self, terminal: bool, period: float = 10.0):
    self._terminal, self._period = terminal, period
    self._bar = None
    self._start = self._shown = None  # (time, step) of the first call; time of the last line

  def __call__(self, step: int, train_steps: int, loss: float) -> None:
    now = time.time()
    if self._start is None:
      self._start = (now, step)
    if self._terminal:
      import tqdm
      if self._bar is None:
        self._bar = tqdm.tqdm(total=train_steps, initial=step, unit="step")
      self._bar.n = step
      self._bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
      self._bar.refresh()
      return
    if self._shown is not None and now - self._shown < self._period and step < train_steps:
      return
    self._shown = now
    rate = (step - self._start[1]) / max(now - self._start[0], 1e-9)
    left = int((train_steps - step) / rate) if rate > 0 else None
    eta = "?" if left is None else f"{left // 60}m{left % 60:02d}s"
    print(f"step {step}/{train_steps}, {rate:.2f} steps/s, loss {loss:.4g}, ETA {eta}",
          flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def bound_model_dir() -> str | None:
  """train.model_dir as the parsed gin binds it (macros followed), if a path."""
  import gin
  value = gin.query_parameter("train.model_dir")
  while isinstance(value, gin.config.ConfigurableReference) and str(value).startswith("%"):
    value = gin.query_parameter(str(value))
  return value if isinstance(value, str) else None


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds `ptjf train --gin_file=F ... --gin_bindings=B ... --gin.MACRO=V ...` (as t5x/train.py)."""
  p = subparsers.add_parser("train", help="train one phase with the local engine (gin-configured)",
                            epilog="--gin.NAME=VALUE is short for --gin_bindings='NAME = VALUE'")
  p.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
  p.add_argument("--gin_bindings", action="append", default=[], help="gin binding (repeatable)")
  p.add_argument("--gin_search_paths", action="append", default=[], help="extra gin search path")
  p.set_defaults(func=_train)
  # argparse has no wildcard option: the shorthand is rewritten before this parser reads it.
  parse = p.parse_known_args
  p.parse_known_args = lambda args=None, namespace=None: parse(
      None if args is None else rewrite_gin_args(list(args)), namespace)


def _train(args: argparse.Namespace) -> int:
  """Parses gin (package gin dir on the search path) and runs `engine.train.train`, holding
  MODEL_DIR's lock as a sweep does (`locks.exclusive`): a second `ptjf train` or sweep phase
  into the same MODEL_DIR waits for this one."""
  for name, value in jax_cache_defaults().items():
    os.environ.setdefault(name, value)
  from ptjf import gin_files

  search_paths = [str(gin_files.gin_dir()), *args.gin_search_paths]
  files = [resolve_gin_file(f, search_paths) for f in args.gin_file]
  gin_files.check(files, args.gin_bindings, search_paths)  # before the slow imports below
  import gin

  import ptjf.tasks.mixtures  # noqa: F401  (gin configurables)
  from ptjf import locks
  from ptjf.engine import train as train_lib
  from ptjf.errors import UserError

  for path in search_paths:
    gin.add_config_file_search_path(path)
  try:
    gin.parse_config_files_and_bindings(files, args.gin_bindings, finalize_config=False)
  except (ValueError, KeyError, OSError) as e:
    raise UserError(f"bad gin configuration ({str(e).splitlines()[0]}): fix the --gin_file or "
                    "--gin_bindings named") from None
  model_dir = bound_model_dir()
  progress = ProgressLine(sys.stderr.isatty())
  try:
    with (locks.exclusive(model_dir, lambda _: print(
        f"{model_dir}: another process is training it; waiting for it", file=sys.stderr,
        flush=True)) if model_dir else contextlib.nullcontext()):
      train_lib.train(progress=progress)
  except RuntimeError as e:
    if not str(e).startswith("Required bindings"):
      raise
    missing = str(e).splitlines()[0]
    hint = ("local/nmt_adam.gin or local/lm_adafactor.gin binds train.optimizer and train.schedule"
            if "schedule" in missing or "optimizer" in missing else "or bind them with --gin_bindings")
    raise UserError(f"{missing}: add the --gin_file that binds them ({hint})") from None
  finally:
    progress.close()
  return 0
