"""Run a plan's phases in dependency order, idempotently: `run_plan`.

Each phase is one trainer subprocess with MODEL_DIR
`RUNS_DIR/<experiment>/<run>/<phase>/`; its output is appended to
`MODEL_DIR/log.txt`. The phase is finished iff `MODEL_DIR/checkpoint_<steps>`
exists, so a re-run never redoes a finished phase, and re-running a
half-finished one resumes it (the engine restores MODEL_DIR's latest
checkpoint). A failed phase does not stop the sweep: phases that start from it
are skipped, and every failure is listed at the end with its log.

    [1/4] ro_fr/pretrain_s2000/pretrain: running (2000 steps)
    [2/4] ro_fr/ptjf_r0.1/finetune: running (1000 steps)
    [3/4] ro_fr/ptjf_r0.3/finetune: FAILED (exit 1: <its last line>); log
          runs/ro_fr/ptjf_r0.3/finetune/log.txt
    [4/4] ro_fr/ptjf_r0.5/finetune: done before (checkpoint_1000), reused
"""
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable, Sequence

from ptjf import gin_files, locks, logdir, startup
from ptjf.errors import UserError
from ptjf.launch import plan as plan_lib
from ptjf.launch import t5x

DEFAULT_RUNS_DIR = "runs"
LOG_FILE = "log.txt"
LOCK_FILE = locks.LOCK_FILE
DONE_ELSEWHERE = "finished by another launcher"
PROGRESS_PERIOD = 30.0  # seconds between a phase's progress lines without a terminal


@dataclasses.dataclass(frozen=True)
class Job:
  """Everything a trainer command needs for one phase; model_dir and
  init_checkpoint are None when the phase runs elsewhere (`ptjf tpu run`)."""
  experiment: plan_lib.Experiment
  run: plan_lib.Run
  phase: plan_lib.Phase
  model_dir: pathlib.Path | None
  init_checkpoint: pathlib.Path | None
  corpus_dir: str | None

  @property
  def key(self) -> str:
    return f"{self.experiment.name}/{self.run.name}/{self.phase.name}"


CommandBuilder = Callable[[Job], list[str]]


@dataclasses.dataclass
class Summary:
  """What one invocation did, phase keys "experiment/run/phase"."""
  ran: list[str] = dataclasses.field(default_factory=list)
  reused: list[str] = dataclasses.field(default_factory=list)
  planned: list[str] = dataclasses.field(default_factory=list)   # dry run
  failed: list[tuple[str, pathlib.Path]] = dataclasses.field(
      default_factory=list)
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  @property
  def ok(self) -> bool:
    return not self.failed and not self.skipped


def is_finished(model_dir: pathlib.Path, steps: int) -> bool:
  """The contract: a phase is finished iff checkpoint_<TRAIN_STEPS> exists, or its early stop
  rule ended it (`logdir.finished_step`)."""
  return logdir.finished_step(model_dir, steps) is not None


# --- commands ----------------------------------------------------------------

def _bind(macro: str, fn: str, args: dict, corpus_dir: str | None,
          scope: str = "") -> list[str]:
  """gin bindings `MACRO = @[scope/]fn()` and fn's arguments."""
  if corpus_dir:
    args = {**args, "corpus_dir": corpus_dir}
  name = f"{scope}/{fn}" if scope else fn
  return ([f"{macro} = @{name}()"]
          + [f"{name}.{k} = {t5x.gin_literal(v)}" for k, v in args.items()])


def _mixture_bindings(job: Job) -> list[str]:
  """gin bindings that make MIXTURE_OR_TASK_NAME the phase's tasks (both
  engines: ptjf.tasks.mixtures functions)."""
  phase = job.phase
  if phase.tau is not None:
    fn, args = "temperature_mixture", {"tasks": list(phase.tasks),
                                       "tau": phase.tau}
  elif phase.unimax is not None:
    fn, args = "unimax_mixture", {"tasks": list(phase.tasks),
                                  "budget": phase.unimax[0],
                                  "max_epochs": phase.unimax[1]}
  elif phase.rates is not None:
    fn, args = "rate_mixture", {"tasks": list(phase.tasks),
                                "rates": list(phase.rates)}
  else:
    fn, args = "local_task", {"name": phase.tasks[0]}
  return _bind("MIXTURE_OR_TASK_NAME", fn, args, job.corpus_dir)


def _macros(job: Job) -> dict:
  """Experiment-wide macros, then the experiment's and phase's overrides."""
  exp = job.experiment
  return {"TRAIN_STEPS": job.phase.steps, "BATCH_SIZE": exp.batch_size,
          "TASK_FEATURE_LENGTHS": dict(exp.feature_lengths),
          **exp.overrides, **dict(job.phase.overrides)}


def data_seed(job: Job) -> int:
  """RANDOM_SEED plus the number of phases before this one in its chain: a phase that
  starts from another reads its data in a new order, not the examples its parent began with."""
  depth, parent = 0, job.phase.parent
  while parent:
    depth, parent = depth + 1, job.experiment.phases()[parent][1].parent
  return int(_macros(job).get("RANDOM_SEED", 0)) + depth


_LOCAL_START_GIN = {"scratch": [],
                    "params_only": ["local/finetune_params_only.gin"],
                    "continue": ["local/continue.gin"]}


def local_command(job: Job) -> list[str]:
  """`python -m ptjf.cli train ...` for the local engine (design.md s. 3)."""
  exp = job.experiment
  gin_dir = gin_files.gin_dir()
  command = [sys.executable, "-m", "ptjf.cli", "train",
             f"--gin_search_paths={gin_dir}",
             "--gin_file=local/base.gin",
             f"--gin_file=local/model_{exp.model}.gin",
             f"--gin_file=local/{exp.optimizer}.gin"]
  command += [f"--gin_file={f}" for f in _LOCAL_START_GIN[job.phase.start]]
  command.append(f"--gin.MODEL_DIR={t5x.gin_literal(job.model_dir)}")
  command.append(f"--gin.DATA_SEED={data_seed(job)}")
  command += [f"--gin.{k}={t5x.gin_literal(v)}"
              for k, v in _macros(job).items()]
  if job.init_checkpoint:
    command.append(
        f"--gin.INITIAL_CHECKPOINT_PATH={t5x.gin_literal(job.init_checkpoint)}")
  command += [f"--gin_bindings={b}" for b in _mixture_bindings(job)]
  command += [f"--gin_bindings={b}" for b in _rule_bindings(job.phase)]
  untrained = [t for t in (*exp.high, *exp.low) if t not in job.phase.tasks]
  if untrained:  # every phase is evaluated on every task of its experiment
    command.append(f"--gin_bindings=train.also_evaluate = {t5x.gin_literal(untrained)}")
  return command


def _rule_bindings(phase: plan_lib.Phase) -> list[str]:
  """The local engine's bindings of a phase's rate schedule (`train.sampler`, drawing each
  step with its rates) and early-stop rule (`train.stop_on_plateau`)."""
  bindings = []
  schedule = phase.schedule
  if schedule is not None and schedule.segment is None:
    bindings += _bind("train.sampler", "rate_schedule", {
        "tasks": list(phase.tasks), "start": list(schedule.start), "end": list(schedule.end),
        "steps": schedule.steps, "shape": schedule.shape,
        "switch_step": schedule.switch_step}, None)
  if phase.stop is not None:
    rule = {"task": phase.stop.task, "patience": phase.stop.patience,
            "min_delta": phase.stop.min_delta}
    bindings.append(f"train.stop_on_plateau = {t5x.gin_literal(rule)}")
  return bindings


def check_local_gin(exp: plan_lib.Experiment) -> None:
  """UserError unless the plan's model and optimizer have local gin files."""
  local_dir = gin_files.gin_dir() / "local"
  for kind, name in (("model", f"model_{exp.model}"),
                     ("optimizer", exp.optimizer)):
    if not (local_dir / f"{name}.gin").is_file():
      known = sorted(p.stem for p in local_dir.glob("*.gin"))
      if kind == "model":
        known = [k[len("model_"):] for k in known if k.startswith("model_")]
      else:
        known = [k for k in known if not k.startswith("model_")]
      raise UserError(f"no local gin file for {kind} {getattr(exp, kind)!r} "
                      f"({local_dir / name}.gin): set {kind} in [experiment] "
                      f"to one of {', '.join(known) or '(none installed)'}")


def check_macros(jobs: Iterable[Job]) -> None:
  """UserError for a plan override that the phase's gin files (local engine) or
  T5X job (`t5x.check_macros`) do not know: a typo gin would take as a new
  macro, naming the closest one."""
  local_dir = gin_files.gin_dir()
  for job in jobs:
    where = f"the plan's overrides of {job.key}"
    if job.experiment.engine == "t5x":
      t5x.check_macros(t5x_phase(job, str(job.model_dir), None), where)
      continue
    known = set()
    for name in local_command(job):
      if name.startswith("--gin_file="):
        path = local_dir / name[len("--gin_file="):]
        if path.is_file():
          defined, used = gin_files.read(str(path))
          known |= defined | used
    gin_files.refuse_unknown(_macros(job), known, where)


def t5x_phase(job: Job, model_dir: str,
              init_checkpoint: str | None) -> t5x.T5xPhase:
  """The T5X job of a phase, wherever its MODEL_DIR is (a folder, a bucket).

  The gin entry file is the plan's `t5x_gin` for the phase's kind (a
  params_only fine-tune, one task, a mixture: a `continue` phase goes on with
  the file of the phase it continues, so its learning-rate schedule too); the
  mixture is bound as for the local engine, and every task of the experiment
  is evaluated (one eval mixture).
  """
  exp, phase = job.experiment, job.phase
  kind = ("finetune" if phase.start == "params_only"
          else "mixture" if len(phase.tasks) > 1 else "single")
  macros = _macros(job)
  if job.corpus_dir:
    macros["CORPUS_DIR"] = job.corpus_dir
  tasks = [*exp.high, *exp.low]
  evaluate = _bind("EVAL_MIXTURE_OR_TASK_NAME", "rate_mixture",
                   {"tasks": tasks, "rates": [1.0] * len(tasks)},
                   job.corpus_dir, scope="ptjf_eval")
  return t5x.T5xPhase(
      gin_files=(exp.t5x_gin[kind],), model_dir=model_dir, macros=macros,
      start=phase.start, init_checkpoint=init_checkpoint,
      bindings=(*_mixture_bindings(job), *evaluate))


def t5x_command(job: Job) -> list[str]:
  """The real-T5X command of a phase, run on this machine."""
  init = str(job.init_checkpoint) if job.init_checkpoint else None
  return t5x.train_command(t5x_phase(job, str(job.model_dir), init),
                           python=sys.executable)


def default_command_builder(engine: str) -> CommandBuilder:
  return {"local": local_command, "t5x": t5x_command}[engine]


# --- phase records -----------------------------------------------------------

def corpus_facts(exp: plan_lib.Experiment, corpus_dir: str | None,
                 required: bool) -> tuple[dict[str, int], str | None]:
  """({task: train examples}, corpus_hash) of the plan's tasks.

  With `required` a missing corpus or task is a UserError before anything
  runs; otherwise what cannot be found is left out.
  """
  from ptjf.tasks import layout  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(corpus_dir) if corpus_dir else layout.default_corpus_dir()
  corpus = layout.CorpusLayout(root)
  if not corpus.vocab_model.is_file() and not required:
    return {}, None
  from ptjf.tasks import local  # pylint: disable=g-import-not-at-top
  tasks = {t for run in exp.runs for p in run.phases for t in p.tasks}
  sizes = {}
  for task in sorted(tasks):
    try:
      sizes[task] = local.train_size(task, "examples", root)
    except UserError:
      if required:
        raise
    if required and sizes.get(task) == 0:
      raise UserError(f"task {task} has no training examples in {root}: "
                      "rebuild the corpus, or leave the task out of the plan")
  corpus_hash = None
  if corpus.manifest.is_file():
    from ptjf.tasks import corpus as corpus_lib  # pylint: disable=g-import-not-at-top
    corpus_hash = corpus_lib.read_manifest(corpus.manifest)["corpus_hash"]
  return sizes, corpus_hash


def phase_record(job: Job, sizes: dict[str, int],
                 corpus_hash: str | None) -> logdir.PhaseRecord:
  """The ptjf_phase.json of a phase (design.md section 4)."""
  from ptjf.tasks import sampling  # pylint: disable=g-import-not-at-top
  phase, exp = job.phase, job.experiment
  known = {t: sizes[t] for t in phase.tasks if t in sizes}
  if phase.rates is not None:
    rates = sampling.normalize(dict(zip(phase.tasks, phase.rates)))
  elif phase.tau is not None:
    rates = (sampling.temperature_rates(known, phase.tau)
             if len(known) == len(phase.tasks) else {})
  elif phase.unimax is not None:
    rates = (sampling.unimax_rates(known, *phase.unimax)
             if len(known) == len(phase.tasks) else {})
  else:
    rates = {phase.tasks[0]: 1.0}
  start_from = None
  if phase.parent:
    step = (logdir.checkpoint_step(job.init_checkpoint) if job.init_checkpoint
            else exp.phases()[phase.parent][1].steps)
    start_from = f"{phase.parent}/{logdir.checkpoint_name(step)}"
  overrides = {**exp.overrides, **dict(phase.overrides)}
  return logdir.PhaseRecord(
      experiment=exp.name, run=job.run.name, method=job.run.method, phase=phase.name,
      rates=rates, steps=phase.steps, batch_size=exp.batch_size, start_mode=phase.start,
      start_from=start_from, corpus_hash=corpus_hash, engine=exp.engine, tau=phase.tau,
      unimax=(None if phase.unimax is None
              else {"budget": phase.unimax[0], "max_epochs": phase.unimax[1]}),
      task_sizes=known, overrides=overrides,
      label_smoothing=(overrides.get("LABEL_SMOOTHING", gin_files.local_default("LABEL_SMOOTHING"))
                       if exp.engine == "local" else None),
      schedule=phase.schedule and phase.schedule.record(phase.tasks),
      stop_rule=phase.stop and phase.stop.record(phase.steps))


# Fields of ptjf_phase.json that must not change once a phase has started.
_FIXED_FIELDS = ("rates", "tau", "unimax", "steps", "batch_size", "start",
                 "engine", "overrides", "schedule", "stop_rule")


def corpus_hash_change(was: str | None, now: str | None) -> str | None:
  """'hash <was>... -> <now>...' if both corpus hashes are known and differ, else None.

  >>> corpus_hash_change("ab" * 32, "cd" * 32)
  'hash abababababab... -> cdcdcdcdcdcd...'
  >>> corpus_hash_change(None, "cd" * 32) is None
  True
  """
  if not (was and now) or was == now:
    return None
  return f"hash {was[:12]}... -> {now[:12]}..."


def check_unchanged(job: Job, record: logdir.PhaseRecord) -> None:
  """UserError if the phase directory was started under different settings.

  Resuming it would mix two trainings (e.g. a cosine schedule stretched from
  3000 to 4000 steps half-way), and reusing a phase finished on another corpus
  (a rebuild with new catalogs or another subsample) would compare runs that
  read different pairs.
  """
  path = job.model_dir / logdir.PHASE_FILE
  if not path.is_file():
    return
  try:
    stored = json.loads(path.read_text())
  except json.JSONDecodeError:
    return   # half-written by a killed launcher; rewritten before the run
  changed = corpus_hash_change(stored.get("corpus_hash"), record.corpus_hash)
  if changed:
    raise UserError(
        f"{job.key} was trained on another corpus ({changed}): its results would not be "
        f"comparable; use a new --runs-dir, or delete {job.model_dir} to start it over")
  sized = job.phase.tau is not None or job.phase.unimax is not None
  fields = [f for f in _FIXED_FIELDS if not (f == "rates" and sized)]
  now = record.to_dict()
  for field in fields:
    if stored.get(field) != now.get(field):
      raise UserError(
          f"{job.key} was started with {field} {stored.get(field)!r}, the "
          f"plan now says {now.get(field)!r}: delete {job.model_dir} to "
          "start it over, or give the changed sweep a new prefix")


def _last_line(log_path: pathlib.Path) -> str:
  """The engine's last run's error line ("ptjf: error: ..."), else its last
  output line (noise at interpreter exit may follow the error)."""
  lines = log_path.read_text(errors="replace").splitlines()
  starts = [i for i, l in enumerate(lines)
            if l.startswith("=== ") and not l.startswith("=== exit")]
  lines = [l for l in lines[(starts or [0])[-1]:]
           if l.strip() and not l.startswith("=== ")]
  errors = [l for l in lines if l.startswith("ptjf: error:")]
  return (errors or lines or [""])[-1][:200]


# --- running -----------------------------------------------------------------

def _run_logged(command: Sequence[str], log_path: pathlib.Path,
                show: Callable[[str], None], lock: int | None = None) -> int:
  """Runs `command`, appending its output to log_path; returns the exit code.
  The command dies with this process (`startup.child_env`) and holds `lock` with it
  (`locks.inherit`)."""
  env = startup.child_env({**os.environ, "PYTHONUNBUFFERED": "1",
                           **(locks.inherit(lock) if lock is not None else {})})
  pass_fds = () if lock is None else (lock,)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")
  with open(log_path, "a", encoding="utf-8") as log:
    log.write(f"=== {stamp} {' '.join(command)}\n")
    log.flush()
    with subprocess.Popen(command, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env,
                          errors="replace", pass_fds=pass_fds) as proc:
      for line in proc.stdout:
        log.write(line)
        log.flush()
        show(line.rstrip())
    log.write(f"=== exit {proc.returncode}\n")
  return proc.returncode


class _Progress:
  """Launcher lines, and the latest trainer line of each running phase: on a
  terminal one line per phase in place below them ("[2/11] step 450/1300,
  ..."), else its progress lines ("step ...") every PROGRESS_PERIOD seconds."""

  def __init__(self):
    self._tty = sys.stdout.isatty()
    self._latest: dict[str, str] = {}
    self._shown: dict[str, float] = {}  # head -> time of its last progress line
    self._drawn = 0  # status lines on screen
    self._lock = threading.Lock()

  def _clear(self) -> None:
    """Erases the status lines (the cursor is at the end of the last one)."""
    if self._drawn:
      print("\r\x1b[2K" + "\x1b[1A\x1b[2K" * (self._drawn - 1), end="")
      self._drawn = 0

  def _draw(self) -> None:
    self._clear()
    width = shutil.get_terminal_size().columns - 1
    print("\r" + "\n".join(line[:width] for line in self._latest.values()),
          end="", flush=True)
    self._drawn = len(self._latest)

  def say(self, message: str) -> None:
    """Prints a launcher line; the in-place status is redrawn after it."""
    with self._lock:
      self._clear()
      print(message, flush=True)
      if self._tty and self._latest:
        self._draw()

  def echo(self, head: str) -> Callable[[str], None]:
    """The line callback of one phase's trainer."""
    tag = head.split(" ")[0]

    def show(line: str) -> None:
      if self._tty and line:
        with self._lock:
          self._latest[head] = f"{tag} {line}"
          self._draw()
      elif line.startswith("step "):
        now = time.time()
        if now - self._shown.get(head, -PROGRESS_PERIOD) >= PROGRESS_PERIOD:
          self._shown[head] = now
          self.say(f"{head} {line}")
    return show

  def ended(self, head: str) -> None:
    with self._lock:
      self._latest.pop(head, None)


def run_plan(exp: plan_lib.Experiment,
             runs_dir: str | pathlib.Path = DEFAULT_RUNS_DIR, *,
             only_runs: Iterable[str] | None = None, dry_run: bool = False,
             command_builder: CommandBuilder | None = None,
             corpus_dir: str | None = None, jobs: int = 1) -> Summary:
  """Runs (or with dry_run, lists) the plan's phases; see the module doc.

  only_runs: run names; their phases and what they start from are run.
  command_builder: Job -> argv (default: the experiment engine's trainer).
  corpus_dir: overrides the plan's corpus_dir.
  jobs: phases trained at the same time (a phase waits for the one it
    starts from; on 2 cores two small phases side by side gain ~1.2x, docs/bench.md).
  """
  if jobs < 1:
    raise UserError(f"--jobs {jobs}: run at least 1 phase at a time")
  runs_dir = pathlib.Path(runs_dir).resolve()
  corpus_dir = corpus_dir or exp.corpus_dir
  if corpus_dir:
    corpus_dir = str(pathlib.Path(corpus_dir).resolve())
  keys = plan_lib.order(
      exp, None if only_runs is None else plan_lib.run_keys(exp, only_runs))
  jobs_by_key = {key: _job(exp, key, runs_dir, corpus_dir) for key in keys}
  check_macros(jobs_by_key.values())
  summary = Summary()
  if dry_run:
    print(f"plan {exp.name} ({exp.engine} engine), runs in "
          f"{runs_dir / exp.name}:")
    for line in plan_lib.cost_lines(exp, keys):
      print(f"  {line}")
  real_engine = command_builder is None
  builder = command_builder or default_command_builder(exp.engine)
  with (contextlib.nullcontext() if dry_run else _corpus_read(exp, corpus_dir, runs_dir)):
    sizes, corpus_hash = corpus_facts(
        exp, corpus_dir, required=not dry_run and real_engine and exp.engine == "local")
    if real_engine and exp.engine == "local" and not dry_run:
      check_local_gin(exp)
    records = {job.key: phase_record(job, sizes, corpus_hash)
               for job in jobs_by_key.values()}
    for job in jobs_by_key.values():
      check_unchanged(job, records[job.key])
    heads = {key: f"[{i}/{len(keys)}] {jobs_by_key[key].key}:"
             for i, key in enumerate(keys, 1)}
    to_run = []
    for key in keys:
      job = jobs_by_key[key]
      done = logdir.finished_step(job.model_dir, job.phase.steps)
      if done is not None:
        summary.reused.append(job.key)
        if job.phase.stop and not dry_run:
          _write_record(job, records[job.key])  # its switch step, if a killed launcher missed it
        print(f"{heads[key]} done before ({logdir.checkpoint_name(done)}), reused")
      elif dry_run:
        summary.planned.append(job.key)
        print(f"{heads[key]} would be {_state(job)} ({_steps(job.phase)})")
      else:
        to_run.append(key)
    _run_in_parallel(to_run, jobs_by_key, records, builder, heads, summary, jobs)
  _report(exp, keys, summary, runs_dir, dry_run)
  return summary


def _steps(phase: plan_lib.Phase) -> str:
  """'1000 steps'; 'at most 1600 steps' for a phase an early-stop rule may end; 'until step
  1000' for a `continue` phase (its steps count on from its parent's)."""
  if phase.start == "continue":
    return f"until step {phase.steps}"
  return f"{'at most ' if phase.stop else ''}{phase.steps} steps"


def _state(job: Job) -> str:
  steps = logdir.checkpoint_steps(job.model_dir)
  return f"resuming from {logdir.checkpoint_name(steps[-1])}" if steps else "running"


def _run_in_parallel(keys: list[str], jobs_by_key: dict[str, Job],
                     records: dict[str, logdir.PhaseRecord], builder: CommandBuilder,
                     heads: dict[str, str], summary: Summary,
                     jobs: int) -> None:
  """Trains `keys` (in plan order), up to `jobs` at once; a phase starts once
  the phase it starts from has finished, and is skipped if that one failed."""
  waiting, running = list(keys), {}
  failed: set[str] = set()
  progress = _Progress()
  with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    while waiting or running:
      for key in list(waiting):
        if len(running) >= jobs:
          break
        job = jobs_by_key[key]
        parent = job.phase.parent
        if parent in failed:
          waiting.remove(key)
          failed.add(key)
          reason = f"needs {job.experiment.name}/{parent}, which did not finish"
          summary.skipped.append((job.key, reason))
          progress.say(f"{heads[key]} skipped: {reason}")
          continue
        if parent in waiting or parent in running.values():
          continue
        waiting.remove(key)
        job = jobs_by_key[key] = _after_parent(job)
        if parent:
          records[job.key] = dataclasses.replace(
              records[job.key], start_from=f"{parent}/{job.init_checkpoint.name}")
        progress.say(f"{heads[key]} {_state(job)} ({_steps(job.phase)})")
        running[pool.submit(_run_phase, job, records[job.key], builder(job),
                            progress.echo(heads[key]), progress.say)] = key
      done, _ = concurrent.futures.wait(
          running, return_when=concurrent.futures.FIRST_COMPLETED)
      for future in done:
        key = running.pop(future)
        job, problem = jobs_by_key[key], future.result()
        progress.ended(heads[key])
        if problem is None:
          summary.ran.append(job.key)
          progress.say(f"{heads[key]} finished")
        elif problem is DONE_ELSEWHERE:
          summary.reused.append(job.key)
          progress.say(f"{heads[key]} {problem}, reused")
        else:
          failed.add(key)
          summary.failed.append((job.key, job.model_dir / LOG_FILE))
          progress.say(f"{heads[key]} FAILED ({problem}); log "
                       f"{job.model_dir / LOG_FILE}")


def _phase_lock(job: Job, say: Callable[[str], None]) -> contextlib.AbstractContextManager[int]:
  """Holds MODEL_DIR's lock (`locks.exclusive`, its fd) while the phase trains, so two
  launchers (or a bare `ptjf train`) never train one phase at once: the second waits. The
  trainer holds it too (the kernel drops a flock when its last holder dies)."""
  return locks.exclusive(job.model_dir, lambda _: say(
      f"{job.key}: another launcher or `ptjf train` is training it; waiting for it"))


def _corpus_read(exp: plan_lib.Experiment, corpus_dir: str | None, runs_dir: pathlib.Path
                 ) -> contextlib.AbstractContextManager[None]:
  """Holds the corpus the sweep reads (`locks.shared`) while it runs: `ptjf corpus build`
  refuses to change it under its phases. A build under way is waited for."""
  from ptjf.tasks import layout  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(corpus_dir) if corpus_dir else layout.default_corpus_dir()
  return locks.shared(root, lambda users: print(
      f"corpus {root} is being rebuilt ({'; '.join(users) or 'another process'}); waiting "
      "for it", flush=True), f"ptjf sweep of {exp.name} into {runs_dir}")


def corpus_changed(job: Job, record: logdir.PhaseRecord) -> str | None:
  """The problem if the corpus was rebuilt since the sweep read it (its hash is in `record`).

  A phase must read the corpus its parent and the runs it is compared with read: a rebuild in
  place (new catalogs installed, another command's build) would otherwise train it silently on
  other pairs and another vocabulary.
  """
  if not record.corpus_hash or job.experiment.engine != "local":
    return None
  from ptjf.tasks import corpus as corpus_lib, layout  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(job.corpus_dir) if job.corpus_dir else layout.default_corpus_dir()
  now = corpus_lib.read_manifest(layout.CorpusLayout(root).manifest)["corpus_hash"]
  changed = corpus_hash_change(record.corpus_hash, now)
  return changed and (f"corpus {root} was rebuilt since this sweep started ({changed}): its "
                      "phases would not be comparable; run the plan again into a new runs "
                      "directory")


def _run_phase(job: Job, record: logdir.PhaseRecord, command: list[str],
               show: Callable[[str], None],
               say: Callable[[str], None]) -> str | None:
  """Writes ptjf_phase.json and trains; None if finished, DONE_ELSEWHERE if
  the launcher it waited for finished it, else the problem. `show` gets each
  line the trainer prints, `say` the launcher's own."""
  with _phase_lock(job, say) as lock:
    if is_finished(job.model_dir, job.phase.steps):
      return DONE_ELSEWHERE
    changed = corpus_changed(job, record)
    if changed:  # not started; the log says why, as a failed phase's log does
      with open(job.model_dir / LOG_FILE, "a", encoding="utf-8") as log:
        log.write(f"ptjf: error: {changed}\n")
      return changed
    _write_record(job, record)
    log_path = job.model_dir / LOG_FILE
    code = _run_logged(command, log_path, show, lock)
    finished = is_finished(job.model_dir, job.phase.steps)
    if finished and job.phase.stop:
      _write_record(job, record)   # now with the step its rule stopped it at
  if code == 0 and finished:
    return None
  why = (f"exit {code}" if code else
         f"exit 0 but no {logdir.checkpoint_name(job.phase.steps)}")
  last = _last_line(log_path)
  return f"{why}: {last}" if last else why


def _write_record(job: Job, record: logdir.PhaseRecord) -> None:
  """ptjf_phase.json of the phase, with the step its early-stop rule stopped it at if it has."""
  if job.phase.stop:
    record = dataclasses.replace(
        record, switch_step=logdir.finished_step(job.model_dir, job.phase.steps))
  (job.model_dir / logdir.PHASE_FILE).write_text(record.to_json())


def _init_checkpoint(exp: plan_lib.Experiment, parent: str,
                     exp_dir: pathlib.Path) -> pathlib.Path:
  """The checkpoint a phase starts from: where its parent finished (an early-stopped parent:
  the step its rule chose; until it has finished, its last possible step)."""
  steps = exp.phases()[parent][1].steps
  step = logdir.finished_step(exp_dir / parent, steps) or steps
  return exp_dir / parent / logdir.checkpoint_name(step)


def _after_parent(job: Job) -> Job:
  """The job, starting from where its parent has now finished."""
  if not job.phase.parent:
    return job
  return dataclasses.replace(job, init_checkpoint=_init_checkpoint(
      job.experiment, job.phase.parent, job.model_dir.parents[1]))


def _job(exp: plan_lib.Experiment, key: str, runs_dir: pathlib.Path,
         corpus_dir: str | None) -> Job:
  """The Job of phase `key` ("run/phase"): MODEL_DIR and start checkpoint."""
  run, phase = exp.phases()[key]
  init = None
  if phase.parent:
    init = _init_checkpoint(exp, phase.parent, runs_dir / exp.name)
  return Job(exp, run, phase, runs_dir / exp.name / run.name / phase.name,
             init, corpus_dir)


def _report(exp: plan_lib.Experiment, keys: Sequence[str], summary: Summary,
            runs_dir: pathlib.Path, dry_run: bool) -> None:
  """The closing lines: nothing to do, counts, and every failure's log."""
  where = runs_dir / exp.name
  if len(summary.reused) == len(keys):
    print(f"nothing to do: all {len(keys)} phases are finished in {where}")
    return
  if dry_run:
    print(f"dry run: {len(summary.planned)} phases to run, "
          f"{len(summary.reused)} finished; nothing was started")
    return
  print(f"{len(summary.ran)} phases ran, {len(summary.reused)} reused, "
        f"{len(summary.failed)} failed, {len(summary.skipped)} skipped "
        f"({where})")
  for key, log_path in summary.failed:
    print(f"  failed: {key}: see {log_path}")
  for key, reason in summary.skipped:
    print(f"  skipped: {key}: {reason}")
