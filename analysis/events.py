"""Event files -> a tidy table: a `Row` per (phase, task, split, step, metric).

Reads the T5X logdir layout (docs/design.md section 3) with TensorFlow's own
readers (`tf.data.TFRecordDataset`, `tf.compat.v1.Event`, `tf.make_ndarray`):

    train/                      split "train", task "*" (the mixture)
    training_eval/<task>/       split "validation"
    training_eval_train/<task>/ split "train" (a fixed sample of the task)
    inference_eval/<task>/      split "inference" (bleu; T5X's "eval/" prefix
                                is dropped), plus <task>-metrics.jsonl lines

The loss analysis compares is LOSS, the plain cross-entropy per real target
token both engines write (docs/design.md section 3); T5X's own `loss` is
label-smoothed on NMT and holds the z-loss on mC4.

A truncated or corrupt event file is reported with a warning naming the file and
what was read before the damage is kept.
"""
import csv
import dataclasses
import json
import math
import pathlib
import warnings

from etils import epath

from ptjf.analysis import runs as runs_lib

MIXTURE_TASK = "*"
# What analysis compares; engine/losses.py writes it as PLAIN_CROSS_ENT.
LOSS = "plain_cross_ent_per_real_target_token"
_SPLIT_DIRS = {"training_eval": "validation", "training_eval_train": "train",
               "inference_eval": "inference"}


@dataclasses.dataclass
class Row:
  """One scalar of one phase, with everything needed to group and plot it."""
  experiment: str
  run: str
  method: str
  phase: str
  rates: dict[str, float]
  task: str
  split: str
  step: int
  global_step: int
  metric: str
  value: float
  examples_seen: float | None


def read_scalars(path: epath.PathLike) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar summary in one event file.

  Scalars are TF2 tensor summaries (what clu/T5X write) or TF1 simple_value;
  non-scalar summaries (T5X's `config` text) are skipped. TensorFlow's reader
  stops silently at a truncated last record, so the bytes of the records read
  (each is its data + 16 bytes of length and CRCs) are checked against the
  file's size.
  """
  import tensorflow as tf
  out = []
  consumed = 0
  try:
    for record in tf.data.TFRecordDataset(str(path)):
      data = record.numpy()
      consumed += len(data) + 16
      event = tf.compat.v1.Event.FromString(data)
      for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
          out.append((int(event.step), value.tag, float(value.simple_value)))
        elif (kind == "tensor"
              and value.metadata.plugin_data.plugin_name in ("scalars", "")):
          array = tf.make_ndarray(value.tensor)
          if array.shape == () and array.dtype.kind in "fiu":
            out.append((int(event.step), value.tag, float(array)))
  except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
    warnings.warn(f"event file {path} is truncated or corrupt "
                  f"({type(e).__name__}); kept the {len(out)} scalars read "
                  "before the damage")
    return out
  size = epath.Path(path).stat().length
  if consumed < size:
    warnings.warn(f"event file {path} is truncated ({consumed} of "
                  f"{size} bytes are whole records); kept the "
                  f"{len(out)} scalars read before the damage")
  return out


def _read_dir(directory: epath.Path) -> list[tuple[int, str, float]]:
  """Scalars of all event files in one directory, in file order."""
  rows = []
  for path in sorted(directory.glob("events.out.tfevents.*")):
    rows.extend(read_scalars(path))
  return rows


def _read_jsonl(path: epath.Path) -> list[tuple[int, str, float]]:
  """(step, metric, value) from T5X's inference_eval/<task>-metrics.jsonl."""
  out = []
  for line in path.read_text().splitlines():
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      warnings.warn(f"{path}: skipped a line that is not JSON: {line[:60]!r}")
      continue
    step = record.get("step")
    for key, value in record.items():
      if key != "step" and isinstance(value, (int, float)):
        out.append((int(step), key.removeprefix("eval/"), float(value)))
  return out


def _examples_seen(phase: runs_lib.PhaseLogdir, seen: dict[str, dict[int, float]],
                   task: str, step: int) -> float | None:
  """Examples of `task` seen by `step` of this phase (phase-local).

  From the logged `examples_seen/<task>` (last value at or before step) when
  present, else the phase's own steps x batch_size x rate (paper Appendix A.4;
  a `continue` phase's steps count on from its parent's); e.g. step 100,
  batch 8, rate 0.25 -> 200.0; a task
  absent from the phase's rates has rate 0.
  """
  logged = seen.get(task)
  if logged:
    before = [s for s in logged if s <= step]
    return logged[max(before)] if before else 0.0
  own = step - phase.first_step
  if task == MIXTURE_TASK:
    return float(own * phase.batch_size) if phase.batch_size else None
  if phase.batch_size is None or not phase.rates:
    return None
  return float(own * phase.batch_size * phase.rates.get(task, 0.0))


def _stand_in_losses(phase: runs_lib.PhaseLogdir, raw: list[tuple]) -> list[tuple]:
  """LOSS rows copied from `loss` for eval folders written before LOSS existed.

  The local engine's eval `loss` was then this very quantity; T5X's is
  label-smoothed (NMT), so such a T5X phase gets a warning.
  """
  have = {(task, split) for task, split, _, metric, _ in raw if metric == LOSS}
  old = [(task, split, step, LOSS, value)
         for task, split, step, metric, value in raw
         if metric == "loss" and task != MIXTURE_TASK and split != "inference"
         and (task, split) not in have]
  if old and phase.engine == "t5x":
    warnings.warn(f"{phase.path} has no {LOSS} summaries (written before "
                  "ptjf's T5X model added them): its label-smoothed `loss` "
                  "stands in; re-run the phase to compare it with others")
  return old


def read_phase_rows(phase: runs_lib.PhaseLogdir) -> list[Row]:
  """All scalars of one phase as rows of the tidy table."""
  raw = []  # (task, split, step, metric, value)
  train = phase.path / "train"
  if train.is_dir():
    raw += [(MIXTURE_TASK, "train", s, tag, v)
            for s, tag, v in _read_dir(train)]
  for sub, split in _SPLIT_DIRS.items():
    base = phase.path / sub
    if not base.is_dir():
      continue
    for task_dir in sorted(p for p in base.iterdir() if p.is_dir()):
      for step, tag, value in _read_dir(task_dir):
        metric = tag.removeprefix("eval/") if split == "inference" else tag
        raw.append((task_dir.name, split, step, metric, value))
    if split == "inference":
      have = {(t, s, m) for t, _, s, m, _ in raw}
      for jsonl in sorted(base.glob("*-metrics.jsonl")):
        task = jsonl.name.removesuffix("-metrics.jsonl")
        raw += [(task, split, s, m, v) for s, m, v in _read_jsonl(jsonl)
                if (task, s, m) not in have]
  raw += _stand_in_losses(phase, raw)
  seen: dict[str, dict[int, float]] = {}
  for task, split, step, metric, value in raw:
    if split == "train" and task == MIXTURE_TASK and metric.startswith(
        "examples_seen/"):
      seen.setdefault(metric.removeprefix("examples_seen/"), {})[step] = value
  offset = phase.parent_steps - phase.first_step   # a continue phase's steps are its run's
  return [Row(phase.experiment, phase.run, phase.method, phase.phase,
              phase.rates, task, split, step, offset + step, metric, value,
              _examples_seen(phase, seen, task, step))
          for task, split, step, metric, value in raw
          if not math.isnan(value)]


def write_csv(rows: list[Row], path: pathlib.Path) -> pathlib.Path:
  """The tidy table as CSV (rates as a JSON object), for pandas & co."""
  fields = [f.name for f in dataclasses.fields(Row)]
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    for row in rows:
      record = dataclasses.asdict(row)
      record["rates"] = json.dumps(row.rates, sort_keys=True)
      writer.writerow(record)
  return path


def read_runs(runs_dir) -> tuple[list[runs_lib.PhaseLogdir], list[Row]]:
  """Every phase under runs_dir and the tidy table of all their scalars."""
  phases = runs_lib.discover_phases(runs_dir)
  rows = []
  for phase in phases:
    rows.extend(read_phase_rows(phase))
  return phases, rows
