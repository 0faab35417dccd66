"""Pins the learning-rate schedules of the local engine at a few steps."""
import numpy as np
import optax

from ptjf.engine import optim


def test_warmup_cosine_values():
  s = optim.warmup_cosine_schedule(learning_rate=1e-3, warmup_steps=10, total_steps=110)
  np.testing.assert_allclose([s(0), s(1), s(10), s(60), s(110)], [0, 1e-4, 1e-3, 5e-4, 0], atol=1e-9)


def test_constant_then_rsqrt_values():
  s = optim.constant_then_rsqrt_schedule(learning_rate=0.01, warmup_steps=100)
  np.testing.assert_allclose([s(0), s(50), s(100), s(400)], [0.01, 0.01, 0.01, 0.005], rtol=1e-6)


def test_warmup_rsqrt_values():
  s = optim.warmup_rsqrt_schedule(learning_rate=0.01, warmup_steps=100)
  np.testing.assert_allclose([s(0), s(50), s(100), s(400)], [0, 0.005, 0.01, 0.005], rtol=1e-6)


def test_optimizers_update_params():
  params = {"w": np.ones((2, 3), np.float32)}
  grads = {"w": np.full((2, 3), 0.5, np.float32)}
  for tx in (optim.adam(optax.constant_schedule(0.1)), optim.adafactor(optax.constant_schedule(0.1))):
    updates, _ = tx.update(grads, tx.init(params), params)
    assert np.all(np.asarray(updates["w"]) < 0)
