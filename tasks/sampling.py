"""Sampling rates of the paper's strategies, as plain functions, and the sampler the engine asks.

Rates are dicts {task: rate}; every function returns them normalised to sum
to 1. Sizes are per-task training-set sizes in one unit (examples, tokens or
characters) and a UniMax budget is in that same unit.

- static sampling (scalarization): a grid of fixed rates for two tasks;
- temperature sampling: rate_i proportional to n_i ** (1 / tau);
- UniMax (Chung et al., 2023): uniform budget, at most `max_epochs` per task.

A `Sampler` gives the rates of training step t; the engine draws each example of that step's
batch with them. Fixed rates are `Static`; rates that change over a phase are `Linear` and
`Switch` (`schedule` builds either from a plan's shape).
"""
import math
from typing import Mapping, Protocol

from ptjf.errors import UserError


def static_grid(n: int = 10) -> list[float]:
  """The paper's grid of low-resource rates i/n for 0 < i < n.

  >>> static_grid()
  [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
  >>> static_grid(4)
  [0.25, 0.5, 0.75]
  """
  if n < 2:
    raise UserError(f"grid size {n} gives no rate strictly between 0 and 1: "
                    "use n >= 2")
  return [i / n for i in range(1, n)]


def two_task_rates(low_task: str, high_task: str,
                   low_rate: float) -> dict[str, float]:
  """{low_task: r, high_task: 1 - r} for a rate r of the low-resource task.

  >>> two_task_rates("translate_en_ro", "translate_en_fr", 0.3)
  {'translate_en_ro': 0.3, 'translate_en_fr': 0.7}
  """
  if not 0 < low_rate < 1:
    raise UserError(f"low-resource rate {low_rate} is not strictly between 0 "
                    "and 1: pick a rate such as 0.3")
  if low_task == high_task:
    raise UserError(f"both tasks are {low_task!r}: give two different tasks")
  # Rounded so 1 - 0.7 reads 0.3, not 0.30000000000000004.
  return {low_task: low_rate, high_task: round(1.0 - low_rate, 12)}


def normalize(rates: Mapping[str, float]) -> dict[str, float]:
  """Rates scaled to sum to 1, after checking each is a positive number.

  >>> normalize({"a": 3, "b": 1})
  {'a': 0.75, 'b': 0.25}
  """
  _check_positive(rates, "rate", "give every task a rate > 0 or drop it")
  total = sum(rates.values())
  return {task: rate / total for task, rate in rates.items()}


class Sampler(Protocol):
  """The rate of each task at every training step: the engine's one source of what to draw."""
  tasks: tuple[str, ...]   # sorted

  def rates(self, step: int) -> Mapping[str, float]:
    """{task: rate} of training step `step` (0-based, counted within the phase), summing to 1."""


class Static:
  """Fixed rates (scalarization, temperature, UniMax): the same at every step.

  >>> sampler = Static({"fr": 3, "ro": 1})
  >>> sampler.tasks, sampler.rates(step=500)
  (('fr', 'ro'), {'fr': 0.75, 'ro': 0.25})
  """

  def __init__(self, rates: Mapping[str, float]):
    self._rates = normalize(rates)
    self.tasks = tuple(sorted(self._rates))

  def rates(self, step: int) -> Mapping[str, float]:
    del step  # static
    return self._rates


class Linear:
  """Rates going linearly from `start` to `end` over a phase of `steps` steps.

  Step t draws with the rates at its middle, (t + 0.5) / steps of the way, so any run of
  steps draws on average the rates at its own middle (`mean`): what a T5X segment holds.

  >>> sampler = Linear({"fr": 0.9, "ro": 0.1}, {"fr": 0.5, "ro": 0.5}, steps=4)
  >>> [round(sampler.rates(t)["ro"], 3) for t in range(4)]
  [0.15, 0.25, 0.35, 0.45]
  >>> round(sampler.mean(0, 2)["ro"], 3), sampler.segments(2)[1][:2]
  (0.2, (2, 4))
  """

  def __init__(self, start: Mapping[str, float], end: Mapping[str, float], steps: int):
    self.start, self.end = normalize(start), normalize(end)
    if set(self.start) != set(self.end):
      raise UserError(f"a schedule starts with tasks {sorted(self.start)} and ends with "
                      f"{sorted(self.end)}: give both ends the same tasks")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
      raise UserError(f"a schedule over {steps!r} steps: give a positive whole number")
    self.steps = steps
    self.tasks = tuple(sorted(self.start))

  def _at(self, fraction: float) -> dict[str, float]:
    return {t: self.start[t] + (self.end[t] - self.start[t]) * fraction for t in self.tasks}

  def rates(self, step: int) -> Mapping[str, float]:
    return self._at((step + 0.5) / self.steps)

  def mean(self, first: int, last: int) -> dict[str, float]:
    """The mean rates of steps first .. last - 1."""
    return self._at((first + last) / 2 / self.steps)

  def segments(self, count: int) -> list[tuple[int, int, dict[str, float]]]:
    """(first, last, mean rates) of `count` runs of steps of (nearly) equal length."""
    bounds = sorted({round(k * self.steps / count) for k in range(count + 1)})
    return [(a, b, self.mean(a, b)) for a, b in zip(bounds, bounds[1:])]


class Switch:
  """Rates `before` at steps < `switch_step`, `after` from it on (a step schedule).

  >>> sampler = Switch({"fr": 0.9, "ro": 0.1}, {"fr": 0.5, "ro": 0.5}, switch_step=3, steps=4)
  >>> [sampler.rates(t)["ro"] for t in range(4)], sampler.mean(0, 4)["ro"]
  ([0.1, 0.1, 0.1, 0.5], 0.2)
  """

  def __init__(self, before: Mapping[str, float], after: Mapping[str, float],
               switch_step: int, steps: int):
    self._ends = Linear(before, after, steps)
    if (isinstance(switch_step, bool) or not isinstance(switch_step, int)
        or not 0 < switch_step < steps):
      raise UserError(f"switch_step {switch_step!r} is outside the phase's steps: give a "
                      f"whole number between 1 and {steps - 1}")
    self.switch_step, self.steps, self.tasks = switch_step, steps, self._ends.tasks

  def rates(self, step: int) -> Mapping[str, float]:
    return self._ends.start if step < self.switch_step else self._ends.end

  def mean(self, first: int, last: int) -> dict[str, float]:
    """The mean rates of steps first .. last - 1."""
    before = min(max(self.switch_step - first, 0), last - first)
    return self._ends._at(1 - before / (last - first))

  def segments(self, count: int) -> list[tuple[int, int, dict[str, float]]]:
    """(first, last, rates): the steps before the switch and after it, exact in 2 segments
    whatever `count` asks."""
    del count
    return [(0, self.switch_step, dict(self._ends.start)),
            (self.switch_step, self.steps, dict(self._ends.end))]


SHAPES = ("linear", "step")


def schedule(shape: str, start: Mapping[str, float], end: Mapping[str, float], steps: int,
             switch_step: int | None = None) -> Linear | Switch:
  """The sampler of a schedule of `shape` ("linear", or "step" at `switch_step`).

  >>> schedule("step", {"a": 1, "b": 1}, {"a": 1, "b": 3}, 10, switch_step=5).rates(7)
  {'a': 0.25, 'b': 0.75}
  """
  if shape not in SHAPES:
    raise UserError(f"unknown schedule shape {shape!r}: use one of {', '.join(SHAPES)}")
  if shape == "linear":
    if switch_step is not None:
      raise UserError("switch_step is for shape = \"step\": drop it, or set the shape")
    return Linear(start, end, steps)
  if switch_step is None:
    raise UserError("shape = \"step\" needs switch_step: the phase's step where the end "
                    "rates take over")
  return Switch(start, end, switch_step, steps)


def _check_positive(values: Mapping[str, float], what: str, fix: str) -> None:
  """UserError unless there is a task and each task's `what` (rate, size) is a positive number."""
  if not values:
    raise UserError(f"no tasks given: name at least one task and its {what}")
  for task, value in values.items():
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
      raise UserError(f"{what} {value!r} of task {task!r} is not a positive number: {fix}")


def temperature_rates(sizes: Mapping[str, float], tau: float) -> dict[str, float]:
  """Temperature sampling: rate_i = n_i^(1/tau) / sum_j n_j^(1/tau).

  tau = 1 samples proportionally to size; larger tau flattens toward uniform.
  Matches `seqio.mixing_rate_num_examples(task, temperature=tau)` normalised.

  >>> temperature_rates({"fr": 400, "ro": 100}, tau=2)  # 20 : 10
  {'fr': 0.6666666666666666, 'ro': 0.3333333333333333}
  """
  _check_positive(sizes, "size", "check the task has training data")
  if not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
    raise UserError(f"temperature {tau!r} is not a positive number: use e.g. "
                    "tau = 1 (proportional to size) or 3.33 (flatter); "
                    "0 < tau < 1 sharpens toward the biggest task")
  return normalize({task: size ** (1.0 / tau) for task, size in sizes.items()})


def unimax_rates(sizes: Mapping[str, float], budget: float,
                 max_epochs: float = 1) -> dict[str, float]:
  """UniMax (Chung et al., 2023): a uniform budget, capped at max_epochs per task.

  Tasks are visited from smallest to largest; each gets the uniform share of
  the budget still unassigned (remaining / tasks left), capped at
  max_epochs * size; what a capped task leaves goes to the larger ones. Rates
  are the allocations divided by the budget.

  The budget must be positive and at most max_epochs * sum(sizes): a larger
  budget cannot be spent without going over max_epochs on every task.

  Worked example, sizes a=10, b=100, c=1000, budget 300:
  max_epochs=1: a gets min(300/3, 10) = 10, b gets min(290/2, 100) = 100,
  c gets min(190/1, 1000) = 190; rates 10/300, 100/300, 190/300.
  max_epochs=4: a gets min(100, 40) = 40, b gets min(260/2, 400) = 130,
  c gets 130; rates 0.1333, 0.4333, 0.4333.

  >>> unimax_rates({"a": 10, "b": 100, "c": 1000}, budget=300)
  {'a': 0.03333333333333333, 'b': 0.3333333333333333, 'c': 0.6333333333333333}
  """
  _check_positive(sizes, "size", "check the task has training data")
  if not isinstance(max_epochs, (int, float)) or max_epochs <= 0:
    raise UserError(f"max_epochs {max_epochs!r} is not positive: use e.g. 1")
  capacity = max_epochs * sum(sizes.values())
  if not isinstance(budget, (int, float)) or not 0 < budget <= capacity:
    raise UserError(
        f"UniMax budget {budget!r} is not in (0, {capacity:g}] (max_epochs x "
        f"total size): lower the budget or raise max_epochs")
  remaining = float(budget)
  allocation = {}
  order = sorted(sizes, key=lambda task: (sizes[task], task))
  for i, task in enumerate(order):
    share = min(remaining / (len(order) - i), max_epochs * sizes[task])
    allocation[task] = share
    remaining -= share
  return {task: allocation[task] / budget for task in sizes}
