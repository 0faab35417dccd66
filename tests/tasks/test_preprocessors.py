"""Span corruption against T5's published algorithm, on tiny literal data."""
import collections
import itertools

import numpy as np
import pytest
import seqio
import tensorflow as tf

from ptjf.errors import UserError
from ptjf.tasks import outputs
from ptjf.tasks import preprocessors as pp


def _t5_counts(length, density=0.15, mean_span=3.0):
  """Noise tokens and spans as T5's random_spans_noise_mask computes them."""
  length = max(length, 2)
  num_noise = int(np.round(np.float32(length) * np.float32(density)))
  num_noise = min(max(num_noise, 1), length - 1)
  num_spans = max(int(np.round(np.float32(num_noise) / np.float32(mean_span))), 1)
  return num_noise, num_spans


def _runs(mask):
  """Lengths of the runs of equal values of a 0/1 sequence, with their value."""
  return [(k, len(list(g))) for k, g in itertools.groupby(mask)]


def _reconstruct(inputs, targets, vocab_size):
  """Original tokens from corrupted inputs and targets (sentinels >= vocab-100)."""
  spans, current = {}, None
  for t in targets:
    if t >= vocab_size - outputs.EXTRA_IDS:
      current = t
      spans[current] = []
    else:
      spans[current].append(t)
  out = []
  for t in inputs:
    out += spans[t] if t >= vocab_size - outputs.EXTRA_IDS else [t]
  return out


def test_random_spans_helper_standard_numbers():
  assert pp.random_spans_helper(512) == (568, 114)
  assert pp.random_spans_helper(128) == (141, 29)
  # At density 0.5, T5 drops one token so targets are not longer than inputs.
  assert pp.random_spans_helper(512, noise_density=0.5) == (766, 512)


@pytest.mark.parametrize("inputs_length", [16, 32, 64, 100, 128, 256, 512, 1024])
def test_random_spans_helper_fills_inputs_exactly(inputs_length):
  tokens_length, targets_length = pp.random_spans_helper(inputs_length)

  def encoded(n):
    noise = round(n * 0.15)
    spans = round(noise / 3)
    return n - noise + spans + 1, noise + spans + 1

  assert encoded(tokens_length) == (inputs_length, targets_length)
  assert encoded(tokens_length + 1)[0] > inputs_length


def test_noise_span_counts_match_t5_for_every_length():
  lengths = tf.range(1, 700)
  noise, spans = pp.noise_span_counts(lengths, 0.15, 3.0)
  expected = np.array([_t5_counts(n) for n in range(1, 700)])
  np.testing.assert_array_equal(noise.numpy(), expected[:, 0])
  np.testing.assert_array_equal(spans.numpy(), expected[:, 1])


@pytest.mark.parametrize("length", [1, 2, 3, 7, 20, 33, 141, 568])
def test_noise_mask_has_t5_counts_and_layout(length):
  for seed in range(5):
    mask = pp.random_spans_noise_mask(
        length, tf.constant([[seed, 1], [seed, 2]])).numpy().astype(int)
    assert mask.shape == (length,)
    if length == 1:
      assert mask.tolist() == [0]
      continue
    num_noise, num_spans = _t5_counts(length)
    runs = _runs(mask)
    assert mask.sum() == num_noise
    assert [v for v, _ in runs] == [0, 1] * num_spans  # non-noise first, noise last


def test_noise_mask_is_uniform_over_masks_with_those_counts():
  # length 10, density 0.3, mean span 1.5: 3 noise tokens in 2 spans; noise
  # splits 1+2 or 2+1, non-noise 7 = 1+6 .. 6+1: 12 masks, each equally likely.
  seeds = tf.data.Dataset.range(2400).map(
      lambda i: tf.cast(tf.stack([[i, 0], [i, 1]]), tf.int32))
  masks = seeds.map(lambda s: pp.random_spans_noise_mask(10, s, 0.3, 1.5))
  counts = collections.Counter(tuple(m) for m in masks.as_numpy_iterator())
  assert len(counts) == 12
  assert all(140 < c < 260 for c in counts.values()), counts


def test_noise_mask_is_deterministic_per_seed():
  a = pp.random_spans_noise_mask(100, tf.constant([[1, 2], [3, 4]]))
  b = pp.random_spans_noise_mask(100, tf.constant([[1, 2], [3, 4]]))
  c = pp.random_spans_noise_mask(100, tf.constant([[5, 6], [7, 8]]))
  assert a.numpy().tolist() == b.numpy().tolist() != c.numpy().tolist()


def test_sentinels_count_down_from_the_last_id():
  tokens, mask = [5, 6, 7, 8, 9, 10], [0, 1, 1, 0, 1, 0]
  assert pp.noise_span_to_unique_sentinel(tokens, mask, 100).numpy().tolist() == [
      5, 99, 8, 98, 10]
  assert pp.nonnoise_span_to_unique_sentinel(tokens, mask, 100).numpy().tolist() == [
      99, 6, 7, 98, 9, 97]


def test_inputs_and_targets_reconstruct_the_tokens():
  tokens = tf.range(3, 203)
  for seed in range(5):
    mask = pp.random_spans_noise_mask(200, tf.constant([[seed, 0], [seed, 1]]))
    inputs = pp.noise_span_to_unique_sentinel(tokens, mask, 400).numpy()
    targets = pp.nonnoise_span_to_unique_sentinel(tokens, mask, 400).numpy()
    assert _reconstruct(inputs, targets, 400) == list(range(3, 203))
    num_noise, num_spans = _t5_counts(200)
    assert len(inputs) == 200 - num_noise + num_spans
    assert len(targets) == num_noise + num_spans + (mask.numpy()[-1] == 0)


def test_chunk_concat_split():
  docs = tf.ragged.constant([[1, 2], [], [3], [4, 5, 6]])
  ds = tf.data.Dataset.from_tensor_slices(docs).map(lambda x: {"targets": x})
  concat = pp.reduce_concat_tokens(ds, batch_size=2)
  assert [x["targets"].tolist() for x in concat.as_numpy_iterator()] == [
      [1, 2], [3, 4, 5, 6]]
  split = pp.split_tokens(concat, 3)
  assert [x["targets"].tolist() for x in split.as_numpy_iterator()] == [
      [1, 2], [3, 4, 5], [6]]
  long_doc = tf.data.Dataset.from_tensors({"targets": tf.range(10)})
  chunks = {tuple(ex["targets"]) for ex in pp.select_random_chunk(
      long_doc.repeat(30), max_length=4).as_numpy_iterator()}
  assert chunks <= {(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)} and len(chunks) > 1


@pytest.fixture(scope="module")
def vocab(tiny_corpus):
  return seqio.SentencePieceVocabulary(str(tiny_corpus.vocab_model),
                                       extra_ids=outputs.EXTRA_IDS)


def test_span_corruption_fills_inputs_and_keeps_all_tokens(tiny_corpus, vocab):
  features = outputs.output_features(vocab)
  lines = tiny_corpus.mono_file("fr", "train").read_text().splitlines()[:60]
  ds = tf.data.Dataset.from_tensor_slices(lines)
  ds = seqio.preprocessors.tokenize(pp.text_to_targets(ds), features)
  stream = [t for ex in ds.as_numpy_iterator() for t in ex["targets"].tolist()]
  out = list(pp.span_corruption(ds, {"inputs": 32, "targets": 16},
                                features).as_numpy_iterator())
  tokens_length, targets_length = pp.random_spans_helper(32)
  assert len(out) == -(-len(stream) // tokens_length)
  for ex in out[:-1]:
    assert len(ex["inputs"]) == 32 - 1  # EOS comes later
    assert len(ex["targets"]) <= targets_length - 1
  rebuilt = [t for ex in out for t in _reconstruct(
      ex["inputs"].tolist(), ex["targets"].tolist(), vocab.vocab_size)]
  assert rebuilt == stream
  assert out[0]["targets"][0] == vocab.vocab_size - 1
  assert vocab.decode([vocab.vocab_size - 1]) == "<extra_id_0>"


def test_span_corruption_rejects_short_targets(vocab):
  ds = tf.data.Dataset.from_tensors({"targets": tf.range(3, 50)})
  with pytest.raises(UserError, match="at least 114"):
    pp.span_corruption(ds, {"inputs": 512, "targets": 100},
                       outputs.output_features(vocab))
  with pytest.raises(UserError, match="inputs length"):
    pp.span_corruption(ds, None, outputs.output_features(vocab))


def test_translation_preprocessors():
  lines = tf.data.Dataset.from_tensor_slices(["Hello.\tBonjour.", "A b\tc\td"])
  out = list(pp.split_tsv_pair(lines, prefix="translate: ").as_numpy_iterator())
  assert out == [{"inputs": b"translate: Hello.", "targets": b"Bonjour."},
                 {"inputs": b"translate: A b", "targets": b"c\td"}]
  tfds_like = tf.data.Dataset.from_tensors({"en": "Hi", "fr": "Salut"})
  assert list(pp.translation_pair(tfds_like, "en", "fr").as_numpy_iterator()) == [
      {"inputs": b"Hi", "targets": b"Salut"}]


def test_matches_t5_when_installed():
  t5_pp = pytest.importorskip("t5.data.preprocessors")
  for n in (16, 64, 128, 512, 568):
    assert pp.random_spans_helper(n) == t5_pp.random_spans_helper(
        inputs_length=n, noise_density=0.15, mean_noise_span_length=3.0,
        extra_tokens_per_span_inputs=1, extra_tokens_per_span_targets=1)
  # Same 12 masks as ours (see the uniformity test) for length 10, 3 in 2 spans.
  theirs = {tuple(t5_pp.random_spans_noise_mask(
      10, 0.3, tf.constant([[i, 0], [i, 1]]), 1.5).numpy()) for i in range(300)}
  ours = {tuple(pp.random_spans_noise_mask(
      10, tf.constant([[i, 0], [i, 1]]), 0.3, 1.5).numpy()) for i in range(300)}
  assert theirs == ours and len(ours) == 12
  vocab = seqio.PassThroughVocabulary(size=300)
  for length in (2, 20, 141, 568):
    theirs = t5_pp.random_spans_noise_mask(length, 0.15, tf.constant([[1, 2], [3, 4]]))
    assert int(tf.reduce_sum(tf.cast(theirs, tf.int32))) == _t5_counts(length)[0]
    tokens = tf.range(3, 3 + length)
    np.testing.assert_array_equal(
        pp.noise_span_to_unique_sentinel(tokens, theirs, 300),
        t5_pp.noise_span_to_unique_sentinel(tokens, theirs, vocab, None))
    np.testing.assert_array_equal(
        pp.nonnoise_span_to_unique_sentinel(tokens, theirs, 300),
        t5_pp.nonnoise_span_to_unique_sentinel(tokens, theirs, vocab, None))
