"""Mixture batches are deterministic, resumable exactly, and count examples per task."""
import numpy as np

from ptjf.engine import data
from ptjf.tasks import local, mixtures

LENGTHS = {"inputs": 16, "targets": 16}


def test_resume_replays_exactly_and_counts_tasks(tiny_corpus):
  tasks = local.register_local_tasks(tiny_corpus.root)[:2]
  mix = mixtures.rate_mixture(tasks, [0.7, 0.3], corpus_dir=tiny_corpus.root)
  full = data.MixtureBatches(mix, LENGTHS, batch_size=4, seed=3)
  batches = [next(full) for _ in range(4)]
  resumed = data.MixtureBatches(mix, LENGTHS, batch_size=4, seed=3, position=2)
  for want in batches[2:]:
    got = next(resumed)
    for k in data.FEATURES:
      np.testing.assert_array_equal(got[k], want[k])
  assert sum(batches[0]["task_counts"].values()) == 4
  assert set(batches[0]["task_counts"]) == set(tasks)


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
