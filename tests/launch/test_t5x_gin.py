"""The gin files for real T5X (gin/ptjf_*.gin, gin/t5x/**).

Always: every file parses with gin's own parser, includes resolve, every
macro used is defined, each entry point leaves exactly the documented macros
required, bindings on ptjf functions name real parameters, and the paper's
constants are what the files say. T5X's own included files are summarised
below (CI cannot import t5x); the `t5x` tests check that summary against the
real files and run two phases of NMT and mC4 on CPU with real T5X.
"""
import argparse
import dataclasses
import importlib
import inspect
import json
import os
import pathlib
import shlex
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from gin import config_parser

from ptjf.analysis import events
from ptjf.analysis import numbers
from ptjf.analysis import report
from ptjf.engine import losses
from ptjf.launch import execute
from ptjf.launch import plan as plan_lib
from ptjf.launch import t5x
from ptjf.launch import tpu

ROOT = t5x.ptjf_root()
REQUIRED = "gin.REQUIRED"

# Macros T5X's included files define: name -> required (True) or set (False).
_T5X_PRETRAIN = {"MIXTURE_OR_TASK_NAME": True, "TASK_FEATURE_LENGTHS": True,
                 "TRAIN_STEPS": True, "MODEL_DIR": True, "BATCH_SIZE": False,
                 "USE_CACHED_TASKS": False, "MIXTURE_OR_TASK_MODULE": False,
                 "SHUFFLE_TRAIN_EXAMPLES": False, "USE_HARDWARE_RNG": False,
                 "RANDOM_SEED": False, "TRAIN_STEPS_RELATIVE": False}
_T5X_MT5 = {"Z_LOSS": False, "LABEL_SMOOTHING": False,
            "LOSS_NORMALIZING_FACTOR": False, "DROPOUT_RATE": True,
            "VOCABULARY": False, "OPTIMIZER": False, "MODEL": False}
T5X_FILES = {"t5x/configs/runs/pretrain.gin": _T5X_PRETRAIN,
             "t5x/examples/scalable_t5/mt5/xl.gin": _T5X_MT5,
             "t5x/examples/scalable_t5/mt5/xxl.gin": _T5X_MT5}
# Bindings of those files that ptjf overrides, so must bind after including.
_LR = "utils.create_learning_rate_scheduler"
T5X_BINDINGS = {
    "t5x/configs/runs/pretrain.gin": {
        ("trainer.Trainer", "learning_rate_fn"), (_LR, "factors"),
        (_LR, "base_learning_rate"), (_LR, "warmup_steps"),
        ("utils.SaveCheckpointConfig", "period"),
        ("utils.SaveCheckpointConfig", "keep"),
        ("utils.RestoreCheckpointConfig", "path")},
    "t5x/examples/scalable_t5/mt5/xl.gin": {
        ("seqio.SentencePieceVocabulary", "sentencepiece_model_file"),
        ("network.T5Config", "vocab_size"), ("network.T5Config", "dtype")}}
T5X_BINDINGS["t5x/examples/scalable_t5/mt5/xxl.gin"] = T5X_BINDINGS[
    "t5x/examples/scalable_t5/mt5/xl.gin"]
T5X_VALUE = "<t5x>"

ENTRY_REQUIRED = {
    "ptjf_nmt3_scalarization.gin": {"MODEL_DIR", "VOCAB_PATH"},
    "ptjf_nmt3_pretrain.gin": {"MODEL_DIR", "VOCAB_PATH"},
    "ptjf_nmt3_finetune.gin": {"MODEL_DIR", "VOCAB_PATH",
                               "INITIAL_CHECKPOINT_PATH"},
    "ptjf_nmt3_restart.gin": {"MODEL_DIR", "VOCAB_PATH",
                              "INITIAL_CHECKPOINT_PATH"},
    "ptjf_mc4_xxl_pretrain.gin": {"MODEL_DIR"},
    "ptjf_mc4_xxl_temperature.gin": {"MODEL_DIR"},
    "ptjf_mc4_xxl.gin": {"MODEL_DIR", "INITIAL_CHECKPOINT_PATH"},
    "ptjf_mc4_xxl_restart.gin": {"MODEL_DIR", "INITIAL_CHECKPOINT_PATH"},
}


@dataclasses.dataclass(frozen=True)
class Ref:
  """A `%MACRO` or `@configurable` inside a parsed value."""
  kind: str
  name: str


class _Delegate(config_parser.ParserDelegate):

  def configurable_reference(self, scoped_name, evaluate):
    return Ref("@", scoped_name)

  def macro(self, name):
    return Ref("%", name)


@dataclasses.dataclass
class Config:
  """What a gin file and its includes amount to, in order."""
  macros: dict[str, Any] = dataclasses.field(default_factory=dict)
  bindings: dict[tuple[str, str], Any] = dataclasses.field(default_factory=dict)
  used: set[str] = dataclasses.field(default_factory=set)
  ptjf_bound: set[tuple[str, str]] = dataclasses.field(default_factory=set)
  imports: dict[str, str] = dataclasses.field(default_factory=dict)
  files: list[str] = dataclasses.field(default_factory=list)


def _refs(value) -> list[Ref]:
  if isinstance(value, Ref):
    return [value]
  if isinstance(value, dict):
    value = list(value.keys()) + list(value.values())
  if isinstance(value, (list, tuple)):
    return [r for v in value for r in _refs(v)]
  return []


def load(name: str, config: Config | None = None) -> Config:
  """Parses `name` (relative to the ptjf root) and its includes, in order."""
  config = config or Config()
  if name in T5X_FILES:
    config.files.append(name)
    for macro, required in T5X_FILES[name].items():
      config.macros[macro] = Ref("%", REQUIRED) if required else T5X_VALUE
    for binding in T5X_BINDINGS[name]:
      config.bindings[binding] = T5X_VALUE
    return config
  path = ROOT / name
  assert path.is_file(), f"include {name} does not resolve under {ROOT}"
  config.files.append(name)
  return parse(path.read_text(), config)


def parse(text: str, config: Config) -> Config:
  """Adds the statements of one gin text to `config` (includes via load)."""
  for statement in config_parser.ConfigParser(text, _Delegate()):
    if isinstance(statement, config_parser.IncludeStatement):
      load(statement.filename, config)
    elif isinstance(statement, config_parser.ImportStatement):
      config.imports[statement.bound_name()] = statement.module
    elif isinstance(statement, config_parser.BindingStatement):
      config.used |= {r.name for r in _refs(statement.value) if r.kind == "%"}
      if statement.arg_name:
        key = (statement.scope + "/" if statement.scope else "") + (
            statement.selector)
        config.bindings[(key, statement.arg_name)] = statement.value
        config.ptjf_bound.add((key, statement.arg_name))
      else:
        config.macros[statement.selector] = statement.value
  return config


def resolve(config: Config, value):
  """A macro chain followed to its end: %A -> %B -> 3 gives 3."""
  while isinstance(value, Ref) and value.kind == "%" and value.name != REQUIRED:
    value = config.macros[value.name]
  return value


def required(config: Config) -> set[str]:
  return {name for name, value in config.macros.items()
          if resolve(config, value) == Ref("%", REQUIRED)}


def _ptjf_gin_files() -> list[str]:
  files = sorted(ROOT.glob("gin/ptjf_*.gin")) + sorted(
      ROOT.glob("gin/t5x/**/*.gin"))
  return [str(f.relative_to(ROOT)) for f in files]


@pytest.mark.parametrize("name", _ptjf_gin_files())
def test_every_file_parses_with_its_includes(name):
  assert load(name).files[0] == name


@pytest.mark.parametrize("name", sorted(ENTRY_REQUIRED))
def test_every_macro_an_entry_point_uses_is_defined(name):
  config = load(f"gin/{name}")
  undefined = config.used - set(config.macros) - {REQUIRED}
  assert not undefined, f"{name} uses undefined macros {undefined}"


def test_every_entry_point_is_listed_here():
  assert {f.name for f in ROOT.glob("gin/ptjf_*.gin")} == set(ENTRY_REQUIRED)


@pytest.mark.parametrize("name", sorted(ENTRY_REQUIRED))
def test_entry_point_requires_exactly_the_documented_macros(name):
  assert required(load(f"gin/{name}")) == ENTRY_REQUIRED[name]


@pytest.mark.parametrize("name", sorted(ENTRY_REQUIRED))
def test_ptjf_overrides_every_t5x_default_it_means_to(name):
  config = load(f"gin/{name}")
  left = [b for b in config.ptjf_bound if config.bindings[b] == T5X_VALUE]
  assert not left, f"T5X's defaults win over ptjf's for {left}: include " \
      "T5X's file before binding"


def test_bindings_on_ptjf_functions_name_real_parameters():
  checked = 0
  for name in _ptjf_gin_files():
    config = load(name)
    for (selector, arg), _ in config.bindings.items():
      alias, _, function = selector.split("/")[-1].rpartition(".")
      module = config.imports.get(alias, "")
      if not module.startswith("ptjf."):
        continue
      fn = getattr(importlib.import_module(module), function)
      assert arg in inspect.signature(fn).parameters, (name, selector, arg)
      checked += 1
  assert checked


def _value(config: Config, key: str, arg: str | None = None):
  if arg is None:
    return resolve(config, config.macros[key])
  return resolve(config, config.bindings[(key, arg)])


def test_nmt_files_hold_the_paper_setup():
  pre = load("gin/ptjf_nmt3_pretrain.gin")
  assert [_value(pre, "network.T5Config", a) for a in
          ("emb_dim", "mlp_dim", "num_heads", "head_dim",
           "num_encoder_layers", "dropout_rate")] == [512, 2048, 8, 64, 3, 0.1]
  assert _value(pre, "models.EncoderDecoderModel", "label_smoothing") == 0.1
  assert (_value(pre, "BATCH_SIZE"), _value(pre, "WARMUP_STEPS"),
          _value(pre, "TRAIN_STEPS")) == (1024, 40000, 400000)
  assert _value(pre, "optax.warmup_cosine_decay_schedule", "end_value") == 0.0
  assert _value(pre, "models.EncoderDecoderModel.predict_batch_with_aux",
                "num_decodes") == 4   # BLEU with beam 4
  assert pre.macros["MIXTURE_OR_TASK_NAME"] == Ref("@", "mixtures.local_task")
  ft = load("gin/ptjf_nmt3_finetune.gin")
  assert ft.macros["MIXTURE_OR_TASK_NAME"] == Ref("@", "mixtures.rate_mixture")
  assert (_value(ft, "WARMUP_STEPS"), _value(ft, "TRAIN_STEPS")) == (10000,
                                                                     50000)
  assert _value(ft, "utils.RestoreCheckpointConfig", "assignment_map") == (
      ("state/param_states.*", None), ("state/step", None))


def test_mc4_files_hold_the_paper_setup():
  ft = load("gin/ptjf_mc4_xxl.gin")
  assert "t5x/examples/scalable_t5/mt5/xxl.gin" in ft.files
  assert (_value(ft, "adafactor.Adafactor", "beta1"),
          _value(ft, "adafactor.Adafactor", "factored")) == (0.9, False)
  assert _value(ft, "TAU") == 3.33
  assert _value(ft, "LOSS_NORMALIZING_FACTOR") == "NUM_REAL_TARGET_TOKENS"
  assert len(_value(ft, "TASKS")) == 5
  assert _value(ft, "LEARNING_RATE_FACTORS") == (
      "constant * linear_warmup * rsqrt_decay")
  assert _value(ft, "utils.RestoreCheckpointConfig", "fallback_to_scratch")
  pre = load("gin/ptjf_mc4_xxl_pretrain.gin")
  assert _value(pre, "LEARNING_RATE_FACTORS") == "constant * rsqrt_decay"
  # 1.0 / sqrt(max(step, 10k)): 0.01 for the first 10k steps.
  assert _value(pre, "LEARNING_RATE") / np.sqrt(_value(pre, "WARMUP_STEPS")) \
      == pytest.approx(0.01)
  assert _value(pre, "PRETRAIN_TASK") == "mc4_span_corruption_en"


def test_t5x_summary_agrees_with_the_recorded_t5x_macros():
  recorded = t5x.recorded_t5x_macros()
  for name, macros in T5X_FILES.items():
    assert set(macros) == recorded[name][0], name


# ---------------------------------------------------------------- real T5X --

def _t5x_root() -> pathlib.Path:
  t5x_pkg = pytest.importorskip("t5x")
  return pathlib.Path(t5x_pkg.__file__).resolve().parent.parent


@pytest.mark.t5x
def test_recorded_t5x_macros_are_the_real_t5x_s():
  recorded = json.loads((ROOT / t5x.T5X_MACROS_FILE).read_text())["files"]
  assert t5x.summarize_t5x_macros(_t5x_root()) == recorded


@pytest.mark.t5x
@pytest.mark.parametrize("name", sorted(T5X_FILES))
def test_t5x_summary_matches_the_real_t5x_file(name):
  text = (_t5x_root() / name).read_text()
  statements = list(config_parser.ConfigParser(text, _Delegate()))
  defined = {s.selector: s.value == Ref("%", REQUIRED) for s in statements
             if isinstance(s, config_parser.BindingStatement)
             and not s.arg_name}
  includes = [s.filename for s in statements
              if isinstance(s, config_parser.IncludeStatement)]
  for include in includes:  # mT5 sizes include base.gin, which defines more
    sub = config_parser.ConfigParser((_t5x_root() / include).read_text(),
                                     _Delegate())
    defined = {**{s.selector: s.value == Ref("%", REQUIRED) for s in sub
                  if isinstance(s, config_parser.BindingStatement)
                  and not s.arg_name}, **defined}
  assert defined == T5X_FILES[name]
  bound = {(s.selector, s.arg_name) for s in statements
           if isinstance(s, config_parser.BindingStatement) and s.arg_name}
  if includes:
    bound |= {(s.selector, s.arg_name) for s in config_parser.ConfigParser(
        (_t5x_root() / includes[0]).read_text(), _Delegate())
              if isinstance(s, config_parser.BindingStatement) and s.arg_name}
  assert T5X_BINDINGS[name] <= bound


TINY = ("network.T5Config.emb_dim = 32", "network.T5Config.num_heads = 2",
        "network.T5Config.head_dim = 16", "network.T5Config.mlp_dim = 64",
        "network.T5Config.num_encoder_layers = 1",
        "network.T5Config.num_decoder_layers = 1",
        "network.T5Config.dtype = 'float32'")


def _tiny_macros(corpus) -> dict:
  return {"CORPUS_DIR": str(corpus.root), "VOCAB_PATH": str(corpus.vocab_model),
          "VOCAB_EXTRA_IDS": 100, "VOCAB_SIZE": 384, "BATCH_SIZE": 8,
          "TASK_FEATURE_LENGTHS": {"inputs": 32, "targets": 32},
          "WARMUP_STEPS": 2, "EVAL_PERIOD": 2, "EVAL_STEPS": 1,
          "CHECKPOINT_PERIOD": 2}


def _run_t5x(phase: t5x.T5xPhase) -> subprocess.CompletedProcess:
  command = t5x.train_command(phase, python=sys.executable)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.run(command, env=env, capture_output=True, text=True,
                        timeout=600, check=False)


def _train(phase: t5x.T5xPhase) -> None:
  result = _run_t5x(phase)
  assert result.returncode == 0, result.stderr[-3000:]


def _state(checkpoint: pathlib.Path) -> dict[str, np.ndarray]:
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  tree = ocp.PyTreeCheckpointer().restore(str(checkpoint / "state"))
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf
          in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _scalars(event_dir: pathlib.Path) -> dict[str, dict[int, float]]:
  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  acc = event_accumulator.EventAccumulator(str(event_dir),
                                           size_guidance={"tensors": 0})
  acc.Reload()
  scalars = {}
  for tag in acc.Tags()["tensors"]:
    values = {e.step: tensor_util.make_ndarray(e.tensor_proto)
              for e in acc.Tensors(tag)}
    if all(v.shape == () and v.dtype.kind == "f" for v in values.values()):
      scalars[tag] = {step: float(v) for step, v in values.items()}
  return scalars


def _check_reset(pre_dir: pathlib.Path, pre_steps: int,
                 ft_dir: pathlib.Path, ft_steps: int, tasks: list[str]):
  """Phase 2 starts at step 0 with phase 1's parameters and a zero optimizer."""
  steps = sorted(int(p.name.split("_")[1]) for p in ft_dir.glob("checkpoint_*"))
  assert steps[0] == 0 and steps[-1] == ft_steps
  before = _state(pre_dir / f"checkpoint_{pre_steps}")
  after = _state(ft_dir / "checkpoint_0")
  params = [k for k in after if k.startswith("['target']")]
  optimizer = [k for k in after if k.startswith("['state']")]
  assert params and optimizer
  for k in params:
    np.testing.assert_array_equal(after[k], before[k], err_msg=k)
  assert int(before["['state']['step']"]) == pre_steps
  for k in optimizer:  # step, optax count, moments: all zero again
    assert not np.any(after[k]), k
  train = _scalars(ft_dir / "train")
  assert max(train["loss"]) == ft_steps
  assert max(train[losses.PLAIN_CROSS_ENT]) == ft_steps
  for task in tasks:
    evals = _scalars(ft_dir / "training_eval" / task)
    assert sorted(evals["loss"]) == [0, 2, ft_steps][-len(evals["loss"]):]
    assert evals[losses.PLAIN_CROSS_ENT].keys() == evals["loss"].keys()


@pytest.mark.t5x
@pytest.mark.slow
def test_nmt_pretrain_then_finetune_on_real_t5x(tiny_corpus, tmp_path):
  _t5x_root()
  tasks = {"HIGH_TASK": "translate_en_fr", "LOW_TASK": "translate_en_ro"}
  macros = {**_tiny_macros(tiny_corpus), **tasks, "INFER_EVAL_EXAMPLES": 8}
  _train(t5x.T5xPhase(("gin/ptjf_nmt3_pretrain.gin",), str(tmp_path / "pre"),
                      {**macros, "TRAIN_STEPS": 4}, bindings=TINY))
  evaluated = {p.name for p in (tmp_path / "pre/training_eval").iterdir()}
  assert set(tasks.values()) <= evaluated  # pre-training evaluates both tasks
  # A model gin that does not match the checkpoint: refused, not re-initialised.
  mismatched = _run_t5x(t5x.T5xPhase(
      ("gin/ptjf_nmt3_finetune.gin",), str(tmp_path / "bad"),
      {**macros, "TRAIN_STEPS": 3}, "params_only",
      str(tmp_path / "pre/checkpoint_4"),
      bindings=(*TINY, "network.T5Config.num_decoder_layers = 2")))
  assert mismatched.returncode != 0
  assert ("the checkpoint has no parameter target/decoder/layers_1"
          in mismatched.stderr), mismatched.stderr[-3000:]
  assert not list((tmp_path / "bad").glob("checkpoint_*"))
  _train(t5x.T5xPhase(("gin/ptjf_nmt3_finetune.gin",), str(tmp_path / "ft"),
                      {**macros, "TRAIN_STEPS": 3}, "params_only",
                      str(tmp_path / "pre/checkpoint_4"), bindings=TINY))
  _check_reset(tmp_path / "pre", 4, tmp_path / "ft", 3, list(tasks.values()))
  # The summary at step 2 averages the rate of steps 0 and 1: the warmup
  # (to the default 2.5e-3 over 2 steps) restarted: (0 + 1.25e-3) / 2.
  lr = _scalars(tmp_path / "ft/train")["learning_rate"]
  assert lr[2] == pytest.approx(6.25e-4)
  bleu = (tmp_path / "ft/inference_eval/translate_en_ro-metrics.jsonl")
  lines = bleu.read_text().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [2, 3]
  assert "bleu" in json.loads(bleu.read_text().splitlines()[-1])
  operative = parse((tmp_path / "ft/config.gin").read_text(), Config())
  assert _value(operative, "models.EncoderDecoderModel.predict_batch_with_aux",
                "num_decodes") == 4   # what BLEU decoded with: beam 4


@pytest.mark.t5x
@pytest.mark.slow
def test_mc4_pretrain_then_finetune_on_real_t5x(tiny_corpus, tmp_path):
  _t5x_root()
  tasks = ["span_corruption_en", "span_corruption_fr", "span_corruption_ro"]
  macros = {**_tiny_macros(tiny_corpus), "PRETRAIN_TASK": tasks[0],
            "TASKS": tasks}
  _train(t5x.T5xPhase(("gin/ptjf_mc4_xxl_pretrain.gin",), str(tmp_path / "pre"),
                      {**macros, "TRAIN_STEPS": 4}, bindings=TINY))
  _train(t5x.T5xPhase(("gin/ptjf_mc4_xxl.gin",), str(tmp_path / "ft"),
                      {**macros, "TRAIN_STEPS": 3}, "params_only",
                      str(tmp_path / "pre/checkpoint_4"), bindings=TINY))
  _check_reset(tmp_path / "pre", 4, tmp_path / "ft", 3, tasks)
  # Summaries at step 2 average the rate of steps 0 and 1. Pre-training:
  # 1 / sqrt(max(step, 2)), constant; fine-tune: min(1, step / 2) times
  # that, a restarted warmup: (0 + 0.5 / sqrt(2)) / 2.
  pre_lr = _scalars(tmp_path / "pre/train")["learning_rate"]
  assert pre_lr[2] == pytest.approx(1 / np.sqrt(2))
  lr = _scalars(tmp_path / "ft/train")["learning_rate"]
  assert lr[2] == pytest.approx(0.25 / np.sqrt(2))


def _toml(plan: dict) -> str:
  """A plan of tables and [[sweep]]s as TOML (strings, numbers, lists, tables)."""
  def value(v) -> str:
    if isinstance(v, dict):
      return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
      return "[" + ", ".join(value(x) for x in v) + "]"
    return json.dumps(v)
  lines = ["[experiment]"] + [f"{k} = {value(v)}"
                              for k, v in plan["experiment"].items()]
  for sweep in plan["sweep"]:
    lines += ["[[sweep]]"] + [f"{k} = {value(v)}" for k, v in sweep.items()]
  return "\n".join(lines) + "\n"


def _chain_plan(corpus, gin_dir: pathlib.Path) -> dict:
  """Scalarization + temperature + PTJF on the tiny corpus; engine t5x runs
  ptjf's NMT entry files with the tiny model (gin files in gin_dir)."""
  t5x_gin = {}
  for kind, entry in plan_lib.DEFAULT_T5X_GIN.items():
    path = gin_dir / f"tiny_{kind}.gin"
    path.write_text(f'include "{entry}"\n' + "".join(f"{b}\n" for b in TINY))
    t5x_gin[kind] = str(path)
  overrides = {k: v for k, v in _tiny_macros(corpus).items()
               if k not in ("CORPUS_DIR", "BATCH_SIZE", "TASK_FEATURE_LENGTHS")}
  return {"experiment": {
      "name": "chain", "engine": "t5x", "model": "tiny", "high": "translate_en_fr",
      "low": "translate_en_ro", "batch_size": 8, "corpus_dir": str(corpus.root),
      "feature_lengths": {"inputs": 32, "targets": 32},
      "overrides": {**overrides, "INFER_EVAL_EXAMPLES": 8}, "t5x_gin": t5x_gin},
      "sweep": [{"kind": "scalarization", "steps": 4, "rates": [0.5]},
                {"kind": "scalarization", "steps": 4, "taus": [2]},
                {"kind": "ptjf", "pretrain_steps": 4, "finetune_steps": 3,
                 "rates": [0.3]}]}


@pytest.mark.t5x
@pytest.mark.slow
def test_a_plan_chain_on_real_t5x_reads_like_the_local_engine_s(
    tiny_corpus, tmp_path, capsys):
  _t5x_root()
  plan = _chain_plan(tiny_corpus, tmp_path)
  toml_file = tmp_path / "chain.toml"
  toml_file.write_text(_toml(plan))
  parser = argparse.ArgumentParser()
  tpu.register_tpu(parser.add_subparsers())
  args = parser.parse_args(["tpu", "run", "--tpu-name=pod", "--zone=z",
                            "--tpu-type=v4-8", "--bucket=gs://b",
                            f"--plan={toml_file}", "--dry-run"])
  assert args.func(args) == 0
  printed = [shlex.split(l) for l in capsys.readouterr().out.splitlines()
             if l.startswith("gcloud compute tpus tpu-vm ssh")]
  exp = plan_lib.parse_plan(plan)
  runs_dir = tmp_path / "runs"
  summary = execute.run_plan(exp, runs_dir, jobs=1)
  assert summary.ok and len(summary.ran) == len(printed) == 4
  # Each phase ran as `ptjf tpu run` prints it, with the bucket here.
  for argv, key in zip(printed, plan_lib.order(exp)):
    remote = shlex.split(argv[-1].removeprefix("--command="))[2:]
    ran = execute.t5x_command(execute._job(exp, key, runs_dir.resolve(),
                                           str(tiny_corpus.root)))
    assert ran[5:] == [a.replace("gs://b", str(runs_dir.resolve()))
                       for a in remote[5:]]
  local_macros = ("WARMUP_STEPS", "EVAL_PERIOD", "CHECKPOINT_PERIOD")
  local = execute.run_plan(plan_lib.parse_plan(
      plan, engine="local", overrides={k: v for k, v in exp.overrides.items()
                                       if k in local_macros}),
      tmp_path / "local", jobs=1)
  assert local.ok
  tables = {}
  for name, where in (("t5x", runs_dir), ("local", tmp_path / "local")):
    phases, rows = events.read_runs(where)
    tables[name] = {(r.run, r.phase, r.task) for r in rows
                    if r.metric == events.LOSS and r.split == "validation"
                    and r.task in ("translate_en_fr", "translate_en_ro")}
    assert {p.method for p in phases} == {"scalarization", "ptjf"}
    assert set(report.best_low_resource_losses(where)) == {"ptjf",
                                                           "scalarization"}
  assert tables["t5x"] == tables["local"] and len(tables["t5x"]) == 8


@pytest.mark.t5x
@pytest.mark.slow
def test_a_schedule_on_real_t5x_is_continue_jobs_under_one_learning_rate_schedule(
    tiny_corpus, tmp_path):
  _t5x_root()
  plan = _chain_plan(tiny_corpus, tmp_path)
  plan["sweep"] = [{"kind": "schedule", "steps": 6, "rates": [[0.1, 0.7]], "segments": 3}]
  exp = plan_lib.parse_plan(plan)
  runs_dir = tmp_path / "runs"
  assert execute.run_plan(exp, runs_dir, jobs=1).ok
  run = runs_dir / "chain" / "sched_lin_r0.1-0.7"
  assert (run / "seg3/checkpoint_6").is_dir()
  assert min(_scalars(run / "seg2/train")["loss"]) > 2   # steps count on from seg1's
  # One warmup (2 steps) and cosine decay over all 6 steps, not over seg2's 4: its summary at
  # step 4 averages the rates of steps 2 and 3, 2.5e-3 and 2.5e-3 x (1 + cos(pi / 4)) / 2.
  lr = _scalars(run / "seg2/train")["learning_rate"]
  assert lr[4] == pytest.approx((2.5e-3 + 1.25e-3 * (1 + np.cos(np.pi / 4))) / 2, rel=1e-4)
  phases, rows = events.read_runs(runs_dir)
  n = numbers.experiment_numbers(phases, rows)
  assert n["compute_steps"] == {"schedule": 6}
  assert max(r.global_step for r in rows if r.phase == "seg3") == 6
