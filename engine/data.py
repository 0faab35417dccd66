"""SeqIO tasks and a sampler -> deterministic numpy batches whose source task is known per example.

The mixture is sampled here, not by SeqIO: a numpy RNG seeded with `seed` picks each example's
task with the rates the sampler gives for the batch's step, and each task is an infinite, seeded, shuffled stream converted by
`seqio.EncDecFeatureConverter(pack=False)`. The order is therefore a pure function of the seed,
and resuming at batch k replays the first k batches' draws (exact, at the cost of re-reading).
Evaluation reads `sample`: a fixed random sample of a split, the same for every run.
"""
import queue
import threading
from typing import Iterator, Mapping, Optional

import numpy as np
import seqio
import tensorflow as tf
from tensorflow.python.autograph.core import ag_ctx

from ptjf.errors import UserError
from ptjf.tasks import sampling

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
  return converted(ds, feature_lengths)


def converted(ds: tf.data.Dataset, feature_lengths: Mapping[str, int]) -> Iterator[dict]:
  """Numpy model features (`FEATURES`) of a task's preprocessed examples."""
  with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
    ds = seqio.EncDecFeatureConverter(pack=False, apply_length_check=False)(
        ds, dict(feature_lengths))
  return ds.as_numpy_iterator()


SAMPLE_WINDOW = 100_000


def sample(task: str, split: str, feature_lengths: Mapping[str, int], limit: int,
           window: Optional[int] = SAMPLE_WINDOW) -> tf.data.Dataset:
  """`limit` preprocessed examples of a split, drawn at random with a fixed seed: the same for
  every run and seed (an evaluation set), and the same positions in splits of one size (the
  French side of En-Fr and its monolingual text, say).

  Source examples are sampled before preprocessing, so only the sample is tokenized; text-line
  sources (our corpora: held-out splits are sorted, so their first lines are not typical ones)
  over the whole split, other sources (TFDS: shuffled when prepared, and often millions of
  examples) over their first `window` examples (None: all). A task whose preprocessors merge
  sources (span corruption concatenates short texts) draws twice as many sources until `limit`
  examples come out or the sources run out; `limit` of those that come out are then drawn.
  """
  provider = seqio.get_mixture_or_task(task)
  if not isinstance(provider, seqio.Task):
    raise UserError(f"{task!r} is a mixture, not a task: sample each of its tasks")
  if isinstance(provider.source, seqio.TextLineDataSource):
    window = None
  rng = np.random.default_rng(0)
  with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
    source = provider.source.get_dataset(split=split, shuffle=False)
    if window is not None:
      source = source.take(window)
    known = provider.source.num_input_examples(split)
    if known is None:
      known = _count(source)
    order = rng.permutation(known if window is None else min(known, window))
    drawn = min(len(order), limit)
    while True:
      ds = _preprocess(provider, _where(source, order[:drawn]), feature_lengths)
      ds = ds.cache()   # in memory, filled by counting: the sample is read once
      made = int(ds.reduce(np.int64(0), lambda count, _: count + 1))
      if made >= limit or drawn == len(order):
        return _where(ds, rng.choice(made, min(made, limit), replace=False), batched=False)
      drawn = min(len(order), 2 * drawn)


_CHUNK = 4096


def _count(source: tf.data.Dataset) -> int:
  """Elements of a source of scalar features, counted a chunk at a time."""
  return int(source.batch(_CHUNK).reduce(
      np.int64(0), lambda count, b: count + tf.shape(tf.nest.flatten(b)[0], tf.int64)[0]))


def _where(ds: tf.data.Dataset, picked: np.ndarray, batched: bool = True) -> tf.data.Dataset:
  """The elements of `ds` at positions `picked`, in their order in `ds`.

  `batched` selects a chunk at a time, where tf.data's cost per element would dominate (0.25 s
  instead of 2.2 s for 58k lines); it needs elements of one shape, as sources of text have, not
  tokenized examples.
  """
  keep = np.zeros(int(picked.max(initial=-1)) + 1, bool)
  keep[picked] = True
  ds = ds.take(len(keep))
  if not batched:
    return ds.enumerate().filter(lambda i, _: tf.gather(keep, i)).map(lambda _, ex: ex)

  def select(chunk_index, chunk):
    positions = chunk_index * _CHUNK + tf.range(tf.shape(tf.nest.flatten(chunk)[0])[0],
                                                dtype=tf.int64)
    return tf.nest.map_structure(lambda v: tf.boolean_mask(v, tf.gather(keep, positions)), chunk)
  return ds.batch(_CHUNK).enumerate().map(select).unbatch()


def _preprocess(task: seqio.Task, ds: tf.data.Dataset,
                feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
  """What `task.get_dataset` does to source examples (seed 0, not shuffled)."""
  ds = task.preprocess_postcache(task.preprocess_precache(ds, seed=0), dict(feature_lengths),
                                 seed=0)
  return seqio.utils.trim_dataset(ds, dict(feature_lengths), task.output_features)


class MixtureBatches:
  """Deterministic batches of the sampler's tasks; `position` = batches drawn so far, and the
  step whose rates (`sampler.rates(position)`) draw the next batch.

  Each batch also carries `task_counts` {task: examples} and `task_tokens` {task: target tokens}.
  """

  def __init__(self, sampler: sampling.Sampler, feature_lengths: Mapping[str, int],
               batch_size: int, seed: int, position: int = 0):
    self.sampler = sampler
    self.tasks = list(sampler.tasks)
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
    rates = self.sampler.rates(self.position)
    probs = np.array([rates[t] for t in self.tasks], np.float64)
    picks = self._rng.choice(len(self.tasks), size=self.batch_size, p=probs)
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
