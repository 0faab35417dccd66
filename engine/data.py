"""SeqIO task/mixture -> deterministic numpy batches whose source task is known per example.

The mixture is sampled here, not by SeqIO: a numpy RNG seeded with `seed` picks each example's
task with the mixture's rates, and each task is an infinite, seeded, shuffled stream converted by
`seqio.EncDecFeatureConverter(pack=False)`. The order is therefore a pure function of the seed,
and resuming at batch k replays the first k batches' draws (exact, at the cost of re-reading).
"""
import queue
import threading
from typing import Iterator, Mapping

import numpy as np
import seqio
from tensorflow.python.autograph.core import ag_ctx

from ptjf.tasks import mixtures

FEATURES = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
            "decoder_loss_weights")


def task_stream(task: str, split: str, feature_lengths: Mapping[str, int], seed: int,
                shuffle: bool = True, repeat: bool = True) -> Iterator[dict]:
  """Converted numpy examples of one task (infinite and shuffled for training).

  The tf.data functions are traced without AutoGraph (the preprocessors are plain TF ops; the
  conversion cost seconds per phase), and seqio's trimming to `feature_lengths` makes the
  converter's length check redundant.
  """
  with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
    ds = seqio.get_mixture_or_task(task).get_dataset(
        dict(feature_lengths), split=split, shuffle=shuffle, seed=seed,
        num_epochs=None if repeat else 1)
    ds = seqio.EncDecFeatureConverter(pack=False, apply_length_check=False)(
        ds, dict(feature_lengths))
  return ds.as_numpy_iterator()


class MixtureBatches:
  """Deterministic batches of a task or mixture; `position` = batches drawn so far.

  Each batch also carries `task_counts` {task: examples} and `task_tokens` {task: target tokens}.
  """

  def __init__(self, mixture_or_task: str, feature_lengths: Mapping[str, int], batch_size: int,
               seed: int, position: int = 0):
    rates = mixtures.mixture_rates(mixture_or_task)
    self.tasks = sorted(rates)
    self._probs = np.array([rates[t] for t in self.tasks], np.float64)
    self._rng = np.random.default_rng(seed)
    self._streams = {t: task_stream(t, "train", feature_lengths, seed + i)
                     for i, t in enumerate(self.tasks)}
    self.batch_size = batch_size
    self.position = 0
    while self.position < position:
      next(self)

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    picks = self._rng.choice(len(self.tasks), size=self.batch_size, p=self._probs)
    rows = [next(self._streams[self.tasks[i]]) for i in picks]
    batch = {k: np.stack([r[k] for r in rows]) for k in FEATURES}
    batch["task_counts"] = {t: int(np.sum(picks == i)) for i, t in enumerate(self.tasks)}
    batch["task_tokens"] = {t: int(sum(np.sum(r["decoder_loss_weights"])
                                       for r, p in zip(rows, picks) if p == i))
                            for i, t in enumerate(self.tasks)}
    self.position += 1
    return batch


def prefetch(batches: Iterator[dict], size: int = 2) -> Iterator[dict]:
  """Yields `batches` read ahead by a background thread, so input overlaps compute.

  >>> list(prefetch(iter(range(5))))
  [0, 1, 2, 3, 4]
  """
  out: queue.Queue = queue.Queue(maxsize=size)
  done = object()

  def fill() -> None:
    try:
      for item in batches:
        out.put(item)
      out.put(done)
    except BaseException as e:  # re-raised in the consumer
      out.put(e)

  threading.Thread(target=fill, daemon=True).start()
  while (item := out.get()) is not done:
    if isinstance(item, BaseException):
      raise item
    yield item
