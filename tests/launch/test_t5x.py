"""The T5X command of a phase (ptjf.launch.t5x)."""
import pytest

from ptjf import logdir
from ptjf.errors import UserError
from ptjf.launch import t5x


def _finetune(**overrides) -> t5x.T5xPhase:
  fields = dict(gin_files=("gin/ptjf_nmt3_finetune.gin",),
                model_dir="gs://b/exp/run/finetune",
                macros={"HIGH_RATE": 0.7, "LOW_RATE": 0.3,
                        "TASK_FEATURE_LENGTHS": {"inputs": 32, "targets": 32}},
                start="params_only",
                init_checkpoint="gs://b/exp/pre/pretrain/checkpoint_400000")
  fields.update(overrides)
  return t5x.T5xPhase(**fields)


def test_params_only_phase_command_is_exact():
  command = t5x.train_command(_finetune(), python="python3",
                              gin_search_path="/opt/ptjf")
  assert command == [
      "python3", "-m", "t5x.train", "--gin_search_paths=/opt/ptjf",
      "--gin_file=gin/ptjf_nmt3_finetune.gin",
      "--gin_file=gin/t5x/start/params_only.gin",
      '--gin.MODEL_DIR="gs://b/exp/run/finetune"',
      "--gin.HIGH_RATE=0.7", "--gin.LOW_RATE=0.3",
      "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 32}",
      '--gin.INITIAL_CHECKPOINT_PATH='
      '"gs://b/exp/pre/pretrain/checkpoint_400000"']


def test_start_file_comes_after_the_phase_files_so_it_wins():
  command = t5x.train_command(
      _finetune(start="continue", bindings=("network.T5Config.emb_dim = 32",)),
      gin_search_path="/opt/ptjf")
  files = [a for a in command if a.startswith("--gin_file=")]
  assert files[-1] == "--gin_file=gin/t5x/start/continue.gin"
  assert "--gin_bindings=network.T5Config.emb_dim = 32" in command


def test_local_command_searches_this_install_and_every_start_file_exists():
  command = t5x.train_command(
      t5x.T5xPhase(gin_files=("gin/ptjf_nmt3_scalarization.gin",),
                   model_dir="/tmp/m"))
  root = t5x.ptjf_root()
  assert command[3] == f"--gin_search_paths={root}"
  assert "--gin.INITIAL_CHECKPOINT_PATH" not in " ".join(command)
  for mode in logdir.START_MODES:
    assert (root / t5x.start_gin_file(mode)).is_file()


@pytest.fixture()
def no_t5x(monkeypatch):
  """As in CI: T5X is not installed, its gin files' macros come from T5X_MACROS_FILE."""
  monkeypatch.setattr(t5x, "t5x_install_root", lambda: None)


@pytest.mark.parametrize("field, value", [
    ("macros", {"TRAIN_STESP": 5}), ("bindings", ("WARMUP_STPES = 5",))])
def test_a_macro_typo_is_refused_naming_the_closest(no_t5x, field, value):
  phase = _finetune(**{field: value})
  with pytest.raises(UserError, match=r"unknown gin macro (TRAIN_STESP|WARMUP_STPES) in "
                     r".*: did you mean (TRAIN_STEPS|WARMUP_STEPS)\?$"):
    t5x.train_command(phase, gin_search_path="/opt/ptjf")


def test_macros_only_t5x_s_own_gin_files_define_are_accepted(no_t5x):
  # Defined by t5x/configs/runs/pretrain.gin alone, which is not installed here.
  t5x.check_macros(_finetune(macros={"USE_HARDWARE_RNG": True, "TRAIN_STEPS_RELATIVE": 5}))
  with pytest.raises(UserError, match="did you mean USE_HARDWARE_RNG"):
    t5x.check_macros(_finetune(macros={"USE_HARDWARE_RGN": True}))


@pytest.mark.parametrize("overrides, message", [
    (dict(start="resume"), "unknown start mode"),
    (dict(init_checkpoint=None), "needs an initial checkpoint"),
    (dict(start="scratch"), "takes no initial checkpoint"),
    (dict(macros={"lower_case": 1}), "not an ALL_CAPS gin macro"),
    (dict(macros={"MODEL_DIR": "/x"}), "set from the phase itself"),
    (dict(gin_files=()), "no gin file"),
    (dict(gin_files=("gin/nope.gin",)), "no gin file gin/nope.gin"),
    (dict(macros={"RATES": {1, 2}}), "cannot write"),
])
def test_bad_phase_is_a_one_line_user_error(overrides, message):
  with pytest.raises(UserError, match=message):
    t5x.train_command(_finetune(**overrides))
