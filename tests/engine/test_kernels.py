"""The engine's gradient rules: products in float32 with gradients in the operand dtype, and the
dense layer (flax's DenseGeneral with a float32 bias, unstacked slices, a folded LayerNorm)."""
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptjf.engine import kernels


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("spec,a_shape,b_shape", [("ij,jk->ik", (6, 5), (5, 3)),
                                                   ("btd,vd->btv", (2, 4, 8), (16, 8)),
                                                   ("abcd,cde->abe", (2, 3, 4, 5), (4, 5, 6)),
                                                   ("abc,cd->abd", (2, 3, 8), (8, 2))])
def test_product_is_float32_with_gradients_in_the_operand_dtype(spec, a_shape, b_shape, native,
                                                                 monkeypatch):
  monkeypatch.setattr(kernels, "bfloat16_arithmetic", lambda: native)
  a = jax.random.normal(jax.random.key(0), a_shape).astype(jnp.bfloat16)
  b = jax.random.normal(jax.random.key(1), b_shape).astype(jnp.bfloat16)
  weights = jax.random.normal(jax.random.key(2), jnp.einsum(spec, a, b).shape)

  def loss(product, x, y):
    return jnp.sum(product(spec, x, y) * weights)
  exact = lambda s, x, y: jnp.einsum(s, x.astype(jnp.float32), y.astype(jnp.float32))
  out = kernels.product(spec, a, b)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, exact(spec, a, b), rtol=1e-6, atol=1e-6)
  rounded = kernels.product(spec, a, b, result_rounded=True)   # allowed to round
  np.testing.assert_allclose(rounded, exact(spec, a, b), rtol=1e-2, atol=1e-2)
  want = jax.grad(functools.partial(loss, exact), argnums=(0, 1))(a, b)
  for product in (kernels.product, functools.partial(kernels.product, result_rounded=True)):
    grads = jax.grad(functools.partial(loss, product), argnums=(0, 1))(a, b)
    for got, ref, x in zip(grads, want, (a, b)):
      assert got.dtype == x.dtype == jnp.bfloat16
      # the cotangent is rounded to bfloat16 before its products: errors of ~2^-8 relative
      np.testing.assert_allclose(got.astype(jnp.float32), ref, rtol=0.02, atol=0.05)
  f32 = (a.astype(jnp.float32), b.astype(jnp.float32))
  np.testing.assert_array_equal(kernels.product(spec, *f32), jnp.einsum(spec, *f32))
  grads, want = (jax.grad(functools.partial(loss, p), argnums=(0, 1))(*f32)
                 for p in (kernels.product, exact))
  for got, ref in zip(grads, want):   # float32: the written-out gradient is autodiff's
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu" or not os.path.exists("/proc/cpuinfo"),
                    reason="reads a Linux CPU's flags")
def test_bfloat16_arithmetic_is_read_from_the_cpu():
  flags = open("/proc/cpuinfo").read().split()
  assert kernels.bfloat16_arithmetic() == ("avx512_bf16" in flags or "amx_bf16" in flags)


@pytest.mark.parametrize("features,axis", [(8, -1), ((3, 2, 4), -1), (6, (-2, -1))])
def test_dense_is_flax_dense_general_with_the_bias_added_in_float32(features, axis):
  x = jax.random.normal(jax.random.key(1), (2, 5, 3, 4))
  flax_dense = nn.DenseGeneral(features, axis=axis, kernel_init=nn.initializers.xavier_uniform())
  params = kernels.Dense(features, axis=axis).init(jax.random.key(0), x)
  assert jax.tree.all(jax.tree.map(jnp.array_equal, params, flax_dense.init(jax.random.key(0), x)))
  params["params"]["bias"] = jnp.full_like(params["params"]["bias"], 0.5)
  np.testing.assert_array_equal(kernels.Dense(features, axis=axis).apply(params, x),
                                flax_dense.apply(params, x))
  bf16 = kernels.Dense(features, axis=axis, dtype=jnp.bfloat16).apply(params, x)
  assert bf16.dtype == jnp.bfloat16
  np.testing.assert_allclose(bf16.astype(jnp.float32), flax_dense.apply(params, x), atol=0.1)


def test_unstacked_dense_has_the_same_parameters_and_gives_the_slices():
  x = jax.random.normal(jax.random.key(1), (2, 5, 6))
  stacked, unstacked = kernels.Dense((3, 2, 4)), kernels.Dense((3, 2, 4), unstack=True)
  params = stacked.init(jax.random.key(0), x)
  assert jax.tree.all(jax.tree.map(jnp.array_equal, params, unstacked.init(jax.random.key(0), x)))
  params["params"]["bias"] = jax.random.normal(jax.random.key(2), (3, 2, 4))
  parts = unstacked.apply(params, x)
  assert len(parts) == 3 and parts[0].shape == (2, 5, 2, 4)
  np.testing.assert_allclose(jnp.stack(parts, -3), stacked.apply(params, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_dense_gradients_are_close_to_float32(native, monkeypatch):
  monkeypatch.setattr(kernels, "bfloat16_arithmetic", lambda: native)
  x = jax.random.normal(jax.random.key(1), (2, 5, 4, 3))
  for features, axis, unstack in (((3, 2, 4), -1, True), (6, (-2, -1), False)):
    params = kernels.Dense(features, axis=axis).init(jax.random.key(0), x)["params"]

    def loss(p, dtype):
      out = kernels.Dense(features, axis=axis, dtype=dtype, unstack=unstack).apply(
          {"params": p}, x)
      return sum(jnp.sum(jnp.sin(o.astype(jnp.float32))) for o in jax.tree.leaves(out))
    f32, bf16 = (jax.grad(loss)(params, d) for d in (jnp.float32, jnp.bfloat16))
    for got, want in zip(jax.tree.leaves(bf16), jax.tree.leaves(f32)):
      np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("features,unstack", [(6, False), ((3, 2, 4), True)])
def test_dense_folds_a_normalized_input_as_if_scale_and_bias_were_applied(features, unstack):
  x = jax.random.normal(jax.random.key(1), (2, 5, 8))
  dense = kernels.Dense(features, unstack=unstack)
  params = {"dense": dense.init(jax.random.key(0), x)["params"],
            "scale": 1 + jax.random.normal(jax.random.key(2), (8,)),
            "bias": jax.random.normal(jax.random.key(3), (8,)),
            "centered": x, "rstd": jax.random.uniform(jax.random.key(5), (2, 5, 1), minval=0.5)}
  params["dense"]["bias"] = jax.random.normal(jax.random.key(4), params["dense"]["bias"].shape)

  def loss(p, folded):
    inputs = (kernels.Normalized(p["centered"], p["rstd"], p["scale"], p["bias"]) if folded
              else p["centered"] * p["rstd"] * p["scale"] + p["bias"])
    out = dense.apply({"params": p["dense"]}, inputs)
    return sum(jnp.sum(jnp.sin(o)) for o in jax.tree.leaves(out)), out

  (_, folded), (_, applied) = loss(params, True), loss(params, False)
  np.testing.assert_allclose(jnp.stack(jax.tree.leaves(folded)), jnp.stack(jax.tree.leaves(applied)),
                             rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda p: loss(p, f)[0])(params) for f in (True, False)]
  for got, want in zip(*(jax.tree.leaves(g) for g in grads)):   # incl. centered and rstd
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  bf16 = kernels.Dense(features, unstack=unstack, dtype=jnp.bfloat16).apply(
      {"params": params["dense"]}, kernels.Normalized(x, params["rstd"], params["scale"],
                                                        params["bias"]))
  np.testing.assert_allclose(jnp.stack(jax.tree.leaves(bf16)).astype(jnp.float32),
                             jnp.stack(jax.tree.leaves(applied)), rtol=0.05, atol=0.1)
  with pytest.raises(ValueError, match="last axis"):
    kernels.Dense(6, axis=-2).init(jax.random.key(0), kernels.Normalized(
        x, params["rstd"], params["scale"], params["bias"]))

