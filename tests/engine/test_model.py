"""Tests for ptjf.engine.model: shapes, masks, dropout, size, precision."""
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptjf.engine import model as model_lib
from ptjf.errors import UserError

VOCAB = 50


def _setup(**overrides):
  cfg = model_lib.preset("tiny", VOCAB, **overrides)
  model = model_lib.Transformer(cfg)
  rng = np.random.default_rng(0)
  enc = jnp.asarray(rng.integers(3, VOCAB, (2, 7)), jnp.int32)
  dec = jnp.asarray(rng.integers(3, VOCAB, (2, 5)), jnp.int32).at[:, 0].set(0)
  params = model.init(jax.random.key(0), enc, dec)["params"]
  return model, params, enc, dec


def test_logits_shape_and_dtype():
  model, params, enc, dec = _setup()
  logits = model.apply({"params": params}, enc, dec)
  assert logits.shape == (2, 5, VOCAB) and logits.dtype == jnp.float32
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))


def test_decoder_is_causal():
  model, params, enc, dec = _setup()
  base = model.apply({"params": params}, enc, dec)
  changed = model.apply({"params": params}, enc, dec.at[:, 3].set(7))
  np.testing.assert_allclose(base[:, :3], changed[:, :3], atol=1e-6)
  assert not np.allclose(base[:, 3:], changed[:, 3:])


def test_padding_does_not_change_real_logits():
  model, params, enc, dec = _setup()
  base = model.apply({"params": params}, enc, dec)
  padded_enc = jnp.pad(enc, ((0, 0), (0, 4)))
  padded_dec = jnp.pad(dec, ((0, 0), (0, 3)))
  padded = model.apply({"params": params}, padded_enc, padded_dec)
  np.testing.assert_allclose(base, padded[:, :5], atol=1e-5)


def test_encoder_padding_in_the_middle_is_masked():
  model, params, enc, dec = _setup()
  # A padded encoder position must not matter, whatever token embedding it has.
  enc_a = enc.at[:, 4:].set(0)
  enc_b = enc_a.at[:, 6].set(0)
  np.testing.assert_allclose(model.apply({"params": params}, enc_a, dec),
                             model.apply({"params": params}, enc_b, dec),
                             atol=1e-6)
  assert not np.allclose(model.apply({"params": params}, enc, dec),
                         model.apply({"params": params}, enc_a, dec))


def test_dropout_off_is_deterministic_on_depends_on_rng():
  model, params, enc, dec = _setup(dropout_rate=0.3)
  run = lambda seed, on: model.apply(
      {"params": params}, enc, dec, enable_dropout=on,
      rngs={"dropout": jax.random.key(seed)})
  np.testing.assert_array_equal(run(0, False), run(1, False))
  np.testing.assert_array_equal(run(0, True), run(0, True))
  assert not np.allclose(run(0, True), run(1, True))
  assert not np.allclose(run(0, True), run(0, False))


def test_nmt3_parameter_count():
  # Hand count, d=512, ff=2048, QKV=512, vocab 64000, biases everywhere:
  #   shared embedding          64000 * 512                 = 32,768,000
  #   attention (q,k,v,o + b)   4 * (512 * 512 + 512)       =  1,050,624
  #   MLP                       512*2048 + 2048 + 2048*512 + 512 = 2,099,712
  #   LayerNorm                 2 * 512                     =      1,024
  #   encoder layer: attn + MLP + 2 LN                      =  3,152,384
  #   decoder layer: 2 attn + MLP + 3 LN                    =  4,204,032
  #   32,768,000 + 3 * 3,152,384 + 3 * 4,204,032 + 2 final LNs (2,048)
  #                                                         = 54,839,296
  cfg = model_lib.preset("nmt3", 64000)
  tokens = jnp.ones((1, 4), jnp.int32)
  shapes = jax.eval_shape(
      lambda: model_lib.Transformer(cfg).init(jax.random.key(0), tokens,
                                              tokens))
  assert sum(x.size for x in jax.tree.leaves(shapes["params"])) == 54_839_296


def test_bfloat16_logits_close_to_float32():
  model, params, enc, dec = _setup()
  f32 = model.apply({"params": params}, enc, dec)
  bf16_model = model_lib.Transformer(
      model_lib.preset("tiny", VOCAB, dtype="bfloat16"))
  bf16 = bf16_model.apply({"params": params}, enc, dec)
  assert bf16.dtype == jnp.float32
  np.testing.assert_allclose(bf16, f32, atol=0.1, rtol=0.05)
  assert (bf16.argmax(-1) == f32.argmax(-1)).mean() > 0.8


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("spec,a_shape,b_shape", [("ij,jk->ik", (6, 5), (5, 3)),
                                                   ("btd,vd->btv", (2, 4, 8), (16, 8)),
                                                   ("abcd,cde->abe", (2, 3, 4, 5), (4, 5, 6)),
                                                   ("abc,cd->abd", (2, 3, 8), (8, 2))])
def test_product_is_float32_with_gradients_in_the_operand_dtype(spec, a_shape, b_shape, native,
                                                                 monkeypatch):
  monkeypatch.setattr(model_lib, "bfloat16_arithmetic", lambda: native)
  a = jax.random.normal(jax.random.key(0), a_shape).astype(jnp.bfloat16)
  b = jax.random.normal(jax.random.key(1), b_shape).astype(jnp.bfloat16)
  weights = jax.random.normal(jax.random.key(2), jnp.einsum(spec, a, b).shape)

  def loss(product, x, y):
    return jnp.sum(product(spec, x, y) * weights)
  exact = lambda s, x, y: jnp.einsum(s, x.astype(jnp.float32), y.astype(jnp.float32))
  out = model_lib.product(spec, a, b)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, exact(spec, a, b), rtol=1e-6, atol=1e-6)
  rounded = model_lib.product(spec, a, b, result_rounded=True)   # allowed to round
  np.testing.assert_allclose(rounded, exact(spec, a, b), rtol=1e-2, atol=1e-2)
  want = jax.grad(functools.partial(loss, exact), argnums=(0, 1))(a, b)
  for product in (model_lib.product, functools.partial(model_lib.product, result_rounded=True)):
    grads = jax.grad(functools.partial(loss, product), argnums=(0, 1))(a, b)
    for got, ref, x in zip(grads, want, (a, b)):
      assert got.dtype == x.dtype == jnp.bfloat16
      # the cotangent is rounded to bfloat16 before its products: errors of ~2^-8 relative
      np.testing.assert_allclose(got.astype(jnp.float32), ref, rtol=0.02, atol=0.05)
  f32 = (a.astype(jnp.float32), b.astype(jnp.float32))
  np.testing.assert_array_equal(model_lib.product(spec, *f32), jnp.einsum(spec, *f32))
  grads, want = (jax.grad(functools.partial(loss, p), argnums=(0, 1))(*f32)
                 for p in (model_lib.product, exact))
  for got, ref in zip(grads, want):   # float32: the written-out gradient is autodiff's
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu" or not os.path.exists("/proc/cpuinfo"),
                    reason="reads a Linux CPU's flags")
def test_bfloat16_arithmetic_is_read_from_the_cpu():
  flags = open("/proc/cpuinfo").read().split()
  assert model_lib.bfloat16_arithmetic() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_preset_rejects_unknown_names():
  with pytest.raises(UserError, match="unknown model preset"):
    model_lib.preset("huge", 10)
  with pytest.raises(UserError, match="unknown model field"):
    model_lib.preset("tiny", 10, emb=3)
  with pytest.raises(UserError, match="dtype"):
    model_lib.preset("tiny", 10, dtype="float16")


def test_bench_and_nmt6_presets():
  assert model_lib.preset("bench", 8192).num_heads * 64 == 256
  cfg = model_lib.preset("nmt6", 64000)
  assert cfg.num_encoder_layers == cfg.num_decoder_layers == 6
  assert cfg.emb_dim == 512


@pytest.mark.parametrize("features,axis", [(8, -1), ((3, 2, 4), -1), (6, (-2, -1))])
def test_dense_is_flax_dense_general_with_the_bias_added_in_float32(features, axis):
  x = jax.random.normal(jax.random.key(1), (2, 5, 3, 4))
  flax_dense = nn.DenseGeneral(features, axis=axis, kernel_init=nn.initializers.xavier_uniform())
  params = model_lib.Dense(features, axis=axis).init(jax.random.key(0), x)
  assert jax.tree.all(jax.tree.map(jnp.array_equal, params, flax_dense.init(jax.random.key(0), x)))
  params["params"]["bias"] = jnp.full_like(params["params"]["bias"], 0.5)
  np.testing.assert_array_equal(model_lib.Dense(features, axis=axis).apply(params, x),
                                flax_dense.apply(params, x))
  bf16 = model_lib.Dense(features, axis=axis, dtype=jnp.bfloat16).apply(params, x)
  assert bf16.dtype == jnp.bfloat16
  np.testing.assert_allclose(bf16.astype(jnp.float32), flax_dense.apply(params, x), atol=0.1)


def test_unstacked_dense_has_the_same_parameters_and_gives_the_slices():
  x = jax.random.normal(jax.random.key(1), (2, 5, 6))
  stacked, unstacked = model_lib.Dense((3, 2, 4)), model_lib.Dense((3, 2, 4), unstack=True)
  params = stacked.init(jax.random.key(0), x)
  assert jax.tree.all(jax.tree.map(jnp.array_equal, params, unstacked.init(jax.random.key(0), x)))
  params["params"]["bias"] = jax.random.normal(jax.random.key(2), (3, 2, 4))
  parts = unstacked.apply(params, x)
  assert len(parts) == 3 and parts[0].shape == (2, 5, 2, 4)
  np.testing.assert_allclose(jnp.stack(parts, -3), stacked.apply(params, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_dense_gradients_are_close_to_float32(native, monkeypatch):
  monkeypatch.setattr(model_lib, "bfloat16_arithmetic", lambda: native)
  x = jax.random.normal(jax.random.key(1), (2, 5, 4, 3))
  for features, axis, unstack in (((3, 2, 4), -1, True), (6, (-2, -1), False)):
    params = model_lib.Dense(features, axis=axis).init(jax.random.key(0), x)["params"]

    def loss(p, dtype):
      out = model_lib.Dense(features, axis=axis, dtype=dtype, unstack=unstack).apply(
          {"params": p}, x)
      return sum(jnp.sum(jnp.sin(o.astype(jnp.float32))) for o in jax.tree.leaves(out))
    f32, bf16 = (jax.grad(loss)(params, d) for d in (jnp.float32, jnp.bfloat16))
    for got, want in zip(jax.tree.leaves(bf16), jax.tree.leaves(f32)):
      np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("features,unstack", [(6, False), ((3, 2, 4), True)])
def test_dense_folds_a_normalized_input_as_if_scale_and_bias_were_applied(features, unstack):
  x = jax.random.normal(jax.random.key(1), (2, 5, 8))
  dense = model_lib.Dense(features, unstack=unstack)
  params = {"dense": dense.init(jax.random.key(0), x)["params"],
            "scale": 1 + jax.random.normal(jax.random.key(2), (8,)),
            "bias": jax.random.normal(jax.random.key(3), (8,)),
            "centered": x, "rstd": jax.random.uniform(jax.random.key(5), (2, 5, 1), minval=0.5)}
  params["dense"]["bias"] = jax.random.normal(jax.random.key(4), params["dense"]["bias"].shape)

  def loss(p, folded):
    inputs = (model_lib.Normalized(p["centered"], p["rstd"], p["scale"], p["bias"]) if folded
              else p["centered"] * p["rstd"] * p["scale"] + p["bias"])
    out = dense.apply({"params": p["dense"]}, inputs)
    return sum(jnp.sum(jnp.sin(o)) for o in jax.tree.leaves(out)), out

  (_, folded), (_, applied) = loss(params, True), loss(params, False)
  np.testing.assert_allclose(jnp.stack(jax.tree.leaves(folded)), jnp.stack(jax.tree.leaves(applied)),
                             rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda p: loss(p, f)[0])(params) for f in (True, False)]
  for got, want in zip(*(jax.tree.leaves(g) for g in grads)):   # incl. centered and rstd
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  bf16 = model_lib.Dense(features, unstack=unstack, dtype=jnp.bfloat16).apply(
      {"params": params["dense"]}, model_lib.Normalized(x, params["rstd"], params["scale"],
                                                        params["bias"]))
  np.testing.assert_allclose(jnp.stack(jax.tree.leaves(bf16)).astype(jnp.float32),
                             jnp.stack(jax.tree.leaves(applied)), rtol=0.05, atol=0.1)
  with pytest.raises(ValueError, match="last axis"):
    model_lib.Dense(6, axis=-2).init(jax.random.key(0), model_lib.Normalized(
        x, params["rstd"], params["scale"], params["bias"]))


def test_folded_layer_norm_leaves_scale_and_bias_to_the_next_layer():
  x = 3 + 2 * jax.random.normal(jax.random.key(1), (2, 5, 8))
  params = model_lib.LayerNorm().init(jax.random.key(0), x)
  params = jax.tree.map(lambda p: p + 0.5, params)
  norm = model_lib.LayerNorm(folded=True).apply(params, x)
  np.testing.assert_allclose(norm.x.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(norm.x * norm.scale + norm.bias, model_lib.LayerNorm().apply(params, x),
                             rtol=1e-5, atol=1e-5)
