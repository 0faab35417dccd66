"""SeqIO preprocessors: translation pairs and T5 span corruption.

Every public preprocessor is a pure function in SeqIO style,
`(dataset, sequence_length, output_features, ...) -> dataset`, so it can be
listed in a `seqio.Task`'s preprocessors as is (or with `functools.partial`).

Span corruption follows Raffel et al. (2020), "the final pre-training
objective" of T5 and mT5, re-implemented here (installing the `t5` package pulls
torch and transformers): token streams are concatenated, cut into pieces of
`tokens_length`, a random 15% of each piece is masked in spans of mean length
3, and each masked span becomes one sentinel in the inputs while the targets
hold the masked spans, each introduced by its sentinel:

    tokens   [a b c d e f g h]   noise mask [0 0 1 1 0 0 0 1]
    inputs   [a b S0 e f g S1]
    targets  [S0 c d S1 h]

Sentinel `i` (0-based, in order of appearance) is `vocab_size - 1 - i`: the
last ids of the vocabulary, T5's convention (`<extra_id_0>` is the last id of a
`seqio.SentencePieceVocabulary` with extra ids).
"""
import functools
from typing import Mapping

import seqio
import tensorflow as tf

from ptjf.errors import UserError

# Before each English input: which language to translate into ("<2ro> Open file").
# The corpus vocabulary holds each tag as one piece.
TARGET_TAG = "<2{lang}> "


def target_tag(lang: str) -> str:
  """The target-language tag as a vocabulary symbol: target_tag("ro") == "<2ro>"."""
  return TARGET_TAG.format(lang=lang).strip()

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0


def split_tsv_pair(dataset: tf.data.Dataset, prefix: str = "") -> tf.data.Dataset:
  """Lines "english<TAB>translation" -> {"inputs": prefix + english, "targets": translation}.

  The NMT models need no prefix; T5-style models may want one, e.g.
  prefix="translate English to French: ".
  """
  def parse(line):
    fields = tf.strings.split(line, "\t", maxsplit=1)
    return {"inputs": tf.strings.join([prefix, fields[0]]),
            "targets": fields[-1]}
  return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def translation_pair(dataset: tf.data.Dataset, source: str, target: str,
                     prefix: str = "") -> tf.data.Dataset:
  """TFDS translation examples {source: ..., target: ...} -> inputs/targets.

  E.g. source="en", target="fr" on a `wmt15_translate/fr-en` example
  {"en": "Hello", "fr": "Bonjour"} gives {"inputs": "Hello", "targets": "Bonjour"}.
  """
  def pick(ex):
    return {"inputs": tf.strings.join([prefix, ex[source]]),
            "targets": ex[target]}
  return dataset.map(pick, num_parallel_calls=tf.data.AUTOTUNE)


def text_to_targets(dataset: tf.data.Dataset,
                    text_key: str = "text") -> tf.data.Dataset:
  """Keeps only the raw text, as "targets": the input of span corruption.

  Plain text lines (a `seqio.TextLineDataSource`) are scalar strings; TFDS
  examples are dicts whose `text_key` holds the text.
  """
  def pick(ex):
    return {"targets": ex[text_key] if isinstance(ex, dict) else ex}
  return dataset.map(pick, num_parallel_calls=tf.data.AUTOTUNE)


def random_spans_helper(inputs_length: int,
                        noise_density: float = NOISE_DENSITY,
                        mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                        extra_tokens_per_span_inputs: int = 1,
                        extra_tokens_per_span_targets: int = 1
                        ) -> tuple[int, int]:
  """(tokens_length, targets_length) so span corruption fills `inputs_length`.

  tokens_length is the longest raw piece whose corrupted inputs (non-noise
  tokens + one sentinel per noise span + EOS) fit in inputs_length;
  targets_length is the length of its targets (noise tokens + one sentinel per
  span + EOS). Rounding is Python's (half to even), as in T5.

  >>> random_spans_helper(512)  # T5's standard numbers
  (568, 114)
  >>> random_spans_helper(128)
  (141, 29)

  For 568 tokens: 85 noise tokens in 28 spans; inputs 483 + 28 + 1 = 512,
  targets 85 + 28 + 1 = 114.
  """
  def lengths(tokens_length):
    num_noise = int(round(tokens_length * noise_density))
    num_spans = int(round(num_noise / mean_noise_span_length))
    return ((tokens_length - num_noise)
            + num_spans * extra_tokens_per_span_inputs + 1,
            num_noise + num_spans * extra_tokens_per_span_targets + 1)

  tokens_length = inputs_length - 1
  while lengths(tokens_length + 1)[0] <= inputs_length:
    tokens_length += 1
  targets_length = lengths(tokens_length)[1]
  # T5 trims one token at density 0.5 so targets match a round inputs length.
  if noise_density == 0.5 and targets_length > inputs_length:
    tokens_length -= 1
    targets_length -= 1
  return tokens_length, targets_length


def noise_span_counts(length, noise_density: float,
                      mean_noise_span_length: float):
  """(num_noise_tokens, num_noise_spans) of a piece of `length` tokens (TF).

  num_noise = round(length * density), kept in [1, length - 1];
  num_spans = round(num_noise / mean span), at least 1. Lengths below 2 are
  treated as 2 (the mask is then cut back). Arithmetic in float32 with
  round-half-to-even, as T5 does, so the counts match T5's exactly:
  length 20 -> 3 noise tokens in 1 span; length 568 -> 85 in 28.
  """
  length = tf.maximum(tf.cast(length, tf.int32), 2)
  num_noise = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density),
                      tf.int32)
  num_noise = tf.clip_by_value(num_noise, 1, length - 1)
  num_spans = tf.cast(tf.round(tf.cast(num_noise, tf.float32)
                               / mean_noise_span_length), tf.int32)
  # More spans than non-noise tokens cannot alternate (only at density > 0.5).
  num_spans = tf.clip_by_value(num_spans, 1, length - num_noise)
  return num_noise, num_spans


def _random_composition(total, parts, seed):
  """`parts` positive ints summing to `total`, uniform over all such splits.

  Picks parts - 1 distinct cut points among the total - 1 gaps between items.
  """
  gaps = tf.range(1, total)
  cuts = tf.sort(seqio.stateless_shuffle(gaps, seed)[:parts - 1])
  bounds = tf.concat([[0], cuts, [total]], axis=0)
  return bounds[1:] - bounds[:-1]


def random_spans_noise_mask(length, seeds,
                            noise_density: float = NOISE_DENSITY,
                            mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH):
  """Boolean mask [length]: random noise spans, alternating with non-noise.

  The numbers of noise tokens and spans are fixed by `noise_span_counts`;
  the sequence starts with a non-noise span and has as many non-noise spans as
  noise spans; given those counts every mask is equally likely (as in T5).
  `seeds` is an int32 [2, 2] tensor (two stateless seeds).

  E.g. length 10, density 0.3, mean span 1.5: 3 noise tokens in 2 spans, such
  as [0 0 1 0 0 0 0 1 1 0] or [0 1 1 0 0 0 0 0 1 0].
  """
  orig_length = length
  length = tf.maximum(length, 2)
  num_noise, num_spans = noise_span_counts(length, noise_density,
                                           mean_noise_span_length)
  noise_lengths = _random_composition(num_noise, num_spans, seeds[0])
  nonnoise_lengths = _random_composition(length - num_noise, num_spans, seeds[1])
  span_lengths = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1),
                            [-1])
  is_noise_span = tf.tile([False, True], [num_spans])
  return tf.repeat(is_noise_span, span_lengths)[:orig_length]


def noise_span_to_unique_sentinel(tokens, noise_mask, vocab_size: int):
  """Replaces the i-th run of noise tokens by sentinel `vocab_size - 1 - i`.

  >>> noise_span_to_unique_sentinel([5, 6, 7, 8, 9], [0, 1, 1, 0, 1], 100
  ...                               ).numpy().tolist()
  [5, 99, 8, 98]
  """
  tokens = tf.convert_to_tensor(tokens)
  noise_mask = tf.cast(noise_mask, tf.bool)
  prev_is_noise = tf.pad(noise_mask[:-1], [[1, 0]])
  span_starts = noise_mask & ~prev_is_noise
  sentinels = vocab_size - tf.cumsum(tf.cast(span_starts, tokens.dtype))
  replaced = tf.where(span_starts, sentinels, tokens)
  return tf.boolean_mask(replaced, ~(noise_mask & prev_is_noise))


def nonnoise_span_to_unique_sentinel(tokens, noise_mask, vocab_size: int):
  """The targets side: non-noise runs become sentinels, noise tokens stay.

  >>> nonnoise_span_to_unique_sentinel([5, 6, 7, 8, 9], [0, 1, 1, 0, 1], 100
  ...                                  ).numpy().tolist()
  [99, 6, 7, 98, 9]
  """
  return noise_span_to_unique_sentinel(
      tokens, ~tf.cast(noise_mask, tf.bool), vocab_size)


def select_random_chunk(dataset: tf.data.Dataset, max_length: int = 65536,
                        feature_key: str = "targets") -> tf.data.Dataset:
  """Keeps one random piece of at most `max_length` tokens per document.

  The document is cut at multiples of max_length and one piece is drawn
  uniformly (a 150,000-token document yields tokens [0:65536], [65536:131072]
  or [131072:150000]). Empty documents are dropped; other features too.
  """
  @seqio.map_over_dataset(num_seeds=1)
  def chunk(ex, seed):
    tokens = ex[feature_key]
    num_pieces = (tf.size(tokens) + max_length - 1) // max_length
    start = max_length * tf.random.stateless_uniform(
        [], seed, maxval=num_pieces, dtype=tf.int32)
    return {feature_key: tokens[start:start + max_length]}

  dataset = dataset.filter(lambda ex: tf.size(ex[feature_key]) > 0)
  return chunk(dataset)


def reduce_concat_tokens(dataset: tf.data.Dataset, batch_size: int = 128,
                         feature_key: str = "targets") -> tf.data.Dataset:
  """Concatenates every `batch_size` consecutive documents into one stream.

  [a b], [c], [d e f] with batch_size=2 -> [a b c], [d e f].
  """
  dataset = dataset.map(lambda ex: {feature_key: ex[feature_key]},
                        num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.ragged_batch(batch_size).map(
      lambda ex: {feature_key: ex[feature_key].flat_values},
      num_parallel_calls=tf.data.AUTOTUNE)


def split_tokens(dataset: tf.data.Dataset, max_tokens_per_segment: int,
                 feature_key: str = "targets") -> tf.data.Dataset:
  """Splits each example into pieces of `max_tokens_per_segment` tokens.

  Only the last piece may be shorter: 7 tokens with max 3 -> 3, 3, 1.
  """
  def pieces(ex):
    tokens = ex[feature_key]
    n = tf.size(tokens, out_type=tf.int64)
    num_full = n // max_tokens_per_segment
    rest = n - num_full * max_tokens_per_segment
    row_lengths = tf.concat(
        [tf.fill([num_full], tf.constant(max_tokens_per_segment, tf.int64)),
         tf.reshape(rest, [1])[:tf.cast(rest > 0, tf.int32)]], axis=0)
    ragged = tf.RaggedTensor.from_row_lengths(tokens, row_lengths)
    return tf.data.Dataset.from_tensor_slices(ragged).map(
        lambda piece: {feature_key: piece})

  dataset = dataset.filter(lambda ex: tf.size(ex[feature_key]) > 0)
  return dataset.flat_map(pieces)


def denoise_spans(dataset: tf.data.Dataset, vocab_size: int,
                  noise_density: float = NOISE_DENSITY,
                  mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                  feature_key: str = "targets") -> tf.data.Dataset:
  """Token pieces -> {"inputs": corrupted piece, "targets": masked spans}."""
  @seqio.map_over_dataset(num_seeds=2)
  def corrupt(ex, seeds):
    tokens = ex[feature_key]
    mask = random_spans_noise_mask(tf.size(tokens), tf.stack(seeds),
                                   noise_density, mean_noise_span_length)
    return {"inputs": noise_span_to_unique_sentinel(tokens, mask, vocab_size),
            "targets": nonnoise_span_to_unique_sentinel(tokens, mask,
                                                        vocab_size)}
  return corrupt(dataset)


def span_corruption(dataset: tf.data.Dataset,
                    sequence_length: Mapping[str, int] | None,
                    output_features: Mapping[str, seqio.Feature],
                    noise_density: float = NOISE_DENSITY,
                    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH
                    ) -> tf.data.Dataset:
  """T5 span corruption of tokenized "targets" text, sized to the inputs length.

  Documents are concatenated 128 at a time and cut into pieces of
  `random_spans_helper(inputs_length)[0]` tokens, so the corrupted inputs plus
  EOS fill inputs_length exactly (inputs 512 -> pieces of 568 tokens, targets
  at most 114 with EOS). Sentinels are the last ids of the targets vocabulary.
  """
  if not sequence_length or not sequence_length.get("inputs"):
    raise UserError("span corruption needs an inputs length: pass "
                    "sequence_length={'inputs': ..., 'targets': ...}")
  tokens_length, targets_length = random_spans_helper(
      sequence_length["inputs"], noise_density, mean_noise_span_length)
  if sequence_length.get("targets", targets_length) < targets_length:
    raise UserError(
        f"targets length {sequence_length['targets']} is too short for span "
        f"corruption with inputs length {sequence_length['inputs']}: set the "
        f"targets length to at least {targets_length}")
  vocab_size = output_features["targets"].vocabulary.vocab_size
  dataset = select_random_chunk(dataset)
  dataset = reduce_concat_tokens(dataset, batch_size=128)
  dataset = split_tokens(dataset, tokens_length)
  return denoise_spans(dataset, vocab_size, noise_density,
                       mean_noise_span_length)


def translation_steps(to_text_pair) -> list:
  """A translation task's preprocessors, after `to_text_pair` (raw -> text).

  Tokenize "inputs" and "targets", mark the cache point, append EOS.
  """
  return [to_text_pair, seqio.preprocessors.tokenize,
          seqio.CacheDatasetPlaceholder(),
          seqio.preprocessors.append_eos_after_trim]


def span_corruption_steps(text_key: str = "text") -> list:
  """A span corruption task's preprocessors, from raw text to inputs/targets."""
  return [functools.partial(text_to_targets, text_key=text_key),
          seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
          span_corruption, seqio.preprocessors.append_eos_after_trim]
