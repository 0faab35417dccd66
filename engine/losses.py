"""Token cross-entropy with label smoothing, T5X-style, and the summary tags both engines write.

`cross_entropy` returns sums (not means), so the caller adds them over batches and tasks and
normalises once. With label smoothing s over V classes the soft target is (1 - s) on the gold
token and s / (V - 1) elsewhere; the T5X normalising constant (the soft target's own entropy) is
subtracted so a perfect prediction of the soft target has loss 0.

`summaries` turns sums into T5X's tags with T5X's definitions (t5x/models.py,
`compute_base_metrics`, with LOSS_NORMALIZING_FACTOR = NUM_REAL_TARGET_TOKENS, as ptjf's T5X gin
files set it, and no z-loss), plus PLAIN_CROSS_ENT, which T5X lacks and gets from
`with_plain_cross_entropy`: the one loss analysis compares across runs and engines.

Example: uniform logits over V=4, one target, s=0: loss = cross_ent = log 4 = 1.386.
"""
import functools
import math
from typing import Any, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp

# Plain cross-entropy (no label smoothing, no z-loss) per real (non-padding) target token:
# docs/design.md section 3. analysis/events.py reads the same name.
PLAIN_CROSS_ENT = "plain_cross_ent_per_real_target_token"


class LossSums(NamedTuple):
  """Sums over batches: smoothed loss, plain cross-entropy, correct tokens, weight (real token)
  count; the batches' own per-real-token smoothed losses, their number and their target
  positions (padding included)."""
  loss: jnp.ndarray
  cross_ent: jnp.ndarray
  correct: jnp.ndarray
  weight_sum: jnp.ndarray
  loss_per_batch: jnp.ndarray
  batches: jnp.ndarray
  positions: jnp.ndarray


def cross_entropy(logits: jnp.ndarray, targets: jnp.ndarray, weights: jnp.ndarray,
                  label_smoothing: float = 0.0) -> LossSums:
  """Sums of smoothed loss, plain cross-entropy and accuracy over weighted target tokens.

  logits: float [B, L, V]; targets, weights: [B, L] (weight 0 = padding). A token is correct
  when its logit is the largest: T5X's argmax except on exact ties (argmax takes the first;
  here every tied token counts, so constant logits score 1.0), and on CPU ~10x cheaper than
  argmax's (value, index) reduction over the vocabulary. `loss_per_batch` is the training
  objective (T5X's loss with NUM_REAL_TARGET_TOKENS).
  """
  vocab = logits.shape[-1]
  confidence, low = _soft_target(label_smoothing, vocab)
  normalizing = -(confidence * math.log(confidence) + (vocab - 1) * low * math.log(low + 1e-20)) \
      if label_smoothing else 0.0
  logits = logits.astype(jnp.float32)
  smoothed, plain = token_losses(logits, targets, label_smoothing)
  w = weights.astype(jnp.float32)
  loss, weight_sum = jnp.sum((smoothed - normalizing) * w), jnp.sum(w)
  return LossSums(
      loss=loss, cross_ent=jnp.sum(plain * w),
      correct=jnp.sum((_at(logits, targets) >= jnp.max(logits, axis=-1)) * w),
      weight_sum=weight_sum, loss_per_batch=loss / jnp.maximum(weight_sum, 1.0),
      batches=jnp.ones((), jnp.float32), positions=jnp.asarray(targets.size, jnp.float32))


def summaries(sums: LossSums) -> dict[str, float]:
  """T5X's tags over summed batches (steps), as T5X defines them, plus PLAIN_CROSS_ENT.

  loss: the label-smoothed loss per real token, averaged over batches; cross_ent_loss: the same
  minus the z-loss (none here); cross_ent_loss_per_all_target_tokens: the batches' losses summed
  and divided by every target position, padding included (T5X divides its already normalised
  loss again); accuracy: per real token. One batch of 2 x 2 positions, 3 real, smoothed loss 6:

  >>> one = LossSums(*map(jnp.float32, (6, 3, 2, 3, 2, 1, 4)))
  >>> {k: round(v, 3) for k, v in summaries(one).items()}  # doctest: +NORMALIZE_WHITESPACE
  {'loss': 2.0, 'cross_ent_loss': 2.0, 'cross_ent_loss_per_all_target_tokens': 0.5,
   'accuracy': 0.667, 'plain_cross_ent_per_real_target_token': 1.0}
  """
  real = max(float(sums.weight_sum), 1.0)
  loss = float(sums.loss_per_batch) / max(float(sums.batches), 1.0)
  return {"loss": loss, "cross_ent_loss": loss,
          "cross_ent_loss_per_all_target_tokens":
              float(sums.loss_per_batch) / max(float(sums.positions), 1.0),
          "accuracy": float(sums.correct) / real,
          PLAIN_CROSS_ENT: float(sums.cross_ent) / real}


def with_plain_cross_entropy(model: Any) -> Any:
  """A T5X model whose train and eval metrics also hold PLAIN_CROSS_ENT (gin/t5x/models/).

  T5X's own tags are label-smoothed (NMT) or hold the z-loss (mT5); this adds, beside them, the
  cross-entropy both engines compare on, as a clu `Average` so it is summed over eval batches
  and divided by their real tokens once, as the local engine does. `model` is a T5X
  BaseTransformerModel, whose `loss_fn` calls `self._compute_metrics`.
  """
  from clu import metrics as clu_metrics  # pylint: disable=g-import-not-at-top
  compute = model._compute_metrics  # pylint: disable=protected-access

  def _compute_metrics(logits, targets, mask, loss, z_loss=None, segment_ids=None):
    metrics = compute(logits=logits, targets=targets, mask=mask, loss=loss, z_loss=z_loss,
                      segment_ids=segment_ids)
    weights = jnp.ones(targets.shape) if mask is None else mask
    sums = cross_entropy(logits, targets, weights)
    metrics[PLAIN_CROSS_ENT] = clu_metrics.Average(total=sums.cross_ent, count=sums.weight_sum)
    return metrics

  model._compute_metrics = _compute_metrics  # pylint: disable=protected-access
  return model


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def token_losses(logits: jnp.ndarray, targets: jnp.ndarray,
                 label_smoothing: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Per-token cross-entropy against the smoothed target and against the gold token, [B, L] each.

  With q the soft target ((1 - s) on gold, s / (V - 1) elsewhere), the first is
  -sum_v q_v log p_v = lse - (1 - s) x_gold - s / (V - 1) (sum_v x_v - x_gold), the second
  lse - x_gold. The gradient is written out, d/dx = g_smoothed (p - q) + g_plain (p - onehot),
  so the backward pass is one elementwise pass over the logits, where autodiff of log_softmax
  builds it from several [B, L, V] pieces (with `engine.kernels.product`'s gradient, the float32
  bench step ~12% faster, docs/bench.md).

  >>> [round(float(v), 4) for v in token_losses(jnp.zeros((1, 4)), jnp.array([1]), 0.0)[0]]
  [1.3863]
  """
  return _token_losses_fwd(logits, targets, label_smoothing)[0]


def _token_losses_fwd(logits, targets, label_smoothing):
  confidence, low = _soft_target(label_smoothing, logits.shape[-1])
  lse = jax.nn.logsumexp(logits, axis=-1)
  gold = _at(logits, targets)
  smoothed = lse - confidence * gold - low * (jnp.sum(logits, axis=-1) - gold)
  return (smoothed, lse - gold), (logits, targets, lse)


def _token_losses_bwd(label_smoothing, residuals, cotangents):
  logits, targets, lse = residuals
  g_smoothed, g_plain = (g[..., None] for g in cotangents)
  confidence, low = _soft_target(label_smoothing, logits.shape[-1])
  probs = jnp.exp(logits - lse[..., None])
  gold = lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1) == targets[..., None]
  target_mass = jnp.where(gold, g_smoothed * confidence + g_plain, g_smoothed * low)
  return (g_smoothed + g_plain) * probs - target_mass, None


token_losses.defvjp(_token_losses_fwd, _token_losses_bwd)


def _soft_target(label_smoothing: float, vocab: int) -> tuple[float, float]:
  """(probability on the gold token, on each other token)."""
  return 1.0 - label_smoothing, label_smoothing / (vocab - 1)


def _at(values: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
  """values[..., targets]: [B, L, V] and [B, L] -> [B, L]."""
  return jnp.take_along_axis(values, targets[..., None], axis=-1)[..., 0]
