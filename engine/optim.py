"""Optimizers and learning-rate schedules of the local engine (gin-configurable, optax).

Every schedule is a function of the phase's own step (a new phase restarts at step 0), so the
PTJF phase reset gets a fresh warmup for free.

Example: `adam_warmup_cosine(learning_rate=1e-3, warmup_steps=10, total_steps=110)` gives
LR 1e-4 at step 1, 1e-3 at step 10, 5e-4 at step 60 and 0 at step 110.
"""
import re
from typing import Any, Sequence

import gin
import jax
import jax.numpy as jnp
import optax

from ptjf.errors import UserError


@gin.configurable
def warmup_cosine_schedule(learning_rate: float, warmup_steps: int,
                           total_steps: int) -> optax.Schedule:
  """Linear warmup 0 -> learning_rate over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=learning_rate, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=0.0)


@gin.configurable
def rsqrt_schedule(learning_rate: float, warmup_steps: int,
                   linear_warmup: bool = False) -> optax.Schedule:
  """lr * sqrt(K / step) after K=`warmup_steps` steps; before, constant (mC4 pre-training, T5X's
  "constant * rsqrt_decay") or, with `linear_warmup`, rising linearly from 0 (the fine-tune leg,
  paper Appendix B, T5X's "constant * linear_warmup * rsqrt_decay"; gin/local/
  finetune_params_only.gin sets it).

  Example: lr=0.01, K=100: 0.01 at step 50 (0.005 with linear_warmup), 0.005 at step 400.
  """
  k = float(max(warmup_steps, 1))

  def schedule(step):
    decay = jnp.sqrt(k / jnp.maximum(step, k))
    return learning_rate * (jnp.minimum(step / k, decay) if linear_warmup else decay)

  return schedule


@gin.configurable
def adam(schedule: optax.Schedule, b1: float = 0.9, b2: float = 0.98, eps: float = 1e-9,
         weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam (NMT experiments); AdamW when `weight_decay` > 0."""
  if weight_decay:
    return optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
  return optax.adam(schedule, b1=b1, b2=b2, eps=eps)


def scale_by_unfactored_rms(decay_rate: float = 0.8,
                            epsilon: float = 1e-30) -> optax.GradientTransformation:
  """optax's `scale_by_factored_rms(factored=False)`, with `rsqrt` where optax has `** -0.5`.

  Same state (`FactoredState`, so checkpoints are interchangeable) and the same update to within
  a few ulps: v = d * v + (1 - d) * (g^2 + epsilon) with d = 1 - (count + 1)^-decay_rate, update
  g / sqrt(v). XLA:CPU keeps `** -0.5` as a per-element power (an exp and a log), ~2% of a bench
  step's op time; `rsqrt` is one instruction.
  """
  unfactored = optax.scale_by_factored_rms(factored=False, decay_rate=decay_rate, epsilon=epsilon)

  def update_fn(grads, state, params=None):
    del params
    decay = 1.0 - jnp.asarray(state.count + 1, jnp.float32) ** -decay_rate
    v = jax.tree.map(
        lambda g, old: (decay * old + (1.0 - decay) * (g * g + epsilon)).astype(old.dtype),
        grads, state.v)
    updates = jax.tree.map(lambda g, new: g * jax.lax.rsqrt(new), grads, v)
    return updates, state._replace(count=optax.safe_increment(state.count), v=v)

  return optax.GradientTransformation(unfactored.init, update_fn)


@gin.configurable
def adafactor(schedule: optax.Schedule, momentum: float = 0.9,
              clipping_threshold: float = 1.0) -> optax.GradientTransformation:
  """Adafactor with momentum and an unfactored second moment (mC4 experiments).

  optax's `adafactor(factored=False, multiply_by_parameter_scale=False)`, same state tree, with
  its first transform swapped for `scale_by_unfactored_rms`.
  """
  return optax.chain(scale_by_unfactored_rms(),
                     optax.clip_by_block_rms(clipping_threshold),
                     optax.scale_by_learning_rate(schedule, flip_sign=False),
                     optax.ema(momentum, debias=False, accumulator_dtype=jnp.float32),
                     optax.scale(-1))


def frozen_labels(params: Any, patterns: Sequence[str]) -> Any:
  """"frozen" for parameters whose path matches a regex of `patterns`, else "train".

  >>> frozen_labels({"embedding": 1, "decoder": {"mlp": 2}}, ["embedding"])
  {'decoder': {'mlp': 'train'}, 'embedding': 'frozen'}
  """
  def label(path, _):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    return "frozen" if any(re.search(p, name) for p in patterns) else "train"
  return jax.tree_util.tree_map_with_path(label, params)


def freeze(tx: optax.GradientTransformation, params: Any,
           patterns: Sequence[str]) -> optax.GradientTransformation:
  """`tx` for all parameters but those matching `patterns`, which get zero updates."""
  if not patterns:
    return tx
  labels = frozen_labels(params, patterns)
  if "frozen" not in jax.tree.leaves(labels):
    raise UserError(f"freeze patterns {list(patterns)} match no parameter: use regexes of "
                    "parameter paths such as 'embedding' or 'encoder/layers_0'")
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
