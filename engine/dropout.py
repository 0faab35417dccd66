"""Dropout whose mask is a counter-based hash of (key, element index), fused by XLA into its consumer.

    bits[i] = fmix32(fmix32(i * 0x9E3779B9 + k0) ^ k1)

`i` is the element's flat index in the (global) array, (k0, k1) the layer's "dropout" rng
(Flax folds the module path and the step into it), fmix32 MurmurHash3's finalizer. An element
is kept iff bits >= round(rate * 2**32), and kept values are scaled by 1 / (1 - rate): rate 0.1
gives threshold 429496730, so bits 5 drop an element and bits 3e9 keep it (times 1/0.9).
Under `jit` with a batch-sharded array each device's slice gets its own mask (`i` is global);
under `pmap`/`shard_map` pass `axis_name`. A statistical hash, not a cryptographic generator.
Why not `flax.linen.Dropout` (threefry masks are costly on CPU): docs/bench.md.
"""
from typing import Optional

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

_GOLDEN = 0x9E3779B9


def _fmix32(h: jnp.ndarray) -> jnp.ndarray:
  """MurmurHash3's 32-bit finalizer: a bijective, avalanching mix."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def key_words(rng: jax.Array) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Two uint32 words from a typed or raw JAX PRNG key (any implementation)."""
  if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  words = rng.reshape(-1).astype(jnp.uint32)
  return words[0], words[1]


def mask_bits(rng: jax.Array, shape: tuple[int, ...]) -> jnp.ndarray:
  """Uniform uint32 bits of `shape`, a hash of (rng, flat element index)."""
  k0, k1 = key_words(rng)
  size = 1
  for n in shape:
    size *= n
  if size >= 2**32:
    raise ValueError(f"dropout over {size} elements: at most 2**32 - 1")
  index = lax.iota(jnp.uint32, size).reshape(shape)
  return _fmix32(_fmix32(index * jnp.uint32(_GOLDEN) + k0) ^ k1)


def keep_threshold(rate: float) -> int:
  """Bits below this are dropped: round(rate * 2**32). E.g. 0.1 -> 429496730."""
  return min(int(round(rate * 2**32)), 2**32 - 1)


MASKS = ("hash", "threefry")


def apply_dropout(x: jnp.ndarray, rate: float, rng: jax.Array,
                  mask: str = "hash") -> jnp.ndarray:
  """Zeroes each element with probability `rate`, scales the rest by 1/(1-rate).

  `mask="hash"` uses `mask_bits`; "threefry" draws `jax.random.bernoulli`
  from `rng` as `flax.linen.Dropout` does (the slow reference).
  """
  if rate <= 0.0:
    return x
  if rate >= 1.0:
    return jnp.zeros_like(x)
  if mask == "hash":
    keep = mask_bits(rng, x.shape) >= jnp.uint32(keep_threshold(rate))
  elif mask == "threefry":
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  else:
    raise ValueError(f"dropout mask {mask!r}: choose from {MASKS}")
  scale = jnp.asarray(1.0 / (1.0 - rate), x.dtype)
  return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))


class Dropout(nn.Module):
  """Drop-in for `nn.Dropout` using the hashed mask; rng collection "dropout".

  Attributes:
    rate: probability of zeroing an element.
    axis_name: fold this mapped axis' index into the key (pmap/shard_map only).
    mask: "hash" (fast) or "threefry" (reference), see `apply_dropout`.
  """
  rate: float
  axis_name: Optional[str] = None
  mask: str = "hash"

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, deterministic: bool) -> jnp.ndarray:
    if deterministic or self.rate <= 0.0:
      return x
    rng = self.make_rng("dropout")
    if self.axis_name is not None:
      rng = jax.random.fold_in(rng, lax.axis_index(self.axis_name))
    return apply_dropout(x, self.rate, rng, self.mask)
