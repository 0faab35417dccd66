"""Greedy and beam-search decoding with the decoder KV cache, and BLEU.

Decoding follows T5X: the decoder starts from id 0, stops a sequence at EOS
(id 1) and pads it with 0 afterwards. Beam search ranks finished hypotheses by
Google NMT's length penalty, log p / ((5 + length) / 6) ** alpha with
alpha 0.6 (length counts the EOS), keeps the best `beam_size` live and
finished hypotheses per example, and stops early once no live hypothesis can
beat the worst kept finished one.

    tokens = greedy_decode(model, params, encoder_input_tokens, 64)   # [B, 64]
    tokens = beam_search(model, params, encoder_input_tokens, 64)     # beam 4
"""
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ptjf.engine import model as model_lib
from ptjf.errors import UserError
from ptjf.tasks import outputs

# A SeqIO metric fn: (targets, predictions) -> {name: value}.
MetricFn = Callable[[list[str], list[str]], dict[str, float]]

EOS_ID = 1
_NEG_INF = -1e9


def _encode_and_init_cache(model, params, encoder_input_tokens, length):
  """Encoder outputs and an all-zero decoder cache for `length` tokens."""
  encoded = model.apply({"params": params}, encoder_input_tokens,
                        method=model_lib.Transformer.encode)
  dummy = jnp.zeros((encoder_input_tokens.shape[0], length), jnp.int32)
  shapes = jax.eval_shape(
      lambda: model.apply({"params": params}, encoded, encoder_input_tokens,
                          dummy, decode=True, mutable=["cache"],
                          method=model_lib.Transformer.decode)[1]["cache"])
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  return encoded, cache


def _step_logprobs(model, params, cache, encoded, encoder_input_tokens, tokens):
  """Log-probs [N, V] of the next token after `tokens` [N]; the new cache."""
  logits, variables = model.apply(
      {"params": params, "cache": cache}, encoded, encoder_input_tokens,
      tokens[:, None], decode=True, mutable=["cache"],
      method=model_lib.Transformer.decode)
  return jax.nn.log_softmax(logits[:, 0]), variables["cache"]


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def greedy_decode(model: model_lib.Transformer, params: Any,
                  encoder_input_tokens: jnp.ndarray, max_decode_length: int,
                  eos_id: int = EOS_ID) -> jnp.ndarray:
  """Argmax decoding: int32 [B, max_decode_length], 0 after each EOS."""
  batch = encoder_input_tokens.shape[0]
  encoded, cache = _encode_and_init_cache(model, params, encoder_input_tokens,
                                          max_decode_length)

  def body(state):
    i, cache, token, out, done = state
    logprobs, cache = _step_logprobs(model, params, cache, encoded,
                                     encoder_input_tokens, token)
    token = jnp.where(done, 0, jnp.argmax(logprobs, -1).astype(jnp.int32))
    out = out.at[:, i].set(token)
    return i + 1, cache, token, out, done | (token == eos_id)

  def cond(state):
    i, _, _, _, done = state
    return (i < max_decode_length) & ~done.all()

  init = (jnp.int32(0), cache, jnp.zeros((batch,), jnp.int32),
          jnp.zeros((batch, max_decode_length), jnp.int32),
          jnp.zeros((batch,), bool))
  return jax.lax.while_loop(cond, body, init)[3]


def length_penalty(length: jnp.ndarray, alpha: float) -> jnp.ndarray:
  """((5 + length) / 6) ** alpha; e.g. length 7, alpha 0.6 -> 1.516."""
  return ((5.0 + length) / 6.0) ** alpha


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6))
def beam_search(model: model_lib.Transformer, params: Any,
                encoder_input_tokens: jnp.ndarray, max_decode_length: int,
                beam_size: int = 4, alpha: float = 0.6,
                eos_id: int = EOS_ID) -> jnp.ndarray:
  """Best beam-search hypothesis per example: int32 [B, max_decode_length]."""
  batch, k, length = encoder_input_tokens.shape[0], beam_size, max_decode_length
  flat = lambda x: x.reshape((batch * k,) + x.shape[2:])
  tiled_inputs = jnp.repeat(encoder_input_tokens, k, axis=0)
  encoded, cache = _encode_and_init_cache(model, params, tiled_inputs, length)
  max_penalty = length_penalty(jnp.float32(length), alpha)

  def body(state):
    i, cache, live, live_lp, fin, fin_score = state
    token = jnp.where(i > 0, flat(live)[:, jnp.maximum(i - 1, 0)], 0)
    logprobs, cache = _step_logprobs(model, params, cache, encoded,
                                     tiled_inputs, token)
    vocab = logprobs.shape[-1]
    scores = (live_lp[:, :, None] + logprobs.reshape(batch, k, vocab))
    top_lp, top_ids = jax.lax.top_k(scores.reshape(batch, k * vocab), 2 * k)
    beam, tokens = top_ids // vocab, (top_ids % vocab).astype(jnp.int32)
    seqs = jnp.take_along_axis(live, beam[:, :, None], axis=1)
    seqs = seqs.at[:, :, i].set(tokens)
    ended = tokens == eos_id
    # Live: the best k candidates that did not end.
    live_lp, order = jax.lax.top_k(jnp.where(ended, _NEG_INF, top_lp), k)
    live = jnp.take_along_axis(seqs, order[:, :, None], axis=1)
    parent = jnp.take_along_axis(beam, order, axis=1)
    index = (jnp.arange(batch)[:, None] * k + parent).reshape(-1)
    cache = jax.tree.map(lambda c: c[index] if c.ndim else c, cache)
    # Finished: the best k of the kept ones and the candidates that ended.
    new_score = jnp.where(ended, top_lp / length_penalty(i + 1.0, alpha),
                          _NEG_INF)
    fin_score, keep = jax.lax.top_k(
        jnp.concatenate([fin_score, new_score], axis=1), k)
    fin = jnp.take_along_axis(jnp.concatenate([fin, seqs], axis=1),
                              keep[:, :, None], axis=1)
    return i + 1, cache, live, live_lp, fin, fin_score

  def cond(state):
    i, _, _, live_lp, _, fin_score = state
    # Scores only fall as hypotheses grow, so the best live one can at most
    # reach its log-prob over the largest penalty.
    best_live = live_lp[:, 0] / max_penalty
    worst_finished = fin_score[:, -1]
    return (i < length) & ~(worst_finished > best_live).all()

  init_lp = jnp.tile(jnp.array([0.0] + [_NEG_INF] * (k - 1)), (batch, 1))
  zeros = jnp.zeros((batch, k, length), jnp.int32)
  init = (jnp.int32(0), cache, zeros, init_lp, zeros,
          jnp.full((batch, k), _NEG_INF))
  _, _, live, live_lp, fin, fin_score = jax.lax.while_loop(cond, body, init)
  # An example with no finished hypothesis returns its best live one.
  none_finished = (fin_score[:, 0] <= _NEG_INF / 2)[:, None]
  return jnp.where(none_finished, live[:, 0], fin[:, 0])


def _pad_batch(rows: Sequence[Sequence[int]], batch_size: int, length: int):
  out = np.zeros((batch_size, length), np.int32)
  for r, ids in enumerate(rows):
    out[r, :len(ids)] = ids
  return out


def _until_eos(ids: Sequence[int], eos_id: int) -> list[int]:
  """Ids before the first EOS, without padding: [5, 0, 7, 1, 4] -> [5, 7]."""
  ids = list(ids)
  ids = ids[:ids.index(eos_id)] if eos_id in ids else ids
  return [i for i in ids if i]


def bleu_eval(model: model_lib.Transformer, params: Any,
              examples: list[dict], vocabulary, *, beam_size: int = 4,
              max_decode_length: int, batch_size: int,
              alpha: float = 0.6,
              metric_fns: Sequence[MetricFn] = (outputs.bleu,)) -> dict:
  """Decodes `examples` and scores them with `metric_fns` (SeqIO's).

  Each example has "inputs" (ids, EOS-terminated) and either
  "targets_pretokenized" (the reference text, preferred) or "targets" (ids).
  Predictions are detokenized with `vocabulary` (seqio) up to EOS. Pass the
  task's own `metric_fns`, as T5X's inference eval does, so both engines
  score alike (sacrebleu's "zh" tokenizer for Chinese). Inputs are padded to
  the longest one so all batches share one compilation. Returns the metrics
  ({"bleu": float}) and "predictions", "references" ([str] each).
  """
  if not examples:
    raise UserError("bleu_eval got no examples: pass a non-empty eval split")
  input_length = max(len(ex["inputs"]) for ex in examples)
  if input_length > model.config.max_length:
    raise UserError(f"eval inputs of {input_length} tokens exceed the model's "
                    f"max_length {model.config.max_length}: truncate them")
  predictions = []
  for start in range(0, len(examples), batch_size):
    chunk = examples[start:start + batch_size]
    inputs = jnp.asarray(_pad_batch([ex["inputs"] for ex in chunk],
                                    batch_size, input_length))
    if beam_size == 1:
      out = greedy_decode(model, params, inputs, max_decode_length)
    else:
      out = beam_search(model, params, inputs, max_decode_length, beam_size,
                        alpha)
    for row in np.asarray(out)[:len(chunk)]:
      predictions.append(vocabulary.decode(_until_eos(row.tolist(), EOS_ID)))
  references = []
  for ex in examples:
    text = ex.get("targets_pretokenized")
    if text is None:
      text = vocabulary.decode(_until_eos(list(ex["targets"]), EOS_ID))
    references.append(text.decode() if isinstance(text, bytes) else str(text))
  scores = {}
  for fn in metric_fns:
    scores.update(fn(references, predictions))
  return {**scores, "predictions": predictions, "references": references}
