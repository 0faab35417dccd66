"""When a phase stops instead of training on (and checkpointing) a blown-up model.

A logged training loss (the mean over its `log_period` window) has diverged when it is not
finite, or when, after `warmup` logs, it is above `factor` times the lowest loss logged so far.
The demo's models start near ln(vocab) ~ 8 and fall to 2-4, and a fine-tune's restarted
warm-up lifts its loss by tenths: a normal run never logs 10x its best, far above even an
untrained model's loss. A learning rate of 1e6 passes it within a few logs (its loss climbs
to 1e13 while staying finite). The warm-up lets the first logs, before the loss has fallen,
settle the best.

>>> watch = Divergence(factor=10, warmup=2)
>>> [watch.check(loss) for loss in (8.0, 5.0, 3.0, 29.0, 31.0)]
[None, None, None, None, 'loss 31 is above 10 x its best 3']
>>> watch.check(float("nan"))
'loss is nan'
"""
import math


class Divergence:
  """Watches the logged losses of one training run; `check` says when they diverged."""

  def __init__(self, factor: float = 10.0, warmup: int = 5):
    self._factor, self._warmup = factor, warmup
    self._logs, self._best = 0, math.inf

  def check(self, loss: float) -> str | None:
    """Why the run has diverged at this logged `loss`, or None if it has not."""
    if not math.isfinite(loss):
      return f"loss is {loss}"
    self._logs += 1
    if self._logs > self._warmup and loss > self._factor * self._best:
      return f"loss {loss:.4g} is above {self._factor:g} x its best {self._best:.4g}"
    self._best = min(self._best, loss)
    return None
