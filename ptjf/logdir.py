"""The logdir contract: what launch writes into a phase's MODEL_DIR and analysis reads back.

    RUNS_DIR/<experiment>/<run>/<phase>/     one MODEL_DIR per phase (docs/design.md s. 4)
        ptjf_phase.json                      a `PhaseRecord`, written by launch before training
        checkpoint_<step>/                   the phase is finished iff checkpoint_<steps> exists,
        ptjf_stop.json                       or an early-stop rule ended it ({"step", "rule"},
                                             written by the engine after checkpoint_<step>)

Launch (local and TPU) writes it, the engine names its checkpoints by it and analysis reads
it; nothing else spells these names. Imports nothing heavy.
"""
import dataclasses
import json
import os
import re
from typing import Any, Mapping

PHASE_FILE = "ptjf_phase.json"
# How a phase starts: fresh; the PTJF reset (parameters only); everything of the checkpoint.
START_MODES = ("scratch", "params_only", "continue")
STOP_FILE = "ptjf_stop.json"
CHECKPOINT_PREFIX = "checkpoint"
_CHECKPOINT = re.compile(rf"(?:^|/){CHECKPOINT_PREFIX}_(\d+)/?$")


def checkpoint_name(step: int) -> str:
  """The folder of the checkpoint at `step`: checkpoint_name(400) == "checkpoint_400"."""
  return f"{CHECKPOINT_PREFIX}_{step}"


def checkpoint_step(path: str | os.PathLike) -> int | None:
  """The step of a checkpoint folder's path, None if it names no checkpoint.

  >>> checkpoint_step("pretrain_s20/pretrain/checkpoint_20"), checkpoint_step("old_checkpoint_4")
  (20, None)
  """
  match = _CHECKPOINT.search(str(path))
  return int(match[1]) if match else None


def checkpoint_steps(model_dir: str | os.PathLike) -> list[int]:
  """Steps of the checkpoint folders in a local MODEL_DIR, ascending ([] if there is none)."""
  if not os.path.isdir(model_dir):
    return []
  return sorted(step for entry in os.scandir(model_dir)
                if entry.is_dir() and (step := checkpoint_step(entry.name)) is not None)


def finished_step(model_dir: str | os.PathLike, steps: int) -> int | None:
  """The step a phase of `steps` steps finished at: `steps` once checkpoint_<steps> exists, the
  step of its STOP_FILE once that checkpoint exists (an early stop), else None."""
  if os.path.isdir(os.path.join(model_dir, checkpoint_name(steps))):
    return steps
  try:
    with open(os.path.join(model_dir, STOP_FILE)) as f:
      step = int(json.load(f)["step"])
  except (OSError, ValueError, KeyError, TypeError):
    return None
  return step if os.path.isdir(os.path.join(model_dir, checkpoint_name(step))) else None


@dataclasses.dataclass(frozen=True)
class PhaseRecord:
  """ptjf_phase.json: how a phase was started; analysis reads its runs from these records.

  rates: {task: sampling rate}, normalised (a temperature or UniMax phase's need task_sizes).
  start_from: "<run>/<phase>/checkpoint_<N>", relative to the experiment directory.
  tau, unimax ({"budget", "max_epochs"}), task_sizes ({task: train examples}), overrides
  ({MACRO: value}) and label_smoothing (local engine) are written only when known.
  schedule: rates changing over the run ({"shape", "start", "end", "steps", "switch_step",
  "segment": [k, n] for T5X's k-th of n `continue` phases}; rates then hold their mean).
  stop_rule: the early-stop rule of pretrain_steps "auto" ({"task", "patience", "min_delta",
  "eval_period", "max_steps"}); switch_step: where it stopped, once it has.
  """
  experiment: str
  run: str
  method: str   # "scalarization" | "ptjf" | "restart" | "transfer" | ... | "unknown"
  phase: str
  rates: dict[str, float]
  steps: int | None = None
  batch_size: int | None = None
  start_mode: str | None = None   # one of START_MODES
  start_from: str | None = None
  corpus_hash: str | None = None
  engine: str | None = None       # "local" | "t5x"
  tau: float | None = None
  unimax: dict[str, float] | None = None
  task_sizes: dict[str, int] = dataclasses.field(default_factory=dict)
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  label_smoothing: float | None = None
  schedule: dict[str, Any] | None = None
  stop_rule: dict[str, Any] | None = None
  switch_step: int | None = None

  @property
  def first_step(self) -> int:
    """This phase's own first step: a `continue` phase counts on from its parent's."""
    return self.parent_steps if self.start_mode == "continue" else 0

  @property
  def parent_steps(self) -> int:
    """Steps of the phase this one started from (0 for none), read off its checkpoint.

    >>> PhaseRecord("e", "r", "ptjf", "finetune", {}, start_from="p/pre/checkpoint_6").parent_steps
    6
    """
    return checkpoint_step(self.start_from or "") or 0

  def to_dict(self) -> dict[str, Any]:
    """The JSON object: the fields always present, then those that are known."""
    data = {"experiment": self.experiment, "run": self.run, "method": self.method,
            "phase": self.phase, "rates": self.rates, "steps": self.steps,
            "batch_size": self.batch_size,
            "start": {"mode": self.start_mode, "from": self.start_from},
            "corpus_hash": self.corpus_hash, "engine": self.engine}
    optional = {"tau": self.tau, "unimax": self.unimax, "task_sizes": self.task_sizes,
                "overrides": self.overrides, "label_smoothing": self.label_smoothing,
                "schedule": self.schedule, "stop_rule": self.stop_rule,
                "switch_step": self.switch_step}
    data.update({k: v for k, v in optional.items() if v not in (None, {})})
    return data

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1) + "\n"

  @classmethod
  def from_dict(cls, data: Mapping[str, Any], **fallback: Any) -> "PhaseRecord":
    """The record of a parsed ptjf_phase.json; `fallback` gives the fields it lacks (the
    names of a bare T5X logdir, what its config.gin says)."""
    start = data.get("start") or {}
    given = {**{f.name: data.get(f.name) for f in dataclasses.fields(cls)},
             "start_mode": start.get("mode"), "start_from": start.get("from")}
    values = {k: v if v not in (None, "", {}) else fallback.get(k) for k, v in given.items()}
    values["method"] = values["method"] or "unknown"
    values["rates"] = {k: float(v) for k, v in (values["rates"] or {}).items()}
    values["task_sizes"] = dict(values["task_sizes"] or {})
    values["overrides"] = dict(values["overrides"] or {})
    return cls(**values)
