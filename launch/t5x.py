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
import importlib.util
import json
import pathlib
import re
from typing import Any, Mapping, Sequence

from ptjf import gin_files, logdir
from ptjf.errors import UserError

_MACRO = re.compile(r"^[A-Z][A-Z0-9_]*$")
# The macros of T5X's own gin files, for checking a phase where T5X is not installed (CI).
T5X_MACROS_FILE = "gin/t5x/t5x_macros.json"   # relative to the ptjf root
T5X_COMMIT = "cc342d419ec3"   # the T5X it was read from (docs/t5x.md)
# T5X gin files a phase may include: run configs and model families.
_T5X_GIN = ("t5x/configs/runs/*.gin", "t5x/examples/scalable_t5/**/*.gin",
            "t5x/examples/t5/**/*.gin")


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


def t5x_install_root() -> pathlib.Path | None:
  """The folder holding an importable `t5x` package (T5X's gin search path), if any."""
  spec = importlib.util.find_spec("t5x")
  if spec is None or not spec.submodule_search_locations:
    return None
  return pathlib.Path(list(spec.submodule_search_locations)[0]).resolve().parent


def summarize_t5x_macros(t5x_root: pathlib.Path | str) -> dict[str, dict[str, list[str]]]:
  """{file: {"defined": [...], "used": [...]}}: the macros each of T5X's run and model gin
  files defines and uses (its includes followed), as T5X_MACROS_FILE records them. Rewrite
  that file after moving T5X_COMMIT: `write_t5x_macros(<t5x source root>)`."""
  t5x_root = pathlib.Path(t5x_root)
  summary = {}
  for path in sorted(p for pattern in _T5X_GIN for p in t5x_root.glob(pattern)):
    defined, used = gin_files.read(str(path), [str(t5x_root)])
    summary[str(path.relative_to(t5x_root))] = {"defined": sorted(defined),
                                                "used": sorted(used - defined)}
  return summary


def write_t5x_macros(t5x_root: pathlib.Path | str) -> None:
  """Writes T5X_MACROS_FILE from the T5X source at t5x_root (a checkout of T5X_COMMIT)."""
  files = summarize_t5x_macros(t5x_root)
  lines = [f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in files.items()]
  (ptjf_root() / T5X_MACROS_FILE).write_text(
      f'{{"t5x_commit": "{T5X_COMMIT}",\n "note": "macros defined and used by T5X\'s gin '
      'files, includes followed; written by ptjf.launch.t5x.write_t5x_macros",\n'
      ' "files": {\n' + ",\n".join(lines) + "\n}}\n")


def recorded_t5x_macros() -> dict[str, tuple[set[str], set[str]]]:
  """T5X_MACROS_FILE as `gin_files.scan` takes it: file -> (defined, used)."""
  data = json.loads((ptjf_root() / T5X_MACROS_FILE).read_text())
  return {name: (set(entry["defined"]), set(entry["used"]))
          for name, entry in data["files"].items()}


def check_macros(phase: T5xPhase, where: str = "the T5X job's macros and bindings") -> None:
  """UserError for a macro the phase sets (its macros and bindings) that none of its gin
  files defines or uses: T5X would take a typo such as TRAIN_STESP as a new macro and train
  the default. T5X's own files are read from a T5X install if one is importable, else taken
  from T5X_MACROS_FILE."""
  root, installed = ptjf_root(), t5x_install_root()
  files = [str(root / f) for f in (*phase.gin_files, start_gin_file(phase.start))]
  bindings = [*phase.bindings,
              *(f"{name} = {gin_literal(value)}" for name, value in phase.macros.items())]
  gin_files.check(files, bindings, [str(root), *([str(installed)] if installed else [])],
               recorded_t5x_macros(), where)


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
  check_macros(phase)


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
