"""PTJF on mC4 on a Cloud TPU VM slice: `ptjf tpu run`.

Chains one T5X pre-training job (English only) into its fine-tune jobs
(all languages, temperature 3.33), each on every worker of the slice:

    gcloud compute tpus tpu-vm create NAME ...        unless `describe` finds it
    <pretrain>  gcloud compute tpus tpu-vm ssh NAME --zone Z --worker=all \\
                  --command '<python -m t5x.train ...>'
    <finetune_200000> (params only from pretrain/checkpoint_200000) ...

A split "200000+300000" is a fine-tune job of 300k steps started from the
pre-training checkpoint at 200k. Pre-training's constant-then-rsqrt schedule
does not depend on its length, so every split branches off one pre-training
job, run to the longest pre-training length (the paper's En 100k/200k/300k
arms share it). Layout: gs://BUCKET/EXPERIMENT/{pretrain,finetune_<N1>}/.

With `--plan PLAN` (a plan file, as `ptjf sweep` reads, or a built-in
plan's name) it runs every phase of the plan instead, whatever its kinds
(scalarization, temperature, UniMax, restart, transfer, pre-training
length), in dependency order, each in gs://BUCKET/<experiment>/<run>/<phase>/
with the plan's T5X entry gin files (`t5x_gin`), exactly as engine "t5x"
would on this machine; each phase's ptjf_phase.json is written there first,
so `ptjf report gs://BUCKET` analyses the runs as the local engine's.

Re-running is safe: a job whose final checkpoint exists
(`gsutil -q stat MODEL_DIR/checkpoint_<TRAIN_STEPS>/commit_success.txt`) is
skipped, and an interrupted one resumes from its own MODEL_DIR. `--dry-run`
prints every command, each skip test as a comment, and runs nothing.
The TPU VM must already hold ptjf, T5X's source and a Python with the pinned
stack (docs/t5x.md, "Cloud TPU").
"""
import argparse
import dataclasses
import shlex
import subprocess
import sys
from typing import Callable, Sequence

from etils import epath

from ptjf import logdir
from ptjf.errors import UserError
from ptjf.launch import execute as execute_lib
from ptjf.launch import plan as plan_lib
from ptjf.launch import t5x

MODEL_SIZES = ("xl", "xxl")
# Model-parallel partitions per size: starting points for v4 slices, not tuned.
DEFAULT_PARTITIONS = {"xl": 4, "xxl": 8}
DEFAULT_SPLIT = "200000+300000"   # the paper's best: En 200k, then tau 300k
CHECKPOINT_PERIOD = 10000   # as gin/t5x/mc4/common.gin: where splits can branch


@dataclasses.dataclass(frozen=True)
class Step:
  """One command; skipped when `done_if` (a command) exits 0.

  record: (path, the phase's ptjf_phase.json), written before the command.
  """
  name: str
  command: list[str]
  done_if: list[str] | None = None
  record: tuple[str, logdir.PhaseRecord] | None = None


def parse_split(text: str) -> tuple[int, int]:
  """'200000+300000' -> (200000, 300000): pre-train steps + fine-tune steps."""
  try:
    pre, fine = (int(part.replace("_", "")) for part in text.split("+"))
  except ValueError:
    raise UserError(f"bad split {text!r}: write PRETRAIN+FINETUNE steps, "
                    "e.g. 200000+300000") from None
  if pre <= 0 or fine <= 0:
    raise UserError(f"bad split {text!r}: both step counts must be positive")
  return pre, fine


def _ssh(args: argparse.Namespace, remote: list[str]) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", args.tpu_name,
          f"--zone={args.zone}", "--worker=all",
          f"--command={shlex.join(remote)}"]


def _remote_step(args: argparse.Namespace, name: str, spec: t5x.T5xPhase,
                 steps: int, record: logdir.PhaseRecord | None = None) -> Step:
  """The ssh step running one T5X job, done once its last checkpoint exists."""
  partitions = ([f"partitioning.PjitPartitioner.num_partitions = "
                 f"{args.num_partitions}"] if args.num_partitions else [])
  spec = dataclasses.replace(
      spec, bindings=(*spec.bindings, *partitions, *args.gin_binding))
  train = t5x.train_command(spec, python=args.python,
                            gin_search_path=args.ptjf_dir)
  remote = ["env", f"PYTHONPATH={args.t5x_pythonpath}", *train]
  return Step(name, _ssh(args, remote),
              ["gsutil", "-q", "stat",
               f"{spec.model_dir}/{logdir.checkpoint_name(steps)}/commit_success.txt"],
              None if record is None else (
                  f"{spec.model_dir}/{logdir.PHASE_FILE}", record))


def _job(args: argparse.Namespace, name: str, phase: str, steps: int,
         start: str = "scratch", init: str | None = None) -> Step:
  """One phase of the mC4 PTJF chain (`--split`)."""
  return _remote_step(args, name, t5x.T5xPhase(
      gin_files=(f"gin/t5x/models/mt5_{args.model_size}.gin",
                 f"gin/t5x/mc4/{phase}.gin"),
      model_dir=f"{args.bucket}/{args.experiment}/{name}",
      macros={"TRAIN_STEPS": steps, "TFDS_DATA_DIR": args.tfds_data_dir},
      start=start, init_checkpoint=init), steps)


def _create(args: argparse.Namespace) -> Step:
  """Creates the TPU VM unless `describe` finds it."""
  where = [f"--zone={args.zone}"]
  return Step(
      "create",
      ["gcloud", "compute", "tpus", "tpu-vm", "create", args.tpu_name, *where,
       f"--accelerator-type={args.tpu_type}", f"--version={args.tpu_version}"],
      ["gcloud", "compute", "tpus", "tpu-vm", "describe", args.tpu_name,
       *where])


def _sized_task_sizes(exp: plan_lib.Experiment, known: dict[str, int],
                      tfds_data_dir: str | None) -> dict[str, int]:
  """Train sizes of the tasks of temperature and UniMax phases (their rates
  depend on them) that `known` (the local corpus) lacks: cluster tasks, read
  from TFDS's metadata in tfds_data_dir."""
  # pylint: disable=g-import-not-at-top
  import gin
  from ptjf.tasks import mixtures
  missing = sorted({t for run in exp.runs for p in run.phases
                    if p.tau is not None or p.unimax is not None
                    for t in p.tasks} - set(known))
  if not missing:
    return {}
  with gin.unlock_config():
    gin.bind_parameter("ptjf.tasks.cluster.register_cluster_task.data_dir",
                       tfds_data_dir)
    if exp.overrides.get("VOCAB_PATH"):
      gin.bind_parameter("ptjf.tasks.cluster.register_cluster_task.vocab_path",
                         exp.overrides["VOCAB_PATH"])
  try:
    return mixtures.train_sizes(missing)
  except Exception as e:  # pylint: disable=broad-except  (TFDS, gcs, seqio)
    raise UserError(f"cannot read the train sizes of {', '.join(missing)} "
                    f"(temperature / UniMax rates) from {tfds_data_dir} "
                    f"({type(e).__name__}): prepare the TFDS data there (the "
                    "T5X jobs read it too), or give the plan's corpus_dir"
                    ) from None


def plan_steps(args: argparse.Namespace, with_records: bool) -> list[Step]:
  """`--plan`: create the TPU, then every phase of the plan in order.

  Each phase is `execute.t5x_phase` (what engine "t5x" runs locally) with its
  MODEL_DIR on the bucket; with_records adds its ptjf_phase.json (task sizes
  for temperature and UniMax rates from the plan's local corpus, else TFDS).
  """
  exp = plan_lib.load_plan(args.plan)
  root = f"{args.bucket}/{exp.name}"
  corpus_dir = args.corpus_dir or exp.corpus_dir
  sizes, corpus_hash = {}, None
  if with_records:
    sizes, corpus_hash = execute_lib.corpus_facts(exp, exp.corpus_dir,
                                                  required=False)
    sizes.update(_sized_task_sizes(exp, sizes, args.tfds_data_dir))
  steps = [_create(args)]
  for key in plan_lib.order(exp):
    run, phase = exp.phases()[key]
    job = execute_lib.Job(exp, run, phase, model_dir=None,
                          init_checkpoint=None, corpus_dir=corpus_dir)
    init = None
    if phase.parent:
      parent_steps = exp.phases()[phase.parent][1].steps
      init = f"{root}/{phase.parent}/{logdir.checkpoint_name(parent_steps)}"
    spec = execute_lib.t5x_phase(job, f"{root}/{key}", init)
    if args.tfds_data_dir:
      spec = dataclasses.replace(
          spec, macros={"TFDS_DATA_DIR": args.tfds_data_dir, **spec.macros})
    record = (execute_lib.phase_record(job, sizes, corpus_hash)
              if with_records else None)
    steps.append(_remote_step(args, key, spec, phase.steps, record))
  return steps


def plan(args: argparse.Namespace) -> list[Step]:
  """Every step of the chain, in order: create the TPU, pre-train, fine-tune
  (or, with --plan, the plan's phases)."""
  args = argparse.Namespace(**vars(args))
  if not args.bucket.startswith("gs://"):
    raise UserError(f"bucket {args.bucket!r} is not a gs:// path: give "
                    "gs://<bucket>[/<prefix>]")
  args.bucket = args.bucket.rstrip("/")
  if args.plan:
    if args.split:
      raise UserError("--split is the mC4 chain without a plan: give --plan "
                      "or --split, not both")
    return plan_steps(args, with_records=not args.dry_run)
  args.experiment = args.experiment or f"ptjf_mc4_{args.model_size}"
  args.tfds_data_dir = args.tfds_data_dir or f"{args.bucket}/tfds"
  args.num_partitions = (args.num_partitions
                         or DEFAULT_PARTITIONS[args.model_size])
  splits = sorted({parse_split(s) for s in args.split or [DEFAULT_SPLIT]})
  pretrain_steps = max(pre for pre, _ in splits)
  for pre, _ in splits:
    if pre % CHECKPOINT_PERIOD and pre != pretrain_steps:
      raise UserError(f"split at {pre} steps has no pre-training checkpoint "
                      f"(saved every {CHECKPOINT_PERIOD}): use a multiple")
  steps = [_create(args), _job(args, "pretrain", "pretrain", pretrain_steps)]
  for pre, fine in splits:
    steps.append(_job(
        args, f"finetune_{pre}", "finetune", fine, "params_only",
        f"{args.bucket}/{args.experiment}/pretrain/{logdir.checkpoint_name(pre)}"))
  return steps


Runner = Callable[..., subprocess.CompletedProcess]


def write_record(path: str, record: logdir.PhaseRecord) -> None:
  """Writes a ptjf_phase.json, on a bucket (gs://) or a local path alike."""
  target = epath.Path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  target.write_text(record.to_json())


def execute(steps: Sequence[Step], dry_run: bool,
            run: Runner = subprocess.run) -> list[str]:
  """Runs (or, dry, prints) the steps in order; returns the names of those run.

  A step whose `done_if` exits 0 is skipped; a failing step stops the chain.
  """
  ran = []
  for step in steps:
    if dry_run:
      if step.done_if:
        print(f"# {step.name}: skipped if this succeeds: "
              f"{shlex.join(step.done_if)}")
      print(shlex.join(step.command))
      continue
    if step.done_if and run(step.done_if, check=False,
                            capture_output=True).returncode == 0:
      print(f"ptjf tpu: {step.name}: done already, skipped", file=sys.stderr)
      continue
    if step.record:
      write_record(*step.record)
    print(f"ptjf tpu: {step.name}: {shlex.join(step.command)}",
          file=sys.stderr)
    if run(step.command, check=False).returncode != 0:
      raise UserError(f"{step.name} failed: fix the cause shown above and "
                      "re-run the same command (finished jobs are skipped)")
    ran.append(step.name)
  return ran


def _run_command(args: argparse.Namespace) -> int:
  execute(plan(args), args.dry_run)
  return 0


def register_tpu(subparsers) -> None:
  """Adds `ptjf tpu run` to the `ptjf` command."""
  tpu = subparsers.add_parser(
      "tpu", help="run PTJF on mC4 with real T5X on a Cloud TPU VM slice")
  commands = tpu.add_subparsers(dest="tpu_command", metavar="COMMAND")
  run = commands.add_parser(
      "run", help="create the TPU if needed, pre-train, then fine-tune; "
      "finished jobs are skipped",
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  run.add_argument("--tpu-name", required=True)
  run.add_argument("--zone", required=True, help="e.g. us-central2-b")
  run.add_argument("--tpu-type", required=True, help="e.g. v4-128")
  run.add_argument("--bucket", required=True, help="gs://bucket[/prefix]")
  run.add_argument("--plan", help="run every phase of this plan (a .toml "
                   "file or a built-in plan's name) instead of --split")
  run.add_argument("--corpus-dir", help="--plan with local tasks: the corpus "
                   "on the TPU VM or a bucket (default: the plan's)")
  run.add_argument("--model-size", choices=MODEL_SIZES, default="xxl")
  run.add_argument("--experiment", help="folder under the bucket "
                   "(default ptjf_mc4_<size>)")
  run.add_argument("--split", action="append", default=None,
                   help="PRETRAIN+FINETUNE steps, repeatable "
                   f"(default {DEFAULT_SPLIT}, the paper's best)")
  run.add_argument("--tfds-data-dir", help="default <bucket>/tfds")
  run.add_argument("--num-partitions", type=int,
                   help="model-parallel partitions (default xl 4, xxl 8; "
                   "with --plan T5X's own unless given)")
  run.add_argument("--gin-binding", action="append", default=[],
                   help="extra gin binding for every job, repeatable")
  run.add_argument("--tpu-version", default="tpu-ubuntu2204-base",
                   help="TPU VM software version for `create`")
  run.add_argument("--python", default="t5x_venv/bin/python",
                   help="Python on the TPU VM (relative to the home dir)")
  run.add_argument("--ptjf-dir", default="ptjf",
                   help="ptjf checkout on the TPU VM (its gin/ is used)")
  run.add_argument("--t5x-pythonpath",
                   default="t5x_src/t5x:t5x_src/airio:t5x_src/jestimator",
                   help="PYTHONPATH on the TPU VM that makes t5x importable")
  run.add_argument("--dry-run", action="store_true",
                   help="print the commands, run nothing")
  run.set_defaults(func=_run_command)
