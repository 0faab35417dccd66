"""The local engine's training loop: one gin-configurable `train(...)` writing a T5X-layout logdir.

Order (as nanodo): init, restore, then step / eval / checkpoint. The logdir contract is
docs/design.md section 3. Data parallel: batches are sharded on a 'data' mesh axis over all local
devices, params replicated (one code path for 1 or N devices).
"""
import itertools
import math
import os
import time
from typing import Any, Callable, Mapping, Optional

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import seqio
from clu import metric_writers

from ptjf.engine import data, losses, model as model_lib, optim, phase
from ptjf.errors import UserError
from ptjf.tasks import mixtures

_TAGS = ("loss", "cross_ent_loss", "cross_ent_loss_per_all_target_tokens", "accuracy")


def _metrics(sums: losses.LossSums) -> dict:
  """T5X tag values from loss sums (eval loss = plain CE per target token)."""
  n = max(float(sums.weight_sum), 1.0)
  return {"loss": float(sums.cross_ent) / n, "cross_ent_loss": float(sums.cross_ent),
          "cross_ent_loss_per_all_target_tokens": float(sums.cross_ent) / n,
          "accuracy": float(sums.correct) / n}


def _eval_batches(task: str, split: str, lengths, batch_size: int, limit: int, seed: int):
  """Up to `limit` examples of a split, in fixed order, as full batches padded with weight-0 rows."""
  rows = list(itertools.islice(data.task_stream(task, split, lengths, seed, shuffle=split == "train",
                                                repeat=False), limit))
  for i in range(0, len(rows), batch_size):
    chunk = rows[i:i + batch_size]
    batch = {k: np.stack([r[k] for r in chunk]) for k in data.FEATURES}
    pad = batch_size - len(chunk)
    yield {k: np.pad(v, ((0, pad), (0, 0))) for k, v in batch.items()}


@gin.configurable(denylist=["progress"])
def train(model_dir: str = gin.REQUIRED, mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED, batch_size: int = 8,
          train_steps: int = 100, model_preset: str = "tiny",
          model_overrides: Optional[Mapping[str, Any]] = None,
          optimizer: Callable[[optax.Schedule], optax.GradientTransformation] = optim.adam,
          schedule: Callable[[], optax.Schedule] = gin.REQUIRED,
          eval_period: int = 50, checkpoint_period: int = 100, restore_mode: str = "scratch",
          init_checkpoint: Optional[str] = None, random_seed: int = 0,
          label_smoothing: float = 0.0, eval_examples: int = 64, eval_train_examples: int = 64,
          keep_checkpoints: int = 3, progress: Optional[Callable[[int, float], None]] = None) -> None:
  """Trains one phase into `model_dir` (resumes from its latest checkpoint if any)."""
  if restore_mode not in ("scratch", "params_only", "continue"):
    raise UserError(f"restore_mode {restore_mode!r} unknown: use scratch, params_only or continue")
  os.makedirs(model_dir, exist_ok=True)
  with open(os.path.join(model_dir, "config.gin"), "w") as f:
    f.write(gin.operative_config_str())
  rates = mixtures.mixture_rates(mixture_or_task_name)
  vocab = seqio.get_mixture_or_task(sorted(rates)[0]).output_features["targets"].vocabulary
  cfg = model_lib.preset(model_preset, vocab.vocab_size, **dict(model_overrides or {}))
  model = model_lib.Transformer(cfg)
  lengths = dict(task_feature_lengths)
  tx = optimizer(schedule())
  lr_fn = schedule()

  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  data_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  length = max(lengths.values())
  dummy = jnp.zeros((1, length), jnp.int32)
  params = model.init(jax.random.key(random_seed), dummy, dummy)["params"]
  state = phase.TrainState(0, params, tx.init(params))
  position = 0
  mgr = ocp.CheckpointManager(os.path.abspath(model_dir), options=ocp.CheckpointManagerOptions(
      max_to_keep=keep_checkpoints, step_prefix="checkpoint"))
  latest = mgr.latest_step()
  if latest is not None and latest >= train_steps:
    print(f"{model_dir}: already finished (checkpoint_{latest})")
    return
  if latest is not None:
    restored = mgr.restore(latest, args=ocp.args.StandardRestore(
        {"step": 0, "position": 0, "params": state.params, "opt_state": state.opt_state}))
    state = phase.TrainState(int(restored["step"]), restored["params"], restored["opt_state"])
    position = int(restored["position"])
  elif restore_mode != "scratch":
    if not init_checkpoint or not os.path.isdir(init_checkpoint):
      raise UserError(f"restore_mode={restore_mode} but checkpoint {init_checkpoint!r} is missing: "
                      "set INITIAL_CHECKPOINT_PATH to an existing MODEL_DIR/checkpoint_<step>")
    loaded = ocp.StandardCheckpointer().restore(os.path.abspath(init_checkpoint) + "/default")
    if restore_mode == "params_only":
      state = phase.reset_for_new_phase(loaded["params"], params, tx, init_checkpoint)
    else:
      restored = ocp.StandardCheckpointer().restore(
          os.path.abspath(init_checkpoint) + "/default",
          {"step": 0, "position": 0, "params": state.params, "opt_state": state.opt_state})
      state = phase.continue_phase(phase.TrainState(int(restored["step"]), restored["params"],
                                                    restored["opt_state"]), params, init_checkpoint)
      position = int(restored["position"])
  params, opt_state = jax.device_put((state.params, state.opt_state), replicated)
  step = state.step

  def loss_fn(p, batch, rng):
    logits = model.apply({"params": p}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                         enable_dropout=cfg.dropout_rate > 0, rngs={"dropout": rng})
    sums = losses.cross_entropy(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"],
                                label_smoothing)
    return sums.loss / jnp.maximum(sums.weight_sum, 1.0), sums

  @jax.jit
  def train_step(p, o, batch, step):
    rng = jax.random.fold_in(jax.random.key(random_seed + 1), step)
    grads, sums = jax.grad(loss_fn, has_aux=True)(p, batch, rng)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, sums

  @jax.jit
  def eval_step(p, batch):
    logits = model.apply({"params": p}, batch["encoder_input_tokens"], batch["decoder_input_tokens"])
    return losses.cross_entropy(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"])

  writers = {}

  def writer(sub):
    if sub not in writers:
      writers[sub] = metric_writers.create_default_writer(os.path.join(model_dir, sub),
                                                          asynchronous=False)
    return writers[sub]

  def run_eval():
    for prefix, split, limit in (("training_eval", "validation", eval_examples),
                                 ("training_eval_train", "train", eval_train_examples)):
      total = None
      for task in sorted(rates):
        sums = None
        for batch in _eval_batches(task, split, lengths, batch_size, limit, random_seed):
          s = eval_step(params, jax.device_put(batch, data_sharding))
          sums = s if sums is None else jax.tree.map(jnp.add, sums, s)
        if sums is None:
          continue
        writer(f"{prefix}/{task}").write_scalars(step, _metrics(sums))
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
      if total is not None and len(rates) > 1:
        writer(f"{prefix}/{mixture_or_task_name}").write_scalars(step, _metrics(total))

  def save():
    mgr.save(step, args=ocp.args.StandardSave(
        {"step": step, "position": batches.position, "params": params, "opt_state": opt_state}))
    mgr.wait_until_finished()

  batches = data.MixtureBatches(mixture_or_task_name, lengths, batch_size, random_seed, position)
  if step == 0:
    run_eval()
  seen = {t: [0, 0] for t in rates}
  start = time.time()
  while step < train_steps:
    batch = next(batches)
    for t in rates:
      seen[t][0] += batch["task_counts"][t]
      seen[t][1] += batch["task_tokens"][t]
    arrays = jax.device_put({k: batch[k] for k in data.FEATURES}, data_sharding)
    new_params, new_opt, sums = train_step(params, opt_state, arrays, step)
    loss = float(sums.loss) / max(float(sums.weight_sum), 1.0)
    if not math.isfinite(loss):
      raise UserError(f"loss is {loss} at step {step}: lower LEARNING_RATE; the last good checkpoint "
                      f"is kept in {model_dir}")
    params, opt_state = new_params, new_opt
    step += 1
    elapsed = time.time() - start
    scalars = _metrics(sums)
    scalars.update(loss=loss, learning_rate=float(lr_fn(step - 1)),
                   **{"timing/seconds": elapsed, "timing/steps_per_second": step / max(elapsed, 1e-9)})
    scalars.update({f"examples_seen/{t}": v[0] for t, v in seen.items()})
    scalars.update({f"tokens_seen/{t}": v[1] for t, v in seen.items()})
    writer("train").write_scalars(step, scalars)
    if progress:
      progress(step, loss)
    if step % eval_period == 0 or step == train_steps:
      run_eval()
    if step % checkpoint_period == 0 or step == train_steps:
      save()
  for w in writers.values():
    w.flush()
