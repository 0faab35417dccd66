"""The PTJF phase reset: keep the previous phase's parameters, start a fresh optimizer and step 0.

This one function is the whole difference between "fine-tune after pre-training" (reset) and
"continue" (keep optimizer state and step): the paper resets the optimizer state and the LR
schedule at the start of the joint fine-tuning phase. On real T5X the reset is a restore config
(gin/t5x/start/params_only.gin) and `check_t5x_params_restored` its check.
"""
from typing import Any, Mapping, NamedTuple

import jax
import numpy as np
import optax

from ptjf.errors import UserError


class TrainState(NamedTuple):
  """What a phase trains: step (the phase's own), parameters and optimizer state."""
  step: int
  params: Any
  opt_state: Any


def check_shapes(loaded: Any, expected: Any, checkpoint: str) -> None:
  """Raises UserError naming the first parameter whose shape differs between checkpoint and model."""
  got = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(loaded)}
  want = {jax.tree_util.keystr(k): np.shape(v)
          for k, v in jax.tree_util.tree_leaves_with_path(expected)}
  for name in sorted(set(got) | set(want)):
    if got.get(name) != want.get(name):
      raise UserError(
          f"checkpoint {checkpoint} parameter {name} has shape {got.get(name)} but the model wants "
          f"{want.get(name)}: use the same model gin file (and vocabulary) as the phase that wrote it")


def reset_for_new_phase(loaded_params: Any, expected_params: Any, optimizer: optax.GradientTransformation,
                        checkpoint: str) -> TrainState:
  """Params from the checkpoint, fresh optimizer state, step 0 (the PTJF reset)."""
  check_shapes(loaded_params, expected_params, checkpoint)
  return TrainState(step=0, params=loaded_params, opt_state=optimizer.init(loaded_params))


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  """A nested mapping as {"a/b/c": leaf}."""
  if not isinstance(tree, Mapping):
    return {prefix: tree}
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, f"{prefix}/{key}" if prefix else str(key)))
  return out


def check_t5x_params_restored(state_dict: Any, target_state_dict: Any, *,
                              is_resuming: bool = False) -> Any:
  """T5X restore transformation: every model parameter (`target/...`) is in the checkpoint.

  T5X's params-only restore drops the optimizer state with its assignment map and sets
  `fallback_to_scratch`, which would also silently re-initialise any parameter the checkpoint
  lacks (a model gin that does not match the phase that wrote it). Run after the assignment map,
  on the checkpoint's tree and the model's; returns the checkpoint's unchanged.

  >>> check_t5x_params_restored({"target": {"w": 1}}, {"target": {"w": 0}, "state": {"m": 0}})
  {'target': {'w': 1}}
  """
  del is_resuming  # a resumed phase restores its own checkpoints: same check
  got, want = _flat(state_dict), _flat(target_state_dict)
  for name, leaf in sorted(want.items()):
    if not name.startswith("target/"):
      continue
    if name not in got:
      raise UserError(f"the checkpoint has no parameter {name}, which the model wants: give the "
                      "phase the model gin (and NUM_LAYERS, sizes) of the phase that wrote the "
                      "checkpoint")
    shapes = [tuple(getattr(x, "shape", ())) for x in (got[name], leaf)]
    if hasattr(got[name], "shape") and hasattr(leaf, "shape") and shapes[0] != shapes[1]:
      raise UserError(f"the checkpoint's parameter {name} has shape {shapes[0]} but the model "
                      f"wants {shapes[1]}: give the phase the model gin (and vocabulary) of the "
                      "phase that wrote the checkpoint")
  return state_dict
