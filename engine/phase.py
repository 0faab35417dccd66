"""The PTJF phase reset: keep the previous phase's parameters, start a fresh optimizer and step 0.

This one function is the whole difference between "fine-tune after pre-training" (reset) and
"continue" (keep optimizer state and step): the paper resets the optimizer state and the LR
schedule at the start of the joint fine-tuning phase.
"""
from typing import Any, NamedTuple

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


def continue_phase(loaded: TrainState, expected_params: Any, checkpoint: str) -> TrainState:
  """Keeps step, params and optimizer state of the checkpoint ("continue" = no reset)."""
  check_shapes(loaded.params, expected_params, checkpoint)
  return loaded
