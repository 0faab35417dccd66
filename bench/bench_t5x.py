"""Training-step speed of real T5X on the bench model (bench_engine's T5X half).

Runs T5X's own trainer, `python -m t5x.train`, in a subprocess on a gin
config written here: T5X's `t5x/configs/runs/pretrain.gin` defaults and
`t5x.examples.t5.network.Transformer` at the size of bench_engine's SPEC
(d 256, 3+3 layers, 4 heads x 64, mlp 1024 relu, vocab 8192, logits through
the shared embedding as in ptjf's gin/t5x/models/nmt.gin), batch 64, lengths
64/64 without packing (as the engine's batches), T5X's Adafactor with its
default settings, dropout 0.1, label smoothing 0.1, activations in `dtype`.
The data is a real SeqIO mixture (`ptjf.tasks.mixtures.rate_mixture`, equal
rates) of the translation tasks of bench_engine's corpus.

Steps/s is T5X's own `timing/steps_per_second` summary from the model dir's
train/ events. T5X compiles the step before the loop and times each stats
period of `period` steps between blocking points, so no compile is included;
the first period is dropped as warm-up and the others are combined as
total steps / total time.

    PYTHONPATH=<t5x>:<airio>:<jestimator> python bench/bench_t5x.py bfloat16
"""
import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Mapping

_HERE = pathlib.Path(__file__).resolve().parent

_GIN = """\
from __gin__ import dynamic_registration

import __main__ as train_script
import seqio
from ptjf.tasks import mixtures
from t5x import adafactor
from t5x import models
from t5x import utils
from t5x.examples.t5 import network

include 't5x/configs/runs/pretrain.gin'

MODEL_DIR = '{model_dir}'
TRAIN_STEPS = {steps}
BATCH_SIZE = {batch_size}
TASK_FEATURE_LENGTHS = {{'inputs': {inputs_length}, 'targets': {targets_length}}}
USE_CACHED_TASKS = False
RANDOM_SEED = 0

MIXTURE_OR_TASK_NAME = @mixtures.rate_mixture()
mixtures.rate_mixture:
  tasks = {tasks}
  rates = {rates}
  corpus_dir = '{corpus_dir}'

train_script.train:
  train_eval_dataset_cfg = None
  eval_period = {period}
  stats_period = {period}
train/utils.DatasetConfig.pack = False
utils.SaveCheckpointConfig.period = {steps}

VOCABULARY = @seqio.SentencePieceVocabulary()
seqio.SentencePieceVocabulary:
  sentencepiece_model_file = '{vocab_path}'
  extra_ids = 100

adafactor.Adafactor.logical_factor_rules = \\
    @adafactor.standard_logical_factor_rules()

MODEL = @models.EncoderDecoderModel()
models.EncoderDecoderModel:
  module = @network.Transformer()
  input_vocabulary = %VOCABULARY
  output_vocabulary = %VOCABULARY
  optimizer_def = @adafactor.Adafactor()
  label_smoothing = {label_smoothing}

network.Transformer.config = @network.T5Config()
network.T5Config:
  vocab_size = {vocab_size}
  dtype = '{dtype}'
  emb_dim = 256
  num_heads = 4
  head_dim = 64
  mlp_dim = 1024
  num_encoder_layers = 3
  num_decoder_layers = 3
  mlp_activations = ('relu',)
  dropout_rate = {dropout_rate}
  logits_via_embedding = True
"""


def t5x_root() -> pathlib.Path:
  """The directory holding the `t5x` package (for gin includes)."""
  spec = importlib.util.find_spec("t5x")
  if spec is None or spec.origin is None:
    raise ImportError("t5x is not importable: put its source on PYTHONPATH")
  return pathlib.Path(spec.origin).resolve().parent.parent


def gin_config(dtype: str, spec: dict, corpus_dir: pathlib.Path,
               model_dir: pathlib.Path, steps: int, period: int) -> str:
  """The T5X gin text of one bench run."""
  from ptjf.tasks import layout
  corpus = layout.CorpusLayout(corpus_dir)
  tasks = [layout.translate_task_name(lang) for lang in corpus.pair_langs()]
  fields = {k: spec[k] for k in ("batch_size", "inputs_length",
                                 "targets_length", "label_smoothing",
                                 "vocab_size", "dropout_rate")}
  return _GIN.format(model_dir=model_dir, steps=steps, period=period,
                     tasks=repr(tasks), rates=repr([1.0] * len(tasks)),
                     corpus_dir=corpus_dir, vocab_path=corpus.vocab_model,
                     dtype=dtype, **fields)


def run_t5x(gin_file: pathlib.Path, log_file: pathlib.Path,
            env: Mapping[str, str]) -> None:
  """Runs `python -m t5x.train` on `gin_file` in `env`; raises on failure."""
  command = [sys.executable, "-m", "t5x.train",
             f"--gin_search_paths={t5x_root()}", f"--gin_file={gin_file}",
             "--alsologtostderr"]
  env = {**env, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  with open(log_file, "w") as log:
    result = subprocess.run(command, env=env, stdout=log,
                            stderr=subprocess.STDOUT, check=False)
  if result.returncode != 0:
    tail = log_file.read_text()[-3000:]
    raise RuntimeError(f"t5x.train failed ({result.returncode}):\n{tail}")


def summaries(event_dir: pathlib.Path, tag: str) -> dict[int, float]:
  """{step: value} of a scalar summary in a TensorBoard event directory."""
  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  acc = event_accumulator.EventAccumulator(str(event_dir),
                                           size_guidance={"tensors": 0})
  acc.Reload()
  return {e.step: float(tensor_util.make_ndarray(e.tensor_proto))
          for e in acc.Tensors(tag)}


def steady_steps_per_s(rates: dict[int, float], period: int) -> float:
  """Steps / time over all stats periods but the first (warm-up)."""
  timed = [rates[step] for step in sorted(rates)[1:]]
  if not timed:
    raise ValueError(f"need >= 2 stats periods, got steps {sorted(rates)}")
  return len(timed) * period / sum(period / r for r in timed)


def steps_per_s(dtype: str, spec: dict, env: Mapping[str, str],
                steps: int = 32, period: int = 8) -> float:
  """Steady-state T5X training steps/s of the bench model in `dtype`, with
  t5x.train run in `env`."""
  sys.path.insert(0, str(_HERE))
  import bench_engine  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    tmp_dir = pathlib.Path(tmp)
    corpus_dir = bench_engine._corpus_dir(tmp_dir / "corpus")  # pylint: disable=protected-access
    model_dir = tmp_dir / "model"
    gin_file = tmp_dir / "bench_t5x.gin"
    gin_file.write_text(gin_config(dtype, spec, corpus_dir, model_dir, steps,
                                   period))
    run_t5x(gin_file, tmp_dir / "t5x.log", env)
    event_dir = model_dir / "train"
    rates = summaries(event_dir, "timing/steps_per_second")
    compile_s = summaries(event_dir, "timing/compilation_seconds")
    result = steady_steps_per_s(rates, period)
  print(f"{dtype:8s} t5x        steps/s {result:.3f}  per period "
        + " ".join(f"{rates[s]:.3f}" for s in sorted(rates))
        + f"  compile {sum(compile_s.values()):.1f}s", flush=True)
  return result


if __name__ == "__main__":
  sys.path.insert(0, str(_HERE))
  from bench_engine import SPEC  # pylint: disable=g-import-not-at-top
  for arg_dtype in (sys.argv[1:] or ["float32"]):
    steps_per_s(arg_dtype, SPEC, os.environ)
