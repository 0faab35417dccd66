"""`ptjf tpu run` (ptjf.launch.tpu) against a fake gcloud and gsutil on PATH."""
import argparse
import json
import pathlib
import shlex

import pytest

from ptjf.errors import UserError
from ptjf.launch import execute
from ptjf.launch import plan as plan_lib
from ptjf.launch import t5x
from ptjf.launch import tpu

# Logs each call; `gsutil stat` and `gcloud describe` succeed for what
# FAKE_DONE lists; an ssh call fails if its arguments contain FAKE_FAIL.
FAKE = """#!/bin/sh
{ printf '%s' "$(basename "$0")"; printf '\t%s' "$@"; echo; } >> "$FAKE_LOG"
for arg in "$@"; do
  if grep -qxF -- "$arg" "$FAKE_DONE" 2>/dev/null; then exit 0; fi
done
case "$*" in
  *" stat "*|*" describe "*) exit 1 ;;
  *"--worker=all"*) case "$*" in *"$FAKE_FAIL"*) exit 3 ;; esac ;;
esac
exit 0
"""

BASE = ["tpu", "run", "--tpu-name=pod", "--zone=us-central2-b",
        "--tpu-type=v4-128", "--bucket=gs://b/ptjf/", "--model-size=xl"]


@pytest.fixture()
def fake_cloud(tmp_path, monkeypatch) -> dict[str, pathlib.Path]:
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name in ("gcloud", "gsutil"):
    (bin_dir / name).write_text(FAKE)
    (bin_dir / name).chmod(0o755)
  paths = {"log": tmp_path / "calls.log", "done": tmp_path / "done.txt"}
  paths["done"].write_text("")
  monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
  monkeypatch.setenv("FAKE_LOG", str(paths["log"]))
  monkeypatch.setenv("FAKE_DONE", str(paths["done"]))
  monkeypatch.setenv("FAKE_FAIL", "never-matches")
  return paths


def _main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="ptjf")
  tpu.register_tpu(parser.add_subparsers())
  args = parser.parse_args(argv)
  return args.func(args)


def _calls(paths) -> list[list[str]]:
  """argv of each fake gcloud / gsutil call, in order."""
  if not paths["log"].exists():
    return []
  return [line.split("\t") for line in paths["log"].read_text().splitlines()]


def _remote(argv: list[str]) -> list[str]:
  """The T5X argv inside an ssh command's argv."""
  command = [a for a in argv if a.startswith("--command=")][0]
  return shlex.split(command.removeprefix("--command="))


def test_dry_run_prints_the_exact_chain_and_runs_nothing(fake_cloud, capsys):
  assert _main(BASE + ["--dry-run", "--split=100000+400000",
                       "--split=200000+300000"]) == 0
  assert _calls(fake_cloud) == []
  lines = capsys.readouterr().out.splitlines()
  assert lines[:2] == [
      "# create: skipped if this succeeds: gcloud compute tpus tpu-vm "
      "describe pod --zone=us-central2-b",
      "gcloud compute tpus tpu-vm create pod --zone=us-central2-b "
      "--accelerator-type=v4-128 --version=tpu-ubuntu2204-base"]
  assert lines[2::2] == [
      f"# {name}: skipped if this succeeds: gsutil -q stat gs://b/ptjf/"
      f"ptjf_mc4_xl/{name}/checkpoint_{steps}/commit_success.txt"
      for name, steps in (("pretrain", 200000), ("finetune_100000", 400000),
                          ("finetune_200000", 300000))]
  ssh = [shlex.split(l) for l in lines[3::2]]
  assert all(argv[:8] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod",
                          "--zone=us-central2-b", "--worker=all"]
             for argv in ssh)
  pretrain, finetune = _remote(ssh[0]), _remote(ssh[1])
  assert pretrain[:6] == [
      "env", "PYTHONPATH=t5x_src/t5x:t5x_src/airio:t5x_src/jestimator",
      "t5x_venv/bin/python", "-m", "t5x.train",
      "--gin_search_paths=ptjf"]
  assert pretrain[6:] == [
      "--gin_file=gin/t5x/models/mt5_xl.gin",
      "--gin_file=gin/t5x/mc4/pretrain.gin",
      "--gin_file=gin/t5x/start/scratch.gin",
      "--gin_bindings=partitioning.PjitPartitioner.num_partitions = 4",
      '--gin.MODEL_DIR="gs://b/ptjf/ptjf_mc4_xl/pretrain"',
      "--gin.TRAIN_STEPS=200000",
      '--gin.TFDS_DATA_DIR="gs://b/ptjf/tfds"']
  assert "--gin_file=gin/t5x/start/params_only.gin" in finetune
  assert finetune[-1] == (
      '--gin.INITIAL_CHECKPOINT_PATH='
      '"gs://b/ptjf/ptjf_mc4_xl/pretrain/checkpoint_100000"')


def test_first_run_runs_everything_in_order(fake_cloud):
  assert _main(BASE) == 0
  calls = _calls(fake_cloud)
  ran = [c[4] for c in calls if c[0] == "gcloud"]
  assert ran == ["describe", "create", "ssh", "ssh"]
  assert "--gin.TRAIN_STEPS=300000" in _remote(calls[-1])


def test_rerun_skips_the_tpu_and_jobs_whose_last_checkpoint_exists(fake_cloud):
  fake_cloud["done"].write_text(
      "pod\ngs://b/ptjf/ptjf_mc4_xl/pretrain/checkpoint_200000/"
      "commit_success.txt\n")
  assert _main(BASE) == 0
  calls = _calls(fake_cloud)
  ssh = [c for c in calls if "ssh" in c]
  assert len(ssh) == 1 and "finetune_200000" in " ".join(ssh[0])
  assert not any("create" in c for c in calls)


def test_a_failing_job_stops_the_chain_with_a_user_error(fake_cloud,
                                                         monkeypatch):
  monkeypatch.setenv("FAKE_FAIL", "ptjf_mc4_xl/pretrain")
  with pytest.raises(UserError, match="pretrain failed: .* re-run"):
    _main(BASE)
  ssh = [" ".join(c) for c in _calls(fake_cloud) if "ssh" in c]
  assert len(ssh) == 1 and "finetune" not in ssh[0]


@pytest.mark.parametrize("extra, message", [
    (["--bucket=b"], "not a gs:// path"),
    (["--split=2e5+3e5"], "bad split"),
    (["--split=150001+1000", "--split=200000+1"], "has no pre-training"),
    (["--gin-binding=TRAIN_STESP = 5"], "unknown gin macro TRAIN_STESP .*did you mean TRAIN_STEPS"),
])
def test_bad_arguments_are_user_errors(fake_cloud, extra, message):
  with pytest.raises(UserError, match=message):
    _main(BASE + extra + ["--dry-run"])


def _tiny_plan(tmp_path, corpus) -> pathlib.Path:
  """Scalarization + temperature + PTJF on the tiny corpus, engine t5x."""
  path = tmp_path / "chain.toml"
  path.write_text(f"""
[experiment]
name = "chain"
engine = "t5x"
high = "translate_en_fr"
low = "translate_en_ro"
batch_size = 8
corpus_dir = "{corpus.root}"

[[sweep]]
kind = "scalarization"
steps = 4
rates = [0.5]

[[sweep]]
kind = "scalarization"
steps = 4
taus = [2]

[[sweep]]
kind = "ptjf"
pretrain_steps = 4
finetune_steps = 3
rates = [0.3]
""")
  return path


PLAN_BASE = ["tpu", "run", "--tpu-name=pod", "--zone=us-central2-b",
             "--tpu-type=v4-8", "--bucket=gs://b/ptjf"]


def test_plan_dry_run_prints_every_phase_as_engine_t5x_runs_it(
    fake_cloud, tmp_path, tiny_corpus, capsys):
  plan_file = _tiny_plan(tmp_path, tiny_corpus)
  assert _main(PLAN_BASE + [f"--plan={plan_file}", "--dry-run"]) == 0
  assert _calls(fake_cloud) == []
  lines = capsys.readouterr().out.splitlines()
  exp = plan_lib.load_plan(plan_file)
  keys = plan_lib.order(exp)
  assert keys == ["scal_r0.5/main", "scal_t2/main", "pretrain_s4/pretrain",
                  "ptjf_r0.3/finetune"]
  assert [l.split(":")[0] for l in lines[2::2]] == [f"# {k}" for k in keys]
  for key, line in zip(keys, lines[3::2]):
    run, phase = exp.phases()[key]
    job = execute.Job(exp, run, phase, None, None, str(tiny_corpus.root))
    init = ("gs://b/ptjf/chain/pretrain_s4/pretrain/checkpoint_4"
            if phase.parent else None)
    spec = execute.t5x_phase(job, f"gs://b/ptjf/chain/{key}", init)
    assert _remote(shlex.split(line))[2:] == t5x.train_command(
        spec, python="t5x_venv/bin/python", gin_search_path="ptjf")
  assert not any("num_partitions" in l for l in lines)   # T5X's own


def test_plan_run_writes_each_phase_record_next_to_its_model_dir(
    fake_cloud, tmp_path, tiny_corpus, monkeypatch):
  bucket = tmp_path / "bucket"
  write = tpu.write_record
  monkeypatch.setattr(tpu, "write_record", lambda path, record: write(
      str(bucket / path.removeprefix("gs://")), record))
  assert _main(PLAN_BASE + [f"--plan={_tiny_plan(tmp_path, tiny_corpus)}"]) == 0
  assert len([c for c in _calls(fake_cloud) if "ssh" in c]) == 4
  read = lambda key: json.loads(
      (bucket / "b/ptjf/chain" / key / "ptjf_phase.json").read_text())
  temperature = read("scal_t2/main")
  assert (temperature["method"], temperature["tau"]) == ("scalarization", 2.0)
  # rate ~ size^(1/tau): fr 400, ro 40 examples.
  assert temperature["rates"]["translate_en_ro"] == pytest.approx(
      40 ** 0.5 / (400 ** 0.5 + 40 ** 0.5))
  finetune = read("ptjf_r0.3/finetune")
  assert finetune["start"] == {"mode": "params_only",
                               "from": "pretrain_s4/pretrain/checkpoint_4"}
  assert finetune["engine"] == "t5x" and finetune["method"] == "ptjf"


def test_plan_and_split_together_are_a_user_error(fake_cloud, tmp_path,
                                                  tiny_corpus):
  with pytest.raises(UserError, match="give --plan or --split"):
    _main(PLAN_BASE + [f"--plan={_tiny_plan(tmp_path, tiny_corpus)}",
                       "--split=2+2", "--dry-run"])


def test_plan_records_of_cluster_tasks_take_sizes_from_tfds(
    fake_cloud, tmp_path, monkeypatch):
  from ptjf.tasks import mixtures  # pylint: disable=g-import-not-at-top
  tasks = ["mc4_span_corruption_en", "mc4_span_corruption_gd"]
  plan_file = tmp_path / "mc4.toml"
  plan_file.write_text(f"""
[experiment]
name = "mc4"
engine = "t5x"
high = "{tasks[0]}"
low = "{tasks[1]}"

[[sweep]]
kind = "scalarization"
steps = 10
taus = [1]
""")
  asked = []

  def sizes(names):
    asked.append(list(names))
    raise ValueError("no dataset_info.json")

  monkeypatch.setattr(mixtures, "train_sizes", sizes)
  argv = PLAN_BASE + [f"--plan={plan_file}", "--tfds-data-dir=gs://b/tfds"]
  with pytest.raises(UserError, match="cannot read the train sizes of "
                     "mc4_span_corruption_en, mc4_span_corruption_gd .* from "
                     "gs://b/tfds .*prepare the TFDS data"):
    _main(argv)
  assert asked == [tasks] and _calls(fake_cloud) == []
  monkeypatch.setattr(mixtures, "train_sizes",
                      lambda names: {tasks[0]: 900, tasks[1]: 100})
  written = {}
  monkeypatch.setattr(tpu, "write_record",
                      lambda path, record: written.update({path: record}))
  assert _main(argv) == 0
  record = written["gs://b/ptjf/mc4/scal_t1/main/ptjf_phase.json"]
  assert record.rates == {tasks[0]: 0.9, tasks[1]: 0.1}
