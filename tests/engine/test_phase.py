"""The phase reset keeps parameters, zeroes the optimizer state and step; shape mismatches are named."""
import numpy as np
import optax
import pytest

from ptjf.engine import phase
from ptjf.errors import UserError


def test_reset_keeps_params_fresh_optimizer():
  params = {"dense": {"kernel": np.ones((2, 3), np.float32)}}
  tx = optax.adam(1e-2)
  state = tx.init(params)
  _, state = tx.update({"dense": {"kernel": np.ones((2, 3), np.float32)}}, state, params)
  new = phase.reset_for_new_phase(params, params, tx, "ckpt")
  assert new.step == 0
  np.testing.assert_array_equal(new.params["dense"]["kernel"], params["dense"]["kernel"])
  assert int(new.opt_state[0].count) == 0
  np.testing.assert_array_equal(new.opt_state[0].mu["dense"]["kernel"], 0)


def test_shape_mismatch_names_parameter():
  with pytest.raises(UserError, match=r"\['dense'\]\['kernel'\].*same model gin file"):
    phase.reset_for_new_phase({"dense": {"kernel": np.ones((2, 3))}},
                              {"dense": {"kernel": np.ones((2, 4))}}, optax.adam(1e-2), "ckpt")


def test_t5x_restore_check_refuses_a_parameter_the_checkpoint_lacks():
  model = {"target": {"decoder": {"layers_0": {"w": np.zeros((2, 3))},
                                  "layers_1": {"w": np.zeros((2, 3))}}},
           "state": {"step": np.zeros(())}}
  one_layer = {"target": {"decoder": {"layers_0": {"w": np.ones((2, 3))}}}}
  with pytest.raises(UserError, match="no parameter target/decoder/layers_1/w"):
    phase.check_t5x_params_restored(one_layer, model)
  narrow = {"target": {"decoder": {"layers_0": {"w": np.ones((2, 4))},
                                   "layers_1": {"w": np.ones((2, 3))}}}}
  with pytest.raises(UserError, match=r"layers_0/w has shape \(2, 4\)"):
    phase.check_t5x_params_restored(narrow, model)
  whole = {"target": model["target"]}   # optimizer state dropped: fine
  assert phase.check_t5x_params_restored(whole, model) is whole
