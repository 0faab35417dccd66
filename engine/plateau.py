"""The early-stop rule of `pretrain_steps = "auto"`: stop once a validation loss plateaus.

The decision is a pure function of the evaluations logged so far (`plateau_step`), read back
from the phase's own event files on resume (`logged_losses`), so a phase killed and resumed
stops at the same step as one that ran straight through.
"""
import math
import os
from typing import Sequence

from ptjf.analysis import events
from ptjf.engine import losses


def plateau_step(history: Sequence[tuple[int, float]], patience: int,
                 min_delta: float) -> int | None:
  """The step of the first evaluation at which the loss has not improved on its best by at least
  `min_delta` for `patience` evaluations in a row; None if there is none yet.

  >>> plateau_step([(0, 5.0), (100, 4.0), (200, 3.995), (300, 3.99), (400, 4.1)], 3, 0.01)
  400
  >>> plateau_step([(0, 5.0), (100, 4.0), (200, 3.995), (300, 3.5)], 3, 0.01) is None
  True
  """
  best, waited = math.inf, 0
  for step, loss in history:
    if loss < best - min_delta:
      best, waited = loss, 0
    else:
      waited += 1
      if waited >= patience:
        return step
  return None


def logged_losses(model_dir: str, task: str, upto: int) -> list[tuple[int, float]]:
  """(step, validation loss of `task`) of the evaluations logged in `model_dir` at steps <= upto,
  one per step (a killed run's evaluations past its last checkpoint are left out: the resumed run
  makes them again; at a step logged twice, the later file's)."""
  folder = os.path.join(model_dir, "training_eval", task)
  found: dict[int, float] = {}
  if os.path.isdir(folder):
    for name in sorted(os.listdir(folder)):
      if name.startswith("events.out.tfevents"):
        for step, tag, value in events.read_scalars(os.path.join(folder, name)):
          if tag == losses.PLAIN_CROSS_ENT and step <= upto:
            found[step] = value
  return sorted(found.items())
