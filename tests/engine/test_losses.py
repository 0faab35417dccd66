"""Pins the T5X-style cross-entropy sums."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptjf.engine import losses


def test_uniform_logits_plain():
  out = losses.cross_entropy(np.zeros((1, 2, 4), np.float32), np.array([[1, 2]]), np.array([[1, 0]]))
  np.testing.assert_allclose(out.loss, math.log(4), rtol=1e-6)
  np.testing.assert_allclose(out.cross_ent, math.log(4), rtol=1e-6)
  assert float(out.weight_sum) == 1.0


def test_smoothing_zero_at_soft_target_and_accuracy():
  s, v = 0.1, 4
  probs = np.full(v, s / (v - 1)); probs[2] = 1 - s
  logits = np.log(probs)[None, None, :].astype(np.float32)
  out = losses.cross_entropy(logits, np.array([[2]]), np.array([[1]]), label_smoothing=s)
  np.testing.assert_allclose(out.loss, 0.0, atol=1e-5)
  np.testing.assert_allclose(out.cross_ent, -math.log(1 - s), rtol=1e-5)
  assert float(out.correct) == 1.0


def test_accuracy_is_argmax_but_on_ties():
  logits = np.random.default_rng(0).standard_normal((4, 8, 16)).astype(np.float32)
  targets = np.random.default_rng(1).integers(0, 16, (4, 8))
  targets[0, :4] = logits[0, :4].argmax(-1)   # some correct
  weights = np.ones((4, 8))
  want = np.sum(logits.argmax(-1) == targets)
  assert want >= 4 and float(losses.cross_entropy(logits, targets, weights).correct) == want
  tie = np.zeros((1, 1, 16), np.float32)   # every token is a largest one
  assert float(losses.cross_entropy(tie, np.array([[9]]), np.array([[1]])).correct) == 1.0


def _reference(logits, targets, weights, s):
  """The loss by autodiff of log_softmax (what token_losses' written-out gradient must equal)."""
  v = logits.shape[-1]
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  gold = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  soft = (1 - s) * gold + s / (v - 1) * (jnp.sum(log_probs, axis=-1) - gold)
  return jnp.sum(-soft * weights), jnp.sum(-gold * weights)


@pytest.mark.parametrize("s", [0.0, 0.1])
def test_gradient_equals_autodiff_of_log_softmax(s):
  rng = np.random.default_rng(2)
  logits = jnp.asarray(3 * rng.standard_normal((2, 5, 11)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 11, (2, 5)))
  weights = jnp.asarray(rng.random((2, 5)) < 0.7, jnp.float32)

  def ours(x, a, b):
    out = losses.cross_entropy(x, targets, weights, label_smoothing=s)
    return a * out.loss + b * out.cross_ent

  def reference(x, a, b):
    loss, cross_ent = _reference(x, targets, weights, s)
    return a * loss + b * cross_ent

  for a, b in [(1.0, 0.0), (0.0, 1.0), (0.7, -0.3)]:   # each output's gradient, and a mix
    np.testing.assert_allclose(jax.grad(ours)(logits, a, b), jax.grad(reference)(logits, a, b),
                               atol=1e-6)
  out = losses.cross_entropy(logits, targets, weights, label_smoothing=s)
  entropy = -((1 - s) * math.log(1 - s) + s * math.log(s / 10)) if s else 0.0   # soft target's
  loss, cross_ent = _reference(logits, targets, weights, s)
  np.testing.assert_allclose(out.loss, loss - entropy * jnp.sum(weights), rtol=1e-5)
  np.testing.assert_allclose(out.cross_ent, cross_ent, rtol=1e-5)


class _T5xModel:
  """What with_plain_cross_entropy needs of a T5X model: its metrics method."""

  def _compute_metrics(self, logits, targets, mask, loss, z_loss=None, segment_ids=None):
    return {"loss": loss}


def test_t5x_model_reports_plain_cross_entropy_pooled_over_batches():
  model = losses.with_plain_cross_entropy(_T5xModel())
  rng = np.random.default_rng(3)
  batches = [(rng.standard_normal((2, 3, 5)).astype(np.float32), rng.integers(0, 5, (2, 3)),
              np.array([[1, 1, 0], [1, 0, 0]], np.float32)) for _ in range(2)]
  metrics = [model._compute_metrics(logits=x, targets=t, mask=w, loss=7.0)
             for x, t, w in batches]
  assert metrics[0]["loss"] == 7.0   # T5X's own metrics are kept
  merged = metrics[0][losses.PLAIN_CROSS_ENT].merge(metrics[1][losses.PLAIN_CROSS_ENT])
  plain = sum(float(losses.cross_entropy(x, t, w).cross_ent) for x, t, w in batches)
  np.testing.assert_allclose(merged.compute(), plain / 6, rtol=1e-6)   # 3 real tokens each
