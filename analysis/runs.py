"""Run discovery: find every phase logdir under RUNS_DIR and read its metadata.

The layout is `RUNS_DIR/<experiment>/<run>/<phase>/` with a `ptjf_phase.json`
(docs/design.md section 4). A bare T5X `model_dir` without that file is still
accepted: what can be inferred from its `config.gin` (BATCH_SIZE, TRAIN_STEPS,
HIGH/LOW task and rate macros, INITIAL_CHECKPOINT_PATH) is used instead.

RUNS_DIR may be a local folder or a bucket (gs://...): every file is read
through etils.epath (tf.io.gfile for gs://), the API the tests use locally.
"""
import dataclasses
import json
import re

from etils import epath

from ptjf import logdir
from ptjf.errors import UserError

_LOG_SUBDIRS = ("train", "training_eval", "training_eval_train",
                "inference_eval")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PhaseLogdir(logdir.PhaseRecord):
  """One phase logdir (a T5X MODEL_DIR): its record (read, or inferred) and its config.gin."""
  path: epath.Path
  config_text: str = ""


def is_phase_dir(path: epath.Path) -> bool:
  """A directory is a phase logdir if it has the metadata or T5X log subdirs."""
  return ((path / logdir.PHASE_FILE).is_file() or (path / "config.gin").is_file()
          or any((path / sub).is_dir() for sub in _LOG_SUBDIRS))


def _gin_macros(text: str) -> dict[str, str]:
  """Top-level `NAME = value` macro lines of an operative config.gin."""
  return dict(re.findall(r"^([A-Z][A-Z0-9_]*) = (.+)$", text, re.M))


def _gin_value(raw: str | None):
  """A macro's literal value (int, float, str) or None if not a literal."""
  if raw is None:
    return None
  raw = raw.strip()
  if raw == "None" or raw.startswith(("@", "%")):
    return None
  for cast in (int, float):
    try:
      return cast(raw)
    except ValueError:
      pass
  return raw.strip("'\"")


def _logdir_rates(path: epath.Path, text: str) -> dict[str, float]:
  """{task: rate} of a bare logdir (no ptjf_phase.json, no HIGH/LOW macros):
  from its mixture's evaluation folder, named `mix_<task>_<rate>_...` over
  the task folders beside it, or from a `local_task.name` binding.

  >>> import tempfile
  >>> root = epath.Path(tempfile.mkdtemp())
  >>> for sub in ("a_b", "c", "mix_a_b_0.7_c_0.3"):
  ...   (root / "training_eval" / sub).mkdir(parents=True)
  >>> _logdir_rates(root, "")
  {'a_b': 0.7, 'c': 0.3}
  """
  evals = path / "training_eval"
  names = sorted(d.name for d in evals.iterdir() if d.is_dir()) if evals.is_dir() else []
  tasks = sorted((n for n in names if not n.startswith("mix_")), key=len,
                 reverse=True)
  mixes = [n for n in names if n.startswith("mix_")]
  if len(mixes) == 1 and tasks:
    pattern = "|".join(map(re.escape, tasks))
    pairs = re.findall(rf"({pattern})_(\d+(?:\.\d+)?)(?=_|$)", mixes[0][4:])
    if pairs:
      return {task: float(rate) for task, rate in pairs}
  single = re.search(r"^(?:\S+/)?local_task\.name = ['\"](.+)['\"]$", text, re.M)
  if single:
    return {single[1]: 1.0}
  return {tasks[0]: 1.0} if len(tasks) == 1 else {}


def _from_config(text: str) -> dict:
  """Metadata inferred from a config.gin when ptjf_phase.json is absent."""
  macros = {k: _gin_value(v) for k, v in _gin_macros(text).items()}
  rates = {}
  mixture = _gin_macros(text).get("MIXTURE_OR_TASK_NAME", "")
  if "rate_mixture" in mixture:
    for side in ("HIGH", "LOW"):
      task, rate = macros.get(f"{side}_TASK"), macros.get(f"{side}_RATE")
      if isinstance(task, str) and isinstance(rate, (int, float)):
        rates[task] = float(rate)
  elif isinstance(macros.get("MIXTURE_OR_TASK_NAME"), str):
    rates = {macros["MIXTURE_OR_TASK_NAME"]: 1.0}
  init = macros.get("INITIAL_CHECKPOINT_PATH")
  return {"steps": macros.get("TRAIN_STEPS"),
          "batch_size": macros.get("BATCH_SIZE"), "rates": rates,
          "start": {"mode": None, "from": init}}


def is_local(path: epath.PathLike) -> bool:
  """A path on this machine's filesystem, not a bucket (gs://...)."""
  return "://" not in str(path)


def _parts_under(path: epath.Path, runs_dir: epath.Path) -> tuple[str, ...]:
  """path's parts below runs_dir (both resolved, when local)."""
  if is_local(runs_dir):
    path, runs_dir = path.resolve(), runs_dir.resolve()
  return path.relative_to(runs_dir).parts


def _name(path: epath.Path) -> str:
  """The folder's own name (of the working directory for ".")."""
  return path.resolve().name if is_local(path) else path.name


def read_phase(path: epath.PathLike, runs_dir: epath.PathLike) -> PhaseLogdir:
  """Metadata of one phase logdir; names default to its place under runs_dir."""
  path, runs_dir = epath.Path(path), epath.Path(runs_dir)
  config_text = ""
  if (path / "config.gin").is_file():
    config_text = (path / "config.gin").read_bytes().decode(errors="replace")
  meta_file = path / logdir.PHASE_FILE
  if meta_file.is_file():
    try:
      meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
      raise UserError(f"{meta_file} is not valid JSON ({e}): fix or delete "
                      "it") from None
  else:
    meta = _from_config(config_text)
    meta["rates"] = meta["rates"] or _logdir_rates(path, config_text)
  parts = _parts_under(path, runs_dir)
  names = (list(parts[-3:]) if len(parts) >= 3
           else [_name(runs_dir)] * (3 - len(parts)) + list(parts))
  if len(parts) == 0:
    names = [_name(path)] * 3
  record = logdir.PhaseRecord.from_dict(meta, experiment=names[0], run=names[1],
                                        phase=names[2])
  return PhaseLogdir(**vars(record), path=path, config_text=config_text)


def discover_phases(runs_dir: epath.PathLike) -> list[PhaseLogdir]:
  """All phase logdirs under runs_dir (or runs_dir itself), sorted by path."""
  root = epath.Path(runs_dir)
  if not root.is_dir():
    raise UserError(f"runs directory {root} does not exist: pass the RUNS_DIR "
                    "that `ptjf train`/launch wrote to")
  found, stack = [], [root]
  while stack:
    path = stack.pop()
    if is_phase_dir(path):
      found.append(read_phase(path, root))
      continue
    stack.extend(p for p in path.iterdir() if p.is_dir())
  if not found:
    raise UserError(f"no runs under {root} (no ptjf_phase.json, config.gin or "
                    "train/ directory): point at a RUNS_DIR with trained runs")
  return sorted(found, key=lambda p: str(p.path))
