"""Experiment plans: experiment -> runs -> phases, built from a TOML file.

A *phase* is one training job (one MODEL_DIR); a *run* is the phases of one
point of a figure (a PTJF fine-tune at rate 0.3, a scalarization run ...).
A phase may start from another run's phase, so a PTJF grid shares ONE
pre-training run among all its fine-tune runs:

    ro_fr/pretrain_s2000/pretrain          scratch, high task only, 2000 steps
    ro_fr/ptjf_r0.3/finetune               params_only from it, 1000 steps
    ro_fr/ptjf_r0.5/finetune               params_only from it, 1000 steps

Rates are the LOW-resource task's sampling rate (the paper's grid i/10, as
`ptjf.tasks.sampling.static_grid`); with more than two tasks a temperature tau
(`taus = [...]`) or UniMax (`unimax = [max_epochs, ...]`, with an optional
`unimax_budget` in examples, which must be the phase's steps x batch_size,
its default) is given instead. Sweep kinds (`[[sweep]] kind = ...`), each crossed with
optional `lrs` / `dropouts` / `warmups` grids (gin macros LEARNING_RATE,
DROPOUT_RATE, WARMUP_STEPS of every phase) and taking `overrides` (every
phase), `pretrain_overrides` / `finetune_overrides` (the first / second phase
of a two-phase run, e.g. the paper's shorter fine-tune warmup):

- `scalarization`: joint training from scratch, `steps` (one int or a list,
  e.g. [N1, N1 + N2]) for every rate / tau.
- `ptjf`: pre-train `pretrain_steps` on the high task(s), then per rate a
  params-only fine-tune of `finetune_steps` on all tasks.
- `restart`: scalarization for `pretrain_steps`, then a params-only reset and
  `finetune_steps` more at the same rate.
- `transfer`: pre-train on the high task(s), fine-tune on the low task(s)
  alone (the paper's Figure 6).
- `pretrain_length`: PTJF with `pretrain_steps` a list and either
  `finetune_steps` fixed or `total_steps` fixed (fine-tune = total - pre).
- `schedule`: joint training from scratch for `steps` with the low task's
  rate changing: `rates = [[start, end], ...]`, `shape = "linear"` (default:
  from start to end over the steps) or `"step"` (start before `switch_step`,
  end from it on). Runs `sched_lin_r<start>-<end>`, `sched_step_r<start>-<end>_at<N>`.
  The local engine draws each step's batch with its own rates
  (`sampling.Linear`, `sampling.Switch`); engine "t5x" runs the schedule as
  `segments` (default DEFAULT_SEGMENTS = 4; a step schedule always 2, exact)
  chained `continue` phases `seg1`, `seg2` ..., each holding its segment's mean
  rates, with one learning-rate schedule over the whole run (SCHEDULE_STEPS).

`ptjf` takes `pretrain_steps = "auto"` (local engine only) with
`max_pretrain_steps`, `patience` (default 3) and `min_delta` (default 0): the
pre-training evaluates every EVAL_PERIOD steps and stops at the first
evaluation where the high task's validation loss has not improved by
`min_delta` for `patience` evaluations, or at the maximum (its learning-rate
schedule is the maximum's); the fine-tunes (`ptjf_auto_r<rate>`) start from
the checkpoint where it stopped, of run `pretrain_auto<max>_pat<p>_delta<d>`.

Runs can also be written out, phase by phase (`from` = "run/phase", or a
phase of the same run; `start` defaults to params_only when `from` is given):

    [[run]]
    name = "warm_ro"
    method = "transfer"
    [[run.phase]]
    name = "finetune"
    tasks = ["translate_en_fr", "translate_en_ro"]
    rates = [0.5, 0.5]
    steps = 1000
    from = "pretrain_s2000/pretrain"
    overrides = {WARMUP_STEPS = 100}

`load_plan(path_or_name, **experiment_overrides)` reads a plan file or a
built-in plan (`launch/plans/<name>.toml`) and validates it; every mistake is
a one-line `UserError`. A relative corpus_dir is relative to the working
directory.
"""
import dataclasses
import itertools
import pathlib
import tomllib
from typing import Any, Iterable, Mapping, Sequence

from ptjf import gin_files, logdir
from ptjf.errors import UserError
from ptjf.tasks import sampling

ENGINES = ("local", "t5x")
KINDS = ("scalarization", "ptjf", "restart", "transfer", "pretrain_length",
         "schedule")
# engine t5x runs a linear schedule as this many `continue` phases, each
# holding its segment's mean rates (plan key `segments`); a step schedule as 2.
DEFAULT_SEGMENTS = 4
# Grids that can be crossed with any sweep: plan key -> (gin macro, run suffix).
CROSS_GRIDS = {"lrs": ("LEARNING_RATE", "lr"),
               "dropouts": ("DROPOUT_RATE", "d"),
               "warmups": ("WARMUP_STEPS", "w"),
               "seeds": ("RANDOM_SEED", "seed")}


@dataclasses.dataclass(frozen=True)
class RateSchedule:
  """Rates that change over a run (kind "schedule"), per task in the phase's order.

  steps: the whole schedule's (on engine t5x, of all its segments);
  segment: (k, n) when this phase is the k-th of n `continue` phases (engine
  t5x), holding that segment's mean rates (`sampling.Linear.segments`).
  """
  shape: str
  start: tuple[float, ...]
  end: tuple[float, ...]
  steps: int
  switch_step: int | None = None
  segment: tuple[int, int] | None = None

  def sampler(self, tasks: Sequence[str]) -> sampling.Linear | sampling.Switch:
    """The rates of every step (`sampling.schedule`)."""
    return sampling.schedule(self.shape, dict(zip(tasks, self.start)),
                             dict(zip(tasks, self.end)), self.steps,
                             self.switch_step)

  def describe(self, tasks: Sequence[str]) -> str:
    """The low (last) task's schedule in words, for the dry run.

    >>> RateSchedule("step", (0.9, 0.1), (0.5, 0.5), 1000, 800).describe(["fr", "ro"])
    'step schedule: ro rate 0.1 -> 0.5 at step 800 of 1000'
    """
    at = (f"at step {self.switch_step} of {self.steps}" if self.shape == "step"
          else f"over {self.steps} steps")
    return (f"{self.shape} schedule: {tasks[-1]} rate {self.start[-1]:g} -> "
            f"{self.end[-1]:g} {at}")

  def record(self, tasks: Sequence[str]) -> dict[str, Any]:
    """The schedule as ptjf_phase.json holds it."""
    out = {"shape": self.shape,
           "start": sampling.normalize(dict(zip(tasks, self.start))),
           "end": sampling.normalize(dict(zip(tasks, self.end))),
           "steps": self.steps, "switch_step": self.switch_step,
           "segment": None if self.segment is None else list(self.segment)}
    return {k: v for k, v in out.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Plateau:
  """Stop a phase at the first evaluation (every `eval_period` steps) where
  `task`'s validation loss has not improved on its best by at least
  `min_delta` for `patience` evaluations (pretrain_steps = "auto")."""
  task: str
  patience: int
  min_delta: float
  eval_period: int

  def describe(self, max_steps: int) -> str:
    """The rule in words, for the dry run.

    >>> Plateau("fr", 3, 0.01, 100).describe(1600)[:72]
    'stops at the first evaluation (every 100 steps) where fr validation loss'
    """
    return (f"stops at the first evaluation (every {self.eval_period} steps) "
            f"where {self.task} validation loss has not improved by >= "
            f"{self.min_delta:g} for {self.patience} evaluations, else at "
            f"{max_steps}")

  def record(self, max_steps: int) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "max_steps": max_steps}


@dataclasses.dataclass(frozen=True)
class Phase:
  """One training job.

  tasks: the tasks trained on; with `rates` (same order, normalised by the
    engine) a static mixture, with `tau` a temperature mixture, with `unimax`
    (budget in examples, max_epochs) a UniMax mixture, with one task and none
    of these the task alone.
  start: "scratch", "params_only" (PTJF reset) or "continue".
  parent: "run/phase" whose final checkpoint this phase starts from (with
    start "continue", `steps` counts on from its step, as T5X's TRAIN_STEPS).
  overrides: gin macros for this phase (LEARNING_RATE, WARMUP_STEPS ...).
  schedule: rates changing over the phase (`rates` then hold their mean).
  stop: an early-stop rule; `steps` is then the most it trains.
  """
  name: str
  tasks: tuple[str, ...]
  steps: int
  rates: tuple[float, ...] | None = None
  tau: float | None = None
  unimax: tuple[int, float] | None = None
  start: str = "scratch"
  parent: str | None = None
  overrides: tuple[tuple[str, Any], ...] = ()
  schedule: RateSchedule | None = None
  stop: Plateau | None = None


@dataclasses.dataclass(frozen=True)
class Run:
  """The phases of one point of a figure; `method` goes to ptjf_phase.json."""
  name: str
  method: str
  phases: tuple[Phase, ...]


@dataclasses.dataclass
class Experiment:
  """A validated plan: settings shared by every phase, and the runs."""
  name: str
  engine: str
  model: str
  optimizer: str
  high: tuple[str, ...]
  low: tuple[str, ...]
  batch_size: int
  feature_lengths: dict[str, int]
  runs: list[Run]
  corpus_dir: str | None = None
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  t5x_gin: dict[str, str] = dataclasses.field(default_factory=dict)

  def phases(self) -> dict[str, tuple[Run, Phase]]:
    """'run/phase' -> (run, phase), in plan order."""
    return {f"{run.name}/{phase.name}": (run, phase)
            for run in self.runs for phase in run.phases}


def _fmt(value: float) -> str:
  """A rate or LR as a short run-name suffix: 0.3 -> '0.3', 1e-3 -> '0.001'."""
  return f"{value:g}"


def _tasks(value: Any, field: str) -> tuple[str, ...]:
  if isinstance(value, str):
    value = [value]
  if (not isinstance(value, list) or not value
      or not all(isinstance(t, str) and t for t in value)):
    raise UserError(f"[experiment] {field} must be a task name or a list of "
                    "task names, e.g. \"translate_en_ro\"")
  return tuple(value)


def _positive_int(value: Any, where: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise UserError(f"{where} = {value!r} is not a positive whole number of "
                    "steps: give e.g. 1000")
  return value


def _rate(value: Any, where: str) -> float:
  if (isinstance(value, bool) or not isinstance(value, (int, float))
      or not 0 < value < 1):
    raise UserError(f"{where}: rate {value!r} is outside (0, 1): give the low "
                    "task's sampling rate, e.g. 0.3")
  return float(value)


def _positive_number(value: Any) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and 0 < value < float("inf"))


def _check_keys(table: Mapping[str, Any], allowed: Iterable[str],
                where: str) -> None:
  allowed = set(allowed)
  for key in table:
    if key not in allowed:
      raise UserError(f"unknown field {key!r} in {where}: use one of "
                      f"{', '.join(sorted(allowed))}")


# --- built-in sweep kinds ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Mix:
  """The joint mixture of one grid point: a low-task rate, a tau or UniMax's
  max_epochs (and budget; None: the phase's steps x batch size)."""
  suffix: str
  rates: tuple[float, ...] | None
  tau: float | None
  max_epochs: float | None = None
  budget: int | None = None

  def phase_mix(self, tasks: tuple[str, ...], steps: int,
                batch_size: int) -> dict[str, Any]:
    """Phase fields of this mixture for a phase of `steps` steps."""
    unimax = None
    if self.max_epochs is not None:
      unimax = (self.budget or steps * batch_size, self.max_epochs)
    return {"tasks": tasks, "rates": self.rates, "tau": self.tau,
            "unimax": unimax}


def _grid(sweep: Mapping[str, Any], exp: "Experiment",
          where: str) -> list[_Mix]:
  """Mixture points of a sweep: `rates` (two tasks), `taus` or `unimax`
  (any number)."""
  tasks = exp.high + exp.low
  given = [k for k in ("rates", "taus", "unimax") if k in sweep]
  if len(given) > 1:
    raise UserError(f"{where} has {' and '.join(given)}: give one of them")
  if "unimax_budget" in sweep and "unimax" not in sweep:
    raise UserError(f"{where} has unimax_budget but no unimax = [max_epochs, "
                    "...]: add it, or drop the budget")
  if "rates" in sweep:
    if len(exp.high) != 1 or len(exp.low) != 1:
      raise UserError(f"{where}: rates need exactly one high and one low task "
                      f"(have {len(tasks)} tasks): use taus = [...] instead")
    rates = sweep["rates"]
    if not isinstance(rates, list) or not rates:
      raise UserError(f"{where}: rates must be a non-empty list, e.g. "
                      "[0.1, 0.3, 0.5]")
    return [_Mix(f"r{_fmt(r)}", (round(1 - r, 12), r), None)
            for r in (_rate(r, where) for r in rates)]
  if "taus" in sweep:
    taus = sweep["taus"]
    if (not isinstance(taus, list) or not taus
        or not all(_positive_number(t) for t in taus)):
      raise UserError(f"{where}: taus must be a non-empty list of positive "
                      "temperatures, e.g. [1, 3.33]")
    return [_Mix(f"t{_fmt(t)}", None, float(t)) for t in taus]
  if "unimax" in sweep:
    epochs, budget = sweep["unimax"], sweep.get("unimax_budget")
    if (not isinstance(epochs, list) or not epochs
        or not all(_positive_number(e) for e in epochs)):
      raise UserError(f"{where}: unimax must be a non-empty list of positive "
                      "max_epochs, e.g. [1, 4]")
    if budget is not None:
      budget = _positive_int(budget, f"{where} unimax_budget")
    return [_Mix(f"u{_fmt(e)}", None, None, float(e), budget) for e in epochs]
  raise UserError(f"{where} has no mixture grid: give rates = [0.1, ...] (two "
                  "tasks), taus = [3.33] or unimax = [1] (any number of tasks)")


def _pretrain_mix(exp: "Experiment") -> dict[str, Any]:
  """Pre-training on the high task(s): alone, or proportional to size."""
  return {"tasks": exp.high, "tau": None if len(exp.high) == 1 else 1.0}


def _steps_list(value: Any, where: str) -> list[int]:
  values = value if isinstance(value, list) else [value]
  if not values:
    raise UserError(f"{where} is an empty list: give at least one step count")
  return [_positive_int(v, where) for v in values]


def _sweep_runs(sweep: Mapping[str, Any], exp: "Experiment", where: str,
                suffix: str, overrides: Mapping[str, tuple]) -> list[Run]:
  """The runs of one sweep table for one point of its cross grids.

  overrides: gin macros of the "main" (scalarization), "first" (pre-training,
  restart's first phase) and "second" (fine-tune) phases.
  """
  kind = sweep["kind"]
  prefix = sweep.get("prefix", {"scalarization": "scal", "schedule": "sched",
                               "pretrain_length": "ptjf"}.get(kind, kind))
  all_tasks = exp.high + exp.low
  joint = lambda m, steps: m.phase_mix(all_tasks, steps, exp.batch_size)
  runs = []

  def pretrain_run(steps: int, stop: Plateau | None = None) -> tuple[Run, str]:
    # Sweeps share it unless one is given a prefix of its own.
    name = f"{sweep['prefix']}_" if "prefix" in sweep else ""
    name += (f"pretrain_s{steps}" if stop is None else
             f"pretrain_auto{steps}_pat{stop.patience}_delta{_fmt(stop.min_delta)}")
    name += suffix
    # Method "ptjf" with phase "pretrain": analysis draws no point for it.
    run = Run(name, "ptjf", (Phase("pretrain", steps=steps,
                                   overrides=overrides["first"], stop=stop,
                                   **_pretrain_mix(exp)),))
    runs.append(run)
    return run, f"{name}/pretrain"

  if kind == "scalarization":
    lengths = _steps_list(sweep.get("steps"), f"{where} steps")
    for steps, mix in itertools.product(lengths, _grid(sweep, exp, where)):
      tag = f"_s{steps}" if len(lengths) > 1 else ""
      runs.append(Run(f"{prefix}_{mix.suffix}{tag}{suffix}", "scalarization",
                      (Phase("main", steps=steps, overrides=overrides["main"],
                             **joint(mix, steps)),)))
  elif kind in ("ptjf", "transfer", "pretrain_length"):
    if kind == "pretrain_length":
      pre_list = _steps_list(sweep.get("pretrain_steps"),
                             f"{where} pretrain_steps")
      if ("finetune_steps" in sweep) == ("total_steps" in sweep):
        raise UserError(f"{where}: give exactly one of finetune_steps (fixed) "
                        "or total_steps (fine-tune = total - pre-train)")
    else:
      stop = (_auto_pretrain(sweep, exp, where, dict(overrides["first"]))
              if kind == "ptjf" else None)
      pre_list = [stop[0] if stop else _positive_int(
          sweep.get("pretrain_steps"), f"{where} pretrain_steps")]
    for pre in pre_list:
      if "total_steps" in sweep:
        fine = _positive_int(sweep["total_steps"], f"{where} total_steps") - pre
        _positive_int(fine, f"{where} total_steps - pretrain_steps {pre}")
      else:
        fine = _positive_int(sweep.get("finetune_steps"),
                             f"{where} finetune_steps")
      if kind == "pretrain_length" or not stop:
        _, parent = pretrain_run(pre)
        tag = f"_p{pre}" if kind == "pretrain_length" else ""
      else:
        _, parent = pretrain_run(pre, stop[1])
        tag = "_auto"
      if kind == "transfer":
        mixes = [{"tasks": exp.low, "tau": None if len(exp.low) == 1 else 1.0}]
        names = [f"{prefix}{suffix}"]
      else:
        grid = _grid(sweep, exp, where)
        mixes = [joint(m, fine) for m in grid]
        names = [f"{prefix}{tag}_{m.suffix}{suffix}" for m in grid]
      for name, mix in zip(names, mixes):
        runs.append(Run(name, "transfer" if kind == "transfer" else "ptjf",
                        (Phase("finetune", steps=fine, start="params_only",
                               parent=parent, overrides=overrides["second"],
                               **mix),)))
  elif kind == "restart":
    pre = _positive_int(sweep.get("pretrain_steps"), f"{where} pretrain_steps")
    fine = _positive_int(sweep.get("finetune_steps"), f"{where} finetune_steps")
    for mix in _grid(sweep, exp, where):
      name = f"{prefix}_{mix.suffix}{suffix}"
      runs.append(Run(name, "restart", (
          Phase("main", steps=pre, overrides=overrides["first"],
                **joint(mix, pre)),
          Phase("restart", steps=fine, start="params_only",
                parent=f"{name}/main", overrides=overrides["second"],
                **joint(mix, fine)))))
  elif kind == "schedule":
    runs += _schedule_runs(sweep, exp, where, prefix, suffix,
                           overrides["main"])
  return runs


def _auto_pretrain(sweep: Mapping[str, Any], exp: "Experiment", where: str,
                   overrides: Mapping[str, Any]) -> tuple[int, Plateau] | None:
  """(max_pretrain_steps, the stop rule) of pretrain_steps = "auto", else
  None (after refusing the rule's keys without it)."""
  keys = sorted(_AUTO_KEYS & set(sweep))
  if sweep.get("pretrain_steps") != "auto":
    if keys:
      raise UserError(f"{where}: {', '.join(keys)} go with pretrain_steps = "
                      "\"auto\": set it, or drop them")
    return None
  if exp.engine != "local":
    raise UserError(f"{where}: pretrain_steps = \"auto\" runs on the local "
                    "engine only; on engine \"t5x\" give pretrain_steps the "
                    "step a local run chose, or sweep it (kind = "
                    "\"pretrain_length\")")
  period = overrides.get("EVAL_PERIOD", exp.overrides.get(
      "EVAL_PERIOD", gin_files.local_default("EVAL_PERIOD")))
  top = sweep.get("max_pretrain_steps")
  top = _positive_int(top, f"{where} max_pretrain_steps")
  if top < period:
    raise UserError(f"{where}: max_pretrain_steps = {top} is below "
                    f"EVAL_PERIOD ({period}), so the rule never looks: give "
                    f"at least {period}, or a smaller EVAL_PERIOD")
  patience, delta = sweep.get("patience", 3), sweep.get("min_delta", 0.0)
  if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
    raise UserError(f"{where}: patience = {patience!r}: give the number of "
                    "evaluations without improvement to wait, at least 1")
  if (isinstance(delta, bool) or not isinstance(delta, (int, float))
      or not 0 <= delta < float("inf")):
    raise UserError(f"{where}: min_delta = {delta!r}: give the least loss "
                    "decrease that counts as an improvement, >= 0 (e.g. 0.01)")
  return top, Plateau(exp.high[0], patience, float(delta), period)


def _schedule_runs(sweep: Mapping[str, Any], exp: "Experiment", where: str,
                   prefix: str, suffix: str, overrides: tuple) -> list[Run]:
  """Runs of kind "schedule": the low task's rate from start to end over
  `steps`; one phase on the local engine, chained `continue` segments on T5X."""
  if len(exp.high) != 1 or len(exp.low) != 1:
    raise UserError(f"{where}: a schedule needs exactly one high and one low "
                    "task: set [experiment] high and low to one task each")
  steps = _positive_int(sweep.get("steps"), f"{where} steps")
  shape, switch = sweep.get("shape", "linear"), sweep.get("switch_step")
  count = _positive_int(sweep.get("segments", DEFAULT_SEGMENTS),
                        f"{where} segments")
  pairs = sweep.get("rates")
  if (not isinstance(pairs, list) or not pairs or not all(
      isinstance(p, list) and len(p) == 2 for p in pairs)):
    raise UserError(f"{where}: rates must be a list of [start, end] low-task "
                    "rates, e.g. [[0.05, 0.6]]")
  tasks = exp.high + exp.low
  runs = []
  for pair in pairs:
    a, b = (_rate(r, where) for r in pair)
    schedule = RateSchedule(str(shape), (round(1 - a, 12), a),
                            (round(1 - b, 12), b), steps, switch)
    try:
      sampler = schedule.sampler(tasks)
    except UserError as e:
      raise UserError(f"{where}: {e}") from None
    name = f"{prefix}_{'lin' if shape == 'linear' else 'step'}_r{_fmt(a)}-{_fmt(b)}"
    name += (f"_at{switch}" if shape == "step" else "") + suffix
    if exp.engine == "local":
      mean = sampler.mean(0, steps)
      phases = [Phase("main", tasks, steps,
                      tuple(round(mean[t], 12) for t in tasks),
                      overrides=overrides, schedule=schedule)]
    else:
      segments = sampler.segments(count)
      phases = [Phase(f"seg{k}", tasks, last,
                      tuple(round(held[t], 12) for t in tasks),
                      start="continue" if k > 1 else "scratch",
                      parent=f"{name}/seg{k - 1}" if k > 1 else None,
                      overrides=(*overrides, ("SCHEDULE_STEPS", steps)),
                      schedule=dataclasses.replace(
                          schedule, segment=(k, len(segments))))
                for k, (_, last, held) in enumerate(segments, 1)]
    runs.append(Run(name, "schedule", tuple(phases)))
  return runs


_TWO_PHASES = {"pretrain_steps", "finetune_steps", "pretrain_overrides",
               "finetune_overrides"}
_MIXES = {"rates", "taus", "unimax", "unimax_budget"}
_AUTO_KEYS = {"max_pretrain_steps", "patience", "min_delta"}
_SWEEP_KEYS = {
    "scalarization": {"steps"} | _MIXES,
    "ptjf": _TWO_PHASES | _MIXES | _AUTO_KEYS,
    "restart": _TWO_PHASES | _MIXES,
    "transfer": _TWO_PHASES,
    "pretrain_length": _TWO_PHASES | {"total_steps"} | _MIXES,
    "schedule": {"steps", "rates", "shape", "switch_step", "segments"},
}
# Keys one kind takes and a user may give another by mistake.
_ONLY_FOR = {**{k: "ptjf" for k in _AUTO_KEYS},
             **{k: "schedule" for k in ("shape", "switch_step", "segments")}}


def sweep_runs(sweep: Mapping[str, Any], exp: "Experiment",
               where: str = "[[sweep]]") -> list[Run]:
  """All runs of one `[[sweep]]` table, crossed with its lrs/dropouts/warmups.

  >>> exp = Experiment("x", "local", "tiny", "nmt_adam", ("fr",), ("ro",), 8,
  ...                  {}, [])
  >>> [r.name for r in sweep_runs({"kind": "ptjf", "pretrain_steps": 20,
  ...   "finetune_steps": 10, "rates": [0.1, 0.5], "dropouts": [0, 0.1]}, exp)]
  ... # doctest: +NORMALIZE_WHITESPACE
  ['pretrain_s20_d0', 'ptjf_r0.1_d0', 'ptjf_r0.5_d0',
   'pretrain_s20_d0.1', 'ptjf_r0.1_d0.1', 'ptjf_r0.5_d0.1']
  """
  kind = sweep.get("kind")
  if kind not in KINDS:
    raise UserError(f"unknown sweep kind {kind!r} in {where}: use one of "
                    f"{', '.join(KINDS)}")
  where = f"{where} (kind {kind})"
  for key in sorted(set(sweep) & set(_ONLY_FOR)):
    if _ONLY_FOR[key] != kind:
      raise UserError(f"{where}: {key} is a key of kind = "
                      f"\"{_ONLY_FOR[key]}\": drop it, or use that kind")
  _check_keys(sweep, _SWEEP_KEYS[kind] | set(CROSS_GRIDS)
              | {"kind", "prefix", "overrides"}, where)
  base = _overrides(sweep.get("overrides", {}), where)
  first = _overrides(sweep.get("pretrain_overrides", {}), where)
  second = _overrides(sweep.get("finetune_overrides", {}), where)
  grids = []
  for key, (macro, tag) in CROSS_GRIDS.items():
    if key in sweep:
      values = sweep[key]
      if (not isinstance(values, list) or not values or not all(
          isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
          for v in values)):
        raise UserError(f"{where}: {key} must be a non-empty list of numbers "
                        ">= 0")
      grids.append([(macro, f"_{tag}{_fmt(v)}", v) for v in values])
  runs = []
  for point in itertools.product(*grids):
    suffix = "".join(s for _, s, _ in point)
    grid = {m: v for m, _, v in point}
    runs += _sweep_runs(sweep, exp, where, suffix, {
        "main": tuple({**base, **grid}.items()),
        "first": tuple({**base, **first, **grid}.items()),
        "second": tuple({**base, **second, **grid}.items())})
  return runs


def _overrides(value: Any, where: str) -> dict[str, Any]:
  if not isinstance(value, dict):
    raise UserError(f"{where}: overrides must be a table of gin macros, e.g. "
                    "{LEARNING_RATE = 1e-3}")
  for key in value:
    if not key.isupper() or not key.replace("_", "").isalnum():
      raise UserError(f"{where}: override {key!r} is not an ALL_CAPS gin "
                      "macro: use e.g. LEARNING_RATE, WARMUP_STEPS")
  return dict(value)


_PHASE_KEYS = {"name", "tasks", "rates", "tau", "unimax", "steps", "start",
               "from", "overrides"}


def _explicit_run(table: Mapping[str, Any], where: str,
                  batch_size: int) -> Run:
  """A `[[run]]` table: name, method, and `[[run.phase]]` entries.

  A phase's `from` names the phase it starts from, "run/phase" or, within the
  same run, "phase"; `unimax = {max_epochs = 1, budget = ...}` (budget
  defaults to steps x batch_size).
  """
  _check_keys(table, {"name", "method", "phase"}, where)
  name = table.get("name")
  if not isinstance(name, str) or not name or "/" in name:
    raise UserError(f"{where} needs a name without '/', e.g. name = \"mine\"")
  phases = []
  for i, p in enumerate(table.get("phase", [])):
    pwhere = f"{where} {name!r} phase {i + 1}"
    _check_keys(p, _PHASE_KEYS, pwhere)
    tasks = p.get("tasks")
    if isinstance(tasks, str):
      tasks = [tasks]
    if not isinstance(tasks, list) or not tasks:
      raise UserError(f"{pwhere} has no tasks: give tasks = [\"...\"]")
    rates, tau = p.get("rates"), p.get("tau")
    if rates is not None and (
        not isinstance(rates, list) or len(rates) != len(tasks)
        or not all(_positive_number(r) for r in rates)):
      raise UserError(f"{pwhere}: give one positive rate per task "
                      f"({len(tasks)})")
    if tau is not None and not _positive_number(tau):
      raise UserError(f"{pwhere}: tau = {tau!r} is not a positive number: "
                      "use e.g. 3.33")
    steps = _positive_int(p.get("steps"), f"{pwhere} steps")
    unimax = p.get("unimax")
    if unimax is not None:
      if (not isinstance(unimax, dict) or not set(unimax) <= {"budget",
                                                             "max_epochs"}
          or not _positive_number(unimax.get("max_epochs", 1))):
        raise UserError(f"{pwhere}: unimax = {unimax!r}: give a table "
                        "{max_epochs = 1} (and budget, in examples)")
      unimax = (_positive_int(unimax.get("budget", steps * batch_size),
                              f"{pwhere} unimax budget"),
                float(unimax.get("max_epochs", 1)))
    start = p.get("start", "scratch" if "from" not in p else "params_only")
    if start not in logdir.START_MODES:
      raise UserError(f"{pwhere}: unknown start {start!r}: use one of "
                      f"{', '.join(logdir.START_MODES)}")
    parent = p.get("from")
    if parent is not None and "/" not in parent:
      parent = f"{name}/{parent}"
    phases.append(Phase(
        name=p.get("name", "main"), tasks=tuple(tasks),
        steps=steps, rates=tuple(float(r) for r in rates) if rates else None,
        tau=None if tau is None else float(tau), unimax=unimax, start=start,
        parent=parent,
        overrides=tuple(_overrides(p.get("overrides", {}), pwhere).items())))
  if not phases:
    raise UserError(f"{where} {name!r} has no [[run.phase]]: give at least one")
  return Run(name, table.get("method", "custom"), tuple(phases))


# --- loading and validation --------------------------------------------------

_EXPERIMENT_KEYS = {"name", "engine", "model", "optimizer", "high", "low",
                    "batch_size", "feature_lengths", "corpus_dir", "overrides",
                    "t5x_gin"}
# engine t5x: the entry gin file of a phase on one task, on a mixture, and of
# a phase that starts params_only from another (a continue phase takes the
# file of the phase it continues: one task or a mixture).
DEFAULT_T5X_GIN = {"single": "gin/ptjf_nmt3_pretrain.gin",
                   "mixture": "gin/ptjf_nmt3_scalarization.gin",
                   "finetune": "gin/ptjf_nmt3_finetune.gin"}


def parse_plan(data: Mapping[str, Any], **overrides: Any) -> Experiment:
  """An Experiment from a parsed plan; `overrides` replace [experiment] keys."""
  _check_keys(data, {"experiment", "sweep", "run"}, "the plan")
  settings = {**data.get("experiment", {}), **overrides}
  _check_keys(settings, _EXPERIMENT_KEYS, "[experiment]")
  for key in ("name", "high", "low"):
    if key not in settings:
      raise UserError(f"[experiment] has no {key!r}: add e.g. "
                      + {"name": 'name = "ro_fr"',
                         "high": 'high = "translate_en_fr"',
                         "low": 'low = "translate_en_ro"'}[key])
  for key in ("name", "model", "optimizer"):
    if key in settings and (not isinstance(settings[key], str)
                            or not settings[key] or "/" in settings[key]):
      raise UserError(f"[experiment] {key} = {settings[key]!r} is not a plain "
                      "name: give e.g. model = \"small\"")
  lengths = settings.get("feature_lengths", {"inputs": 32, "targets": 32})
  if (not isinstance(lengths, dict) or set(lengths) != {"inputs", "targets"}
      or not all(isinstance(v, int) and v > 0 for v in lengths.values())):
    raise UserError(f"[experiment] feature_lengths = {lengths!r}: give "
                    "{inputs = 64, targets = 64} (positive token counts)")
  engine = settings.get("engine", "local")
  if engine not in ENGINES:
    raise UserError(f"unknown engine {engine!r}: use one of "
                    f"{', '.join(ENGINES)}")
  if not isinstance(settings.get("t5x_gin", {}), dict):
    raise UserError("[experiment] t5x_gin must be a table, e.g. "
                    "{finetune = \"gin/ptjf_mc4_xxl.gin\"}")
  _check_keys(settings.get("t5x_gin", {}), DEFAULT_T5X_GIN,
              "[experiment] t5x_gin")
  exp = Experiment(
      name=str(settings["name"]), engine=engine,
      model=settings.get("model", "small"),
      optimizer=settings.get("optimizer", "nmt_adam"),
      high=_tasks(settings["high"], "high"), low=_tasks(settings["low"], "low"),
      batch_size=_positive_int(settings.get("batch_size", 32),
                               "[experiment] batch_size"),
      feature_lengths=dict(lengths),
      runs=[],
      corpus_dir=(str(settings["corpus_dir"])
                  if settings.get("corpus_dir") else None),
      overrides=_overrides(settings.get("overrides", {}), "[experiment]"),
      t5x_gin={**DEFAULT_T5X_GIN, **settings.get("t5x_gin", {})})
  if set(exp.high) & set(exp.low):
    raise UserError("a task is both high and low: give each task once")
  runs = []
  for i, sweep in enumerate(data.get("sweep", [])):
    runs += sweep_runs(sweep, exp, f"[[sweep]] {i + 1}")
  for i, table in enumerate(data.get("run", [])):
    runs.append(_explicit_run(table, f"[[run]] {i + 1}", exp.batch_size))
  exp.runs = _dedupe(runs)
  if not exp.runs:
    raise UserError("the plan has no runs: add a [[sweep]] or [[run]] table")
  validate(exp)
  return exp


def _dedupe(runs: Sequence[Run]) -> list[Run]:
  """Runs by name, once; two sweeps may share a pre-training run."""
  seen: dict[str, Run] = {}
  for run in runs:
    if run.name in seen and seen[run.name] != run:
      raise UserError(f"two different runs are named {run.name!r}: give one "
                      "of the sweeps a prefix = \"...\"")
    seen.setdefault(run.name, run)
  return list(seen.values())


def validate(exp: Experiment) -> None:
  """UserError for a broken reference, start or dependency cycle."""
  phases = exp.phases()
  for key, (_, phase) in phases.items():
    if phase.start == "scratch" and phase.parent:
      raise UserError(f"{key} starts from scratch but names a parent "
                      f"{phase.parent!r}: use start = \"params_only\" or "
                      "\"continue\"")
    if phase.start != "scratch" and not phase.parent:
      raise UserError(f"{key} starts {phase.start!r} but names no phase to "
                      "start from: add from = \"run/phase\"")
    if phase.parent and phase.parent not in phases:
      raise UserError(f"{key} starts from unknown phase {phase.parent!r}: "
                      f"use one of {', '.join(phases)}")
    if len(phase.tasks) > 1 and (phase.rates, phase.tau,
                                 phase.unimax) == (None, None, None):
      raise UserError(f"{key} has {len(phase.tasks)} tasks but no rates, tau "
                      "or unimax: give one of them")
    drawn = phase.steps * exp.batch_size
    if phase.unimax and phase.unimax[0] != drawn:
      raise UserError(f"{key}: UniMax budget {phase.unimax[0]} examples, but "
                      f"the phase draws {phase.steps} steps x batch "
                      f"{exp.batch_size} = {drawn}: drop the budget (it "
                      "defaults to that) or change steps")
  order(exp)


def order(exp: Experiment, keys: Iterable[str] | None = None) -> list[str]:
  """Phase keys, every phase after the phase it starts from (plan order else).

  `keys` limits the result to those phases and what they depend on.
  """
  phases = exp.phases()
  result: list[str] = []
  state: dict[str, str] = {}

  def visit(key: str, path: list[str]) -> None:
    if state.get(key) == "done":
      return
    if state.get(key) == "visiting":
      raise UserError("phases start from each other in a cycle: "
                      f"{' -> '.join(path + [key])}; break the cycle")
    state[key] = "visiting"
    parent = phases[key][1].parent
    if parent:
      visit(parent, path + [key])
    state[key] = "done"
    result.append(key)

  for key in (phases if keys is None else keys):
    visit(key, [])
  return result


def run_keys(exp: Experiment, runs: Iterable[str]) -> list[str]:
  """Phase keys of the named runs, after checking the names."""
  by_name = {run.name: run for run in exp.runs}
  keys = []
  for name in runs:
    if name not in by_name:
      raise UserError(f"no run {name!r} in plan {exp.name!r}: use one of "
                      f"{', '.join(by_name)}")
    keys += [f"{name}/{p.name}" for p in by_name[name].phases]
  return keys


def cost_lines(exp: Experiment, keys: Sequence[str]) -> list[str]:
  """Per-run step cost and the total, counting a shared phase once.

  >>> exp = parse_plan({"experiment": {"name": "x", "high": "fr", "low": "ro"},
  ...   "sweep": [{"kind": "ptjf", "pretrain_steps": 200,
  ...              "finetune_steps": 100, "rates": [0.1, 0.5]}]})
  >>> print("\\n".join(cost_lines(exp, order(exp))))
  pretrain_s200                       200 steps
  ptjf_r0.1                           100 steps (+ 200 in pretrain_s200)
  ptjf_r0.5                           100 steps (+ 200 in pretrain_s200)
  total: 400 steps in 3 phases (600 if nothing were shared)
  """
  phases = exp.phases()

  def ancestry(key: str) -> list[str]:
    chain = []
    while phases[key][1].parent:
      key = phases[key][1].parent
      chain.append(key)
    return chain

  # Without sharing, every run nobody starts from would train its whole chain.
  lenders = {phases[a][0].name for k in keys for a in ancestry(k)
             if phases[a][0] is not phases[k][0]}
  lines, unshared = [], 0
  for run in exp.runs:
    own = [k for k in keys if phases[k][0] is run]
    if not own:
      continue
    steps = sum(own_steps(exp, k) for k in own)
    borrowed = {a for k in own for a in ancestry(k) if phases[a][0] is not run}
    extra = sum(own_steps(exp, a) for a in borrowed)
    if run.name not in lenders:
      unshared += steps + extra
    note = ""
    if borrowed:
      note = (f" (+ {extra} in "
              f"{', '.join(sorted({a.split('/')[0] for a in borrowed}))})")
    lines.append(f"{run.name:<32} {steps:>6} steps{note}")
    lines += [f"  {line}" for line in _phase_notes(exp, [phases[k][1] for k in own])]
  total = sum(own_steps(exp, k) for k in keys)
  lines.append(f"total: {total} steps in {len(keys)} phases "
               f"({unshared} if nothing were shared)")
  return lines


def own_steps(exp: Experiment, key: str) -> int:
  """The steps phase `key` trains: a `continue` phase counts on from its
  parent's step, so only the difference is its own."""
  phase = exp.phases()[key][1]
  if phase.start != "continue":
    return phase.steps
  return phase.steps - exp.phases()[phase.parent][1].steps


def _phase_notes(exp: Experiment, phases: Sequence[Phase]) -> list[str]:
  """Dry-run lines for the rules of a run's phases: its schedule (and its
  T5X segments), its early stop (the steps above are its most)."""
  notes = []
  for phase in phases:
    if phase.stop:
      notes.append(f"{phase.name}: {phase.stop.describe(phase.steps)} (counted "
                   f"above at its most, {phase.steps})")
    if phase.schedule and phase.schedule.segment is None:
      notes.append(phase.schedule.describe(phase.tasks))
    elif phase.schedule and phase.schedule.segment[0] == 1:
      held = ", ".join(f"{p.rates[-1]:.3g}" for p in phases)
      notes.append(f"{phase.schedule.describe(phase.tasks)}, as "
                   f"{len(phases)} `continue` phases on T5X holding "
                   f"{phase.tasks[-1]} rates {held}")
  return notes


def builtin_plan_path(name: str) -> pathlib.Path:
  """launch/plans/<name>.toml, shipped with ptjf."""
  path = pathlib.Path(__file__).parent / "plans" / f"{name}.toml"
  if not path.is_file():
    names = sorted(p.stem for p in path.parent.glob("*.toml"))
    raise UserError(f"no plan file or built-in plan {name!r}: give a .toml "
                    f"path or one of {', '.join(names)}")
  return path


def load_plan(path_or_name: str | pathlib.Path, **overrides: Any) -> Experiment:
  """Read and validate a plan file, or a built-in plan by name.

  `overrides` replace [experiment] keys, e.g. `corpus_dir="data/demo"`.
  """
  path = pathlib.Path(path_or_name)
  if not path.is_file():
    if path.suffix or len(path.parts) > 1:
      raise UserError(f"no plan file {path}: check the path, or give a "
                      "built-in plan name such as demo")
    path = builtin_plan_path(str(path_or_name))
  try:
    data = tomllib.loads(path.read_text())
  except tomllib.TOMLDecodeError as e:
    raise UserError(f"plan {path} is not valid TOML ({e}): fix the "
                    "file") from None
  return parse_plan(data, **overrides)
