"""Tests for ptjf.engine.model: shapes, masks, dropout, size, precision."""
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


def test_folded_layer_norm_leaves_scale_and_bias_to_the_next_layer():
  x = 3 + 2 * jax.random.normal(jax.random.key(1), (2, 5, 8))
  params = model_lib.LayerNorm().init(jax.random.key(0), x)
  params = jax.tree.map(lambda p: p + 0.5, params)
  norm = model_lib.LayerNorm(folded=True).apply(params, x)
  np.testing.assert_allclose(norm.x.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(norm.x * norm.scale + norm.bias, model_lib.LayerNorm().apply(params, x),
                             rtol=1e-5, atol=1e-5)
