"""The engine's hand-written gradient rules: products that accumulate in float32, and the dense
layer built on them (a LayerNorm's scale and bias folded into its kernel).

XLA's own differentiation of the same einsums is correct but slower on CPU (transposing copies
of large cotangents, bfloat16 sums); what each rule saves, measured, is in docs/bench.md. The
architecture that uses them is `engine.model`.
"""
import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


class Normalized(NamedTuple):
  """A LayerNorm's output with its scale and bias not yet applied: `x * scale + bias`.

  `Dense` folds scale and bias into its own kernel and bias, so no [B, T, d] activation is
  scaled, shifted or reduced for their gradients; a float32 `Dense` keeps the normalization
  itself as `centered * rstd` (`_row_scaled_product`). Why and how much: docs/bench.md.
  """
  centered: jnp.ndarray  # x - mean, float32
  rstd: jnp.ndarray      # 1 / sqrt(var + eps), [..., 1] float32
  scale: jnp.ndarray     # [d] float32
  bias: jnp.ndarray      # [d] float32

  @property
  def x(self) -> jnp.ndarray:
    """(x - mean) / std, float32."""
    return self.centered * self.rstd


def product(spec: str, a: jnp.ndarray, b: jnp.ndarray,
            result_rounded: bool = False) -> jnp.ndarray:
  """`jnp.einsum(spec, a, b)` as float32, `b` being the weight (its gradient is a sum over batch).

  The gradient is written out (`_accumulated_product`): operands of the operands' dtype,
  float32 accumulation (as a TPU's matrix unit), and the weight gradient in the orientation
  that transposes the smaller operand. Bfloat16 operands take that path only where the
  hardware multiplies bfloat16 (`bfloat16_arithmetic`); elsewhere XLA differentiates, and
  `result_rounded` (the caller rounds to bfloat16 anyway) allows the faster product. Every
  index of an operand must appear in the other operand or the output (true of matmuls).
  Measurements: docs/bench.md.

  >>> product("ij,jk->ik", jnp.ones((2, 3), jnp.bfloat16), jnp.ones((3, 1), jnp.bfloat16))
  Array([[3.],
         [3.]], dtype=float32)
  """
  if a.dtype == b.dtype == jnp.bfloat16 and not bfloat16_arithmetic():
    if result_rounded:
      return jnp.einsum(spec, a, b).astype(jnp.float32)
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)
  return _accumulated_product(spec, a, b)


@functools.cache
def bfloat16_arithmetic() -> bool:
  """Whether the default backend multiplies bfloat16 natively: accelerators do; a CPU does
  with AVX512-BF16 or AMX (read from /proc/cpuinfo; elsewhere assumed not)."""
  if jax.default_backend() != "cpu":
    return True
  try:
    with open("/proc/cpuinfo") as f:
      flags = set(f.read().split())
  except OSError:
    return False
  return bool(flags & {"avx512_bf16", "amx_bf16"})


def _operand_indices(spec: str) -> tuple[str, str, str]:
  """"ab,bc->ac" -> ("ab", "bc", "ac")."""
  operands, out = spec.split("->")
  sa, sb = operands.split(",")
  return sa, sb, out


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _accumulated_product(spec: str, a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _accumulated_product_fwd(spec, a, b):
  return _accumulated_product(spec, a, b), (a, b)


def _accumulated_product_bwd(spec, operands, g):
  a, b = operands
  sa, sb, out = _operand_indices(spec)
  g = g.astype(a.dtype)
  da = jnp.einsum(f"{out},{sb}->{sa}", g, b, preferred_element_type=jnp.float32)
  return da.astype(a.dtype), _weight_gradient(spec, a, g).astype(b.dtype)


_accumulated_product.defvjp(_accumulated_product_fwd, _accumulated_product_bwd)


def _weight_gradient(spec: str, a: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
  """The float32 gradient of `einsum(spec, a, b)`'s weight `b` for the cotangent `g`."""
  sa, sb, out = _operand_indices(spec)
  lead = sa if a.size <= g.size else out   # the smaller operand's indices lead: "vd" -> "dv"
  indices = "".join(sorted(sb, key=lambda i: i not in lead))
  db = jnp.einsum(f"{sa},{out}->{indices}", a, g, preferred_element_type=jnp.float32)
  if indices != sb:   # the barrier keeps XLA from folding the transpose back into the product
    db = jnp.transpose(jax.lax.optimization_barrier(db), [indices.index(i) for i in sb])
  return db


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _row_scaled_product(spec: str, a: jnp.ndarray, rows: jnp.ndarray,
                        b: jnp.ndarray) -> jnp.ndarray:
  """`einsum(spec, a * rows, b)` in float32, `rows` [..., 1] scaling each row of `a`.

  A float32 `Dense` on a `Normalized` input (`a` centered, `rows` 1/std): the weight gradient
  is `a`'s product with the row-scaled cotangent, so XLA never recomputes `a * rows` inside a
  transposing copy (docs/bench.md).
  """
  return jnp.einsum(spec, a * rows, b, preferred_element_type=jnp.float32)


def _row_scaled_product_fwd(spec, a, rows, b):
  return _row_scaled_product(spec, a, rows, b), (a, rows, b)


def _row_scaled_product_bwd(spec, operands, g):
  a, rows, b = operands
  sa, sb, out = _operand_indices(spec)
  d_scaled = jnp.einsum(f"{out},{sb}->{sa}", g, b, preferred_element_type=jnp.float32)
  g_rows = g * rows.reshape(rows.shape[:-1] + (1,) * (g.ndim - rows.ndim + 1))
  return (d_scaled * rows, jnp.sum(d_scaled * a, -1, keepdims=True),
          _weight_gradient(spec, a, g_rows))


_row_scaled_product.defvjp(_row_scaled_product_fwd, _row_scaled_product_bwd)


class Dense(nn.Module):
  """`nn.DenseGeneral` (same parameters and initialization) whose bias is added in float32,
  so its gradient is summed in float32 (in float32 it computes what `nn.DenseGeneral` does).

  With `unstack`, the output is a list with one array per index of the first feature axis,
  each from its own dot with that slice of the kernel: a fused q/k/v projection then needs
  no [3, ...] gradient assembled from pieces. Parameters are the same either way.

  Given a `Normalized` input (a LayerNorm's, reduced over the last axis, which must be
  this layer's only input axis) it computes `Dense(x * scale + bias)` as
  `x @ (scale * kernel) + (bias @ kernel + dense bias)`.
  """
  features: int | tuple[int, ...]
  axis: int | tuple[int, ...] = -1
  dtype: Any = jnp.float32
  unstack: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray | Normalized) -> jnp.ndarray | list[jnp.ndarray]:
    norm = x if isinstance(x, Normalized) else None
    x = x if norm is None else norm.centered
    features = (self.features if isinstance(self.features, tuple)
                else (self.features,))
    axis = tuple(a % x.ndim for a in (
        self.axis if isinstance(self.axis, tuple) else (self.axis,)))
    if norm is not None and axis != (x.ndim - 1,):
      raise ValueError(f"a Normalized input folds over its last axis only, not {self.axis}")
    in_shape = tuple(x.shape[a] for a in axis)

    def kernel_init(rng, shape, dtype):  # DenseGeneral's: on the 2-D view
      flat = (math.prod(in_shape), math.prod(features))
      return nn.initializers.xavier_uniform()(rng, flat, dtype).reshape(shape)

    kernel = self.param("kernel", kernel_init, in_shape + features, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
    if norm is not None:
      bias = bias + jnp.tensordot(norm.bias, kernel, axes=1)
      kernel = kernel * norm.scale.reshape(in_shape + (1,) * len(features))
    rows_scaled = norm is not None and jnp.dtype(self.dtype) == jnp.float32
    if norm is not None and not rows_scaled:
      x = norm.x
    x = x.astype(self.dtype)

    letters = "abcdefghijklmnopqrstuvwxyz"
    x_spec = "".join(letters[i] for i in range(x.ndim))
    in_spec = "".join(x_spec[a] for a in axis)
    batch_spec = "".join(c for c in x_spec if c not in in_spec)

    def dense(w, b):
      out_spec = letters[x.ndim:x.ndim + w.ndim - len(axis)]
      spec = f"{x_spec},{in_spec}{out_spec}->{batch_spec}{out_spec}"
      if rows_scaled:
        y = _row_scaled_product(spec, x, norm.rstd, w)
      else:
        y = product(spec, x, w.astype(self.dtype), result_rounded=True)
      return (y + b).astype(self.dtype)

    if self.unstack:
      at = (slice(None),) * len(in_shape)
      return [dense(kernel[at + (i,)], bias[i]) for i in range(features[0])]
    return dense(kernel, bias)
