"""Mixture batches are deterministic, resumable exactly, and count examples per task."""
import numpy as np

from ptjf.engine import data
from ptjf.tasks import local, mixtures, sampling

LENGTHS = {"inputs": 16, "targets": 16}


def test_resume_replays_exactly_and_counts_tasks(tiny_corpus):
  tasks = local.register_local_tasks(tiny_corpus.root)[:2]
  mix = mixtures.rate_mixture(tasks, [0.7, 0.3], corpus_dir=tiny_corpus.root)
  sampler = sampling.Static(mixtures.mixture_rates(mix))
  full = data.MixtureBatches(sampler, LENGTHS, batch_size=4, seed=3)
  batches = [next(full) for _ in range(4)]
  resumed = data.MixtureBatches(sampler, LENGTHS, batch_size=4, seed=3, position=2)
  for want in batches[2:]:
    got = next(resumed)
    for k in data.FEATURES:
      np.testing.assert_array_equal(got[k], want[k])
  assert sum(batches[0]["task_counts"].values()) == 4
  assert set(batches[0]["task_counts"]) == set(tasks)


class _Switch:
  """A sampler that draws only its first task before step 2, only its second after."""

  def __init__(self, tasks):
    self.tasks = tuple(sorted(tasks))

  def rates(self, step):
    return dict(zip(self.tasks, (1.0, 0.0) if step < 2 else (0.0, 1.0)))


def test_each_batch_is_drawn_with_the_rates_of_its_step(tiny_corpus):
  tasks = local.register_local_tasks(tiny_corpus.root)[:2]
  batches = data.MixtureBatches(_Switch(tasks), LENGTHS, batch_size=4, seed=0)
  first, second = sorted(tasks)
  assert [next(batches)["task_counts"] for _ in range(3)] == [
      {first: 4, second: 0}, {first: 4, second: 0}, {first: 0, second: 4}]


def test_streams_without_autograph_equal_seqio_with_it(tiny_corpus):
  import seqio
  for task in local.register_local_tasks(tiny_corpus.root):
    ours = data.task_stream(task, "train", LENGTHS, 0, shuffle=False, repeat=False)
    ds = seqio.get_mixture_or_task(task).get_dataset(LENGTHS, split="train", shuffle=False,
                                                     seed=0, num_epochs=1)
    reference = seqio.EncDecFeatureConverter(pack=False)(ds, LENGTHS).as_numpy_iterator()
    for got, want in zip(list(ours)[:5], list(reference)[:5]):
      for k in data.FEATURES:
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{task} {k}")


def _rows(ds) -> list[tuple]:
  return [(tuple(ex["inputs"]), tuple(ex["targets"])) for ex in ds.as_numpy_iterator()]


def test_sample_is_fixed_spread_and_preprocessed_like_the_task(tiny_corpus):
  import seqio
  task = next(t for t in local.register_local_tasks(tiny_corpus.root) if t.startswith("translate"))
  whole = _rows(seqio.get_mixture_or_task(task).get_dataset(LENGTHS, split="train",
                                                            shuffle=False, seed=0))
  drawn = _rows(data.sample(task, "train", LENGTHS, 8))
  assert drawn == _rows(data.sample(task, "train", LENGTHS, 8))   # the same every time
  assert len(set(drawn)) == 8 and set(drawn) <= set(whole)
  positions = sorted(whole.index(r) for r in drawn)
  assert positions[-1] > len(whole) // 2   # not the split's first lines
  assert len(_rows(data.sample(task, "train", LENGTHS, 10_000))) == len(whole)
  assert _rows(data.sample(task, "train", LENGTHS, 0)) == []
  converted = list(data.converted(data.sample(task, "train", LENGTHS, 8), LENGTHS))
  assert len(converted) == 8 and set(data.FEATURES) <= set(converted[0])


def test_sample_draws_more_sources_when_preprocessing_merges_them(tiny_corpus):
  task = next(t for t in local.register_local_tasks(tiny_corpus.root)
              if t.startswith("span_corruption"))
  drawn = _rows(data.sample(task, "train", LENGTHS, 12))
  assert len(drawn) == 12 and drawn == _rows(data.sample(task, "train", LENGTHS, 12))


def test_sample_of_a_mixture_is_a_clear_error(tiny_corpus):
  import pytest
  from ptjf.errors import UserError
  tasks = local.register_local_tasks(tiny_corpus.root)[:2]
  mix = mixtures.rate_mixture(tasks, [0.5, 0.5], corpus_dir=tiny_corpus.root)
  with pytest.raises(UserError, match="is a mixture"):
    data.sample(mix, "validation", LENGTHS, 4)
