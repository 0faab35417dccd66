"""The local engine's training loop: one gin-configurable `train(...)` writing a T5X-layout logdir.

Order (as nanodo): init, restore, then step / log / eval / checkpoint. The logdir contract is
docs/design.md section 3. Data parallel: batches are sharded on a 'data' mesh axis over all local
devices, params replicated (one code path for 1 or N devices). The host never waits for a step
except every `log_period` steps (loss check, summaries), so batches are read while steps run.
"""
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import seqio
from clu import metric_writers

from ptjf.engine import data, decoding, divergence, losses, model as model_lib, optim, phase, plateau
from ptjf import logdir
from ptjf.errors import UserError
from ptjf.tasks import mixtures, sampling


def _eval_batches(task: str, split: str, lengths, batch_size: int, limit: int) -> list[dict]:
  """A fixed random sample of `limit` examples of a split (the same for every run and seed), as
  full batches padded with weight-0 rows."""
  rows = list(data.converted(data.sample(task, split, lengths, limit), lengths))
  batches = []
  for i in range(0, len(rows), batch_size):
    chunk = rows[i:i + batch_size]
    batch = {k: np.stack([r[k] for r in chunk]) for k in data.FEATURES}
    pad = batch_size - len(chunk)
    batches.append({k: np.pad(v, ((0, pad), (0, 0))) for k, v in batch.items()})
  return batches


def _bleu_examples(task: str, lengths: Mapping[str, int], limit: int) -> list[dict]:
  """A fixed random sample of `limit` validation examples of a translation task (ids and
  reference text)."""
  return [{"inputs": list(ex["inputs"][:lengths["inputs"]]),
           "targets_pretokenized": ex["targets_pretokenized"]}
          for ex in data.sample(task, "validation", lengths, limit).as_numpy_iterator()]


class _Writers:
  """One clu summary writer per logdir subfolder (train, training_eval/<task>, ...)."""

  def __init__(self, model_dir: str):
    self._model_dir = model_dir
    self._writers = {}

  def __call__(self, sub: str) -> metric_writers.MetricWriter:
    if sub not in self._writers:
      self._writers[sub] = metric_writers.create_default_writer(
          os.path.join(self._model_dir, sub), asynchronous=False)
    return self._writers[sub]

  def flush(self) -> None:
    for w in self._writers.values():
      w.flush()


def dropout_key(random_seed: int, phase_seed: int) -> jax.Array:
  """The dropout key of a phase: RANDOM_SEED and the phase's own seed (its DATA_SEED), so a
  phase that starts from another draws new masks rather than replaying its parent's."""
  return jax.random.fold_in(jax.random.key(random_seed + 1), phase_seed)


def make_train_step(model: model_lib.Transformer, tx: optax.GradientTransformation,
                    label_smoothing: float, key: jax.Array) -> Callable:
  """The jitted step `(params, opt_state, batch, step) -> (params, opt_state, LossSums)`.

  Dropout masks come from `key` (`dropout_key`) folded with the step; params and optimizer
  state are donated. (bench/bench_engine.py times this same function.)
  """
  def loss_fn(p, batch, rng):
    logits = model.apply({"params": p}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                         enable_dropout=model.config.dropout_rate > 0, rngs={"dropout": rng})
    sums = losses.cross_entropy(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"],
                                label_smoothing)
    return sums.loss_per_batch, sums

  def train_step(p, o, batch, step):
    rng = jax.random.fold_in(key, step)
    grads, sums = jax.grad(loss_fn, has_aux=True)(p, batch, rng)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, sums

  return jax.jit(train_step, donate_argnums=(0, 1))


def _checkpoint(step, position, params, opt_state, seen) -> dict:
  return {"step": step, "position": position, "params": params, "opt_state": opt_state,
          "seen": seen}


def _read(path: str, target: Optional[dict] = None) -> dict:
  """The state in checkpoint folder `path`; UserError if it is damaged or incomplete (orbax
  raises plain Exceptions for a deleted _METADATA or data file)."""
  try:
    return ocp.StandardCheckpointer().restore(os.path.join(os.path.abspath(path), "default"),
                                              target)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"checkpoint {path} cannot be read ({str(e).splitlines()[0][:160]}): it is "
                    "damaged or incomplete; start from another checkpoint_<step>") from None


def _checkpoint_folder(path: str) -> str:
  """`path`, or the latest checkpoint_<step> in it when it is a MODEL_DIR (said so)."""
  steps = logdir.checkpoint_steps(path)
  if os.path.isdir(os.path.join(path, "default")) or not steps:
    return path
  chosen = os.path.join(path, logdir.checkpoint_name(steps[-1]))
  print(f"{path} is a MODEL_DIR: starting from its latest checkpoint, {chosen}")
  return chosen


def _resume(mgr: ocp.CheckpointManager, fresh: dict) -> Optional[dict]:
  """MODEL_DIR's latest readable checkpoint, or None. A damaged one is moved aside to
  damaged_checkpoint_<step> (kept, not deleted) and the one before it is used, said so."""
  for step in sorted(mgr.all_steps(), reverse=True):
    path = os.path.join(str(mgr.directory), logdir.checkpoint_name(step))
    try:
      loaded = _read(path)
    except UserError as e:
      aside = os.path.join(str(mgr.directory), f"damaged_{logdir.checkpoint_name(step)}")
      os.rename(path, aside)
      mgr.reload()
      print(f"{e}; moved it to {aside} and resuming from the checkpoint before it", flush=True)
      continue
    phase.check_shapes(loaded["params"], fresh["params"], path)
    return mgr.restore(step, args=ocp.args.StandardRestore(fresh))
  return None


def _initial_state(mgr: ocp.CheckpointManager, latest: Optional[int], fresh: dict,
                   tx: optax.GradientTransformation, restore_mode: str,
                   init_checkpoint: Optional[str]) -> dict:
  """The state to start from: MODEL_DIR's `latest` (readable) checkpoint, else the phase's start
  mode (INITIAL_CHECKPOINT_PATH may be a checkpoint_<step> or a MODEL_DIR)."""
  if latest is not None:
    state = _resume(mgr, fresh)
    if state is not None:
      return state
  if restore_mode == "scratch":
    return fresh
  if not init_checkpoint or not os.path.isdir(init_checkpoint):
    raise UserError(f"restore_mode={restore_mode} but checkpoint {init_checkpoint!r} is missing: "
                    "set INITIAL_CHECKPOINT_PATH to an existing MODEL_DIR/checkpoint_<step>")
  init_checkpoint = _checkpoint_folder(init_checkpoint)
  loaded = _read(init_checkpoint)
  if restore_mode == "params_only":
    state = phase.reset_for_new_phase(loaded["params"], fresh["params"], tx, init_checkpoint)
    return {**fresh, "params": state.params, "opt_state": state.opt_state}
  phase.check_shapes(loaded["params"], fresh["params"], init_checkpoint)
  restored = _read(init_checkpoint, fresh)
  return {**restored, "seen": fresh["seen"]}  # examples seen count within each phase


@gin.configurable(denylist=["progress"])
def train(model_dir: str = gin.REQUIRED, mixture_or_task_name: str = gin.REQUIRED,
          task_feature_lengths: Mapping[str, int] = gin.REQUIRED, batch_size: int = 8,
          train_steps: int = 100, model_preset: str = "tiny",
          model_overrides: Optional[Mapping[str, Any]] = None,
          optimizer: Callable[[optax.Schedule], optax.GradientTransformation] = optim.adam,
          schedule: Callable[[], optax.Schedule] = gin.REQUIRED,
          eval_period: int = 50, checkpoint_period: int = 100, log_period: int = 10,
          restore_mode: str = "scratch", init_checkpoint: Optional[str] = None,
          random_seed: int = 0, data_seed: Optional[int] = None, label_smoothing: float = 0.0, eval_examples: int = 64,
          eval_train_examples: int = 64, bleu_examples: int = 0, bleu_period: int = 0,
          beam_size: int = 4,
          freeze: Sequence[str] = (), also_evaluate: Sequence[str] = (),
          sampler: Optional[sampling.Sampler] = None,
          stop_on_plateau: Optional[Mapping[str, Any]] = None,
          keep_checkpoints: int = 3, progress: Optional[Callable[[int, int, float], None]] = None) -> None:
  """Trains one phase into `model_dir` (resumes from its latest checkpoint if any).

  A diverged loss (`divergence.Divergence`) stops it with a UserError; a checkpoint is saved
  only at a step whose loss passed that check, so the last good one is never rotated away.

  restore_mode: "scratch"; "params_only" (the PTJF reset: parameters of `init_checkpoint`, fresh
    optimizer state, step 0, schedule from its start); "continue" (its step and optimizer state).
  data_seed: the phase's own seed (default random_seed): its training data order and, with
    random_seed, its dropout masks; a phase that starts from another should use a new one, or
    it re-reads the examples (and replays the masks) its parent began with.
  label_smoothing: of the `loss` tags, in training and evaluation alike (T5X's); the plain
    cross-entropy tag (losses.PLAIN_CROSS_ENT) has none.
  bleu_examples: > 0 decodes that many validation examples of each translation task (beam
    `beam_size`) at the last step, and every `bleu_period` steps if > 0, and writes sacrebleu
    BLEU to inference_eval/<task>/.
  freeze: regexes of parameter paths (e.g. "embedding") left untouched by this phase.
  also_evaluate: tasks (or mixtures: their tasks) evaluated like the mixture's own but not
    trained on (the high-resource task while fine-tuning on the low-resource one alone: what it
    forgets); not in the mixture total.
  sampler: the rates each step's batch is drawn with (a `sampling.Sampler` over the mixture's
    tasks); default the mixture's own fixed rates (`sampling.Static`).
  stop_on_plateau: {"task", "patience", "min_delta"}: stop at the first evaluation where the
    task's validation loss has not improved by min_delta for patience evaluations
    (`plateau.plateau_step`), with a checkpoint there and logdir.STOP_FILE naming its step.
  """
  if restore_mode not in logdir.START_MODES:
    raise UserError(f"restore_mode {restore_mode!r} unknown: use {', '.join(logdir.START_MODES)}")
  if random_seed < 0 or (data_seed or 0) < 0:
    raise UserError(f"negative seed (random_seed={random_seed}, data_seed={data_seed}): "
                    "use seeds >= 0")
  os.makedirs(model_dir, exist_ok=True)
  with open(os.path.join(model_dir, "config.gin"), "w") as f:
    f.write(gin.operative_config_str())
  rates = mixtures.mixture_rates(mixture_or_task_name)
  tasks = sorted(rates)
  sampler = sampler or sampling.Static(rates)
  if list(sampler.tasks) != tasks:
    raise UserError(f"the sampler draws {list(sampler.tasks)} but {mixture_or_task_name} has "
                    f"{tasks}: give the sampler the mixture's tasks")
  vocab = seqio.get_mixture_or_task(tasks[0]).output_features["targets"].vocabulary
  cfg = model_lib.preset(model_preset, vocab.vocab_size, **dict(model_overrides or {}))
  model = model_lib.Transformer(cfg)
  lengths = dict(task_feature_lengths)
  lr_fn = schedule()

  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  data_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  if batch_size % len(jax.devices()):
    raise UserError(f"batch size {batch_size} does not split over {len(jax.devices())} devices: "
                    "use a multiple of the device count")

  dummy = jnp.zeros((1, max(lengths.values())), jnp.int32)
  params = jax.jit(model.init)(jax.random.key(random_seed), dummy, dummy)["params"]
  tx = optim.freeze(optimizer(lr_fn), params, freeze)
  mgr = ocp.CheckpointManager(os.path.abspath(model_dir), options=ocp.CheckpointManagerOptions(
      max_to_keep=keep_checkpoints, step_prefix=logdir.CHECKPOINT_PREFIX))
  latest = mgr.latest_step()
  finished = logdir.finished_step(model_dir, train_steps)
  if finished is not None or (latest is not None and latest >= train_steps):
    print(f"{model_dir}: already finished ({logdir.checkpoint_name(finished or latest)})")
    return
  state = _initial_state(mgr, latest, _checkpoint(0, 0, params, tx.init(params),
                                          np.zeros((len(tasks), 2), np.int64)),
                         tx, restore_mode, init_checkpoint)
  params, opt_state = jax.device_put((state["params"], state["opt_state"]), replicated)
  step, seen = int(state["step"]), np.asarray(state["seen"], np.int64)
  start_step, start_position = step, int(state["position"])
  print(f"{model_dir}: {restore_mode if mgr.latest_step() is None else 'resumed'} at step {step}, "
        f"learning rate {float(lr_fn(step)):.3g}", flush=True)

  phase_seed = random_seed if data_seed is None else data_seed
  train_step = make_train_step(model, tx, label_smoothing, dropout_key(random_seed, phase_seed))

  @jax.jit
  def eval_step(p, batch):
    logits = model.apply({"params": p}, batch["encoder_input_tokens"], batch["decoder_input_tokens"])
    return losses.cross_entropy(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"],
                                label_smoothing)

  writer = _Writers(model_dir)
  eval_tasks = tasks + sorted({t for name in also_evaluate for t in mixtures.mixture_rates(name)}
                              - set(rates))
  eval_sets = {(prefix, task): _eval_batches(task, split, lengths, batch_size, limit)
               for prefix, split, limit in (("training_eval", "validation", eval_examples),
                                            ("training_eval_train", "train", eval_train_examples))
               for task in eval_tasks}
  bleu_sets = {task: _bleu_examples(task, lengths, bleu_examples)
               for task in tasks if bleu_examples and task.startswith("translate")}

  rule = dict(stop_on_plateau or {})
  # {step: loss}: what a killed run logged past its last checkpoint is made again
  history = dict(plateau.logged_losses(model_dir, rule["task"], step)) if rule else {}

  def run_eval() -> bool:
    """Evaluates; True if the stop rule stops the phase here."""
    for prefix in ("training_eval", "training_eval_train"):
      total = None
      for task in eval_tasks:
        sums = None
        for batch in eval_sets[prefix, task]:
          s = eval_step(params, jax.device_put(batch, data_sharding))
          sums = s if sums is None else jax.tree.map(jnp.add, sums, s)
        if sums is None:
          continue
        writer(f"{prefix}/{task}").write_scalars(step, losses.summaries(sums))
        if rule and (prefix, task) == ("training_eval", rule["task"]):
          history[step] = losses.summaries(sums)[losses.PLAIN_CROSS_ENT]
        if task in rates:
          total = sums if total is None else jax.tree.map(jnp.add, total, sums)
      if total is not None and len(tasks) > 1:
        writer(f"{prefix}/{mixture_or_task_name}").write_scalars(step, losses.summaries(total))
    return bool(rule) and plateau.plateau_step(sorted(history.items()), rule["patience"],
                                               rule["min_delta"]) == step

  def run_bleu():
    for task, examples in bleu_sets.items():
      out = decoding.bleu_eval(model, params, examples, vocab, beam_size=beam_size,
                               max_decode_length=lengths["targets"], batch_size=batch_size,
                               metric_fns=seqio.get_mixture_or_task(task).metric_fns)
      writer(f"inference_eval/{task}").write_scalars(step, {"bleu": out["bleu"]})
      with open(os.path.join(model_dir, "inference_eval", f"{task}-{step}.jsonl"), "w") as f:
        for pred, ref in zip(out["predictions"], out["references"]):
          f.write(json.dumps({"prediction": pred, "target": ref}, ensure_ascii=False) + "\n")

  def diverged(why: str) -> UserError:
    """The one-line stop: what diverged, and which checkpoint (saved before it) is kept."""
    kept = mgr.latest_step()
    keep = (f"the last good checkpoint, {logdir.checkpoint_name(kept)} in {model_dir}, is "
            "kept (a re-run resumes from it)" if kept is not None else
            f"no checkpoint of this phase was saved before it, so none is kept in {model_dir}")
    return UserError(f"training diverged between steps {window_start} and {step} ({why}): "
                     f"lower LEARNING_RATE; {keep}")

  def save():
    if not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params)):
      raise diverged("parameters are not finite")
    writer.flush()  # the evaluations up to a checkpoint outlive a kill (the stop rule reads them)
    mgr.save(step, args=ocp.args.StandardSave(_checkpoint(
        step, start_position + step - start_step, params, opt_state, seen)))
    mgr.wait_until_finished()

  batches = data.prefetch(data.MixtureBatches(sampler, lengths, batch_size,
                                              phase_seed, start_position))
  if step == 0:
    stopped = run_eval()
  else:  # resumed: stopped already if its logged evaluations say so (killed before STOP_FILE)
    stopped = bool(rule) and plateau.plateau_step(sorted(history.items()), rule["patience"],
                                                  rule["min_delta"]) is not None
  window, window_start, t0 = None, step, time.time()
  watch = divergence.Divergence()
  while step < train_steps and not stopped:
    batch = next(batches)
    seen += [[batch["task_counts"][t], batch["task_tokens"][t]] for t in tasks]
    arrays = jax.device_put({k: batch[k] for k in data.FEATURES}, data_sharding)
    params, opt_state, sums = train_step(params, opt_state, arrays, step)
    window = sums if window is None else jax.tree.map(jnp.add, window, sums)
    step += 1
    at_eval, at_save = step % eval_period == 0, step % checkpoint_period == 0
    if not (step % log_period == 0 or at_eval or at_save or step == train_steps):
      continue
    loss = float(window.loss) / max(float(window.weight_sum), 1.0)
    why = watch.check(loss)  # before any checkpoint of this step: only good ones are saved
    if why:
      raise diverged(why)
    elapsed = time.time() - t0
    scalars = {**losses.summaries(window), "learning_rate": float(lr_fn(step - 1)),
               "timing/steps_per_second": (step - window_start) / max(elapsed, 1e-9)}
    scalars.update({f"examples_seen/{t}": int(seen[i, 0]) for i, t in enumerate(tasks)})
    scalars.update({f"tokens_seen/{t}": int(seen[i, 1]) for i, t in enumerate(tasks)})
    writer("train").write_scalars(step, scalars)
    if progress:
      progress(step, train_steps, loss)
    if at_eval or step == train_steps:
      stopped = run_eval()
    if bleu_sets and (step == train_steps or stopped or (bleu_period and step % bleu_period == 0)):
      run_bleu()
    if at_save or step == train_steps or stopped:
      save()
    window, window_start, t0 = None, step, time.time()
  writer.flush()
  if stopped and step < train_steps:
    with open(os.path.join(model_dir, logdir.STOP_FILE), "w") as f:
      json.dump({"step": step, "rule": rule}, f)
    print(f"{model_dir}: stopped at step {step}: {rule['task']} validation loss has not improved "
          f"by {rule['min_delta']} for {rule['patience']} evaluations", flush=True)
