"""Gin-configurable functions that register a task or mixture and return its name.

One gin line then serves real T5X and the local engine alike:

    MIXTURE_OR_TASK_NAME = @ptjf_mixture/rate_mixture()
    ptjf_mixture/rate_mixture.tasks = ["translate_en_fr", "translate_en_ro"]
    ptjf_mixture/rate_mixture.rates = [0.7, 0.3]

Tasks may be local (`ptjf.tasks.local`, from a corpus dir) or cluster tasks
(`ptjf.tasks.cluster`, from TFDS). Rates are normalised and a mixture's name
is derived from its tasks and rates, sorted by task, so the same mixture
always has the same name:

>>> mixture_name({"translate_en_ro": 0.3, "translate_en_fr": 0.7})
'mix_translate_en_fr_0.7_translate_en_ro_0.3'
"""
import pathlib
from typing import Mapping, Sequence

import gin
import seqio

from ptjf.errors import UserError
from ptjf.tasks import cluster, local, sampling

CorpusDir = str | pathlib.Path | None
SIZE_UNITS = ("examples", "characters")


def _register_task(name: str, corpus_dir: CorpusDir) -> str:
  """Registers a cluster or local task by name; UserError naming the choices."""
  if name in cluster.cluster_task_names():
    return cluster.register_cluster_task(name)
  names = local.register_local_tasks(corpus_dir)
  if name not in names:
    raise UserError(f"unknown task {name!r}: available: {', '.join(names)} "
                    f"(cluster: {', '.join(cluster.cluster_task_names())})")
  if not seqio.get_mixture_or_task(name).num_input_examples("train"):
    raise UserError(f"task {name!r} has no training examples (its train split "
                    f"in {local.corpus_layout(corpus_dir).root} is empty): "
                    "rebuild the corpus, or leave the task out")
  return name


@gin.configurable(module="ptjf.tasks.mixtures")
def local_task(name: str, corpus_dir: CorpusDir = None) -> str:
  """Registers task `name` (local or cluster) and returns it, for gin."""
  return _register_task(name, corpus_dir)


def _format_rate(rate: float) -> str:
  """0.7 -> "0.7", 0.759746 -> "0.759746", 1.0 -> "1.0" (no exponent)."""
  text = f"{rate:.6f}".rstrip("0")
  return text + "0" if text.endswith(".") else text


def mixture_name(rates: Mapping[str, float]) -> str:
  """mix_<task>_<rate>_... over normalised rates, tasks sorted by name."""
  normalised = sampling.normalize(rates)
  return "mix_" + "_".join(f"{task}_{_format_rate(normalised[task])}"
                           for task in sorted(normalised))


def _as_rates(tasks: Sequence[str],
              rates: Sequence[float] | Mapping[str, float]) -> dict[str, float]:
  """{task: rate} from parallel lists (or a mapping), checked."""
  tasks = list(tasks)
  if len(set(tasks)) != len(tasks):
    raise UserError(f"a task is listed twice in {tasks}: list each task once")
  if isinstance(rates, Mapping):
    if set(rates) != set(tasks):
      raise UserError(f"rates are given for {sorted(rates)} but the tasks are "
                      f"{sorted(tasks)}: give one rate per task")
    return {task: rates[task] for task in tasks}
  rates = list(rates)
  if len(rates) != len(tasks):
    raise UserError(f"{len(tasks)} tasks but {len(rates)} rates: give one rate "
                    "per task, in the same order")
  return dict(zip(tasks, rates))


@gin.configurable(module="ptjf.tasks.mixtures")
def rate_mixture(tasks: Sequence[str],
                 rates: Sequence[float] | Mapping[str, float],
                 corpus_dir: CorpusDir = None, name: str | None = None) -> str:
  """Registers a mixture sampling `tasks` at fixed `rates`; returns its name.

  Rates are relative (normalised here): rates [7, 3] and [0.7, 0.3] give the
  same mixture. `name` defaults to `mixture_name(rates)`.
  """
  normalised = sampling.normalize(_as_rates(tasks, rates))
  for task in normalised:
    _register_task(task, corpus_dir)
  name = name or mixture_name(normalised)
  seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, list(normalised.items()))
  return name


def train_sizes(tasks: Sequence[str], unit: str = "examples",
                corpus_dir: CorpusDir = None) -> dict[str, int]:
  """{task: size of its train split}; unit "examples" or "characters".

  Examples come from the registered task (line counts, or TFDS metadata for
  cluster tasks); characters only from a local corpus.
  """
  if unit not in SIZE_UNITS:
    raise UserError(f"unknown size unit {unit!r}: use one of {SIZE_UNITS}")
  sizes = {}
  for task in tasks:
    _register_task(task, corpus_dir)
    if unit == "characters":
      if task in cluster.cluster_task_names():
        raise UserError(f"{task} has no character count: use unit='examples' "
                        "for cluster tasks")
      sizes[task] = local.train_size(task, "characters", corpus_dir)
    else:
      sizes[task] = seqio.get_mixture_or_task(task).num_input_examples("train")
  return sizes


@gin.configurable(module="ptjf.tasks.mixtures")
def temperature_mixture(tasks: Sequence[str], tau: float,
                        corpus_dir: CorpusDir = None,
                        name: str | None = None) -> str:
  """Registers a temperature-sampling mixture (rates ~ examples^(1/tau))."""
  rates = sampling.temperature_rates(train_sizes(tasks, "examples", corpus_dir),
                                   tau)
  return rate_mixture(list(rates), rates, corpus_dir, name)


@gin.configurable(module="ptjf.tasks.mixtures")
def unimax_mixture(tasks: Sequence[str], budget: float, max_epochs: float = 1,
                   unit: str = "examples", corpus_dir: CorpusDir = None,
                   name: str | None = None) -> str:
  """Registers a UniMax mixture; `budget` is in `unit` (examples or characters).

  With unit="examples" the budget is the number of training examples the run
  will draw (steps x batch size).
  """
  rates = sampling.unimax_rates(train_sizes(tasks, unit, corpus_dir), budget,
                              max_epochs)
  return rate_mixture(list(rates), rates, corpus_dir, name)


@gin.configurable(module="ptjf.tasks.mixtures")
def rate_schedule(tasks: Sequence[str], start: Sequence[float], end: Sequence[float],
                  steps: int, shape: str = "linear",
                  switch_step: int | None = None) -> sampling.Sampler:
  """The sampler of a rate schedule (`sampling.schedule`) over `tasks`, for the local engine's
  `train.sampler`: start and end rates in the order of `tasks`."""
  return sampling.schedule(shape, _as_rates(tasks, start), _as_rates(tasks, end), steps,
                           switch_step)


def mixture_rates(name: str) -> dict[str, float]:
  """Normalised sampling rate of each task of a registered mixture or task.

  A task alone gets {name: 1.0}. The engine multiplies these by examples
  drawn to count examples seen per task.
  """
  try:
    provider = seqio.get_mixture_or_task(name)
  except ValueError as e:
    raise UserError(f"no task or mixture named {name!r} is registered: build "
                    "it with a ptjf.tasks.mixtures function first") from e
  if isinstance(provider, seqio.Task):
    return {name: 1.0}
  return sampling.normalize({task.name: provider.get_rate(task)
                           for task in provider.tasks})
