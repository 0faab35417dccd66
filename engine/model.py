"""The paper's NMT model: a pre-LayerNorm encoder-decoder Transformer (Flax).

Architecture (paper Appendix A.1, Table 3; Vaswani et al. with pre-LN):
shared input/output embedding (inputs scaled by sqrt(d_model), logits =
x @ embedding^T), sinusoidal absolute positions, per layer
x += Dropout(Attention(LN(x))) [+ cross-attention in the decoder],
x += Dropout(MLP(LN(x))), a final LayerNorm on each side. Dense layers and
LayerNorms have biases (the in-layer LayerNorms' scale and bias are folded
into the dense layers that read them, `kernels.Normalized`: the same parameters).
Dropout (rate `dropout_rate`) is applied to the embeddings, attention
probabilities, the MLP hidden layer and each residual branch; it uses
`ptjf.engine.dropout` (a hashed mask, cheaper on CPU than threefry;
`dropout_mask="threefry"` selects Flax's generator).

Positions are sinusoidal, not learned: no parameters (so the parameter count
does not depend on `max_length`), and the paper does not say it learned them.

Precision: parameters are float32; activations and matmul operands are
`config.dtype` ("float32" or "bfloat16"); LayerNorm statistics, attention
softmax and the output logits are float32. In bfloat16, how the dense
layers' and logits' products round depends on the hardware (`kernels.product`):
where it multiplies bfloat16, forward and gradient products accumulate in
float32; elsewhere XLA's own choice.

Masks: encoder self-attention and cross-attention ignore padding keys (id 0);
decoder self-attention is causal. Decoder inputs start with id 0 (T5's BOS),
so the decoder's padding is not masked by id: trailing padding is already
invisible to real tokens through the causal mask.

Example (the `tiny` preset used in tests):

    cfg = preset("tiny", vocab_size=100)
    model = Transformer(cfg)
    params = model.init(jax.random.key(0), enc, dec)["params"]
    logits = model.apply({"params": params}, enc, dec)   # float32 [B, T, 100]
"""
import dataclasses
import math
from typing import Any, Optional

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np

from ptjf.engine import dropout as dropout_lib, kernels
from ptjf.errors import UserError

_NEG_INF = -1e9  # added to masked attention logits (float32)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Model hyper-parameters (defaults: the paper's 3+3-layer NMT model)."""
  vocab_size: int
  emb_dim: int = 512          # d_model
  num_heads: int = 8
  head_dim: int = 64          # num_heads * head_dim = QKV dim (512, paper)
  mlp_dim: int = 2048
  num_encoder_layers: int = 3
  num_decoder_layers: int = 3
  dropout_rate: float = 0.1   # feed-forward, attention and residual dropout
  dtype: str = "float32"      # activation dtype; params stay float32
  max_length: int = 512       # longest sequence the position table covers
  dropout_mask: str = "hash"  # "hash" (fast) | "threefry" (flax's generator)


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(emb_dim=32, num_heads=2, head_dim=16, mlp_dim=64,
                 num_encoder_layers=1, num_decoder_layers=1),
    "demo": dict(emb_dim=96, num_heads=4, head_dim=24, mlp_dim=384,
                 num_encoder_layers=2, num_decoder_layers=2),
    "small": dict(emb_dim=128, num_heads=4, head_dim=32, mlp_dim=512,
                  num_encoder_layers=2, num_decoder_layers=2),
    "bench": dict(emb_dim=256, num_heads=4, head_dim=64, mlp_dim=1024,
                  num_encoder_layers=3, num_decoder_layers=3),
    "nmt3": dict(num_encoder_layers=3, num_decoder_layers=3),
    "nmt6": dict(num_encoder_layers=6, num_decoder_layers=6),
}


@gin.configurable
def preset(name: str, vocab_size: int, **overrides: Any) -> TransformerConfig:
  """A named model size with optional field overrides.

  `preset("nmt3", 64000)` is the paper's main model (54.8M parameters);
  `preset("tiny", 100, dropout_rate=0.0)` a test model.
  """
  if name not in PRESETS:
    raise UserError(f"unknown model preset {name!r}: choose from "
                    f"{', '.join(PRESETS)}")
  fields = {f.name for f in dataclasses.fields(TransformerConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise UserError(f"unknown model field(s) {', '.join(unknown)}: choose from "
                    f"{', '.join(sorted(fields - {'vocab_size'}))}")
  config = TransformerConfig(vocab_size=vocab_size,
                             **{**PRESETS[name], **overrides})
  if config.dtype not in ("float32", "bfloat16"):
    raise UserError(f"model dtype {config.dtype!r}: use float32 or bfloat16")
  if config.dropout_mask not in dropout_lib.MASKS:
    raise UserError(f"dropout_mask {config.dropout_mask!r}: use one of "
                    f"{', '.join(dropout_lib.MASKS)}")
  return config


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
  """Vaswani et al.'s table [length, dim]: sin on even, cos on odd features."""
  position = np.arange(length)[:, None]
  div = np.exp(np.arange(0, dim, 2) * (-math.log(10000.0) / dim))
  table = np.zeros((length, dim), np.float32)
  table[:, 0::2] = np.sin(position * div)
  table[:, 1::2] = np.cos(position * div)
  return table


class Positions(nn.Module):
  """Sinusoidal position embeddings [length, dim] (no parameters).

  With `decode`, a "cache" variable counts the positions already decoded, so
  one-token steps get positions 0, 1, 2, ...; the first call (creating the
  cache) returns positions from 0.
  """
  max_length: int
  dim: int

  @nn.compact
  def __call__(self, length: int, *, decode: bool = False) -> jnp.ndarray:
    table = jnp.asarray(sinusoidal_positions(self.max_length, self.dim))
    if not decode:
      return table[:length]
    initialized = self.has_variable("cache", "position_index")
    index = self.variable("cache", "position_index",
                          lambda: jnp.array(0, jnp.int32))
    if not initialized:
      return table[:length]
    start = index.value
    index.value = start + length
    return jax.lax.dynamic_slice_in_dim(table, start, length)


class LayerNorm(nn.Module):
  """LayerNorm with float32 statistics, output in `dtype`; `Normalized` if `folded`."""
  dtype: Any = jnp.float32
  folded: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray | kernels.Normalized:
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    x = x.astype(jnp.float32)
    centered = x - x.mean(-1, keepdims=True)
    rstd = jax.lax.rsqrt(jnp.square(centered).mean(-1, keepdims=True) + 1e-6)
    if self.folded:
      return kernels.Normalized(centered, rstd, scale, bias)
    return (centered * rstd * scale + bias).astype(self.dtype)


def _dropout(cfg: TransformerConfig) -> dropout_lib.Dropout:
  return dropout_lib.Dropout(cfg.dropout_rate, mask=cfg.dropout_mask)


class Attention(nn.Module):
  """Multi-head attention; self-attention with a KV cache when `decode`.

  Self-attention projects q, k, v with one fused kernel [d, 3, H, D] (one
  dot per slice, `Dense(unstack=True)`); cross-attention projects q from `x`
  and k, v (fused the same way) from `kv`.
  `mask` is boolean, broadcastable to [B, H, Tq, Tk] (True = attend).
  """
  config: TransformerConfig
  self_attention: bool

  @nn.compact
  def __call__(self, x, kv, mask, *, deterministic: bool, decode: bool = False):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    heads = (cfg.num_heads, cfg.head_dim)
    if self.self_attention:
      q, k, v = kernels.Dense((3,) + heads, dtype=dtype, name="qkv", unstack=True)(x)
    else:
      q = kernels.Dense(heads, dtype=dtype, name="query")(x)
      k, v = kernels.Dense((2,) + heads, dtype=dtype, name="kv", unstack=True)(kv)
    if decode:
      k, v, mask = self._update_cache(k, v, mask)
    q = q * jnp.asarray(cfg.head_dim ** -0.5, dtype)
    # Not `kernels.product`: XLA:CPU has no bfloat16-in, float32-out kernel for one of
    # these batched products' gradients ("Unsupported element type for
    # DotThunk"); they are ~4% of the bench step's matmul work.
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
    logits = jnp.where(mask, logits, _NEG_INF)
    probs = jax.nn.softmax(logits).astype(dtype)
    probs = _dropout(cfg)(probs, deterministic=deterministic)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
    return kernels.Dense(cfg.emb_dim, axis=(-2, -1), dtype=dtype, name="out")(out)

  def _update_cache(self, k, v, mask):
    """Stores this step's k, v; returns the cached ones and the causal mask.

    The first call (cache not yet created) sizes the cache from the full
    decoder length and attends normally, as Flax's own attention does.
    """
    initialized = self.has_variable("cache", "cached_key")
    cached_k = self.variable("cache", "cached_key", jnp.zeros, k.shape,
                             k.dtype)
    cached_v = self.variable("cache", "cached_value", jnp.zeros, v.shape,
                             v.dtype)
    index = self.variable("cache", "cache_index",
                          lambda: jnp.array(0, jnp.int32))
    if not initialized:
      return k, v, mask
    length = cached_k.value.shape[1]
    i = index.value
    update = lambda cache, new: jax.lax.dynamic_update_slice(
        cache, new, (0, i, 0, 0))
    cached_k.value = update(cached_k.value, k)
    cached_v.value = update(cached_v.value, v)
    index.value = i + k.shape[1]
    step_mask = (jnp.arange(length) <= i)[None, None, None, :]
    return cached_k.value, cached_v.value, step_mask


class Mlp(nn.Module):
  """Feed-forward block: Dense(mlp_dim) -> ReLU -> Dropout -> Dense(emb_dim)."""
  config: TransformerConfig

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    h = nn.relu(kernels.Dense(cfg.mlp_dim, dtype=dtype, name="wi")(x))
    h = _dropout(cfg)(h, deterministic=deterministic)
    return kernels.Dense(cfg.emb_dim, dtype=dtype, name="wo")(h)


class EncoderLayer(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x, mask, *, deterministic: bool):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    drop = lambda y: _dropout(cfg)(y, deterministic=deterministic)
    h = LayerNorm(dtype, folded=True, name="pre_attention_norm")(x)
    x = x + drop(Attention(cfg, True, name="attention")(
        h, h, mask, deterministic=deterministic))
    h = LayerNorm(dtype, folded=True, name="pre_mlp_norm")(x)
    return x + drop(Mlp(cfg, name="mlp")(h, deterministic=deterministic))


class DecoderLayer(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x, encoded, self_mask, cross_mask, *, deterministic: bool,
               decode: bool):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    drop = lambda y: _dropout(cfg)(y, deterministic=deterministic)
    h = LayerNorm(dtype, folded=True, name="pre_self_attention_norm")(x)
    x = x + drop(Attention(cfg, True, name="self_attention")(
        h, h, self_mask, deterministic=deterministic, decode=decode))
    h = LayerNorm(dtype, folded=True, name="pre_cross_attention_norm")(x)
    x = x + drop(Attention(cfg, False, name="encoder_decoder_attention")(
        h, encoded, cross_mask, deterministic=deterministic))
    h = LayerNorm(dtype, folded=True, name="pre_mlp_norm")(x)
    return x + drop(Mlp(cfg, name="mlp")(h, deterministic=deterministic))


class Transformer(nn.Module):
  """Encoder-decoder; `__call__` gives float32 logits [B, T, vocab_size]."""
  config: TransformerConfig

  def setup(self):
    cfg = self.config
    self.embedding = nn.Embed(
        cfg.vocab_size, cfg.emb_dim, param_dtype=jnp.float32,
        embedding_init=nn.initializers.normal(stddev=cfg.emb_dim ** -0.5))
    self.encoder_positions = Positions(cfg.max_length, cfg.emb_dim)
    self.decoder_positions = Positions(cfg.max_length, cfg.emb_dim)
    self.embed_dropout = _dropout(cfg)
    self.encoder_layers = [EncoderLayer(cfg, name=f"encoder_layer_{i}")
                           for i in range(cfg.num_encoder_layers)]
    self.encoder_norm = LayerNorm(jnp.dtype(cfg.dtype))
    self.decoder_layers = [DecoderLayer(cfg, name=f"decoder_layer_{i}")
                           for i in range(cfg.num_decoder_layers)]
    self.decoder_norm = LayerNorm(jnp.dtype(cfg.dtype))

  def _embed(self, tokens, positions, deterministic):
    cfg = self.config
    if tokens.shape[-1] > cfg.max_length:
      raise UserError(f"sequence length {tokens.shape[-1]} exceeds the model's "
                      f"max_length {cfg.max_length}: raise max_length")
    x = self.embedding(tokens) * math.sqrt(cfg.emb_dim) + positions
    x = x.astype(jnp.dtype(cfg.dtype))
    return self.embed_dropout(x, deterministic=deterministic)

  def encode(self, encoder_input_tokens, *, enable_dropout: bool = False):
    """Encoder outputs [B, S, emb_dim] in the activation dtype."""
    deterministic = not enable_dropout
    length = encoder_input_tokens.shape[-1]
    x = self._embed(encoder_input_tokens, self.encoder_positions(length),
                    deterministic)
    mask = (encoder_input_tokens > 0)[:, None, None, :]
    for layer in self.encoder_layers:
      x = layer(x, mask, deterministic=deterministic)
    return self.encoder_norm(x)

  def decode(self, encoded, encoder_input_tokens, decoder_input_tokens, *,
             enable_dropout: bool = False, decode: bool = False):
    """Float32 logits [B, T, V] for the decoder inputs.

    With `decode=True` the self-attention reads and extends the "cache"
    collection (apply with `mutable=["cache"]`): the first call, on a dummy
    [B, max_decode_length] input, creates the cache; then each call feeds one
    token at position `cache_index`.
    """
    cfg = self.config
    deterministic = not enable_dropout
    length = decoder_input_tokens.shape[-1]
    positions = self.decoder_positions(length, decode=decode)
    y = self._embed(decoder_input_tokens, positions, deterministic)
    causal = jnp.tril(jnp.ones((length, length), bool))[None, None]
    cross_mask = (encoder_input_tokens > 0)[:, None, None, :]
    for layer in self.decoder_layers:
      y = layer(y, encoded, causal, cross_mask, deterministic=deterministic,
                decode=decode)
    y = self.decoder_norm(y)
    embedding = self.embedding.embedding.astype(y.dtype)
    return kernels.product("btd,vd->btv", y, embedding)

  def __call__(self, encoder_input_tokens, decoder_input_tokens,
               decoder_target_tokens: Optional[jnp.ndarray] = None, *,
               enable_dropout: bool = False):
    """Teacher-forced logits. `decoder_target_tokens` is accepted for T5X's
    signature; padding needs no extra mask (see the module docstring)."""
    del decoder_target_tokens
    encoded = self.encode(encoder_input_tokens, enable_dropout=enable_dropout)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens,
                       enable_dropout=enable_dropout)
