"""Pins the T5X-style cross-entropy sums."""
import math

import numpy as np

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
