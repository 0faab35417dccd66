"""Training-step speed of the local engine on the bench model (a benchmark).

Model `bench` (d 256, 3+3 layers, 4 heads x 64, mlp 1024, vocab 8192),
batch 64, lengths 64/64, Adafactor, dropout 0.1, label smoothing 0.1, fed by
a real SeqIO mixture of the local translation tasks (the corpus at
$PTJF_CORPUS_DIR / data/corpus, else a synthetic one in a temp dir).

For each activation dtype it reports steady-state steps/s, target tokens/s,
model GFLOP/s and its fraction of a float32 matmul peak measured in the same
run, compile time and peak RSS; then the same step without dropout and with
Flax's threefry dropout masks (the cost of dropout); then, when T5X is
importable, T5X's step and the engine's step once more, so that the two
engine timings bracket T5X's on a machine whose speed drifts; and one
summary line (the engine figures from both timings)

  bench: dtype=float32 engine_steps_per_s=0.4142 sgemm_fraction=0.573 \
      t5x_steps_per_s=0.2474 ratio_vs_t5x=1.674

(the full idle run of 2026-11-27 02:35 UTC in docs/bench.md)

    python bench/bench_engine.py [--dtypes float32,bfloat16] [--steps 12]

Like the `ptjf` command, the bench restarts itself once with glibc's
huge-page tunable (`ptjf.engine.allocator`); T5X runs with the environment
as the user gave it (its defaults) unless `--t5x_malloc ptjf`.

The timed step is the trainer's own (`engine.train.make_train_step`) with
the engine's Adafactor (unfactored, momentum). Other processes share the CPU, so
absolute numbers are noisy; each timing's sgemm peak is measured right
before it, and ratios within one run are what to compare.
"""
import argparse
import dataclasses
import functools
import os
import pathlib
import resource
import sys
import tempfile
import time
from typing import Any, Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ptjf.engine import allocator
from ptjf.engine import data
from ptjf.engine import model as model_lib
from ptjf.engine import optim
from ptjf.engine import train as train_lib

SPEC = dict(preset="bench", vocab_size=8192, batch_size=64, inputs_length=64,
            targets_length=64, dropout_rate=0.1, label_smoothing=0.1)
_REPO = pathlib.Path(__file__).resolve().parent.parent


def train_matmul_flops(cfg: model_lib.TransformerConfig, batch: int,
                       src_len: int, tgt_len: int) -> int:
  """Matmul FLOPs of one training step (forward + backward = 3 x forward).

  Per token and layer, with d = emb_dim, a = heads x head_dim, f = mlp_dim,
  S / T = source / target length, V = vocab (a multiply-add is 2 FLOPs):
    encoder layer:  qkv 6da + out 2ad + mlp 4df + scores and mixing 4Sa
    decoder layer:  self-attn 6da + 2ad + 4Ta, cross q 2da + out 2ad + 4Sa,
                    mlp 4df; cross k, v 4da per *source* token
    logits:         2dV per target token
  Attention scores count the full (unmasked) matrices, as they are computed.
  Embedding lookups, LayerNorm, softmax and the optimizer are not counted.

  Bench model, batch 64, 64/64: 3 x 64 x 64 x (5.70M + 10.09M) = 194 GFLOP.
  """
  d, a, f = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.mlp_dim
  s, t, v = src_len, tgt_len, cfg.vocab_size
  enc = cfg.num_encoder_layers * (8 * d * a + 4 * d * f + 4 * s * a)
  cross_kv = cfg.num_decoder_layers * 4 * d * a
  dec = cfg.num_decoder_layers * (12 * d * a + 4 * d * f + 4 * (s + t) * a)
  forward = batch * (s * (enc + cross_kv) + t * (dec + 2 * d * v))
  return 3 * forward


def sgemm_gflops(n: int = 2048, repeats: int = 8) -> float:
  """Float32 GFLOP/s of a jitted n x n jnp.dot, best of 3 timings."""
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
  dot = jax.jit(lambda x: jnp.dot(x, x))
  dot(a).block_until_ready()
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(repeats):
      out = dot(a)
    out.block_until_ready()
    best = min(best, (time.perf_counter() - start) / repeats)
  return 2 * n**3 / best / 1e9


def _corpus_dir(tmp: pathlib.Path) -> pathlib.Path:
  """The user's corpus if built, else a synthetic one written under `tmp`."""
  from ptjf.tasks import layout
  root = layout.default_corpus_dir()
  if layout.CorpusLayout(root).vocab_model.is_file():
    return root
  sys.path.insert(0, str(_REPO / "tests"))  # the tests' synthetic corpus
  from synthetic_corpus import write_synthetic_corpus
  write_synthetic_corpus(tmp, {"fr": 4000, "ro": 400})
  return tmp


def batches(corpus_dir: pathlib.Path) -> Iterator[dict[str, np.ndarray]]:
  """Endless EncDecFeatureConverter batches of the corpus' translation mix."""
  import seqio
  from ptjf.tasks import layout, mixtures
  tasks = [layout.translate_task_name(lang)
           for lang in layout.CorpusLayout(corpus_dir).pair_langs()]
  name = mixtures.rate_mixture(tasks, [1.0] * len(tasks), corpus_dir=corpus_dir)
  ds = seqio.get_dataset(
      name, task_feature_lengths={"inputs": SPEC["inputs_length"],
                                  "targets": SPEC["targets_length"]},
      dataset_split="train", shuffle=True, num_epochs=None, seed=0,
      feature_converter=seqio.EncDecFeatureConverter(pack=False))
  ds = ds.batch(SPEC["batch_size"], drop_remainder=True).prefetch(2)
  return ({k: b[k] for k in data.FEATURES} for b in ds.as_numpy_iterator())


@dataclasses.dataclass
class EngineStep:
  """The compiled bench step, its model config and the training state it carries on."""
  cfg: model_lib.TransformerConfig
  compiled: Callable[..., Any]
  params: Any
  opt_state: Any
  compile_s: float
  step: int = 0


def compile_step(cfg: model_lib.TransformerConfig,
                 first: dict[str, np.ndarray]) -> EngineStep:
  """Initializes the bench model and compiles the trainer's step for it."""
  model = model_lib.Transformer(cfg)
  optimizer = optim.adafactor(optax.constant_schedule(1e-3))
  params = model.init(jax.random.key(0), first["encoder_input_tokens"],
                      first["decoder_input_tokens"])["params"]
  opt_state = optimizer.init(params)
  step = train_lib.make_train_step(model, optimizer, SPEC["label_smoothing"],
                                   train_lib.dropout_key(0, 0))
  start = time.perf_counter()
  compiled = step.lower(params, opt_state, first, np.int32(0)).compile()
  return EngineStep(cfg, compiled, params, opt_state, time.perf_counter() - start)


def time_steps(engine: EngineStep, data: Iterator[dict], steps: int,
               warmup: int = 2) -> dict[str, float]:
  """Times `steps` more training steps of `engine` after `warmup` ones."""
  data_s = 0.0
  for i in range(warmup + steps):
    if i == warmup:
      jax.block_until_ready(engine.params)
      start, data_s = time.perf_counter(), 0.0
    fetch = time.perf_counter()
    batch = next(data)
    data_s += time.perf_counter() - fetch
    engine.params, engine.opt_state, sums = engine.compiled(
        engine.params, engine.opt_state, batch, np.int32(engine.step))
    engine.step += 1
  loss = float(sums.loss) / float(sums.weight_sum)
  elapsed = time.perf_counter() - start
  peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return dict(steps_per_s=steps / elapsed, compile_s=engine.compile_s,
              data_fraction=data_s / elapsed, loss=loss,
              peak_rss_gb=peak_rss_kb / 2**20)


def t5x_steps_per_s(dtype: str, malloc: str = "user") -> Optional[float]:
  """Real T5X steps/s of the same model, batch and dtype; None without T5X.

  The T5X half is `bench/bench_t5x.py`'s `steps_per_s(dtype, spec, env)`
  (t5x.train with t5x.examples.t5.network), written alongside T5X's setup.
  malloc: "user" runs T5X in the user's environment, "ptjf" with the
  engine's glibc tunable too.
  """
  try:
    import t5x  # pylint: disable=unused-import
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import bench_t5x
  except ImportError as e:
    print(f"t5x half unavailable: {e}")
    return None
  env = os.environ if malloc == "ptjf" else allocator.untuned_env(os.environ)
  return bench_t5x.steps_per_s(dtype, SPEC, env)


def host_memory() -> str:
  """The allocator setting in effect and the kernel's transparent huge pages mode."""
  try:
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
      thp = f.read().strip()
  except OSError:
    thp = "unknown"
  return (f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r} "
          f"transparent_hugepage: {thp}")


def measure(engine: EngineStep, data: Iterator[dict], steps: int) -> dict[str, Any]:
  """Measures the sgemm peak, then times `steps` steps of `engine` right after."""
  peak = sgemm_gflops()
  r = time_steps(engine, data, steps)
  flops = train_matmul_flops(engine.cfg, SPEC["batch_size"], SPEC["inputs_length"],
                             SPEC["targets_length"])
  r.update(sgemm_gflops=peak, gflops=flops * r["steps_per_s"] / 1e9)
  r["sgemm_fraction"] = r["gflops"] / peak
  return r


def combine(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
  """Two equally long timings of one step as one: total steps / total time,
  GFLOP/s against the mean of their two sgemm peaks; the other fields (loss,
  data share, memory) are the second timing's.

  >>> both = combine(dict(steps_per_s=0.5, gflops=10.0, sgemm_gflops=100.0),
  ...                dict(steps_per_s=0.25, gflops=5.0, sgemm_gflops=140.0))
  >>> round(both["steps_per_s"], 4), round(both["gflops"], 3), both["sgemm_gflops"]
  (0.3333, 6.667, 120.0)
  """
  both = dict(second)
  rate = 2 / (1 / first["steps_per_s"] + 1 / second["steps_per_s"])
  both["gflops"] = first["gflops"] * rate / first["steps_per_s"]
  both["sgemm_gflops"] = (first["sgemm_gflops"] + second["sgemm_gflops"]) / 2
  both["steps_per_s"] = rate
  both["sgemm_fraction"] = both["gflops"] / both["sgemm_gflops"]
  return both


def print_result(dtype: str, label: str, r: dict[str, Any]) -> None:
  """One line of a timing: rates, the sgemm fraction, compile, data, memory."""
  tokens = r["steps_per_s"] * SPEC["batch_size"] * SPEC["targets_length"]
  print(f"{dtype:8s} {label:10s} steps/s {r['steps_per_s']:.3f}  "
        f"target tok/s {tokens:.0f}  GFLOP/s {r['gflops']:.1f} of sgemm "
        f"{r['sgemm_gflops']:.1f} (fraction {r['sgemm_fraction']:.3f})  "
        f"compile {r['compile_s']:.1f}s  data {100 * r['data_fraction']:.1f}%"
        f"  peak RSS {r['peak_rss_gb']:.2f} GB  loss {r['loss']:.2f}",
        flush=True)


def run(dtype: str, data: Iterator[dict], steps: int,
        variants: list[str], t5x_fn: Callable[[str], Optional[float]]) -> None:
  """Times the engine step in `dtype` per dropout variant, then T5X's, then
  the engine's again (so both sides see the same stretch of a shared
  machine; the ratio uses both engine timings); prints a report."""
  results: dict[str, Any] = {}
  for variant in variants:
    overrides = dict(dtype=dtype, dropout_rate=SPEC["dropout_rate"])
    if variant == "no_dropout":
      overrides["dropout_rate"] = 0.0
    elif variant == "threefry":
      overrides["dropout_mask"] = "threefry"
    cfg = model_lib.preset(SPEC["preset"], SPEC["vocab_size"], **overrides)
    engine = compile_step(cfg, next(data))
    results[variant] = measure(engine, data, steps)
    print_result(dtype, variant, results[variant])
    if variant == "hash":
      main_engine = engine
  main = results["hash"]
  if "no_dropout" in results:
    base = results["no_dropout"]["steps_per_s"]
    shares = {v: 100 * (1 - results[v]["steps_per_s"] / base)
              for v in ("hash", "threefry") if v in results}
    print(f"{dtype:8s} dropout share of a step: " + ", ".join(
        f"{v} {share:.1f}%" for v, share in shares.items()))
  t5x = t5x_fn(dtype)
  ratio = "na"
  if t5x is not None:
    after = measure(main_engine, data, steps)
    print_result(dtype, "hash again", after)
    main = combine(main, after)
    print_result(dtype, "hash both", main)
    ratio = f"{main['steps_per_s'] / t5x:.3f}"
  print(f"bench: dtype={dtype} engine_steps_per_s={main['steps_per_s']:.4f} "
        f"sgemm_fraction={main['sgemm_fraction']:.3f} "
        f"t5x_steps_per_s={'na' if t5x is None else f'{t5x:.4f}'} "
        f"ratio_vs_t5x={ratio}", flush=True)


def main() -> None:
  allocator.reexec_tuned()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--steps", type=int, default=12)
  parser.add_argument("--variants", default="hash,no_dropout,threefry",
                      help="hash (the engine's step) first, then any of "
                      "no_dropout, threefry")
  parser.add_argument("--t5x_malloc", choices=("user", "ptjf"), default="user",
                      help="T5X's environment: the user's (T5X's defaults) or "
                      "with the engine's glibc tunable")
  args = parser.parse_args()
  variants = args.variants.split(",")
  if variants[0] != "hash":
    parser.error("--variants must start with hash (the engine's real step)")
  print(f"jax {jax.__version__} on {jax.devices()}; spec {SPEC}")
  who = "the user" if args.t5x_malloc == "user" else "ptjf"
  print(f"host memory: {host_memory()}; T5X runs in {who}'s environment")
  with tempfile.TemporaryDirectory() as tmp:
    corpus_dir = _corpus_dir(pathlib.Path(tmp))
    for dtype in args.dtypes.split(","):  # each dtype sees the same batches
      run(dtype, batches(corpus_dir), args.steps, variants,
          functools.partial(t5x_steps_per_s, malloc=args.t5x_malloc))


if __name__ == "__main__":
  main()
