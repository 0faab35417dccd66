"""Per-experiment numbers: run points, best low-resource losses, PTJF's gain.

A run's trade-off point is its *final* validation loss on each task (the paper's
"final validation" loss), read from the run's last phase. A PTJF `pretrain` run
is a shared phase: it contributes compute, not a point.
"""
import dataclasses
import statistics

from ptjf.analysis import events as events_lib
from ptjf.analysis import pareto
from ptjf.analysis import runs as runs_lib
from ptjf.errors import UserError

SCALARIZATION, PTJF, RESTART = "scalarization", "ptjf", "restart"
PTJF_AUTO = "ptjf auto"   # the label of PTJF runs whose pre-training stopped by its rule


@dataclasses.dataclass
class RunPoint:
  """One run (all its phases) summarised for fronts and tables."""
  experiment: str
  run: str
  method: str
  label: str  # method, "scalarization <steps>" when lengths differ, PTJF_AUTO
  last_phase: str
  rates: dict[str, float]
  parent_steps: int
  total_steps: int
  final: dict[tuple[str, str, str], float]  # (split, metric, task) -> value
  rows: list[events_lib.Row]  # the last phase's rows
  all_rows: list[events_lib.Row]  # rows of all the run's phases


def _phase_steps(phase: runs_lib.PhaseLogdir, rows: list[events_lib.Row]) -> int:
  """The steps a phase trained: where its rule stopped it, its metadata `steps`, else the last
  logged step (less the parent's step a `continue` phase counts on from)."""
  if phase.switch_step or phase.steps:
    return int(phase.switch_step or phase.steps) - phase.first_step
  steps = [r.step for r in rows
           if (r.experiment, r.run, r.phase)
           == (phase.experiment, phase.run, phase.phase)]
  return max(steps, default=0) - phase.first_step


def tasks_of(phases: list[runs_lib.PhaseLogdir]) -> list[str]:
  """The experiment's tasks: every task named in some phase's rates, sorted."""
  return sorted({t for p in phases for t in p.rates})


def low_resource_task(phases: list[runs_lib.PhaseLogdir],
                      low_task: str | None = None) -> str:
  """`low_task` if given; else the task with fewest training examples
  (`task_sizes` in ptjf_phase.json); else the smaller mean rate among the
  scalarization runs (all multi-task runs if there are none)."""
  tasks = tasks_of(phases)
  if low_task:
    if low_task not in tasks:
      raise UserError(f"--low-task {low_task!r} is not a task of these runs: "
                      f"choose from {', '.join(tasks) or '(none)'}")
    return low_task
  sizes = {}
  for p in phases:
    sizes.update({t: s for t, s in p.task_sizes.items() if t in tasks})
  if len(sizes) >= 2:
    return min(sizes, key=lambda t: (sizes[t], t))
  pool = [p for p in phases if p.method == SCALARIZATION and len(p.rates) > 1]
  pool = pool or [p for p in phases if len(p.rates) > 1]
  if not pool:
    raise UserError("cannot tell the low-resource task (no multi-task run and "
                    "no task_sizes): pass --low-task TASK")
  mean = {t: statistics.mean(p.rates.get(t, 0.0) for p in pool) for t in tasks}
  return min(mean, key=lambda t: (mean[t], t))


def run_points(phases: list[runs_lib.PhaseLogdir],
               rows: list[events_lib.Row]) -> list[RunPoint]:
  """One RunPoint per (experiment, run), except shared `pretrain` runs."""
  by_run: dict[tuple[str, str], list[runs_lib.PhaseLogdir]] = {}
  stopped = {(p.experiment, f"{p.run}/{p.phase}") for p in phases if p.stop_rule}
  for p in phases:
    by_run.setdefault((p.experiment, p.run), []).append(p)
  points = []
  for (experiment, run), run_phases in sorted(by_run.items()):
    last = max(run_phases, key=lambda p: p.parent_steps)
    if last.phase == "pretrain" and last.method == PTJF:
      continue
    run_rows = [r for r in rows if (r.experiment, r.run) == (experiment, run)]
    last_rows = [r for r in run_rows if r.phase == last.phase]
    final = {}
    for r in sorted(last_rows, key=lambda r: r.step):
      final[(r.split, r.metric, r.task)] = r.value
    parent = (experiment, (last.start_from or "").rpartition("/")[0])
    label = PTJF_AUTO if last.method == PTJF and parent in stopped else last.method
    points.append(RunPoint(
        experiment, run, last.method, label, last.phase, last.rates,
        last.parent_steps, last.parent_steps + _phase_steps(last, last_rows),
        final, last_rows, run_rows))
  for experiment in {p.experiment for p in points}:
    scal = [p for p in points
            if p.experiment == experiment and p.method == SCALARIZATION]
    if len({p.total_steps for p in scal}) > 1:
      for p in scal:
        p.label = f"{SCALARIZATION} {p.total_steps}"
  return points


def low_curve(point: RunPoint, task: str, whole_run: bool
              ) -> list[tuple[float, float]]:
  """(examples seen of task, validation loss) of a run, sorted by examples.

  With whole_run, the run's phases are chained: each later phase's examples
  are offset by the examples of the phases before it (a restart run counts
  its first phase); otherwise only the last phase (PTJF's fine-tune).
  """
  if not whole_run:
    rows = point.rows
    return sorted((r.examples_seen, r.value) for r in rows
                  if r.split == "validation" and r.metric == events_lib.LOSS
                  and r.task == task and r.examples_seen is not None)
  by_phase: dict[str, list[events_lib.Row]] = {}
  for r in point.all_rows:
    if (r.split == "validation" and r.metric == events_lib.LOSS
        and r.task == task and r.examples_seen is not None):
      by_phase.setdefault(r.phase, []).append(r)
  curve, offset = [], 0.0
  for phase_rows in sorted(by_phase.values(),
                           key=lambda rs: min(r.global_step for r in rs)):
    curve += [(offset + r.examples_seen, r.value) for r in phase_rows]
    offset += max(r.examples_seen for r in phase_rows)
  return sorted(curve)


def compute_steps(phases: list[runs_lib.PhaseLogdir], rows: list[events_lib.Row],
                  points: list[RunPoint]) -> dict[str, int]:
  """Training steps per method label, each phase once: a shared pre-training
  counts once, under its own method (PTJF).

  E.g. a 100-step pretrain + two 50-step fine-tunes -> {"ptjf": 200}; a pre-training stopped
  by its rule counts under PTJF_AUTO, as the fine-tunes that start from it.
  """
  label = {(p.experiment, p.run): p.label for p in points}
  out: dict[str, int] = {}
  for p in phases:
    key = label.get((p.experiment, p.run), PTJF_AUTO if p.stop_rule else p.method)
    out[key] = out.get(key, 0) + _phase_steps(p, rows)
  return out


def low_loss(point: RunPoint, low: str) -> float | None:
  """The run's final validation loss on the low-resource task."""
  return point.final.get(("validation", events_lib.LOSS, low))


def best_by_method(points: list[RunPoint], low: str) -> dict[str, RunPoint]:
  """The run with the lowest final low-resource validation loss, per label."""
  best: dict[str, RunPoint] = {}
  for p in points:
    loss = low_loss(p, low)
    if loss is not None and (p.label not in best
                             or loss < low_loss(best[p.label], low)):
      best[p.label] = p
  return best


def examples_to_reach(points: list[RunPoint], task: str,
                      target: float) -> float | None:
  """Fewest examples of `task` (phase-local) at which any of the runs had a
  validation loss on it <= target; None if none did."""
  hits = [r.examples_seen for p in points for r in p.rows
          if r.split == "validation" and r.metric == events_lib.LOSS
          and r.task == task and r.value <= target and r.examples_seen is not None]
  return min(hits, default=None)


def experiment_numbers(phases: list[runs_lib.PhaseLogdir],
                       rows: list[events_lib.Row],
                       low_task: str | None = None) -> dict:
  """The headline numbers of one experiment (phases and rows of it only)."""
  low = low_resource_task(phases, low_task)
  tasks = tasks_of(phases)
  high = [t for t in tasks if t != low]
  points = run_points(phases, rows)
  best = best_by_method(points, low)
  out = {"experiment": phases[0].experiment, "low_task": low,
         "high_tasks": high,
         "best_low_loss": {m: low_loss(p, low) for m, p in best.items()},
         "best_run": {m: p.run for m, p in best.items()},
         "compute_steps": compute_steps(phases, rows, points),
         "switch_steps": {p.run: (p.switch_step, p.stop_rule.get("max_steps"))
                          for p in phases if p.stop_rule}}
  scal = [p for p in points if p.method == SCALARIZATION]
  ptjf = [p for p in points if p.method == PTJF]
  scal_best = min((low_loss(p, low) for p in scal
                   if low_loss(p, low) is not None), default=None)
  ptjf_best = min((low_loss(p, low) for p in ptjf
                   if low_loss(p, low) is not None), default=None)
  if ptjf_best is not None:
    out["ptjf_best_low"] = ptjf_best
    # Other methods (schedule, restart, transfer) whose best beat PTJF's: the report says so.
    out["below_ptjf"] = {m: low_loss(p, low) for m, p in best.items()
                         if p.method not in (PTJF, SCALARIZATION)
                         and low_loss(p, low) < ptjf_best}
  if scal_best is not None and ptjf_best is not None:
    out["scalarization_best_low"] = scal_best
    out["ptjf_gain_abs"] = scal_best - ptjf_best
    out["ptjf_gain_pct"] = 100.0 * (scal_best - ptjf_best) / scal_best
    # Data efficiency at a loss both methods reach: the higher of their bests.
    out["reach_target"] = target = max(scal_best, ptjf_best)
    out["ptjf_examples_to_reach"] = examples_to_reach(ptjf, low, target)
    out["scalarization_examples_to_reach"] = examples_to_reach(scal, low, target)
  if high and scal and ptjf:
    key = lambda p: tuple(p.final.get(("validation", events_lib.LOSS, t))
                          for t in [low] + high)
    scal_pts = [key(p) for p in scal if None not in key(p)]
    ptjf_pts = [key(p) for p in ptjf if None not in key(p)]
    out["ptjf_non_dominated"] = pareto.count_not_dominated_by(ptjf_pts,
                                                              scal_pts)
    out["ptjf_points"] = len(ptjf_pts)
  return out


def _fmt(value) -> str:
  """Numbers for the markdown tables: 4 significant digits, '-' for None."""
  if value is None:
    return "-"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def gain_sentence(numbers: dict) -> str:
  """PTJF's best low-resource loss against scalarization's, in words.

  >>> gain_sentence({"ptjf_gain_abs": -0.2, "ptjf_gain_pct": -8.0})[-51:]
  'loss is 0.2 higher (8%) than the best scalarization'
  """
  abs_gain, pct = numbers["ptjf_gain_abs"], numbers["ptjf_gain_pct"]
  word = "lower" if abs_gain >= 0 else "higher"
  return (f"best PTJF low-resource validation loss is {_fmt(abs(abs_gain))} "
          f"{word} ({_fmt(abs(pct))}%) than the best scalarization")


def _below_ptjf(numbers: dict) -> str:
  """The methods whose best low-resource loss beat PTJF's, e.g. 'schedule 3.7'."""
  below = numbers.get("below_ptjf", {})
  return ", ".join(f"{m} {_fmt(v)}" for m, v in sorted(below.items(), key=lambda mv: mv[1]))


def verdict(numbers: dict) -> str | None:
  """Whether PTJF won on the low-resource task, and by how much: the report's first line;
  it also names any other method (schedule, restart, ...) whose best beat PTJF's.

  >>> verdict({"experiment": "demo", "low_task": "ro", "ptjf_best_low": 3.8,
  ...          "scalarization_best_low": 4.0, "ptjf_gain_abs": 0.2, "ptjf_gain_pct": 5.0})
  'demo: PTJF won on ro: best validation loss 3.8 vs scalarization 4 (0.2 lower, 5%)'
  >>> verdict({"experiment": "s", "low_task": "ro", "ptjf_best_low": 3.8,
  ...          "scalarization_best_low": 4.0, "ptjf_gain_abs": 0.2, "ptjf_gain_pct": 5.0,
  ...          "below_ptjf": {"schedule": 3.7}})[-50:]
  '(0.2 lower, 5%), but lower than PTJF: schedule 3.7'
  """
  if "ptjf_gain_abs" not in numbers:
    return None
  gain = numbers["ptjf_gain_abs"]
  word = "won" if gain > 0 else "lost"
  below = _below_ptjf(numbers)
  return (f"{numbers['experiment']}: PTJF {word} on {numbers['low_task']}: best validation "
          f"loss {_fmt(numbers['ptjf_best_low'])} vs scalarization "
          f"{_fmt(numbers['scalarization_best_low'])} "
          f"({_fmt(abs(gain))} {'lower' if gain > 0 else 'higher'}, "
          f"{_fmt(abs(numbers['ptjf_gain_pct']))}%)"
          + (f", but lower than PTJF: {below}" if below else ""))


def summary_lines(numbers: dict) -> list[str]:
  """The headline comparisons of PTJF and scalarization, in words."""
  lines = []
  if "ptjf_gain_abs" in numbers:
    lines.append(gain_sentence(numbers))
    lines.append(f"low-resource examples to reach loss {_fmt(numbers['reach_target'])} "
                 f"(the higher of the two best losses): PTJF "
                 f"{_fmt(numbers['ptjf_examples_to_reach'])} vs scalarization "
                 f"{_fmt(numbers['scalarization_examples_to_reach'])}")
  if below := _below_ptjf(numbers):
    lines.append(f"best low-resource validation loss below PTJF's "
                 f"({_fmt(numbers['ptjf_best_low'])}): {below}")
  for run, (step, most) in sorted(numbers.get("switch_steps", {}).items()):
    if not step:
      lines.append(f"automatic switch: {run} has not stopped yet (at most {most})")
    elif most and step >= most:
      lines.append(f"automatic switch: {run} ran to its maximum, {most} steps "
                   "(the high task's loss never stopped improving)")
    else:
      lines.append(f"automatic switch: {run} stopped pre-training at step "
                   f"{_fmt(step)} of at most {most}")
  if "ptjf_non_dominated" in numbers:
    lines.append(f"PTJF runs not dominated by the scalarization points: "
                 f"{numbers['ptjf_non_dominated']} of {numbers['ptjf_points']}")
  return lines


def numbers_markdown(numbers: dict) -> str:
  """One experiment's numbers as a markdown section."""
  lines = [f"## {numbers['experiment']}", "",
           f"Low-resource task: `{numbers['low_task']}`; other tasks: "
           f"{', '.join(f'`{t}`' for t in numbers['high_tasks']) or '-'}", "",
           "| method | best low-resource val loss | run | compute (steps) |",
           "|---|---|---|---|"]
  methods = sorted(set(numbers["best_low_loss"])
                   | set(numbers["compute_steps"]))
  for m in methods:
    compute = numbers["compute_steps"].get(m)
    lines.append(f"| {m} | {_fmt(numbers['best_low_loss'].get(m))} | "
                 f"{numbers['best_run'].get(m, '-')} | {_fmt(compute)} |")
  lines.append("")
  lines += [f"- {line}" for line in summary_lines(numbers)]
  return "\n".join(lines) + "\n"
