"""Pins the learning-rate schedules of the local engine at a few steps, and its Adafactor."""

import gin
import jax
import numpy as np
import optax

from ptjf import gin_files
from ptjf.engine import optim, train  # pylint: disable=unused-import  (train's gin names)


def test_warmup_cosine_values():
  s = optim.warmup_cosine_schedule(learning_rate=1e-3, warmup_steps=10, total_steps=110)
  np.testing.assert_allclose([s(0), s(1), s(10), s(60), s(110)], [0, 1e-4, 1e-3, 5e-4, 0], atol=1e-9)


def test_rsqrt_values():
  s = optim.rsqrt_schedule(learning_rate=0.01, warmup_steps=100)
  np.testing.assert_allclose([s(0), s(50), s(100), s(400)], [0.01, 0.01, 0.01, 0.005], rtol=1e-6)


def test_params_only_lm_finetune_warms_up_then_rsqrt():
  gin_dir = gin_files.gin_dir() / "local"
  try:
    gin.parse_config_files_and_bindings(
        [str(gin_dir / f) for f in ("base.gin", "lm_adafactor.gin", "finetune_params_only.gin")],
        ["LEARNING_RATE = 0.01", "WARMUP_STEPS = 100", "MODEL_DIR = '/m'",
         "MIXTURE_OR_TASK_NAME = 't'"])
    s = optim.rsqrt_schedule()
  finally:
    gin.clear_config()
  np.testing.assert_allclose([s(0), s(50), s(100), s(400)], [0, 0.005, 0.01, 0.005], rtol=1e-6)


def test_optimizers_update_params():
  params = {"w": np.ones((2, 3), np.float32)}
  grads = {"w": np.full((2, 3), 0.5, np.float32)}
  for tx in (optim.adam(optax.constant_schedule(0.1)), optim.adafactor(optax.constant_schedule(0.1))):
    updates, _ = tx.update(grads, tx.init(params), params)
    assert np.all(np.asarray(updates["w"]) < 0)


def test_adafactor_matches_optax():
  """Same state tree as optax's unfactored Adafactor (checkpoints load either way), same steps."""
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(16, 8)).astype(np.float32), "b": np.zeros(8, np.float32)}
  ours = optim.adafactor(optax.constant_schedule(0.01))
  ref = optax.adafactor(optax.constant_schedule(0.01), factored=False, momentum=0.9,
                        clipping_threshold=1.0, multiply_by_parameter_scale=False)
  state, ref_state = ours.init(params), ref.init(params)
  assert jax.tree.structure(state) == jax.tree.structure(ref_state)
  p, ref_p = params, params
  for step in range(10):
    grads = jax.tree.map(lambda x: (step + 1) * rng.normal(size=x.shape).astype(np.float32), params)
    grads["w"][0] = 0.0  # a zero gradient: v stays above 0 only through epsilon
    updates, state = ours.update(grads, state, p)
    ref_updates, ref_state = ref.update(grads, ref_state, ref_p)
    p, ref_p = optax.apply_updates(p, updates), optax.apply_updates(ref_p, ref_updates)
  for got, want in zip(jax.tree.leaves((p, state)), jax.tree.leaves((ref_p, ref_state))):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
