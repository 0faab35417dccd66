"""Tests for ptjf.engine.dropout: keep rate, scaling, independence, seeding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptjf.engine import dropout


def _drop(x, rate, key, **kw):
  return dropout.Dropout(rate, **kw).apply(
      {}, x, deterministic=False, rngs={"dropout": key})


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_keep_rate_within_binomial_tolerance(rate):
  n = 1 << 20
  for seed in range(3):
    out = _drop(jnp.ones((64, n // 64)), rate, jax.random.key(seed))
    kept = int((out != 0).sum())
    sigma = np.sqrt(n * rate * (1 - rate))
    assert abs(kept - n * (1 - rate)) < 4.5 * sigma, (seed, kept)


def test_kept_values_scaled_by_inverse_keep_prob():
  x = jnp.arange(1, 10001, dtype=jnp.float32).reshape(100, 100)
  y = _drop(x, 0.25, jax.random.key(3))
  kept = y != 0
  np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)


def test_bits_are_uniform_and_adjacent_bits_uncorrelated():
  bits = dropout.mask_bits(jax.random.key(7), (256, 1024))
  bits = np.asarray(bits, np.float64)
  u = bits / 2**32
  counts = np.histogram(u, bins=16, range=(0, 1))[0]
  expected = u.size / 16
  chi2 = ((counts - expected) ** 2 / expected).sum()
  assert chi2 < 40  # 15 dof: p ~ 5e-4
  flat = u.reshape(-1)
  assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
  assert abs(np.corrcoef(u[:-1].reshape(-1), u[1:].reshape(-1))[0, 1]) < 0.01


def test_masks_differ_across_steps_and_repeat_for_a_seed():
  x = jnp.ones((32, 128))
  key = jax.random.key(0)
  step = lambda s: _drop(x, 0.1, jax.random.fold_in(key, s)) != 0
  np.testing.assert_array_equal(step(5), step(5))
  agreement = (step(5) == step(6)).mean()
  assert agreement < 0.9  # independent masks agree on 0.9^2 + 0.1^2 = 82%


def test_masks_differ_across_devices():
  # Under jit with a batch-sharded array each device holds rows of one global
  # tensor, whose mask hashes the global index: slices differ.
  mask = _drop(jnp.ones((8, 512)), 0.5, jax.random.key(0)) != 0
  assert (mask[:4] == mask[4:]).mean() < 0.6
  # Under vmap/pmap the local index repeats; axis_name folds the device in.
  mapped = lambda **kw: jax.vmap(
      lambda row: _drop(row, 0.5, jax.random.key(0), **kw),
      axis_name="devices")(jnp.ones((2, 4096))) != 0
  same = mapped()
  assert (same[0] == same[1]).all()
  folded = mapped(axis_name="devices")
  assert (folded[0] == folded[1]).mean() < 0.6


def test_rate_zero_and_deterministic_are_identity():
  x = jnp.arange(12.0).reshape(3, 4)
  np.testing.assert_array_equal(_drop(x, 0.0, jax.random.key(0)), x)
  out = dropout.Dropout(0.5).apply({}, x, deterministic=True)
  np.testing.assert_array_equal(out, x)


def test_threshold_example():
  assert dropout.keep_threshold(0.1) == 429496730
