"""The exact `t5x/train.py` command of one phase (engine = t5x).

A phase is gin files plus ALL_CAPS macro values, a MODEL_DIR and how it
starts. The start mode becomes one of ptjf's start gin files
(gin/t5x/start/<mode>.gin), given last so it decides the restore whatever
the phase file chose:

- `scratch`: fresh parameters, optimizer state and step;
- `params_only`: parameters from `init_checkpoint`, optimizer state, step and
  schedule from 0 (the PTJF reset);
- `continue`: everything from `init_checkpoint`.

>>> phase = T5xPhase(gin_files=("gin/ptjf_nmt3_finetune.gin",),
...                  model_dir="gs://b/runs/ft", macros={"HIGH_RATE": 0.7},
...                  start="params_only",
...                  init_checkpoint="gs://b/runs/pre/checkpoint_400000")
>>> train_command(phase, gin_search_path="/ptjf")[:4]
['python', '-m', 't5x.train', '--gin_search_paths=/ptjf']
>>> train_command(phase, gin_search_path="/ptjf")[-3:]
['--gin.MODEL_DIR="gs://b/runs/ft"', '--gin.HIGH_RATE=0.7', \
'--gin.INITIAL_CHECKPOINT_PATH="gs://b/runs/pre/checkpoint_400000"']

T5X must be importable by `python` (its source root on PYTHONPATH, see
docs/t5x.md); `python -m t5x.train` is `t5x/train.py` run as a script.
"""
import dataclasses
import json
import pathlib
import re
from typing import Any, Mapping, Sequence

from ptjf import gin_files, logdir
from ptjf.errors import UserError

_MACRO = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class T5xPhase:
  """One T5X training job.

  gin_files: phase gin files, relative to the ptjf root (e.g.
    "gin/ptjf_nmt3_finetune.gin") or absolute; later files override earlier.
  model_dir: the phase's own MODEL_DIR (a checkpoint there always wins).
  macros: ALL_CAPS gin macros -> Python values (str, number, list, dict ...),
    written as gin literals.
  start: one of logdir.START_MODES.
  init_checkpoint: a checkpoint_<step> directory; required by params_only and
    continue, refused by scratch.
  bindings: further raw gin bindings ("network.T5Config.emb_dim = 32").
  """
  gin_files: Sequence[str]
  model_dir: str
  macros: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  start: str = "scratch"
  init_checkpoint: str | None = None
  bindings: Sequence[str] = ()


def ptjf_root() -> pathlib.Path:
  """The folder holding ptjf's `gin/` (the repo root, or site-packages/ptjf)."""
  return gin_files.gin_dir().parent


def start_gin_file(start: str) -> str:
  """gin/t5x/start/<start>.gin, after checking the mode."""
  if start not in logdir.START_MODES:
    raise UserError(f"unknown start mode {start!r}: use one of "
                    f"{', '.join(logdir.START_MODES)}")
  return f"gin/t5x/start/{start}.gin"


def gin_literal(value: Any) -> str:
  """A Python value as a gin literal: 'a' -> '"a"', [1, 2] -> '[1, 2]'.

  Top-level strings get double quotes so a shell-quoted command stays legible.
  """
  if isinstance(value, pathlib.PurePath):
    value = str(value)
  if isinstance(value, str):
    return json.dumps(value)
  if isinstance(value, (str, int, float, bool, type(None), list, tuple, dict)):
    return repr(value)
  raise UserError(f"cannot write {value!r} ({type(value).__name__}) as a gin "
                  "value: give a str, number, bool, None, list, tuple or dict")


def _check(phase: T5xPhase, root: pathlib.Path | None) -> None:
  """UserError for a phase T5X would reject, or run wrongly."""
  start_gin_file(phase.start)
  if not phase.gin_files:
    raise UserError("the phase has no gin file: give at least one, e.g. "
                    "gin/ptjf_nmt3_scalarization.gin")
  if not phase.model_dir:
    raise UserError("the phase has no MODEL_DIR: give each phase its own "
                    "directory")
  for name in phase.macros:
    if not _MACRO.match(name):
      raise UserError(f"{name!r} is not an ALL_CAPS gin macro: pass "
                      "other settings as gin bindings")
    if name in ("MODEL_DIR", "INITIAL_CHECKPOINT_PATH"):
      raise UserError(f"{name} is set from the phase itself: give it as "
                      "model_dir / init_checkpoint, not as a macro")
  if phase.start == "scratch" and phase.init_checkpoint:
    raise UserError("start 'scratch' takes no initial checkpoint: use "
                    "'params_only' (PTJF reset) or 'continue'")
  if phase.start != "scratch" and not phase.init_checkpoint:
    raise UserError(f"start {phase.start!r} needs an initial checkpoint: give "
                    "the previous phase's checkpoint_<step> directory")
  if root is not None:
    for gin_file in phase.gin_files:
      if not (root / gin_file).is_file():
        raise UserError(f"no gin file {gin_file} under {root}: give a path "
                        "relative to the ptjf root, e.g. "
                        "gin/ptjf_nmt3_scalarization.gin")


def train_command(phase: T5xPhase, *, python: str = "python",
                  gin_search_path: str | None = None) -> list[str]:
  """argv of `python -m t5x.train` for `phase`.

  gin_search_path: where ptjf's `gin/` folder is on the machine that runs the
  command (default: this ptjf install, whose gin files are then checked).
  """
  root = None if gin_search_path else ptjf_root()
  _check(phase, root)
  command = [python, "-m", "t5x.train",
             f"--gin_search_paths={gin_search_path or root}"]
  command += [f"--gin_file={f}" for f in phase.gin_files]
  command.append(f"--gin_file={start_gin_file(phase.start)}")
  command += [f"--gin_bindings={b}" for b in phase.bindings]
  command.append(f"--gin.MODEL_DIR={gin_literal(phase.model_dir)}")
  command += [f"--gin.{name}={gin_literal(value)}"
              for name, value in phase.macros.items()]
  if phase.init_checkpoint:
    command.append(
        f"--gin.INITIAL_CHECKPOINT_PATH={gin_literal(phase.init_checkpoint)}")
  return command
